"""The runner pod template: volumes, the runner container, and the helper containers around it
(:mod:`.statesync`). Pure, like :mod:`.builders`, which wraps it in the Job.

Pod shape, in order: ``init-hydrate`` (init container), ``state-sync`` (native sidecar), the
runner ``ambient-code-runner``. What varies is the agent registry entry (:mod:`.agents`: image,
port, resources, state directory, persistence, workspace size, grace period) and the operator's
settings.
"""

from __future__ import annotations

from typing import Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.agents import AgentSpec
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.model import (
    AGUI_PORT_NAME,
    GOOGLE_MCP_CREDENTIALS_DIR,
    INTEGRATION_SECRETS,
    OAUTH_MOUNT,
    RUNNER_CONTAINER,
    RUNNER_SECRETS,
    RUNNER_TOKEN_FILE,
    RUNNER_TOKEN_MOUNT,
    RUNNER_TOKEN_VOLUME,
    TOKEN_SECRET_KEY,
    TRUSTED_CA_CONFIGMAP,
    TRUSTED_CA_KEY,
    VERTEX_SECRET,
    oauth_secret_name,
    pvc_name,
    token_secret_name,
)
from agentic_operator.sessions.statesync import helper_containers, restricted_security

WORKSPACE_MOUNT: Final = "/workspace"
APP_HOME: Final = "/app"
"""The runner image's home: its state directory is ``/app/<stateDir>``."""
VERTEX_MOUNT: Final = "/app/vertex"
TRUSTED_CA_MOUNT: Final = "/etc/pki/tls/certs/ca-bundle.crt"
HEALTH_PATH: Final = "/health"
READINESS: Final = {
    "initialDelaySeconds": 3,
    "periodSeconds": 5,
    "timeoutSeconds": 2,
    "failureThreshold": 3,
}
LIVENESS: Final = {
    "initialDelaySeconds": 20,
    "periodSeconds": 30,
    "timeoutSeconds": 5,
    "failureThreshold": 3,
}


def pod_spec(
    session: Obj,
    cfg: SessionConfig,
    agent: AgentSpec,
    env: list[Obj],
    *,
    repos_env: list[Obj],
    trusted_ca: bool = False,
) -> Obj:
    """The pod template's spec. No API token (``automountServiceAccountToken: false``), no
    service-link variables, the default seccomp profile and a non-root UID everywhere: the pod
    passes Pod Security ``restricted``. Only the runner gets its API token file, the Vertex
    credentials, the CA bundle and the Google OAuth Secret; the helpers share the workspace."""
    volumes, shared, runner_only = _volumes(session, cfg, agent, trusted_ca)
    spec: Obj = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": agent.grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(cfg),
    }
    init = helper_containers(session, cfg, agent, repos_env, shared)
    if init:
        spec["initContainers"] = init
    spec["containers"] = [runner_container(cfg, agent, env, [*shared, *runner_only])]
    spec["volumes"] = volumes
    return spec


def pod_security(cfg: SessionConfig) -> Obj:
    """``runAsNonRoot`` and ``RuntimeDefault`` seccomp for the whole pod; ``fsGroup`` only when
    ``POD_FSGROUP`` asks for one (volume ownership changed only when its root does not match)."""
    sc: Obj = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if cfg.pod_fs_group is not None:
        sc["fsGroup"] = cfg.pod_fs_group
        sc["fsGroupChangePolicy"] = "OnRootMismatch"
    return sc


def needs_workspace(cfg: SessionConfig, agent: AgentSpec) -> bool:
    """A workspace volume unless the agent neither keeps state nor clones anything (a PVC, when
    configured, is always mounted: it was asked for to keep the workspace)."""
    return cfg.workspace_pvc or agent.persist or agent.clone_repos


