"""Many sessions through the operator, followed to their end and checked, for the fault and
failover tests: the mix of runner outcomes, the status each outcome calls for, the audit log's
Job creates and the operator's request counts.

The mix (:func:`outcomes`): most runners ``complete`` after 1 s, one in ten ``exit-1`` after 1 s,
one in ten ``run-forever`` and is stopped as the backend stops it (``desired-phase=Stopped``,
``stop-requested-at``) once its session is Running. Sessions are created and read with the admin's
credentials straight at the API server (never through a fault proxy: the faults are the
operator's to survive, not the test's).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from testenv import audit
from testenv.controlplane import Cluster, ControlPlane
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import Obj, metric, scrape, session

SESSIONS = "/apis/vteam.ambient-code/v1alpha1/namespaces/{ns}/agenticsessions"
FINAL = {"complete": "Completed", "exit-1": "Failed", "stop": "Stopped"}
STOP_ANNOTATIONS = ("ambient-code.io/desired-phase", "ambient-code.io/stop-requested-at")
WRITE_VERBS = ("create", "update", "patch", "delete")
OPERATOR_USER = "system:serviceaccount:ambient-code:agentic-operator"


def local_control_plane(cluster: Cluster) -> ControlPlane:
    """The cluster as a local ControlPlane with an audit log, or a skip (an existing cluster)."""
    if not isinstance(cluster, ControlPlane) or cluster.audit_log is None:
        pytest.skip("needs the local control plane and its audit log (not USE_EXISTING_CLUSTER)")
    return cluster


def outcomes(n: int) -> dict[str, str]:
    """Session name -> what its runner does: ``complete``, ``exit-1`` or ``stop``."""
    kinds = {0: "exit-1", 5: "stop"}
    return {f"s{i:03d}": kinds.get(i % 10, "complete") for i in range(n)}


def create_sessions(cp: ControlPlane, namespace: str, plan: dict[str, str]) -> None:
    items = [
        session(
            name,
            namespace,
            outcome="run-forever" if kind == "stop" else kind,
            duration="1s",
        )
        for name, kind in plan.items()
    ]
    cp.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        timeout=180,
    )


def list_sessions(cp: ControlPlane, namespace: str) -> dict[str, Obj]:
    status, body = cp.api("GET", SESSIONS.format(ns=namespace), timeout=30)
    assert status == 200, body
    return {s["metadata"]["name"]: s for s in body["items"]}


def request_stop(cp: ControlPlane, namespace: str, name: str) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {
        "metadata": {"annotations": dict(zip(STOP_ANNOTATIONS, ("Stopped", now), strict=True))}
    }
    status, body = cp.api(
        "PATCH",
        f"{SESSIONS.format(ns=namespace)}/{name}",
        patch,
        content_type="application/merge-patch+json",
    )
    assert status == 200, body


def phase(s: Obj) -> str | None:
    return (s.get("status") or {}).get("phase")


def drive(
    cp: ControlPlane,
    namespace: str,
    plan: dict[str, str],
    *,
    timeout: float,
    describe: Callable[[], str] = str,
) -> dict[str, Obj]:
    """Stop each ``stop`` session once Running; return every session once each has the final
    status its outcome calls for (:func:`status_problems`). The operator writes a phase before it
    clears the annotations that asked for it (a separate request), so this waits for the whole
    of it. Fails after ``timeout`` with the phases and problems seen and ``describe()``."""
    stopped: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        current = list_sessions(cp, namespace)
        for name, kind in plan.items():
            s = current.get(name)
            if kind == "stop" and name not in stopped and s and phase(s) == "Running":
                request_stop(cp, namespace, name)
                stopped.add(name)
        problems = [
            p for n, k in plan.items() for p in status_problems(current.get(n) or _unseen(n), k)
        ]
        if not problems:
            return current
        if time.monotonic() > deadline:
            seen = Counter(f"{k}->{phase(current.get(n) or {})}" for n, k in plan.items())
            raise AssertionError(
                f"not every session reached its final status after {timeout:.0f}s: "
                f"{dict(seen)}; {len(problems)} problems: {problems[:10]}; {describe()}"
            )
        time.sleep(1.0)


def _unseen(name: str) -> Obj:
    return {"metadata": {"name": name}}


def status_problems(s: Obj, kind: str) -> list[str]:
    """What is wrong with a session's final status for its runner's outcome (empty: right)."""
    name = s["metadata"]["name"]
    st = s.get("status") or {}
    ready: Obj = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {})
    want = {"complete": "Completed", "exit-1": "RunnerExit", "stop": "UserStopped"}[kind]
    problems = []
    if st.get("phase") != FINAL[kind] or ready.get("reason") != want:
        problems.append(f"{name}: {st.get('phase')}/{ready.get('reason')}, want {FINAL[kind]}")
    if st.get("run") != 1 or not st.get("startTime") or not st.get("completionTime"):
        problems.append(f"{name}: run {st.get('run')}, start/completion {st.get('startTime')}")
    if kind == "exit-1" and "runner failed on purpose" not in ready.get("message", ""):
        problems.append(f"{name}: Ready message {ready.get('message')!r}")
    annotations = s["metadata"].get("annotations") or {}
    if kind == "stop" and (
        st.get("stoppedReason") != "user" or set(STOP_ANNOTATIONS) & set(annotations)
    ):
        problems.append(f"{name}: stoppedReason {st.get('stoppedReason')}, {sorted(annotations)}")
    return problems


def job_creates(cp: ControlPlane, namespace: str) -> Counter[str]:
    """Successful Job creates in ``namespace`` by Job name, from the audit log."""
    assert cp.audit_log is not None
    return audit.created(audit.read_events(cp.audit_log), "jobs", namespace)


@dataclass
class Requests:
    """The operator's requests (``rest_client_requests_total``), all and writes, by verb."""

    by_verb: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, op: OperatorProcess) -> Requests:
        samples = scrape(op.metrics_url())
        verbs = (*WRITE_VERBS, "get", "list", "watch")
        return cls(
            Counter({v: metric(samples, "rest_client_requests_total", verb=v) for v in verbs})
        )

    @property
    def writes(self) -> float:
        return sum(self.by_verb[v] for v in WRITE_VERBS)

    @property
    def total(self) -> float:
        return sum(self.by_verb.values())
