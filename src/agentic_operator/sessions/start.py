"""What starting a run creates, as plan actions (phase-table row P9): pure, like :mod:`.decide`.

Order: the shared-secret copies, the runner identity and token (and the session's annotations
naming them), the workspace PVC and the Google OAuth placeholder, the namespace's runner
NetworkPolicy (:mod:`.netpol`), and last the Job. The AG-UI Service is the Job's dependent and is
made once the Job exists (row A14, :func:`.running.create_service`). Everything before the Job is
create-if-absent or a guarded replace, so a run interrupted half-way is finished by the next
reconcile without duplicates; the Job's deterministic name is the duplicate fence.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from agentic_operator.kube.resources import JOBS, PERSISTENT_VOLUME_CLAIMS, SECRETS, Obj
from agentic_operator.sessions import bounds, builders, model, objects
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    Action,
    Count,
    Create,
    EnsureIdentity,
    Event,
    Measure,
    PatchSession,
    Plan,
    ProvisionToken,
    Replace,
)
from agentic_operator.sessions.secrets import copy_plan
from agentic_operator.sessions.status import now_rfc3339, parse_time

UNBOUNDED_RUN_TOKEN = 2 * 86400
"""Token lifetime for runs without a ceiling: twice the default idle limit."""
TOKEN_MARGIN = 60
"""A token is minted again when it would expire less than this many seconds before the run could
end at the latest."""


def children(obs: Observation) -> list[Action]:
    """Everything the run's Job depends on, in creation order (needs ``obs.start``)."""
    assert obs.start is not None
    cfg, out = obs.cfg, list[Action]()
    if cfg.use_vertex:
        out += copy_shared(obs, obs.start.vertex_source, obs.start.vertex_target)
    if cfg.langfuse_enabled:
        # Optional: without the source the runner's LANGFUSE_* references stay empty.
        out += copy_shared(obs, obs.start.langfuse_source, obs.start.langfuse_target)
    if cfg.mlflow_enabled:
        # Optional too: the runner's MLFLOW_* references stay empty without it.
        out += copy_shared(obs, obs.start.mlflow_source, obs.start.mlflow_target)
    # Every run start makes the identity true: an identity of an earlier version gets today's
    # Role rules and the user's annotation.
    out.append(EnsureIdentity(on_error=lambda message: token_failed(obs, message)))
    token = token_action(obs)
    if token is not None:
        out.append(token)
    names = identity_annotations(obs)
    if names is not None:
        out.append(names)
    if cfg.workspace_pvc:
        out.append(Create(PERSISTENT_VOLUME_CLAIMS, objects.build_workspace_pvc(obs.session, cfg)))
    if cfg.google_oauth_client_id:
        # Filled in by the backend: an existing one is kept as it is.
        out.append(Create(SECRETS, objects.build_oauth_placeholder_secret(obs.session)))
    return out


def copy_shared(obs: Observation, source: Obj | None, target: Obj | None) -> list[Action]:
    """Copy a shared secret from the backend namespace (rules: :mod:`.secrets`)."""
    if source is None or obs.cfg.backend_namespace == obs.namespace:
        return []
    body = copy_plan(source, target, obs.session)
    if body is None:
        return []
    if target is None:
        # A copy made meanwhile (another session of the namespace) is read again next time and
        # this session added to its owners.
        return [Create(SECRETS, body, exists="stale")]
    return [Replace(SECRETS, body)]


def job(obs: Observation, on_error: Callable[[str], Plan]) -> tuple[Create, list[str]]:
    """The create of this run's Job, and the ``environmentVariables`` names it had to refuse."""
    body, skipped = builders.build_job(
        obs.session, obs.cfg, run=model.session_run(obs.session) or 1, inputs=pod_inputs(obs)
    )
    stamp = token_refreshed_at(obs)
    if stamp:
        # The Job carries when its token was minted, so that the refresh while it runs is decided
        # from the cache (the token Secret is not cached).
        body["metadata"].setdefault("annotations", {})[model.ANN_TOKEN_REFRESHED_AT] = stamp
    effects: tuple[Measure, ...] = ()
    started = parse_time((obs.session.get("status") or {}).get("startTime"))
    if started is not None:
        elapsed = max(0.0, (obs.now - started).total_seconds())
        effects = (Measure(m.POD_CREATION, (obs.namespace,), elapsed),)
    create = Create(JOBS, body, exists="stale", cache="jobs", then=effects, on_error=on_error)
    return create, skipped


