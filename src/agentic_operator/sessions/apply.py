"""The executor: carries out a :class:`~.plan.Plan` through a narrow client protocol.

What each answer of the API server means here, and nowhere else:

* A status write or session patch answers **NotFound**: the session is gone; the reconcile ends
  (its children go with it through their ownerReferences). **NotFound** of anything else is an
  error, retried with backoff.
* **Conflict** (a 409 on a write carrying a resourceVersion): the state moved; the error goes to
  the controller, which retries with per-key backoff, and the next decision is made on the newer
  state. Never an overwrite.
* **AlreadyExists** on a create: fine for create-if-absent children; for the Job (and for a secret
  copy) it means the observation was stale: the live Job is read into the cache and the plan stops
  with an immediate requeue, so the next decision adopts or removes it.
* A delete that answers NotFound, or Conflict on its UID precondition, found the object gone.

A create whose object has reached the cache since the plan's observation (the namespace's
NetworkPolicy, made by another session's start) is taken as an AlreadyExists without a request.

The cache may lag our own writes, so what a write returns is written through to it (only over the
version the write was based on, so a newer watch event is never replaced by an older result) and a
background delete removes the object from it.
"""

from __future__ import annotations

import logging
from typing import Any

from agentic_operator.clock import Clock
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, NotFound
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    Obj,
)
from agentic_operator.runtime.controller import Result
from agentic_operator.sessions import model
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.credentials import RunnerCredentials
from agentic_operator.sessions.observe import Caches, WritableCache
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    Action,
    CallRunner,
    Count,
    Create,
    Delete,
    Effect,
    EnsureIdentity,
    Event,
    Measure,
    Patch,
    PatchSession,
    Plan,
    ProvisionToken,
    Replace,
    RunnerCall,
    WriteStatus,
)
from agentic_operator.sessions.ports import Recorder, Runner, SessionApi

log = logging.getLogger("agentic_operator.sessions")


class SessionGone(Exception):
    """The session answered NotFound to a write: nothing is left to reconcile."""


class Stop(Exception):
    """The plan cannot go on (its observation was stale); ``result`` is what to return."""

    def __init__(self, result: Result) -> None:
        self.result = result


