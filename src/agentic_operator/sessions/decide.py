"""The session decision: one :class:`~.observe.Observation` in, one :class:`~.plan.Plan` out.

Pure: no I/O, no clock (the observation carries ``now``), no randomness, so each row of the phase
table in ``docs/sessions.md`` is a unit test. Functions are named after the phase they handle and
every plan names its row (``N1``, ``P1``..``P9``, ``A1``..``A14``, ``X1``/``X2``, ``S1``/``S2``,
``T1``..``T4``); the table and this module list the rows in the same order, and within a phase the
first row that matches wins. What the rows share is in :mod:`.endings`; the rows of a live run
that keep its phase (A5, A14, A8, A12, A13) are in :mod:`.running`, a run's children in
:mod:`.start` and :mod:`.netpol`, the spec push (A7) in :mod:`.livespec`.

Rules every row keeps: at most one status write; no row continues into another phase's rows in the
same reconcile (a new run's status is written first and its Job made in the next reconcile, which
the plan asks for with a requeue); a decision that needs a live read (``Plan.reads``) is made again
once the reconciler has made it.
"""

from __future__ import annotations

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import inactivity, livespec, model, netpol, running, start
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.endings import (
    BLOCKED_RETRY,
    cleanup,
    clear_annotations,
    delete_job,
    finish,
    job_not_ours,
    job_run,
    new_run,
    own_job,
    pending_remaining,
    pending_timeout,
    record_failures,
    remove_stale_job,
    run_number,
    spec_generation,
    stop_requested,
    write_status,
)
from agentic_operator.sessions.model import Phase
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    Action,
    Count,
    Effect,
    Event,
    Measure,
    Plan,
    StatusEdit,
    Steps,
)
from agentic_operator.sessions.status import now_rfc3339, parse_time
from agentic_operator.sessions.validation import validate_session
from agentic_operator.sessions.verdict import observe_runner

STOP_ANNOTATIONS = (model.ANN_DESIRED_PHASE, model.ANN_STOP_REQUESTED_AT, model.ANN_STOP_REASON)
"""Cleared once a stop is done (or found to have nothing left to do)."""
STOPPING_POLL = 2.0
"""How often a Stopping session looks for its Job while the garbage collector removes its pods."""


def decide(obs: Observation) -> Plan:
    phase = str(obs.status.get("phase") or "")
    if phase == "":
        return initialise(obs)
    if phase == Phase.PENDING:
        return pending(obs)
    if phase in (Phase.CREATING, Phase.RUNNING):
        return active(obs)
    if phase == Phase.STOPPING:
        return stopping(obs)
    if phase in model.TERMINAL_PHASES:
        return terminal(obs)
    return Plan("U1", note=f"unknown phase {phase!r} ignored")


# --- new session ---------------------------------------------------------------------------------


def initialise(obs: Observation) -> Plan:
    """N1: a new session becomes Pending with run 1 and its startTime."""
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.PENDING, startTime=now_rfc3339(obs.now), run=1, completionTime=None)
    st.set(observedGeneration=spec_generation(obs))
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_PENDING, "Provisioning")
    counted = Count(m.SESSIONS_TOTAL, (obs.namespace,))
    return Steps().add(write_status(obs, st, counted)).plan("N1", requeue_after=NEXT_STEP)


# --- Pending -------------------------------------------------------------------------------------


def pending(obs: Observation) -> Plan:
    if stop_requested(obs):
        return request_stop(obs, "P1")
    problems = validate_session(obs.session)
    if problems:
        message = "; ".join(str(p) for p in problems)
        return finish(obs, "P2", Phase.FAILED, model.REASON_INVALID_SPEC, message, "invalid_spec")
    if pending_remaining(obs) <= 0:
        return pending_timeout(obs, "P3")
    job = obs.job
    if job is not None and not model.is_owned_by(job, obs.session):
        return job_not_ours(obs, "P4", job)
    if job is not None and job_run(job) != run_number(obs):
        return remove_stale_job(obs, "P5", job)
    if job is not None:
        return to_creating(obs, "P6", adopted=True)
    if obs.start is None:
        return Plan("P-", reads=frozenset({"start"}))
    if not obs.start.runner_secret:
        return runner_secret_missing(obs, "P7")
    if obs.cfg.use_vertex and obs.start.vertex_source is None:
        message = f"Secret {model.VERTEX_SECRET} not found in namespace {obs.cfg.backend_namespace}"
        return finish(
            obs,
            "P8",
            Phase.FAILED,
            model.REASON_VERTEX_SECRET_MISSING,
            message,
            "secret_missing",
            secrets_reason=model.REASON_VERTEX_SECRET_MISSING,
        )
    return start_run(obs, "P9")


