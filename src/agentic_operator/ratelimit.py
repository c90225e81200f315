"""Rate limiters for the work queue: how long to wait before an item is retried.

Same contract as client-go's ``workqueue.RateLimiter``: :meth:`RateLimiter.when` is asked once per
retry and both answers and *records* (a failure is counted, a token is reserved);
:meth:`RateLimiter.forget` says the item succeeded, so its history no longer matters.

The controller default is the maximum of two limits: per-item exponential backoff, which keeps one
broken object from being hammered, and an overall token bucket, which keeps a burst of failures
across many objects from flooding the API server.
"""

from __future__ import annotations

import math
from typing import Protocol

from agentic_operator.clock import Clock, RealClock


class RateLimiter(Protocol):
    def when(self, item: str) -> float:
        """Seconds to wait before ``item`` may be processed again; records the retry."""
        ...

    def forget(self, item: str) -> None:
        """``item`` is done being retried: drop what was recorded about it."""
        ...

    def num_requeues(self, item: str) -> int:
        """How many retries of ``item`` have been recorded since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter:
    """``base * 2**failures`` seconds per item, capped at ``cap``.

    The exponent grows without bound for an item that keeps failing; the delay is computed so that
    it saturates at ``cap`` instead of overflowing a float.
    """

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        if base < 0 or cap < 0:
            raise ValueError("base and cap must be >= 0")
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, item: str) -> float:
        exp = self._failures.get(item, 0)
        self._failures[item] = exp + 1
        if self.base == 0:
            return 0.0
        # 2**exp beyond what a float holds means "far beyond any cap".
        if exp >= 1000:
            return self.cap
        return min(self.base * math.ldexp(1.0, exp), self.cap)

    def forget(self, item: str) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: str) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """An overall token bucket (``qps`` tokens per second, at most ``burst`` stored).

    Each :meth:`when` reserves one token, like ``rate.Limiter.Reserve()`` in golang.org/x/time/rate:
    if the bucket is empty the token is borrowed from the future and the answer is the time until it
    will have been refilled, so consecutive calls are spaced ``1/qps`` apart once the burst is used.
    It is not per item: :meth:`forget` does nothing and :meth:`num_requeues` is always 0.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        if not qps > 0:
            raise ValueError("qps must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock or RealClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, item: str) -> float:
        now = self._clock.now()
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.qps

    def forget(self, item: str) -> None:
        return None

    def num_requeues(self, item: str) -> int:
        return 0


class MaxOfRateLimiter:
    """The slowest answer of several limiters; every limiter records every retry."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self.limiters = limiters

    def when(self, item: str) -> float:
        # Ask all of them (not max() over a generator that could short-circuit): each one records.
        delays = [limiter.when(item) for limiter in self.limiters]
        return max(delays)

    def forget(self, item: str) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: str) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter(
    clock: Clock | None = None,
    base: float = 0.005,
    cap: float = 1000.0,
    qps: float = 10.0,
    burst: int = 100,
) -> MaxOfRateLimiter:
    """client-go's default: per-item 5 ms doubling up to 1000 s, and 10 qps with a burst of 100."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base, cap),
        BucketRateLimiter(qps, burst, clock),
    )
