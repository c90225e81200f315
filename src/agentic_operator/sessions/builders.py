"""The runner Job and its environment (the other objects a run owns: :mod:`.objects`).

Pure functions from (session, config) to plain dicts. Names are deterministic (see ``model``) and
every object carries a controller ownerReference to the session, so deleting the session garbage
collects all of it, and an AlreadyExists on create can be checked against the owner UID.
"""

from __future__ import annotations

import json
from typing import Any, Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.model import (
    AGUI_PORT,
    AGUI_PORT_NAME,
    ANN_PARENT_SESSION,
    ANN_RUN,
    GOOGLE_MCP_CREDENTIALS_DIR,
    INTEGRATION_SECRETS,
    LABEL_APP,
    LABEL_SESSION,
    LANGFUSE_SECRET,
    OAUTH_CLIENT_SECRET_KEY,
    OAUTH_MOUNT,
    RUNNER_APP,
    RUNNER_CONTAINER,
    RUNNER_SECRETS,
    TOKEN_SECRET_KEY,
    VERTEX_SECRET,
    child_metadata,
    job_name,
    oauth_secret_name,
    pvc_name,
    token_secret_name,
)

WORKSPACE_PATH: Final = "/workspace"
ARTIFACTS_DIR: Final = "artifacts"
VERTEX_MOUNT: Final = "/app/vertex"
CLAUDE_STATE_MOUNT: Final = "/app/.claude"
RUNNER_UID: Final = 1001
DEFAULT_LLM_MODEL: Final = "claude-sonnet-4-6"
DEFAULT_TIMEOUT: Final = 300
"""``spec.timeout``'s default in the CRD, for sessions stored before it had one."""
DEFAULT_LLM_TEMPERATURE: Final = 0.7
DEFAULT_LLM_MAX_TOKENS: Final = 4000
LANGFUSE_KEYS: Final = (
    "LANGFUSE_ENABLED",
    "LANGFUSE_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
)


def runner_labels(session_name: str) -> dict[str, str]:
    """Labels of the Job and its pods; also the (run-independent) selector of the AG-UI Service."""
    return {LABEL_SESSION: session_name, LABEL_APP: RUNNER_APP}


def runner_timeout(session: Obj) -> int:
    """``TIMEOUT`` for the runner: ``spec.timeout`` when it is a positive integer, else the CRD's
    default (300). Nothing enforces it: a session runs until it is stopped."""
    t = (session.get("spec") or {}).get("timeout")
    if isinstance(t, int) and not isinstance(t, bool) and t > 0:
        return t
    return DEFAULT_TIMEOUT


def parent_session_id(session: Obj) -> str:
    """Continuation parent: the annotation, else ``spec.environmentVariables.PARENT_SESSION_ID``."""
    meta = session.get("metadata") or {}
    parent = (meta.get("annotations") or {}).get(ANN_PARENT_SESSION)
    if isinstance(parent, str) and parent:
        return parent
    env = (session.get("spec") or {}).get("environmentVariables") or {}
    value = env.get("PARENT_SESSION_ID") if isinstance(env, dict) else None
    return value if isinstance(value, str) else ""


def _plain(name: str, value: str) -> Obj:
    return {"name": name, "value": value}


def _secret_ref(name: str, secret: str, key: str, optional: bool) -> Obj:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}},
    }


def build_runner_env(session: Obj, cfg: SessionConfig, *, run: int) -> tuple[list[Obj], list[str]]:
    """The runner container's ``env`` and the user overrides that were refused.

    These are the runner's environment variables, in the order docs/sessions.md ("Runner
    environment") lists them; each helper below contributes one contiguous group of that list.

    ``spec.environmentVariables`` come last: an entry replaces a plain ``value`` entry of the same
    name (or is appended) but never one with ``valueFrom`` (``BOT_TOKEN``, ``LANGFUSE_*``): an env
    entry with both ``value`` and ``valueFrom`` is rejected by the API server, and upstream's copy
    of that defect made the whole workload uncreatable. Refused names are returned so the
    reconciler can report them in an Event.
    """
    spec: Obj = session.get("spec") or {}
    env: list[Obj] = [
        *_identity_env(session),
        *_google_oauth_env(session, cfg),
        *_user_env(spec),
        *_llm_env(session, cfg),
        *_provider_env(cfg),
        *_continuation_env(session, run),
        *_repos_env(spec),
    ]
    skipped = _apply_overrides(env, spec.get("environmentVariables") or {})
    return env, skipped


