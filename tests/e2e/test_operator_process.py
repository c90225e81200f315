"""The operator as a process: crash safety, leader election, legacy mode, metrics, start-up errors,
the shipped manifests and Pod Security."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testenv.controlplane import Cluster
from testenv.kubectl_watch import KubectlWatch
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    annotate,
    condition,
    create,
    get_json,
    metric,
    runner_secret,
    scrape,
    session,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
REPO = Path(__file__).resolve().parents[2]
WRITE_VERBS = ("create", "update", "patch", "delete")
LEASE = "ambient-code-operator.ambient-code.io"


def _lease_holder(cluster: Cluster) -> str | None:
    lease = get_json(cluster, "lease", LEASE, "-n", "ambient-code") or {}
    holder = (lease.get("spec") or {}).get("holderIdentity")
    return str(holder) if holder else None


class JobWatch:
    """Every Job ADDED in a namespace, recorded by a ``kubectl get -w`` running beside the test."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.uids: defaultdict[str, set[str]] = defaultdict(set)
        self._watch = KubectlWatch(
            cluster.kubeconfig, "jobs", self._seen, namespace=namespace, events=True
        )

    def _seen(self, event: dict[str, Any]) -> None:
        meta = event.get("object", {}).get("metadata", {})
        if event.get("type") == "ADDED":
            self.uids[meta["name"]].add(meta["uid"])

    @property
    def created(self) -> int:
        return sum(len(v) for v in self.uids.values())

    def stop(self) -> None:
        self._watch.stop()


def _writes(samples: dict[str, float], **labels: str) -> float:
    return sum(metric(samples, "rest_client_requests_total", verb=v, **labels) for v in WRITE_VERBS)


def _terminating_namespaces(cluster: Cluster) -> list[str]:
    listed = get_json(cluster, "namespaces") or {}
    return [
        n["metadata"]["name"]
        for n in listed.get("items") or []
        if (n.get("status") or {}).get("phase") == "Terminating"
    ]


