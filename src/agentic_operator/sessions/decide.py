"""The session decision: one :class:`~.observe.Observation` in, one :class:`~.plan.Plan` out.

Pure: no I/O, no clock (the observation carries ``now``), no randomness, so each row of the phase
table in ``docs/sessions.md`` is a unit test. Functions are named after the phase they handle and
every plan names its row (``N1``, ``P1``..``P9``, ``A1``..``A10``, ``X1``/``X2``, ``S1``/``S2``,
``T1``..``T4``); the table and this module list the rows in the same order, and within a phase the
first row that matches wins.

Rules every row keeps: at most one status write; no row continues into another phase's rows in the
same reconcile (a new run's status is written first and its Job made in the next reconcile, which
the plan asks for with a requeue); a decision that needs a live read (``Plan.reads``) is made again
once the reconciler has made it.
"""

from __future__ import annotations

from typing import Literal

from agentic_operator.kube.resources import JOBS, SERVICES, Obj
from agentic_operator.sessions import livespec, model, start
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.model import Phase
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    Action,
    Count,
    Delete,
    Effect,
    Event,
    Measure,
    PatchSession,
    Plan,
    StatusEdit,
    Steps,
    WriteStatus,
)
from agentic_operator.sessions.status import now_rfc3339, observe_runner, parse_time
from agentic_operator.sessions.validation import validate_session

STOPPING_POLL = 2.0
"""How often a Stopping session looks for its Job while the garbage collector removes its pods."""
STALE_JOB_RETRY = 1.0
"""How soon to look again after deleting the Job of an earlier run that still holds the name."""
BLOCKED_RETRY = 5.0
"""Retry interval while something outside the operator blocks a run (a missing runner secret, a
Job of that name that is not ours), until the pending timeout fails the run."""


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
    st.set(observedGeneration=_generation(obs))
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_PENDING, "Provisioning")
    counted = Count(m.SESSIONS_TOTAL, (obs.namespace,))
    return Steps().add(write_status(obs, st, counted)).plan("N1", requeue_after=NEXT_STEP)


# --- Pending -------------------------------------------------------------------------------------


def pending(obs: Observation) -> Plan:
    if _stop_requested(obs):
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
    if job is not None and job_run(job) != _run(obs):
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
    # Said once, when the condition is first written, not on every retry.
    said = (
        Count(m.SESSION_ERRORS, (obs.namespace, Phase.PENDING, "secret_missing")),
        Event("Warning", model.REASON_RUNNER_SECRET_MISSING, message),
    )
    retry = min(BLOCKED_RETRY, pending_remaining(obs))
    return Steps().add(write_status(obs, st, *said)).plan(row, requeue_after=retry)


def start_run(obs: Observation, row: str) -> Plan:
    """Children first (shared secrets, identity and token, Service, PVC, OAuth placeholder), then
    the Job, whose create is the duplicate fence, then Creating."""
    steps = Steps().add(*start.children(obs))
    job, skipped = start.job(obs, on_error=lambda msg: job_create_failed(obs, msg))
    steps.add(job)
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
    steps = Steps().add(*_creating_actions(obs, adopted=adopted))
    return steps.plan(row, requeue_after=max(pending_remaining(obs), NEXT_STEP))


def _creating_actions(obs: Observation, *, adopted: bool) -> list[Action]:
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.CREATING, observedGeneration=_generation(obs))
    st.condition(
        model.COND_JOB_CREATED,
        model.COND_TRUE,
        model.REASON_JOB_EXISTS if adopted else model.REASON_JOB_CREATED,
        f"Job {model.job_name(obs.name)} created for run {_run(obs)}",
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
    clear = clear_annotations(obs, model.ANN_DESIRED_PHASE)
    if clear is not None and obs.annotations[model.ANN_DESIRED_PHASE] == model.DESIRED_RUNNING:
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
    if _stop_requested(obs):
        return request_stop(obs, "A1")
    job = obs.job
    if job is not None and (job_run(job) != _run(obs) or not model.is_owned_by(job, obs.session)):
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
    if verdict.kind == "running" and phase != Phase.RUNNING:
        return to_running(obs, "A5", verdict.node)
    if verdict.kind == "running" and _generation(obs) != obs.status.get("observedGeneration"):
        return livespec.push(obs, "A6", job)
    if verdict.kind == "running":
        return Plan("A7")
    # pending: being scheduled / pulled / started, or exited and awaiting the Job's verdict. Only
    # a run that never started is bound by the pending timeout; the Job's next update wakes us.
    if phase == Phase.RUNNING:
        return Plan("A8")
    remaining = pending_remaining(obs)
    if remaining <= 0:
        return pending_timeout(obs, "A9")
    return Plan("A10", requeue_after=remaining)


def to_running(obs: Observation, row: str, node: str | None) -> Plan:
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.RUNNING)
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
    # A spec change made while the runner started is pushed by the next reconcile.
    again = NEXT_STEP if _generation(obs) != obs.status.get("observedGeneration") else None
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
    job = _own_job(obs)
    if job is None:
        return stopped(obs, f"{row}/X2")
    st = StatusEdit(obs.session, obs.now).set(phase=Phase.STOPPING)
    st.condition(
        model.COND_READY, model.COND_FALSE, model.REASON_STOPPING, "Deleting the runner Job"
    )
    steps = Steps()
    if not _deleting(job):
        steps.add(delete_job(job, "Foreground"))
    steps.add(write_status(obs, st))
    return steps.plan(f"{row}/X1", requeue_after=STOPPING_POLL)


