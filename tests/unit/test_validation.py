"""validate_session: each rule, with good and bad inputs."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.validation import MAX_SESSION_NAME, FieldError, validate_session


def session(name: str = "s1", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": "u"}, "spec": spec}


GOOD = [
    pytest.param(session(), id="empty-spec"),
    pytest.param({"metadata": {"name": "s1"}}, id="no-spec"),
    pytest.param(session("a" * MAX_SESSION_NAME), id="name-at-limit"),
    pytest.param(session("0-ab-c9"), id="name-digits-dashes"),
    pytest.param(
        session(
            repos=[{"url": "https://github.com/o/r.git", "branch": "dev"}, {"url": "git@h:o/r"}],
            mainRepoIndex=1,
            mainRepoName="r",
            timeout=1,
            interactive=False,
            autoPushOnComplete=True,
            initialPrompt="hi",
            displayName="x",
            llmSettings={"model": "m", "temperature": 0, "maxTokens": 1},
            environmentVariables={"FOO": "1", "_bar2": "", "PARENT_SESSION_ID": "p"},
            activeWorkflow={"gitUrl": "https://g/w", "branch": "main", "path": "wf"},
            userContext={"userId": "u1", "displayName": "U", "groups": ["g"]},
        ),
        id="full-spec",
    ),
    pytest.param(session(llmSettings={"temperature": 2.0}), id="temperature-upper-bound"),
    pytest.param(session(llmSettings={"temperature": 0.7}), id="temperature-float"),
    pytest.param(session(repos=[{"url": "u"}], mainRepoIndex="0"), id="main-repo-index-string"),
]


@pytest.mark.parametrize("obj", GOOD)
def test_valid(obj: Obj) -> None:
    assert validate_session(obj) == []


BAD = [
    pytest.param(
        session("a" * (MAX_SESSION_NAME + 1)), "metadata.name", "at most 55", id="name-too-long"
    ),
    pytest.param(session("a" * 59), "metadata.name", "at most 55", id="name-59"),
    pytest.param(session("a.b"), "metadata.name", "DNS label", id="name-with-dot"),
    pytest.param({"metadata": {}, "spec": {}}, "metadata.name", "is required", id="name-missing"),
    pytest.param(
        {"metadata": {"name": "s"}, "spec": []}, "spec", "must be an object", id="spec-not-object"
    ),
    pytest.param(session(repos="x"), "spec.repos", "must be a list", id="repos-not-list"),
    pytest.param(session(repos=["x"]), "spec.repos[0]", "must be an object", id="repo-not-object"),
    pytest.param(
        session(repos=[{"branch": "b"}]), "spec.repos[0].url", "is required", id="repo-url-missing"
    ),
    pytest.param(
        session(repos=[{"url": "ok"}, {"url": " "}]),
        "spec.repos[1].url",
        "non-empty",
        id="repo-url-blank",
    ),
    pytest.param(
        session(repos=[{"url": 3}]),
        "spec.repos[0].url",
        "non-empty string",
        id="repo-url-not-string",
    ),
    pytest.param(
        session(repos=[{"url": "u", "branch": 1}]),
        "spec.repos[0].branch",
        "string",
        id="repo-branch",
    ),
    pytest.param(session(timeout=0), "spec.timeout", "positive integer", id="timeout-zero"),
    pytest.param(session(timeout=-1), "spec.timeout", "positive integer", id="timeout-negative"),
    pytest.param(session(timeout="300"), "spec.timeout", "positive integer", id="timeout-string"),
    pytest.param(session(timeout=1.5), "spec.timeout", "positive integer", id="timeout-float"),
    pytest.param(session(timeout=True), "spec.timeout", "positive integer", id="timeout-bool"),
    pytest.param(
        session(llmSettings="x"), "spec.llmSettings", "must be an object", id="llm-not-object"
    ),
    pytest.param(
        session(llmSettings={"temperature": 2.01}),
        "spec.llmSettings.temperature",
        "between 0 and 2",
        id="temperature-high",
    ),
    pytest.param(
        session(llmSettings={"temperature": -0.1}),
        "spec.llmSettings.temperature",
        "between 0 and 2",
        id="temperature-negative",
    ),
    pytest.param(
        session(llmSettings={"temperature": "hot"}),
        "spec.llmSettings.temperature",
        "must be a number",
        id="temperature-string",
    ),
    pytest.param(
        session(llmSettings={"temperature": float("nan")}),
        "spec.llmSettings.temperature",
        "must be a number",
        id="temperature-nan",
    ),
    pytest.param(
        session(llmSettings={"maxTokens": 0}),
        "spec.llmSettings.maxTokens",
        "positive integer",
        id="max-tokens-zero",
    ),
    pytest.param(
        session(llmSettings={"maxTokens": 10.5}),
        "spec.llmSettings.maxTokens",
        "positive integer",
        id="max-tokens-float",
    ),
    pytest.param(
        session(llmSettings={"model": ""}),
        "spec.llmSettings.model",
        "non-empty string",
        id="model-empty",
    ),
    pytest.param(
        session(environmentVariables=["A=1"]), "spec.environmentVariables", "map", id="env-not-map"
    ),
    pytest.param(
        session(environmentVariables={"1ABC": "x"}),
        "spec.environmentVariables[1ABC]",
        "valid environment variable name",
        id="env-name-digit",
    ),
    pytest.param(
        session(environmentVariables={"A-B": "x"}),
        "spec.environmentVariables[A-B]",
        "valid environment variable name",
        id="env-name-dash",
    ),
    pytest.param(
        session(environmentVariables={"": "x"}),
        "spec.environmentVariables[]",
        "valid environment variable name",
        id="env-name-empty",
    ),
    pytest.param(
        session(environmentVariables={"A": 1}),
        "spec.environmentVariables[A]",
        "value must be a string",
        id="env-value-int",
    ),
    pytest.param(
        session(environmentVariables={"A": None}),
        "spec.environmentVariables[A]",
        "value must be a string",
        id="env-value-null",
    ),
    pytest.param(
        session(interactive="yes"), "spec.interactive", "boolean", id="interactive-string"
    ),
    pytest.param(
        session(autoPushOnComplete=1), "spec.autoPushOnComplete", "boolean", id="autopush-int"
    ),
    pytest.param(session(initialPrompt=5), "spec.initialPrompt", "string", id="prompt-not-string"),
    pytest.param(
        session(mainRepoIndex=-1), "spec.mainRepoIndex", "non-negative", id="main-index-negative"
    ),
    pytest.param(
        session(mainRepoIndex="first"), "spec.mainRepoIndex", "non-negative", id="main-index-word"
    ),
    pytest.param(
        session(repos=[{"url": "u"}], mainRepoIndex=1),
        "spec.mainRepoIndex",
        "out of range",
        id="main-index-range",
    ),
    pytest.param(
        session(activeWorkflow={"gitUrl": 1}),
        "spec.activeWorkflow.gitUrl",
        "string",
        id="workflow-url",
    ),
    pytest.param(
        session(activeWorkflow="x"),
        "spec.activeWorkflow",
        "must be an object",
        id="workflow-not-object",
    ),
    pytest.param(
        session(userContext={"userId": 7}), "spec.userContext.userId", "string", id="user-id"
    ),
]


@pytest.mark.parametrize(("obj", "field", "fragment"), BAD)
def test_invalid(obj: Obj, field: str, fragment: str) -> None:
    errors = validate_session(obj)
    assert [e.field for e in errors] == [field], errors
    assert fragment in errors[0].message


def test_all_errors_reported_together() -> None:
    errors = validate_session(session(timeout=0, repos=[{}], llmSettings={"temperature": 3}))
    assert {e.field for e in errors} == {
        "spec.timeout",
        "spec.repos[0].url",
        "spec.llmSettings.temperature",
    }


def test_field_error_str() -> None:
    err = FieldError("spec.llmSettings.temperature", "must be between 0 and 2")
    assert str(err) == "spec.llmSettings.temperature: must be between 0 and 2"
