"""The runner's credentials: its identity (ServiceAccount, Role, RoleBinding), the token Secret
(a TokenRequest's token, the AG-UI token, the state store's keys), the 45-minute refresh of the
token, and the AG-UI token read back for the operator's own runner calls. The API calls of the
``EnsureIdentity`` and ``ProvisionToken`` actions of :mod:`.apply`."""

from __future__ import annotations

import base64
import logging
import time

from agentic_operator.clock import Clock
from agentic_operator.kube.errors import AlreadyExists, KubeError, NotFound
from agentic_operator.kube.resources import (
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions import model, objects
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.plan import ProvisionToken
from agentic_operator.sessions.ports import SessionApi
from agentic_operator.sessions.start import secret_value
from agentic_operator.sessions.status import now_rfc3339

log = logging.getLogger("agentic_operator.sessions")


class RunnerCredentials:
    def __init__(self, api: SessionApi, cfg: SessionConfig, clock: Clock) -> None:
        self.api = api
        self.cfg = cfg
        self.clock = clock

    async def provision(self, session: Obj, action: ProvisionToken) -> None:
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

    async def refresh(self, session: Obj, action: ProvisionToken) -> None:
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
            await self.ensure_identity(session)
            review = await self._request_token(session, lifetime)
        status = review.get("status") or {}
        return str(status.get("token") or ""), str(status.get("expirationTimestamp") or "")

    async def ensure_identity(self, session: Obj) -> None:
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

    async def session_token(self, session: Obj) -> str | None:
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
