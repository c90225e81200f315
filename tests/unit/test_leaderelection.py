"""LeaderElector against an in-memory Lease API, with a FakeClock (no real sleeping)."""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from agentic_operator.clock import FakeClock, settle
from agentic_operator.kube.errors import (
    AlreadyExists,
    Conflict,
    NotFound,
    ServerError,
    TransportError,
)
from agentic_operator.kube.resources import LEASES, Obj, Resource
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.leaderelection import (
    LeaderElector,
    LeadershipLost,
    format_micro_time,
)

NS = "operator-system"
START_WALL = "2026-01-01T00:00:00.000000Z"


class FixedRandom(random.Random):
    """``random()`` always returns the same value, so jittered waits are predictable."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


class FakeLeaseAPI:
    """Leases keyed by namespace/name, with resourceVersions and optimistic-concurrency 409s."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str | None, str], Obj] = {}
        self._rv = 0
        self.fail: Exception | None = None  # raised by every call while set
        self.hang = False  # every call blocks until cancelled while set
        self.conflict_next_replace = 0  # the next N replaces answer 409 although the RV matches
        self.writes = 0

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def _gate(self) -> None:
        await asyncio.sleep(0)
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        assert res is LEASES
        await self._gate()
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise NotFound(reason="NotFound", message=f'leases "{name}" not found')
        return copy.deepcopy(obj)

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj:
        assert res is LEASES
        await self._gate()
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            raise AlreadyExists(reason="AlreadyExists")
        obj = copy.deepcopy(body)
        obj["metadata"].update(namespace=namespace, resourceVersion=self._next_rv())
        self.objects[key] = obj
        self.writes += 1
        return copy.deepcopy(obj)

    async def replace(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        assert res is LEASES
        await self._gate()
        current = self.objects.get((namespace, name))
        if current is None:
            raise NotFound(reason="NotFound")
        if self.conflict_next_replace > 0:
            self.conflict_next_replace -= 1
            raise Conflict(reason="Conflict")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict(reason="Conflict", message="the object has been modified")
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[(namespace, name)] = obj
        self.writes += 1
        return copy.deepcopy(obj)

    # Helpers for tests: act as "another process" writing the lease directly.
    def spec(self, name: str) -> dict[str, Any]:
        spec: dict[str, Any] = self.objects[(NS, name)]["spec"]
        return spec

    def put(self, name: str, **spec: Any) -> None:
        obj = self.objects.setdefault(
            (NS, name),
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": NS},
                "spec": {},
            },
        )
        obj["spec"].update(spec)
        obj["metadata"]["resourceVersion"] = self._next_rv()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> FakeLeaseAPI:
    return FakeLeaseAPI()


_counter = 0


@pytest.fixture
def lease_name() -> str:
    # A distinct lease (and so a distinct metric label) per test.
    global _counter
    _counter += 1
    return f"lease-{_counter}"


def make(api: FakeLeaseAPI, clock: FakeClock, name: str, identity: str, **kw: Any) -> LeaderElector:
    kw.setdefault("rng", FixedRandom())
    return LeaderElector(api, name=name, namespace=NS, identity=identity, clock=clock, **kw)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("leader_election_master_status", {"name": name})


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[Any]]]:
    started: list[asyncio.Task[Any]] = []
    yield started
    for t in started:
        t.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def start(tasks: list[asyncio.Task[Any]], aw: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start ``aw`` and let it run up to its first wait, so it sees the clock's current time."""
    task = asyncio.create_task(aw)
    tasks.append(task)
    await settle()
    return task


def foreign(api: FakeLeaseAPI, name: str, holder: str = "other", **extra: Any) -> None:
    spec = {
        "holderIdentity": holder,
        "leaseDurationSeconds": 15,
        "acquireTime": "2025-12-31T23:00:00.000000Z",
        "renewTime": "2025-12-31T23:59:59.000000Z",
        "leaseTransitions": 4,
    }
    spec.update(extra)
    api.put(name, **spec)


# ---------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"lease_duration": 10, "renew_deadline": 10}, "lease_duration"),
        ({"lease_duration": 5, "renew_deadline": 10}, "lease_duration"),
        ({"renew_deadline": 2.4, "retry_period": 2}, "jitter \\* retry_period"),
        ({"renew_deadline": 3, "retry_period": 2, "jitter": 1.5}, "jitter \\* retry_period"),
        ({"retry_period": 0}, "retry_period"),
        ({"retry_period": -1}, "retry_period"),
        ({"jitter": 0}, "jitter"),
        ({"identity": ""}, "identity"),
        ({"name": ""}, "name"),
        ({"namespace": ""}, "namespace"),
    ],
)
def test_invalid_settings_are_rejected(
    api: FakeLeaseAPI, clock: FakeClock, kw: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"name": "l", "namespace": NS, "identity": "a", "clock": clock}
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        LeaderElector(api, **args)


