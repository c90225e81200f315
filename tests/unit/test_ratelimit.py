"""Rate limiters: exponential backoff per item, token bucket, max-of, and the controller default."""

from __future__ import annotations

import pytest

from agentic_operator.clock import FakeClock
from agentic_operator.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_exponential_sequence_doubles_from_base() -> None:
    rl = ItemExponentialFailureRateLimiter(base=0.005, cap=1000.0)
    delays = [rl.when("ns/a") for _ in range(6)]
    assert delays == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.16])
    assert rl.num_requeues("ns/a") == 6


@pytest.mark.parametrize(
    ("base", "cap", "failures", "expected"),
    [
        (0.005, 1000.0, 17, 655.36),  # 0.005 * 2**17, still under the cap
        (0.005, 1000.0, 18, 1000.0),  # 0.005 * 2**18 = 1310.72 -> capped
        (0.005, 1000.0, 5000, 1000.0),  # no float overflow, stays at the cap
        (1.0, 60.0, 6, 60.0),
        (0.0, 10.0, 50, 0.0),
    ],
)
def test_exponential_cap_and_overflow(
    base: float, cap: float, failures: int, expected: float
) -> None:
    rl = ItemExponentialFailureRateLimiter(base=base, cap=cap)
    for _ in range(failures):
        rl.when("k")
    assert rl.when("k") == pytest.approx(expected)


def test_exponential_counts_per_item_and_forget_resets() -> None:
    rl = ItemExponentialFailureRateLimiter(base=1.0, cap=100.0)
    assert [rl.when("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert rl.when("b") == 1.0  # another item has its own count
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == 1.0
    assert rl.num_requeues("b") == 1


def test_bucket_burst_then_qps_spacing() -> None:
    clock = FakeClock()
    rl = BucketRateLimiter(qps=10.0, burst=3, clock=clock)
    # The burst is free; then each reservation is 1/qps further in the future.
    assert [rl.when(f"k{i}") for i in range(3)] == [0.0, 0.0, 0.0]
    assert [rl.when(f"x{i}") for i in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert rl.num_requeues("k0") == 0


async def test_bucket_refills_with_time_up_to_burst() -> None:
    clock = FakeClock()
    rl = BucketRateLimiter(qps=2.0, burst=2, clock=clock)
    rl.when("a")
    rl.when("b")
    assert rl.when("c") == pytest.approx(0.5)  # borrowed from the future
    await clock.advance(1.5)  # the borrowed token is repaid, then 2 more accrue (capped at burst=2)
    assert rl.when("d") == 0.0
    assert rl.when("e") == 0.0
    assert rl.when("f") == pytest.approx(0.5)
    await clock.advance(100.0)  # a long idle period never stores more than the burst
    assert [rl.when("g"), rl.when("h")] == [0.0, 0.0]
    assert rl.when("i") == pytest.approx(0.5)


def test_bucket_forget_is_a_no_op() -> None:
    rl = BucketRateLimiter(qps=1.0, burst=1, clock=FakeClock())
    rl.when("a")
    rl.forget("a")
    assert rl.when("a") == pytest.approx(1.0)


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (-1.0, 10), (1.0, 0)])
def test_bucket_rejects_bad_settings(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        BucketRateLimiter(qps=qps, burst=burst, clock=FakeClock())


def test_max_of_takes_the_slowest_and_records_in_all() -> None:
    clock = FakeClock()
    expo = ItemExponentialFailureRateLimiter(base=0.001, cap=10.0)
    bucket = BucketRateLimiter(qps=1.0, burst=2, clock=clock)
    rl = MaxOfRateLimiter(expo, bucket)
    assert rl.when("a") == 0.001  # exponential dominates, bucket still has tokens
    assert rl.when("a") == 0.002
    assert rl.when("b") == pytest.approx(1.0)  # bucket empty: it dominates
    assert rl.num_requeues("a") == 2
    rl.forget("a")
    assert expo.num_requeues("a") == 0
    assert rl.num_requeues("a") == 0


def test_default_controller_rate_limiter() -> None:
    clock = FakeClock()
    rl = default_controller_rate_limiter(clock)
    # Per item: 5 ms doubling; the overall bucket allows a burst of 100 before spacing at 10 qps.
    assert [rl.when("a") for _ in range(4)] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    for i in range(96):
        assert rl.when(f"other-{i}") == pytest.approx(0.005)
    assert rl.when("fresh") == pytest.approx(0.1)  # bucket exhausted: 1/qps
    assert rl.when("fresh2") == pytest.approx(0.2)


def test_default_controller_rate_limiter_is_configurable() -> None:
    rl = default_controller_rate_limiter(FakeClock(), base=1.0, cap=3.0, qps=100.0, burst=1000)
    assert [rl.when("a") for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
