"""observe_runner: every row of the Job/pod → verdict table in docs/sessions.md, in order."""

from __future__ import annotations

from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.verdict import RunnerObservation, observe_runner

JOB_UID = "job-uid-1"


def job(*conditions: Obj, deadline: int = 3600, run: str | None = "1") -> Obj:
    meta: Obj = {"name": "s1-job", "namespace": "ns", "uid": JOB_UID}
    if run is not None:
        meta["annotations"] = {"ambient-code.io/run": run}
    return {
        "metadata": meta,
        "spec": {"activeDeadlineSeconds": deadline},
        "status": {"conditions": list(conditions)},
    }


def cond(type_: str, reason: str = "", message: str = "", status: str = "True") -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def pod(
    state: Obj | None = None,
    *,
    phase: str = "Pending",
    node: str | None = "node-1",
    created: str = "2026-01-01T00:00:00Z",
    name: str = "s1-job-abcde",
    owner_uid: str = JOB_UID,
    run: str | None = "1",
    container: str = "ambient-code-runner",
    **status: Any,
) -> Obj:
    meta: Obj = {
        "name": name,
        "creationTimestamp": created,
        "ownerReferences": [{"kind": "Job", "uid": owner_uid, "controller": True}],
    }
    if run is not None:
        meta["annotations"] = {"ambient-code.io/run": run}
    st: Obj = {"phase": phase, **status}
    if state is not None:
        st["containerStatuses"] = [{"name": container, "state": state}]
    spec: Obj = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec, "status": st}


def terminated(code: int, reason: str = "", message: str = "") -> Obj:
    return {"terminated": {"exitCode": code, "reason": reason, "message": message}}


def waiting(reason: str, message: str = "") -> Obj:
    return {"waiting": {"reason": reason, "message": message}}


RUNNING = {"running": {"startedAt": "2026-01-01T00:01:00Z"}}


def helper_pod(
    hydrate: Obj | None = None,
    *,
    sidecar: Obj | None = None,
    runner: Obj | None = None,
    phase: str = "Pending",
) -> Obj:
    """A runner pod with init-hydrate and the state-sync sidecar in the given states."""
    p = pod(runner or waiting("PodInitializing"), phase=phase)
    p["spec"]["initContainers"] = [
        {"name": "init-hydrate"},
        {"name": "state-sync", "restartPolicy": "Always"},
    ]
    p["status"]["initContainerStatuses"] = [
        {"name": "init-hydrate", "state": hydrate or terminated(0, "Completed")},
        {"name": "state-sync", "state": sidecar or waiting("PodInitializing")},
    ]
    return p


