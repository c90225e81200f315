"""SessionConfig.from_env: defaults, every variable, and every rejected value."""

from __future__ import annotations

import re

import pytest

from agentic_operator.sessions.config import DEFAULT_RUNNER_IMAGE, SessionConfig

VERTEX_ON = {
    "CLAUDE_CODE_USE_VERTEX": "1",
    "CLOUD_ML_REGION": "us-east5",
    "ANTHROPIC_VERTEX_PROJECT_ID": "proj",
    "GOOGLE_APPLICATION_CREDENTIALS": "/app/vertex/key.json",
}


def test_defaults() -> None:
    cfg = SessionConfig.from_env({})
    assert cfg == SessionConfig()
    assert cfg.runner_image == DEFAULT_RUNNER_IMAGE
    assert cfg.image_pull_policy == "IfNotPresent"
    assert cfg.operator_namespace == "default"
    assert cfg.backend_namespace == "default"
    assert (cfg.pending_timeout, cfg.job_ttl_seconds) == (600, 600)
    assert (cfg.default_inactivity_timeout, cfg.max_session_duration) == (86400, 0)
    assert cfg.token_lifetime == 3600
    assert not cfg.use_vertex
    assert not cfg.langfuse_enabled
    assert not cfg.workspace_pvc
    assert (cfg.runner_cpu_request, cfg.runner_memory_request) == ("500m", "512Mi")
    assert (cfg.runner_cpu_limit, cfg.runner_memory_limit) == ("2", "8Gi")
    assert cfg.state_sync_image == "quay.io/ambient_code/vteam_state_sync:latest"
    assert (cfg.s3_endpoint, cfg.s3_bucket) == ("https://s3.amazonaws.com", "ambient-sessions")
    assert not cfg.s3_credentials
    assert cfg.pod_fs_group is None
    assert cfg.agent_registry_path == "/config/registry/agent-registry.json"
    assert cfg.models_manifest_path == "/config/models/models.json"
    assert (cfg.backend_public_url, cfg.mcp_config_file, cfg.mlflow_enabled) == ("", "", False)
    assert cfg.backend_api_url == "http://backend-service.default.svc.cluster.local:8080/api"


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"AMBIENT_CODE_RUNNER_IMAGE": "reg/runner:1"}, "runner_image", "reg/runner:1"),
        ({"IMAGE_PULL_POLICY": "Always"}, "image_pull_policy", "Always"),
        ({"IMAGE_PULL_POLICY": "Never"}, "image_pull_policy", "Never"),
        ({"NAMESPACE": "ops"}, "operator_namespace", "ops"),
        ({"NAMESPACE": "ops"}, "backend_namespace", "ops"),
        ({"NAMESPACE": "ops", "BACKEND_NAMESPACE": "be"}, "backend_namespace", "be"),
        ({"BACKEND_NAMESPACE": "be"}, "operator_namespace", "default"),
        ({"NAMESPACE": "  "}, "operator_namespace", "default"),
        ({"DEFAULT_INACTIVITY_TIMEOUT": "60"}, "default_inactivity_timeout", 60),
        ({"DEFAULT_INACTIVITY_TIMEOUT": " 0 "}, "default_inactivity_timeout", 0),
        ({"MAX_SESSION_DURATION": "7200"}, "max_session_duration", 7200),
        ({"MAX_SESSION_DURATION": "0"}, "max_session_duration", 0),
        ({"PENDING_TIMEOUT": "30"}, "pending_timeout", 30),
        ({"LANGFUSE_ENABLED": "true"}, "langfuse_enabled", True),
        ({"LANGFUSE_ENABLED": "0"}, "langfuse_enabled", False),
        ({"LANGFUSE_ENABLED": "False"}, "langfuse_enabled", False),
        ({"RUNNER_WORKSPACE_PVC": "yes"}, "workspace_pvc", True),
        ({"CLAUDE_CODE_USE_VERTEX": "0"}, "use_vertex", False),
        ({"GOOGLE_OAUTH_CLIENT_ID": "cid"}, "google_oauth_client_id", "cid"),
        ({"GOOGLE_OAUTH_CLIENT_SECRET": "s3cr3t"}, "google_oauth_client_secret", "s3cr3t"),
        ({"RUNNER_CPU_REQUEST": "250m"}, "runner_cpu_request", "250m"),
        ({"RUNNER_MEMORY_LIMIT": "8Gi"}, "runner_memory_limit", "8Gi"),
        ({"RUNNER_CPU_LIMIT": "1.5"}, "runner_cpu_limit", "1.5"),
        (VERTEX_ON, "use_vertex", True),
        ({**VERTEX_ON, "CLAUDE_CODE_USE_VERTEX": "", "USE_VERTEX": "yes"}, "use_vertex", True),
        ({**VERTEX_ON, "USE_VERTEX": "false"}, "use_vertex", False),
        ({"MLFLOW_TRACING_ENABLED": "true"}, "mlflow_enabled", True),
        (
            {"BACKEND_PUBLIC_URL": "https://ui.example.com/"},
            "backend_public_url",
            "https://ui.example.com",
        ),
        ({"MCP_CONFIG_FILE": " /cfg/mcp.json "}, "mcp_config_file", "/cfg/mcp.json"),
        ({"STATE_SYNC_IMAGE": "reg/sync:2"}, "state_sync_image", "reg/sync:2"),
        ({"S3_ENDPOINT": "http://minio:9000"}, "s3_endpoint", "http://minio:9000"),
        ({"S3_BUCKET": "b"}, "s3_bucket", "b"),
        ({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "sk"}, "s3_credentials", True),
        ({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "sk"}, "s3_secret_access_key", "sk"),
        ({"POD_FSGROUP": "0"}, "pod_fs_group", 0),
        ({"POD_FSGROUP": "1001"}, "pod_fs_group", 1001),
        ({"AGENT_REGISTRY_PATH": "/r.json"}, "agent_registry_path", "/r.json"),
        ({"MODELS_MANIFEST_PATH": "/m.json"}, "models_manifest_path", "/m.json"),
        (VERTEX_ON, "cloud_ml_region", "us-east5"),
        (VERTEX_ON, "vertex_project_id", "proj"),
        (VERTEX_ON, "google_application_credentials", "/app/vertex/key.json"),
    ],
)
def test_each_variable(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(SessionConfig.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DEFAULT_INACTIVITY_TIMEOUT": "abc"},
            "DEFAULT_INACTIVITY_TIMEOUT: expected a whole number of seconds (0 to turn it off), "
            "got 'abc'",
        ),
        ({"DEFAULT_INACTIVITY_TIMEOUT": "-5"}, "DEFAULT_INACTIVITY_TIMEOUT: expected a whole"),
        ({"DEFAULT_INACTIVITY_TIMEOUT": "1.5"}, "DEFAULT_INACTIVITY_TIMEOUT: expected a whole"),
        ({"MAX_SESSION_DURATION": "-1"}, "MAX_SESSION_DURATION: expected a whole number"),
        ({"PENDING_TIMEOUT": "10m"}, "PENDING_TIMEOUT: expected a positive integer"),
        ({"IMAGE_PULL_POLICY": "always"}, "IMAGE_PULL_POLICY: expected one of"),
        ({"AMBIENT_CODE_RUNNER_IMAGE": "bad image"}, "AMBIENT_CODE_RUNNER_IMAGE:"),
        ({"CLAUDE_CODE_USE_VERTEX": "maybe"}, "CLAUDE_CODE_USE_VERTEX: expected true/false"),
        ({"LANGFUSE_ENABLED": "2"}, "LANGFUSE_ENABLED: expected true/false"),
        ({"RUNNER_WORKSPACE_PVC": "y e s"}, "RUNNER_WORKSPACE_PVC: expected true/false"),
        ({**VERTEX_ON, "CLOUD_ML_REGION": ""}, "CLOUD_ML_REGION: required when"),
        (
            {**VERTEX_ON, "ANTHROPIC_VERTEX_PROJECT_ID": " "},
            "ANTHROPIC_VERTEX_PROJECT_ID: required",
        ),
        (
            {k: v for k, v in VERTEX_ON.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"},
            "GOOGLE_APPLICATION_CREDENTIALS: required when",
        ),
        ({"RUNNER_CPU_REQUEST": "lots"}, "RUNNER_CPU_REQUEST: expected a Kubernetes quantity"),
        ({"USE_VERTEX": "sometimes"}, "USE_VERTEX: expected true/false"),
        ({"USE_VERTEX": "1"}, "CLOUD_ML_REGION: required when USE_VERTEX is enabled"),
        ({"MLFLOW_TRACING_ENABLED": "x"}, "MLFLOW_TRACING_ENABLED: expected true/false"),
        ({"BACKEND_PUBLIC_URL": "ui.example.com"}, "BACKEND_PUBLIC_URL: expected an http(s) URL"),
        ({"S3_ENDPOINT": "minio:9000"}, "S3_ENDPOINT: expected an http(s) URL"),
        ({"STATE_SYNC_IMAGE": "a b"}, "STATE_SYNC_IMAGE: not a valid image reference"),
        ({"AWS_ACCESS_KEY_ID": "id"}, "AWS_SECRET_ACCESS_KEY: required when AWS_ACCESS_KEY_ID"),
        ({"AWS_SECRET_ACCESS_KEY": "sk"}, "AWS_ACCESS_KEY_ID: required when AWS_SECRET_ACCESS_KEY"),
        ({"POD_FSGROUP": "-1"}, "POD_FSGROUP: expected a group ID"),
        ({"POD_FSGROUP": "root"}, "POD_FSGROUP: expected a group ID"),
        ({"RUNNER_MEMORY_REQUEST": "4GB"}, "RUNNER_MEMORY_REQUEST: expected a Kubernetes quantity"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        SessionConfig.from_env(env)


def test_repr_hides_oauth_secret() -> None:
    cfg = SessionConfig.from_env(
        {"GOOGLE_OAUTH_CLIENT_SECRET": "topsecretvalue", "GOOGLE_OAUTH_CLIENT_ID": "client-1"}
    )
    for text in (repr(cfg), str(cfg), f"{cfg}"):
        assert "topsecretvalue" not in text
        assert "google_oauth_client_secret='***'" in text
        assert "client-1" in text  # non-secret fields stay visible


def test_repr_hides_s3_keys() -> None:
    cfg = SessionConfig.from_env(
        {"AWS_ACCESS_KEY_ID": "AKIDVALUE", "AWS_SECRET_ACCESS_KEY": "SKVAL"}
    )
    for text in (repr(cfg), str(cfg)):
        assert "AKIDVALUE" not in text
        assert "SKVAL" not in text
        assert "s3_secret_access_key='***'" in text


def test_a_bad_s3_key_message_never_shows_the_key() -> None:
    with pytest.raises(ValueError, match=r"^AWS_ACCESS_KEY_ID: required") as err:
        SessionConfig.from_env({"AWS_SECRET_ACCESS_KEY": "SKVAL"})
    assert "SKVAL" not in str(err.value)


def test_config_is_immutable() -> None:
    cfg = SessionConfig()
    with pytest.raises(AttributeError):
        cfg.runner_image = "x"  # type: ignore[misc]