def stopping(obs: Observation) -> Plan:
    if not obs.job_confirmed:
        return Plan("S-", reads=frozenset({"job"}))
    job = _own_job(obs)
    if job is None:
        return stopped(obs, "S1")
    steps = Steps()
    if not _deleting(job):
        steps.add(delete_job(job, "Foreground"))
    return steps.plan("S2", requeue_after=STOPPING_POLL)


def stopped(obs: Observation, row: str) -> Plan:
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=Phase.STOPPED, completionTime=now_rfc3339(obs.now))
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_USER_STOPPED, "Stopped")
    st.condition(model.COND_RUNNER_STARTED, model.COND_FALSE, model.REASON_USER_STOPPED, "Stopped")
    steps = Steps().add(
        write_status(obs, st),
        clear_annotations(obs, model.ANN_DESIRED_PHASE, model.ANN_STOP_REQUESTED_AT),
        *cleanup(obs),
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
        steps.add(clear_annotations(obs, model.ANN_DESIRED_PHASE, model.ANN_STOP_REQUESTED_AT))
        return steps.add(*cleanup(obs)).plan("T3")
    return steps.add(*cleanup(obs)).plan("T4")


def restart(obs: Observation, row: str) -> Plan:
    """A new run with a fresh startTime and no completionTime; ``desired-phase=Running`` stays
    until the new Job exists (P6/P9 clear it), so a restart interrupted here is not lost."""
    st = new_run(obs, model.REASON_RESTARTING, "Restarting")
    steps = Steps().add(write_status(obs, st))
    if model.ANN_START_REQUESTED_AT in obs.annotations:
        steps.add(clear_annotations(obs, model.ANN_START_REQUESTED_AT))
    return steps.plan(row, requeue_after=NEXT_STEP)


def new_run(obs: Observation, reason: str, message: str) -> StatusEdit:
    """The status of a new run: Pending, next run number, fresh startTime, no completionTime."""
    st = StatusEdit(obs.session, obs.now)
    st.set(
        phase=Phase.PENDING,
        run=_run(obs) + 1,
        startTime=now_rfc3339(obs.now),
        completionTime=None,
    )
    st.condition(model.COND_READY, model.COND_FALSE, reason, message)
    st.condition(model.COND_JOB_CREATED, model.COND_FALSE, reason, message)
    st.condition(model.COND_RUNNER_STARTED, model.COND_FALSE, reason, "")
    return st


# --- endings and leftovers -----------------------------------------------------------------------


def finish(
    obs: Observation,
    row: str,
    phase: Phase,
    reason: str,
    message: str,
    error_type: str | None,
    *,
    secrets_reason: str | None = None,
) -> Plan:
    """End the run: (``spec.interactive=true``), the terminal status, then the Job and Service go.

    When a run ends Completed or Failed (not for an invalid spec), a non-interactive session is
    made interactive, as upstream does, so that a restart continues as a chat. The patch is
    guarded by resourceVersion, so it moves the generation by exactly one, and the status written
    after it can name that generation as observed.
    """
    steps = Steps()
    generation = _generation(obs)
    interactive = (obs.session.get("spec") or {}).get("interactive", True) is True
    ran = phase in (Phase.COMPLETED, Phase.FAILED) and reason != model.REASON_INVALID_SPEC
    if ran and not interactive:
        steps.add(PatchSession({"spec": {"interactive": True}}))
        generation = (generation or 0) + 1
    st = StatusEdit(obs.session, obs.now)
    st.set(phase=phase, completionTime=now_rfc3339(obs.now), observedGeneration=generation)
    st.condition(model.COND_READY, model.COND_FALSE, reason, message)
    if secrets_reason:
        st.condition(model.COND_SECRETS_READY, model.COND_FALSE, secrets_reason, message)
    if phase == Phase.FAILED and reason == model.REASON_INVALID_SPEC:
        st.condition(model.COND_VALID_SPEC, model.COND_FALSE, reason, message)
    old_phase = str(obs.status.get("phase") or Phase.PENDING)
    counted = (
        (Count(m.SESSION_ERRORS, (obs.namespace, old_phase, error_type)),) if error_type else ()
    )
    steps.add(write_status(obs, st, *counted), *cleanup(obs))
    return steps.plan(row)


def pending_timeout(obs: Observation, row: str) -> Plan:
    message = (
        f"runner did not start within {obs.cfg.pending_timeout}s "
        "(see the SecretsReady and JobCreated conditions)"
    )
    return finish(obs, row, Phase.FAILED, model.REASON_PENDING_TIMEOUT, message, "timeout")


def cleanup(obs: Observation) -> list[Action]:
    """Delete the run's Job and the AG-UI Service, when they are ours and still there."""
    out: list[Action] = []
    job = obs.job
    if job is not None and model.is_owned_by(job, obs.session) and not _deleting(job):
        out.append(delete_job(job, "Background"))
    svc = obs.service
    if svc is not None and model.is_owned_by(svc, obs.session):
        meta = svc["metadata"]
        out.append(Delete(SERVICES, meta["name"], meta["namespace"], meta["uid"], cache="services"))
    return out


def job_not_ours(obs: Observation, row: str, job: Obj) -> Plan:
    message = (
        f"Job {job['metadata']['name']} exists and is not owned by this session; "
        "delete it or rename the session"
    )
    st = StatusEdit(obs.session, obs.now)
    st.condition(
        model.COND_JOB_CREATED, model.COND_FALSE, model.REASON_JOB_CREATION_FAILED, message
    )
    said = Event("Warning", model.REASON_JOB_CREATION_FAILED, message)
    return Steps().add(write_status(obs, st, said)).plan(row, requeue_after=BLOCKED_RETRY)


def remove_stale_job(obs: Observation, row: str, job: Obj) -> Plan:
    """A Job of an earlier run holds the name: delete it and look again once it is gone."""
    steps = Steps()
    if not _deleting(job):
        steps.add(delete_job(job, "Background"))
    return steps.plan(row, requeue_after=STALE_JOB_RETRY)


# --- building blocks -----------------------------------------------------------------------------


def write_status(obs: Observation, st: StatusEdit, *effects: Effect) -> WriteStatus | None:
    """The status write for ``st`` (None when nothing changed) with the effects of the change:
    a phase transition's counter, the completed counter, and an Event; then ``effects``."""
    if not st.changed:
        return None
    return WriteStatus(st.new, then=(*transition_effects(obs.namespace, st), *effects))


def transition_effects(namespace: str, st: StatusEdit) -> tuple[Effect, ...]:
    old, new = st.old_phase, st.new_phase
    if old == new:
        return ()
    out: list[Effect] = [Count(m.PHASE_TRANSITIONS, (namespace, old or "None", new))]
    if new in model.TERMINAL_PHASES:
        out.append(Count(m.SESSIONS_COMPLETED, (namespace, new)))
    ready: Obj = next(
        (c for c in st.new.get("conditions") or () if c.get("type") == model.COND_READY), {}
    )
    message = str(ready.get("message") or "")
    text = f"Phase {old or 'None'} -> {new}" + (f": {message}" if message else "")
    if new == Phase.FAILED:
        out.append(Event("Warning", str(ready.get("reason") or new), text))
    else:
        out.append(Event("Normal", new, text))
    return tuple(out)


def clear_annotations(obs: Observation, *keys: str) -> PatchSession | None:
    present = [k for k in keys if k in obs.annotations]
    if not present:
        return None
    return PatchSession({"metadata": {"annotations": dict.fromkeys(present)}})


def delete_job(job: Obj, propagation: Literal["Foreground", "Background"]) -> Delete:
    meta = job["metadata"]
    return Delete(JOBS, meta["name"], meta["namespace"], meta["uid"], propagation, "jobs")


def pending_remaining(obs: Observation) -> float:
    """Seconds left before a run that has not started fails with PendingTimeout."""
    started = parse_time(obs.status.get("startTime"))
    if started is None:
        return float(obs.cfg.pending_timeout)
    return obs.cfg.pending_timeout - (obs.now - started).total_seconds()


def job_run(job: Obj) -> int:
    """The run a Job belongs to (its ``ambient-code.io/run`` annotation; 1 if absent)."""
    raw = model.annotations(job).get(model.ANN_RUN)
    try:
        return int(raw) if raw is not None else 1
    except ValueError:
        return 0


def _run(obs: Observation) -> int:
    return model.session_run(obs.session) or 1


def _generation(obs: Observation) -> int | None:
    gen = (obs.session.get("metadata") or {}).get("generation")
    return gen if isinstance(gen, int) else None


def _stop_requested(obs: Observation) -> bool:
    return obs.annotations.get(model.ANN_DESIRED_PHASE) == model.DESIRED_STOPPED


def _own_job(obs: Observation) -> Obj | None:
    """The session's Job if this session owns it (a Job of that name made by someone else is never
    deleted by a stop)."""
    job = obs.job
    return job if job is not None and model.is_owned_by(job, obs.session) else None


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
