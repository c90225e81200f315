"""The project controller: one reconcile per managed namespace.

* A managed namespace (label ``ambient-code.io/managed=true``) gets its ``projectsettings``
  singleton if it has none.
* ``spec.groupAccess`` of that singleton becomes RoleBindings ``<group>-<role>`` to the ClusterRoles
  ``ambient-project-{admin,edit,view}``: missing ones are created, drifted ones corrected, removed
  entries' bindings deleted (see :mod:`agentic_operator.projects.bindings` for the rules).
* The ``ambient-session-trigger`` ServiceAccount, Role and RoleBinding that scheduled sessions run
  as, and the LimitRange ``ambient-default-limits`` (created once), see
  :mod:`agentic_operator.projects.objects`.
* The runner NetworkPolicy ``runner-allow-backend-only`` (created once here, before the
  namespace's first runner; the session controller keeps its spec true at each start, see
  :mod:`agentic_operator.sessions.netpol`).
* Status: ``groupBindingsCreated``, ``scheduledSessionRBACReady``, ``limitRangeReady`` and the
  conditions ``Ready``, ``ScheduledSessionRBACReady``, ``LimitRangeReady`` and
  ``RunnerNetworkPolicyReady``. Other status fields are kept as they are.

Only objects with the operator's marker are ever updated or deleted
(:mod:`agentic_operator.projects.ownership`). Only managed namespaces are handled: a
ProjectSettings elsewhere is ignored, as are its sessions.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from agentic_operator.kube.resources import (
    NETWORK_POLICIES,
    PROJECT_SETTINGS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.projects import bindings, objects
from agentic_operator.projects.objects import LIMIT_RANGE_NAME, LIMIT_RANGES, TRIGGER_NAME, Write
from agentic_operator.runtime.controller import Result
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.sessions import netpol
from agentic_operator.sessions.model import (
    PROJECT_SETTINGS_NAME,
    being_deleted,
    namespace_terminating,
)
from agentic_operator.sessions.status import upsert_condition

log = logging.getLogger(__name__)

COND_READY = "Ready"
COND_TRIGGER_RBAC = "ScheduledSessionRBACReady"
COND_LIMIT_RANGE = "LimitRangeReady"
COND_NETWORK_POLICY = "RunnerNetworkPolicyReady"

TRIGGER_OBJECTS: tuple[tuple[Resource, Callable[[Obj], Obj]], ...] = (
    (SERVICE_ACCOUNTS, objects.trigger_service_account),
    (ROLES, objects.trigger_role),
    (ROLE_BINDINGS, objects.trigger_role_binding),
)
"""In the order they are made: a RoleBinding is only accepted once its Role exists."""


class Cache(Protocol):
    def get(self, key: str) -> Obj | None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one status field and its condition; ``error`` is retried after the
    status write."""

    ready: bool
    reason: str
    message: str
    error: ApiError | None = None