def test_defaults_are_client_go_defaults(api: FakeLeaseAPI, clock: FakeClock) -> None:
    e = LeaderElector(api, name="l", namespace=NS, identity="a", clock=clock)
    assert (e.lease_duration, e.renew_deadline, e.retry_period, e.jitter) == (15, 10, 2, 1.2)
    assert not e.is_leader


def test_micro_time_format() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    ts = datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
    assert format_micro_time(ts) == "2026-03-04T05:06:07.000089Z"
    local = ts.astimezone(timezone(timedelta(hours=2)))
    assert format_micro_time(local) == "2026-03-04T05:06:07.000089Z"


# ------------------------------------------------------------------------------------- acquire


async def test_creates_the_lease_when_missing(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    e = make(api, clock, lease_name, "me", lease_duration=15)
    await e.acquire()
    assert e.is_leader
    assert e.leader == "me"
    assert api.spec(lease_name) == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": START_WALL,
        "renewTime": START_WALL,
        "leaseTransitions": 0,
    }
    assert gauge(lease_name) == 1


@pytest.mark.parametrize(
    "renew_time",
    # The remote renewTime is never compared with our wall clock: long ago or in the future, the
    # standby waits exactly one lease duration of unchanged record on its monotonic clock.
    ["2000-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z", START_WALL],
)
async def test_takeover_only_after_record_unchanged_for_lease_duration(
    api: FakeLeaseAPI,
    clock: FakeClock,
    lease_name: str,
    tasks: list[asyncio.Task[Any]],
    renew_time: str,
) -> None:
    foreign(api, lease_name, renewTime=renew_time)
    e = make(api, clock, lease_name, "me")
    task = await start(tasks, e.acquire())
    assert not task.done()
    assert e.leader == "other"
    await clock.advance(14.99)
    assert not task.done()
    assert api.spec(lease_name)["holderIdentity"] == "other"
    assert gauge(lease_name) == 0
    await clock.advance(0.02)
    assert task.done()
    await task
    spec = api.spec(lease_name)
    assert spec["holderIdentity"] == "me"
    assert spec["leaseTransitions"] == 5
    assert spec["leaseDurationSeconds"] == 15
    # Taken at the moment the observation expired (t+15 s), not at the next jittered retry.
    assert spec["acquireTime"] == spec["renewTime"] == "2026-01-01T00:00:15.000000Z"
    assert e.is_leader
    assert gauge(lease_name) == 1


