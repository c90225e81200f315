"""Failover under load: two replicas with --leader-elect, the leader SIGKILLed while 200
sessions start.

The replicas run as different ServiceAccounts (``agentic-operator`` and ``agentic-operator-b``,
bound to the same ClusterRole and leader-election Role), so the API server's audit log says
which replica made each write. Asserted: every session ends in its phase with its status; exactly
one successful Job create per session (audit log); the old leader wrote nothing after the new
leader's Lease ``acquireTime`` (the API server's receive time of each write against it) and the
new leader nothing before it; both replicas created Jobs (the kill came mid-burst); and the
takeover came within the lease duration plus one retry period of the kill.

The takeover bound: the standby polls the Lease every retry period stretched by up to the jitter
(2 s x (1 + 1.2) = 4.4 s), so it sees the dead leader's last renewal at most 4.4 s after the kill,
and takes over one lease duration (15 s) after it saw that record last change: acquireTime -
kill <= 15 + 4.4 s. The margin on top is 1 s, for the Lease read that precedes the takeover and
the acquireTime the standby stamps before it (both under the load of the burst).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from testenv import audit
from testenv.controlplane import Cluster, ControlPlane
from testenv.operator_process import OperatorProcess

from tests.e2e.faultrun import (
    OPERATOR_USER,
    create_sessions,
    drive,
    job_creates,
    local_control_plane,
    outcomes,
)
from tests.e2e.helpers import get_json, runner_secret, wait_for

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
N = 200
LEASE = "ambient-code-operator.ambient-code.io"
LEASE_DURATION, RETRY_PERIOD, JITTER = 15.0, 2.0, 1.2  # LeaderElector's defaults
TAKEOVER_BOUND = LEASE_DURATION + RETRY_PERIOD * (1 + JITTER)
MARGIN = 1.0
SECOND_SA = "agentic-operator-b"
SECOND_USER = f"system:serviceaccount:ambient-code:{SECOND_SA}"


@pytest.fixture
def second_service_account(deployed: Cluster) -> Iterator[str]:
    """A second operator identity with the first one's permissions."""
    subject = [{"kind": "ServiceAccount", "name": SECOND_SA, "namespace": "ambient-code"}]
    meta = {"name": SECOND_SA}
    items = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {**meta, "namespace": "ambient-code"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "agentic-operator",
            },
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {**meta, "namespace": "ambient-code"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "agentic-operator-leader-election",
            },
            "subjects": subject,
        },
    ]
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    deployed.kubectl("apply", "-f", "-", input=manifest)
    yield SECOND_SA
    deployed.kubectl("delete", "-f", "-", "--ignore-not-found", input=manifest, check=False)


def _lease(cluster: Cluster) -> dict[str, str]:
    lease = get_json(cluster, "lease", LEASE, "-n", "ambient-code") or {}
    return dict(lease.get("spec") or {})


def _jobs(cp: ControlPlane, namespace: str) -> int:
    status, body = cp.api("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs", timeout=30)
    return len(body["items"]) if status == 200 else 0


def _kill_leader_mid_burst(
    cp: ControlPlane, namespace: str, leader: OperatorProcess, plan: dict[str, str]
) -> tuple[float, str]:
    """Create the sessions, SIGKILL the leader once some Jobs exist: (kill time, its identity)."""
    identity = _lease(cp).get("holderIdentity", "")
    create_sessions(cp, namespace, plan)
    wait_for("the first Jobs", lambda: _jobs(cp, namespace) >= N // 5, timeout=120, interval=0.2)
    killed_at = time.time()
    leader.kill()
    return killed_at, identity


def _taken_over(cp: ControlPlane, old: str) -> dict[str, str] | None:
    lease = _lease(cp)
    return lease if lease.get("holderIdentity") not in (None, "", old) else None


def _assert_writers(cp: ControlPlane, namespace: str, acquired: float) -> None:
    """Who wrote when, from the audit log: no overlap of the two leaders' writes."""
    assert cp.audit_log is not None
    events = audit.read_events(cp.audit_log)
    received = "requestReceivedTimestamp"
    mine = list(audit.writes(events, namespace=namespace, user=OPERATOR_USER))
    theirs = list(audit.writes(events, namespace=namespace, user=SECOND_USER))
    late = [e for e in mine if audit.parse_time(e[received]) >= acquired]
    early = [e for e in theirs if audit.parse_time(e[received]) < acquired]
    assert late == [], f"the old leader wrote after the takeover: {late[:3]}"
    assert early == [], f"the standby wrote before it took over: {early[:3]}"
    by = {
        u: sum(1 for e in w if e["verb"] == "create" and e["objectRef"]["resource"] == "jobs")
        for u, w in ((OPERATOR_USER, mine), (SECOND_USER, theirs))
    }
    assert all(by.values()), f"Job creates by replica: {by}; the kill was not mid-burst"


@pytest.mark.timeout(600)
def test_the_leader_killed_while_200_sessions_start(
    deployed: Cluster,
    namespace: str,
    start_operator: StartOperator,
    second_service_account: str,
) -> None:
    cp = local_control_plane(deployed)
    runner_secret(cp, namespace)
    a = start_operator("--leader-elect", name="replica-a")
    wait_for("replica-a to lead", lambda: _lease(cp).get("holderIdentity"), timeout=60)
    b = start_operator("--leader-elect", name="replica-b", service_account=second_service_account)
    plan = outcomes(N)
    killed_at, old = _kill_leader_mid_burst(cp, namespace, a, plan)

    lease = wait_for("replica-b to take over", lambda: _taken_over(cp, old), timeout=60)
    acquired = audit.parse_time(lease["acquireTime"])
    takeover = acquired - killed_at
    print(f"\nFIGURES failover: takeover {takeover:.2f}s after the kill (bound {TAKEOVER_BOUND}s)")
    assert 0 < takeover <= TAKEOVER_BOUND + MARGIN, f"takeover {takeover:.2f}s after the kill"

    drive(cp, namespace, plan, timeout=300, describe=lambda: f"b alive {b.alive}")
    creates = job_creates(cp, namespace)
    assert set(creates) == {f"{name}-job" for name in plan}
    assert {n: c for n, c in creates.items() if c != 1} == {}, "a run got more than one Job"

    _assert_writers(cp, namespace, acquired)
    assert b.alive
