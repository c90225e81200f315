"""The session controller's wiring, registered with a manager in one call (controller-runtime's
``SetupWithManager``): the informers it needs, the events that wake a session, and the reconciler.

A session is reconciled when:

* it is created or deleted, or its spec (generation), annotations, phase or deletion mark change
  (status-only writes of other fields, like the backend's ``lastActivityTime``, do not wake it);
* its Job (ownerReference with ``controller: true``) changes status or gets a deletion mark;
* a runner pod labelled with its name changes phase, node, scheduling verdict or a container's
  state;
* a Service labelled with its name is deleted;
* its namespace becomes managed (``ambient-code.io/managed=true``).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentic_operator.clock import Clock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    CONFIG_MAPS,
    JOBS,
    NETWORK_POLICIES,
    PODS,
    SERVICES,
    Obj,
    object_key,
)
from agentic_operator.runtime.cache import CacheWriter, LabelIndex
from agentic_operator.runtime.controller import Controller
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.manager import Manager
from agentic_operator.runtime.predicates import Predicate, enqueue_controller_owner, enqueue_object
from agentic_operator.sessions import model
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.observe import Caches, PodCaches
from agentic_operator.sessions.reconciler import SessionReconciler
from agentic_operator.sessions.runner import RunnerClient

SESSION_CONTROLLER = "agenticsession-controller"


@dataclass
class Sessions:
    """What :func:`setup_with_manager` registered: the session informer (the legacy driver lists
    it), the reconciler, the controller (None in legacy mode), the runner client to close, and the
    runner-NetworkPolicy informer (the project controller shares it)."""

    informer: Informer
    reconciler: SessionReconciler
    controller: Controller | None
    runner: RunnerClient
    network_policies: Informer


def setup_with_manager(
    mgr: Manager,
    client: ApiClient,
    cfg: SessionConfig,
    recorder: EventRecorder,
    namespaces: Informer,
    project_settings: Informer,
    *,
    clock: Clock,
    max_concurrent_reconciles: int = 10,
    controller: bool = True,
) -> Sessions:
    """Create the session, Job, runner-pod and Service informers, add them to ``mgr``, and (unless
    ``controller`` is false, for ``--legacy-watch``) the controller. ``namespaces`` (managed
    namespaces) and ``project_settings`` are shared with the project controller and added to
    ``mgr`` by the caller."""
    sessions, jobs, pods, services, config_maps, policies = informers = _informers(client)
    for informer in informers:
        mgr.add_informer(informer)
    pods_index = LabelIndex(pods.store, model.LABEL_SESSION)
    pods.add_handler(pods_index.on_add, pods_index.on_update, pods_index.on_delete)

    runner = RunnerClient(cfg.runner_endpoint)
    caches = Caches(
        sessions=CacheWriter(sessions),
        jobs=CacheWriter(jobs),
        services=CacheWriter(services),
        namespaces=CacheWriter(namespaces),
        pods_by_session=pods_index.lookup,
        project_settings=project_settings.store,
        network_policies=CacheWriter(policies),
    )
    reconciler = SessionReconciler(
        client, caches, cfg, recorder, runner, clock=clock, pod_caches=PodCaches(config_maps.store)
    )
    if not controller:
        return Sessions(sessions, reconciler, None, runner, policies)

    ctrl = Controller(
        SESSION_CONTROLLER,
        reconciler.reconcile,
        max_concurrent_reconciles=max_concurrent_reconciles,
        clock=clock,
    )
    _watch(ctrl, sessions, jobs, pods, services, namespaces)
    mgr.add_runnable(ctrl)
    return Sessions(sessions, reconciler, ctrl, runner, policies)


def _informers(
    client: ApiClient,
) -> tuple[Informer, Informer, Informer, Informer, Informer, Informer]:
    """Sessions, and what the operator makes for them or reads for their pods: runner Jobs and
    pods (by the runner label), Services (by the session label), the trusted CA bundles and the
    runner NetworkPolicies (each by its one name)."""
    runner_selector = f"{model.LABEL_APP}={model.RUNNER_APP}"
    return (
        Informer(client, AGENTIC_SESSIONS, name="agenticsessions"),
        Informer(client, JOBS, label_selector=runner_selector, name="jobs"),
        Informer(client, PODS, label_selector=runner_selector, name="pods"),
        Informer(client, SERVICES, label_selector=model.LABEL_SESSION, name="services"),
        # Only whether each bundle holds the key the runner mounts, not the certificates.
        Informer(
            client,
            CONFIG_MAPS,
            field_selector=f"metadata.name={model.TRUSTED_CA_CONFIGMAP}",
            transform=ca_bundle_presence,
            name="configmaps",
        ),
        Informer(
            client,
            NETWORK_POLICIES,
            field_selector=f"metadata.name={model.RUNNER_NETWORK_POLICY}",
            name="networkpolicies",
        ),
    )


def _watch(
    ctrl: Controller,
    sessions: Informer,
    jobs: Informer,
    pods: Informer,
    services: Informer,
    namespaces: Informer,
) -> None:
    """The events that wake a session (module docstring)."""
    ctrl.watch(sessions, enqueue_object, Predicate(update=session_changed))
    ctrl.watch(
        jobs, enqueue_controller_owner(model.KIND, model.GROUP), Predicate(update=job_changed)
    )
    ctrl.watch(pods, session_of_labelled, Predicate(update=runner_changed))
    # A Service's deletion (the garbage collector taking an earlier run's, or anyone's) wakes its
    # session, which makes the run's own (row A14); creates and updates need nothing.
    never = Predicate(create=lambda _o: False, update=lambda _o, _n: False)
    ctrl.watch(services, session_of_labelled, never)

    def sessions_in(ns: Obj) -> list[str]:
        name = str((ns.get("metadata") or {}).get("name", ""))
        return [object_key(s) for s in sessions.store.by_namespace(name)]

    ctrl.watch(
        namespaces,
        sessions_in,
        Predicate(update=namespace_became_managed, delete=lambda _o: False),
    )


# --- predicates and mappers ----------------------------------------------------------------------


def ca_bundle_presence(cm: Obj) -> Obj:
    """What the cache keeps of a ``trusted-ca-bundle`` ConfigMap: its metadata and whether it has
    ``ca-bundle.crt`` (in ``data`` or ``binaryData``), not the certificates themselves."""
    present = any(model.TRUSTED_CA_KEY in (cm.get(part) or {}) for part in ("data", "binaryData"))
    out: Obj = {"metadata": cm.get("metadata") or {}}
    if present:
        out["data"] = {model.TRUSTED_CA_KEY: ""}
    return out


def session_changed(old: Obj, new: Obj) -> bool:
    """Spec (generation), annotations, phase or the deletion mark changed."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return (
        om.get("generation") != nm.get("generation")
        or (om.get("annotations") or {}) != (nm.get("annotations") or {})
        or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase")
        or om.get("deletionTimestamp") != nm.get("deletionTimestamp")
    )


def job_changed(old: Obj, new: Obj) -> bool:
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
    scheduled = next(
        (
            (c.get("status"), c.get("reason"))
            for c in status.get("conditions") or ()
            if c.get("type") == "PodScheduled"
        ),
        None,
    )
    return (status.get("phase"), (pod.get("spec") or {}).get("nodeName"), scheduled, tuple(states))


def runner_changed(old: Obj, new: Obj) -> bool:
    """The pod's phase, node, its PodScheduled condition (the scheduler's verdict) or a
    container's state (or waiting reason) changed."""
    return _runner_state(old) != _runner_state(new)


def namespace_became_managed(old: Obj, new: Obj) -> bool:
    def managed(o: Obj) -> bool:
        return ((o.get("metadata") or {}).get("labels") or {}).get(model.LABEL_MANAGED) == "true"

    return managed(new) and not managed(old)


def session_of_labelled(obj: Obj) -> list[str]:
    """The session an object names in its ``agentic-session`` label (runner pods, Services)."""
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(model.LABEL_SESSION)
    return [f"{meta.get('namespace')}/{name}"] if name else []