async def test_respects_the_holders_advertised_duration(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    foreign(api, lease_name, leaseDurationSeconds=40)
    task = await start(tasks, make(api, clock, lease_name, "me").acquire())
    await clock.advance(39.9)
    assert not task.done()
    await clock.advance(2.3)  # at most one retry period after expiry
    assert task.done()


async def test_a_record_that_keeps_changing_is_never_taken(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    foreign(api, lease_name)
    e = make(api, clock, lease_name, "me", rng=FixedRandom(0.7))
    task = await start(tasks, e.acquire())
    for i in range(60):  # the holder renews every 2 s for two minutes
        await clock.advance(2)
        api.put(lease_name, renewTime=f"2026-01-01T00:{i // 30:02d}:{2 * (i % 30):02d}.000000Z")
    assert not task.done()
    assert api.spec(lease_name)["holderIdentity"] == "other"
    stopped = clock.now()
    # The holder dies: the standby takes over one lease duration after it last saw a change, which
    # is at most one jittered retry period (2 * 2.2 s) after the last renewal.
    while not task.done():
        await clock.advance(0.1)
    assert 15 <= clock.now() - stopped <= 15 + 2 * 2.2 + 0.1
    assert api.spec(lease_name)["leaseTransitions"] == 5


async def test_released_lease_is_taken_at_once(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    foreign(api, lease_name, holderIdentity="", leaseDurationSeconds=1)
    e = make(api, clock, lease_name, "me")
    await e.acquire()  # no clock advance needed
    assert api.spec(lease_name)["holderIdentity"] == "me"
    assert api.spec(lease_name)["leaseTransitions"] == 5


async def test_restart_with_same_identity_renews_without_transition(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    foreign(api, lease_name, holder="me", leaseTransitions=3)
    before = api.spec(lease_name)["acquireTime"]
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    spec = api.spec(lease_name)
    assert spec["leaseTransitions"] == 3
    assert spec["acquireTime"] == before
    assert spec["renewTime"] == START_WALL


async def test_conflict_means_someone_else_won_and_is_retried(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    foreign(api, lease_name, holderIdentity="")
    api.conflict_next_replace = 1
    e = make(api, clock, lease_name, "me")
    task = await start(tasks, e.acquire())
    assert not task.done()
    assert not e.is_leader
    await clock.advance(2)  # next attempt, one (unjittered) retry period later
    assert task.done()
    assert e.is_leader


async def test_concurrent_create_is_a_lost_race(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    a = make(api, clock, lease_name, "a")
    b = make(api, clock, lease_name, "b")
    ta = asyncio.create_task(a.acquire())
    tb = asyncio.create_task(b.acquire())
    tasks += [ta, tb]
    await settle()
    # Both saw NotFound and raced to create; exactly one create succeeded.
    assert ta.done() != tb.done()
    assert a.is_leader != b.is_leader
    assert api.writes == 1
    winner = "a" if a.is_leader else "b"
    assert api.spec(lease_name)["holderIdentity"] == winner


async def test_api_errors_while_acquiring_are_retried(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    api.fail = TransportError("connection refused")
    task = await start(tasks, make(api, clock, lease_name, "me").acquire())
    await clock.advance(10)
    assert not task.done()
    api.fail = None
    await clock.advance(2)
    assert task.done()


# --------------------------------------------------------------------------------------- renew


async def test_hold_renews_every_retry_period(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    rv = api.objects[(NS, lease_name)]["metadata"]["resourceVersion"]
    await start(tasks, e.hold())
    await clock.advance(1.9)
    assert api.objects[(NS, lease_name)]["metadata"]["resourceVersion"] == rv
    await clock.advance(0.1)
    spec = api.spec(lease_name)
    assert spec["renewTime"] == "2026-01-01T00:00:02.000000Z"
    assert spec["acquireTime"] == START_WALL
    assert spec["leaseTransitions"] == 0
    writes = api.writes
    await clock.advance(20)
    assert api.writes == writes + 10
    assert e.is_leader


@pytest.mark.parametrize("mode", ["error", "hang"])
async def test_renewal_failing_past_renew_deadline_loses_leadership(
    api: FakeLeaseAPI,
    clock: FakeClock,
    lease_name: str,
    tasks: list[asyncio.Task[Any]],
    mode: str,
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    hold = await start(tasks, e.hold())
    await clock.advance(2)  # one successful renewal at t+2
    if mode == "error":
        api.fail = ServerError(503, "ServiceUnavailable")
    else:
        api.hang = True
    await clock.advance(9.9)  # 9.9 s since the last success: still within the deadline
    assert not hold.done()
    assert e.is_leader
    assert gauge(lease_name) == 1
    await clock.advance(0.1)
    assert hold.done()
    with pytest.raises(LeadershipLost, match="within 10s"):
        await hold
    assert not e.is_leader
    assert gauge(lease_name) == 0


async def test_a_short_outage_does_not_lose_leadership(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    hold = await start(tasks, e.hold())
    api.fail = TransportError("connection reset")
    await clock.advance(7.9)  # renewals at t+2, t+4, t+6 fail
    assert e.is_leader
    api.fail = None
    await clock.advance(0.1)  # the retry at t+8 succeeds, 2 s before the deadline
    assert api.spec(lease_name)["renewTime"] == "2026-01-01T00:00:08.000000Z"
    await clock.advance(30)
    assert not hold.done()
    assert e.is_leader


async def test_is_leader_fences_itself_after_the_deadline(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    await clock.advance(9.9)
    assert e.is_leader
    await clock.advance(0.1)
    assert not e.is_leader  # hold() was never run: no renewal happened


async def test_renewal_finding_another_holder_loses_at_once(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    hold = await start(tasks, e.hold())
    api.put(lease_name, holderIdentity="usurper")
    await clock.advance(2)
    assert hold.done()
    with pytest.raises(LeadershipLost, match="usurper"):
        await hold
    assert gauge(lease_name) == 0


async def test_hold_without_leadership_refuses(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    with pytest.raises(LeadershipLost):
        await make(api, clock, lease_name, "me").hold()


# ------------------------------------------------------------------------------------- release


async def test_release_hands_over_to_a_standby_at_once(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    a = make(api, clock, lease_name, "a")
    b = make(api, clock, lease_name, "b")
    await a.acquire()
    hold = await start(tasks, a.hold())
    standby = await start(tasks, b.acquire())
    await clock.advance(4)
    assert not standby.done()
    hold.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hold  # release_on_cancel: cancelling hold() released the lease
    assert not a.is_leader
    assert gauge(lease_name) == 0
    spec = api.spec(lease_name)
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["renewTime"] == "2026-01-01T00:00:04.000000Z"
    assert await a.release() is False  # already released: a no-op
    await clock.advance(2)  # b's next attempt, far sooner than a lease duration
    assert standby.done()
    assert b.is_leader
    assert api.spec(lease_name)["holderIdentity"] == "b"
    assert api.spec(lease_name)["leaseTransitions"] == 1
    assert gauge(lease_name) == 1


async def test_release_during_cancellation_is_bounded_by_renew_deadline(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    hold = await start(tasks, e.hold())
    api.hang = True  # the API server stops answering during shutdown
    hold.cancel()
    await settle()
    await clock.advance(9.9)
    assert not hold.done()  # still trying to release
    await clock.advance(0.1)
    assert hold.done()
    assert hold.cancelled()
    assert not e.is_leader
    assert api.spec(lease_name)["holderIdentity"] == "me"


async def test_release_timing_out_inside_a_cancelled_task_returns_false(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    # A manager's shutdown handler runs in a task that is being cancelled; a release that times
    # out there must report False, not masquerade as a second cancellation.
    e = make(api, clock, lease_name, "me")
    await e.acquire()

    async def shutdown_handler() -> bool:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return await e.release()
        return True

    task = await start(tasks, shutdown_handler())
    api.hang = True
    task.cancel()
    await settle()
    await clock.advance(10)
    assert task.done()
    assert task.result() is False


async def test_explicit_release_writes_once(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    e = make(api, clock, lease_name, "me", release_on_cancel=False)
    await e.acquire()
    assert await e.release() is True
    assert api.spec(lease_name)["holderIdentity"] == ""
    writes = api.writes
    assert await e.release() is False
    assert api.writes == writes


async def test_release_leaves_a_lease_someone_else_changed(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str
) -> None:
    e = make(api, clock, lease_name, "me")
    await e.acquire()
    api.put(lease_name, holderIdentity="other")
    assert await e.release() is False
    assert api.spec(lease_name)["holderIdentity"] == "other"


async def test_cancel_without_release_on_cancel_leaves_the_lease(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    a = make(api, clock, lease_name, "a", release_on_cancel=False)
    b = make(api, clock, lease_name, "b")
    await a.acquire()
    hold = await start(tasks, a.hold())
    await clock.advance(2)
    hold.cancel()  # like a killed process
    with pytest.raises(asyncio.CancelledError):
        await hold
    assert api.spec(lease_name)["holderIdentity"] == "a"
    killed = clock.now()
    standby = await start(tasks, b.acquire())
    await clock.advance(14.9)
    assert not standby.done()
    await clock.advance(0.2)
    assert standby.done()
    assert clock.now() - killed >= 15


# -------------------------------------------------------------------------------- two electors


async def test_two_electors_never_lead_together(
    api: FakeLeaseAPI, clock: FakeClock, lease_name: str, tasks: list[asyncio.Task[Any]]
) -> None:
    electors = [
        make(api, clock, lease_name, name, rng=random.Random(seed))
        for seed, name in enumerate(["a", "b"])
    ]

    async def run(e: LeaderElector) -> None:
        await e.acquire()
        await e.hold()

    runs = [await start(tasks, run(e)) for e in electors]
    leaders_seen: set[str] = set()
    for step in range(400):
        await clock.advance(0.25)
        leading = [e.identity for e in electors if e.is_leader]
        assert len(leading) <= 1, f"two leaders at step {step}"
        leaders_seen.update(leading)
        if step == 100:
            # Kill the current leader without release; the other must take over.
            idx = next(i for i, e in enumerate(electors) if e.is_leader)
            electors[idx].release_on_cancel = False
            runs[idx].cancel()
            await asyncio.gather(runs[idx], return_exceptions=True)
    assert leaders_seen == {"a", "b"}
    assert api.spec(lease_name)["leaseTransitions"] == 1
