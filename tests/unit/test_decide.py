"""decide(): one case per row of the phase table in docs/sessions.md, and per failure mapping.

Each case is an observation and what the plan must be: the row it names, the phase and Ready
reason of the status it writes (if any), its actions in order, and when it asks to look again.
A last test reads the table out of docs/sessions.md and fails when a row has no case here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import inactivity
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.decide import decide
from agentic_operator.sessions.observe import Observation, StartInputs
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    CallRunner,
    Create,
    Delete,
    EnsureIdentity,
    Patch,
    PatchSession,
    Plan,
    ProvisionToken,
    Replace,
    WriteStatus,
)
from tests.unit.sessionfix import (
    CFG,
    RUNNING,
    ago,
    cond,
    exited,
    job,
    observe,
    pod,
    service,
    session,
    waiting,
)

STOP = {"ambient-code.io/desired-phase": "Stopped"}
START = {"ambient-code.io/desired-phase": "Running"}
FORCE = {"ambient-code.io/force-execute-prompt": "true"}
LEFT = 590.0  # pending time left of a run started 10 s ago (PENDING_TIMEOUT 600)
IDLE_LEFT = 86390.0  # idle time left of a run started 10 s ago (DEFAULT_INACTIVITY_TIMEOUT 24 h)
IDLE = {"ambient-code.io/stop-reason": "inactivity", **STOP}
TOKEN_LEFT = 2690.0  # refresh time left of a token minted 10 s ago (45 min)
WORKFLOW = {"activeWorkflow": {"gitUrl": "https://g/x/wf.git", "path": "p"}}
VERTEX = SessionConfig(
    use_vertex=True,
    cloud_ml_region="r",
    vertex_project_id="p",
    google_application_credentials="/app/vertex/c.json",
    backend_namespace="backend",
)


def kind(action: Any) -> str:
    if isinstance(action, WriteStatus):
        return "Write"
    if isinstance(action, PatchSession):
        return "Patch"
    if isinstance(action, ProvisionToken):
        return "Token"
    if isinstance(action, EnsureIdentity):
        return "Identity"
    if isinstance(action, CallRunner):
        return "Runner"
    if isinstance(action, Create):
        return f"Create:{action.body['kind']}"
    if isinstance(action, Patch):
        return f"Patch:{action.resource.kind}"
    if isinstance(action, Replace):
        return f"Replace:{action.body['kind']}"
    assert isinstance(action, Delete)
    return f"Delete:{action.resource.kind}/{action.propagation}"


def written(plan: Plan) -> Obj | None:
    return next((a.status for a in plan.actions if isinstance(a, WriteStatus)), None)


def ready_reason(status: Obj) -> str | None:
    return next((c["reason"] for c in status["conditions"] if c["type"] == "Ready"), None)


def summary(plan: Plan) -> tuple[Any, ...]:
    status = written(plan)
    return (
        plan.row,
        status["phase"] if status else None,
        ready_reason(status) if status else None,
        tuple(kind(a) for a in plan.actions),
        plan.requeue_after,
    )


def unschedulable(message: str) -> Obj:
    p = pod(None, phase="Pending", node=None)
    p["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]
    return p


def init_failed() -> Obj:
    """A runner pod whose init-hydrate exited 1 (the state store unreachable)."""
    p = pod(waiting("PodInitializing"), phase="Failed")
    p["status"]["initContainerStatuses"] = [
        {"name": "init-hydrate", "state": exited(1)},
        {"name": "state-sync", "state": waiting("PodInitializing")},
    ]
    return p


def failed_job(reason: str = "BackoffLimitExceeded") -> Obj:
    return job(cond("FailureTarget", reason), cond("Failed", reason))


CASES: list[tuple[str, Observation, tuple[Any, ...]]] = [
    # --- new session
    ("N1", observe(session()), ("N1", "Pending", "Pending", ("Write",), NEXT_STEP)),
    # --- Pending
    (
        "P1 stop, no Job",
        observe(session("Pending", ann=STOP)),
        ("P1/X2", "Stopped", "UserStopped", ("Write", "Patch"), None),
    ),
    (
        "P1 stop, Job",
        observe(session("Pending", ann=STOP), job()),
        ("P1/X1", "Stopping", "Stopping", ("Delete:Job/Foreground", "Write"), 2.0),
    ),
    (
        "P1 stop, Job not confirmed",
        observe(session("Pending", ann=STOP), confirmed=False),
        ("P1-", None, None, (), None),
    ),
    (
        "P2 invalid spec",
        observe(session("Pending", spec={"llmSettings": {"temperature": 5}})),
        ("P2", "Failed", "InvalidSpec", ("Write",), None),
    ),
    (
        "P3 pending timeout",
        observe(session("Pending", started=700), job()),
        ("P3", "Failed", "PendingTimeout", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "P4 Job not ours",
        observe(session("Pending"), job(owned=False)),
        ("P4", "Pending", None, ("Write",), 5.0),
    ),
    (
        "P5 Job of an earlier run",
        observe(session("Pending", run=2), job(run=1)),
        ("P5", None, None, ("Delete:Job/Background",), 1.0),
    ),
    (
        "P5 Job of an earlier run, being deleted",
        observe(session("Pending", run=2), job(run=1, deleting=True)),
        ("P5", None, None, (), 1.0),
    ),
    (
        "P6 Job of this run exists",
        observe(session("Pending"), job()),
        ("P6", "Creating", "Pending", ("Write",), NEXT_STEP),
    ),
    (
        "P6 restart request cleared with the Job",
        observe(session("Pending", run=2, ann=START), job(run=2)),
        ("P6", "Creating", "Pending", ("Write", "Patch"), NEXT_STEP),
    ),
    (
        "P6 force-execute-prompt cleared with the Job",
        observe(session("Pending", run=2, ann={**START, **FORCE}), job(run=2)),
        ("P6", "Creating", "Pending", ("Write", "Patch"), NEXT_STEP),
    ),
    (
        "P6 force-execute-prompt alone cleared with the Job",
        observe(session("Pending", run=1, ann=FORCE), job(run=1)),
        ("P6", "Creating", "Pending", ("Write", "Patch"), NEXT_STEP),
    ),
    (
        "P- start inputs not read",
        observe(session("Pending"), start=None),
        ("P-", None, None, (), None),
    ),
    (
        "P7 runner secret missing",
        observe(session("Pending"), start=StartInputs(runner_secret=False)),
        ("P7", "Pending", None, ("Write",), 5.0),
    ),
    (
        "P8 Vertex secret missing",
        observe(session("Pending"), cfg=VERTEX, start=StartInputs(runner_secret=True)),
        ("P8", "Failed", "VertexSecretMissing", ("Write",), None),
    ),
    (
        "P9 start the run",
        observe(session("Pending")),
        (
            "P9",
            "Creating",
            "Pending",
            (
                "Identity",
                "Token",
                "Patch",
                "Create:NetworkPolicy",
                "Create:Job",
                "Write",
            ),
            LEFT,
        ),
    ),
    (
        "P9 token current (no token action)",
        observe(
            session("Pending"),
            start=StartInputs(runner_secret=True, token_secret=None),
        ),
        (
            "P9",
            "Creating",
            "Pending",
            ("Identity", "Token", "Patch", "Create:NetworkPolicy", "Create:Job", "Write"),
            LEFT,
        ),
    ),
    # --- Creating / Running
    (
        "A1 stop while Creating",
        observe(session("Creating", ann=STOP), job()),
        ("A1/X1", "Stopping", "Stopping", ("Delete:Job/Foreground", "Write"), 2.0),
    ),
    (
        "A1 stop while Running, Job gone",
        observe(session("Running", ann=STOP)),
        ("A1/X2", "Stopped", "UserStopped", ("Write", "Patch"), None),
    ),
    (
        "A- Job missing from the cache",
        observe(session("Running"), confirmed=False),
        ("A-", None, None, (), None),
    ),
    (
        "A2 Job vanished",
        observe(session("Running")),
        ("A2", "Pending", "JobMissing", ("Write",), NEXT_STEP),
    ),
    (
        "A2 only an earlier run's Job",
        observe(session("Creating", run=2), job(run=1)),
        ("A2", "Pending", "JobMissing", ("Write",), NEXT_STEP),
    ),
    (
        "A3 runner exit 0",
        observe(session("Running"), job(), (pod(exited(0, "Completed")),)),
        ("A3", "Completed", "Completed", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A3 Job Complete, pod gone",
        observe(session("Running"), job(cond("Complete"))),
        ("A3", "Completed", "Completed", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 exit 2 -> PrerequisiteFailed",
        observe(session("Running"), failed_job(), (pod(exited(2)),)),
        ("A4", "Failed", "PrerequisiteFailed", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 OOM kill while Running -> OOMKilled",
        observe(session("Running"), failed_job(), (pod(exited(137, "OOMKilled")),)),
        ("A4", "Failed", "OOMKilled", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 exit 137 -> RunnerExit",
        observe(session("Running"), failed_job(), (pod(exited(137)),)),
        ("A4", "Failed", "RunnerExit", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 Job deadline -> Timeout",
        observe(session("Running"), failed_job("DeadlineExceeded"), (pod(exited(143)),)),
        ("A4", "Failed", "Timeout", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 image pull error",
        observe(session("Creating"), job(), (pod(waiting("ImagePullBackOff"), phase="Pending"),)),
        ("A4", "Failed", "ImagePullBackOff", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 Job Failed without a pod",
        observe(session("Running"), failed_job()),
        ("A4", "Failed", "BackoffLimitExceeded", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 init-hydrate failed",
        observe(session("Creating"), failed_job(), (init_failed(),)),
        ("A4", "Failed", "PodFailed", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A4 pod evicted",
        observe(session("Running"), job(), (pod(None, phase="Failed"),)),
        ("A4", "Failed", "PodFailed", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A5 Job of an earlier operator with a spec.timeout deadline",
        observe(session("Running"), job(deadline=300), (pod(RUNNING),)),
        ("A5", None, None, ("Patch:Job",), NEXT_STEP),
    ),
    (
        "A5 Job without the configured ceiling",
        observe(
            session("Running"), job(), (pod(RUNNING),), cfg=SessionConfig(max_session_duration=7200)
        ),
        ("A5", None, None, ("Patch:Job",), NEXT_STEP),
    ),
    (
        "A14 Job made, no Service yet",
        observe(session("Creating"), job(), (pod(waiting("ContainerCreating")),), svc=None),
        ("A14", None, None, ("Create:Service",), NEXT_STEP),
    ),
    (
        "A14 runner already up, no Service yet (Running next)",
        observe(session("Creating"), job(), (pod(RUNNING),), svc=None),
        ("A14", None, None, ("Create:Service",), NEXT_STEP),
    ),
    (
        "A14 Service deleted while Running",
        observe(session("Running"), job(), (pod(RUNNING),), svc=None),
        ("A14", None, None, ("Create:Service",), NEXT_STEP),
    ),
    (
        "A14 not while Creating past the pending timeout, even with the runner up (A11)",
        observe(session("Creating", started=700), job(), (pod(RUNNING),), svc=None),
        ("A11", "Failed", "PendingTimeout", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A14 not while an earlier run's Service is being collected (its deletion wakes us)",
        observe(session("Creating"), job(), (pod(RUNNING),), svc=service(job_uid="uid-old-job")),
        ("A6", "Running", "Running", ("Write",), None),
    ),
    (
        "A6 runner started",
        observe(session("Creating"), job(), (pod(RUNNING),)),
        ("A6", "Running", "Running", ("Write",), None),
    ),
    (
        "A6 runner started, spec changed meanwhile",
        observe(session("Creating", generation=2), job(), (pod(RUNNING),)),
        ("A6", "Running", "Running", ("Write",), NEXT_STEP),
    ),
    (
        "A6 runner started with a workflow (pushed next)",
        observe(session("Creating", spec=WORKFLOW), job(), (pod(RUNNING),)),
        ("A6", "Running", "Running", ("Write",), NEXT_STEP),
    ),
    (
        "A7 spec changed while Running",
        observe(
            session("Running", generation=2, spec={"repos": [{"url": "https://g/x/a.git"}]}),
            job(),
            (pod(RUNNING),),
        ),
        ("A7", None, None, ("Runner",), None),
    ),
    (
        "A7 workflow not confirmed by the runner yet (deferred push)",
        observe(session("Running", spec=WORKFLOW), job(), (pod(RUNNING),)),
        ("A7", None, None, ("Runner",), None),
    ),
    (
        "A7 an idle session is stopped before any push",
        observe(
            session("Running", generation=2, lastActivityTime=ago(86401)), job(), (pod(RUNNING),)
        ),
        ("A8", None, None, ("Patch",), NEXT_STEP),
    ),
    (
        "A8 idle past the limit",
        observe(session("Running", lastActivityTime=ago(86401)), job(), (pod(RUNNING),)),
        ("A8", None, None, ("Patch",), NEXT_STEP),
    ),
    (
        "A9 running, nothing new: woken for the token refresh",
        observe(session("Running"), job(), (pod(RUNNING),)),
        ("A9", None, None, (), TOKEN_LEFT),
    ),
    (
        "A9 running, nothing new: woken when idle",
        observe(session("Running", spec={"inactivityTimeout": 60}), job(), (pod(RUNNING),)),
        ("A9", None, None, (), 50.0),
    ),
    (
        "A13 token older than 45 minutes",
        observe(session("Running"), job(minted=2701), (pod(RUNNING),)),
        ("A13", None, None, ("Token", "Patch:Job"), NEXT_STEP),
    ),
    (
        "A13 Job without a token time (an earlier version's)",
        observe(session("Running", generation=2), job(minted=None), (pod(RUNNING),)),
        ("A13", None, None, ("Token", "Patch:Job"), NEXT_STEP),
    ),
    (
        "A10 Running, exit awaiting the Job's verdict",
        observe(session("Running"), job(), (pod(exited(1)),)),
        ("A10", None, None, (), None),
    ),
    (
        "A11 never started within the pending timeout",
        observe(
            session("Creating", started=700),
            job(),
            (pod(waiting("ContainerCreating"), phase="Pending"),),
        ),
        ("A11", "Failed", "PendingTimeout", ("Write", "Delete:Job/Background"), None),
    ),
    (
        "A12 still starting",
        observe(session("Creating"), job(), (pod(waiting("ContainerCreating"), phase="Pending"),)),
        ("A12", None, None, (), LEFT),
    ),
    (
        "A12 the pod cannot be scheduled",
        observe(
            session("Creating"),
            job(),
            (unschedulable("0/3 nodes are available: 3 Insufficient cpu."),),
        ),
        ("A12", "Creating", None, ("Write",), LEFT),
    ),
    (
        "A12 scheduled after all",
        observe(
            session("Creating", conditions=[{"type": "PodScheduled", "status": "False"}]),
            job(),
            (pod(waiting("ContainerCreating"), phase="Pending"),),
        ),
        ("A12", "Creating", None, ("Write",), LEFT),
    ),
    # --- Stopping
    (
        "S1 Job missing from the cache: gone, no confirming read",
        observe(session("Stopping", ann=STOP), confirmed=False),
        ("S1", "Stopped", "UserStopped", ("Write", "Patch"), None),
    ),
    (
        "S1 Job gone",
        observe(session("Stopping", ann=STOP)),
        ("S1", "Stopped", "UserStopped", ("Write", "Patch"), None),
    ),
    (
        "S1 the Job of that name is not ours",
        observe(session("Stopping"), job(owned=False)),
        ("S1", "Stopped", "UserStopped", ("Write",), None),
    ),
    (
        "S1 idle stop done",
        observe(session("Stopping", ann=IDLE)),
        ("S1", "Stopped", "InactivityTimeout", ("Write", "Patch"), None),
    ),
    (
        "S2 Job still there",
        observe(session("Stopping"), job()),
        ("S2", None, None, ("Delete:Job/Foreground",), 2.0),
    ),
    (
        "S2 Job being deleted",
        observe(session("Stopping"), job(deleting=True)),
        ("S2", None, None, (), 2.0),
    ),
    # --- other
    ("U1 unknown phase", observe(session("Weird")), ("U1", None, None, (), None)),
]

for terminal in ("Stopped", "Completed", "Failed"):
    CASES += [
        (
            f"T- restart {terminal}, Job not confirmed",
            observe(session(terminal, ann=START), confirmed=False),
            ("T-", None, None, (), None),
        ),
        (
            f"T1 restart {terminal}, old Job left",
            observe(session(terminal, ann=START), job()),
            ("T1", None, None, ("Delete:Job/Background",), 1.0),
        ),
        (
            f"T1 restart {terminal}, Job not ours",
            observe(session(terminal, ann=START), job(owned=False)),
            ("T1", terminal, None, ("Write",), 5.0),
        ),
        (
            f"T2 restart {terminal}",
            observe(session(terminal, ann=START)),
            ("T2", "Pending", "Restarting", ("Write",), NEXT_STEP),
        ),
        (
            f"T3 stop request on {terminal}",
            observe(session(terminal, ann=STOP)),
            ("T3", None, None, ("Patch",), None),
        ),
        (f"T4 {terminal}, nothing left", observe(session(terminal)), ("T4", None, None, (), None)),
        (
            f"T4 {terminal}, Service left",
            observe(session(terminal), svc=service()),
            ("T4", None, None, ("Delete:Service/Background",), None),
        ),
        (
            f"T4 {terminal}, the Job's Service left (the garbage collector's)",
            observe(session(terminal), svc=service(job_uid="uid-old-job")),
            ("T4", None, None, (), None),
        ),
    ]


@pytest.mark.parametrize(("obs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_row(obs: Observation, expected: tuple[Any, ...]) -> None:
    plan = decide(obs)
    got = summary(plan)
    if expected[2] is None and got[2] is not None and expected[1] == got[1]:
        got = (
            *got[:2],
            None,
            *got[3:],
        )  # a condition-only write: its Ready reason is not the point
    assert got == expected
    assert plan.status_writes <= 1
    assert not (plan.reads and plan.actions), "a plan that asks for a read does nothing else"


def test_reads_are_named() -> None:
    assert decide(observe(session("Pending"), start=None)).reads == {"start"}
    assert decide(observe(session("Running"), confirmed=False)).reads == {"job"}


def test_table_rows_all_have_a_case() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "sessions.md").read_text()
    section = doc.split("## Phase table", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| ([NPASXTU]\d+) \|", section, flags=re.M))
    assert len(rows) >= 25, "the phase table was not found"
    covered = {r for c in CASES for r in re.findall(r"[NPASXTU]\d+", decide(c[1]).row)}
    assert rows - covered == set(), f"phase-table rows without a decision case: {rows - covered}"
    assert covered - rows == set(), f"rows decide() names that the table lacks: {covered - rows}"


# --- what the written status says -------------------------------------------------------------


def test_new_session_status() -> None:
    st = written(decide(observe(session())))
    assert st is not None
    assert (st["phase"], st["run"], st["observedGeneration"]) == ("Pending", 1, 1)
    assert st["startTime"] == "2026-06-01T12:00:00Z"


@pytest.mark.parametrize("terminal", ["Stopped", "Completed", "Failed"])
def test_restart_resets_the_run(terminal: str) -> None:
    sess = session(terminal, run=3, completionTime="2026-06-01T11:00:00Z", sdkSessionId="abc")
    st = written(decide(observe(sess, confirmed=True)))
    assert st is None  # no restart request: nothing written
    sess["metadata"]["annotations"] = dict(START)
    st = written(decide(observe(sess)))
    assert st is not None
    assert (st["phase"], st["run"], st["startTime"]) == ("Pending", 4, "2026-06-01T12:00:00Z")
    assert "completionTime" not in st
    assert st["sdkSessionId"] == "abc", "keys the operator does not own are kept"


def test_job_vanished_counts_a_new_run() -> None:
    st = written(decide(observe(session("Running", run=2))))
    assert st is not None
    assert (st["phase"], st["run"]) == ("Pending", 3)


@pytest.mark.parametrize("code", [0, 1], ids=["completed", "failed"])
def test_the_spec_of_a_batch_session_is_left_alone_when_its_run_ends(code: int) -> None:
    sess = session("Running", spec={"interactive": False}, generation=4, observed=4)
    plan = decide(observe(sess, job() if code == 0 else failed_job(), (pod(exited(code)),)))
    assert not any(isinstance(a, PatchSession) for a in plan.actions)
    st = written(plan)
    assert st is not None
    assert st["phase"] == ("Completed" if code == 0 else "Failed")
    assert st["observedGeneration"] == 4


def test_invalid_spec_is_left_as_written() -> None:
    sess = session("Pending", spec={"interactive": False, "timeout": -1})
    plan = decide(observe(sess))
    assert not any(isinstance(a, PatchSession) for a in plan.actions)
    st = written(plan)
    assert st is not None
    conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert conds["ValidSpec"] == ("False", "InvalidSpec")
    assert "spec.timeout" in next(c["message"] for c in st["conditions"] if c["type"] == "Ready")


def test_runner_secret_missing_is_said_once() -> None:
    obs = observe(session("Pending"), start=StartInputs(runner_secret=False))
    first = decide(obs)
    st = written(first)
    assert st is not None
    again = decide(replace(obs, session={**obs.session, "status": st}))
    assert written(again) is None
    assert again.requeue_after == 5.0


def test_pending_timeout_names_the_conditions() -> None:
    st = written(decide(observe(session("Pending", started=601))))
    assert st is not None
    assert "did not start within 600s" in st["conditions"][0]["message"]


def test_token_is_kept_while_it_outlives_the_run() -> None:
    lifetime = 2 * 86400 + CFG.pending_timeout + 600  # no ceiling: two days, plus the margins
    fresh: Obj = {
        "metadata": {
            "name": "ambient-runner-token-s1",
            "namespace": "proj",
            "resourceVersion": "3",
            "annotations": {"ambient-code.io/token-expires-at": "2026-06-04T12:00:00Z"},
            "ownerReferences": [{"uid": "uid-s1", "controller": True}],
        },
        "data": {"agui-token": "dG9r"},
    }
    start = StartInputs(runner_secret=True, token_secret=fresh)
    plan = decide(observe(session("Pending", run=2), start=start))
    assert "Token" not in summary(plan)[3]
    short = {**fresh, "metadata": {**fresh["metadata"], "annotations": {}}}
    plan = decide(observe(session("Pending", run=2), start=replace(start, token_secret=short)))
    token = next(a for a in plan.actions if isinstance(a, ProvisionToken))
    assert (token.lifetime, token.secret, token.refresh) == (lifetime, short, False)


def test_vertex_copies_the_shared_secret() -> None:
    source = {"metadata": {"name": "ambient-vertex", "namespace": "backend"}, "data": {"k": "dg=="}}
    start = StartInputs(runner_secret=True, vertex_source=source)
    plan = decide(observe(session("Pending"), cfg=VERTEX, start=start))
    assert summary(plan)[3][0] == "Create:Secret"
    copy = plan.actions[0]
    assert isinstance(copy, Create)
    assert copy.exists == "stale"
    assert copy.body["metadata"]["namespace"] == "proj"


# --- idle auto-stop ---------------------------------------------------------------------------


def running(**status: Any) -> Obj:
    return session("Running", **status)


@pytest.mark.parametrize(
    ("spec", "project", "cfg", "limit"),
    [
        ({"inactivityTimeout": 20}, {"inactivityTimeoutSeconds": 600}, CFG, 20),
        ({"inactivityTimeout": 0}, {"inactivityTimeoutSeconds": 600}, CFG, 0),
        ({}, {"inactivityTimeoutSeconds": 600}, CFG, 600),
        ({}, {"inactivityTimeoutSeconds": 0}, SessionConfig(default_inactivity_timeout=50), 0),
        ({}, {}, SessionConfig(default_inactivity_timeout=50), 50),
        ({}, None, CFG, 86400),
        ({"inactivityTimeout": -1}, {"inactivityTimeoutSeconds": "x"}, CFG, 86400),
    ],
    ids=["session", "session-0", "project", "project-0", "variable", "default", "unusable"],
)
def test_idle_limit_precedence(
    spec: Obj, project: Obj | None, cfg: SessionConfig, limit: int
) -> None:
    sess = session("Running", spec={"initialPrompt": "x", **spec})
    ps = None if project is None else {"metadata": {"name": "projectsettings"}, "spec": project}
    obs = replace(observe(sess, job(), (pod(RUNNING),), cfg=cfg), project_settings=ps)
    assert inactivity.limit(obs) == limit
    plan = decide(obs)
    assert plan.row == "A9"
    assert plan.requeue_after == (TOKEN_LEFT if limit == 0 else min(limit - 10, TOKEN_LEFT))


@pytest.mark.parametrize(
    ("status", "idle"),
    [
        ({"lastActivityTime": ago(100)}, False),
        ({"lastActivityTime": ago(121)}, True),
        ({}, False),  # counted from startTime (10 s ago)
    ],
)
def test_idle_counts_from_the_last_activity(status: Obj, idle: bool) -> None:
    sess = session("Running", spec={"inactivityTimeout": 120}, **status)
    plan = decide(observe(sess, job(), (pod(RUNNING),)))
    assert plan.row == ("A8" if idle else "A9")


def test_idle_stop_asks_for_the_stop_and_says_why() -> None:
    sess = session("Running", spec={"inactivityTimeout": 60}, lastActivityTime=ago(61))
    plan = decide(observe(sess, job(), (pod(RUNNING),)))
    patch = plan.actions[0]
    assert isinstance(patch, PatchSession)
    assert patch.patch["metadata"]["annotations"] == IDLE
    stopping = decide(
        observe({**sess, "metadata": {**sess["metadata"], "annotations": IDLE}}, job())
    )
    st = written(stopping)
    assert st is not None
    assert st["phase"] == "Stopping"
    stopped = written(decide(observe(session("Stopping", ann=IDLE))))
    assert stopped is not None
    assert stopped["stoppedReason"] == "inactivity"
    user = written(decide(observe(session("Stopping", ann=STOP))))
    assert user is not None
    assert user["stoppedReason"] == "user"
    finished = {**STOP, "ambient-code.io/stop-reason": "run-finished"}
    backend = written(decide(observe(session("Stopping", ann=finished))))
    assert backend is not None
    assert backend["stoppedReason"] == "user", "the CRD knows only user and inactivity"


def test_restart_and_recovery_reset_the_idle_clock() -> None:
    for terminal in ("Stopped", "Completed", "Failed"):
        sess = session(
            terminal,
            ann={**START, "ambient-code.io/stop-reason": "inactivity"},
            lastActivityTime=ago(100),
            stoppedReason="inactivity",
            completionTime=ago(50),
        )
        plan = decide(observe(sess))
        st = written(plan)
        assert st is not None
        assert not {"lastActivityTime", "stoppedReason", "completionTime"} & set(st)
        clear = next(a for a in plan.actions if isinstance(a, PatchSession))
        assert clear.patch["metadata"]["annotations"] == {"ambient-code.io/stop-reason": None}
    st = written(decide(observe(session("Running", lastActivityTime=ago(5)))))
    assert st is not None
    assert "lastActivityTime" not in st, "a vanished Job's new run starts its idle clock again"


def test_scheduling_problem_is_shown_with_the_schedulers_words() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    st = written(decide(observe(session("Creating"), job(), (unschedulable(msg),))))
    assert st is not None
    cond = next(c for c in st["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", msg)
    again = decide(observe({**session("Creating"), "status": st}, job(), (unschedulable(msg),)))
    assert written(again) is None, "an unchanged scheduling problem is written once"


@pytest.mark.parametrize(
    ("data", "cfg", "minted"),
    [
        ({"agui-token": "dG9r"}, CFG, False),
        ({}, CFG, True),
        ({"agui-token": ""}, CFG, True),
        (
            {"agui-token": "dG9r"},
            SessionConfig(s3_access_key_id="a", s3_secret_access_key="b"),
            True,
        ),
        (
            {"agui-token": "dG9r", "s3-access-key-id": "YQ==", "s3-secret-access-key": "Yg=="},
            SessionConfig(s3_access_key_id="a", s3_secret_access_key="b"),
            False,
        ),
        (
            {"agui-token": "dG9r", "s3-access-key-id": "YQ==", "s3-secret-access-key": "Yg=="},
            CFG,
            True,
        ),
    ],
)
def test_token_secret_is_minted_again_without_the_keys_the_pod_needs(
    data: Obj, cfg: SessionConfig, minted: bool
) -> None:
    """A Secret of an earlier version has no agui-token (the pod refers to it, not optional), and
    one whose S3 keys are not the operator's would give the helpers the wrong store."""
    secret = {
        "metadata": {
            "name": "ambient-runner-token-s1",
            "namespace": "proj",
            "resourceVersion": "3",
            "annotations": {"ambient-code.io/token-expires-at": "2026-06-04T12:00:00Z"},
            "ownerReferences": [{"uid": "uid-s1", "controller": True}],
        },
        "data": data,
    }
    start = StartInputs(runner_secret=True, token_secret=secret)
    plan = decide(observe(session("Pending", run=2), start=start, cfg=cfg))
    assert any(isinstance(a, ProvisionToken) for a in plan.actions) is minted


@pytest.mark.parametrize(
    ("ann", "cleared"),
    [
        (
            {**START, **FORCE},
            {"ambient-code.io/desired-phase", "ambient-code.io/force-execute-prompt"},
        ),
        (FORCE, {"ambient-code.io/force-execute-prompt"}),
        (START, {"ambient-code.io/desired-phase"}),
    ],
)
def test_the_job_spends_the_restart_request_and_force_execute_prompt(
    ann: dict[str, str], cleared: set[str]
) -> None:
    plan = decide(observe(session("Pending", run=2, ann=ann), job(run=2)))
    [patch] = [a for a in plan.actions if isinstance(a, PatchSession)]
    annotations = patch.patch["metadata"]["annotations"]
    assert annotations == dict.fromkeys(cleared)
