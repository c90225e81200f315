"""The runner Job and the runner's environment (the pod itself: :mod:`.pod`, its helper
containers: :mod:`.statesync`; the other objects a run owns: :mod:`.objects`).

Pure functions from (session, config, :class:`PodInputs`) to plain dicts. Names are deterministic
(see ``model``) and every object carries a controller ownerReference to the session, so deleting
the session garbage collects all of it, and an AlreadyExists on create can be checked against the
owner UID.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import pod
from agentic_operator.sessions.agents import DEFAULT_AGENT, AgentSpec
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.envvars import append_absent
from agentic_operator.sessions.envvars import plain as _plain
from agentic_operator.sessions.envvars import secret_ref as _secret_ref
from agentic_operator.sessions.model import (
    AGUI_TOKEN_KEY,
    ANN_FORCE_EXECUTE_PROMPT,
    ANN_PARENT_SESSION,
    ANN_RUN,
    GOOGLE_MCP_CREDENTIALS_DIR,
    LABEL_APP,
    LABEL_SESSION,
    LANGFUSE_SECRET,
    MLFLOW_SECRET,
    OAUTH_CLIENT_SECRET_KEY,
    RUNNER_APP,
    child_metadata,
    job_name,
    token_secret_name,
)

WORKSPACE_PATH: Final = "/workspace"
ARTIFACTS_DIR: Final = "artifacts"
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
MLFLOW_KEYS: Final = (
    "MLFLOW_TRACING_ENABLED",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_WORKSPACE",
    "OBSERVABILITY_BACKENDS",
)
PROTECTED_NAMES: Final = frozenset({"USE_VERTEX", "CLAUDE_CODE_USE_VERTEX"})
"""Plain variables a session may not override: whether the model is reached through Vertex is
the operator's setting (its credentials and secrets are set up for one mode only)."""


@dataclass(frozen=True)
class PodInputs:
    """What the runner pod depends on beyond the session and the operator's settings, read by the
    observer (caches and mounted files, never a request of its own)."""

    agent: AgentSpec = DEFAULT_AGENT
    """The session's agent registry entry (fallbacks applied)."""
    project_mcp_servers: Any = None
    """``spec.mcpServers`` of the namespace's ``projectsettings`` (from the cache)."""
    vertex_model_id: str = ""
    """The models manifest's ``vertexId`` for the session's model ("" when unknown)."""
    trusted_ca_bundle: bool = False
    """The namespace has a ``trusted-ca-bundle`` ConfigMap with ``ca-bundle.crt``."""


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


def build_runner_env(
    session: Obj, cfg: SessionConfig, *, run: int, inputs: PodInputs | None = None
) -> tuple[list[Obj], list[str]]:
    """The runner container's ``env`` and the user overrides that were refused.

    These are the runner's environment variables, in the order docs/sessions.md ("Runner
    environment") lists them; each helper below contributes one contiguous group of that list.
    The agent registry's ``container.env`` is appended where a name is not set yet.

    ``spec.environmentVariables`` come last: an entry replaces a plain ``value`` entry of the same
    name (or is appended) but never one with ``valueFrom`` (``AGUI_TOKEN``, ``LANGFUSE_*``,
    ``MLFLOW_*``) nor ``USE_VERTEX``/``CLAUDE_CODE_USE_VERTEX``: an env entry with both ``value``
    and ``valueFrom`` is rejected by the API server, and upstream's copy of that defect made the
    whole workload uncreatable. Refused names are returned so the reconciler can report them in an
    Event.
    """
    inputs = inputs or PodInputs()
    spec: Obj = session.get("spec") or {}
    env: list[Obj] = [
        *_identity_env(session, inputs.agent),
        *_integration_env(session, cfg, inputs),
        *_user_env(spec),
        *_llm_env(session, cfg, inputs),
        *_provider_env(cfg),
        *_continuation_env(session, run),
        *_repos_env(spec),
    ]
    append_absent(env, inputs.agent.env)
    skipped = _apply_overrides(env, spec.get("environmentVariables") or {})
    return env, skipped


