"""The operator behind a flaky, slow API server (testenv.faultproxy between the two).

300 sessions go through 5% faulted requests (500, 503, 429 with Retry-After, connections reset
before and after the request was forwarded, equally likely), half of the watch streams cut at a
random moment within 20 s, and 200 ms added to every request. Every session must reach the phase
its runner's outcome calls for with the status that goes with it (no status write lost), the
audit log must show exactly one successful Job create per session (no duplicate run, whatever
answers were lost), and once the faults stop the same operator process, ready and healthy,
must run a new session. The control run sends the first 100 of the same sessions (the same mix)
through the proxy with the same latency and no faults: what it asserts is the same, and its
requests per session are the baseline of the extra requests the faults cost (printed, with the
recovery time; docs/testenv.md). 100, not 300, to keep this file's wall time near 6 minutes.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from testenv.controlplane import Cluster, ControlPlane
from testenv.faultproxy import OFF, FaultProxy, Faults
from testenv.operator_process import OperatorProcess

from tests.e2e.faultrun import (
    Requests,
    create_sessions,
    drive,
    job_creates,
    local_control_plane,
    outcomes,
)
from tests.e2e.helpers import create, metric, runner_secret, scrape, session, wait_phase

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
N = 300
CONTROL_N = 100
LATENCY = 0.2
FAULTS = Faults(share=0.05, watch_cut=0.5, watch_cut_within=20.0, latency=LATENCY, retry_after=1)
FLAGS = ("--max-concurrent-reconciles", "20")


@pytest.fixture
def proxy(deployed: Cluster) -> Iterator[FaultProxy]:
    cp = local_control_plane(deployed)
    with FaultProxy(cp.ports["kube-apiserver"], cp.pki.serving, cp.ca_file, seed=11) as p:
        yield p


def _healthy(op: OperatorProcess) -> bool:
    for path in ("/healthz", "/readyz"):
        try:
            with urllib.request.urlopen(op.probe_url(path), timeout=5) as r:  # noqa: S310
                if r.status != 200:
                    return False
        except OSError:
            return False
    return True


def _run(
    cp: ControlPlane,
    namespace: str,
    op: OperatorProcess,
    proxy: FaultProxy,
    faults: Faults,
    n: int = N,
) -> tuple[Requests, float]:
    """Create the ``n`` sessions with ``faults`` on, follow them to their end, check every one, then
    turn the faults off and time one more session from then to Completed."""
    plan = outcomes(n)
    proxy.set_faults(faults)
    started = time.monotonic()
    create_sessions(cp, namespace, plan)

    def describe() -> str:
        depth = metric(scrape(op.metrics_url()), "workqueue_depth")
        return f"queue depth {depth}; proxy {dict(proxy.stats)}; operator alive {op.alive}"

    drive(cp, namespace, plan, timeout=420, describe=describe)
    took = time.monotonic() - started
    requests = Requests.of(op)

    proxy.set_faults(OFF)
    off = time.monotonic()
    create(cp, session("after", namespace, duration="1s"))
    wait_phase(cp, namespace, "after", "Completed", timeout=60)
    recovery = time.monotonic() - off

    creates = job_creates(cp, namespace)
    want = {f"{name}-job" for name in [*plan, "after"]}
    assert set(creates) == want, f"Jobs created that are no session's: {set(creates) - want}"
    duplicates = {name: n for name, n in creates.items() if n != 1}
    assert duplicates == {}, f"more than one Job create per run: {duplicates}"
    print(
        f"\nFIGURES {namespace}: {n} sessions in {took:.0f}s, proxy {dict(proxy.stats)}, "
        f"requests/session {requests.total / n:.2f}, writes/session {requests.writes / n:.2f} "
        f"({dict(requests.by_verb)}), new session after faults off: {recovery:.1f}s"
    )
    return requests, recovery


@pytest.mark.timeout(600)
def test_300_sessions_through_faults_end_right_with_one_job_each_and_the_operator_recovers(
    deployed: Cluster, namespace: str, start_operator: StartOperator, proxy: FaultProxy
) -> None:
    cp = local_control_plane(deployed)
    runner_secret(cp, namespace)
    proxy.set_faults(FAULTS)
    op = start_operator(*FLAGS, server=proxy.url, wait_ready=False)
    op.wait_ready(120)
    pid = op.pid
    _run(cp, namespace, op, proxy, FAULTS)

    for kind in ("500", "503", "429", "reset-before", "reset-after", "watch-cut"):
        assert proxy.stats[kind] > 0, f"no {kind} injected: nothing was tested ({proxy.stats})"
    assert op.alive, "the operator exited"
    assert op.pid == pid, "the operator restarted"
    assert _healthy(op), "probes not green after the faults stopped"
    log = op.log_text()
    assert "Traceback" not in log, "an expected failure was logged with a traceback"
    samples = scrape(op.metrics_url())
    assert metric(samples, "workqueue_depth", name="agenticsession-controller") == 0


@pytest.mark.timeout(600)
def test_control_run_without_faults_through_the_same_latency(
    deployed: Cluster, namespace: str, start_operator: StartOperator, proxy: FaultProxy
) -> None:
    cp = local_control_plane(deployed)
    runner_secret(cp, namespace)
    calm = Faults(latency=LATENCY)
    proxy.set_faults(calm)
    op = start_operator(*FLAGS, server=proxy.url, wait_ready=False)
    op.wait_ready(60)
    _run(cp, namespace, op, proxy, calm, CONTROL_N)
    assert set(proxy.stats) == {"forwarded"}, proxy.stats