def pod_inputs(obs: Observation) -> builders.PodInputs:
    """What the runner pod depends on beyond the session: from the start inputs and the cached
    ``projectsettings`` (its MCP servers)."""
    assert obs.start is not None
    project: Obj = (obs.project_settings or {}).get("spec") or {}
    return builders.PodInputs(
        agent=obs.start.agent,
        project_mcp_servers=project.get("mcpServers"),
        vertex_model_id=obs.start.vertex_model_id,
        trusted_ca_bundle=obs.start.trusted_ca_bundle,
    )


def token_lifetime(obs: Observation) -> int:
    """Seconds the runner token must live. The runner reads ``BOT_TOKEN`` once at start, so a
    token refreshed during the run would never reach it: with ``MAX_SESSION_DURATION`` the token
    outlives the longest possible run (plus the pending timeout and ten minutes); without a
    ceiling runs have no deadline, and the token lives :data:`UNBOUNDED_RUN_TOKEN` seconds (a run
    that stays active longer loses its access to the API; a restart mints a new token)."""
    bound = obs.cfg.max_session_duration or UNBOUNDED_RUN_TOKEN
    wanted = max(obs.cfg.token_lifetime, bound + obs.cfg.pending_timeout + bounds.TOKEN_RUN_MARGIN)
    # Never more than the TokenRequest API accepts (2^32 s), whatever the settings add up to.
    return bounds.token_expiration(wanted)


def token_action(obs: Observation) -> ProvisionToken | None:
    """Mint a token unless the session's Secret holds one that outlives this run and carries the
    operator's current ``GOOGLE_OAUTH_CLIENT_SECRET`` and S3 keys, and an ``agui-token`` (a
    Secret of an earlier version has none, and the pod refers to it)."""
    assert obs.start is not None
    secret, lifetime = obs.start.token_secret, token_lifetime(obs)
    if (
        secret is not None
        and model.is_owned_by(secret, obs.session)
        and secret_value(secret, model.OAUTH_CLIENT_SECRET_KEY)
        == obs.cfg.google_oauth_client_secret
        and objects.runner_keys_current(secret, obs.cfg)
    ):
        expires = parse_time(model.annotations(secret).get(model.ANN_TOKEN_EXPIRES_AT))
        if expires is not None and (expires - obs.now).total_seconds() > lifetime - TOKEN_MARGIN:
            return None
    return ProvisionToken(
        lifetime=lifetime, secret=secret, on_error=lambda message: token_failed(obs, message)
    )


def token_refreshed_at(obs: Observation) -> str:
    """When the token this run starts with was minted: now when P9 mints one, else the kept
    Secret's ``token-refreshed-at`` ("" when it has none)."""
    assert obs.start is not None
    if token_action(obs) is not None or obs.start.token_secret is None:
        return now_rfc3339(obs.now)
    return str(model.annotations(obs.start.token_secret).get(model.ANN_TOKEN_REFRESHED_AT) or "")


def identity_annotations(obs: Observation) -> PatchSession | None:
    """``runner-token-secret`` and ``runner-sa`` on the session (the backend checks a caller's
    ServiceAccount against the latter): a merge patch of those two keys only, when they differ,
    so concurrent edits of other annotations are never lost."""
    want = {
        model.ANN_RUNNER_TOKEN_SECRET: model.token_secret_name(obs.session),
        model.ANN_RUNNER_SA: model.runner_sa_name(obs.name),
    }
    changed = {k: v for k, v in want.items() if obs.annotations.get(k) != v}
    return PatchSession({"metadata": {"annotations": changed}}) if changed else None


def token_failed(obs: Observation, message: str) -> Plan:
    return Plan(
        "P9!",
        effects=(
            Count(m.SESSION_ERRORS, (obs.namespace, "Pending", "token_provision")),
            Event("Warning", model.REASON_TOKEN_PROVISION_FAILED, f"runner token: {message}"),
        ),
    )


def secret_value(secret: Obj, key: str) -> str:
    """A Secret's ``data`` value as text ("" when absent or not base64)."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""