class Executor:
    def __init__(
        self,
        api: SessionApi,
        caches: Caches,
        cfg: SessionConfig,
        recorder: Recorder,
        runner: Runner,
        clock: Clock,
    ) -> None:
        self.api = api
        self.caches = caches
        self.cfg = cfg
        self.recorder = recorder
        self.runner = runner
        self.clock = clock
        self.credentials = RunnerCredentials(api, cfg, clock)
        self._by_name: dict[str, WritableCache] = {
            "jobs": caches.jobs,
            "services": caches.services,
            "network_policies": caches.network_policies,
        }

    async def apply(self, session: Obj, plan: Plan) -> Result | None:
        """Carry out ``plan`` on ``session``; what the controller should do with the key next."""
        requeues: list[float] = []
        try:
            await self._apply(session, plan, requeues)
        except SessionGone:
            return None
        except Stop as stop:
            return stop.result
        return Result(requeue_after=min(requeues)) if requeues else None

    async def _apply(self, session: Obj, plan: Plan, requeues: list[float]) -> Obj:
        if plan.requeue_after:
            requeues.append(plan.requeue_after)
        for action in plan.actions:
            if isinstance(action, CallRunner):
                token = await self.credentials.session_token(session)
                errors = [await self._call(session, c, token, action.port) for c in action.calls]
                session = await self._apply(session, action.decide(errors), requeues)
            else:
                session = await self._one(session, action)
        self._effects(session, plan.effects)
        return session

    async def _one(self, session: Obj, action: Action) -> Obj:
        if isinstance(action, WriteStatus):
            updated = await self._session_write(session, action)
            self._effects(updated, action.then)
            return updated
        if isinstance(action, PatchSession):
            return await self._session_write(session, action)
        if isinstance(action, Create):
            await self._create(session, action)
        elif isinstance(action, Replace):
            await self._guarded(session, action.on_error, self._replace(action))
        elif isinstance(action, Patch):
            patched = await self.api.patch(
                action.resource, action.name, action.body, action.namespace
            )
            self._store_result(action.cache, patched)
        elif isinstance(action, Delete):
            await self._delete(action)
        elif isinstance(action, EnsureIdentity):
            await self._guarded(session, action.on_error, self.credentials.ensure_identity(session))
        elif isinstance(action, ProvisionToken):
            creds = self.credentials
            mint = creds.refresh if action.refresh else creds.provision
            await self._guarded(session, action.on_error, mint(session, action))
        return session

    async def _session_write(self, session: Obj, action: WriteStatus | PatchSession) -> Obj:
        meta = session["metadata"]
        name, ns, rv = meta["name"], meta["namespace"], meta.get("resourceVersion")
        try:
            if isinstance(action, WriteStatus):
                body = {**session, "status": action.status}
                updated = await self.api.replace(
                    AGENTIC_SESSIONS, name, body, ns, subresource="status"
                )
            else:
                patch = {**action.patch}
                patch["metadata"] = {**(patch.get("metadata") or {}), "resourceVersion": rv}
                updated = await self.api.patch(AGENTIC_SESSIONS, name, patch, ns)
        except NotFound:
            raise SessionGone from None
        self.caches.sessions.replace_if(updated, rv)
        if isinstance(action, WriteStatus):
            old = str((session.get("status") or {}).get("phase") or "")
            new = str(action.status.get("phase") or "")
            if old != new:
                log.info(
                    "phase %s -> %s",
                    old or "None",
                    new,
                    extra={"reason": _ready_reason(action.status), "run": action.status.get("run")},
                )
        return updated

    async def _create(self, session: Obj, action: Create) -> None:
        meta = action.body["metadata"]
        cache = self._by_name[action.cache] if action.cache is not None else None
        if cache is not None and cache.get(f"{meta['namespace']}/{meta['name']}") is not None:
            # Made (by another reconcile, or seen by the watch) since this plan's observation.
            self._exists(action)
            return
        try:
            created = await self.api.create(action.resource, action.body, meta["namespace"])
        except AlreadyExists:
            if action.exists == "stale":
                await self._read_into_cache(action)
            self._exists(action)
            return
        except ApiError as exc:
            if action.on_error is not None:
                await self._after_failure(session, action.on_error(exc.message))
            raise
        self._store_result(action.cache, created)
        self._effects(session, action.then)

    @staticmethod
    def _exists(action: Create) -> None:
        """What an existing object means for ``action``: the plan goes on (``"ok"``) or stops with
        an immediate requeue, to be decided again on what the cache now holds (``"stale"``)."""
        if action.exists == "stale":
            raise Stop(Result(requeue_after=NEXT_STEP))

    async def _replace(self, action: Replace) -> None:
        meta = action.body["metadata"]
        replaced = await self.api.replace(
            action.resource, meta["name"], action.body, meta["namespace"]
        )
        self._store_result(action.cache, replaced)

    async def _read_into_cache(self, action: Create) -> None:
        if action.cache is None:
            return
        meta = action.body["metadata"]
        try:
            live = await self.api.get(action.resource, meta["name"], meta["namespace"])
        except NotFound:
            return  # gone again already: the next decision sees that
        self._store_result(action.cache, live)

    async def _delete(self, action: Delete) -> None:
        """A background delete removes the object from the cache; a foreground one writes the
        answer (the object, now with its ``deletionTimestamp``) through, so the next reconcile,
        woken at once by this one's status write, does not see it undeleted and delete it again."""
        try:
            left = await self.api.delete(
                action.resource,
                action.name,
                action.namespace,
                propagation_policy=action.propagation,
                preconditions={"uid": action.uid},
            )
        except (NotFound, Conflict):
            left = None  # already gone (or replaced by another object: the next reconcile looks)
        if action.propagation == "Background" and action.cache is not None:
            self._by_name[action.cache].remove(f"{action.namespace}/{action.name}")
        elif isinstance(left, dict) and left.get("metadata"):
            self._store_result(action.cache, left)

    def _store_result(self, cache: str | None, obj: Obj) -> None:
        """What a write of a child answered, into the cache that watches it (when it has one)."""
        if cache is not None:
            self._by_name[cache].store_result(obj)

    async def _guarded(self, session: Obj, on_error: Any, work: Any) -> None:
        try:
            await work
        except ApiError as exc:
            if on_error is not None:
                await self._after_failure(session, on_error(exc.message))
            raise

    async def _after_failure(self, session: Obj, plan: Plan) -> None:
        """Record a failure (conditions, Events) before its error is retried; a failure to record
        it is not what gets retried, the original error is."""
        try:
            await self._apply(session, plan, [])
        except (ApiError, SessionGone, Stop):
            pass

    async def _call(
        self, session: Obj, call: RunnerCall, token: str | None, port: int
    ) -> str | None:
        ns, name = model.session_namespace(session), model.session_name(session)
        try:
            await self.runner.post(ns, name, call.path, call.body, token=token, port=port)
        except Exception as exc:  # the runner client raises one type; anything is a failed call
            return str(exc)
        return None

    def _effects(self, session: Obj, effects: tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, Event):
                if effect.type == "Warning":
                    self.recorder.warning(session, effect.reason, effect.message)
                else:
                    self.recorder.normal(session, effect.reason, effect.message)
            elif isinstance(effect, Count):
                effect.metric.labels(*effect.labels).inc()
            elif isinstance(effect, Measure):
                effect.metric.labels(*effect.labels).observe(effect.value)


def _ready_reason(status: Obj) -> str:
    for cond in status.get("conditions") or ():
        if cond.get("type") == model.COND_READY:
            return str(cond.get("reason") or "")
    return ""
