"""What the runner pod does while a session starts or runs, end to end: a pod the scheduler cannot
place is visible in the session's conditions (and such a session can still be stopped), and a
runner that dies after the session went Running ends it Failed, not Running forever."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    annotate,
    condition,
    create,
    exists,
    runner_secret,
    session,
    wait_condition,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def test_unschedulable_pod_is_shown_and_can_be_stopped(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    # kwok's nodes have 1000 CPUs each: a runner asking for 2000 cannot be placed.
    start_operator(env={"RUNNER_CPU_REQUEST": "2000", "RUNNER_CPU_LIMIT": "2000"})
    runner_secret(deployed, namespace)
    create(deployed, session("huge", namespace, outcome="run-forever"))
    stuck = wait_condition(deployed, namespace, "huge", "PodScheduled", "False", timeout=60)
    cond = condition(stuck, "PodScheduled")
    assert cond["reason"] == "Unschedulable"
    assert "Insufficient cpu" in cond["message"]
    assert stuck["status"]["phase"] == "Creating"

    annotate(deployed, namespace, "huge", "ambient-code.io/desired-phase=Stopped")
    stopped = wait_phase(deployed, namespace, "huge", "Stopped", timeout=60)
    assert stopped["status"]["stoppedReason"] == "user"
    wait_for("the Job gone", lambda: not exists(deployed, "job", "huge-job", namespace))


@pytest.mark.parametrize(
    ("outcome", "phase", "reason"),
    [("exit-1", "Failed", "RunnerExit"), ("complete", "Completed", "Completed")],
)
def test_a_runner_that_ends_while_running_ends_the_session(
    deployed: Cluster,
    namespace: str,
    start_operator: StartOperator,
    outcome: str,
    phase: str,
    reason: str,
) -> None:
    start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("dies", namespace, outcome=outcome, duration="8s"))
    wait_phase(deployed, namespace, "dies", "Running", timeout=60)
    ended = wait_phase(deployed, namespace, "dies", phase, timeout=60)
    assert condition(ended, "Ready")["reason"] == reason
    wait_for("the Service gone", lambda: not exists(deployed, "service", "session-dies", namespace))