def runner_secret_missing(obs: Observation, row: str) -> Plan:
    message = f"Secret {model.RUNNER_SECRETS} not found in namespace {obs.namespace}"
    st = StatusEdit(obs.session, obs.now)
    st.condition(
        model.COND_SECRETS_READY, model.COND_FALSE, model.REASON_RUNNER_SECRET_MISSING, message
    )
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_RUNNER_SECRET_MISSING, message)
    # Said once, when the condition is first written, not on every retry.
    said = (
        Count(m.SESSION_ERRORS, (obs.namespace, Phase.PENDING, "secret_missing")),
        Event("Warning", model.REASON_RUNNER_SECRET_MISSING, message),
    )
    retry = min(BLOCKED_RETRY, pending_remaining(obs))
    return Steps().add(write_status(obs, st, *said)).plan(row, requeue_after=retry)


def start_run(obs: Observation, row: str) -> Plan:
    """Children first (shared secrets, identity and token, PVC, OAuth placeholder), then
    the Job, whose create is the duplicate fence, then Creating. A step the API server refuses
    is recorded on the session (``endings.record_failures``) before it is retried."""
    steps = Steps().add(*record_failures(obs, start.children(obs)))
    job, skipped = start.job(obs, on_error=lambda msg: job_create_failed(obs, msg))
    steps.add(*record_failures(obs, [netpol.ensure(obs, job.body)]), job)
    effects: tuple[Effect, ...] = ()
    if skipped:
        effects = (
            Event(
                "Warning",
                "EnvironmentOverrideIgnored",
                "spec.environmentVariables cannot replace operator-provided secret references: "
                + ", ".join(sorted(skipped)),
            ),
        )
    steps.add(*_creating_actions(obs, adopted=False))
    return steps.plan(row, requeue_after=max(pending_remaining(obs), NEXT_STEP), effects=effects)


def to_creating(obs: Observation, row: str, *, adopted: bool) -> Plan:
    """An adopted Job (made by a reconcile that did not get to write Creating) may be done
    already, with no event left to come: the runner is looked at in the next step."""
    steps = Steps().add(*_creating_actions(obs, adopted=adopted))
    return steps.plan(row, requeue_after=NEXT_STEP)


def _creating_actions(obs: Observation, *, adopted: bool) -> list[Action]:
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.CREATING, observedGeneration=spec_generation(obs))
    st.condition(
        model.COND_JOB_CREATED,
        model.COND_TRUE,
        model.REASON_JOB_EXISTS if adopted else model.REASON_JOB_CREATED,
        f"Job {model.job_name(obs.name)} created for run {run_number(obs)}",
    )
    st.condition(
        model.COND_SECRETS_READY,
        model.COND_TRUE,
        model.REASON_ALL_REQUIRED_SECRETS_FOUND,
        "All required secrets found",
    )
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_PENDING, "Runner starting")
    out: list[Action] = []
    write = write_status(obs, st)
    if write is not None:
        out.append(write)
    # The Job exists, so the restart request and the one-run force-execute-prompt are spent.
    spent = [model.ANN_FORCE_EXECUTE_PROMPT]
    if obs.annotations.get(model.ANN_DESIRED_PHASE) == model.DESIRED_RUNNING:
        spent.append(model.ANN_DESIRED_PHASE)
    clear = clear_annotations(obs, *spent)
    if clear is not None:
        out.append(clear)
    return out


def job_create_failed(obs: Observation, message: str) -> Plan:
    """What a refused Job create leaves on the session before the error is retried."""
    st = StatusEdit(obs.session, obs.now)
    st.condition(model.COND_JOB_CREATED, model.COND_FALSE, model.REASON_CREATE_FAILED, message)
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_JOB_CREATION_FAILED, message)
    effects = (
        Count(m.SESSION_ERRORS, (obs.namespace, Phase.PENDING, "create_failed")),
        Event("Warning", model.REASON_JOB_CREATION_FAILED, message),
    )
    return Steps().add(write_status(obs, st)).plan("P9!", effects=effects)


