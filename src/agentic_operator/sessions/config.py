"""Operator settings that shape sessions: runner image, timeouts, Vertex/Langfuse, resources.

Read once from the environment at startup (:meth:`SessionConfig.from_env`) and passed to the
builders and the reconciler as one immutable value. A bad value is a startup error that names the
variable, never a surprise in the middle of a reconcile. Booleans and seconds go through the
parsers the command line flags use (:mod:`agentic_operator.envparse`), so every flag and variable
accepts the same spellings. Every variable is documented in ``docs/sessions.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from agentic_operator.envparse import (
    from_env,
    parse_bool,
    parse_positive_seconds,
    parse_seconds_or_zero,
)
from agentic_operator.sessions import bounds

DEFAULT_RUNNER_IMAGE: Final = "quay.io/ambient_code/vteam_claude_runner:latest"
DEFAULT_STATE_SYNC_IMAGE: Final = "quay.io/ambient_code/vteam_state_sync:latest"
DEFAULT_S3_ENDPOINT: Final = "https://s3.amazonaws.com"
DEFAULT_S3_BUCKET: Final = "ambient-sessions"
DEFAULT_AGENT_REGISTRY_PATH: Final = "/config/registry/agent-registry.json"
DEFAULT_MODELS_MANIFEST_PATH: Final = "/config/models/models.json"
DEFAULT_RUNNER_ENDPOINT: Final = "http://session-{session}.{namespace}.svc.cluster.local:{port}"
IMAGE_PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")

# Kubernetes resource quantity (suffixes: decimal SI, binary SI, decimal exponent).
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
_SECRET_FIELDS = frozenset(
    {"google_oauth_client_secret", "s3_access_key_id", "s3_secret_access_key"}
)


@dataclass(frozen=True)
class SessionConfig:
    """Everything the session builders and the reconciler need from the operator's environment."""

    runner_image: str = DEFAULT_RUNNER_IMAGE
    """``AMBIENT_CODE_RUNNER_IMAGE``: image of the ``ambient-code-runner`` container."""
    image_pull_policy: str = "IfNotPresent"
    """``IMAGE_PULL_POLICY``: Always | IfNotPresent | Never."""
    operator_namespace: str = "default"
    """``NAMESPACE``: where the operator runs (Vertex preflight, leader-election Lease)."""
    backend_namespace: str = "default"
    """``BACKEND_NAMESPACE`` (default: NAMESPACE): backend Service host, shared secrets' source."""
    default_inactivity_timeout: int = 86400
    """``DEFAULT_INACTIVITY_TIMEOUT``: seconds a Running session may be idle before the operator
    stops it, when neither the session (``spec.inactivityTimeout``) nor its project
    (``ProjectSettings.spec.inactivityTimeoutSeconds``) says; 0 disables the idle auto-stop."""
    max_session_duration: int = 0
    """``MAX_SESSION_DURATION``: a hard ceiling on a run, in seconds (the Job's
    ``activeDeadlineSeconds``: a run that reaches it fails with ``Timeout``); 0, the default, sets
    none. ``spec.timeout`` is not a deadline: it only reaches the runner as ``TIMEOUT``."""
    pending_timeout: int = 600
    """``PENDING_TIMEOUT``: a session in Pending/Creating whose runner has not started after this
    many seconds is Failed with reason ``PendingTimeout`` (e.g. a missing runner secret)."""
    job_ttl_seconds: int = 600
    """Job ``ttlSecondsAfterFinished``: garbage-collects finished Jobs if the operator is down."""
    token_lifetime: int = 3600
    """Minimum ``expirationSeconds`` of the runner's TokenRequest; the reconciler asks for at least
    the run's deadline plus the pending timeout, and mints again when a run starts that would
    outlive the current token."""
    token_refresh_interval: int = 2700
    """``RUNNER_TOKEN_REFRESH_INTERVAL``: seconds after which a Running session's runner token
    (the token Secret's ``k8s-token``) is minted again; less than ``token_lifetime``."""
    use_vertex: bool = False
    """``USE_VERTEX`` (else the older ``CLAUDE_CODE_USE_VERTEX``): run the model through Vertex
    AI."""
    cloud_ml_region: str = ""
    vertex_project_id: str = ""
    google_application_credentials: str = ""
    langfuse_enabled: bool = False
    """``LANGFUSE_ENABLED``: pass Langfuse settings (from the copied secret) to runners."""
    mlflow_enabled: bool = False
    """``MLFLOW_TRACING_ENABLED``: copy ``ambient-admin-mlflow-observability-secret`` and pass its
    ``MLFLOW_*`` keys to runners (optional references)."""
    google_oauth_client_id: str = ""
    google_oauth_client_secret: str = ""
    backend_public_url: str = ""
    """``BACKEND_PUBLIC_URL``: the backend's public URL; runners get
    ``GOOGLE_OAUTH_REDIRECT_URI=<url>/oauth2callback``."""
    mcp_config_file: str = ""
    """``MCP_CONFIG_FILE``: passed to runners when set."""
    state_sync_image: str = DEFAULT_STATE_SYNC_IMAGE
    """``STATE_SYNC_IMAGE``: image of ``init-hydrate`` and ``state-sync`` (the agent registry's
    ``sandbox.stateSyncImage`` wins)."""
    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_bucket: str = DEFAULT_S3_BUCKET
    s3_access_key_id: str = ""
    """``AWS_ACCESS_KEY_ID``: with ``AWS_SECRET_ACCESS_KEY``, the session state store's
    credentials; they reach the helper containers through the runner token Secret."""
    s3_secret_access_key: str = ""
    pod_fs_group: int | None = None
    """``POD_FSGROUP``: the runner pod's ``fsGroup`` (none by default)."""
    agent_registry_path: str = DEFAULT_AGENT_REGISTRY_PATH
    """``AGENT_REGISTRY_PATH``: the agent registry file (ConfigMap ``ambient-agent-registry``)."""
    models_manifest_path: str = DEFAULT_MODELS_MANIFEST_PATH
    """``MODELS_MANIFEST_PATH``: the models manifest (``LLM_MODEL_VERTEX_ID``)."""
    workspace_pvc: bool = False
    """``RUNNER_WORKSPACE_PVC``: workspace on a per-session PVC instead of an emptyDir."""
    workspace_size_limit: str = "10Gi"
    """sizeLimit of the emptyDir workspace."""
    workspace_pvc_size: str = "5Gi"
    """Requested size of the per-session workspace PVC."""
    runner_endpoint: str = DEFAULT_RUNNER_ENDPOINT
    """``RUNNER_ENDPOINT``: the runner's HTTP API, with ``{session}``, ``{namespace}`` and
    ``{port}`` (the AG-UI Service's ``agui`` port); spec changes of Running sessions (repos,
    workflow) are POSTed there (see ``livespec``)."""
    runner_cpu_request: str = "500m"
    runner_memory_request: str = "512Mi"
    runner_cpu_limit: str = "2"
    runner_memory_limit: str = "8Gi"
    """``RUNNER_*``: the runner's resources unless its agent registry entry sets them."""

    def __repr__(self) -> str:
        """Like the dataclass repr, with secret values masked so logging the config is safe."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                parts.append(f"{f.name}={'***' if value else ''!r}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"SessionConfig({', '.join(parts)})"

    __str__ = __repr__

    @property
    def backend_api_url(self) -> str:
        return f"http://backend-service.{self.backend_namespace}.svc.cluster.local:8080/api"

    @property
    def s3_credentials(self) -> bool:
        """Both S3 keys are set: the helper containers get them (from the token Secret)."""
        return bool(self.s3_access_key_id and self.s3_secret_access_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SessionConfig:
        """Build the config from environment variables.

        Raises ``ValueError`` whose message starts with the offending variable's name.
        """
        namespace = _str(env, "NAMESPACE", "default")
        use_vertex = _vertex(env)
        vertex = _vertex_settings(env, use_vertex)
        s3_keys = _s3_keys(env)
        return cls(
            runner_image=_image(env, "AMBIENT_CODE_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE),
            image_pull_policy=_pull_policy(env),
            operator_namespace=namespace,
            backend_namespace=_str(env, "BACKEND_NAMESPACE", namespace),
            default_inactivity_timeout=_at_most(
                from_env(env, "DEFAULT_INACTIVITY_TIMEOUT", parse_seconds_or_zero, 86400),
                "DEFAULT_INACTIVITY_TIMEOUT",
                bounds.MAX_SECONDS,
            ),
            max_session_duration=_max_session_duration(env),
            pending_timeout=_pending_timeout(env),
            token_refresh_interval=_token_refresh_interval(env),
            use_vertex=use_vertex,
            cloud_ml_region=vertex["CLOUD_ML_REGION"],
            vertex_project_id=vertex["ANTHROPIC_VERTEX_PROJECT_ID"],
            google_application_credentials=vertex["GOOGLE_APPLICATION_CREDENTIALS"],
            langfuse_enabled=_bool(env, "LANGFUSE_ENABLED"),
            mlflow_enabled=_bool(env, "MLFLOW_TRACING_ENABLED"),
            google_oauth_client_id=_str(env, "GOOGLE_OAUTH_CLIENT_ID", ""),
            google_oauth_client_secret=env.get("GOOGLE_OAUTH_CLIENT_SECRET", ""),
            backend_public_url=from_env(env, "BACKEND_PUBLIC_URL", _parse_url, ""),
            mcp_config_file=_str(env, "MCP_CONFIG_FILE", ""),
            state_sync_image=_image(env, "STATE_SYNC_IMAGE", DEFAULT_STATE_SYNC_IMAGE),
            s3_endpoint=from_env(env, "S3_ENDPOINT", _parse_url, DEFAULT_S3_ENDPOINT),
            s3_bucket=_str(env, "S3_BUCKET", DEFAULT_S3_BUCKET),
            s3_access_key_id=s3_keys[0],
            s3_secret_access_key=s3_keys[1],
            pod_fs_group=from_env(env, "POD_FSGROUP", _parse_group, None),
            agent_registry_path=_str(env, "AGENT_REGISTRY_PATH", DEFAULT_AGENT_REGISTRY_PATH),
            models_manifest_path=_str(env, "MODELS_MANIFEST_PATH", DEFAULT_MODELS_MANIFEST_PATH),
            workspace_pvc=_bool(env, "RUNNER_WORKSPACE_PVC"),
            runner_endpoint=_runner_endpoint(env),
            runner_cpu_request=_quantity(env, "RUNNER_CPU_REQUEST", "500m"),
            runner_memory_request=_quantity(env, "RUNNER_MEMORY_REQUEST", "512Mi"),
            runner_cpu_limit=_quantity(env, "RUNNER_CPU_LIMIT", "2"),
            runner_memory_limit=_quantity(env, "RUNNER_MEMORY_LIMIT", "8Gi"),
        )


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    """Stripped value; unset or blank means the default (like upstream's ``os.Getenv`` checks)."""
    value = env.get(name, "").strip()
    return value or default


def _bool(env: Mapping[str, str], name: str) -> bool:
    """Unset or blank is false; the spellings are :func:`agentic_operator.envparse.parse_bool`'s."""
    return from_env(env, name, parse_bool, False)


def _seconds(env: Mapping[str, str], name: str, default: int) -> int:
    return from_env(env, name, parse_positive_seconds, default)


def _at_most(value: int, name: str, limit: int, why: str = "") -> int:
    if value > limit:
        raise ValueError(f"{name}: at most {limit}{why}, got {value}")
    return value


def _pending_timeout(env: Mapping[str, str]) -> int:
    return _at_most(_seconds(env, "PENDING_TIMEOUT", 600), "PENDING_TIMEOUT", bounds.MAX_SECONDS)


def _max_session_duration(env: Mapping[str, str]) -> int:
    """The runner token must outlive the longest run plus ``PENDING_TIMEOUT`` and a margin, and
    a TokenRequest may ask for at most 2^32 s: a longer ceiling could not be honoured."""
    value = from_env(env, "MAX_SESSION_DURATION", parse_seconds_or_zero, 0)
    limit = bounds.max_session_duration(_pending_timeout(env))
    why = (
        " (plus PENDING_TIMEOUT and 600 s it is the runner token's lifetime, and a TokenRequest"
        " may ask for at most 2^32 s)"
    )
    return _at_most(value, "MAX_SESSION_DURATION", limit, why)


def _vertex_settings(env: Mapping[str, str], use_vertex: bool) -> dict[str, str]:
    """The three Vertex variables, each required when Vertex is on."""
    vertex = {
        name: _str(env, name, "")
        for name in (
            "CLOUD_ML_REGION",
            "ANTHROPIC_VERTEX_PROJECT_ID",
            "GOOGLE_APPLICATION_CREDENTIALS",
        )
    }
    if use_vertex:
        for name, value in vertex.items():
            if not value:
                raise ValueError(f"{name}: required when USE_VERTEX is enabled")
    return vertex


def _pull_policy(env: Mapping[str, str]) -> str:
    pull = _str(env, "IMAGE_PULL_POLICY", "IfNotPresent")
    if pull not in IMAGE_PULL_POLICIES:
        raise ValueError(
            f"IMAGE_PULL_POLICY: expected one of {', '.join(IMAGE_PULL_POLICIES)}, got {pull!r}"
        )
    return pull


def _token_refresh_interval(env: Mapping[str, str]) -> int:
    value = _seconds(env, "RUNNER_TOKEN_REFRESH_INTERVAL", 2700)
    if value >= SessionConfig.token_lifetime:
        raise ValueError(
            f"RUNNER_TOKEN_REFRESH_INTERVAL: must be less than the token lifetime "
            f"({SessionConfig.token_lifetime} s), got {value}"
        )
    return value


def _runner_endpoint(env: Mapping[str, str]) -> str:
    endpoint = _str(env, "RUNNER_ENDPOINT", DEFAULT_RUNNER_ENDPOINT)
    try:
        endpoint.format(session="s", namespace="ns", port=8001)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"RUNNER_ENDPOINT: only {{session}}, {{namespace}} and {{port}} may be used: {exc!r}"
        ) from None
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"RUNNER_ENDPOINT: expected an http(s) URL, got {endpoint!r}")
    return endpoint


