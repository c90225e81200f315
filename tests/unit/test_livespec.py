"""Spec changes of Running sessions (sessions/livespec.py): baselines, diffs, names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import livespec
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.livespec import Repo, Workflow
from agentic_operator.sessions.plan import CallRunner, Plan, StatusEdit, WriteStatus
from agentic_operator.sessions.runner import RunnerClient
from tests.unit import sessionfix as fix


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
            {"repos": [{"url": "u1"}, {"url": ""}, {"branch": "x"}, "u3"]},
            [Repo("u1", "main")],
            id="bad-entries-skipped",
        ),
        pytest.param(
            {"repos": [{"url": "u1"}, {"url": "u2"}, {"url": "u1", "branch": "dev"}]},
            [Repo("u1", "dev"), Repo("u2", "main")],
            id="duplicate-url-last-wins-in-first-place",
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
        pytest.param(
            [Repo("a", "main")], [Repo("a", "dev")], [Repo("a", "dev")], [], id="branch-change"
        ),
        pytest.param([Repo("a", "main")], [Repo("a", "main")], [], [], id="unchanged"),
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
    assert client.base_url("team-a", "s1", 9000) == (
        "http://session-s1.team-a.svc.cluster.local:9000"
    )
    assert RunnerClient("http://127.0.0.1:9/{namespace}/{session}/").base_url("ns", "s", 7) == (
        "http://127.0.0.1:9/ns/s"
    )


@pytest.mark.parametrize(
    "value", ["ftp://x", "session-{session}:8001", "http://x/{user}", "http://x/{0}"]
)
def test_bad_runner_endpoint(value: str) -> None:
    with pytest.raises(ValueError, match="RUNNER_ENDPOINT"):
        SessionConfig.from_env({"RUNNER_ENDPOINT": value})


# --- the push and what it records (rows A6, A7) -------------------------------------------------


def running(spec: Obj, status: Obj | None = None, generation: int = 2) -> Obj:
    sess = fix.session("Running", spec={"initialPrompt": "x", **spec}, generation=generation)
    sess["status"].update(status or {})
    return sess


def outcome(plan: Plan, errors: list[str | None] | None = None) -> tuple[list[Any], Plan]:
    call = plan.actions[0]
    assert isinstance(call, CallRunner)
    recorded = call.decide(errors if errors is not None else [None] * len(call.calls))
    return [(c.path, c.body) for c in call.calls], recorded


def status_of(plan: Plan) -> Obj:
    write = next(a for a in plan.actions if isinstance(a, WriteStatus))
    return write.status


def cond(status: Obj, type_: str) -> Obj:
    return next(c for c in status["conditions"] if c["type"] == type_)


A = "https://g/o/a.git"
B = "https://g/o/b.git"


def test_branch_change_is_pushed_and_recorded() -> None:
    reconciled = [{"url": A, "branch": "main", "name": "a", "status": "Ready", "clonedAt": "t0"}]
    sess = running({"repos": [{"url": A, "branch": "dev"}]}, {"reconciledRepos": reconciled})
    calls, recorded = outcome(livespec.push(fix.observe(sess, fix.job()), "A7", fix.job()))
    assert calls == [("/repos/add", {"url": A, "branch": "dev", "name": "a"})]
    st = status_of(recorded)
    assert st["reconciledRepos"] == [
        {"url": A, "branch": "dev", "name": "a", "status": "Ready", "clonedAt": fix.ago(0)}
    ]
    assert cond(st, "ReposReconciled")["message"] == (
        "Reconciled 1 repos (added 0, removed 0, branch changed 1)"
    )
    assert st["observedGeneration"] == 2
    assert recorded.requeue_after is None


def test_a_failed_repo_is_recorded_failed_and_retried_soon_then_less_often() -> None:
    sess = running({"repos": [{"url": A}, {"url": B}]}, {"reconciledRepos": []})
    obs = fix.observe(sess, fix.job())
    calls, recorded = outcome(livespec.push(obs, "A7", fix.job()), [None, "HTTP 500 clone failed"])
    assert [c[1]["name"] for c in calls] == ["a", "b"]
    st = status_of(recorded)
    assert [(e["name"], e["status"], "clonedAt" in e) for e in st["reconciledRepos"]] == [
        ("a", "Ready", True),
        ("b", "Failed", False),
    ]
    assert cond(st, "ReposReconciled")["status"] == "False"
    assert cond(st, "Reconciled")["reason"] == "RepoReconciliationFailed"
    assert st["observedGeneration"] == 1, "the generation is not applied while a repo failed"
    assert recorded.requeue_after == livespec.RETRY_MIN
    # Tried again: only the failed one; ten minutes into the failure the next try is 5 min away.
    later = {
        **st,
        "conditions": [{**c, "lastTransitionTime": fix.ago(600)} for c in st["conditions"]],
    }
    again_calls, again = outcome(
        livespec.push(fix.observe(running(sess["spec"], later), fix.job()), "A7", fix.job()),
        ["HTTP 500 clone failed"],
    )
    assert again_calls == [("/repos/add", {"url": B, "branch": "main", "name": "b"})]
    assert again.requeue_after == livespec.RETRY_MAX


def test_removed_repo_and_the_service_port() -> None:
    reconciled = [{"url": A, "branch": "main", "status": "Ready"}, {"url": B, "branch": "main"}]
    sess = running({"repos": [{"url": A}]}, {"reconciledRepos": reconciled})
    svc = {"spec": {"ports": [{"name": "agui", "port": 9100}]}}
    plan = livespec.push(fix.observe(sess, fix.job(), svc=svc), "A7", fix.job())
    call = plan.actions[0]
    assert isinstance(call, CallRunner)
    assert call.port == 9100
    calls, recorded = outcome(plan)
    assert calls == [("/repos/remove", {"name": "b"})]
    assert [e["url"] for e in status_of(recorded)["reconciledRepos"]] == [A]


def test_deferred_workflow_is_pushed_until_the_runner_answers() -> None:
    wf = {"activeWorkflow": {"gitUrl": "https://g/o/wf.git", "path": "p"}}
    env = {"ACTIVE_WORKFLOW_GIT_URL": "https://g/o/wf.git", "ACTIVE_WORKFLOW_PATH": "p"}
    job_obj = {**fix.job(), **job(**env)}
    sess = running(wf, generation=1)
    assert livespec.workflow_pending(fix.observe(sess, job_obj))
    calls, failed = outcome(
        livespec.push(fix.observe(sess, job_obj), "A7", job_obj), ["connection refused"]
    )
    assert calls == [("/workflow", {"gitUrl": "https://g/o/wf.git", "branch": "main", "path": "p"})]
    st = status_of(failed)
    assert cond(st, "WorkflowReconciled")["status"] == "False"
    assert cond(st, "Reconciled")["reason"] == "WorkflowReconciliationFailed"
    assert "reconciledWorkflow" not in st
    assert failed.requeue_after == livespec.RETRY_MIN
    _, ok = outcome(livespec.push(fix.observe(running(wf, st, 1), job_obj), "A7", job_obj))
    st = status_of(ok)
    assert st["reconciledWorkflow"]["status"] == "Active"
    assert cond(st, "WorkflowReconciled")["status"] == "True"
    assert not livespec.workflow_pending(fix.observe(running(wf, st, 1), job_obj))


def test_a_starting_runner_has_the_jobs_repos() -> None:
    job_obj = {**fix.job(), **job(REPOS_JSON=json.dumps([{"url": A, "branch": "x"}]))}
    sess = fix.session("Creating", spec={"repos": [{"url": A, "branch": "x"}]})
    st = StatusEdit(sess, fix.NOW)
    livespec.record_start(st, fix.observe(sess, job_obj), job_obj)
    assert st.new["reconciledRepos"] == [
        {"url": A, "branch": "x", "name": "a", "status": "Ready", "clonedAt": fix.ago(0)}
    ]
    assert cond(st.new, "WorkflowReconciled")["reason"] == "NotConfigured"
    empty = StatusEdit(fix.session("Creating"), fix.NOW)
    livespec.record_start(empty, fix.observe(fix.session("Creating"), fix.job()), fix.job())
    assert "reconciledRepos" not in empty.new
    assert cond(empty.new, "ReposReconciled")["reason"] == "NoRepos"


def test_runner_endpoint_may_name_the_port() -> None:
    cfg = SessionConfig.from_env({"RUNNER_ENDPOINT": "http://127.0.0.1:{port}/{session}"})
    assert RunnerClient(cfg.runner_endpoint).base_url("ns", "s", 9000) == "http://127.0.0.1:9000/s"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 2700),
        ({"RUNNER_TOKEN_REFRESH_INTERVAL": "20"}, 20),
        ({"RUNNER_TOKEN_REFRESH_INTERVAL": "3599"}, 3599),
    ],
)
def test_token_refresh_interval(env: dict[str, str], expected: int) -> None:
    assert SessionConfig.from_env(env).token_refresh_interval == expected


@pytest.mark.parametrize("value", ["0", "-5", "x", "3600"])
def test_bad_token_refresh_interval(value: str) -> None:
    with pytest.raises(ValueError, match=r"^RUNNER_TOKEN_REFRESH_INTERVAL"):
        SessionConfig.from_env({"RUNNER_TOKEN_REFRESH_INTERVAL": value})