def _settled(op: OperatorProcess, quiet: float = 2.0, timeout: float = 60.0) -> dict[str, float]:
    """The operator's metrics once its write count has not moved for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = scrape(op.metrics_url())
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = scrape(op.metrics_url())
        if _writes(now) == _writes(last):
            return now
        last = now
    raise AssertionError(f"the operator kept writing for {timeout}s")


def test_sigkill_during_100_startups_leaves_exactly_one_job_per_run(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    watch = JobWatch(deployed, namespace)
    try:
        op = start_operator()
        items = [session(f"s{i:03d}", namespace, duration="1s") for i in range(100)]
        deployed.kubectl(
            "create",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        wait_for("some Jobs created", lambda: watch.created >= 25, timeout=60, interval=0.05)
        op.kill()
        killed_at = watch.created
        op.start()
        op.wait_ready(60)

        phases: Counter[str] = Counter()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            out = get_json(deployed, "agenticsessions", "-n", namespace) or {}
            phases = Counter(
                str((s.get("status") or {}).get("phase")) for s in out.get("items", [])
            )
            if phases == Counter({"Completed": 100}):
                break
            time.sleep(1)
        else:
            samples = scrape(op.metrics_url())
            depth = metric(samples, "workqueue_depth", name="agenticsession-controller")
            raise AssertionError(
                f"not all 100 sessions Completed: {dict(phases)}; queue depth {depth}; "
                f"Jobs seen {watch.created}"
            )
    finally:
        watch.stop()
    assert killed_at < 100, "the kill came after every Job existed; nothing was tested"
    assert sorted(watch.uids) == [f"s{i:03d}-job" for i in range(100)]
    duplicates = {name: uids for name, uids in watch.uids.items() if len(uids) != 1}
    assert duplicates == {}
    out = get_json(deployed, "agenticsessions", "-n", namespace) or {}
    assert {s["status"]["run"] for s in out["items"]} == {1}


def test_leader_election_one_writer_and_failover(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    a = start_operator("--leader-elect", name="replica-a")
    leader_identity = wait_for("replica-a to lead", lambda: _lease_holder(deployed))
    b = start_operator("--leader-elect", name="replica-b")

    create(deployed, session("ha1", namespace))
    wait_phase(deployed, namespace, "ha1", "Completed")
    sa, sb = scrape(a.metrics_url()), scrape(b.metrics_url())
    assert metric(sa, "leader_election_master_status") == 1
    assert metric(sb, "leader_election_master_status") == 0
    assert _writes(sa) > 0
    assert _writes(sb) == 0, "the standby wrote to the API server"
    assert metric(sb, "ambient_reconcile_duration_seconds_count") == 0

    a.kill()  # no release: the standby must wait out the lease
    killed = time.monotonic()
    wait_for(
        "replica-b to take over",
        lambda: _lease_holder(deployed) not in (None, leader_identity),
        timeout=40,
    )
    assert time.monotonic() - killed < 15 + 2 * 2 + 5
    lease = get_json(deployed, "lease", LEASE, "-n", "ambient-code") or {}
    assert lease["spec"]["leaseTransitions"] >= 1
    create(deployed, session("ha2", namespace))
    wait_phase(deployed, namespace, "ha2", "Completed")
    assert metric(scrape(b.metrics_url()), "leader_election_master_status") == 1

    # Graceful shutdown releases the lease so a new replica need not wait.
    assert b.stop(signal.SIGTERM) == 0
    assert _lease_holder(deployed) is None


def test_legacy_watch_mode_runs_the_same_reconcile(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    # The debugging set-up: no queue, and asyncio's own event loop instead of uvloop.
    op = start_operator("--legacy-watch", env={"EVENT_LOOP": "asyncio"})
    create(deployed, session("legacy", namespace, duration="500ms"))
    done = wait_phase(deployed, namespace, "legacy", "Completed", timeout=40)
    assert done["status"]["run"] == 1
    assert '"event_loop":"asyncio"' in op.log_text()
    samples = scrape(op.metrics_url())
    # No work queue in this mode: the controller's queue never saw the key.
    assert metric(samples, "workqueue_adds_total", name="agenticsession-controller") == 0
    assert metric(samples, "ambient_reconcile_duration_seconds_count") > 0


def test_readme_metrics_after_a_scenario_and_no_op_reconciles_write_nothing(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    # The write counts below are the whole operator's: an earlier test's namespace still being
    # deleted would add the operator's reactions to its cleanup.
    wait_for("no namespace terminating", lambda: not _terminating_namespaces(deployed), 120)
    op = start_operator()
    assert '"event_loop":"uvloop"' in op.log_text()  # the default
    create(deployed, session("good", namespace, duration="1s"))
    create(deployed, session("bad", namespace, outcome="exit-2", duration="500ms"))
    wait_phase(deployed, namespace, "good", "Completed")
    wait_phase(deployed, namespace, "bad", "Failed")
    # Let the cleanup writes, the project controller's (trigger RBAC, LimitRange, status) and
    # their watch events settle: on a loaded machine one second was not always enough.
    s = _settled(op)
    ns = namespace
    assert metric(s, "ambient_sessions_total", namespace=ns) == 2
    assert metric(s, "ambient_sessions_completed_total", namespace=ns, final_phase="Completed") == 1
    assert metric(s, "ambient_sessions_completed_total", namespace=ns, final_phase="Failed") == 1
    assert (
        metric(
            s,
            "ambient_session_phase_transitions_total",
            namespace=ns,
            from_phase="None",
            to_phase="Pending",
        )
        == 2
    )
    assert (
        metric(s, "ambient_session_phase_transitions_total", namespace=ns, to_phase="Creating") == 2
    )
    assert metric(s, "ambient_session_startup_duration_seconds_count", namespace=ns) >= 1
    assert (
        metric(s, "ambient_session_startup_duration_seconds_bucket", namespace=ns, le="+Inf") >= 1
    )
    assert metric(s, "ambient_session_startup_duration_seconds_sum", namespace=ns) > 0
    assert metric(s, "ambient_pod_creation_duration_seconds_count", namespace=ns) == 2
    assert metric(s, "ambient_token_provision_duration_seconds_count", namespace=ns) == 2
    assert metric(s, "ambient_session_errors_total", namespace=ns, error_type="runner_failed") == 1
    assert metric(s, "ambient_reconcile_duration_seconds_count", success="true") > 0
    assert (
        metric(s, "controller_runtime_reconcile_total", controller="agenticsession-controller") > 0
    )
    assert (
        metric(
            s,
            "controller_runtime_max_concurrent_reconciles",
            controller="agenticsession-controller",
        )
        == 10
    )

    # A no-op reconcile (an unrelated annotation wakes the controller) reads caches only.
    before = s
    reconciles = metric(
        before, "controller_runtime_reconcile_total", controller="agenticsession-controller"
    )
    annotate(deployed, namespace, "good", "example.com/touched=yes")
    wait_for(
        "a reconcile of the touched session",
        lambda: (
            metric(
                scrape(op.metrics_url()),
                "controller_runtime_reconcile_total",
                controller="agenticsession-controller",
            )
            > reconciles
        ),
    )
    after = scrape(op.metrics_url())
    assert _writes(after) == _writes(before)
    assert metric(after, "rest_client_requests_total", verb="get") == metric(
        before, "rest_client_requests_total", verb="get"
    )


def test_runner_pods_pass_the_restricted_pod_security_level(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    deployed.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    runner_secret(deployed, namespace)
    start_operator()
    create(deployed, session("secure", namespace))
    done = wait_phase(deployed, namespace, "secure", "Completed", "Failed")
    assert done["status"]["phase"] == "Completed", condition(done, "Ready")


def test_deploy_kustomization_passes_server_side_dry_run(deployed: Cluster) -> None:
    r = deployed.kubectl("apply", "--dry-run=server", "-k", str(REPO / "deploy"), check=False)
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/agentic-operator" in r.stdout


def _run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The operator process with ``args``; ``env`` over the current environment minus KUBECONFIG
    and the operator's own variables, so the test runner's environment cannot change the result."""
    ours = ("KUBECONFIG", "MAX_CONCURRENT_RECONCILES", "DEV_MODE", "LANGFUSE_ENABLED")
    full = {k: v for k, v in os.environ.items() if k not in ours}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentic_operator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full,
        check=False,
    )


