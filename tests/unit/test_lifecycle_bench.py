"""The lifecycle benchmark's pure helpers: pacing, latencies from watch times, request sums."""

from __future__ import annotations

import asyncio
import math

import pytest
from bench.lifecycle_bench import (
    Pacer,
    by_verb_resource,
    phase_latencies,
    reconciles_by_controller,
    run_paced,
    settled,
)


@pytest.mark.parametrize(
    ("k", "now", "wait"),
    [
        (0, 9.0, 1.0),  # before the start
        (0, 10.0, 0.0),
        (3, 10.0, 1.5),  # 10 + 3/2
        (3, 11.0, 0.5),
        (3, 11.5, 0.0),  # exactly due
        (3, 20.0, 0.0),  # late: no negative sleep
    ],
)
def test_pacer_wait(k: int, now: float, wait: float) -> None:
    assert Pacer(10.0, 2.0).wait(k, now) == pytest.approx(wait)


def test_pacer_infinite_rate_is_all_at_once() -> None:
    pacer = Pacer(5.0, math.inf)
    assert [pacer.due(k) for k in range(3)] == [5.0, 5.0, 5.0]


class FakeTime:
    """A clock that only moves when slept on (or pushed by an action)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)  # let started actions run, as a real sleep would


async def test_run_paced_on_time_without_drift() -> None:
    clock = FakeTime()
    started: list[int] = []

    async def action(k: int) -> None:
        started.append(k)

    lateness = await run_paced(Pacer(0.0, 4.0), 9, action, 8, clock.now, clock.sleep)
    assert lateness == [0.0] * 9
    assert started == list(range(9))
    assert clock.t == pytest.approx(2.0)  # item 8 at 8/4 s: sleeps did not add up to more


async def test_run_paced_catches_up_after_a_slow_item() -> None:
    """An item that holds the sender up makes the next ones late, then they are sent back to
    back until the schedule is met again; later items are on time (due times do not move)."""
    clock = FakeTime()

    async def action(k: int) -> None:
        if k == 1:
            clock.t += 1.5  # the sender is held up while item 1 starts

    lateness = await run_paced(Pacer(0.0, 2.0), 7, action, 8, clock.now, clock.sleep)
    assert lateness == pytest.approx([0.0, 0.0, 1.5, 1.0, 0.5, 0.0, 0.0])


async def test_run_paced_bounds_in_flight() -> None:
    in_flight, most, done = 0, 0, []

    async def action(k: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        done.append(k)

    await run_paced(Pacer(0.0, math.inf), 10, action, 3)
    assert most == 3
    assert sorted(done) == list(range(10))


async def test_run_paced_releases_a_slot_when_an_action_fails() -> None:
    async def action(k: int) -> None:
        if k == 0:
            raise RuntimeError("create refused")

    with pytest.raises(RuntimeError, match="create refused"):
        await asyncio.wait_for(run_paced(Pacer(0.0, math.inf), 3, action, 1), 5)


def test_phase_latencies() -> None:
    seen = {"a": 1.0, "b": 2.0, "c": 3.0}
    phases = {"a": {"Pending": 1.0, "Running": 4.5}, "b": {"Pending": 2.0}, "d": {"Running": 9.0}}
    values, missing = phase_latencies(seen, phases, ["a", "b", "c", "d"], "Running")
    assert values == [3.5]
    assert missing == 3  # b and c never Running, d never seen created


def test_by_verb_resource() -> None:
    delta = {
        ("create", "services", "201"): 3.0,
        ("create", "services", "409"): 1.0,
        ("get", "jobs.batch", "404"): 2.0,
    }
    assert by_verb_resource(delta, "x", 2) == {
        "x.create services": 2.0,
        "x.get jobs.batch": 1.0,
    }
    assert by_verb_resource(delta, "f", 1, failed_only=True) == {
        "f.create services 409": 1.0,
        "f.get jobs.batch 404": 2.0,
    }


@pytest.mark.parametrize(
    ("left", "total", "idle_s", "done"),
    [
        (0, 100, 0.0, True),  # everyone there
        (5, 100, 60.0, True),  # 5% stalled for a minute: stragglers
        (5, 100, 59.0, False),  # still moving recently
        (6, 100, 600.0, False),  # too many to be stragglers: wait (to the deadline)
        (1, 10, 60.0, False),  # 10% of a small run
    ],
)
def test_settled(left: int, total: int, idle_s: float, done: bool) -> None:
    assert settled(left, total, idle_s) is done


def test_reconciles_by_controller() -> None:
    name = "controller_runtime_reconcile_total"
    before = [(name, {"controller": "a", "result": "success"}, 10.0), ("other", {}, 5.0)]
    after = [
        (name, {"controller": "a", "result": "success"}, 12.0),
        (name, {"controller": "a", "result": "error"}, 0.0),
        (name, {"controller": "b", "result": "requeue_after"}, 3.0),
    ]
    assert reconciles_by_controller(before, after, "r") == {
        "r.a success": 2.0,
        "r.b requeue_after": 3.0,
    }