CASES = [
    # Row 1: no Job.
    pytest.param(
        None,
        [pod(RUNNING)],
        RunnerObservation("missing", "JobMissing", "runner Job not found"),
        id="1-job-missing",
    ),
    # Row 2: deadline; wins over the container's kill exit code and over Complete.
    pytest.param(
        job(
            cond("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"),
            deadline=900,
        ),
        [pod(terminated(143, "Error"), phase="Failed")],
        RunnerObservation("failed", "Timeout", "runner exceeded its timeout of 900s"),
        id="2-deadline-exceeded",
    ),
    pytest.param(
        job(cond("FailureTarget", "DeadlineExceeded"), deadline=60),
        [pod(RUNNING, phase="Running")],
        RunnerObservation("failed", "Timeout", "runner exceeded its timeout of 60s"),
        id="2-deadline-failure-target-before-failed",
    ),
    # Row 3: runner terminated.
    pytest.param(
        job(),
        [pod(terminated(0, "Completed"), phase="Succeeded")],
        RunnerObservation("completed", "Completed", "runner finished", exit_code=0, node="node-1"),
        id="3-exit-0",
    ),
    pytest.param(
        job(cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        [pod(terminated(2, "Error", "ANTHROPIC_API_KEY missing"), phase="Failed")],
        RunnerObservation(
            "failed",
            "PrerequisiteFailed",
            "runner prerequisites not met: exit code 2, reason Error: ANTHROPIC_API_KEY missing",
            exit_code=2,
            node="node-1",
        ),
        id="3-exit-2-beats-job-failed",
    ),
    pytest.param(
        job(cond("Failed", "BackoffLimitExceeded")),
        [pod(terminated(137, "OOMKilled", "out of memory"), phase="Failed")],
        RunnerObservation(
            "failed",
            "OOMKilled",
            "runner exited: exit code 137, reason OOMKilled: out of memory",
            exit_code=137,
            node="node-1",
        ),
        id="3c-oom-killed",
    ),
    pytest.param(
        job(cond("Failed", "BackoffLimitExceeded")),
        [pod(terminated(137, "Error", "killed"), phase="Failed")],
        RunnerObservation(
            "failed",
            "RunnerExit",
            "runner exited: exit code 137, reason Error: killed",
            exit_code=137,
            node="node-1",
        ),
        id="3-exit-other",
    ),
    pytest.param(
        job(cond("FailureTarget", "BackoffLimitExceeded")),
        [pod(terminated(1, "Error", "boom"), phase="Failed")],
        RunnerObservation(
            "failed",
            "RunnerExit",
            "runner exited: exit code 1, reason Error: boom",
            exit_code=1,
            node="node-1",
        ),
        id="3-exit-other-on-failure-target",
    ),
    pytest.param(
        job(),  # the pod's update came first: a deadline kill must not read as a crash
        [pod(terminated(143, "Error"), phase="Failed")],
        RunnerObservation(
            "pending",
            "RunnerExited",
            "runner exited with code 143; waiting for the Job's verdict",
            exit_code=143,
            node="node-1",
        ),
        id="3-non-zero-exit-waits-for-the-job-verdict",
    ),
    # Row 4: unrecoverable waiting reasons.
    *[
        pytest.param(
            job(),
            [pod(waiting(r, f"{r} detail"))],
            RunnerObservation("failed", r, f"{r} detail", node="node-1"),
            id=f"4-waiting-{r}",
        )
        for r in (
            "ImagePullBackOff",
            "ErrImagePull",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
            "InvalidImageName",
            "CreateContainerError",
        )
    ],
    # Rows 4b/4c: init containers (init-hydrate, the state-sync sidecar).
    pytest.param(
        job(cond("FailureTarget", "PodFailed"), cond("Failed", "BackoffLimitExceeded")),
        [helper_pod(terminated(1, "Error", "Failed to connect to S3"), phase="Failed")],
        RunnerObservation(
            "failed",
            "PodFailed",
            "Init container init-hydrate failed (exit 1): Failed to connect to S3 - Error",
            node="node-1",
        ),
        id="4c-init-failed",
    ),
    pytest.param(
        job(cond("Failed", "BackoffLimitExceeded")),
        [helper_pod(terminated(2), phase="Failed")],
        RunnerObservation(
            "failed", "PodFailed", "Init container init-hydrate failed (exit 2)", node="node-1"
        ),
        id="4c-init-failed-without-detail",
    ),
    pytest.param(
        job(),
        [helper_pod(terminated(1, "Error"), phase="Failed")],
        RunnerObservation(
            "pending",
            "InitContainerExited",
            "Init container init-hydrate failed (exit 1): Error",
            node="node-1",
        ),
        id="4c-init-failed-before-the-job-verdict",
    ),
    pytest.param(
        job(),
        [helper_pod(waiting("ImagePullBackOff", 'Back-off pulling image "sync"'))],
        RunnerObservation(
            "failed",
            "ImagePullBackOff",
            'Init container init-hydrate: Back-off pulling image "sync"',
            node="node-1",
        ),
        id="4b-init-image-pull",
    ),
    pytest.param(
        job(),
        [helper_pod(sidecar=terminated(143, "Error"), phase="Running", runner=RUNNING)],
        RunnerObservation("running", node="node-1", started_at="2026-01-01T00:01:00Z"),
        id="4c-a-sidecar-exit-is-no-failure",
    ),
    pytest.param(
        job(),
        [helper_pod({"running": {}})],
        RunnerObservation("pending", "PodInitializing", "", node="node-1"),
        id="9-hydrating",
    ),
    # Row 5: Job Complete without a visible container state (pod already gone).
    pytest.param(
        job(cond("SuccessCriteriaMet"), cond("Complete")),
        [],
        RunnerObservation("completed", "Completed", "runner Job completed"),
        id="5-job-complete",
    ),
    # Row 6: Job Failed for other reasons.
    pytest.param(
        job(cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        [],
        RunnerObservation(
            "failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        ),
        id="6-job-failed-backoff",
    ),
    pytest.param(
        job(
            cond(
                "Failed",
                "PodFailurePolicy",
                "Container runner for pod ns/p failed with exit code 3",
            )
        ),
        [pod(phase="Failed")],
        RunnerObservation(
            "failed",
            "PodFailurePolicy",
            "Container runner for pod ns/p failed with exit code 3",
            node="node-1",
        ),
        id="6-job-failed-pod-failure-policy",
    ),
    pytest.param(
        job(cond("Failed")),
        [],
        RunnerObservation("failed", "JobFailed", "runner Job failed"),
        id="6-job-failed-no-reason",
    ),
    # Row 7: pod failed without a terminated runner (eviction).
    pytest.param(
        job(),
        [pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")],
        RunnerObservation(
            "failed", "PodFailed", "Evicted: The node was low on resource: memory.", node="node-1"
        ),
        id="7-pod-failed-evicted",
    ),
    pytest.param(
        job(),
        [pod(phase="Failed", node=None)],
        RunnerObservation("failed", "PodFailed", "runner pod failed"),
        id="7-pod-failed-no-detail",
    ),
    # Row 8: running.
    pytest.param(
        job(),
        [pod(RUNNING, phase="Running")],
        RunnerObservation("running", node="node-1", started_at="2026-01-01T00:01:00Z"),
        id="8-running",
    ),
    # Row 9: pending, with whatever detail there is.
    pytest.param(job(), [], RunnerObservation("pending"), id="9-no-pod-yet"),
    pytest.param(
        job(),
        [pod(waiting("ContainerCreating"))],
        RunnerObservation("pending", "ContainerCreating", "", node="node-1"),
        id="9-container-creating",
    ),
    pytest.param(
        job(),
        [
            pod(
                node=None,
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes",
                    }
                ],
            )
        ],
        RunnerObservation("pending", "Unschedulable", "0/3 nodes"),
        id="9-unschedulable",
    ),
    pytest.param(
        job(),
        [pod(RUNNING, container="some-sidecar")],
        RunnerObservation("pending", node="node-1"),
        id="9-only-other-container-reported",
    ),
    pytest.param(
        job(cond("Failed", "DeadlineExceeded", status="False"), cond("Complete", status="False")),
        [pod(RUNNING, phase="Running")],
        RunnerObservation("running", node="node-1", started_at="2026-01-01T00:01:00Z"),
        id="conditions-with-status-false-ignored",
    ),
]


@pytest.mark.parametrize(("job_obj", "pods", "expected"), CASES)
def test_observe_runner_table(
    job_obj: Obj | None, pods: list[Obj], expected: RunnerObservation
) -> None:
    assert observe_runner(job_obj, pods) == expected


def test_newest_pod_decides() -> None:
    old = pod(terminated(1), phase="Failed", created="2026-01-01T00:00:00Z", name="a")
    new = pod(RUNNING, phase="Running", created="2026-01-01T00:05:00Z", name="b")
    assert observe_runner(job(), [new, old]).kind == "running"
    assert observe_runner(job(), [old, new]).kind == "running"


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(
            pod(terminated(1), phase="Failed", owner_uid="old-job-uid", run="2"), id="other-job-uid"
        ),
        pytest.param(
            pod(terminated(1), phase="Failed", run="1", created="2026-01-02T00:00:00Z"),
            id="other-run",
        ),
    ],
)
def test_pods_of_other_jobs_or_runs_are_ignored(stale: Obj) -> None:
    """A still-terminating pod of a previous run must not fail the new run."""
    assert observe_runner(job(run="2"), [stale]) == RunnerObservation("pending")


def test_pods_without_owner_or_run_are_considered() -> None:
    bare = pod(terminated(0), owner_uid="x", run=None)
    bare["metadata"].pop("ownerReferences")
    assert observe_runner(job(run=None), [bare]).kind == "completed"