def _identity_env(session: Obj, agent: AgentSpec) -> list[Obj]:
    """Which session this runner serves, in which project, where its workspace is, and the port
    and per-session token of its AG-UI server (every caller but ``/health`` must send it)."""
    meta = session["metadata"]
    name, namespace = str(meta["name"]), str(meta["namespace"])
    return [
        _plain("DEBUG", "true"),
        _plain("AGENTIC_SESSION_NAME", name),
        _plain("AGENTIC_SESSION_NAMESPACE", namespace),
        _plain("SESSION_ID", name),
        _plain("PROJECT_NAME", namespace),
        _plain("WORKSPACE_PATH", WORKSPACE_PATH),
        _plain("ARTIFACTS_DIR", ARTIFACTS_DIR),
        _plain("AGUI_PORT", str(agent.port)),
        _secret_ref("AGUI_TOKEN", token_secret_name(session), AGUI_TOKEN_KEY, False),
    ]


def _integration_env(session: Obj, cfg: SessionConfig, inputs: PodInputs) -> list[Obj]:
    """Google Workspace (only when the operator is configured for it) and the MCP servers: the
    session's own (``spec.mcpServers``) and its project's (the ``projectsettings`` object)."""
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
    if cfg.backend_public_url:
        env.append(_plain("GOOGLE_OAUTH_REDIRECT_URI", f"{cfg.backend_public_url}/oauth2callback"))
    if cfg.mcp_config_file:
        env.append(_plain("MCP_CONFIG_FILE", cfg.mcp_config_file))
    own = (session.get("spec") or {}).get("mcpServers")
    if own:
        env.append(_plain("CUSTOM_MCP_SERVERS", _json(own)))
    if inputs.project_mcp_servers:
        env.append(_plain("PROJECT_MCP_SERVERS", _json(inputs.project_mcp_servers)))
    return env


def _user_env(spec: Obj) -> list[Obj]:
    """Who started the session; each entry only when set."""
    user: Obj = spec.get("userContext") or {}
    env: list[Obj] = []
    if isinstance(user.get("userId"), str) and user["userId"]:
        env.append(_plain("USER_ID", user["userId"]))
    if isinstance(user.get("displayName"), str) and user["displayName"]:
        env.append(_plain("USER_NAME", user["displayName"]))
    return env


def _llm_env(session: Obj, cfg: SessionConfig, inputs: PodInputs) -> list[Obj]:
    """The first prompt, model settings (schema defaults when absent), the timeout, how to reach
    the backend, and the model's Vertex name when the models manifest knows it."""
    spec: Obj = session.get("spec") or {}
    llm: Obj = spec.get("llmSettings") or {}
    env: list[Obj] = []
    prompt = spec.get("initialPrompt")
    if isinstance(prompt, str) and prompt:
        env.append(_plain("INITIAL_PROMPT", prompt))
    env += [
        _plain("LLM_MODEL", session_model(session)),
        _plain(
            "LLM_TEMPERATURE", f"{_number(llm.get('temperature'), DEFAULT_LLM_TEMPERATURE):.2f}"
        ),
        _plain("LLM_MAX_TOKENS", str(int(_number(llm.get("maxTokens"), DEFAULT_LLM_MAX_TOKENS)))),
        _plain("USE_AGUI", "true"),
        _plain("TIMEOUT", str(runner_timeout(session))),
        _plain("BACKEND_API_URL", cfg.backend_api_url),
    ]
    if inputs.vertex_model_id:
        env.append(_plain("LLM_MODEL_VERTEX_ID", inputs.vertex_model_id))
    return env


def session_model(session: Obj) -> str:
    """``spec.llmSettings.model``, else the CRD's default."""
    llm: Obj = (session.get("spec") or {}).get("llmSettings") or {}
    return str(llm.get("model") or DEFAULT_LLM_MODEL)


