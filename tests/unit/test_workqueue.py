"""Work queue rules (client-go semantics), driven by a FakeClock: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agentic_operator.clock import FakeClock, settle
from agentic_operator.ratelimit import ItemExponentialFailureRateLimiter
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.metrics import QueueMetrics
from agentic_operator.runtime.workqueue import RateLimitingQueue, ShutDown

_names = itertools.count()


def make_queue(
    clock: FakeClock | None = None, metrics: QueueMetrics | None = None
) -> RateLimitingQueue:
    return RateLimitingQueue(
        ItemExponentialFailureRateLimiter(base=1.0, cap=8.0),
        clock or FakeClock(),
        name="test",
        metrics=metrics,
    )


async def drain_now(q: RateLimitingQueue) -> list[str]:
    """Every key that is ready right now, each marked done."""
    out = []
    while len(q):
        key = await q.get()
        q.done(key)
        out.append(key)
    return out


# --- De-duplication, order, exclusivity ----------------------------------------------------------


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        (["a"], ["a"]),
        (["a", "a", "a"], ["a"]),
        (["a", "b", "a", "c", "b"], ["a", "b", "c"]),  # FIFO of first adds
        (["ns/x", "ns/y", "other/x"], ["ns/x", "ns/y", "other/x"]),
    ],
)
async def test_dedup_and_fifo(adds: list[str], expected: list[str]) -> None:
    q = make_queue()
    for key in adds:
        q.add(key)
    assert len(q) == len(expected)
    assert await drain_now(q) == expected


async def test_key_is_never_handed_out_twice_while_processing() -> None:
    q = make_queue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # changed while processing: remembered, but not queued
    assert len(q) == 0
    second = asyncio.ensure_future(q.get())
    await settle()
    assert not second.done()  # a second worker does not get "a"
    q.done("a")
    await settle()
    assert second.done()
    assert second.result() == "a"


async def test_readd_while_processing_is_processed_again_once() -> None:
    q = make_queue()
    q.add("a")
    key = await q.get()
    for _ in range(5):
        q.add(key)
    q.add("b")
    assert len(q) == 1  # only "b"
    q.done(key)
    assert len(q) == 2
    assert await drain_now(q) == ["b", "a"]
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q = make_queue()
    q.add("a")
    q.done(await q.get())
    assert len(q) == 0
    assert q.processing == 0


async def test_len_counts_queued_not_processing_nor_waiting() -> None:
    q = make_queue()
    q.add("a")
    q.add("b")
    q.add_after("c", 5.0)
    assert len(q) == 2
    await q.get()
    assert len(q) == 1
    assert q.processing == 1
    assert q.waiting == 1


async def test_get_blocks_until_add() -> None:
    q = make_queue()
    getter = asyncio.ensure_future(q.get())
    await settle()
    assert not getter.done()
    q.add("a")
    await settle()
    assert getter.result() == "a"


async def test_cancelled_getter_passes_the_wakeup_on() -> None:
    q = make_queue()
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await settle()
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can take the key
    await settle()
    assert first.cancelled()
    assert second.result() == "a"


# --- Delayed adds ---------------------------------------------------------------------------------


async def test_add_after_becomes_ready_in_due_order() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("late", 3.0)
    q.add_after("early", 1.0)
    q.add_after("middle", 2.0)
    await clock.advance(0.5)
    assert len(q) == 0
    await clock.advance(1.0)  # t = 1.5
    assert await drain_now(q) == ["early"]
    await clock.advance(5.0)
    assert await drain_now(q) == ["middle", "late"]
    assert q.waiting == 0


@pytest.mark.parametrize(
    ("first", "second", "ready_at"),
    [
        (10.0, 2.0, 2.0),  # a shorter delay replaces a longer pending one
        (2.0, 10.0, 2.0),  # a longer delay never postpones a shorter pending one
        (5.0, 5.0, 5.0),
    ],
)
async def test_add_after_shorter_pending_delay_wins(
    first: float, second: float, ready_at: float
) -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add_after("a", first)
    q.add_after("a", second)
    assert q.waiting == 1
    await clock.advance(ready_at - 0.01)
    assert len(q) == 0
    await clock.advance(0.01)
    assert await drain_now(q) == ["a"]
    await clock.advance(max(first, second) + 1)  # the losing delay does not add it again
    assert len(q) == 0


@pytest.mark.parametrize("delay", [0.0, -1.0])
async def test_add_after_non_positive_delay_adds_now(delay: float) -> None:
    q = make_queue()
    q.add_after("a", delay)
    assert len(q) == 1
    assert q.waiting == 0


async def test_delayed_add_of_a_queued_key_is_deduplicated() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    q.add("a")
    q.add_after("a", 1.0)
    await clock.advance(1.0)
    assert await drain_now(q) == ["a"]


async def test_blocked_get_wakes_when_a_delayed_key_is_due() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    getter = asyncio.ensure_future(q.get())
    q.add_after("a", 30.0)
    await clock.advance(29.0)
    assert not getter.done()
    await clock.advance(1.0)
    assert getter.result() == "a"


# --- Rate-limited adds ----------------------------------------------------------------------------


async def test_add_rate_limited_backs_off_and_forget_resets() -> None:
    clock = FakeClock()
    q = make_queue(clock)  # limiter: 1 s doubling, cap 8 s
    for expected_delay in (1.0, 2.0, 4.0, 8.0, 8.0):
        q.add_rate_limited("a")
        await clock.advance(expected_delay - 0.001)
        assert len(q) == 0, expected_delay
        await clock.advance(0.001)
        assert await drain_now(q) == ["a"]
    assert q.num_requeues("a") == 5
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.add_rate_limited("a")
    await clock.advance(1.0)
    assert len(q) == 1


async def test_default_limiter_is_used_when_none_given() -> None:
    clock = FakeClock()
    q = RateLimitingQueue(clock=clock)
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # 5 ms then 10 ms; the shorter pending one wins
    assert q.num_requeues("a") == 2
    await clock.advance(0.005)
    assert len(q) == 1


# --- Shutdown -------------------------------------------------------------------------------------


async def test_shutdown_without_drain() -> None:
    clock = FakeClock()
    q = make_queue(clock)
    blocked = asyncio.ensure_future(q.get())
    await settle()
    q.add_after("delayed", 1.0)
    q.shutdown()
    await settle()
    assert q.shutting_down
    with pytest.raises(ShutDown):
        blocked.result()
    q.add("a")
    q.add_after("b", 0.5)
    q.add_rate_limited("c")
    await clock.advance(5.0)
    assert len(q) == 0  # adds are ignored, pending delayed adds are dropped
    with pytest.raises(ShutDown):
        await q.get()


async def test_shutdown_without_drain_discards_queued_keys_and_waits_for_in_flight() -> None:
    q = make_queue()
    q.add("in-flight")
    q.add("queued")
    key = await q.get()
    q.add(key)  # dirty while processing: must not come back after shutdown
    q.shutdown(drain=False)
    assert len(q) == 0
    with pytest.raises(ShutDown):
        await q.get()
    drained = asyncio.ensure_future(q.wait_drained())
    await settle()
    assert not drained.done()  # the in-flight key is still being processed
    q.done(key)
    await settle()
    assert drained.done()
    assert len(q) == 0


async def test_shutdown_with_drain_hands_out_accepted_keys_then_stops() -> None:
    q = make_queue()
    q.add("a")
    q.add("b")
    in_flight = await q.get()  # "a"
    q.add(in_flight)  # changed while processing: will be processed again, even while draining
    q.shutdown(drain=True)
    q.add("late")  # ignored
    drained = asyncio.ensure_future(q.wait_drained())
    assert await q.get() == "b"
    q.done("b")
    await settle()
    assert not drained.done()  # "a" is still in flight
    q.done(in_flight)
    assert await q.get() == "a"
    await settle()
    assert not drained.done()
    q.done("a")
    await settle()
    assert drained.done()
    with pytest.raises(ShutDown):
        await q.get()


async def test_wait_drained_waits_for_shutdown() -> None:
    q = make_queue()
    drained = asyncio.ensure_future(q.wait_drained())
    await settle()
    assert not drained.done()  # empty but still running
    q.shutdown()
    await settle()
    assert drained.done()


# --- Metrics --------------------------------------------------------------------------------------


def sample(family: str, name: str) -> float | None:
    return REGISTRY.get_sample_value(family, {"name": name, "controller": name})


async def test_queue_metrics_are_exported_from_the_registry() -> None:
    clock = FakeClock()
    name = f"wq-metrics-{next(_names)}"
    q = RateLimitingQueue(
        ItemExponentialFailureRateLimiter(base=1.0), clock, name=name, metrics=QueueMetrics(name)
    )
    q.add("a")
    q.add("a")  # deduplicated: not an add
    q.add("b")
    assert sample("workqueue_adds_total", name) == 2
    assert sample("workqueue_depth", name) == 2

    await clock.advance(2.0)
    key = await q.get()
    assert sample("workqueue_depth", name) == 1
    assert sample("workqueue_queue_duration_seconds_count", name) == 1
    assert sample("workqueue_queue_duration_seconds_sum", name) == pytest.approx(2.0)

    await clock.advance(3.0)
    other = await q.get()
    await clock.advance(1.0)
    # In progress: "a" for 4 s, "b" for 1 s.
    assert sample("workqueue_unfinished_work_seconds", name) == pytest.approx(5.0)
    assert sample("workqueue_longest_running_processor_seconds", name) == pytest.approx(4.0)

    q.done(key)
    q.done(other)
    assert sample("workqueue_work_duration_seconds_count", name) == 2
    assert sample("workqueue_work_duration_seconds_sum", name) == pytest.approx(5.0)
    assert sample("workqueue_unfinished_work_seconds", name) == 0
    assert sample("workqueue_longest_running_processor_seconds", name) == 0

    q.add_rate_limited("a")
    assert sample("workqueue_retries_total", name) == 1
    assert sample("workqueue_adds_total", name) == 2  # not added until due
    await clock.advance(1.0)
    assert sample("workqueue_adds_total", name) == 3
    # Waits of 2 s and 5 s: none in the 1 s bucket, both in the 10 s one (buckets are cumulative).
    buckets = {
        le: REGISTRY.get_sample_value(
            "workqueue_queue_duration_seconds_bucket", {"name": name, "controller": name, "le": le}
        )
        for le in ("1.0", "10.0", "+Inf")
    }
    assert buckets == {"1.0": 0, "10.0": 2, "+Inf": 2}


async def test_queue_metrics_of_a_replaced_queue_never_go_back() -> None:
    name = f"wq-replaced-{next(_names)}"
    first = RateLimitingQueue(clock=FakeClock(), name=name, metrics=QueueMetrics(name))
    first.add("a")
    first.add("b")
    second = RateLimitingQueue(clock=FakeClock(), name=name, metrics=QueueMetrics(name))
    second.add("c")
    assert sample("workqueue_adds_total", name) == 3
    assert sample("workqueue_depth", name) == 1  # depth is the live queue's
