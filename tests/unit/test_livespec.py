"""Spec changes of Running sessions (sessions/livespec.py): baselines, diffs, names."""

from __future__ import annotations

import json

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import livespec
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.livespec import Repo, Workflow
from agentic_operator.sessions.runner import RunnerClient


def session(spec: Obj | None = None, status: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "s1", "namespace": "ns"},
        "spec": spec or {},
        "status": status or {},
    }


def job(**env: str) -> Obj:
    containers = [
        {"name": "sidecar", "env": [{"name": "REPOS_JSON", "value": "[]"}]},
        {"name": "ambient-code-runner", "env": [{"name": k, "value": v} for k, v in env.items()]},
    ]
    return {"spec": {"template": {"spec": {"containers": containers}}}}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/org/repo.git", "repo"),
        ("https://github.com/org/repo", "repo"),
        ("https://github.com/org/repo/", "repo"),
        ("git@github.com:org/tool.git", "tool"),
        ("git@host:tool.git", "tool"),
        ("repo", "repo"),
    ],
)
def test_repo_name(url: str, name: str) -> None:
    assert livespec.repo_name(url) == name


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, [], id="none"),
        pytest.param({"repos": "nope"}, [], id="not-a-list"),
        pytest.param(
            {"repos": [{"url": "u1"}, {"url": "u2", "branch": "dev"}]},
            [Repo("u1", "main"), Repo("u2", "dev")],
            id="branch-defaults-to-main",
        ),
        pytest.param(
            {"repos": [{"url": "u1"}, {"url": ""}, {"branch": "x"}, "u3", {"url": "u1"}]},
            [Repo("u1", "main")],
            id="bad-and-duplicate-entries-skipped",
        ),
    ],
)
def test_desired_repos(spec: Obj, expected: list[Repo]) -> None:
    assert livespec.desired_repos(session(spec)) == expected


@pytest.mark.parametrize(
    ("status", "job_obj", "expected"),
    [
        pytest.param({}, None, [], id="nothing-known"),
        pytest.param(
            {},
            job(REPOS_JSON=json.dumps([{"url": "u1", "branch": "main"}])),
            [Repo("u1", "main")],
            id="from-the-job-env",
        ),
        pytest.param({}, job(REPOS_JSON="not json"), [], id="bad-job-env"),
        pytest.param(
            {"reconciledRepos": [{"url": "u2", "branch": "b", "status": "Failed"}]},
            job(REPOS_JSON=json.dumps([{"url": "u1"}])),
            [Repo("u2", "b", "Failed")],
            id="status-wins-over-job-env",
        ),
        pytest.param(
            {"reconciledRepos": []},
            job(REPOS_JSON=json.dumps([{"url": "u1"}])),
            [],
            id="empty-status-list-is-a-baseline",
        ),
    ],
)
def test_baseline_repos(status: Obj, job_obj: Obj | None, expected: list[Repo]) -> None:
    assert livespec.baseline_repos(session(status=status), job_obj) == expected


@pytest.mark.parametrize(
    ("baseline", "desired", "to_add", "to_remove"),
    [
        pytest.param([], [], [], [], id="nothing"),
        pytest.param(
            [Repo("a", "main")],
            [Repo("a", "main"), Repo("b", "main")],
            [Repo("b", "main")],
            [],
            id="added",
        ),
        pytest.param(
            [Repo("a", "main"), Repo("b", "main")],
            [Repo("b", "main")],
            [],
            [Repo("a", "main")],
            id="removed",
        ),
        pytest.param(
            [Repo("a", "main", "Failed")],
            [Repo("a", "main")],
            [Repo("a", "main")],
            [],
            id="failed-add-is-retried",
        ),
        pytest.param(
            [Repo("a", "main", "Failed")],
            [],
            [],
            [Repo("a", "main", "Failed")],
            id="failed-remove-is-retried",
        ),
        pytest.param([Repo("a", "main")], [Repo("a", "dev")], [], [], id="branch-change-by-url"),
    ],
)
def test_repo_changes(
    baseline: list[Repo], desired: list[Repo], to_add: list[Repo], to_remove: list[Repo]
) -> None:
    assert livespec.repo_changes(baseline, desired) == (to_add, to_remove)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"activeWorkflow": {"gitUrl": ""}}, None, id="empty-url"),
        pytest.param({"activeWorkflow": {"gitUrl": "w"}}, Workflow("w", "main", ""), id="defaults"),
        pytest.param(
            {"activeWorkflow": {"gitUrl": "w", "branch": "b", "path": "p"}},
            Workflow("w", "b", "p"),
            id="full",
        ),
    ],
)
def test_desired_workflow(spec: Obj, expected: Workflow | None) -> None:
    assert livespec.desired_workflow(session(spec)) == expected


@pytest.mark.parametrize(
    ("status", "job_obj", "expected"),
    [
        pytest.param({}, None, None, id="nothing-known"),
        pytest.param(
            {},
            job(ACTIVE_WORKFLOW_GIT_URL="w", ACTIVE_WORKFLOW_PATH="p"),
            Workflow("w", "main", "p"),
            id="from-the-job-env",
        ),
        pytest.param(
            {"reconciledWorkflow": {"gitUrl": "w2", "branch": "b", "status": "Active"}},
            job(ACTIVE_WORKFLOW_GIT_URL="w"),
            Workflow("w2", "b", ""),
            id="status-wins",
        ),
        pytest.param(
            {"reconciledWorkflow": {"gitUrl": "w2", "status": "Failed"}},
            None,
            None,
            id="failed-is-not-applied",
        ),
    ],
)
def test_baseline_workflow(status: Obj, job_obj: Obj | None, expected: Workflow | None) -> None:
    assert livespec.baseline_workflow(session(status=status), job_obj) == expected


def test_runner_endpoint_template() -> None:
    client = RunnerClient(SessionConfig().runner_endpoint)
    assert client.base_url("team-a", "s1") == "http://session-s1.team-a.svc.cluster.local:8001"
    assert RunnerClient("http://127.0.0.1:9/{namespace}/{session}/").base_url("ns", "s") == (
        "http://127.0.0.1:9/ns/s"
    )


@pytest.mark.parametrize(
    "value", ["ftp://x", "session-{session}:8001", "http://x/{user}", "http://x/{0}"]
)
def test_bad_runner_endpoint(value: str) -> None:
    with pytest.raises(ValueError, match="RUNNER_ENDPOINT"):
        SessionConfig.from_env({"RUNNER_ENDPOINT": value})