def _identity_env(session: Obj) -> list[Obj]:
    """Which session this runner serves, in which namespace, and where its workspace is."""
    meta = session["metadata"]
    spec: Obj = session.get("spec") or {}
    name = str(meta["name"])
    return [
        _plain("DEBUG", "true"),
        _plain("INTERACTIVE", _bool_str(spec.get("interactive", True))),
        _plain("AGENTIC_SESSION_NAME", name),
        _plain("SESSION_ID", name),
        _plain("AGENTIC_SESSION_NAMESPACE", str(meta["namespace"])),
        _plain("WORKSPACE_PATH", WORKSPACE_PATH),
        _plain("ARTIFACTS_DIR", ARTIFACTS_DIR),
    ]


def _google_oauth_env(session: Obj, cfg: SessionConfig) -> list[Obj]:
    """The Google Workspace MCP integration, only when the operator is configured for it."""
    env: list[Obj] = []
    if cfg.google_oauth_client_id:
        env.append(_plain("GOOGLE_MCP_CREDENTIALS_DIR", GOOGLE_MCP_CREDENTIALS_DIR))
        env.append(_plain("GOOGLE_OAUTH_CLIENT_ID", cfg.google_oauth_client_id))
    if cfg.google_oauth_client_secret:
        # From the session's token Secret, not a plain value: the Job spec is readable by
        # everyone who may read Jobs in the namespace.
        env.append(
            _secret_ref(
                "GOOGLE_OAUTH_CLIENT_SECRET",
                token_secret_name(session),
                OAUTH_CLIENT_SECRET_KEY,
                False,
            )
        )
    return env


def _user_env(spec: Obj) -> list[Obj]:
    """Who started the session and what they asked first; each entry only when set."""
    user: Obj = spec.get("userContext") or {}
    env: list[Obj] = []
    if isinstance(user.get("userId"), str) and user["userId"]:
        env.append(_plain("USER_ID", user["userId"]))
    if isinstance(user.get("displayName"), str) and user["displayName"]:
        env.append(_plain("USER_NAME", user["displayName"]))
    prompt = spec.get("initialPrompt")
    if isinstance(prompt, str) and prompt:
        env.append(_plain("INITIAL_PROMPT", prompt))
    return env


def _llm_env(session: Obj, cfg: SessionConfig) -> list[Obj]:
    """Model settings (schema defaults when absent), the timeout and how to reach the backend."""
    spec: Obj = session.get("spec") or {}
    llm: Obj = spec.get("llmSettings") or {}
    return [
        _plain("LLM_MODEL", str(llm.get("model") or DEFAULT_LLM_MODEL)),
        _plain(
            "LLM_TEMPERATURE", f"{_number(llm.get('temperature'), DEFAULT_LLM_TEMPERATURE):.2f}"
        ),
        _plain("LLM_MAX_TOKENS", str(int(_number(llm.get("maxTokens"), DEFAULT_LLM_MAX_TOKENS)))),
        _plain("TIMEOUT", str(runner_timeout(session))),
        _plain("AUTO_PUSH_ON_COMPLETE", _bool_str(spec.get("autoPushOnComplete", False))),
        _plain("USE_AGUI", "true"),
        _plain("BACKEND_API_URL", cfg.backend_api_url),
    ]


