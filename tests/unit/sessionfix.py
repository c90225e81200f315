"""Builders of sessions, Jobs, pods and observations for the decision and executor tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.observe import Observation, StartInputs
from agentic_operator.sessions.status import now_rfc3339

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
CFG = SessionConfig()
NS, NAME, UID, JOB_UID = "proj", "s1", "uid-s1", "uid-job"


def ago(seconds: float) -> str:
    return now_rfc3339(NOW - timedelta(seconds=seconds))


def session(
    phase: str = "",
    *,
    run: int = 1,
    ann: dict[str, str] | None = None,
    spec: Obj | None = None,
    started: float | None = 10,
    generation: int = 1,
    observed: int | None = 1,
    conditions: list[Obj] | None = None,
    **status: Any,
) -> Obj:
    st: Obj = dict(status)
    if phase:
        st.update(phase=phase, run=run)
        if started is not None:
            st["startTime"] = ago(started)
        if observed is not None:
            st["observedGeneration"] = observed
    if conditions is not None:
        st["conditions"] = conditions
    meta: Obj = {
        "name": NAME,
        "namespace": NS,
        "uid": UID,
        "resourceVersion": "100",
        "generation": generation,
    }
    if ann:
        meta["annotations"] = dict(ann)
    out: Obj = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": meta,
        "spec": {"initialPrompt": "hi"} if spec is None else spec,
    }
    if st:
        out["status"] = st
    return out


def job(
    *conditions: Obj,
    run: int = 1,
    owned: bool = True,
    deleting: bool = False,
    deadline: int | None = None,
    minted: float | None = 10,
) -> Obj:
    """``minted``: seconds since its token was minted (the Job's ``token-refreshed-at``)."""
    annotations = {"ambient-code.io/run": str(run)}
    if minted is not None:
        annotations["ambient-code.io/token-refreshed-at"] = ago(minted)
    meta: Obj = {
        "name": f"{NAME}-job",
        "namespace": NS,
        "uid": JOB_UID,
        "resourceVersion": "7",
        "annotations": annotations,
        "ownerReferences": [
            {"kind": "AgenticSession", "uid": UID if owned else "someone-else", "controller": True}
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    spec: Obj = {} if deadline is None else {"activeDeadlineSeconds": deadline}
    return {"metadata": meta, "spec": spec, "status": {"conditions": list(conditions)}}


def cond(type_: str, reason: str = "", message: str = "") -> Obj:
    return {"type": type_, "status": "True", "reason": reason, "message": message}


def pod(
    state: Obj | None, *, phase: str = "Running", node: str | None = "node-1", run: int = 1
) -> Obj:
    st: Obj = {"phase": phase}
    if state is not None:
        st["containerStatuses"] = [{"name": "ambient-code-runner", "state": state}]
    return {
        "metadata": {
            "name": f"{NAME}-job-abcde",
            "namespace": NS,
            "creationTimestamp": ago(5),
            "annotations": {"ambient-code.io/run": str(run)},
            "ownerReferences": [{"kind": "Job", "uid": JOB_UID, "controller": True}],
        },
        "spec": {"nodeName": node} if node else {},
        "status": st,
    }


READY_TO_START = StartInputs(runner_secret=True)

RUNNING = {"running": {"startedAt": "2026-06-01T11:59:58Z"}}


def exited(code: int, reason: str = "Error") -> Obj:
    return {"terminated": {"exitCode": code, "reason": reason}}


def waiting(reason: str, message: str = "") -> Obj:
    return {"waiting": {"reason": reason, "message": message}}


def service(owned: bool = True, *, job_uid: str | None = None) -> Obj:
    """The AG-UI Service: owned by the Job with ``job_uid`` (today's), else by the session (an
    earlier version's; by another one unless ``owned``)."""
    owner = {"uid": UID if owned else "x", "controller": True}
    if job_uid is not None:
        owner = {"kind": "Job", "uid": job_uid, "controller": True}
    return {
        "metadata": {
            "name": f"session-{NAME}",
            "namespace": NS,
            "uid": "uid-svc",
            "ownerReferences": [owner],
        }
    }


AUTO: Any = object()
"""``observe``'s ``svc`` default: the Job's Service when there is a Job, else none."""


def observe(
    sess: Obj,
    job_: Obj | None = None,
    pods: tuple[Obj, ...] = (),
    *,
    svc: Obj | None = AUTO,
    confirmed: bool = True,
    start: StartInputs | None = READY_TO_START,
    cfg: SessionConfig = CFG,
) -> Observation:
    if svc is AUTO:
        svc = None if job_ is None else service(job_uid=job_["metadata"].get("uid"))
    return Observation(
        session=sess,
        cfg=cfg,
        now=NOW,
        job=job_,
        pods=pods,
        service=svc,
        job_confirmed=confirmed,
        start=start,
    )
