"""The runner pod of today, end to end: init-hydrate, then the state-sync native sidecar, then the
runner. The Job passes the API server and Pod Security ``restricted``, the pod goes through
hydration before the runner starts, the Job completes when the runner exits although the sidecar
is still running, and a failed hydration fails the session with the init container's message."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testenv.controlplane import Cluster
from testenv.kubectl_watch import KubectlWatch
from testenv.operator_process import OperatorProcess

from agentic_operator.sessions.builders import build_job
from agentic_operator.sessions.config import SessionConfig
from tests.e2e.helpers import (
    annotate,
    condition,
    create,
    get_json,
    runner_secret,
    session,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
Obj = dict[str, Any]


class PodWatch:
    """Every version of the pods of a namespace, in order, from a ``kubectl get -w``."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.versions: list[Obj] = []
        self._watch = KubectlWatch(
            cluster.kubeconfig, "pods", self.versions.append, namespace=namespace
        )

    def stop(self) -> None:
        self._watch.stop()


def states(pod: Obj) -> dict[str, str]:
    """Container name -> the key of its state (``waiting``/``running``/``terminated``)."""
    status = pod.get("status") or {}
    out = {}
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        state = cs.get("state") or {}
        out[cs["name"]] = next(iter(state), "")
    return out


def first(versions: list[Obj], want: dict[str, str], phase: str | None = None) -> int:
    """Index of the first pod version whose containers are in the states of ``want``."""
    for i, pod in enumerate(versions):
        got = states(pod)
        if all(got.get(k) == v for k, v in want.items()) and (
            phase is None or (pod.get("status") or {}).get("phase") == phase
        ):
            return i
    raise AssertionError(
        f"no pod version with {want} (phase {phase}): {[states(p) for p in versions]}"
    )


def test_the_job_hydrates_then_runs_with_its_sidecar_and_completes_when_the_runner_exits(
    deployed: Cluster, namespace: str
) -> None:
    """Without the operator: the Job as built, created as is, run by the Job controller and kwok
    in a namespace that enforces Pod Security ``restricted``."""
    deployed.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    obj = session("pod", namespace, outcome="complete", duration="2s")
    obj["spec"]["environmentVariables"]["TESTENV_HYDRATE_DURATION"] = "1s"
    obj["metadata"]["uid"] = "not-a-session"
    job, _ = build_job(obj, SessionConfig(), run=1)
    # No session owns it here (an owner that does not exist would have it garbage collected).
    del job["metadata"]["ownerReferences"]
    watch = PodWatch(deployed, namespace)
    try:
        create(deployed, job)

        def complete() -> Obj | None:
            j = get_json(deployed, "job", "pod-job", "-n", namespace)
            conds = ((j or {}).get("status") or {}).get("conditions") or []
            done = any(c["type"] == "Complete" and c["status"] == "True" for c in conds)
            return j if done else None

        done = wait_for("the Job complete", complete, timeout=90)
        assert done["status"].get("succeeded") == 1
        wait_for(
            "the Succeeded pod watched",
            lambda: any(
                (p.get("status") or {}).get("phase") == "Succeeded" for p in watch.versions
            ),
        )
    finally:
        watch.stop()
    versions = watch.versions
    spec = versions[0]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["init-hydrate", "state-sync"]
    assert spec["initContainers"][1]["restartPolicy"] == "Always"
    assert [c["name"] for c in spec["containers"]] == ["ambient-code-runner"]
    hydrating = first(
        versions,
        {"init-hydrate": "running", "state-sync": "waiting", "ambient-code-runner": "waiting"},
        "Pending",
    )
    syncing = first(
        versions,
        {"init-hydrate": "terminated", "state-sync": "running", "ambient-code-runner": "running"},
        "Running",
    )
    ended = first(versions, {"ambient-code-runner": "terminated"}, "Succeeded")
    assert hydrating < syncing < ended
    hydrate = next(
        cs
        for cs in versions[syncing]["status"]["initContainerStatuses"]
        if cs["name"] == "init-hydrate"
    )
    assert hydrate["state"]["terminated"]["exitCode"] == 0


