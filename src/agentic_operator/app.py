"""Wiring: settings -> API client, informers, controllers, manager. The process entry point."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING

from agentic_operator.clock import RealClock
from agentic_operator.kube.client import ApiClient, connect, from_config
from agentic_operator.kube.config import ConfigError
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    JOBS,
    NAMESPACES,
    PODS,
    PROJECT_SETTINGS,
    ROLE_BINDINGS,
    SERVICES,
    Obj,
    object_key,
)
from agentic_operator.legacy.watch import LegacyWatchLoop
from agentic_operator.projects import bindings
from agentic_operator.projects.reconciler import ProjectReconciler
from agentic_operator.runtime.controller import (
    Controller,
    Predicate,
    enqueue_controller_owner,
    enqueue_object,
)
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.leaderelection import LeaderElector
from agentic_operator.runtime.manager import EXIT_FAILURE, Manager
from agentic_operator.runtime.store import Store
from agentic_operator.sessions import model
from agentic_operator.sessions.reconciler import Caches, SessionReconciler

if TYPE_CHECKING:
    from agentic_operator.settings import Settings

log = logging.getLogger("agentic_operator")

SESSION_CONTROLLER = "agenticsession-controller"
PROJECT_CONTROLLER = "project-controller"
MANAGED_SELECTOR = f"{model.LABEL_MANAGED}=true"


class CacheWriter:
    """Read access to an informer's store plus the two corrections the reconciler makes.

    ``replace_if`` writes our own write's result through to the cache (Informer.write_through:
    only if the cache still holds the version the write was based on); ``remove`` forgets an
    object we deleted, so a reconcile that runs before the DELETED event does not delete twice.
    """

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.store = informer.store

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def replace_if(self, obj: Obj, expected_resource_version: str | None) -> bool:
        return self.informer.write_through(obj, expected_resource_version)

    def remove(self, key: str) -> None:
        self.store.delete(key)


class LabelIndex:
    """(namespace, label value) -> object keys, kept current by informer callbacks."""

    def __init__(self, store: Store, label: str) -> None:
        self.store = store
        self.label = label
        self._index: defaultdict[tuple[str, str], set[str]] = defaultdict(set)

    def _value(self, obj: Obj) -> tuple[str, str] | None:
        meta = obj.get("metadata") or {}
        value = (meta.get("labels") or {}).get(self.label)
        return (str(meta.get("namespace", "")), str(value)) if value else None

    def on_add(self, obj: Obj) -> None:
        v = self._value(obj)
        if v:
            self._index[v].add(object_key(obj))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.on_delete(old)
        self.on_add(new)

    def on_delete(self, obj: Obj) -> None:
        v = self._value(obj)
        if v and v in self._index:
            self._index[v].discard(object_key(obj))
            if not self._index[v]:
                del self._index[v]

    def lookup(self, namespace: str, value: str) -> list[Obj]:
        out = []
        for key in self._index.get((namespace, value), ()):
            obj = self.store.get(key)
            if obj is not None:
                out.append(obj)
        return out


# ---------------------------------------------------------------- predicates
def _session_update(old: Obj, new: Obj) -> bool:
    """The seed operator's predicate: spec (generation), annotations, or phase changed."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return (
        om.get("generation") != nm.get("generation")
        or (om.get("annotations") or {}) != (nm.get("annotations") or {})
        or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase")
        or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
    )


def _job_update(old: Obj, new: Obj) -> bool:
    return old.get("status") != new.get("status") or (old.get("metadata") or {}).get(
        "deletionTimestamp"
    ) != (new.get("metadata") or {}).get("deletionTimestamp")


def _runner_state(pod: Obj) -> tuple[object, ...]:
    status = pod.get("status") or {}
    states = []
    for cs in status.get("containerStatuses") or ():
        state = cs.get("state") or {}
        states.append(
            (cs.get("name"), tuple(sorted(state)), (state.get("waiting") or {}).get("reason"))
        )
    return (status.get("phase"), (pod.get("spec") or {}).get("nodeName"), tuple(states))


def _pod_update(old: Obj, new: Obj) -> bool:
    return _runner_state(old) != _runner_state(new)


def _namespace_became_managed(old: Obj, new: Obj) -> bool:
    def managed(o: Obj) -> bool:
        return ((o.get("metadata") or {}).get("labels") or {}).get(model.LABEL_MANAGED) == "true"

    return managed(new) and not managed(old)


def _session_key_of_pod(pod: Obj) -> list[str]:
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(model.LABEL_SESSION)
    return [f"{meta.get('namespace')}/{name}"] if name else []


