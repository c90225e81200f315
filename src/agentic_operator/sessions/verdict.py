"""What the runner Job and its pod say about a session: :func:`observe_runner`, a pure function.

It reads only the Job's conditions and the runner pod's container states, never in-process
memory, so the verdict survives operator restarts: any reconcile of a Creating or Running session
can re-derive it from the cluster (the table: docs/sessions.md, "From runner state to session
phase").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.model import (
    ANN_RUN,
    EXIT_PREREQUISITE_FAILED,
    REASON_COMPLETED,
    REASON_DEADLINE_EXCEEDED,
    REASON_INIT_EXITED,
    REASON_JOB_FAILED,
    REASON_JOB_MISSING,
    REASON_OOM_KILLED,
    REASON_POD_FAILED,
    REASON_PREREQUISITE_FAILED,
    REASON_RUNNER_EXIT,
    REASON_RUNNER_EXITED,
    REASON_TIMEOUT,
    REASON_UNSCHEDULABLE,
    RUNNER_CONTAINER,
    WAITING_FAILURE_REASONS,
)

RunnerKind = Literal["pending", "running", "completed", "failed", "missing"]


@dataclass(frozen=True)
class RunnerObservation:
    """What the runner Job and its pod say, reduced to one verdict with a stable reason.

    ``reason`` of a failed/completed verdict is the Ready condition reason the session ends with.
    For ``pending``, ``reason``/``message`` describe why the runner is not up yet (e.g.
    ``ContainerCreating``, ``Unschedulable``) and ``node`` is set once the pod is scheduled.
    """

    kind: RunnerKind
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    node: str | None = None
    started_at: str | None = None


def observe_runner(job: Obj | None, pods: list[Obj]) -> RunnerObservation:
    """Map a Job and its pods to a :class:`RunnerObservation` (table in ``docs/sessions.md``).

    Rows are evaluated in order; the first that matches wins:

    1. no Job → ``missing``
    2. Job ``Failed`` (or ``FailureTarget``) with reason ``DeadlineExceeded`` → failed ``Timeout``
    3. runner container terminated: exit 0 → completed ``Completed``; a non-zero exit only once
       the Job has its verdict (``Failed`` or ``FailureTarget``): exit 2 → failed
       ``PrerequisiteFailed``, killed for memory → failed ``OOMKilled``, other → failed
       ``RunnerExit``; before the verdict → ``pending``
       (reason ``RunnerExited``)
    4. runner waiting with an unrecoverable reason (image pull, crash loop) → failed <reason>;
       4b: the same for an init container (``init-hydrate``, the ``state-sync`` sidecar);
       4c: an init container (not a sidecar) terminated non-zero → failed ``PodFailed``
       "Init container <name> failed (exit <code>): <message> - <reason>" once the Job has its
       verdict (before it: ``pending``, like 3d)
    5. Job ``Complete`` → completed ``Completed``
    6. Job ``Failed`` (``BackoffLimitExceeded``, ``PodFailurePolicy``, ...) → failed <reason>
    7. pod phase ``Failed`` (e.g. evicted) → failed ``PodFailed``
    8. runner running → ``running``
    9. otherwise → ``pending``

    Row 2 comes before the container's exit code because a deadline kills the runner (exit 137/143)
    and that must read as a timeout, not a crash; ``FailureTarget`` is checked too because newer Job
    controllers add it (with the same reason) before ``Failed``, while the pod is still terminating.
    The pod's update can still arrive before the Job's: that is why a non-zero exit waits for the
    Job's verdict (with ``backoffLimit: 0`` it follows within moments) instead of deciding alone.
    Only pods of this Job are considered (controller UID and run annotation, when present), and of
    those the newest: a pod of a previous run that is still terminating must not decide this run.

    Each row (or group of rows) is a helper that returns None when it does not match, so the
    order of the table is the order of the ``or`` chain below.
    """
    if job is None:  # row 1
        return RunnerObservation("missing", REASON_JOB_MISSING, "runner Job not found")
    conds = _true_job_conditions(job)
    deadline = _deadline_verdict(job, conds)  # row 2
    if deadline is not None:
        return deadline

    pod = _newest_pod(job, pods)
    runner = _runner_status(pod) if pod is not None else None
    state: Obj = (runner or {}).get("state") or {}
    pod_status: Obj = (pod or {}).get("status") or {}
    node = _node(pod)
    return (
        _terminated_verdict(state.get("terminated"), conds, node)  # row 3
        or _waiting_verdict(state.get("waiting"), node)  # row 4
        or _init_verdict(pod, conds, node)  # rows 4b, 4c
        or _job_verdict(conds, node)  # rows 5, 6
        or _pod_failed_verdict(pod_status, node)  # row 7
        or _running_or_pending(state, pod_status, node)  # rows 8, 9
    )


def _has_failure_verdict(conds: list[Obj]) -> bool:
    """The Job controller has decided the Job failed (``FailureTarget`` comes before ``Failed``)."""
    return any(c.get("type") in ("Failed", "FailureTarget") for c in conds)


def _deadline_verdict(job: Obj, conds: list[Obj]) -> RunnerObservation | None:
    """Row 2: the Job's ``activeDeadlineSeconds`` ran out, whatever the runner's exit code."""
    deadline = next(
        (
            c
            for c in conds
            if c.get("type") in ("Failed", "FailureTarget")
            and c.get("reason") == REASON_DEADLINE_EXCEEDED
        ),
        None,
    )
    if deadline is None:
        return None
    secs = (job.get("spec") or {}).get("activeDeadlineSeconds")
    msg = (
        f"runner exceeded its timeout of {secs}s"
        if secs is not None
        else "runner exceeded its timeout"
    )
    return RunnerObservation("failed", REASON_TIMEOUT, msg)


def _terminated_verdict(
    terminated: Obj | None, conds: list[Obj], node: str | None
) -> RunnerObservation | None:
    """Row 3: the runner container has exited.

    Exit 0 is final on its own. A non-zero exit waits for the Job's failure verdict (3d), because
    the pod's update can arrive before the Job's and a deadline kill must then read as row 2.
    """
    if terminated is None:
        return None
    code = terminated.get("exitCode")
    if code == 0:  # 3a
        return RunnerObservation(
            "completed", REASON_COMPLETED, "runner finished", exit_code=0, node=node
        )
    if not _has_failure_verdict(conds):  # 3d
        return RunnerObservation(
            "pending",
            REASON_RUNNER_EXITED,
            f"runner exited with code {code}; waiting for the Job's verdict",
            exit_code=code if isinstance(code, int) else None,
            node=node,
        )
    if code == EXIT_PREREQUISITE_FAILED:  # 3b
        return RunnerObservation(
            "failed",
            REASON_PREREQUISITE_FAILED,
            _exit_message(code, terminated, "runner prerequisites not met"),
            exit_code=code,
            node=node,
        )
    # 3c: the kernel's OOM kill is named as such (the platform's UI shows the reason); any
    # other exit is a RunnerExit with the code, reason and message.
    oom = terminated.get("reason") == REASON_OOM_KILLED
    return RunnerObservation(
        "failed",
        REASON_OOM_KILLED if oom else REASON_RUNNER_EXIT,
        _exit_message(code, terminated, "runner exited"),
        exit_code=code if isinstance(code, int) else None,
        node=node,
    )


def _waiting_verdict(waiting: Obj | None, node: str | None) -> RunnerObservation | None:
    """Row 4: the runner is stuck waiting for a reason that does not heal by itself."""
    if waiting is not None and waiting.get("reason") in WAITING_FAILURE_REASONS:
        return RunnerObservation(
            "failed", str(waiting["reason"]), str(waiting.get("message") or ""), node=node
        )
    return None


def _init_verdict(pod: Obj | None, conds: list[Obj], node: str | None) -> RunnerObservation | None:
    """Rows 4b and 4c: the first init container that is stuck or failed decides. A failed
    ``init-hydrate`` (say, the state store unreachable) fails the pod at once (``restartPolicy:
    Never``); its exit waits for the Job's verdict for the same reason as row 3d. Sidecars
    (``restartPolicy: Always``) are restarted by the kubelet, so only their waiting reasons
    count."""
    spec: Obj = (pod or {}).get("spec") or {}
    sidecars = {
        c.get("name")
        for c in spec.get("initContainers") or ()
        if c.get("restartPolicy") == "Always"
    }
    for status in ((pod or {}).get("status") or {}).get("initContainerStatuses") or ():
        name = str(status.get("name") or "")
        state: Obj = status.get("state") or {}
        waiting: Obj = state.get("waiting") or {}
        if waiting.get("reason") in WAITING_FAILURE_REASONS:  # 4b
            message = f"Init container {name}: {waiting.get('message') or waiting['reason']}"
            return RunnerObservation("failed", str(waiting["reason"]), message, node=node)
        terminated: Obj = state.get("terminated") or {}
        code = terminated.get("exitCode")
        if not terminated or code == 0 or name in sidecars:
            continue
        detail = " - ".join(
            str(p) for p in (terminated.get("message"), terminated.get("reason")) if p
        )
        message = f"Init container {name} failed (exit {code})" + (f": {detail}" if detail else "")
        if not _has_failure_verdict(conds):
            return RunnerObservation("pending", REASON_INIT_EXITED, message, node=node)
        return RunnerObservation("failed", REASON_POD_FAILED, message, node=node)  # 4c
    return None


def _job_verdict(conds: list[Obj], node: str | None) -> RunnerObservation | None:
    """Rows 5 and 6: the Job's ``Complete`` or ``Failed``, when the runner's state said nothing."""
    if any(c.get("type") == "Complete" for c in conds):
        return RunnerObservation("completed", REASON_COMPLETED, "runner Job completed", node=node)
    failed = next((c for c in conds if c.get("type") == "Failed"), None)
    if failed is not None:
        return RunnerObservation(
            "failed",
            str(failed.get("reason") or REASON_JOB_FAILED),
            str(failed.get("message") or "runner Job failed"),
            node=node,
        )
    return None


def _pod_failed_verdict(pod_status: Obj, node: str | None) -> RunnerObservation | None:
    """Row 7: the pod itself failed (e.g. evicted) without a runner exit or a Job verdict."""
    if pod_status.get("phase") == "Failed":
        parts = [str(p) for p in (pod_status.get("reason"), pod_status.get("message")) if p]
        return RunnerObservation(
            "failed", REASON_POD_FAILED, ": ".join(parts) or "runner pod failed", node=node
        )
    return None


def _running_or_pending(state: Obj, pod_status: Obj, node: str | None) -> RunnerObservation:
    """Rows 8 and 9: the runner is up, or not yet (with the reason it is waiting, if known)."""
    running = state.get("running")
    if running is not None:
        started = running.get("startedAt")
        return RunnerObservation("running", node=node, started_at=str(started) if started else None)
    reason, message = _pending_detail(pod_status, state.get("waiting"))
    return RunnerObservation("pending", reason, message, node=node)


def _true_job_conditions(job: Obj) -> list[Obj]:
    conds: Any = (job.get("status") or {}).get("conditions") or []
    return [c for c in conds if isinstance(c, dict) and c.get("status") == "True"]


def _newest_pod(job: Obj, pods: list[Obj]) -> Obj | None:
    job_meta = job.get("metadata") or {}
    job_uid = job_meta.get("uid")
    job_run = (job_meta.get("annotations") or {}).get(ANN_RUN)

    def belongs(pod: Obj) -> bool:
        meta = pod.get("metadata") or {}
        if job_uid:
            ctrl = [r for r in meta.get("ownerReferences") or () if r.get("controller")]
            if ctrl and ctrl[0].get("uid") != job_uid:
                return False
        pod_run = (meta.get("annotations") or {}).get(ANN_RUN)
        return not (job_run is not None and pod_run is not None and pod_run != job_run)

    candidates = [p for p in pods if belongs(p)]
    if not candidates:
        return None
    # RFC3339 second-precision UTC timestamps sort chronologically as strings.
    return max(
        candidates,
        key=lambda p: (
            str((p.get("metadata") or {}).get("creationTimestamp") or ""),
            str((p.get("metadata") or {}).get("name") or ""),
        ),
    )


def _runner_status(pod: Obj) -> Obj | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        if cs.get("name") == RUNNER_CONTAINER:
            return dict[str, Any](cs)
    return None


def _node(pod: Obj | None) -> str | None:
    node = ((pod or {}).get("spec") or {}).get("nodeName")
    return str(node) if node else None


def _exit_message(code: Any, terminated: Obj, default: str) -> str:
    msg = f"{default}: exit code {code}"
    if terminated.get("reason"):
        msg += f", reason {terminated['reason']}"
    if terminated.get("message"):
        msg += f": {terminated['message']}"
    return msg


def _pending_detail(pod_status: Obj, waiting: Obj | None) -> tuple[str, str]:
    if waiting is not None and waiting.get("reason"):
        return str(waiting["reason"]), str(waiting.get("message") or "")
    for cond in pod_status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("reason") or REASON_UNSCHEDULABLE), str(cond.get("message") or "")
    return "", ""