def _provider_env(cfg: SessionConfig) -> list[Obj]:
    """Langfuse tracing (optional secret refs) and whether the model is reached through Vertex."""
    env: list[Obj] = []
    if cfg.langfuse_enabled:
        env += [_secret_ref(k, LANGFUSE_SECRET, k, optional=True) for k in LANGFUSE_KEYS]
    if cfg.use_vertex:
        env += [
            _plain("CLAUDE_CODE_USE_VERTEX", "1"),
            _plain("CLOUD_ML_REGION", cfg.cloud_ml_region),
            _plain("ANTHROPIC_VERTEX_PROJECT_ID", cfg.vertex_project_id),
            _plain("GOOGLE_APPLICATION_CREDENTIALS", cfg.google_application_credentials),
        ]
    else:
        env.append(_plain("CLAUDE_CODE_USE_VERTEX", "0"))
    return env


def _continuation_env(session: Obj, run: int) -> list[Obj]:
    """What this run continues (parent session, a restart) and the token it talks back with."""
    env: list[Obj] = []
    parent = parent_session_id(session)
    if parent:
        env.append(_plain("PARENT_SESSION_ID", parent))
    env.append(_plain("IS_RESUME", "true" if run > 1 else "false"))
    env.append(_secret_ref("BOT_TOKEN", token_secret_name(session), TOKEN_SECRET_KEY, False))
    return env


def _repos_env(spec: Obj) -> list[Obj]:
    """The repositories to clone and the active workflow; each entry only when set."""
    env: list[Obj] = []
    repos = spec.get("repos")
    if isinstance(repos, list) and repos:
        env.append(_plain("REPOS_JSON", _repos_json(repos)))
    if isinstance(spec.get("mainRepoName"), str) and spec["mainRepoName"]:
        env.append(_plain("MAIN_REPO_NAME", spec["mainRepoName"]))
    if spec.get("mainRepoIndex") is not None:
        env.append(_plain("MAIN_REPO_INDEX", str(spec["mainRepoIndex"])))
    workflow: Obj = spec.get("activeWorkflow") or {}
    for key, var in (("gitUrl", "GIT_URL"), ("branch", "BRANCH"), ("path", "PATH")):
        if isinstance(workflow.get(key), str) and workflow[key]:
            env.append(_plain(f"ACTIVE_WORKFLOW_{var}", workflow[key]))
    return env


def _apply_overrides(env: list[Obj], overrides: Any) -> list[str]:
    """Apply ``spec.environmentVariables`` to ``env`` in place; return the refused names.

    A plain entry of the same name is replaced where it stands (so the order stays stable), a new
    name is appended, and a ``valueFrom`` entry or a non-string name or value is refused.
    """
    skipped: list[str] = []
    index = {e["name"]: i for i, e in enumerate(env)}
    for var, value in overrides.items() if isinstance(overrides, dict) else ():
        if not isinstance(value, str) or not isinstance(var, str):
            skipped.append(str(var))
            continue
        i = index.get(var)
        if i is None:
            index[var] = len(env)
            env.append(_plain(var, value))
        elif "valueFrom" in env[i]:
            skipped.append(var)
        else:
            env[i] = _plain(var, value)
    return skipped


def build_job(session: Obj, cfg: SessionConfig, *, run: int) -> tuple[Obj, list[str]]:
    """The runner Job of run ``run`` (>= 1) and the refused ``environmentVariables`` names.

    ``backoffLimit: 0`` and ``podReplacementPolicy: Failed``: a runner failure is the session's
    failure, and there is never a second runner pod (a replacement would restart the agent).
    ``activeDeadlineSeconds`` only with ``MAX_SESSION_DURATION`` (off by default): sessions run
    until they are stopped, and ``spec.timeout`` is not a deadline (the platform writes 300 on
    every session). ``ttlSecondsAfterFinished`` garbage-collects a finished Job the operator did
    not get to.
    """
    if run < 1:
        raise ValueError(f"run must be >= 1, got {run}")
    name = str(session["metadata"]["name"])
    env, skipped = build_runner_env(session, cfg, run=run)
    labels = runner_labels(name)
    annotations = {ANN_RUN: str(run)}
    volumes, mounts = _volumes(name, cfg)
    container = _runner_container(cfg, env, mounts)
    meta = child_metadata(session, job_name(name), dict(labels))
    meta["annotations"] = dict(annotations)
    job: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "podReplacementPolicy": "Failed",
            "ttlSecondsAfterFinished": cfg.job_ttl_seconds,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": _pod_spec(container, volumes),
            },
        },
    }
    if cfg.max_session_duration:
        job["spec"]["activeDeadlineSeconds"] = cfg.max_session_duration
    return job, skipped


