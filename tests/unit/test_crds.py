"""Static structure of the shipped CRDs (server-side acceptance is covered by the e2e tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentic_operator.kube.resources import AGENTIC_SESSIONS, PROJECT_SETTINGS
from agentic_operator.sessions import bounds, model, validation

CRD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def load(name: str) -> dict[str, Any]:
    docs = list(yaml.safe_load_all((CRD_DIR / name).read_text()))
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


@pytest.fixture(scope="module")
def sessions_crd() -> dict[str, Any]:
    return load("agenticsessions.yaml")


@pytest.fixture(scope="module")
def settings_crd() -> dict[str, Any]:
    return load("projectsettings.yaml")


def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1alpha1"]
    v: dict[str, Any] = versions[0]
    assert v["served"] is True
    assert v["storage"] is True
    return v


def schema(crd: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = version(crd)["schema"]["openAPIV3Schema"]
    return s


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (for structural-schema checks)."""
    out = [(path, node)]
    for key, child in (node.get("properties") or {}).items():
        out += walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize(
    ("file", "resource", "singular", "short"),
    [
        ("agenticsessions.yaml", AGENTIC_SESSIONS, "agenticsession", "as"),
        ("projectsettings.yaml", PROJECT_SETTINGS, "projectsetting", "ps"),
    ],
)
def test_identity(file: str, resource: Any, singular: str, short: str) -> None:
    crd = load(file)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{resource.plural}.{resource.group}"
    spec = crd["spec"]
    assert spec["group"] == model.GROUP == resource.group
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["plural"], names["singular"], names["kind"]) == (
        resource.plural,
        singular,
        resource.kind,
    )
    assert names["shortNames"] == [short]
    assert version(crd)["name"] == model.VERSION == resource.version


@pytest.mark.parametrize("file", ["agenticsessions.yaml", "projectsettings.yaml"])
def test_structural_schema(file: str) -> None:
    """Every node typed (or int-or-string); pruning stays on everywhere but inside a custom MCP
    server's definition, whose shape belongs to the MCP server (the platform's schema keeps it)."""
    opaque = {".spec.mcpServers.custom{}"}
    for path, node in walk(schema(load(file))):
        if path in opaque:
            assert node == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, path
            continue
        assert "x-kubernetes-preserve-unknown-fields" not in node, path
        assert "type" in node or node.get("x-kubernetes-int-or-string") is True, path


