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

DEFAULT_RUNNER_IMAGE: Final = "quay.io/ambient_code/vteam_claude_runner:latest"
DEFAULT_RUNNER_ENDPOINT: Final = "http://session-{session}.{namespace}.svc.cluster.local:8001"
IMAGE_PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")

# Kubernetes resource quantity (suffixes: decimal SI, binary SI, decimal exponent).
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
_SECRET_FIELDS = frozenset({"google_oauth_client_secret"})


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
    use_vertex: bool = False
    """``CLAUDE_CODE_USE_VERTEX``: run the model through Vertex AI."""
    cloud_ml_region: str = ""
    vertex_project_id: str = ""
    google_application_credentials: str = ""
    langfuse_enabled: bool = False
    """``LANGFUSE_ENABLED``: pass Langfuse settings (from the copied secret) to runners."""
    google_oauth_client_id: str = ""
    google_oauth_client_secret: str = ""
    workspace_pvc: bool = False
    """``RUNNER_WORKSPACE_PVC``: workspace on a per-session PVC instead of an emptyDir."""
    workspace_size_limit: str = "10Gi"
    """sizeLimit of the emptyDir workspace."""
    workspace_pvc_size: str = "5Gi"
    """Requested size of the per-session workspace PVC."""
    runner_endpoint: str = DEFAULT_RUNNER_ENDPOINT
    """``RUNNER_ENDPOINT``: the runner's HTTP API, with ``{session}`` and ``{namespace}``; spec
    changes of Running sessions (repos, workflow) are POSTed there (see ``livespec``)."""
    runner_cpu_request: str = "100m"
    runner_memory_request: str = "256Mi"
    runner_cpu_limit: str = "2"
    runner_memory_limit: str = "4Gi"

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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SessionConfig:
        """Build the config from environment variables.

        Raises ``ValueError`` whose message starts with the offending variable's name.
        """
        namespace = _str(env, "NAMESPACE", "default")
        use_vertex = _bool(env, "CLAUDE_CODE_USE_VERTEX")
        vertex = {
            "CLOUD_ML_REGION": _str(env, "CLOUD_ML_REGION", ""),
            "ANTHROPIC_VERTEX_PROJECT_ID": _str(env, "ANTHROPIC_VERTEX_PROJECT_ID", ""),
            "GOOGLE_APPLICATION_CREDENTIALS": _str(env, "GOOGLE_APPLICATION_CREDENTIALS", ""),
        }
        if use_vertex:
            for name, value in vertex.items():
                if not value:
                    raise ValueError(f"{name}: required when CLAUDE_CODE_USE_VERTEX is enabled")
        pull = _str(env, "IMAGE_PULL_POLICY", "IfNotPresent")
        if pull not in IMAGE_PULL_POLICIES:
            raise ValueError(
                f"IMAGE_PULL_POLICY: expected one of {', '.join(IMAGE_PULL_POLICIES)}, got {pull!r}"
            )
        endpoint = _str(env, "RUNNER_ENDPOINT", DEFAULT_RUNNER_ENDPOINT)
        try:
            endpoint.format(session="s", namespace="ns")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"RUNNER_ENDPOINT: only {{session}} and {{namespace}} may be used: {exc!r}"
            ) from None
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"RUNNER_ENDPOINT: expected an http(s) URL, got {endpoint!r}")
        image = _str(env, "AMBIENT_CODE_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE)
        if not image or any(c.isspace() for c in image):
            raise ValueError(f"AMBIENT_CODE_RUNNER_IMAGE: not a valid image reference: {image!r}")
        return cls(
            runner_image=image,
            image_pull_policy=pull,
            operator_namespace=namespace,
            backend_namespace=_str(env, "BACKEND_NAMESPACE", namespace),
            default_inactivity_timeout=from_env(
                env, "DEFAULT_INACTIVITY_TIMEOUT", parse_seconds_or_zero, 86400
            ),
            max_session_duration=from_env(env, "MAX_SESSION_DURATION", parse_seconds_or_zero, 0),
            pending_timeout=_seconds(env, "PENDING_TIMEOUT", 600),
            use_vertex=use_vertex,
            cloud_ml_region=vertex["CLOUD_ML_REGION"],
            vertex_project_id=vertex["ANTHROPIC_VERTEX_PROJECT_ID"],
            google_application_credentials=vertex["GOOGLE_APPLICATION_CREDENTIALS"],
            langfuse_enabled=_bool(env, "LANGFUSE_ENABLED"),
            google_oauth_client_id=_str(env, "GOOGLE_OAUTH_CLIENT_ID", ""),
            google_oauth_client_secret=env.get("GOOGLE_OAUTH_CLIENT_SECRET", ""),
            workspace_pvc=_bool(env, "RUNNER_WORKSPACE_PVC"),
            runner_endpoint=endpoint,
            runner_cpu_request=_quantity(env, "RUNNER_CPU_REQUEST", "100m"),
            runner_memory_request=_quantity(env, "RUNNER_MEMORY_REQUEST", "256Mi"),
            runner_cpu_limit=_quantity(env, "RUNNER_CPU_LIMIT", "2"),
            runner_memory_limit=_quantity(env, "RUNNER_MEMORY_LIMIT", "4Gi"),
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


def _parse_quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(f"expected a Kubernetes quantity such as 500m or 2Gi, got {value!r}")
    return value


def _quantity(env: Mapping[str, str], name: str, default: str) -> str:
    return from_env(env, name, _parse_quantity, default)
