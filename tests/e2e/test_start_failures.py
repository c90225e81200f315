"""A start the API server refuses is told on the session, with the API server's own words, and the
pending timeout names it: here a ResourceQuota that allows no Service refuses the AG-UI Service
the run needs (made once the run's Job exists, while the session is Creating)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    condition,
    create,
    exists,
    runner_secret,
    session,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def test_a_refused_child_is_written_to_the_session_and_named_by_the_pending_timeout(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-services", "namespace": namespace},
        "spec": {"hard": {"services": "0"}},
    }
    deployed.kubectl("create", "-f", "-", input=json.dumps(quota))
    wait_for(
        "the quota's usage to be known",
        lambda: (
            json.loads(
                deployed.kubectl(
                    "get", "resourcequota", "no-services", "-n", namespace, "-o", "json"
                ).stdout
            )
            .get("status", {})
            .get("used")
        ),
    )
    start_operator(env={"PENDING_TIMEOUT": "20"})
    # A runner that comes up: without its Service the run is not reachable, so it is not started.
    create(deployed, session("quota", namespace, outcome="run-forever"))

    def refused() -> dict[str, object] | None:
        s = wait_phase(deployed, namespace, "quota", "Creating", "Failed", timeout=30)
        ready = condition(s, "Ready")
        return ready if ready.get("reason") == "CreateFailed" else None

    ready = wait_for("Ready=False CreateFailed", refused, timeout=30)
    assert ready["status"] == "False"
    message = str(ready["message"])
    assert message.startswith("Service session-quota: ")
    assert "exceeded quota: no-services" in message, "the API server's own message"

    failed = wait_phase(deployed, namespace, "quota", "Failed", timeout=60)
    ended = condition(failed, "Ready")
    assert ended["reason"] == "PendingTimeout"
    assert ended["message"].startswith(
        "runner did not start within 20s; last failure: CreateFailed: Service session-quota: "
    )
    assert "exceeded quota: no-services" in ended["message"]
    wait_for("the run's Job deleted", lambda: not exists(deployed, "job", "quota-job", namespace))