def _namespace_key(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [str(ns)] if ns else []


def _identity() -> str:
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- assembly
class Operator:
    """All parts of one operator process, assembled but not started."""

    def __init__(
        self, client: ApiClient, settings: Settings, *, events_client: ApiClient | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        clock = RealClock()
        # Events go through a client of their own (its own token bucket, like client-go's event
        # broadcaster), so a burst of Events never delays the reconciles' requests.
        self.recorder = EventRecorder(events_client or client, clock=clock)

        self.sessions = Informer(client, AGENTIC_SESSIONS, name="agenticsessions")
        self.jobs = Informer(
            client, JOBS, label_selector=f"{model.LABEL_APP}={model.RUNNER_APP}", name="jobs"
        )
        self.pods = Informer(
            client, PODS, label_selector=f"{model.LABEL_APP}={model.RUNNER_APP}", name="pods"
        )
        self.services = Informer(
            client, SERVICES, label_selector=model.LABEL_SESSION, name="services"
        )
        self.namespaces = Informer(
            client, NAMESPACES, label_selector=MANAGED_SELECTOR, name="namespaces"
        )
        self.project_settings = Informer(client, PROJECT_SETTINGS, name="projectsettings")
        self.role_bindings = Informer(
            client, ROLE_BINDINGS, label_selector=MANAGED_SELECTOR, name="rolebindings"
        )
        self.informers = [
            self.sessions,
            self.jobs,
            self.pods,
            self.services,
            self.namespaces,
            self.project_settings,
            self.role_bindings,
        ]
        pods_index = LabelIndex(self.pods.store, model.LABEL_SESSION)
        self.pods.add_handler(pods_index.on_add, pods_index.on_update, pods_index.on_delete)

        self.session_reconciler = SessionReconciler(
            client,
            Caches(
                sessions=CacheWriter(self.sessions),
                jobs=CacheWriter(self.jobs),
                services=CacheWriter(self.services),
                namespaces=CacheWriter(self.namespaces),
                pods_by_session=pods_index.lookup,
            ),
            settings.sessions,
            self.recorder,
            clock=clock,
        )
        self.project_reconciler = ProjectReconciler(
            client,
            namespaces=self.namespaces.store,
            settings=self.project_settings.store,
            bindings_in=self.role_bindings.store.by_namespace,
            recorder=self.recorder,
            clock=clock,
        )

        self.session_controller: Controller | LegacyWatchLoop
        if settings.legacy_watch:
            self.session_controller = LegacyWatchLoop(
                client, self.session_reconciler.reconcile, self.sessions.store, clock=clock
            )
        else:
            ctrl = Controller(
                SESSION_CONTROLLER,
                self.session_reconciler.reconcile,
                max_concurrent_reconciles=settings.max_concurrent_reconciles,
                clock=clock,
            )
            ctrl.watch(self.sessions, enqueue_object, Predicate(update=_session_update))
            ctrl.watch(
                self.jobs,
                enqueue_controller_owner(model.KIND, model.GROUP),
                Predicate(update=_job_update),
            )
            ctrl.watch(self.pods, _session_key_of_pod, Predicate(update=_pod_update))
            ctrl.watch(
                self.namespaces,
                self._sessions_in_namespace,
                Predicate(update=_namespace_became_managed, delete=lambda _o: False),
            )
            self.session_controller = ctrl

        self.project_controller = Controller(
            PROJECT_CONTROLLER,
            self.project_reconciler.reconcile,
            max_concurrent_reconciles=2,
            clock=clock,
        )
        self.project_controller.watch(
            self.namespaces,
            lambda ns: [str(ns["metadata"]["name"])],
            Predicate(update=_namespace_became_managed, delete=lambda _o: False),
        )
        self.project_controller.watch(
            self.project_settings,
            lambda ps: (
                _namespace_key(ps)
                if ps["metadata"].get("name") == bindings.PROJECT_SETTINGS_NAME
                else []
            ),
            Predicate(
                update=lambda o, n: (
                    o.get("spec") != n.get("spec")
                    or (o.get("metadata") or {}).get("uid") != (n.get("metadata") or {}).get("uid")
                )
            ),
        )
        self.project_controller.watch(self.role_bindings, _namespace_key)

    def _sessions_in_namespace(self, ns: Obj) -> list[str]:
        name = str((ns.get("metadata") or {}).get("name", ""))
        return [object_key(s) for s in self.sessions.store.by_namespace(name)]

    def manager(self) -> Manager:
        s = self.settings
        elector = None
        if s.leader_elect:
            elector = LeaderElector(
                self.client,
                name=s.leader_election_id,
                namespace=s.leader_election_namespace,
                identity=_identity(),
            )
        mgr = Manager(
            probe_address=s.health_probe_bind_address,
            metrics_address=s.metrics_bind_address,
            cache_sync_timeout=s.cache_sync_timeout,
            graceful_shutdown_timeout=s.graceful_shutdown_timeout,
            elector=elector,
        )
        for inf in self.informers:
            mgr.add_informer(inf)
        mgr.add_runnable(self.session_controller)
        mgr.add_runnable(self.project_controller)
        return mgr


async def run(settings: Settings) -> int:
    """Connect, assemble, run until signalled. Returns the process exit code."""
    try:
        client = await connect(settings.kubeconfig, qps=settings.qps, burst=settings.burst)
    except ConfigError as exc:
        log.error("cannot load Kubernetes configuration: %s", exc)
        return EXIT_FAILURE
    events_client = await from_config(client.config, qps=settings.qps, burst=settings.burst)
    async with client, events_client:
        op = Operator(client, settings, events_client=events_client)
        mgr = op.manager()
        mgr.install_signal_handlers()
        log.info(
            "starting agentic-operator",
            extra={
                "mode": "legacy-watch" if settings.legacy_watch else "controller",
                "max_concurrent_reconciles": settings.max_concurrent_reconciles,
                "leader_elect": settings.leader_elect,
                "namespace": settings.sessions.operator_namespace,
                "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            },
        )
        try:
            code = await mgr.run()
        finally:
            await op.session_reconciler.runner.close()
        await op.recorder.flush()
        log.info("stopped", extra={"exit_code": code})
        return code
