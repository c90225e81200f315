"""Builders: Job (env contract, override rules, security), Service, identity objects, PVC, names."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import model
from agentic_operator.sessions.agents import AgentSpec
from agentic_operator.sessions.builders import PodInputs, build_job, build_runner_env
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.objects import (
    build_oauth_placeholder_secret,
    build_runner_role,
    build_runner_role_binding,
    build_runner_service_account,
    build_service,
    build_token_secret,
    build_workspace_pvc,
)

CFG = SessionConfig(runner_image="reg/runner:7", backend_namespace="backend")
VERTEX = SessionConfig(
    use_vertex=True,
    cloud_ml_region="us-east5",
    vertex_project_id="proj",
    google_application_credentials="/app/vertex/key.json",
)
OAUTH = SessionConfig(google_oauth_client_id="client-1")
OAUTH_URL = SessionConfig(backend_public_url="https://ui.example.com")
MCP_FILE = SessionConfig(mcp_config_file="/cfg/mcp.json")
MARKER = {model.LABEL_MANAGED_BY: model.MANAGED_BY}
"""On every object the operator creates (not on the pod template: the Job controller makes pods)."""
OWNER = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "AgenticSession",
    "name": "s1",
    "uid": "uid-1",
    "controller": True,
    "blockOwnerDeletion": False,
}


def session(annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": "s1", "namespace": "ns", "uid": "uid-1", "generation": 1}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": model.API_VERSION, "kind": model.KIND, "metadata": meta, "spec": spec}


def container(job: Obj) -> Obj:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["ambient-code-runner"]
    return dict(containers[0])


def env_of(obj: Obj, cfg: SessionConfig = CFG, run: int = 1) -> dict[str, Obj]:
    job, _ = build_job(obj, cfg, run=run)
    entries = container(job)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in entries}


def values(obj: Obj, cfg: SessionConfig = CFG, run: int = 1) -> dict[str, str | None]:
    return {k: v.get("value") for k, v in env_of(obj, cfg, run).items()}


# --- env contract -------------------------------------------------------------------------------

ENV_ROWS = [
    pytest.param(session(), CFG, 1, "DEBUG", "true", id="debug"),
    pytest.param(session(), CFG, 1, "PROJECT_NAME", "ns", id="project-name"),
    pytest.param(session(), CFG, 1, "AGUI_PORT", "8001", id="agui-port-default"),
    pytest.param(
        session(),
        OAUTH_URL,
        1,
        "GOOGLE_OAUTH_REDIRECT_URI",
        "https://ui.example.com/oauth2callback",
        id="oauth-redirect",
    ),
    pytest.param(session(), MCP_FILE, 1, "MCP_CONFIG_FILE", "/cfg/mcp.json", id="mcp-config"),
    pytest.param(
        session(mcpServers={"custom": {"gh": {"command": "x"}}, "disabled": ["a"]}),
        CFG,
        1,
        "CUSTOM_MCP_SERVERS",
        '{"custom":{"gh":{"command":"x"}},"disabled":["a"]}',
        id="custom-mcp",
    ),
    pytest.param(session(), VERTEX, 1, "USE_VERTEX", "1", id="use-vertex-on"),
    pytest.param(session(), CFG, 1, "USE_VERTEX", "0", id="use-vertex-off"),
    pytest.param(session(), VERTEX, 1, "GCE_METADATA_HOST", "metadata.invalid", id="gce-host"),
    pytest.param(session(), VERTEX, 1, "GCE_METADATA_TIMEOUT", "1", id="gce-timeout"),
    pytest.param(session(), CFG, 1, "AGENTIC_SESSION_NAME", "s1", id="session-name"),
    pytest.param(session(), CFG, 1, "SESSION_ID", "s1", id="session-id"),
    pytest.param(session(), CFG, 1, "AGENTIC_SESSION_NAMESPACE", "ns", id="namespace"),
    pytest.param(session(), CFG, 1, "WORKSPACE_PATH", "/workspace", id="workspace-path"),
    pytest.param(session(), CFG, 1, "ARTIFACTS_DIR", "artifacts", id="artifacts-dir"),
    pytest.param(
        session(userContext={"userId": "u-7", "displayName": "Ann"}),
        CFG,
        1,
        "USER_ID",
        "u-7",
        id="user-id",
    ),
    pytest.param(
        session(userContext={"userId": "u-7", "displayName": "Ann"}),
        CFG,
        1,
        "USER_NAME",
        "Ann",
        id="user-name",
    ),
    pytest.param(
        session(initialPrompt="fix the bug"), CFG, 1, "INITIAL_PROMPT", "fix the bug", id="prompt"
    ),
    pytest.param(session(), CFG, 1, "LLM_MODEL", "claude-sonnet-4-6", id="model-default"),
    pytest.param(session(llmSettings={"model": "m2"}), CFG, 1, "LLM_MODEL", "m2", id="model"),
    pytest.param(session(), CFG, 1, "LLM_TEMPERATURE", "0.70", id="temperature-default"),
    pytest.param(
        session(llmSettings={"temperature": 1}),
        CFG,
        1,
        "LLM_TEMPERATURE",
        "1.00",
        id="temperature-int",
    ),
    pytest.param(
        session(llmSettings={"temperature": 0.333}),
        CFG,
        1,
        "LLM_TEMPERATURE",
        "0.33",
        id="temperature-2dp",
    ),
    pytest.param(session(), CFG, 1, "LLM_MAX_TOKENS", "4000", id="max-tokens-default"),
    pytest.param(
        session(llmSettings={"maxTokens": 123}), CFG, 1, "LLM_MAX_TOKENS", "123", id="max-tokens"
    ),
    pytest.param(session(), CFG, 1, "TIMEOUT", "300", id="timeout-default"),
    pytest.param(session(timeout=900), CFG, 1, "TIMEOUT", "900", id="timeout"),
    pytest.param(
        session(timeout=900),
        SessionConfig(max_session_duration=77),
        1,
        "TIMEOUT",
        "900",
        id="timeout-not-the-ceiling",
    ),
    pytest.param(session(), CFG, 1, "USE_AGUI", "true", id="use-agui"),
    pytest.param(
        session(),
        CFG,
        1,
        "BACKEND_API_URL",
        "http://backend-service.backend.svc.cluster.local:8080/api",
        id="backend-url",
    ),
    pytest.param(session(), CFG, 1, "CLAUDE_CODE_USE_VERTEX", "0", id="vertex-off"),
    pytest.param(session(), VERTEX, 1, "CLAUDE_CODE_USE_VERTEX", "1", id="vertex-on"),
    pytest.param(session(), VERTEX, 1, "CLOUD_ML_REGION", "us-east5", id="vertex-region"),
    pytest.param(session(), VERTEX, 1, "ANTHROPIC_VERTEX_PROJECT_ID", "proj", id="vertex-project"),
    pytest.param(
        session(),
        VERTEX,
        1,
        "GOOGLE_APPLICATION_CREDENTIALS",
        "/app/vertex/key.json",
        id="vertex-creds",
    ),
    pytest.param(
        session({model.ANN_PARENT_SESSION: "parent-a"}),
        CFG,
        1,
        "PARENT_SESSION_ID",
        "parent-a",
        id="parent-annotation",
    ),
    pytest.param(
        session(environmentVariables={"PARENT_SESSION_ID": "parent-b"}),
        CFG,
        1,
        "PARENT_SESSION_ID",
        "parent-b",
        id="parent-env",
    ),
    pytest.param(
        session(),
        OAUTH,
        1,
        "GOOGLE_MCP_CREDENTIALS_DIR",
        "/workspace/.google_workspace_mcp/credentials",
        id="oauth-credentials-dir",
    ),
    pytest.param(session(), OAUTH, 1, "GOOGLE_OAUTH_CLIENT_ID", "client-1", id="oauth-client"),
    pytest.param(session(), CFG, 1, "IS_RESUME", "false", id="first-run-not-resume"),
    pytest.param(session(), CFG, 2, "IS_RESUME", "true", id="second-run-resume"),
    pytest.param(session(), CFG, 5, "IS_RESUME", "true", id="later-run-resume"),
    pytest.param(
        session({"ambient-code.io/force-execute-prompt": "true"}),
        CFG,
        2,
        "IS_RESUME",
        "false",
        id="restart-forced-to-execute-the-prompt",
    ),
    pytest.param(
        session({"ambient-code.io/force-execute-prompt": "false"}),
        CFG,
        2,
        "IS_RESUME",
        "true",
        id="restart-force-false-resumes",
    ),
    pytest.param(
        session(repos=[{"url": "https://g/a.git", "branch": "dev"}, {"url": "https://g/b.git"}]),
        CFG,
        1,
        "REPOS_JSON",
        '[{"url":"https://g/a.git","branch":"dev"},{"url":"https://g/b.git","branch":"main"}]',
        id="repos-json",
    ),
    pytest.param(session(mainRepoName="b"), CFG, 1, "MAIN_REPO_NAME", "b", id="main-repo-name"),
    pytest.param(
        session(mainRepoIndex=1), CFG, 1, "MAIN_REPO_INDEX", "1", id="main-repo-index-int"
    ),
    pytest.param(
        session(mainRepoIndex="2"), CFG, 1, "MAIN_REPO_INDEX", "2", id="main-repo-index-str"
    ),
    pytest.param(
        session(activeWorkflow={"gitUrl": "https://g/wf"}),
        CFG,
        1,
        "ACTIVE_WORKFLOW_GIT_URL",
        "https://g/wf",
        id="wf-url",
    ),
    pytest.param(
        session(activeWorkflow={"branch": "rel"}),
        CFG,
        1,
        "ACTIVE_WORKFLOW_BRANCH",
        "rel",
        id="wf-branch",
    ),
    pytest.param(
        session(activeWorkflow={"path": "flows/x"}),
        CFG,
        1,
        "ACTIVE_WORKFLOW_PATH",
        "flows/x",
        id="wf-path",
    ),
    pytest.param(
        session(),
        SessionConfig(google_oauth_client_id="cid"),
        1,
        "GOOGLE_OAUTH_CLIENT_ID",
        "cid",
        id="oauth-client-id",
    ),
]


@pytest.mark.parametrize(("obj", "cfg", "run", "name", "value"), ENV_ROWS)
def test_env_contract(obj: Obj, cfg: SessionConfig, run: int, name: str, value: str) -> None:
    assert values(obj, cfg, run)[name] == value


ABSENT_ROWS = [
    pytest.param(session(), CFG, "USER_ID", id="no-user-id"),
    pytest.param(session(userContext={"userId": ""}), CFG, "USER_ID", id="empty-user-id"),
    pytest.param(session(), CFG, "USER_NAME", id="no-user-name"),
    pytest.param(session(), CFG, "INITIAL_PROMPT", id="no-prompt"),
    pytest.param(session(), CFG, "PARENT_SESSION_ID", id="no-parent"),
    pytest.param(session(), CFG, "REPOS_JSON", id="no-repos"),
    pytest.param(session(repos=[]), CFG, "REPOS_JSON", id="empty-repos"),
    pytest.param(session(), CFG, "MAIN_REPO_NAME", id="no-main-repo-name"),
    pytest.param(session(), CFG, "MAIN_REPO_INDEX", id="no-main-repo-index"),
    pytest.param(
        session(activeWorkflow={"gitUrl": ""}), CFG, "ACTIVE_WORKFLOW_GIT_URL", id="empty-wf-url"
    ),
    pytest.param(session(), CFG, "CLOUD_ML_REGION", id="no-vertex-vars"),
    pytest.param(session(), CFG, "GOOGLE_OAUTH_CLIENT_SECRET", id="no-oauth-secret"),
    pytest.param(session(), CFG, "GOOGLE_MCP_CREDENTIALS_DIR", id="no-oauth-credentials-dir"),
    pytest.param(session(), CFG, "LANGFUSE_HOST", id="no-langfuse"),
    pytest.param(session(), CFG, "MLFLOW_TRACKING_URI", id="no-mlflow"),
    pytest.param(session(), CFG, "GOOGLE_OAUTH_REDIRECT_URI", id="no-redirect"),
    pytest.param(session(), CFG, "MCP_CONFIG_FILE", id="no-mcp-config"),
    pytest.param(session(), CFG, "CUSTOM_MCP_SERVERS", id="no-custom-mcp"),
    pytest.param(session(mcpServers={}), CFG, "CUSTOM_MCP_SERVERS", id="empty-custom-mcp"),
    pytest.param(session(), CFG, "PROJECT_MCP_SERVERS", id="no-project-mcp"),
    pytest.param(session(), CFG, "LLM_MODEL_VERTEX_ID", id="no-vertex-model-id"),
    pytest.param(session(), CFG, "GCE_METADATA_HOST", id="no-gce-without-vertex"),
    pytest.param(session(interactive=False), CFG, "INTERACTIVE", id="no-interactive"),
    pytest.param(session(autoPushOnComplete=True), CFG, "AUTO_PUSH_ON_COMPLETE", id="no-autopush"),
    pytest.param(session(), CFG, "BOT_TOKEN", id="no-bot-token-variable"),
]


@pytest.mark.parametrize(("obj", "cfg", "name"), ABSENT_ROWS)
def test_env_absent(obj: Obj, cfg: SessionConfig, name: str) -> None:
    assert name not in env_of(obj, cfg)


def test_parent_annotation_then_spec_env_override() -> None:
    """The annotation seeds PARENT_SESSION_ID; a spec entry overrides it like any plain value."""
    assert (
        values(session({model.ANN_PARENT_SESSION: "from-ann"}))["PARENT_SESSION_ID"] == "from-ann"
    )
    both = session(
        {model.ANN_PARENT_SESSION: "from-ann"}, environmentVariables={"PARENT_SESSION_ID": "env"}
    )
    assert values(both)["PARENT_SESSION_ID"] == "env"


@pytest.mark.parametrize(
    ("annotations", "secret"),
    [
        (None, "ambient-runner-token-s1"),
        # The annotation is never read back: it could name any Secret of the namespace.
        ({model.ANN_RUNNER_TOKEN_SECRET: "custom-token"}, "ambient-runner-token-s1"),
        ({model.ANN_RUNNER_TOKEN_SECRET: "ambient-runner-secrets"}, "ambient-runner-token-s1"),
        ({model.ANN_RUNNER_TOKEN_SECRET: "Bad_Name!"}, "ambient-runner-token-s1"),
        ({model.ANN_RUNNER_TOKEN_SECRET: ""}, "ambient-runner-token-s1"),
    ],
)
def test_agui_token_and_bot_token_file_from_the_token_secret(
    annotations: dict[str, str] | None, secret: str
) -> None:
    entry = env_of(session(annotations))["AGUI_TOKEN"]
    assert "value" not in entry
    assert entry["valueFrom"] == {
        "secretKeyRef": {"name": secret, "key": "agui-token", "optional": False}
    }
    job, _ = build_job(session(annotations), CFG, run=1)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["runner-token"]["secret"] == {
        "secretName": secret,
        "items": [{"key": "k8s-token", "path": "bot-token"}],
    }
    assert {
        "name": "runner-token",
        "mountPath": "/var/run/secrets/ambient",
        "readOnly": True,
    } in container(job)["volumeMounts"]


def test_project_mcp_servers_and_vertex_model_id_come_from_the_inputs() -> None:
    inputs = PodInputs(
        project_mcp_servers={"custom": {"jira": {"url": "https://j"}}},
        vertex_model_id="claude-sonnet-4-6@20260101",
    )
    job, _ = build_job(session(), CFG, run=1, inputs=inputs)
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert env["PROJECT_MCP_SERVERS"] == '{"custom":{"jira":{"url":"https://j"}}}'
    assert env["LLM_MODEL_VERTEX_ID"] == "claude-sonnet-4-6@20260101"


def test_mlflow_env_is_optional_secret_refs() -> None:
    env = env_of(session(), SessionConfig(mlflow_enabled=True))
    for key in (
        "MLFLOW_TRACING_ENABLED",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_AUTH",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_WORKSPACE",
        "OBSERVABILITY_BACKENDS",
    ):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {
            "name": "ambient-admin-mlflow-observability-secret",
            "key": key,
            "optional": True,
        }


def test_oauth_client_secret_comes_from_the_token_secret() -> None:
    cfg = SessionConfig(google_oauth_client_id="c", google_oauth_client_secret="s3cret")
    job, _ = build_job(session(), cfg, run=1)
    entry = {e["name"]: e for e in container(job)["env"]}["GOOGLE_OAUTH_CLIENT_SECRET"]
    assert "value" not in entry
    assert entry["valueFrom"] == {
        "secretKeyRef": {
            "name": "ambient-runner-token-s1",
            "key": "google-oauth-client-secret",
            "optional": False,
        }
    }
    assert "s3cret" not in json.dumps(job)  # never in the Job spec


def test_langfuse_env_is_optional_secret_refs() -> None:
    env = env_of(session(), SessionConfig(langfuse_enabled=True))
    for key in ("LANGFUSE_ENABLED", "LANGFUSE_HOST", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "ambient-admin-langfuse-secret", "key": key, "optional": True}


FULL = SessionConfig(
    google_oauth_client_id="cid",
    google_oauth_client_secret="cs",
    backend_public_url="https://ui",
    mcp_config_file="/m.json",
    langfuse_enabled=True,
    mlflow_enabled=True,
    use_vertex=True,
    cloud_ml_region="r",
    vertex_project_id="p",
    google_application_credentials="/app/vertex/k.json",
)
FULL_ORDER = [
    "DEBUG",
    "AGENTIC_SESSION_NAME",
    "AGENTIC_SESSION_NAMESPACE",
    "SESSION_ID",
    "PROJECT_NAME",
    "WORKSPACE_PATH",
    "ARTIFACTS_DIR",
    "AGUI_PORT",
    "AGUI_TOKEN",
    "GOOGLE_MCP_CREDENTIALS_DIR",
    "GOOGLE_OAUTH_CLIENT_ID",
    "GOOGLE_OAUTH_CLIENT_SECRET",
    "GOOGLE_OAUTH_REDIRECT_URI",
    "MCP_CONFIG_FILE",
    "CUSTOM_MCP_SERVERS",
    "PROJECT_MCP_SERVERS",
    "USER_ID",
    "USER_NAME",
    "INITIAL_PROMPT",
    "LLM_MODEL",
    "LLM_TEMPERATURE",
    "LLM_MAX_TOKENS",
    "USE_AGUI",
    "TIMEOUT",
    "BACKEND_API_URL",
    "LLM_MODEL_VERTEX_ID",
    "LANGFUSE_ENABLED",
    "LANGFUSE_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "MLFLOW_TRACING_ENABLED",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_WORKSPACE",
    "OBSERVABILITY_BACKENDS",
    "USE_VERTEX",
    "CLAUDE_CODE_USE_VERTEX",
    "CLOUD_ML_REGION",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "GCE_METADATA_TIMEOUT",
    "PARENT_SESSION_ID",
    "IS_RESUME",
    "REPOS_JSON",
    "MAIN_REPO_NAME",
    "MAIN_REPO_INDEX",
    "ACTIVE_WORKFLOW_GIT_URL",
    "ACTIVE_WORKFLOW_BRANCH",
    "ACTIVE_WORKFLOW_PATH",
    "RUNNER_TYPE",
    "RUNNER_STATE_DIR",
    "ZZZ_NEW",
    "AAA_NEW",
]


def test_env_order_is_the_contract_then_registry_then_user() -> None:
    obj = session(
        {model.ANN_PARENT_SESSION: "p"},
        userContext={"userId": "u", "displayName": "U"},
        initialPrompt="hi",
        mcpServers={"custom": {"a": {}}},
        repos=[{"url": "u"}],
        mainRepoName="u",
        mainRepoIndex=0,
        activeWorkflow={"gitUrl": "g", "branch": "b", "path": "p"},
        environmentVariables={"ZZZ_NEW": "1", "RUNNER_TYPE": "mine", "AAA_NEW": "2"},
    )
    agent = AgentSpec(env=(("RUNNER_TYPE", "from-registry"), ("RUNNER_STATE_DIR", ".claude")))
    inputs = PodInputs(agent=agent, project_mcp_servers={"x": 1}, vertex_model_id="v")
    env, skipped = build_runner_env(obj, FULL, run=1, inputs=inputs)
    assert skipped == []
    assert [e["name"] for e in env] == FULL_ORDER
    # The registry's entry is appended where absent; the user's then replaces it in place.
    assert {e["name"]: e.get("value") for e in env}["RUNNER_TYPE"] == "mine"


# --- user overrides ------------------------------------------------------------------------------

OVERRIDE_ROWS = [
    pytest.param({"FOO": "bar"}, CFG, {"FOO": "bar"}, [], id="append-new"),
    pytest.param({"LLM_MODEL": "override"}, CFG, {"LLM_MODEL": "override"}, [], id="replace-plain"),
    pytest.param(
        {"DEBUG": "false", "IS_RESUME": "true"},
        CFG,
        {"DEBUG": "false", "IS_RESUME": "true"},
        [],
        id="replace-two",
    ),
    pytest.param({"AGUI_TOKEN": "stolen"}, CFG, {}, ["AGUI_TOKEN"], id="valueFrom-protected"),
    pytest.param({"BOT_TOKEN": "t"}, CFG, {"BOT_TOKEN": "t"}, [], id="bot-token-is-just-a-name"),
    pytest.param(
        {"USE_VERTEX": "1", "CLAUDE_CODE_USE_VERTEX": "1"},
        CFG,
        {"USE_VERTEX": "0", "CLAUDE_CODE_USE_VERTEX": "0"},
        ["USE_VERTEX", "CLAUDE_CODE_USE_VERTEX"],
        id="vertex-mode-protected",
    ),
    pytest.param(
        {"MLFLOW_TRACKING_URI": "x"},
        SessionConfig(mlflow_enabled=True),
        {},
        ["MLFLOW_TRACKING_URI"],
        id="mlflow-valueFrom-protected",
    ),
    pytest.param(
        {"LANGFUSE_SECRET_KEY": "x", "OK": "1"},
        SessionConfig(langfuse_enabled=True),
        {"OK": "1"},
        ["LANGFUSE_SECRET_KEY"],
        id="langfuse-valueFrom-protected",
    ),
    pytest.param({"BAD": 5}, CFG, {}, ["BAD"], id="non-string-value-skipped"),
]


@pytest.mark.parametrize(("overrides", "cfg", "expected", "skipped"), OVERRIDE_ROWS)
def test_user_env_overrides(
    overrides: dict[str, Any], cfg: SessionConfig, expected: dict[str, str], skipped: list[str]
) -> None:
    obj = session(environmentVariables=overrides)
    job, refused = build_job(obj, cfg, run=1)
    assert refused == skipped
    env = {e["name"]: e for e in container(job)["env"]}
    for name, value in expected.items():
        assert env[name] == {"name": name, "value": value}
    for name in skipped:
        entry = env.get(name)
        # Never an entry with both value and valueFrom (the API server rejects those), and a
        # protected plain entry keeps the operator's value.
        assert entry is None or "valueFrom" not in entry or "value" not in entry
        assert entry is None or entry.get("value") != overrides[name]


def test_replaced_entry_keeps_position() -> None:
    before = list(env_of(session()))
    after = list(env_of(session(environmentVariables={"LLM_MODEL": "x"})))
    assert before == after


# --- Job shape -----------------------------------------------------------------------------------


def test_job_metadata_and_policy() -> None:
    job, skipped = build_job(session(timeout=1200), CFG, run=3)
    assert skipped == []
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    meta = job["metadata"]
    assert (meta["name"], meta["namespace"]) == ("s1-job", "ns")
    assert meta["labels"] == {"agentic-session": "s1", "app": "ambient-code-runner", **MARKER}
    assert meta["annotations"] == {"ambient-code.io/run": "3"}
    assert meta["ownerReferences"] == [OWNER]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["podReplacementPolicy"] == "Failed"
    assert "activeDeadlineSeconds" not in spec, "spec.timeout (1200) is not a deadline"
    assert spec["ttlSecondsAfterFinished"] == 600
    tmeta = spec["template"]["metadata"]
    assert tmeta["labels"] == {"agentic-session": "s1", "app": "ambient-code-runner"}
    assert tmeta["annotations"] == {"ambient-code.io/run": "3"}
    assert "selector" not in spec  # the Job controller generates it


@pytest.mark.parametrize(
    ("obj", "cfg", "deadline"),
    [
        (session(), CFG, None),
        (session(timeout=5), CFG, None),
        (session(), SessionConfig(max_session_duration=60), 60),
        (session(timeout=5), SessionConfig(max_session_duration=60), 60),
    ],
)
def test_active_deadline_is_only_the_ceiling(obj: Obj, cfg: SessionConfig, deadline: int) -> None:
    assert build_job(obj, cfg, run=1)[0]["spec"].get("activeDeadlineSeconds") == deadline


def test_pod_passes_restricted_pod_security() -> None:
    job, _ = build_job(session(), CFG, run=1)
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    assert "hostIPC" not in pod
    c = container(job)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": 1001,
    }
    allowed_volume_types = {"emptyDir", "persistentVolumeClaim", "secret", "configMap", "projected"}
    for vol in pod["volumes"]:
        assert set(vol) - {"name"} <= allowed_volume_types


def test_runner_container() -> None:
    c = container(build_job(session(), CFG, run=1)[0])
    assert c["image"] == "reg/runner:7"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"] == [{"name": "agui", "containerPort": 8001, "protocol": "TCP"}]
    assert c["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2", "memory": "8Gi"},
    }


def test_resources_from_config() -> None:
    cfg = SessionConfig(
        runner_cpu_request="1",
        runner_memory_request="1Gi",
        runner_cpu_limit="3",
        runner_memory_limit="6Gi",
    )
    c = container(build_job(session(), cfg, run=1)[0])
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "3", "memory": "6Gi"},
    }


@pytest.mark.parametrize(
    ("cfg", "env_from"),
    [
        (
            CFG,
            [
                {"secretRef": {"name": "ambient-non-vertex-integrations", "optional": True}},
                {"secretRef": {"name": "ambient-runner-secrets", "optional": False}},
            ],
        ),
        (VERTEX, [{"secretRef": {"name": "ambient-non-vertex-integrations", "optional": True}}]),
    ],
)
def test_env_from(cfg: SessionConfig, env_from: list[Obj]) -> None:
    assert container(build_job(session(), cfg, run=1)[0])["envFrom"] == env_from


TOKEN_VOLUME = {
    "name": "runner-token",
    "secret": {
        "secretName": "ambient-runner-token-s1",
        "items": [{"key": "k8s-token", "path": "bot-token"}],
    },
}
TOKEN_MOUNT = {"name": "runner-token", "mountPath": "/var/run/secrets/ambient", "readOnly": True}
WORKSPACE_MOUNTS = [
    {"name": "workspace", "mountPath": "/workspace"},
    {"name": "workspace", "mountPath": "/app/.claude", "subPath": ".claude"},
]
EMPTY_DIR = {"name": "workspace", "emptyDir": {"sizeLimit": "10Gi"}}


@pytest.mark.parametrize(
    ("cfg", "inputs", "volumes", "mounts"),
    [
        (CFG, PodInputs(), [EMPTY_DIR, TOKEN_VOLUME], [*WORKSPACE_MOUNTS, TOKEN_MOUNT]),
        (
            SessionConfig(workspace_pvc=True),
            PodInputs(),
            [
                {
                    "name": "workspace",
                    "persistentVolumeClaim": {"claimName": "ambient-workspace-s1"},
                },
                TOKEN_VOLUME,
            ],
            [*WORKSPACE_MOUNTS, TOKEN_MOUNT],
        ),
        (
            VERTEX,
            PodInputs(),
            [
                EMPTY_DIR,
                TOKEN_VOLUME,
                {"name": "vertex", "secret": {"secretName": "ambient-vertex"}},
            ],
            [
                *WORKSPACE_MOUNTS,
                TOKEN_MOUNT,
                {"name": "vertex", "mountPath": "/app/vertex", "readOnly": True},
            ],
        ),
        (
            CFG,
            PodInputs(trusted_ca_bundle=True),
            [
                EMPTY_DIR,
                TOKEN_VOLUME,
                {"name": "trusted-ca-bundle", "configMap": {"name": "trusted-ca-bundle"}},
            ],
            [
                *WORKSPACE_MOUNTS,
                TOKEN_MOUNT,
                {
                    "name": "trusted-ca-bundle",
                    "mountPath": "/etc/pki/tls/certs/ca-bundle.crt",
                    "subPath": "ca-bundle.crt",
                    "readOnly": True,
                },
            ],
        ),
        (
            OAUTH,
            PodInputs(),
            [
                EMPTY_DIR,
                TOKEN_VOLUME,
                {
                    "name": "google-oauth",
                    "secret": {"secretName": "s1-google-oauth", "optional": True},
                },
            ],
            [
                *WORKSPACE_MOUNTS,
                TOKEN_MOUNT,
                {
                    "name": "google-oauth",
                    "mountPath": "/app/.google_workspace_mcp/credentials",
                    "readOnly": True,
                },
            ],
        ),
        (
            CFG,
            PodInputs(agent=AgentSpec(state_dir=".gemini", workspace_size="3Gi")),
            [{"name": "workspace", "emptyDir": {"sizeLimit": "3Gi"}}, TOKEN_VOLUME],
            [
                {"name": "workspace", "mountPath": "/workspace"},
                {"name": "workspace", "mountPath": "/app/.gemini", "subPath": ".gemini"},
                TOKEN_MOUNT,
            ],
        ),
        (
            CFG,
            PodInputs(agent=AgentSpec(persist=False, clone_repos=False)),
            [TOKEN_VOLUME],
            [TOKEN_MOUNT],
        ),
    ],
)
def test_volumes(
    cfg: SessionConfig, inputs: PodInputs, volumes: list[Obj], mounts: list[Obj]
) -> None:
    job, _ = build_job(session(), cfg, run=1, inputs=inputs)
    assert job["spec"]["template"]["spec"]["volumes"] == volumes
    assert container(job)["volumeMounts"] == mounts


def test_build_job_rejects_run_zero() -> None:
    with pytest.raises(ValueError, match="run must be >= 1"):
        build_job(session(), CFG, run=0)


def test_builders_do_not_mutate_session() -> None:
    obj = session(
        {model.ANN_PARENT_SESSION: "p"},
        environmentVariables={"AGUI_TOKEN": "x"},
        repos=[{"url": "u"}],
    )
    snapshot = json.dumps(obj, sort_keys=True)
    job, _ = build_job(obj, VERTEX, run=2)
    build_service(obj, {**job, "metadata": {**job["metadata"], "uid": "j-1"}})
    build_token_secret(obj, "tok", datetime(2026, 1, 1, tzinfo=UTC))
    assert json.dumps(obj, sort_keys=True) == snapshot


# --- other children -----------------------------------------------------------------------------


def test_service() -> None:
    job, _ = build_job(session(), CFG, run=4)
    job["metadata"]["uid"] = "job-uid-4"
    svc = build_service(session(), job)
    assert svc["apiVersion"] == "v1"
    assert svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "session-s1"
    assert svc["metadata"]["namespace"] == "ns"
    assert svc["metadata"]["labels"] == {"app": "ambient-code", "agentic-session": "s1", **MARKER}
    # The run's Job owns it (the garbage collector removes it with the Job; a foreground delete
    # of the Job waits for it), not the session.
    assert svc["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "s1-job",
            "uid": "job-uid-4",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert svc["spec"]["selector"] == {"agentic-session": "s1", "app": "ambient-code-runner"}
    assert svc["spec"]["ports"] == [
        {"name": "agui", "port": 8001, "targetPort": "agui", "protocol": "TCP"}
    ]
    # The selector must match the runner pods of any run.
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_service_account() -> None:
    sa = build_runner_service_account(session())
    assert (sa["kind"], sa["metadata"]["name"]) == ("ServiceAccount", "ambient-session-s1")
    assert sa["metadata"]["labels"] == {"app": "ambient-runner", **MARKER}
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["ownerReferences"] == [OWNER]
    assert "annotations" not in sa["metadata"], "no user, no created-by-user-id"
    owned = build_runner_service_account(session(userContext={"userId": "u-1"}))
    assert owned["metadata"]["annotations"] == {"ambient-code.io/created-by-user-id": "u-1"}


def test_role() -> None:
    role = build_runner_role(session())
    assert role["apiVersion"] == "rbac.authorization.k8s.io/v1"
    assert (role["kind"], role["metadata"]["name"]) == ("Role", "ambient-session-s1-role")
    assert role["rules"] == [
        {
            "apiGroups": ["vteam.ambient-code"],
            "resources": ["agenticsessions"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {
            "apiGroups": ["mlflow.kubeflow.org"],
            "resources": ["experiments"],
            "verbs": ["get", "list", "update"],
        },
    ]
    assert role["metadata"]["ownerReferences"] == [OWNER]


def test_role_binding() -> None:
    rb = build_runner_role_binding(session())
    assert (rb["kind"], rb["metadata"]["name"]) == ("RoleBinding", "ambient-session-s1-rb")
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "ambient-session-s1-role",
    }
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "ambient-session-s1", "namespace": "ns"}
    ]
    assert rb["metadata"]["ownerReferences"] == [OWNER]


def test_token_secret() -> None:
    now = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    sec = build_token_secret(session(), "eyJ.token", now)
    assert (sec["kind"], sec["type"]) == ("Secret", "Opaque")
    assert sec["metadata"]["name"] == "ambient-runner-token-s1"
    assert sec["metadata"]["labels"] == {"app": "ambient-runner-token", **MARKER}
    assert sec["metadata"]["annotations"] == {
        "ambient-code.io/token-refreshed-at": "2026-03-04T05:06:07Z"
    }
    assert base64.b64decode(sec["data"]["k8s-token"]) == b"eyJ.token"
    assert sec["metadata"]["ownerReferences"] == [OWNER]
    custom = build_token_secret(session({model.ANN_RUNNER_TOKEN_SECRET: "tok-x"}), "t", now)
    assert custom["metadata"]["name"] == "ambient-runner-token-s1"
    assert set(sec["data"]) == {"k8s-token"}
    with_oauth = build_token_secret(session(), "t", now, google_oauth_client_secret="s3cret")
    assert base64.b64decode(with_oauth["data"]["google-oauth-client-secret"]) == b"s3cret"


def test_oauth_placeholder_secret() -> None:
    sec = build_oauth_placeholder_secret(session())
    assert (sec["kind"], sec["type"], sec["metadata"]["name"]) == (
        "Secret",
        "Opaque",
        "s1-google-oauth",
    )
    assert sec["metadata"]["labels"] == {
        "app": "ambient-code",
        "ambient-code.io/session": "s1",
        "ambient-code.io/provider": "google",
        "ambient-code.io/oauth": "placeholder",
        **MARKER,
    }
    assert sec["data"] == {"credentials.json": ""}
    assert sec["metadata"]["ownerReferences"] == [OWNER]


@pytest.mark.parametrize(
    ("cfg", "size"), [(None, "5Gi"), (SessionConfig(workspace_pvc_size="20Gi"), "20Gi")]
)
def test_workspace_pvc(cfg: SessionConfig | None, size: str) -> None:
    pvc = build_workspace_pvc(session(), cfg)
    assert (pvc["kind"], pvc["metadata"]["name"]) == (
        "PersistentVolumeClaim",
        "ambient-workspace-s1",
    )
    assert pvc["metadata"]["labels"] == {
        "app": "ambient-workspace",
        "agentic-session": "s1",
        **MARKER,
    }
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    assert pvc["metadata"]["ownerReferences"] == [OWNER]


# --- model helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (model.job_name, "s1-job"),
        (model.service_name, "session-s1"),
        (model.runner_sa_name, "ambient-session-s1"),
        (model.runner_role_name, "ambient-session-s1-role"),
        (model.runner_rolebinding_name, "ambient-session-s1-rb"),
        (model.pvc_name, "ambient-workspace-s1"),
        (model.oauth_secret_name, "s1-google-oauth"),
    ],
)
def test_child_names(fn: Any, expected: str) -> None:
    assert fn("s1") == expected


@pytest.mark.parametrize(
    ("refs", "owned"),
    [
        ([OWNER], True),
        ([{**OWNER, "controller": False}], False),
        ([{**OWNER, "uid": "other"}], False),
        ([{"uid": "x", "controller": True}, OWNER], True),
        ([], False),
    ],
)
def test_is_owned_by(refs: list[Obj], owned: bool) -> None:
    child = {"metadata": {"name": "c", "ownerReferences": refs}}
    assert model.is_owned_by(child, session()) is owned


def test_is_owned_by_requires_session_uid() -> None:
    child = {"metadata": {"ownerReferences": [{**OWNER, "uid": ""}]}}
    assert model.is_owned_by(child, {"metadata": {"name": "s1"}}) is False


@pytest.mark.parametrize(
    ("status", "phase", "run"),
    [
        (None, model.Phase.PENDING, 0),
        ({"phase": ""}, model.Phase.PENDING, 0),
        ({"phase": "Running", "run": 2}, model.Phase.RUNNING, 2),
        ({"phase": "Bogus", "run": True}, model.Phase.PENDING, 0),
    ],
)
def test_phase_and_run_readers(status: Obj | None, phase: model.Phase, run: int) -> None:
    obj = session()
    if status is not None:
        obj["status"] = status
    assert model.session_phase(obj) is phase
    assert model.session_run(obj) == run


def test_terminal_phases() -> None:
    assert {str(p) for p in model.TERMINAL_PHASES} == {"Stopped", "Completed", "Failed"}
    assert [str(p) for p in model.Phase] == [
        "Pending",
        "Creating",
        "Running",
        "Stopping",
        "Stopped",
        "Completed",
        "Failed",
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({}, {}),
        ({"metadata": {}}, {}),
        ({"metadata": {"annotations": None}}, {}),
        ({"metadata": {"annotations": {"a": "b"}}}, {"a": "b"}),
    ],
)
def test_annotations_reader(obj: Obj, expected: dict[str, str]) -> None:
    assert model.annotations(obj) == expected
