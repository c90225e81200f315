"""A run start the API server refuses is told on the session: every refused step of row P9 (and
the Service, row A14, while Creating) writes Ready=False (and its own condition) with the API
server's message before the error is retried, and the pending timeout names that last failure
instead of a list of conditions to look at."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_operator.kube.errors import ApiError, Forbidden, Invalid
from agentic_operator.kube.resources import JOBS, SECRETS, Obj
from agentic_operator.sessions import model
from agentic_operator.sessions.decide import decide
from agentic_operator.sessions.endings import last_start_failure
from agentic_operator.sessions.plan import WriteStatus
from tests.unit.sessionfix import NS, RUNNING, observe, pod, session
from tests.unit.test_apply import World

KEY = f"{NS}/s1"
QUOTA = "exceeded quota: q, requested: count/services=1, used: count/services=1, limited: 1"
TOKEN = 'TokenRequest.authentication.k8s.io "ambient-session-s1" is invalid: spec.expirationSeconds'


def false(type_: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": "False", "reason": reason, "message": message}


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or ()}


async def pending_world() -> World:
    w = World(session())
    w.api.put(SECRETS, {"metadata": {"name": "ambient-runner-secrets", "namespace": NS}})
    await w.reconciler.reconcile(KEY)  # N1: Pending
    assert w.session["status"]["phase"] == "Pending"
    w.recorder.events.clear()
    return w


def refuse_token(w: World) -> None:
    async def request(method: str, path: str, *, body: Obj | None = None) -> Obj:
        raise Invalid(422, "Invalid", TOKEN)

    w.api.request = request  # type: ignore[method-assign]


STEPS: list[Any] = [
    pytest.param(
        ("create", "serviceaccounts", "ambient-session-s1"),
        Forbidden(403, "Forbidden", "serviceaccounts is forbidden"),
        ("TokenProvisionFailed", "SecretsReady", "runner identity: serviceaccounts is forbidden"),
        "TokenProvisionFailed",
        id="identity",
    ),
    pytest.param(
        None,
        Invalid(422, "Invalid", TOKEN),
        ("TokenProvisionFailed", "SecretsReady", f"runner token: {TOKEN}"),
        "TokenProvisionFailed",
        id="token",
    ),
    pytest.param(
        ("create", "networkpolicies", "runner-allow-backend-only"),
        Forbidden(403, "Forbidden", "networkpolicies is forbidden"),
        (
            "CreateFailed",
            None,
            "NetworkPolicy runner-allow-backend-only: networkpolicies is forbidden",
        ),
        "NetworkPolicyFailed",
        id="network-policy",
    ),
    pytest.param(
        ("create", "jobs", "s1-job"),
        Forbidden(403, "Forbidden", "jobs is forbidden: violates PodSecurity"),
        ("JobCreationFailed", "JobCreated", "jobs is forbidden: violates PodSecurity"),
        "JobCreationFailed",
        id="job",
    ),
]


@pytest.mark.parametrize(("call", "error", "expected", "event"), STEPS)
async def test_a_refused_step_is_recorded_and_named_by_the_pending_timeout(
    call: tuple[str, str, str] | None,
    error: ApiError,
    expected: tuple[str, str | None, str],
    event: str,
) -> None:
    reason, condition, message = expected
    w = await pending_world()
    if call is None:
        refuse_token(w)
    else:
        w.api.fail[call] = error
    with pytest.raises(type(error)):
        await w.reconciler.reconcile(KEY)
    st = w.session["status"]
    assert st["phase"] == "Pending"
    ready = conditions(w.session)[model.COND_READY]
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert message in ready["message"]
    if condition is not None:
        own = conditions(w.session)[condition]
        assert (own["status"], own["reason"]) == (
            "False",
            reason if condition != "JobCreated" else "CreateFailed",
        )
        assert message in own["message"]
    assert w.recorder.events == [("Warning", event)], "one Event per refusal"
    # The pending timeout names it.
    await w.clock.advance(601)
    await w.reconciler.reconcile(KEY)
    failed = w.session["status"]
    assert failed["phase"] == "Failed"
    ended = conditions(w.session)[model.COND_READY]
    assert ended["reason"] == "PendingTimeout"
    assert ended["message"].startswith("runner did not start within 600s; last failure: ")
    assert f"{reason}: " in ended["message"]
    assert message in ended["message"]


async def test_a_run_that_gets_going_forgets_the_failure() -> None:
    w = await pending_world()
    w.api.fail[("create", "serviceaccounts", "ambient-session-s1")] = Forbidden(
        403, "Forbidden", QUOTA
    )
    with pytest.raises(Forbidden):
        await w.reconciler.reconcile(KEY)
    await w.reconciler.reconcile(KEY)  # the retry goes through: Creating
    assert w.session["status"]["phase"] == "Creating"
    assert conditions(w.session)[model.COND_READY]["reason"] == "Pending"
    assert last_start_failure(w.session["status"]) == ""


LAST = [
    pytest.param([], "", id="nothing"),
    pytest.param([false("Ready", "Pending", "Provisioning")], "", id="still-provisioning"),
    pytest.param(
        [false("Ready", "RunnerSecretMissing", "Secret ambient-runner-secrets not found")],
        "RunnerSecretMissing: Secret ambient-runner-secrets not found",
        id="runner-secret",
    ),
    pytest.param(
        [
            false("Ready", "Pending", "Runner starting"),
            false("PodScheduled", "Unschedulable", "0/1 nodes are available"),
        ],
        "Unschedulable: 0/1 nodes are available",
        id="unschedulable",
    ),
    pytest.param(
        [{"type": "Ready", "status": "True", "reason": "CreateFailed", "message": "x"}],
        "",
        id="ready-true",
    ),
]


@pytest.mark.parametrize(("conds", "expected"), LAST)
def test_last_start_failure(conds: list[Obj], expected: str) -> None:
    assert last_start_failure({"conditions": conds}) == expected


def test_runner_secret_missing_is_the_ready_reason_too() -> None:
    from agentic_operator.sessions.observe import StartInputs

    plan = decide(observe(session("Pending"), start=StartInputs(runner_secret=False)))
    write = next(a for a in plan.actions if isinstance(a, WriteStatus))
    ready = next(c for c in write.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RunnerSecretMissing"


def test_pending_timeout_without_a_failure_says_so() -> None:
    plan = decide(observe(session("Pending", started=601)))
    write = next(a for a in plan.actions if isinstance(a, WriteStatus))
    ready = next(c for c in write.status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "runner did not start within 600s; no step of its start failed"


def running_pod(w: World) -> Obj:
    """The runner pod of the stored Job, its runner up."""
    job = w.stored(JOBS, "s1-job")
    assert job is not None
    up = pod(RUNNING)
    up["metadata"]["ownerReferences"][0]["uid"] = job["metadata"]["uid"]
    return up


async def creating_world() -> World:
    w = await pending_world()
    await w.reconciler.reconcile(KEY)  # P9: the Job, Creating
    assert w.session["status"]["phase"] == "Creating"
    w.recorder.events.clear()
    return w


async def test_a_refused_service_while_creating_is_recorded_and_named_by_the_pending_timeout() -> (
    None
):
    w = await creating_world()
    w.api.fail[("create", "services", "session-s1")] = Forbidden(403, "Forbidden", QUOTA)
    with pytest.raises(Forbidden):
        await w.reconciler.reconcile(KEY)  # A14
    ready = conditions(w.session)[model.COND_READY]
    assert (ready["status"], ready["reason"]) == ("False", "CreateFailed")
    assert ready["message"] == f"Service session-s1: {QUOTA}"
    assert w.session["status"]["phase"] == "Creating"
    assert w.recorder.events == [("Warning", "CreateFailed")]
    await w.clock.advance(601)
    await w.reconciler.reconcile(KEY)
    ended = conditions(w.session)[model.COND_READY]
    assert (w.session["status"]["phase"], ended["reason"]) == ("Failed", "PendingTimeout")
    assert ended["message"] == (
        f"runner did not start within 600s; last failure: CreateFailed: Service session-s1: {QUOTA}"
    )


async def test_a_refused_service_while_running_keeps_ready_and_says_so() -> None:
    w = await creating_world()
    await w.reconciler.reconcile(KEY)  # A14: the Service
    w.pods.append(running_pod(w))
    await w.reconciler.reconcile(KEY)  # A6
    assert w.session["status"]["phase"] == "Running"
    w.services.items.clear()
    w.recorder.events.clear()
    w.api.fail[("create", "services", "session-s1")] = Forbidden(403, "Forbidden", QUOTA)
    with pytest.raises(Forbidden):
        await w.reconciler.reconcile(KEY)
    ready = conditions(w.session)[model.COND_READY]
    assert (ready["status"], ready["reason"]) == ("True", "Running")
    assert w.recorder.events == [("Warning", "CreateFailed")]
    await w.reconciler.reconcile(KEY)  # the retry makes it
    assert w.services.get(f"{NS}/session-s1") is not None
