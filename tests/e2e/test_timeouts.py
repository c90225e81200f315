"""Timeouts as the platform means them, end to end: ``spec.timeout`` ends nothing, idle sessions
are stopped (``stoppedReason: inactivity``), activity written by the backend keeps a session
alive and survives the operator's own status writes, and Jobs of an earlier operator version
lose the deadline it took from ``spec.timeout``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    Obj,
    annotate,
    condition,
    create,
    events_for,
    get_json,
    get_session,
    runner_secret,
    session,
    wait_for,
    wait_phase,
    wait_run,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def backend_status_write(cluster: Cluster, namespace: str, name: str, **fields: object) -> None:
    """What the platform's backend does for every AG-UI event: a merge patch of status fields."""
    cluster.kubectl(
        "patch",
        "agenticsession",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": fields}),
    )


def test_spec_timeout_does_not_end_a_session(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("long", namespace, outcome="run-forever", timeout=60))
    running = wait_phase(deployed, namespace, "long", "Running", timeout=60)
    job = get_json(deployed, "job", "long-job", "-n", namespace)
    assert job is not None
    assert "activeDeadlineSeconds" not in job["spec"]
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TIMEOUT"] == "60"
    started = time.monotonic()
    while time.monotonic() - started < 90:
        assert (get_session(deployed, namespace, "long") or {})["status"]["phase"] == "Running"
        time.sleep(5)
    assert running["status"]["run"] == 1


def test_idle_session_is_stopped_and_an_active_one_is_not(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("idle", namespace, outcome="run-forever", inactivityTimeout=20))
    create(deployed, session("busy", namespace, outcome="run-forever", inactivityTimeout=20))
    wait_phase(deployed, namespace, "idle", "Running", timeout=60)
    wait_phase(deployed, namespace, "busy", "Running", timeout=60)
    backend_status_write(deployed, namespace, "busy", sdkSessionId="sdk-1")

    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        backend_status_write(deployed, namespace, "busy", lastActivityTime=now_rfc3339())
        busy = get_session(deployed, namespace, "busy") or {}
        assert busy["status"]["phase"] == "Running", "activity keeps the session running"
        if (get_session(deployed, namespace, "idle") or {})["status"]["phase"] == "Stopped":
            break
        time.sleep(4)
    stopped = wait_phase(deployed, namespace, "idle", "Stopped", timeout=30)
    st = stopped["status"]
    assert st["stoppedReason"] == "inactivity"
    assert condition(stopped, "Ready")["reason"] == "InactivityTimeout"
    assert "ambient-code.io/desired-phase" not in (stopped["metadata"].get("annotations") or {})
    assert "ambient-code.io/stop-reason" not in (stopped["metadata"].get("annotations") or {})
    assert any(e["reason"] == "InactivityTimeout" for e in events_for(deployed, namespace, "idle"))

    # What the backend owns survives the operator's status writes; a user stop says "user".
    busy = get_session(deployed, namespace, "busy") or {}
    assert busy["status"]["sdkSessionId"] == "sdk-1"
    assert busy["status"].get("lastActivityTime")
    annotate(deployed, namespace, "busy", "ambient-code.io/desired-phase=Stopped")
    user = wait_phase(deployed, namespace, "busy", "Stopped", timeout=60)
    assert user["status"]["stoppedReason"] == "user"
    assert user["status"]["sdkSessionId"] == "sdk-1"

    # A restart starts the idle clock again: lastActivityTime and stoppedReason are dropped.
    annotate(deployed, namespace, "busy", "ambient-code.io/desired-phase=Running")
    again = wait_run(deployed, namespace, "busy", 2, "Running", timeout=60)
    assert "lastActivityTime" not in again["status"]
    assert "stoppedReason" not in again["status"]
    assert again["status"]["sdkSessionId"] == "sdk-1"


def test_the_project_idle_limit_applies_when_the_session_has_none(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    ps = wait_for(
        "projectsettings",
        lambda: get_json(deployed, "projectsettings", "projectsettings", "-n", namespace),
    )
    assert ps is not None
    deployed.kubectl(
        "patch",
        "projectsettings",
        "projectsettings",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"inactivityTimeoutSeconds": 15}}),
    )
    runner_secret(deployed, namespace)
    create(deployed, session("proj", namespace, outcome="run-forever"))
    create(deployed, session("own", namespace, outcome="run-forever", inactivityTimeout=0))
    stopped = wait_phase(deployed, namespace, "proj", "Stopped", timeout=90)
    assert stopped["status"]["stoppedReason"] == "inactivity"
    own: Obj = get_session(deployed, namespace, "own") or {}
    assert own["status"]["phase"] == "Running", "0 on the session turns the idle stop off"


def test_upgrade_removes_a_deadline_taken_from_spec_timeout(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    first = start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("old", namespace, outcome="run-forever", timeout=40))
    wait_phase(deployed, namespace, "old", "Running", timeout=60)
    first.stop()
    # What an earlier version of this operator made: the Job's deadline from spec.timeout.
    deployed.kubectl(
        "patch",
        "job",
        "old-job",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"activeDeadlineSeconds": 40}}),
    )
    start_operator()
    wait_for(
        "the deadline removed",
        lambda: (
            "activeDeadlineSeconds"
            not in ((get_json(deployed, "job", "old-job", "-n", namespace) or {}).get("spec") or {})
        ),
        timeout=30,
    )
    time.sleep(45)
    assert (get_session(deployed, namespace, "old") or {})["status"]["phase"] == "Running"