def _unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A valid kubeconfig for an API server that is not there: the process gets past start-up."""
    path = tmp_path / "kubeconfig"
    cluster = {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "nowhere", "cluster": cluster}],
                "users": [{"name": "nobody", "user": {"token": "not-a-token"}}],
                "contexts": [
                    {"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody"}}
                ],
                "current-context": "nowhere",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--leader-elect=maybe"], {}, "argument --leader-elect: expected true/false"),
        (
            [],
            {"LANGFUSE_ENABLED": "maybe"},
            "environment variable LANGFUSE_ENABLED: expected true/false",
        ),
        (
            [],
            {"MAX_CONCURRENT_RECONCILES": "0"},
            "environment variable MAX_CONCURRENT_RECONCILES: expected a positive integer",
        ),
        (
            ["--cache-sync-timeout=inf"],
            {},
            "argument --cache-sync-timeout: expected a positive number of seconds",
        ),
    ],
)
def test_a_bad_flag_or_variable_exits_2_naming_it(
    args: list[str], env: dict[str, str], message: str
) -> None:
    r = _run_cli(*args, env=env)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "usage:" in r.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, 10),
        ([], {"MAX_CONCURRENT_RECONCILES": "3"}, 3),
        (["--max-concurrent-reconciles=5"], {"MAX_CONCURRENT_RECONCILES": "3"}, 5),
    ],
)
def test_explicit_flag_beats_environment_beats_default(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: int
) -> None:
    # LANGFUSE_ENABLED=t and DEV_MODE=f: one boolean vocabulary for every variable.
    r = _run_cli(
        "--kubeconfig",
        str(_unreachable_kubeconfig(tmp_path)),
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        "--cache-sync-timeout=1",
        *args,
        env={**env, "LANGFUSE_ENABLED": "t", "DEV_MODE": "f"},
    )
    assert r.returncode == 1, r.stderr
    started = [
        json.loads(line) for line in r.stderr.splitlines() if "starting agentic-operator" in line
    ]
    assert len(started) == 1, r.stderr
    assert started[0]["max_concurrent_reconciles"] == expected


def test_malformed_kubeconfig_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("this: [is not a kubeconfig")
    r = _run_cli(
        "--kubeconfig", str(bad), "--metrics-bind-address=0", "--health-probe-bind-address=0"
    )
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "kubeconfig" in lines[0].lower()


def test_unreachable_api_server_stays_unready_then_exits_1(
    tmp_path: Path, deployed: Cluster
) -> None:
    kc = json.loads(deployed.kubectl("config", "view", "--raw", "-o", "json").stdout)
    kc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kc))
    r = _run_cli(
        "--kubeconfig",
        str(path),
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        "--cache-sync-timeout=3",
    )
    assert r.returncode == 1
    assert "caches did not sync" in r.stderr


def test_session_events_tell_the_story(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner_secret(deployed, namespace)
    start_operator()
    create(deployed, session("story", namespace))
    wait_phase(deployed, namespace, "story", "Completed")

    def events() -> str:
        out = deployed.kubectl("describe", "agenticsession", "story", "-n", namespace).stdout
        tail = str(out).split("Events:")[-1]
        return tail if "Completed" in tail else ""

    events_text = wait_for("Completed event", events)
    for phase in ("Pending", "Creating", "Completed"):
        assert phase in events_text