class ProjectReconciler:
    def __init__(
        self,
        client: ApiClient,
        *,
        namespaces: Cache,
        settings: Cache,
        bindings_in: Callable[[str], list[Obj]],
        cached: Callable[[Resource, str], Obj | None],
        recorder: EventRecorder,
        clock: Clock | None = None,
        runner_policy: Callable[[str], Obj] | None = None,
    ) -> None:
        """``cached(res, namespace)`` is the cached object of kind ``res`` with the one name this
        controller gives that kind (``ambient-session-trigger``, ``ambient-default-limits``,
        ``runner-allow-backend-only``); ``runner_policy(namespace)`` is the runner NetworkPolicy
        to create (None: none is made)."""
        self.client = client
        self.namespaces = namespaces
        self.settings = settings
        self.bindings_in = bindings_in
        self.cached = cached
        self.events = recorder
        self.clock = clock or RealClock()
        self.runner_policy = runner_policy

    async def reconcile(self, namespace: str) -> Result | None:
        ns = self.namespaces.get(namespace)
        if ns is None or namespace_terminating(ns):
            # A namespace being deleted refuses new content (403), and its own cleanup deletes
            # our objects: recreating them would be refused writes and retries until it is gone.
            return None
        ps = self.settings.get(f"{namespace}/{PROJECT_SETTINGS_NAME}")
        if ps is None:
            try:
                ps = await self.client.create(
                    PROJECT_SETTINGS, bindings.default_project_settings(namespace), namespace
                )
                log.info("created ProjectSettings", extra={"namespace": namespace})
            except AlreadyExists:
                return Result(requeue_after=1.0)  # the cache will deliver it
        if being_deleted(ps):
            return None

        created, problems = await self._group_bindings(ps)
        trigger = await self._trigger_rbac(ps)
        limits = await self._limit_range(ps)
        policy = await self._network_policy(ps)
        await self._write_status(ps, created, problems, trigger, limits, policy)
        for verdict in (trigger, limits, policy):
            if verdict is not None and verdict.error is not None:
                raise verdict.error
        return None

    async def _group_bindings(self, ps: Obj) -> tuple[int, list[str]]:
        """Apply the group-binding plan; the bindings in place and the problems to report."""
        namespace = ps["metadata"]["namespace"]
        desired = bindings.desired_role_bindings(ps)
        plan = bindings.plan_role_bindings(
            desired, self.bindings_in(namespace), str(ps["metadata"]["uid"])
        )
        conflicts = list(plan.conflicts)
        for rb in plan.create:
            try:
                await self.client.create(ROLE_BINDINGS, rb, namespace)
            except AlreadyExists:
                conflicts.append(rb["metadata"]["name"])
        for rb in plan.update:
            await self.client.replace(ROLE_BINDINGS, rb["metadata"]["name"], rb, namespace)
        for rb in plan.recreate:
            await self._delete(ROLE_BINDINGS, rb["metadata"]["name"], namespace)
            await self.client.create(ROLE_BINDINGS, rb, namespace)
        for name in plan.delete:
            await self._delete(ROLE_BINDINGS, name, namespace)
        problems = bindings.invalid_entries(ps)
        problems += [
            f"RoleBinding {n} exists and is not managed by the operator" for n in conflicts
        ]
        return len(desired) - len(conflicts), problems

    async def _delete(self, res: Resource, name: str, namespace: str) -> None:
        try:
            await self.client.delete(res, name, namespace)
        except NotFound:
            pass

    async def _ensure(
        self, res: Resource, want: Obj, uid: str, *, create_only: bool
    ) -> tuple[Write, Obj | None]:
        """Bring one object to ``want`` as :func:`objects.plan_object` says; the write done and
        the object that was there. One missing from the cache but present (AlreadyExists) is read
        once and planned again."""
        namespace, name = want["metadata"]["namespace"], want["metadata"]["name"]
        have = self.cached(res, namespace)
        write = objects.plan_object(want, have, uid, create_only=create_only)
        if write.action == "create":
            try:
                await self.client.create(res, want, namespace)
                return write, None
            except AlreadyExists:
                have = await self.client.get(res, name, namespace)
                write = objects.plan_object(want, have, uid, create_only=create_only)
        if write.action == "update" and write.body is not None:
            await self.client.replace(res, name, write.body, namespace)
        elif write.action == "recreate":
            await self._delete(res, name, namespace)
            await self.client.create(res, want, namespace)
        return write, have

    async def _trigger_rbac(self, ps: Obj) -> Verdict:
        uid, namespace = str(ps["metadata"]["uid"]), ps["metadata"]["namespace"]
        foreign_ok: list[str] = []
        foreign_bad: list[str] = []
        for res, build in TRIGGER_OBJECTS:
            try:
                write, have = await self._ensure(res, build(ps), uid, create_only=False)
            except Conflict:
                raise  # a stale cache: the controller retries with the newer version
            except ApiError as exc:
                return Verdict(False, "ApiError", f"{res.kind} {TRIGGER_NAME}: {exc}", exc)
            if write.action == "conflict" and have is not None:
                works = objects.grants_trigger(have, namespace)
                (foreign_ok if works else foreign_bad).append(res.kind)
        if foreign_bad:
            return Verdict(
                False,
                "Conflict",
                f"{', '.join(foreign_bad)} {TRIGGER_NAME} not managed by the operator and not "
                f"granting {', '.join(objects.TRIGGER_VERBS)} on agenticsessions to "
                f"ServiceAccount {TRIGGER_NAME}; left untouched",
            )
        message = f"ServiceAccount, Role and RoleBinding {TRIGGER_NAME} in place"
        if foreign_ok:
            message += f" ({', '.join(foreign_ok)} not managed by the operator, left untouched)"
        return Verdict(True, "Reconciled", message)

    async def _limit_range(self, ps: Obj) -> Verdict:
        want = objects.default_limit_range(ps)
        uid = str(ps["metadata"]["uid"])
        try:
            write, _ = await self._ensure(LIMIT_RANGES, want, uid, create_only=True)
        except ApiError as exc:
            return Verdict(False, "ApiError", f"LimitRange {LIMIT_RANGE_NAME}: {exc}", exc)
        if write.action == "create":
            return Verdict(True, "Created", f"LimitRange {LIMIT_RANGE_NAME} created")
        return Verdict(
            True, "Present", f"LimitRange {LIMIT_RANGE_NAME} exists (created once, edits are kept)"
        )

    async def _network_policy(self, ps: Obj) -> Verdict | None:
        if self.runner_policy is None:
            return None
        namespace = ps["metadata"]["namespace"]
        want = self.runner_policy(namespace)
        what = f"NetworkPolicy {want['metadata']['name']}"
        try:
            write, have = await self._ensure(
                NETWORK_POLICIES, want, str(ps["metadata"]["uid"]), create_only=True
            )
        except ApiError as exc:
            return Verdict(False, "ApiError", f"{what}: {exc}", exc)
        if write.action == "create":
            return Verdict(True, "Created", f"{what} created")
        if have is not None and not netpol.is_ours(have):
            return Verdict(
                True, "NotManaged", f"{what} exists and is not managed by the operator; left alone"
            )
        return Verdict(True, "Present", f"{what} exists (its spec is restored at each run's start)")

    async def _write_status(
        self,
        ps: Obj,
        created: int,
        problems: list[str],
        trigger: Verdict,
        limits: Verdict,
        policy: Verdict | None,
    ) -> None:
        old = ps.get("status") or {}
        new = copy.deepcopy(old)
        new["groupBindingsCreated"] = max(0, created)
        new["scheduledSessionRBACReady"] = trigger.ready
        new["limitRangeReady"] = limits.ready
        if problems:
            ready = ("False", "InvalidGroupAccess", "; ".join(problems))
        elif not trigger.ready:
            ready = ("False", "ScheduledSessionRBACNotReady", trigger.message)
        else:
            ready = ("True", "BindingsReconciled", f"{created} group RoleBinding(s) in place")
        now = self.clock.wall()
        conditions = upsert_condition(new.get("conditions") or [], COND_READY, *ready, now)
        verdicts = [(COND_TRIGGER_RBAC, trigger), (COND_LIMIT_RANGE, limits)]
        if policy is not None:
            verdicts.append((COND_NETWORK_POLICY, policy))
        for type_, v in verdicts:
            status = "True" if v.ready else "False"
            conditions = upsert_condition(conditions, type_, status, v.reason, v.message, now)
        new["conditions"] = conditions
        if new == old:
            return
        body = dict(ps)
        body["status"] = new
        meta = ps["metadata"]
        try:
            await self.client.replace(
                PROJECT_SETTINGS, meta["name"], body, meta["namespace"], subresource="status"
            )
        except (Conflict, NotFound):
            return  # a newer version will be reconciled
        except ApiError as exc:
            log.warning("ProjectSettings status not written: %s", exc)
            return
        if problems and ready[0] != (_condition(old, COND_READY) or {}).get("status"):
            self.events.warning(ps, "InvalidGroupAccess", ready[2])


def _condition(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None
