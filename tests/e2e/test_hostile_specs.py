"""Hostile specs against the real API server: refused at admission, naming the field, by the
shipped CRD; and a session stored before the CRD had its bounds ends Failed/InvalidSpec.

The stored-before-bounds object is made the way it came to exist: the CRD of the earlier version
(the shipped one without its maxima and patterns) is applied, the session created, and the
shipped CRD applied again before the operator starts, as an upgrade does.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    condition,
    create,
    exists,
    runner_secret,
    session,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
CRD = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "agenticsessions.yaml"
BOUNDS = ("maximum", "maxItems", "maxLength", "pattern")

HOSTILE: list[Any] = [
    pytest.param({"timeout": 10_000_000_000}, "spec.timeout", id="timeout-1e10"),
    pytest.param({"timeout": 2**31}, "spec.timeout", id="timeout-int32-plus-1"),
    pytest.param({"inactivityTimeout": 2**40}, "spec.inactivityTimeout", id="idle"),
    pytest.param(
        {"llmSettings": {"maxTokens": 2**40}}, "spec.llmSettings.maxTokens", id="max-tokens"
    ),
    pytest.param({"llmSettings": {"temperature": 3}}, "spec.llmSettings.temperature", id="temp"),
    pytest.param({"mainRepoIndex": 100}, "spec.mainRepoIndex", id="main-index"),
    pytest.param({"mainRepoIndex": "1000"}, "spec.mainRepoIndex", id="main-index-digits"),
    pytest.param(
        {"repos": [{"url": f"https://example.com/o/r{i}"} for i in range(101)]},
        "spec.repos",
        id="101-repos",
    ),
    pytest.param({"repos": [{"url": "file:///etc/passwd"}]}, "spec.repos[0].url", id="file"),
    pytest.param({"repos": [{"url": "not a url ://"}]}, "spec.repos[0].url", id="words"),
    pytest.param({"repos": [{"url": "/tmp/x"}]}, "spec.repos[0].url", id="local-path"),
    pytest.param({"repos": [{"url": "https://"}]}, "spec.repos[0].url", id="no-host"),
    pytest.param({"repos": [{"url": "https://ex ample.com/r"}]}, "spec.repos[0].url", id="space"),
    pytest.param(
        {"repos": [{"url": "ext::sh -c touch% /tmp/pwned"}]}, "spec.repos[0].url", id="ext"
    ),
    pytest.param({"repos": [{"url": "-uhttps://x"}]}, "spec.repos[0].url", id="option"),
    pytest.param(
        {"activeWorkflow": {"gitUrl": "file:///srv/wf"}},
        "spec.activeWorkflow.gitUrl",
        id="workflow-file",
    ),
]


@pytest.mark.parametrize(("spec", "field"), HOSTILE)
def test_hostile_specs_are_refused_at_admission(
    deployed: Cluster, namespace: str, spec: dict[str, Any], field: str
) -> None:
    body = session("hostile", namespace, **spec)
    r = deployed.kubectl("create", "-f", "-", input=json.dumps(body), check=False)
    assert r.returncode != 0, "the API server admitted it"
    assert "is invalid" in r.stderr
    assert field in r.stderr, r.stderr
    assert not exists(deployed, "agenticsession", "hostile", namespace)


def test_the_bounds_admit_their_maxima(deployed: Cluster, namespace: str) -> None:
    spec: dict[str, Any] = {
        "timeout": 2**31 - 1,
        "inactivityTimeout": 2**31 - 1,
        "llmSettings": {"maxTokens": 2**31 - 1},
        "repos": [{"url": "git@github.com:o/r.git"}, {"url": "ssh://git@g.example:22/o/r"}],
        "mainRepoIndex": "1",
        "activeWorkflow": {"gitUrl": ""},
    }
    r = deployed.kubectl(
        "create",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps(session("edge", namespace, **spec)),
    )
    assert r.returncode == 0


def unbounded(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD as an earlier version shipped it: no maxima, lengths or patterns."""
    out = copy.deepcopy(crd)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            for key in BOUNDS:
                node.pop(key, None)
            for child in node.values():
                strip(child)
        elif isinstance(node, list):
            for child in node:
                strip(child)

    strip(out["spec"]["versions"][0]["schema"])
    return out


@pytest.fixture
def earlier_crd(deployed: Cluster) -> Iterator[None]:
    """The unbounded CRD for the test's setup; the shipped one again whatever happens."""
    shipped = yaml.safe_load(CRD.read_text())
    deployed.kubectl("apply", "-f", "-", input=json.dumps(unbounded(shipped)))
    try:
        yield
    finally:
        deployed.kubectl("apply", "-f", str(CRD))
        deployed.kubectl(
            "wait", "--for=condition=established", "crd/agenticsessions.vteam.ambient-code"
        )


def test_a_session_stored_before_the_bounds_fails_with_invalid_spec(
    deployed: Cluster, namespace: str, start_operator: StartOperator, earlier_crd: None
) -> None:
    runner_secret(deployed, namespace)
    create(
        deployed,
        session(
            "stored-before",
            namespace,
            timeout=10_000_000_000,
            repos=[{"url": "file:///etc/passwd"}],
        ),
    )
    deployed.kubectl("apply", "-f", str(CRD))  # the upgrade: the bounds arrive, the object stays
    start_operator()
    failed = wait_phase(deployed, namespace, "stored-before", "Failed", timeout=60)
    ready = condition(failed, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.timeout: must be an integer between 1 and 2147483647" in ready["message"]
    assert "spec.repos[0].url: scheme 'file' is not allowed" in ready["message"]
    assert condition(failed, "ValidSpec")["status"] == "False"
    assert not exists(deployed, "job", "stored-before-job", namespace)


def test_what_the_schema_lets_through_validation_refuses(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """The pattern is the coarse half of the URL rule: a password or a port out of range passes
    admission and fails the session."""
    runner_secret(deployed, namespace)
    start_operator()
    create(deployed, session("creds", namespace, repos=[{"url": "https://u:pw@example.com/o/r"}]))
    failed = wait_phase(deployed, namespace, "creds", "Failed", timeout=60)
    ready = condition(failed, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.repos[0].url: must not contain credentials" in ready["message"]
    assert "pw" not in ready["message"]


# The names the platform gives sessions: the backend's ``agentic-session-<unix seconds>``, and the
# session-trigger's scheduled runs, ``<display name, at most 40>-<unix seconds>`` (51 at most).
PLATFORM_NAMES = [
    "agentic-session-1764680000",
    "nightly-triage-of-the-issue-tracker-repo-1764680000",
    "a" * 40 + "-1764680000",
    "s" * 55,
]


def test_every_name_the_platform_makes_is_admitted_and_a_longer_one_is_refused_saying_why(
    deployed: Cluster, namespace: str
) -> None:
    for name in PLATFORM_NAMES:
        body = session(name, namespace)
        deployed.kubectl("create", "-f", "-", input=json.dumps(body))
        assert exists(deployed, "agenticsession", name, namespace)
    for name, why in [("s" * 56, "at most 55 characters"), ("a.b", "must not contain '.'")]:
        body = session(name, namespace)
        r = deployed.kubectl("create", "-f", "-", input=json.dumps(body), check=False)
        assert r.returncode != 0, f"{name} was admitted"
        assert why in r.stderr, r.stderr