# --- Creating and Running ------------------------------------------------------------------------


def active(obs: Observation) -> Plan:
    if stop_requested(obs):
        return request_stop(obs, "A1")
    job = obs.job
    if job is not None and (
        job_run(job) != run_number(obs) or not model.is_owned_by(job, obs.session)
    ):
        job = None  # a leftover of another run is not this run's Job
    if job is None and not obs.job_confirmed:
        return Plan("A-", reads=frozenset({"job"}))
    verdict = observe_runner(job, list(obs.pods) if job is not None else [])
    phase = obs.status.get("phase")
    if verdict.kind == "missing":
        return job_vanished(obs, "A2")
    if verdict.kind == "completed":
        return finish(obs, "A3", Phase.COMPLETED, verdict.reason, verdict.message, None)
    if verdict.kind == "failed":
        error = "timeout" if verdict.reason == model.REASON_TIMEOUT else "runner_failed"
        return finish(obs, "A4", Phase.FAILED, verdict.reason, verdict.message, error)
    assert job is not None
    if running.job_deadline(job) != (obs.cfg.max_session_duration or None):
        return running.set_deadline(obs, "A5", job)
    if obs.service is None:
        # A run that cannot be reached is not started: while Creating, the pending timeout holds.
        if phase != Phase.RUNNING and pending_remaining(obs) <= 0:
            return pending_timeout(obs, "A11")
        return running.create_service(obs, "A14", job)
    if verdict.kind == "running" and phase != Phase.RUNNING:
        return to_running(obs, "A6", verdict.node, job)
    if verdict.kind == "running":
        return up(obs, job)
    # pending: being scheduled / pulled / started, or exited and awaiting the Job's verdict. Only
    # a run that never started is bound by the pending timeout; the Job's next update wakes us.
    if phase == Phase.RUNNING:
        return Plan("A10")
    remaining = pending_remaining(obs)
    if remaining <= 0:
        return pending_timeout(obs, "A11")
    return running.starting(obs, "A12", verdict, remaining)


def up(obs: Observation, job: Obj) -> Plan:
    """A Running session whose runner runs: an idle one is stopped first (nothing else matters
    then), a due token refresh comes before a spec push (a push that keeps failing must not hold
    either back), and otherwise the next look is when one of them falls due."""
    idle = inactivity.remaining(obs)
    if idle is not None and idle <= 0:
        return running.idle_stop(obs, "A8")
    refresh = running.token_refresh_left(obs, job)
    if refresh <= 0:
        return running.refresh_token(obs, "A13", job)
    moved = spec_generation(obs) != obs.status.get("observedGeneration")
    if moved or livespec.workflow_pending(obs):
        return livespec.push(obs, "A7", job)
    return Plan("A9", requeue_after=refresh if idle is None else min(idle, refresh))


def to_running(obs: Observation, row: str, node: str | None, job: Obj) -> Plan:
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.RUNNING)
    livespec.record_start(st, obs, job)
    if node:
        st.condition(
            model.COND_POD_SCHEDULED,
            model.COND_TRUE,
            model.REASON_SCHEDULED,
            f"Scheduled on {node}",
        )
    st.condition(
        model.COND_RUNNER_STARTED,
        model.COND_TRUE,
        model.REASON_CONTAINER_RUNNING,
        "Runner container is running",
    )
    st.condition(model.COND_READY, model.COND_TRUE, model.REASON_RUNNING, "Session is running")
    effects: tuple[Effect, ...] = ()
    started = parse_time(obs.status.get("startTime"))
    if started is not None:
        elapsed = max(0.0, (obs.now - started).total_seconds())
        effects = (Measure(m.SESSION_STARTUP, (obs.namespace,), elapsed),)
    # A spec change made while the runner started, and a workflow, are pushed by the next
    # reconcile.
    moved = spec_generation(obs) != obs.status.get("observedGeneration")
    again = NEXT_STEP if moved or livespec.desired_workflow(obs.session) is not None else None
    return Steps().add(write_status(obs, st, *effects)).plan(row, requeue_after=again)


def job_vanished(obs: Observation, row: str) -> Plan:
    """The run's Job disappeared before the run ended: a new run starts."""
    st = new_run(obs, model.REASON_JOB_MISSING, "Runner Job not found; recreating")
    said = (
        Count(m.SESSION_ERRORS, (obs.namespace, str(obs.status.get("phase")), "job_missing")),
        Event("Warning", model.REASON_JOB_MISSING, "Runner Job disappeared; starting a new run"),
    )
    return Steps().add(write_status(obs, st, *said)).plan(row, requeue_after=NEXT_STEP)