def test_session_subresources_and_columns(sessions_crd: dict[str, Any]) -> None:
    v = version(sessions_crd)
    assert v["subresources"] == {"status": {}}
    assert v["additionalPrinterColumns"] == [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Run", "type": "integer", "priority": 1, "jsonPath": ".status.run"},
        {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def test_session_spec_fields(sessions_crd: dict[str, Any]) -> None:
    spec = schema(sessions_crd)["properties"]["spec"]["properties"]
    assert set(spec) == {
        "repos",
        "interactive",
        "initialPrompt",
        "displayName",
        "userContext",
        "llmSettings",
        "timeout",
        "inactivityTimeout",
        "stopOnRunFinished",
        "mcpServers",
        "autoPushOnComplete",
        "activeWorkflow",
        "environmentVariables",
        "mainRepoName",
        "mainRepoIndex",
    }
    repo = spec["repos"]["items"]
    assert repo["required"] == ["url"]
    assert (repo["properties"]["url"]["type"], repo["properties"]["url"]["minLength"]) == (
        "string",
        1,
    )
    assert repo["properties"]["branch"]["default"] == "main"
    assert repo["properties"]["autoPush"] == {
        "type": "boolean",
        "default": False,
        "description": repo["properties"]["autoPush"]["description"],
    }
    assert spec["interactive"]["default"] is True
    assert spec["autoPushOnComplete"]["default"] is False
    assert spec["timeout"]["type"] == "integer"
    assert spec["timeout"]["minimum"] == 1
    assert spec["timeout"]["default"] == 300, "as the platform's CRD: the backend reads it back"
    assert (spec["inactivityTimeout"]["type"], spec["inactivityTimeout"]["minimum"]) == (
        "integer",
        0,
    )
    assert "default" not in spec["inactivityTimeout"], "unset falls back to the project's value"
    assert spec["stopOnRunFinished"]["type"] == "boolean"
    assert set(spec["mcpServers"]["properties"]) == {"custom", "disabled"}
    llm = spec["llmSettings"]["properties"]
    assert llm["model"]["default"] == "claude-sonnet-4-6"
    assert (
        llm["temperature"]["type"],
        llm["temperature"]["minimum"],
        llm["temperature"]["maximum"],
    ) == ("number", 0, 2)
    assert llm["temperature"]["default"] == 0.7
    assert (llm["maxTokens"]["type"], llm["maxTokens"]["minimum"], llm["maxTokens"]["default"]) == (
        "integer",
        1,
        4000,
    )
    assert spec["environmentVariables"]["type"] == "object"
    assert spec["environmentVariables"]["additionalProperties"] == {"type": "string"}
    assert spec["mainRepoName"]["type"] == "string"
    assert spec["mainRepoIndex"]["x-kubernetes-int-or-string"] is True
    assert set(spec["userContext"]["properties"]) == {"userId", "displayName", "groups"}
    assert set(spec["activeWorkflow"]["properties"]) == {"gitUrl", "branch", "path"}


def test_session_status_fields(sessions_crd: dict[str, Any]) -> None:
    status = schema(sessions_crd)["properties"]["status"]["properties"]
    assert set(status) == {
        "phase",
        "observedGeneration",
        "run",
        "startTime",
        "completionTime",
        "lastActivityTime",
        "stoppedReason",
        "reconciledRepos",
        "reconciledWorkflow",
        "sdkSessionId",
        "sdkRestartCount",
        "conditions",
    }
    assert status["phase"]["enum"] == [str(p) for p in model.Phase]
    assert status["run"]["type"] == "integer"
    assert status["startTime"]["format"] == "date-time"
    assert status["lastActivityTime"]["format"] == "date-time"
    assert status["stoppedReason"]["enum"] == ["user", "inactivity"]
    assert status["completionTime"]["format"] == "date-time"
    cond = status["conditions"]["items"]
    assert cond["required"] == ["type", "status"]
    assert cond["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert set(cond["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def test_session_name_rule_matches_validation(sessions_crd: dict[str, Any]) -> None:
    from agentic_operator.sessions.validation import MAX_SESSION_NAME

    rules = [r["rule"] for r in schema(sessions_crd)["x-kubernetes-validations"]]
    assert f"self.metadata.name.size() <= {MAX_SESSION_NAME}" in rules


def test_project_settings(settings_crd: dict[str, Any]) -> None:
    v = version(settings_crd)
    assert v["subresources"] == {"status": {}}
    assert v["additionalPrinterColumns"] == [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    root = schema(settings_crd)
    assert [r["rule"] for r in root["x-kubernetes-validations"]] == [
        "self.metadata.name == 'projectsettings'"
    ]
    spec = root["properties"]["spec"]
    assert spec["required"] == ["groupAccess"]
    access = spec["properties"]["groupAccess"]["items"]
    assert access["required"] == ["groupName", "role"]
    assert access["properties"]["role"]["enum"] == ["admin", "edit", "view"]
    assert spec["properties"]["runnerSecretsName"]["type"] == "string"
    repo = spec["properties"]["repositories"]["items"]
    assert repo["required"] == ["url"]
    assert repo["properties"]["provider"]["enum"] == ["github", "gitlab"]
    idle = spec["properties"]["inactivityTimeoutSeconds"]
    assert (idle["type"], idle["minimum"], idle["default"]) == ("integer", 0, 86400)
    assert set(spec["properties"]["mcpServers"]["properties"]) == {"custom", "disabled"}
    status = root["properties"]["status"]["properties"]
    assert status["scheduledSessionRBACReady"]["type"] == "boolean"
    assert status["limitRangeReady"]["type"] == "boolean"
    assert status["groupBindingsCreated"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": bounds.MAX_INT32,
        "description": "Number of group RoleBindings in place after the last reconcile.",
    }
    assert idle["maximum"] == bounds.MAX_SECONDS
    assert status["conditions"]["type"] == "array"


def test_kustomization_lists_both() -> None:
    kust = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    assert sorted(kust["resources"]) == ["agenticsessions.yaml", "projectsettings.yaml"]
    for res in kust["resources"]:
        assert (CRD_DIR / res).is_file()


# --- bounds: what the API server refuses at admission, and validation.py refuses for old objects


@pytest.mark.parametrize("file", ["agenticsessions.yaml", "projectsettings.yaml"])
def test_every_numeric_field_has_a_maximum(file: str) -> None:
    """A number without a maximum is how ``spec.timeout: 10000000000`` got in; an int64 (format)
    is bounded by its type (metadata.generation and what is copied from it)."""
    for path, node in walk(schema(load(file))):
        numeric = node.get("type") in ("integer", "number") or node.get(
            "x-kubernetes-int-or-string"
        )
        if numeric:
            assert "maximum" in node or node.get("format") == "int64", path


SESSION_BOUNDS = [
    (".spec.timeout", 1, bounds.MAX_SECONDS),
    (".spec.inactivityTimeout", 0, bounds.MAX_SECONDS),
    (".spec.llmSettings.maxTokens", 1, bounds.MAX_TOKENS),
    (".spec.llmSettings.temperature", 0, bounds.MAX_TEMPERATURE),
    (".spec.mainRepoIndex", 0, bounds.MAX_MAIN_REPO_INDEX),
    (".status.run", 1, bounds.MAX_RUN),
    (".status.sdkRestartCount", 0, bounds.MAX_RUN),
]


@pytest.mark.parametrize(
    ("path", "low", "high"), SESSION_BOUNDS, ids=[b[0] for b in SESSION_BOUNDS]
)
def test_session_bounds_are_the_operators(
    sessions_crd: dict[str, Any], path: str, low: float, high: float
) -> None:
    node = dict(walk(schema(sessions_crd)))[path]
    assert (node["minimum"], node["maximum"]) == (low, high)


def test_limits_fit_the_token_request_api() -> None:
    """The longest duration a session may give, plus the default pending timeout and the margin,
    is still a lifetime the TokenRequest API accepts (600 .. 2^32 s); anything else is capped."""
    assert bounds.MAX_SECONDS + 600 + bounds.TOKEN_RUN_MARGIN <= bounds.TOKEN_MAX_EXPIRATION
    assert bounds.token_expiration(10**10) == 2**32
    assert bounds.token_expiration(1) == 600
    assert bounds.max_session_duration(600) + 600 + bounds.TOKEN_RUN_MARGIN == 2**32


def test_repo_list_and_url_bounds(sessions_crd: dict[str, Any]) -> None:
    nodes = dict(walk(schema(sessions_crd)))
    assert nodes[".spec.repos"]["maxItems"] == bounds.MAX_REPOS
    url, git_url = nodes[".spec.repos[].url"], nodes[".spec.activeWorkflow.gitUrl"]
    assert (url["pattern"], url["maxLength"]) == (
        validation.REPO_URL_PATTERN,
        bounds.MAX_URL_LENGTH,
    )
    assert (git_url["pattern"], git_url["maxLength"]) == (
        validation.WORKFLOW_URL_PATTERN,
        bounds.MAX_URL_LENGTH,
    )
    assert nodes[".spec.mainRepoIndex"]["pattern"] == "^[0-9]{1,2}$"


def test_user_context_bounds_are_the_operators(sessions_crd: dict[str, Any]) -> None:
    nodes = dict(walk(schema(sessions_crd)))
    for field in ("userId", "displayName"):
        assert nodes[f".spec.userContext.{field}"]["maxLength"] == bounds.MAX_USER_FIELD


URLS = [
    "https://github.com/o/r.git",
    "http://git.example:8080/r",
    "ssh://git@git.example:22/o/r.git",
    "git@github.com:o/r.git",
    "https://[::1]/r",
    "file:///etc/passwd",
    "not a url ://",
    "/tmp/x",
    "https://",
    "https://ex ample.com/r",
    "ext::sh -c touch% /tmp/pwned",
    "-uhttps://x",
    "https://host",
    "git@host:",
    "HTTPS://h/r",
    "https://user:pw@h/r",
    "https://h:99999/r",
    "ssh://-oProxyCommand=x/r",
]


@pytest.mark.parametrize("url", URLS)
def test_url_pattern_never_refuses_what_validation_accepts(url: str) -> None:
    """The schema's pattern is the coarse half of ``url_problem``: whatever validation accepts
    passes the pattern, so a valid spec is never refused at admission; the hostile ones the
    pattern lets through (a port out of range, credentials, a dash host) fail validation."""
    accepted = validation.url_problem(url) is None
    assert re.fullmatch(validation.REPO_URL_PATTERN, url) or not accepted
    assert re.fullmatch(validation.WORKFLOW_URL_PATTERN, url) or not accepted
