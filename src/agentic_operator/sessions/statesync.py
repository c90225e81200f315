"""The runner pod's helper containers: ``init-hydrate`` and the ``state-sync`` sidecar.

Both run the platform's state-sync image. ``init-hydrate`` (first init container) lays out the
workspace, restores the session's state (the runner's state directory, ``artifacts``,
``file-uploads``, git repo state) from the state store and clones the session's repositories and
workflow; ``state-sync`` uploads that state every minute and once more on SIGTERM. It is a native
sidecar (an init container with ``restartPolicy: Always``): it starts only once hydration has
finished (it mirrors local to remote, so starting it earlier would wipe the stored state), and it
does not keep the pod, hence the Job, alive once the runner has exited.

The state store's keys never appear in the pod spec: they are references into the runner token
Secret, which carries them when the operator has them (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``). Without keys both scripts run without a store (hydration still lays
out the workspace; the sidecar idles).

Both run as UID 1001 with no privileges, like the runner, although the image's own user is root:
that keeps the pod within Pod Security ``restricted``; the hydration script's ``chown`` is best
effort and the workspace is an emptyDir (writable by anyone in the pod) or the session's PVC.
"""

from __future__ import annotations

from typing import Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.agents import AgentSpec
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.envvars import append_absent, plain, secret_ref, string_items
from agentic_operator.sessions.model import (
    INIT_HYDRATE_CONTAINER,
    S3_ACCESS_KEY_ID_KEY,
    S3_SECRET_ACCESS_KEY_KEY,
    STATE_SYNC_CONTAINER,
    TOKEN_SECRET_KEY,
    token_secret_name,
)

HYDRATE_COMMAND: Final = "/usr/local/bin/hydrate.sh"
SYNC_COMMAND: Final = "/usr/local/bin/sync.sh"
SYNC_INTERVAL: Final = 60
MAX_SYNC_SIZE: Final = 1024**3
SIDECAR_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1000m", "memory": "1Gi"},
}
HELPER_UID: Final = 1001


def restricted_security() -> Obj:
    """No privilege escalation, no capabilities, a fixed non-root UID: every container of the
    runner pod (Pod Security ``restricted``)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": HELPER_UID,
    }


def helper_containers(
    session: Obj, cfg: SessionConfig, agent: AgentSpec, repos_env: list[Obj], mounts: list[Obj]
) -> list[Obj]:
    """The pod's ``initContainers``, in order: ``init-hydrate`` when the agent seeds its
    workspace (``seed.cloneRepos`` or ``seed.hydrateState``), then ``state-sync`` unless its
    persistence is ``none``. ``repos_env``: the runner's ``REPOS_JSON`` and
    ``ACTIVE_WORKFLOW_*`` entries, which hydration clones."""
    out: list[Obj] = []
    if agent.hydrate:
        env = hydrate_env(session, cfg, agent, repos_env)
        out.append(_helper(INIT_HYDRATE_CONTAINER, HYDRATE_COMMAND, cfg, agent, env, mounts))
    if agent.persist:
        sidecar = _helper(
            STATE_SYNC_CONTAINER, SYNC_COMMAND, cfg, agent, sync_env(session, cfg, agent), mounts
        )
        sidecar["restartPolicy"] = "Always"
        sidecar["resources"] = {k: dict(v) for k, v in SIDECAR_RESOURCES.items()}
        out.append(sidecar)
    return out


def _helper(
    name: str, command: str, cfg: SessionConfig, agent: AgentSpec, env: list[Obj], mounts: list[Obj]
) -> Obj:
    return {
        "name": name,
        "image": agent.state_sync_image or cfg.state_sync_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "command": [command],
        "env": env,
        "securityContext": restricted_security(),
        "volumeMounts": [dict(m) for m in mounts],
    }


def hydrate_env(
    session: Obj, cfg: SessionConfig, agent: AgentSpec, repos_env: list[Obj]
) -> list[Obj]:
    """Where the state lives, how to reach the backend (for git credentials) with the runner's
    token, what to clone; then the session's own variables where the name is not taken. The token
    is read once, at start: hydration is over long before it could expire."""
    name, namespace = _identity(session)
    env = [
        plain("SESSION_NAME", name),
        plain("NAMESPACE", namespace),
        *_store_env(session, cfg),
        plain("BACKEND_API_URL", cfg.backend_api_url),
        plain("PROJECT_NAME", namespace),
        *[dict(e) for e in repos_env],
        secret_ref("BOT_TOKEN", token_secret_name(session), TOKEN_SECRET_KEY, False),
        plain("RUNNER_STATE_DIR", agent.state_dir),
    ]
    append_absent(env, string_items((session.get("spec") or {}).get("environmentVariables")))
    return env


def sync_env(session: Obj, cfg: SessionConfig, agent: AgentSpec) -> list[Obj]:
    """Where the state lives and how often to save it; then the agent registry's variables and
    the session's own, each where the name is not taken."""
    name, namespace = _identity(session)
    store = _store_env(session, cfg)
    env = [
        plain("SESSION_NAME", name),
        plain("NAMESPACE", namespace),
        *store[:2],
        plain("SYNC_INTERVAL", str(SYNC_INTERVAL)),
        plain("MAX_SYNC_SIZE", str(MAX_SYNC_SIZE)),
        *store[2:],
        plain("RUNNER_STATE_DIR", agent.state_dir),
    ]
    append_absent(env, agent.env)
    append_absent(env, string_items((session.get("spec") or {}).get("environmentVariables")))
    return env


def _identity(session: Obj) -> tuple[str, str]:
    meta = session["metadata"]
    return str(meta["name"]), str(meta["namespace"])


def _store_env(session: Obj, cfg: SessionConfig) -> list[Obj]:
    """Endpoint and bucket, then (when configured) the keys, by reference into the token
    Secret."""
    env = [plain("S3_ENDPOINT", cfg.s3_endpoint), plain("S3_BUCKET", cfg.s3_bucket)]
    if cfg.s3_credentials:
        secret = token_secret_name(session)
        env.append(secret_ref("AWS_ACCESS_KEY_ID", secret, S3_ACCESS_KEY_ID_KEY, False))
        env.append(secret_ref("AWS_SECRET_ACCESS_KEY", secret, S3_SECRET_ACCESS_KEY_KEY, False))
    return env