# --- stop ----------------------------------------------------------------------------------------


def request_stop(obs: Observation, row: str) -> Plan:
    """Stop from Pending, Creating or Running: X1 deletes the Job (with its pods) and the session
    is Stopping until it is gone; X2, without a Job, stops at once."""
    if not obs.job_confirmed:
        return Plan(f"{row}-", reads=frozenset({"job"}))
    job = own_job(obs)
    if job is None:
        return stopped(obs, f"{row}/X2")
    st = StatusEdit(obs.session, obs.now).set(phase=Phase.STOPPING)
    idle = obs.annotations.get(model.ANN_STOP_REASON) == model.STOP_REASON_INACTIVITY
    message = "Deleting the runner Job" + (" (idle)" if idle else "")
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_STOPPING, message)
    steps = Steps()
    if not model.being_deleted(job):
        steps.add(delete_job(job, "Foreground"))
    steps.add(write_status(obs, st))
    return steps.plan(f"{row}/X1", requeue_after=STOPPING_POLL)


def stopping(obs: Observation) -> Plan:
    """The cache is trusted here without a confirming read: Stopping is entered only by X1, which
    saw the Job in it, so its absence now is the watch's word that the Job is gone (a restarted
    operator lists the Jobs before it reconciles)."""
    job = own_job(obs)
    if job is None:
        return stopped(obs, "S1")
    steps = Steps()
    if not model.being_deleted(job):
        steps.add(delete_job(job, "Foreground"))
    return steps.plan("S2", requeue_after=STOPPING_POLL)


def stopped(obs: Observation, row: str) -> Plan:
    """``stoppedReason`` is ``inactivity`` for the idle auto-stop and ``user`` for any other stop
    (a user's, or the backend's for ``stopOnRunFinished``: the CRD knows only these two)."""
    idle = obs.annotations.get(model.ANN_STOP_REASON) == model.STOP_REASON_INACTIVITY
    reason = model.REASON_INACTIVITY_TIMEOUT if idle else model.REASON_USER_STOPPED
    st = StatusEdit(obs.session, obs.now)
    st.set(
        phase=Phase.STOPPED,
        completionTime=now_rfc3339(obs.now),
        stoppedReason=model.STOP_REASON_INACTIVITY if idle else model.STOP_REASON_USER,
    )
    st.condition(model.COND_READY, model.COND_FALSE, reason, "Stopped")
    st.condition(model.COND_RUNNER_STARTED, model.COND_FALSE, reason, "Stopped")
    steps = Steps().add(
        write_status(obs, st), clear_annotations(obs, *STOP_ANNOTATIONS), *cleanup(obs)
    )
    return steps.plan(row)


# --- Stopped, Completed, Failed ------------------------------------------------------------------


def terminal(obs: Observation) -> Plan:
    desired = obs.annotations.get(model.ANN_DESIRED_PHASE)
    if desired == model.DESIRED_RUNNING:
        if not obs.job_confirmed:
            return Plan("T-", reads=frozenset({"job"}))
        if obs.job is not None and not model.is_owned_by(obs.job, obs.session):
            return job_not_ours(obs, "T1", obs.job)
        if obs.job is not None:
            return remove_stale_job(obs, "T1", obs.job)
        return restart(obs, "T2")
    steps = Steps()
    if desired == model.DESIRED_STOPPED:
        # Already finished: a stop request has nothing left to do but must not linger.
        steps.add(clear_annotations(obs, *STOP_ANNOTATIONS))
        return steps.add(*cleanup(obs)).plan("T3")
    return steps.add(*cleanup(obs)).plan("T4")


def restart(obs: Observation, row: str) -> Plan:
    """A new run with a fresh startTime and no completionTime; ``desired-phase=Running`` stays
    until the new Job exists (P6/P9 clear it), so a restart interrupted here is not lost."""
    st = new_run(obs, model.REASON_RESTARTING, "Restarting")
    steps = Steps().add(write_status(obs, st))
    steps.add(clear_annotations(obs, model.ANN_START_REQUESTED_AT, model.ANN_STOP_REASON))
    return steps.plan(row, requeue_after=NEXT_STEP)
