"""The kwok watchdog's decisions (which pods are overdue, when to nudge), without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from testenv.kwok_watchdog import KwokWatchdog, go_duration, outcome_of, overdue

NOW = datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)


def pod(
    *,
    phase: str = "Running",
    outcome: str | None = None,
    duration: str | None = None,
    started: str = "2026-01-01T00:00:00Z",
    waiting: str | None = None,
    deleting: bool = False,
    job: bool = True,
    rv: str = "1",
) -> dict[str, Any]:
    env = []
    if outcome:
        env.append({"name": "TESTENV_RUNNER_OUTCOME", "value": outcome})
    if duration:
        env.append({"name": "TESTENV_RUNNER_DURATION", "value": duration})
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": started}}
    )
    meta: dict[str, Any] = {
        "name": "p",
        "namespace": "ns",
        "resourceVersion": rv,
        "ownerReferences": [{"kind": "Job", "name": "j"}] if job else [],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "n", "containers": [{"name": "ambient-code-runner", "env": env}]},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


def hydrating(duration: str | None = None, outcome: str | None = None) -> dict[str, Any]:
    """A runner pod whose init-hydrate has been running since ``started``."""
    p = pod(phase="Pending", waiting="PodInitializing", outcome=outcome)
    env = [{"name": "TESTENV_HYDRATE_DURATION", "value": duration}] if duration else []
    p["spec"]["initContainers"] = [{"name": "init-hydrate", "env": env}]
    p["status"]["initContainerStatuses"] = [
        {"name": "init-hydrate", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    ]
    return p


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("", 1.0), ("abc", 1.0)],
)
def test_go_duration(text: str, seconds: float) -> None:
    assert go_duration(text) == seconds


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (pod(), "complete"),
        (pod(outcome="exit-2"), "exit-2"),
        (pod(job=False), "run-forever"),
    ],
)
def test_outcome_follows_the_stage_precedence(p: dict[str, Any], expected: str) -> None:
    assert outcome_of(p) == expected


@pytest.mark.parametrize(
    ("p", "is_overdue"),
    [
        (pod(duration="1s"), True),  # ran 60 s of a 1 s run
        (pod(duration="5m"), False),
        (pod(outcome="exit-1", duration="1s"), True),
        (pod(outcome="run-forever"), False),
        (pod(phase="Pending", waiting="ContainerCreating"), True),
        (pod(phase="Pending", waiting="ContainerCreating", outcome="stay-pending"), False),
        (pod(phase="Pending", waiting="ImagePullBackOff", outcome="image-pull-error"), False),
        (pod(phase="Succeeded"), False),
        (pod(phase="Succeeded", deleting=True), True),
        (pod(outcome="oom", duration="1s"), True),
        (hydrating(), True),  # hydrating for 60 s with the default 100 ms
        (hydrating("5m"), False),
        (hydrating("1s", outcome="init-fail"), True),
    ],
)
def test_overdue(p: dict[str, Any], is_overdue: bool) -> None:
    assert (overdue(p, NOW) is not None) == is_overdue


def test_nudges_only_after_the_pod_stalled(tmp_path: Path) -> None:
    pods = [pod(duration="1s", rv="7")]
    calls: list[tuple[str, str, Any]] = []

    def api(method: str, path: str, body: Any = None, **_: Any) -> tuple[int, Any]:
        calls.append((method, path, body))
        return (200, {"items": pods}) if method == "GET" else (200, {})

    dog = KwokWatchdog(api, tmp_path / "w.log", stall=15)
    assert dog.check_once(100.0, NOW) == 0  # first sight starts the clock
    assert dog.check_once(110.0, NOW) == 0
    assert dog.check_once(116.0, NOW) == 1
    method, path, body = calls[-1]
    assert (method, path) == ("PATCH", "/api/v1/namespaces/ns/pods/p")
    assert body["metadata"]["annotations"]["testenv.ambient-code.io/nudge"] == "1"
    pods[0] = pod(duration="1s", rv="8")  # it changed: the stall clock restarts
    assert dog.check_once(120.0, NOW) == 0
    assert "nudged ns/p" in (tmp_path / "w.log").read_text()
