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

The cache may lag our own writes, so what a write returns is written through to it (only over the
version the write was based on, so a newer watch event is never replaced by an older result) and a
background delete removes the object from it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from agentic_operator.clock import Clock
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, KubeError, NotFound
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.runtime.controller import Result
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions import model, objects
from agentic_operator.sessions.config import SessionConfig
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
from agentic_operator.sessions.start import secret_value
from agentic_operator.sessions.status import now_rfc3339

log = logging.getLogger("agentic_operator.sessions")


class SessionApi(Protocol):
    """The API calls a session reconcile makes (:class:`~agentic_operator.kube.ApiClient` has
    them; tests use an in-memory fake)."""

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj: ...

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj: ...

    async def replace(
        self,
        res: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj: ...

    async def patch(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj: ...

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
    ) -> Any: ...

    async def request(self, method: str, path: str, *, body: Obj | None = None) -> Obj: ...


class Runner(Protocol):
    """Calls to a session's runner; a failure raises with a message that says what went wrong.
    ``token`` is sent as ``X-Ambient-Session-Token`` (omitted when None)."""

    async def post(
        self,
        namespace: str,
        session: str,
        path: str,
        body: Obj,
        *,
        token: str | None = None,
        port: int = model.AGUI_PORT,
    ) -> None: ...


class Recorder(Protocol):
    def normal(self, obj: Obj, reason: str, message: str) -> None: ...

    def warning(self, obj: Obj, reason: str, message: str) -> None: ...


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
                token = await self._session_token(session)
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
            if action.cache is not None:
                self._by_name[action.cache].replace_if(patched, None)
        elif isinstance(action, Delete):
            await self._delete(action)
        elif isinstance(action, EnsureIdentity):
            await self._guarded(session, action.on_error, self._ensure_identity(session))
        elif isinstance(action, ProvisionToken):
            mint = self._refresh_token if action.refresh else self._provision_token
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
        ns = action.body["metadata"]["namespace"]
        try:
            created = await self.api.create(action.resource, action.body, ns)
        except AlreadyExists:
            if action.exists == "ok":
                return
            await self._read_into_cache(action)
            raise Stop(Result(requeue_after=NEXT_STEP)) from None
        except ApiError as exc:
            if action.on_error is not None:
                await self._after_failure(session, action.on_error(exc.message))
            raise
        if action.cache is not None:
            self._by_name[action.cache].replace_if(created, None)
        self._effects(session, action.then)

    async def _replace(self, action: Replace) -> None:
        meta = action.body["metadata"]
        replaced = await self.api.replace(
            action.resource, meta["name"], action.body, meta["namespace"]
        )
        if action.cache is not None:
            self._by_name[action.cache].replace_if(replaced, None)

    async def _read_into_cache(self, action: Create) -> None:
        if action.cache is None:
            return
        meta = action.body["metadata"]
        try:
            live = await self.api.get(action.resource, meta["name"], meta["namespace"])
        except NotFound:
            return  # gone again already: the next decision sees that
        self._by_name[action.cache].replace_if(live, None)

    async def _delete(self, action: Delete) -> None:
        try:
            await self.api.delete(
                action.resource,
                action.name,
                action.namespace,
                propagation_policy=action.propagation,
                preconditions={"uid": action.uid},
            )
        except (NotFound, Conflict):
            pass  # already gone (or replaced by another object: the next reconcile looks again)
        if action.propagation == "Background" and action.cache is not None:
            self._by_name[action.cache].remove(f"{action.namespace}/{action.name}")

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

    async def _provision_token(self, session: Obj, action: ProvisionToken) -> None:
        """The TokenRequest, then the token Secret (created, or replaced as observed)."""
        started = time.perf_counter()
        ns = model.session_namespace(session)
        token, expires_at = await self._mint(session, action.lifetime)
        body = objects.build_token_secret(
            session,
            token,
            self.clock.wall(),
            google_oauth_client_secret=self.cfg.google_oauth_client_secret,
        )
        body["metadata"].setdefault("annotations", {})[model.ANN_TOKEN_EXPIRES_AT] = expires_at
        secret = action.secret
        objects.add_runner_keys(body, secret, self.cfg)
        if secret is None:
            try:
                await self.api.create(SECRETS, body, ns)
            except AlreadyExists:
                secret = await self.api.get(SECRETS, body["metadata"]["name"], ns)
                objects.add_runner_keys(body, secret, self.cfg)
        if secret is not None:
            body["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
            await self.api.replace(SECRETS, body["metadata"]["name"], body, ns)
        m.TOKEN_PROVISION.labels(ns).observe(time.perf_counter() - started)

    async def _refresh_token(self, session: Obj, action: ProvisionToken) -> None:
        """A new ``k8s-token`` merge-patched into the existing Secret: no other key changes (the
        runner's ``agui-token`` stays what its pod was given), and a Secret that is gone answers
        NotFound (an error: the run's pod needs the Secret it was made with)."""
        started = time.perf_counter()
        ns = model.session_namespace(session)
        token, expires_at = await self._mint(session, action.lifetime)
        patch = {
            "metadata": {
                "annotations": {
                    model.ANN_TOKEN_REFRESHED_AT: now_rfc3339(self.clock.wall()),
                    model.ANN_TOKEN_EXPIRES_AT: expires_at,
                }
            },
            "data": {model.TOKEN_SECRET_KEY: base64.b64encode(token.encode()).decode("ascii")},
        }
        await self.api.patch(SECRETS, model.token_secret_name(session), patch, ns)
        m.TOKEN_PROVISION.labels(ns).observe(time.perf_counter() - started)

    async def _mint(self, session: Obj, lifetime: int) -> tuple[str, str]:
        """``(token, expirationTimestamp)`` of a TokenRequest for the runner's ServiceAccount;
        one that answers NotFound (the ServiceAccount is gone) recreates the identity once."""
        try:
            review = await self._request_token(session, lifetime)
        except NotFound:
            await self._ensure_identity(session)
            review = await self._request_token(session, lifetime)
        status = review.get("status") or {}
        return str(status.get("token") or ""), str(status.get("expirationTimestamp") or "")

    async def _ensure_identity(self, session: Obj) -> None:
        """ServiceAccount, Role, RoleBinding: created, or converged (see ``EnsureIdentity``).
        Only what differs is written: the SA's ``created-by-user-id`` by a merge patch of that one
        annotation, the Role's rules by an update of the live Role carrying its resourceVersion."""
        sa = objects.build_runner_service_account(session)
        meta = sa["metadata"]
        if not await self._created(SERVICE_ACCOUNTS, sa):
            user = (meta.get("annotations") or {}).get(model.ANN_CREATED_BY_USER_ID)
            live = await self.api.get(SERVICE_ACCOUNTS, meta["name"], meta["namespace"])
            if user is not None and model.annotations(live).get(model.ANN_CREATED_BY_USER_ID) != (
                user
            ):
                patch = {"metadata": {"annotations": {model.ANN_CREATED_BY_USER_ID: user}}}
                await self.api.patch(SERVICE_ACCOUNTS, meta["name"], patch, meta["namespace"])
        role = objects.build_runner_role(session)
        meta = role["metadata"]
        if not await self._created(ROLES, role):
            live = await self.api.get(ROLES, meta["name"], meta["namespace"])
            if live.get("rules") != role["rules"]:
                await self.api.replace(
                    ROLES, meta["name"], {**live, "rules": role["rules"]}, meta["namespace"]
                )
        await self._created(ROLE_BINDINGS, objects.build_runner_role_binding(session))

    async def _created(self, res: Resource, body: Obj) -> bool:
        """Create ``body``; False when it exists already."""
        try:
            await self.api.create(res, body, body["metadata"]["namespace"])
        except AlreadyExists:
            return False
        return True

    async def _request_token(self, session: Obj, lifetime: int) -> Obj:
        """The TokenRequest, always for ``ambient-session-<s>``: the session's ``runner-sa``
        annotation is written by this operator and never read back, since anyone who may edit the
        session (its own runner among them) could otherwise name another ServiceAccount of the
        namespace and be handed that account's token."""
        ns, name = model.session_namespace(session), model.session_name(session)
        return await self.api.request(
            "POST",
            SERVICE_ACCOUNTS.path(ns, model.runner_sa_name(name), "token"),
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": lifetime},
            },
        )

    async def _session_token(self, session: Obj) -> str | None:
        """The session's AG-UI token (the token Secret's ``agui-token``), read once per batch of
        runner calls (they are rare: spec changes and the first workflow push), or None when it
        cannot be read: the calls then go without the header, as upstream's do, and a debug line
        says why (never the value)."""
        ns, name = model.session_namespace(session), model.token_secret_name(session)
        try:
            secret = await self.api.get(SECRETS, name, ns)
        except KubeError as exc:
            log.debug(
                "runner calls without %s: Secret %s unreadable (%s)",
                model.SESSION_TOKEN_HEADER,
                name,
                type(exc).__name__,
            )
            return None
        token = secret_value(secret, model.AGUI_TOKEN_KEY)
        if not token:
            log.debug(
                "runner calls without %s: Secret %s has no %s",
                model.SESSION_TOKEN_HEADER,
                name,
                model.AGUI_TOKEN_KEY,
            )
            return None
        return token

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
