"""What the decision rows share (:mod:`.decide`): how a run ends, leftovers, the status write with
its transition effects, and the readings of an observation (run, generation, time left). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Literal

from agentic_operator.kube.resources import JOBS, SECRETS, SERVICES, Obj
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions import model
from agentic_operator.sessions.model import Phase
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    Action,
    Count,
    Create,
    Delete,
    Effect,
    EnsureIdentity,
    Event,
    PatchSession,
    Plan,
    ProvisionToken,
    Replace,
    StatusEdit,
    Steps,
    WriteStatus,
)
from agentic_operator.sessions.status import now_rfc3339, parse_time

STALE_JOB_RETRY = 1.0
"""How soon to look again after deleting the Job of an earlier run that still holds the name."""
BLOCKED_RETRY = 5.0
"""Retry interval while something outside the operator blocks a run (a missing runner secret, a
Job of that name that is not ours), until the pending timeout fails the run."""
START_FAILURES = frozenset(
    {
        model.REASON_CREATE_FAILED,
        model.REASON_JOB_CREATION_FAILED,
        model.REASON_TOKEN_PROVISION_FAILED,
        model.REASON_RUNNER_SECRET_MISSING,
    }
)
"""Ready reasons of a run whose start failed (the last failure, until the run is Creating)."""


def new_run(obs: Observation, reason: str, message: str) -> StatusEdit:
    """The status of a new run: Pending, next run number, fresh startTime; the end of the last run
    (completionTime, stoppedReason) and its activity (lastActivityTime, so that the idle clock
    starts again) are dropped. Everything else in status is kept."""
    st = StatusEdit(obs.session, obs.now)
    st.set(
        phase=Phase.PENDING,
        run=run_number(obs) + 1,
        startTime=now_rfc3339(obs.now),
        completionTime=None,
        lastActivityTime=None,
        stoppedReason=None,
    )
    st.condition(model.COND_READY, model.COND_FALSE, reason, message)
    st.condition(model.COND_JOB_CREATED, model.COND_FALSE, reason, message)
    st.condition(model.COND_RUNNER_STARTED, model.COND_FALSE, reason, "")
    return st


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
    """End the run: the terminal status, then the Job and Service go.

    The spec is left alone: today's platform no longer turns a batch session into an interactive
    one when its run ends (upstream's Job-era operator patched ``spec.interactive=true``).
    """
    steps = Steps()
    generation = spec_generation(obs)
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
    """Failed ``PendingTimeout``, naming what last kept the run from starting."""
    message = f"runner did not start within {obs.cfg.pending_timeout}s"
    last = last_start_failure(obs.status)
    message += f"; last failure: {last}" if last else "; no step of its start failed"
    return finish(obs, row, Phase.FAILED, model.REASON_PENDING_TIMEOUT, message, "timeout")


def last_start_failure(status: Obj) -> str:
    """``reason: message`` of the last failure recorded for the run's start ("" when none): the
    Ready condition while Pending (every failed step of a start writes it, the move to Creating
    clears it), else a pod the scheduler could not place."""
    conditions = {c.get("type"): c for c in status.get("conditions") or () if isinstance(c, dict)}
    ready = conditions.get(model.COND_READY) or {}
    if ready.get("status") == model.COND_FALSE and ready.get("reason") in START_FAILURES:
        return f"{ready['reason']}: {ready.get('message') or ''}".rstrip(": ")
    scheduled = conditions.get(model.COND_POD_SCHEDULED) or {}
    if scheduled.get("status") == model.COND_FALSE:
        return f"{scheduled.get('reason') or 'Unschedulable'}: {scheduled.get('message') or ''}"
    return ""


def start_failed(
    obs: Observation,
    reason: str,
    message: str,
    *,
    condition: str | None = None,
    said: bool = True,
) -> Plan:
    """What a refused step of a run start leaves on the session before its error is retried:
    Ready=False (and ``condition``) with ``reason`` and the API server's message, so the session
    tells what blocks it and the pending timeout can name it; with ``said``, a Warning Event and
    the error counter (``create_failed``, ``token_provision`` for the runner's identity)."""
    st = StatusEdit(obs.session, obs.now)
    if condition is not None:
        st.condition(condition, model.COND_FALSE, reason, message)
    st.condition(model.COND_READY, model.COND_FALSE, reason, message)
    error = "token_provision" if reason == model.REASON_TOKEN_PROVISION_FAILED else "create_failed"
    effects: tuple[Effect, ...] = ()
    if said:
        effects = (
            Count(m.SESSION_ERRORS, (obs.namespace, Phase.PENDING, error)),
            Event("Warning", reason, message),
        )
    return Steps().add(write_status(obs, st)).plan("P9!", effects=effects)


StartStep = Create | Replace | EnsureIdentity | ProvisionToken


def record_failures(obs: Observation, actions: Iterable[Action | None]) -> list[Action | None]:
    """The steps of a run start, each of which records its refusal on the session
    (:func:`start_failed`). A step's own failure plan is kept: when it writes no status (only
    Events and counters), the condition write is put in front of it."""
    return [_recorded(obs, a) if isinstance(a, StartStep) else a for a in actions]


def _recorded(obs: Observation, step: StartStep) -> StartStep:
    reason: str = model.REASON_TOKEN_PROVISION_FAILED
    condition: str | None = model.COND_SECRETS_READY
    what = "runner token" if isinstance(step, ProvisionToken) else "runner identity"
    if isinstance(step, Create | Replace):
        meta = step.body.get("metadata") or {}
        what = f"{step.body.get('kind') or step.resource.kind} {meta.get('name')}"
        reason = model.REASON_CREATE_FAILED
        condition = model.COND_SECRETS_READY if step.resource == SECRETS else None
    own = step.on_error

    def on_error(message: str) -> Plan:
        text = f"{what}: {message}"
        if own is None:
            return start_failed(obs, reason, text, condition=condition)
        plan = own(message)
        if plan.status_writes:
            return plan
        recorded = start_failed(obs, reason, text, condition=condition, said=False)
        return replace(plan, actions=(*recorded.actions, *plan.actions))

    return replace(step, on_error=on_error)


def cleanup(obs: Observation) -> list[Action]:
    """Delete the run's Job and the AG-UI Service, when they are ours and still there."""
    out: list[Action] = []
    job = obs.job
    if job is not None and model.is_owned_by(job, obs.session) and not model.being_deleted(job):
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
    st.condition(model.COND_READY, model.COND_FALSE, model.REASON_JOB_CREATION_FAILED, message)
    said = Event("Warning", model.REASON_JOB_CREATION_FAILED, message)
    return Steps().add(write_status(obs, st, said)).plan(row, requeue_after=BLOCKED_RETRY)


def remove_stale_job(obs: Observation, row: str, job: Obj) -> Plan:
    """A Job of an earlier run holds the name: delete it and look again once it is gone."""
    steps = Steps()
    if not model.being_deleted(job):
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


def run_number(obs: Observation) -> int:
    return model.session_run(obs.session) or 1


def spec_generation(obs: Observation) -> int | None:
    gen = (obs.session.get("metadata") or {}).get("generation")
    return gen if isinstance(gen, int) else None


def stop_requested(obs: Observation) -> bool:
    return obs.annotations.get(model.ANN_DESIRED_PHASE) == model.DESIRED_STOPPED


def own_job(obs: Observation) -> Obj | None:
    """The session's Job if this session owns it (a Job of that name made by someone else is never
    deleted by a stop)."""
    job = obs.job
    return job if job is not None and model.is_owned_by(job, obs.session) else None
