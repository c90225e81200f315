"""The project controller: one reconcile per managed namespace.

* A managed namespace (label ``ambient-code.io/managed=true``) gets its ``projectsettings``
  singleton if it has none.
* ``spec.groupAccess`` of that singleton becomes RoleBindings ``<group>-<role>`` to the ClusterRoles
  ``ambient-project-{admin,edit,view}``: missing ones are created, drifted ones corrected, removed
  entries' bindings deleted (see :mod:`agentic_operator.projects.bindings` for the rules).
* ``status.groupBindingsCreated`` and a ``Ready`` condition report the outcome.

Only managed namespaces are handled: a ProjectSettings elsewhere is ignored, as are its sessions.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from agentic_operator.kube.resources import PROJECT_SETTINGS, ROLE_BINDINGS, Obj
from agentic_operator.projects import bindings
from agentic_operator.runtime.controller import Result
from agentic_operator.runtime.events import EventRecorder
from agentic_operator.sessions.model import PROJECT_SETTINGS_NAME
from agentic_operator.sessions.status import upsert_condition

log = logging.getLogger(__name__)


class Cache(Protocol):
    def get(self, key: str) -> Obj | None: ...


class ProjectReconciler:
    def __init__(
        self,
        client: ApiClient,
        *,
        namespaces: Cache,
        settings: Cache,
        bindings_in: Callable[[str], list[Obj]],
        recorder: EventRecorder,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.settings = settings
        self.bindings_in = bindings_in
        self.events = recorder
        self.clock = clock or RealClock()

    async def reconcile(self, namespace: str) -> Result | None:
        if self.namespaces.get(namespace) is None:
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
        if (ps.get("metadata") or {}).get("deletionTimestamp"):
            return None

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
            name = rb["metadata"]["name"]
            try:
                await self.client.delete(ROLE_BINDINGS, name, namespace)
            except NotFound:
                pass
            await self.client.create(ROLE_BINDINGS, rb, namespace)
        for name in plan.delete:
            try:
                await self.client.delete(ROLE_BINDINGS, name, namespace)
            except NotFound:
                pass

        problems = bindings.invalid_entries(ps)
        problems += [
            f"RoleBinding {n} exists and is not managed by the operator" for n in conflicts
        ]
        await self._write_status(ps, len(desired) - len(conflicts), problems)
        return None

    async def _write_status(self, ps: Obj, created: int, problems: list[str]) -> None:
        old = ps.get("status") or {}
        new = copy.deepcopy(old)
        new["groupBindingsCreated"] = max(0, created)
        if problems:
            cond = ("False", "InvalidGroupAccess", "; ".join(problems))
        else:
            cond = ("True", "BindingsReconciled", f"{created} group RoleBinding(s) in place")
        new["conditions"] = upsert_condition(
            new.get("conditions") or [], "Ready", *cond, self.clock.wall()
        )
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
        if problems and cond[0] != (_ready(old) or {}).get("status"):
            self.events.warning(ps, "InvalidGroupAccess", cond[2])


def _ready(status: Obj) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return None
