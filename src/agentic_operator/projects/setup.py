"""The project controller's wiring, registered with a manager in one call: its informers, the
events that wake a namespace, and the reconciler.

A managed namespace is reconciled when it becomes managed, when its ``projectsettings`` changes
spec or is replaced (new UID), when one of its managed RoleBindings changes, and when one of the
objects the settings give it (``ambient-session-trigger`` ServiceAccount, Role and RoleBinding, the
LimitRange ``ambient-default-limits``) changes or goes, and when the runner NetworkPolicy
``runner-allow-backend-only`` goes. Those are cached by name (a field selector), whoever made them,
so a namesake the operator must not touch is seen without a read.
"""

from __future__ import annotations

from collections.abc import Callable

from agentic_operator.clock import Clock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.resources import (
    NETWORK_POLICIES,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.projects.objects import LIMIT_RANGE_NAME, LIMIT_RANGES, TRIGGER_NAME
from agentic_operator.projects.reconciler import ProjectReconciler
from agentic_operator.runtime.controller import Controller, Predicate
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.manager import Manager
from agentic_operator.sessions import model
from agentic_operator.sessions.setup import namespace_became_managed

PROJECT_CONTROLLER = "project-controller"
NAMES: dict[Resource, str] = {
    LIMIT_RANGES: LIMIT_RANGE_NAME,
    NETWORK_POLICIES: model.RUNNER_NETWORK_POLICY,
}
"""The one name cached per kind, where it is not ``ambient-session-trigger``."""
MANAGED_SELECTOR = f"{model.LABEL_MANAGED}=true"


def setup_with_manager(
    mgr: Manager,
    client: ApiClient,
    recorder: EventRecorder,
    namespaces: Informer,
    settings: Informer,
    *,
    clock: Clock,
    network_policies: Informer,
    runner_policy: Callable[[str], Obj],
) -> Controller:
    """Add the managed-RoleBinding informer and the controller to ``mgr``; ``namespaces``
    (managed namespaces), ``settings`` (ProjectSettings) and ``network_policies`` (the runner
    NetworkPolicies, by name) are shared with the session controller and added to ``mgr`` by the
    caller. ``runner_policy(namespace)`` is the NetworkPolicy a managed namespace gets."""
    role_bindings = Informer(
        client, ROLE_BINDINGS, label_selector=MANAGED_SELECTOR, name="rolebindings"
    )
    mgr.add_informer(role_bindings)
    named: dict[Resource, Informer] = {}
    for res, name in (
        (SERVICE_ACCOUNTS, TRIGGER_NAME),
        (ROLES, TRIGGER_NAME),
        (ROLE_BINDINGS, TRIGGER_NAME),
        (LIMIT_RANGES, LIMIT_RANGE_NAME),
    ):
        informer = Informer(
            client,
            res,
            field_selector=f"metadata.name={name}",
            name=f"project-{res.plural}",
        )
        mgr.add_informer(informer)
        named[res] = informer
    named[NETWORK_POLICIES] = network_policies

    def cached(res: Resource, namespace: str) -> Obj | None:
        name = NAMES.get(res, TRIGGER_NAME)
        return named[res].store.get(f"{namespace}/{name}")

    reconciler = ProjectReconciler(
        client,
        namespaces=namespaces.store,
        settings=settings.store,
        bindings_in=role_bindings.store.by_namespace,
        cached=cached,
        recorder=recorder,
        clock=clock,
        runner_policy=runner_policy,
    )
    ctrl = Controller(
        PROJECT_CONTROLLER, reconciler.reconcile, max_concurrent_reconciles=2, clock=clock
    )
    ctrl.watch(
        namespaces,
        lambda ns: [str(ns["metadata"]["name"])],
        Predicate(update=namespace_became_managed, delete=lambda _o: False),
    )
    ctrl.watch(settings, _namespace_of_singleton, Predicate(update=_settings_changed))
    ctrl.watch(role_bindings, _namespace_key)
    for res, informer in named.items():
        if res is NETWORK_POLICIES:
            # Shared with the session controller, which restores the policy's spec at each start:
            # only its going brings it back here.
            gone = Predicate(create=lambda _o: False, update=lambda _o, _n: False)
            ctrl.watch(informer, _namespace_key, gone)
        else:
            ctrl.watch(informer, _namespace_key)
    mgr.add_runnable(ctrl)
    return ctrl


def _settings_changed(old: Obj, new: Obj) -> bool:
    return old.get("spec") != new.get("spec") or (old.get("metadata") or {}).get("uid") != (
        new.get("metadata") or {}
    ).get("uid")


def _namespace_of_singleton(ps: Obj) -> list[str]:
    if (ps.get("metadata") or {}).get("name") != model.PROJECT_SETTINGS_NAME:
        return []
    return _namespace_key(ps)


def _namespace_key(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [str(ns)] if ns else []
