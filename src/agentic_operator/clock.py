"""Injected time.

Everything that waits or measures durations (queue delays, backoff, leases, timeouts) takes a
:class:`Clock`, so tests drive time with :class:`FakeClock` instead of sleeping. ``now()`` is
monotonic (durations, deadlines, lease observation); ``wall()`` is UTC wall time (timestamps written
to the API server).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

_T = TypeVar("_T")


class Clock(Protocol):
    """Source of time and of sleeping."""

    def now(self) -> float:
        """Monotonic seconds; only differences are meaningful."""
        ...

    def wall(self) -> datetime:
        """Current UTC wall-clock time (timezone-aware)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the caller for ``seconds`` of this clock's time."""
        ...


class RealClock:
    """The process's monotonic clock and asyncio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test calls :meth:`advance`.

    Sleepers are woken in deadline order as time passes them. ``advance`` yields to the event loop
    after waking sleepers so their continuations run before it returns.
    """

    def __init__(self, start: float = 1000.0, wall_start: datetime | None = None) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """Number of pending (not cancelled) sleeps; lets tests wait until a task is parked."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has passed, in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 5) -> None:
    """Let ready callbacks and tasks run (a few loop iterations) without moving any clock."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def bounded(clock: Clock, aw: Awaitable[_T], limit: float) -> _T:
    """Await ``aw`` for at most ``limit`` seconds of ``clock``.

    ``asyncio.timeout`` measures on the event loop's clock, which a FakeClock does not drive.
    This is the same mechanism on our clock: ``aw`` runs inline in the calling task and a
    watchdog task cancels the caller when the limit passes; that cancellation is turned into
    :class:`TimeoutError`, while a cancellation from outside still propagates as such.
    """
    task = asyncio.current_task()
    assert task is not None, "bounded() must run inside a task"
    expired = False
    # Cancellations already requested (e.g. release() running while hold() is cancelled);
    # only ours, on top of them, is a timeout.
    baseline = task.cancelling()

    async def watchdog() -> None:
        nonlocal expired
        await clock.sleep(limit)
        expired = True
        task.cancel()

    dog = asyncio.create_task(watchdog())
    try:
        result = await aw
    except asyncio.CancelledError:
        if expired and task.uncancel() <= baseline:
            raise TimeoutError from None
        raise
    finally:
        dog.cancel()
    if expired:  # ``aw`` swallowed our cancellation; undo its bookkeeping
        task.uncancel()
    return result