def _volumes(
    session: Obj, cfg: SessionConfig, agent: AgentSpec, trusted_ca: bool
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """The pod's volumes, the mounts every container shares (the workspace and its state
    sub-directory) and the runner's own mounts, built together so each volume comes with its
    mounts. The token file is a whole-directory Secret mount (not ``subPath``), so the kubelet
    updates it when the token Secret is refreshed."""
    name = str(session["metadata"]["name"])
    volumes: list[Obj] = []
    shared: list[Obj] = []
    if needs_workspace(cfg, agent):
        volumes.append(_workspace(name, cfg, agent))
        shared += [
            {"name": "workspace", "mountPath": WORKSPACE_MOUNT},
            {
                "name": "workspace",
                "mountPath": f"{APP_HOME}/{agent.state_dir}",
                "subPath": agent.state_dir,
            },
        ]
    token_items = [{"key": TOKEN_SECRET_KEY, "path": RUNNER_TOKEN_FILE}]
    token_secret = {"secretName": token_secret_name(session), "items": token_items}
    volumes.append({"name": RUNNER_TOKEN_VOLUME, "secret": token_secret})
    runner = [{"name": RUNNER_TOKEN_VOLUME, "mountPath": RUNNER_TOKEN_MOUNT, "readOnly": True}]
    extras = _optional_volumes(name, cfg, trusted_ca)
    volumes += [v for v, _ in extras]
    runner += [m for _, m in extras]
    return volumes, shared, runner


def _workspace(name: str, cfg: SessionConfig, agent: AgentSpec) -> Obj:
    """The session's PVC when one is configured (it survives restarts), else a size-limited
    emptyDir (the agent registry's ``workspaceSize``)."""
    if cfg.workspace_pvc:
        return {"name": "workspace", "persistentVolumeClaim": {"claimName": pvc_name(name)}}
    return {"name": "workspace", "emptyDir": {"sizeLimit": agent.workspace_size}}


def _optional_volumes(name: str, cfg: SessionConfig, trusted_ca: bool) -> list[tuple[Obj, Obj]]:
    """(volume, runner mount) pairs of what only some pods have."""
    out: list[tuple[Obj, Obj]] = []
    if cfg.use_vertex:
        out.append(
            (
                {"name": "vertex", "secret": {"secretName": VERTEX_SECRET}},
                {"name": "vertex", "mountPath": VERTEX_MOUNT, "readOnly": True},
            )
        )
    if trusted_ca:
        out.append(
            (
                {"name": "trusted-ca-bundle", "configMap": {"name": TRUSTED_CA_CONFIGMAP}},
                {
                    "name": "trusted-ca-bundle",
                    "mountPath": TRUSTED_CA_MOUNT,
                    "subPath": TRUSTED_CA_KEY,
                    "readOnly": True,
                },
            )
        )
    if cfg.google_oauth_client_id:
        out.append(
            (
                {
                    "name": "google-oauth",
                    "secret": {"secretName": oauth_secret_name(name), "optional": True},
                },
                {"name": "google-oauth", "mountPath": OAUTH_MOUNT, "readOnly": True},
            )
        )
    return out


def runner_container(
    cfg: SessionConfig, agent: AgentSpec, env: list[Obj], mounts: list[Obj]
) -> Obj:
    """The runner: image (registry, else ``AMBIENT_CODE_RUNNER_IMAGE``), the AG-UI port with its
    ``/health`` probes, env, resources, the restricted security context."""
    env_from: list[Obj] = [{"secretRef": {"name": INTEGRATION_SECRETS, "optional": True}}]
    if not cfg.use_vertex:
        # Holds ANTHROPIC_API_KEY: without it the runner cannot work, so the pod must not start.
        env_from.append({"secretRef": {"name": RUNNER_SECRETS, "optional": False}})
    health = {"httpGet": {"path": HEALTH_PATH, "port": agent.port}}
    container: Obj = {
        "name": RUNNER_CONTAINER,
        "image": agent.image or cfg.runner_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "ports": [{"name": AGUI_PORT_NAME, "containerPort": agent.port, "protocol": "TCP"}],
        "env": env,
        "envFrom": env_from,
        "resources": runner_resources(cfg, agent),
        # Readiness keeps the Service without endpoints until the server answers, so the
        # backend's first calls wait for it; liveness restarts nothing (restartPolicy Never):
        # a runner that stops answering fails the pod, and with it the session.
        "readinessProbe": {**health, **READINESS},
        "livenessProbe": {**health, **LIVENESS},
        "securityContext": restricted_security(),
        "volumeMounts": mounts,
    }
    if cfg.google_oauth_client_id and any(m["name"] == "workspace" for m in mounts):
        container["lifecycle"] = {"postStart": {"exec": {"command": _copy_oauth_credentials()}}}
    return container


def _copy_oauth_credentials() -> list[str]:
    """Copy the Google OAuth credentials (read-only Secret mount) to the writable directory the
    Google Workspace MCP server uses, ``GOOGLE_MCP_CREDENTIALS_DIR``. It always exits 0: a failed
    postStart hook would kill the runner, and an empty placeholder has nothing to copy."""
    script = (
        f"mkdir -p {GOOGLE_MCP_CREDENTIALS_DIR} && "
        f"cp -L {OAUTH_MOUNT}/* {GOOGLE_MCP_CREDENTIALS_DIR}/ 2>/dev/null; exit 0"
    )
    return ["sh", "-c", script]


def runner_resources(cfg: SessionConfig, agent: AgentSpec) -> Obj:
    """``RUNNER_*`` (default 500m/512Mi, limits 2/8Gi), each key overridden by the registry."""
    out: Obj = {
        "requests": {"cpu": cfg.runner_cpu_request, "memory": cfg.runner_memory_request},
        "limits": {"cpu": cfg.runner_cpu_limit, "memory": cfg.runner_memory_limit},
    }
    for section, values in agent.resources.items():
        out[section].update(values)
    return out