def _vertex(env: Mapping[str, str]) -> bool:
    """``USE_VERTEX`` when set, else the older ``CLAUDE_CODE_USE_VERTEX`` (the platform still
    accepts both names; the first one set decides)."""
    if env.get("USE_VERTEX", "").strip():
        return _bool(env, "USE_VERTEX")
    return _bool(env, "CLAUDE_CODE_USE_VERTEX")


def _image(env: Mapping[str, str], name: str, default: str) -> str:
    image = _str(env, name, default)
    if any(c.isspace() for c in image):
        raise ValueError(f"{name}: not a valid image reference: {image!r}")
    return image


def _parse_url(value: str) -> str:
    """An http(s) URL without a trailing slash (paths are appended to it)."""
    url = value.strip()
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return url.rstrip("/")


def _parse_group(value: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"expected a group ID (a whole number >= 0), got {value!r}")
    return int(text)


def _s3_keys(env: Mapping[str, str]) -> tuple[str, str]:
    """The session state store's two keys, set together or not at all; taken as written (a
    secret is never stripped or echoed in a message)."""
    key_id = env.get("AWS_ACCESS_KEY_ID", "")
    secret = env.get("AWS_SECRET_ACCESS_KEY", "")
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        other = "AWS_ACCESS_KEY_ID" if key_id else "AWS_SECRET_ACCESS_KEY"
        raise ValueError(f"{missing}: required when {other} is set")
    return key_id, secret


def _parse_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"expected a Kubernetes quantity such as 500m or 2Gi, got {value!r}")
    return value


def _quantity(env: Mapping[str, str], name: str, default: str) -> str:
    return from_env(env, name, _parse_quantity, default)
