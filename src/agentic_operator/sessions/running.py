"""Rows of a run that is starting or up and keeps its phase (pure, like :mod:`.decide`): the
Job's deadline (A5), its AG-UI Service (A14), the idle auto-stop (A8), scheduling problems while
it starts (A12), and the refresh of the runner's token while it runs (A13).
"""

from __future__ import annotations

from agentic_operator.kube.resources import JOBS, SERVICES, Obj
from agentic_operator.sessions import inactivity, model, netpol, objects, start
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions.endings import write_status
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    Count,
    Create,
    Event,
    Patch,
    PatchSession,
    Plan,
    ProvisionToken,
    StatusEdit,
    Steps,
)
from agentic_operator.sessions.status import find_condition, now_rfc3339, parse_time
from agentic_operator.sessions.verdict import RunnerObservation


def set_deadline(obs: Observation, row: str, job: Obj) -> Plan:
    """The Job's deadline is not the operator's ceiling (``MAX_SESSION_DURATION``): a Job made by
    an earlier version of the operator carries one taken from ``spec.timeout``, which would kill
    the session; a Job's deadline can be changed, so it is set (or removed) in place."""
    meta = job["metadata"]
    body = {"spec": {"activeDeadlineSeconds": obs.cfg.max_session_duration or None}}
    patch = Patch(JOBS, meta["name"], meta["namespace"], body, cache="jobs")
    return Plan(row, (patch,), requeue_after=NEXT_STEP)


def job_deadline(job: Obj) -> int | None:
    value = (job.get("spec") or {}).get("activeDeadlineSeconds")
    return value if isinstance(value, int) and value > 0 else None


def create_service(obs: Observation, row: str, job: Obj) -> Plan:
    """The run's AG-UI Service, owned by its Job (so the Job's deletion takes it along: no delete
    of ours at the end of a run), on the port the Job's runner listens on. One that exists
    already, the cache not having seen it yet, is read in and looked at again."""
    body = objects.build_service(obs.session, job, port=netpol.runner_port(job))
    create = Create(
        SERVICES,
        body,
        exists="stale",
        cache="services",
        on_error=lambda message: service_failed(obs, row, message),
    )
    return Plan(row, (create,), requeue_after=NEXT_STEP)


def service_failed(obs: Observation, row: str, message: str) -> Plan:
    """A refused Service is said (Warning ``CreateFailed``, the error counter) and retried with
    backoff. While the run starts it is also Ready=False with the API server's words, so the
    pending timeout names it; a Running session keeps its Ready condition."""
    phase = str(obs.status.get("phase") or "")
    text = f"Service {model.service_name(obs.name)}: {message}"
    effects = (
        Count(m.SESSION_ERRORS, (obs.namespace, phase, "create_failed")),
        Event("Warning", model.REASON_CREATE_FAILED, text),
    )
    steps = Steps()
    if phase == model.Phase.CREATING:
        st = StatusEdit(obs.session, obs.now)
        st.condition(model.COND_READY, model.COND_FALSE, model.REASON_CREATE_FAILED, text)
        steps.add(write_status(obs, st))
    return steps.plan(f"{row}!", effects=effects)


def idle_stop(obs: Observation, row: str) -> Plan:
    """Ask for the stop a user would (``desired-phase=Stopped``), saying why; the annotation
    change wakes the session, and A1 stops it."""
    limit = inactivity.limit(obs)
    patch = PatchSession(
        {
            "metadata": {
                "annotations": {
                    model.ANN_DESIRED_PHASE: model.DESIRED_STOPPED,
                    model.ANN_STOP_REASON: model.STOP_REASON_INACTIVITY,
                }
            }
        }
    )
    said = Event(
        "Normal", model.REASON_INACTIVITY_TIMEOUT, f"No activity for {limit}s; stopping the session"
    )
    return Plan(row, (patch,), requeue_after=NEXT_STEP, effects=(said,))


def starting(obs: Observation, row: str, verdict: RunnerObservation, remaining: float) -> Plan:
    """The runner is not up yet. A pod the scheduler cannot place says why in ``PodScheduled``
    (the scheduler's reason and message, e.g. ``Unschedulable``: "0/3 nodes are available: 3
    Insufficient cpu"); once placed, that condition turns True. A pod that was scheduled at once
    costs no write here: A6 records ``PodScheduled`` with the move to Running."""
    st = StatusEdit(obs.session, obs.now)
    if verdict.node is None and verdict.reason:
        st.condition(model.COND_POD_SCHEDULED, model.COND_FALSE, verdict.reason, verdict.message)
    elif verdict.node is not None and condition_false(obs, model.COND_POD_SCHEDULED):
        message = f"Scheduled on {verdict.node}"
        st.condition(model.COND_POD_SCHEDULED, model.COND_TRUE, model.REASON_SCHEDULED, message)
    return Steps().add(write_status(obs, st)).plan(row, requeue_after=remaining)


def condition_false(obs: Observation, type_: str) -> bool:
    cond = find_condition(obs.status.get("conditions"), type_)
    return cond is not None and cond.get("status") == model.COND_FALSE


def token_refresh_left(obs: Observation, job: Obj) -> float:
    """Seconds until the runner's token is due for a refresh (<= 0: now). The Job carries when its
    token was minted (``token-refreshed-at``, a copy of the token Secret's, written with it), so
    this reads the cache only; a Job without a readable time (an earlier version's) is due."""
    minted = parse_time(model.annotations(job).get(model.ANN_TOKEN_REFRESHED_AT))
    if minted is None:
        return 0.0
    return obs.cfg.token_refresh_interval - (obs.now - minted).total_seconds()


def refresh_token(obs: Observation, row: str, job: Obj) -> Plan:
    """A new ``k8s-token`` in the token Secret (nothing else of it changes: the runner's
    ``agui-token`` stays), then its time on the Job. The runner reads the token from its file,
    which the kubelet updates from the Secret."""
    meta = job["metadata"]
    stamp = {"metadata": {"annotations": {model.ANN_TOKEN_REFRESHED_AT: now_rfc3339(obs.now)}}}

    def failed(message: str) -> Plan:
        return Plan(
            f"{row}!",
            effects=(
                Count(m.SESSION_ERRORS, (obs.namespace, "Running", "token_refresh")),
                Event(
                    "Warning",
                    model.REASON_TOKEN_PROVISION_FAILED,
                    f"refreshing the runner token: {message}",
                ),
            ),
        )

    token = ProvisionToken(
        lifetime=start.token_lifetime(obs), secret=None, refresh=True, on_error=failed
    )
    patch = Patch(JOBS, meta["name"], meta["namespace"], stamp, cache="jobs")
    return Plan(row, (token, patch), requeue_after=NEXT_STEP)