def _pod_spec(container: Obj, volumes: list[Obj]) -> Obj:
    """No API token, no service-link variables, non-root with the default seccomp profile: the
    runner pod passes Pod Security ``restricted`` and cannot talk to the API as itself."""
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }


def _volumes(name: str, cfg: SessionConfig) -> tuple[list[Obj], list[Obj]]:
    """The pod's volumes and the runner's mounts of them, built together so each volume that is
    added (Vertex credentials, the Google OAuth Secret) comes with its mount.

    The workspace is the session's PVC when one is configured (it survives restarts), else a
    size-limited emptyDir; its ``.claude`` sub-directory is also the runner's state directory.
    """
    mounts: list[Obj] = [
        {"name": "workspace", "mountPath": WORKSPACE_PATH},
        {"name": "workspace", "mountPath": CLAUDE_STATE_MOUNT, "subPath": ".claude"},
    ]
    if cfg.workspace_pvc:
        workspace: Obj = {
            "name": "workspace",
            "persistentVolumeClaim": {"claimName": pvc_name(name)},
        }
    else:
        workspace = {"name": "workspace", "emptyDir": {"sizeLimit": cfg.workspace_size_limit}}
    volumes: list[Obj] = [workspace]
    if cfg.use_vertex:
        volumes.append({"name": "vertex", "secret": {"secretName": VERTEX_SECRET}})
        mounts.append({"name": "vertex", "mountPath": VERTEX_MOUNT, "readOnly": True})
    if cfg.google_oauth_client_id:
        volumes.append(
            {
                "name": "google-oauth",
                "secret": {"secretName": oauth_secret_name(name), "optional": True},
            }
        )
        mounts.append({"name": "google-oauth", "mountPath": OAUTH_MOUNT, "readOnly": True})
    return volumes, mounts


def _runner_container(cfg: SessionConfig, env: list[Obj], mounts: list[Obj]) -> Obj:
    """The runner container: its image, AG-UI port, env, resources, and a locked-down security
    context (no privilege escalation, no capabilities, a fixed non-root UID)."""
    env_from: list[Obj] = [{"secretRef": {"name": INTEGRATION_SECRETS, "optional": True}}]
    if not cfg.use_vertex:
        # Holds ANTHROPIC_API_KEY: without it the runner cannot work, so the pod must not start.
        env_from.append({"secretRef": {"name": RUNNER_SECRETS, "optional": False}})
    return {
        "name": RUNNER_CONTAINER,
        "image": cfg.runner_image,
        "imagePullPolicy": cfg.image_pull_policy,
        "ports": [{"name": AGUI_PORT_NAME, "containerPort": AGUI_PORT, "protocol": "TCP"}],
        "env": env,
        "envFrom": env_from,
        "resources": {
            "requests": {"cpu": cfg.runner_cpu_request, "memory": cfg.runner_memory_request},
            "limits": {"cpu": cfg.runner_cpu_limit, "memory": cfg.runner_memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
        },
        "volumeMounts": mounts,
    }


def _number(value: Any, default: float) -> float:
    """A numeric spec value, or the schema default when absent or not a number (never raises)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _bool_str(value: Any) -> str:
    return "true" if value is True else "false"


def _repos_json(repos: list[Any]) -> str:
    """``REPOS_JSON``: ``[{"url":..., "branch":...}]`` with branch defaulting to ``main``."""
    out = []
    for repo in repos:
        if isinstance(repo, dict) and isinstance(repo.get("url"), str):
            out.append({"url": repo["url"], "branch": repo.get("branch") or "main"})
    return json.dumps(out, separators=(",", ":"))
