"""Two LeaderElectors competing for one real Lease on the local control plane.

Short durations (lease 3 s, renew deadline 2 s, retry 0.5 s) keep the tests quick; the timing
bounds below follow from them, with slack for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agentic_operator.kube.client import ApiClient, connect
from agentic_operator.kube.resources import LEASES
from agentic_operator.runtime.leaderelection import LeaderElector, LeadershipLost

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(120)]

LEASE = 3.0
RENEW = 2.0
RETRY = 0.5
JITTER = 1.2
SLACK = 1.0
NAME = "ambient-code-operator.ambient-code.io"


class Replica:
    """One "operator process": its own API connection and elector, campaigning then holding."""

    def __init__(self, client: ApiClient, namespace: str, identity: str, release: bool) -> None:
        self.client = client
        self.elector = LeaderElector(
            client,
            name=NAME,
            namespace=namespace,
            identity=identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            jitter=JITTER,
            release_on_cancel=release,
        )
        self.led_at: float | None = None
        self.lost: LeadershipLost | None = None
        self.task: asyncio.Task[None] = asyncio.create_task(self._run())

    async def _run(self) -> None:
        await self.elector.acquire()
        self.led_at = time.monotonic()
        try:
            await self.elector.hold()
        except LeadershipLost as exc:
            self.lost = exc

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def replicas(control_plane: Any, namespace: str) -> AsyncIterator[Callable[..., Any]]:
    started: list[Replica] = []

    async def start(identity: str, *, release: bool = True) -> Replica:
        client = await connect(str(control_plane.kubeconfig))
        replica = Replica(client, namespace, identity, release)
        started.append(replica)
        return replica

    yield start
    for r in started:
        await r.stop()
        await r.client.close()


async def wait_until(what: str, check: Callable[[], bool], limit: float) -> float:
    """Poll (real time: the cluster is real) until ``check()``; return when it became true."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic()


def leaders(*rs: Replica) -> list[str]:
    return [r.elector.identity for r in rs if r.elector.is_leader]


async def lease_spec(r: Replica, namespace: str) -> dict[str, Any]:
    lease = await r.client.get(LEASES, NAME, namespace)
    spec: dict[str, Any] = lease["spec"]
    return spec


async def test_one_leader_at_a_time(replicas: Callable[..., Any], namespace: str) -> None:
    a: Replica = await replicas("replica-a")
    b: Replica = await replicas("replica-b")
    await wait_until("a leader", lambda: bool(leaders(a, b)), limit=10)
    first = leaders(a, b)
    # Over several lease durations, exactly one leads and it stays the same one: the standby
    # keeps seeing the record change and never takes over.
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        assert leaders(a, b) == first
        await asyncio.sleep(0.05)
    spec = await lease_spec(a, namespace)
    assert spec["holderIdentity"] == first[0]
    assert spec["leaseDurationSeconds"] == 3
    assert spec["leaseTransitions"] == 0
    assert a.lost is None
    assert b.lost is None


async def test_failover_after_the_leader_is_killed(
    replicas: Callable[..., Any], namespace: str
) -> None:
    a: Replica = await replicas("replica-a", release=False)
    await wait_until("a leads", lambda: a.elector.is_leader, limit=10)
    b: Replica = await replicas("replica-b", release=False)
    await asyncio.sleep(2 * LEASE)  # b observes a renewing for longer than a lease duration
    assert leaders(a, b) == ["replica-a"]

    await a.stop()  # killed: no release, the lease is left to expire
    killed = time.monotonic()
    assert (await lease_spec(b, namespace))["holderIdentity"] == "replica-a"
    # b takes over one lease duration after it last saw a change, which it sees at most one
    # jittered retry period late; a renewed at most one retry period before it was killed.
    took_over = await wait_until("b to take over", lambda: b.elector.is_leader, limit=LEASE + 10)
    elapsed = took_over - killed
    assert elapsed <= LEASE + (1 + JITTER) * RETRY + SLACK
    assert elapsed >= LEASE - RETRY - 0.5, "took over before the lease could have expired"
    spec = await lease_spec(b, namespace)
    assert spec["holderIdentity"] == "replica-b"
    assert spec["leaseTransitions"] == 1


async def test_graceful_release_hands_over_at_once(
    replicas: Callable[..., Any], namespace: str
) -> None:
    a: Replica = await replicas("replica-a", release=True)
    await wait_until("a leads", lambda: a.elector.is_leader, limit=10)
    b: Replica = await replicas("replica-b")
    await asyncio.sleep(2 * LEASE)
    assert leaders(a, b) == ["replica-a"]

    await a.stop()  # graceful: cancelling hold() releases the lease
    released = time.monotonic()
    assert not a.elector.is_leader
    spec = await lease_spec(b, namespace)
    assert spec["holderIdentity"] in ("", "replica-b")  # b may already have taken it
    if spec["holderIdentity"] == "":
        assert spec["leaseDurationSeconds"] == 1
    took_over = await wait_until("b to take over", lambda: b.elector.is_leader, limit=LEASE)
    # At b's next jittered retry, not after a lease duration.
    assert took_over - released <= (1 + JITTER) * RETRY + SLACK
    spec = await lease_spec(b, namespace)
    assert spec["holderIdentity"] == "replica-b"
    assert spec["leaseTransitions"] == 1
