"""The session controller's predicates and mappers (sessions/setup.py): which changes wake a
session, table-driven."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.setup import (
    job_changed,
    namespace_became_managed,
    runner_changed,
    session_changed,
    session_of_labelled,
)


def changed(obj: Obj, edit: Callable[[Obj], Any]) -> Obj:
    new = copy.deepcopy(obj)
    edit(new)
    return new


SESSION: Obj = {
    "metadata": {"name": "s", "namespace": "ns", "generation": 1, "annotations": {"a": "1"}},
    "status": {"phase": "Running", "lastActivityTime": "2026-01-01T00:00:00Z"},
}
POD: Obj = {
    "metadata": {"name": "s-job-x", "namespace": "ns", "labels": {"agentic-session": "s"}},
    "spec": {},
    "status": {"phase": "Pending", "conditions": []},
}


@pytest.mark.parametrize(
    ("edit", "wakes"),
    [
        (lambda o: o["metadata"].update(generation=2), True),
        (lambda o: o["metadata"]["annotations"].update(b="2"), True),
        (lambda o: o["status"].update(phase="Stopping"), True),
        (lambda o: o["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z"), True),
        (lambda o: o["status"].update(lastActivityTime="2026-01-01T00:00:10Z"), False),
        (lambda o: o["metadata"].update(resourceVersion="9"), False),
    ],
    ids=["spec", "annotation", "phase", "deleting", "backend-activity", "rv-only"],
)
def test_session_changed(edit: Callable[[Obj], Any], wakes: bool) -> None:
    assert session_changed(SESSION, changed(SESSION, edit)) is wakes


@pytest.mark.parametrize(
    ("edit", "wakes"),
    [
        (lambda o: o["spec"].update(nodeName="n1"), True),
        (lambda o: o["status"].update(phase="Running"), True),
        (
            lambda o: o["status"]["conditions"].append(
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            ),
            True,
        ),
        (
            lambda o: o["status"].update(
                containerStatuses=[{"name": "r", "state": {"waiting": {"reason": "Pulling"}}}]
            ),
            True,
        ),
        (
            lambda o: o["status"]["conditions"].append({"type": "Ready", "status": "False"}),
            False,
        ),
        (lambda o: o["metadata"].update(resourceVersion="9"), False),
    ],
    ids=["scheduled", "phase", "unschedulable", "container", "other-condition", "rv-only"],
)
def test_runner_changed(edit: Callable[[Obj], Any], wakes: bool) -> None:
    assert runner_changed(POD, changed(POD, edit)) is wakes


def test_job_changed() -> None:
    job: Obj = {"metadata": {"name": "j"}, "spec": {"x": 1}, "status": {}}
    assert job_changed(job, changed(job, lambda o: o["status"].update(active=1)))
    assert not job_changed(job, changed(job, lambda o: o["spec"].update(x=2)))


def test_namespace_and_pod_mapping() -> None:
    plain: Obj = {"metadata": {"name": "ns", "labels": {}}}
    managed = changed(
        plain, lambda o: o["metadata"]["labels"].update({"ambient-code.io/managed": "true"})
    )
    assert namespace_became_managed(plain, managed)
    assert not namespace_became_managed(managed, managed)
    assert session_of_labelled(POD) == ["ns/s"]
    assert session_of_labelled({"metadata": {"namespace": "ns"}}) == []