def _provider_env(cfg: SessionConfig) -> list[Obj]:
    """Langfuse and MLflow tracing (optional secret refs into the copied Secrets) and whether the
    model is reached through Vertex (with the GCE metadata server ruled out, so Google's client
    libraries do not wait for one that a pod outside GCE does not have)."""
    env: list[Obj] = []
    if cfg.langfuse_enabled:
        env += [_secret_ref(k, LANGFUSE_SECRET, k, optional=True) for k in LANGFUSE_KEYS]
    if cfg.mlflow_enabled:
        env += [_secret_ref(k, MLFLOW_SECRET, k, optional=True) for k in MLFLOW_KEYS]
    if not cfg.use_vertex:
        return [*env, _plain("USE_VERTEX", "0"), _plain("CLAUDE_CODE_USE_VERTEX", "0")]
    return [
        *env,
        _plain("USE_VERTEX", "1"),
        _plain("CLAUDE_CODE_USE_VERTEX", "1"),
        _plain("CLOUD_ML_REGION", cfg.cloud_ml_region),
        _plain("ANTHROPIC_VERTEX_PROJECT_ID", cfg.vertex_project_id),
        _plain("GOOGLE_APPLICATION_CREDENTIALS", cfg.google_application_credentials),
        _plain("GCE_METADATA_HOST", "metadata.invalid"),
        _plain("GCE_METADATA_TIMEOUT", "1"),
    ]


def _continuation_env(session: Obj, run: int) -> list[Obj]:
    """What this run continues: a parent session, a restart (the runner then does not send the
    first prompt again), unless ``force-execute-prompt=true`` asks this run to execute
    ``spec.initialPrompt`` (a scheduled run's restart). Its API token is a file, not a variable
    (see :mod:`.pod`)."""
    env: list[Obj] = []
    parent = parent_session_id(session)
    if parent:
        env.append(_plain("PARENT_SESSION_ID", parent))
    ann = (session.get("metadata") or {}).get("annotations") or {}
    forced = ann.get(ANN_FORCE_EXECUTE_PROMPT) == "true"
    env.append(_plain("IS_RESUME", "true" if run > 1 and not forced else "false"))
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
    name is appended, and a ``valueFrom`` entry, a :data:`PROTECTED_NAMES` entry or a non-string
    name or value is refused.
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
        elif "valueFrom" in env[i] or var in PROTECTED_NAMES:
            skipped.append(var)
        else:
            env[i] = _plain(var, value)
    return skipped


def build_job(
    session: Obj, cfg: SessionConfig, *, run: int, inputs: PodInputs | None = None
) -> tuple[Obj, list[str]]:
    """The runner Job of run ``run`` (>= 1) and the refused ``environmentVariables`` names.

    ``backoffLimit: 0`` and ``podReplacementPolicy: Failed``: a runner failure is the session's
    failure, and there is never a second runner pod (a replacement would restart the agent).
    ``activeDeadlineSeconds`` only with ``MAX_SESSION_DURATION`` (off by default): sessions run
    until they are stopped, and ``spec.timeout`` is not a deadline (the platform writes 300 on
    every session). ``ttlSecondsAfterFinished`` garbage-collects a finished Job the operator did
    not get to. The state-sync helper is a native sidecar, so the Job completes with the runner.
    """
    if run < 1:
        raise ValueError(f"run must be >= 1, got {run}")
    inputs = inputs or PodInputs()
    name = str(session["metadata"]["name"])
    env, skipped = build_runner_env(session, cfg, run=run, inputs=inputs)
    labels = runner_labels(name)
    annotations = {ANN_RUN: str(run)}
    meta = child_metadata(session, job_name(name), dict(labels))
    meta["annotations"] = dict(annotations)
    repos = [
        e
        for e in _repos_env(session.get("spec") or {})
        if e["name"] == "REPOS_JSON" or e["name"].startswith("ACTIVE_WORKFLOW_")
    ]
    spec = pod.pod_spec(
        session, cfg, inputs.agent, env, repos_env=repos, trusted_ca=inputs.trusted_ca_bundle
    )
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
                "spec": spec,
            },
        },
    }
    if cfg.max_session_duration:
        job["spec"]["activeDeadlineSeconds"] = cfg.max_session_duration
    return job, skipped


def _number(value: Any, default: float) -> float:
    """A numeric spec value, or the schema default when absent or not a number (never raises)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _repos_json(repos: list[Any]) -> str:
    """``REPOS_JSON``: ``[{"url":..., "branch":...}]`` with branch defaulting to ``main``."""
    out = []
    for repo in repos:
        if isinstance(repo, dict) and isinstance(repo.get("url"), str):
            out.append({"url": repo["url"], "branch": repo.get("branch") or "main"})
    return json.dumps(out, separators=(",", ":"))