def test_a_session_pod_of_today(
    deployed: Cluster, namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    """The operator's pod: the registry's port (container, Service, probes, AGUI_PORT) and grace,
    the token Secret's agui-token behind AGUI_TOKEN, the bot token as a file, the namespace's CA
    bundle; stopping it ends the pod with its sidecar."""
    registry = tmp_path / "agent-registry.json"
    registry.write_text(
        json.dumps(
            [
                {
                    "id": "claude-agent-sdk",
                    "container": {"port": 9100},
                    "sandbox": {"terminationGracePeriod": 45},
                }
            ]
        )
    )
    start_operator(env={"AGENT_REGISTRY_PATH": str(registry)})
    runner_secret(deployed, namespace)
    create(
        deployed,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "trusted-ca-bundle", "namespace": namespace},
            "data": {"ca-bundle.crt": "-----BEGIN CERTIFICATE-----\n"},
        },
    )
    create(deployed, session("today", namespace, outcome="run-forever"))
    running = wait_phase(deployed, namespace, "today", "Running", timeout=60)
    assert condition(running, "Ready")["status"] == "True"

    job = get_json(deployed, "job", "today-job", "-n", namespace)
    assert job is not None
    pod_spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["initContainers"]] == ["init-hydrate", "state-sync"]
    assert pod_spec["terminationGracePeriodSeconds"] == 45
    runner = pod_spec["containers"][0]
    assert runner["ports"] == [{"name": "agui", "containerPort": 9100, "protocol": "TCP"}]
    probe = runner["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/health", 9100)
    env = {e["name"]: e for e in runner["env"]}
    assert env["AGUI_PORT"]["value"] == "9100"
    assert env["AGUI_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "agui-token"
    mounts = {m["mountPath"]: m for m in runner["volumeMounts"]}
    assert mounts["/var/run/secrets/ambient"]["name"] == "runner-token"
    assert mounts["/etc/pki/tls/certs/ca-bundle.crt"]["subPath"] == "ca-bundle.crt"
    service = get_json(deployed, "service", "session-today", "-n", namespace)
    assert service is not None
    assert service["spec"]["ports"][0]["port"] == 9100

    token = get_json(deployed, "secret", "ambient-runner-token-today", "-n", namespace)
    assert token is not None
    agui = base64.b64decode(token["data"]["agui-token"]).decode()
    assert len(agui) == 36, "a UUID"

    annotate(deployed, namespace, "today", "ambient-code.io/desired-phase=Stopped")
    wait_phase(deployed, namespace, "today", "Stopped", timeout=60)
    # A restart gets a new Job; the token Secret keeps its agui-token.
    annotate(deployed, namespace, "today", "ambient-code.io/desired-phase=Running")
    wait_for(
        "run 2 Running",
        lambda: (
            (s := get_json(deployed, "agenticsession", "today", "-n", namespace))
            and s["status"].get("run") == 2
            and s["status"].get("phase") == "Running"
        ),
        timeout=60,
    )
    again = get_json(deployed, "secret", "ambient-runner-token-today", "-n", namespace)
    assert again is not None
    assert base64.b64decode(again["data"]["agui-token"]).decode() == agui


@pytest.mark.parametrize(
    ("outcome", "reason", "message"),
    [
        ("init-fail", "PodFailed", "Init container init-hydrate failed (exit 1)"),
        ("oom", "OOMKilled", "exit code 137, reason OOMKilled"),
    ],
)
def test_a_failed_hydration_or_an_oom_kill_fails_the_session(
    deployed: Cluster,
    namespace: str,
    start_operator: StartOperator,
    outcome: str,
    reason: str,
    message: str,
) -> None:
    start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("broken", namespace, outcome=outcome, duration="3s"))
    failed = wait_phase(deployed, namespace, "broken", "Failed", timeout=60)
    ready = condition(failed, "Ready")
    assert ready["reason"] == reason
    assert message in ready["message"]


def test_a_stop_during_hydration_ends_stopped_before_the_runner_ever_ran(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """The backend's stop while ``init-hydrate`` still runs: the session is Creating, the stop is
    honoured there (upstream ignores it while the pod exists), and it ends Stopped with no pod of
    the session left and no runner container ever started."""
    start_operator()
    runner_secret(deployed, namespace)
    watch = PodWatch(deployed, namespace)
    try:
        slow = {"TESTENV_HYDRATE_DURATION": "300s"}
        create(deployed, session("hydrating", namespace, outcome="run-forever", env=slow))
        wait_for(
            "init-hydrate running",
            lambda: any(states(p).get("init-hydrate") == "running" for p in watch.versions),
            timeout=60,
        )
        creating = get_json(deployed, "agenticsession", "hydrating", "-n", namespace)
        assert creating is not None
        assert creating["status"]["phase"] == "Creating"
        annotate(deployed, namespace, "hydrating", "ambient-code.io/desired-phase=Stopped")
        stopped = wait_phase(deployed, namespace, "hydrating", "Stopped", timeout=90)
        assert stopped["status"]["stoppedReason"] == "user"
        # The stop request is spent by a patch right after the Stopped status write.
        wait_for(
            "desired-phase cleared",
            lambda: (
                "ambient-code.io/desired-phase"
                not in (
                    (get_json(deployed, "agenticsession", "hydrating", "-n", namespace) or {})
                    .get("metadata", {})
                    .get("annotations", {})
                )
            ),
            timeout=30,
        )
        left = deployed.kubectl(
            "get", "pods", "-n", namespace, "-l", "agentic-session=hydrating", "-o", "name"
        )
        assert left.stdout.strip() == ""
        runner = [states(p).get("ambient-code-runner") for p in watch.versions]
        assert "running" not in runner, runner
    finally:
        watch.stop()
