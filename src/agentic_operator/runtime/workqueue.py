"""A rate-limited, delaying, de-duplicating work queue with client-go semantics.

Three pieces of state make the contract (see client-go ``util/workqueue``):

- ``queue``: FIFO of keys ready to be handed to a worker;
- ``dirty``: keys that need processing (queued, or changed while being processed);
- ``processing``: keys a worker holds between :meth:`RateLimitingQueue.get` and
  :meth:`RateLimitingQueue.done`.

From them follow the two promises controllers rely on. *De-duplication*: adding a key that is
already dirty is a no-op, so a storm of events for one object costs one reconcile. *Exclusivity*: a
key that is being processed is never handed out again until ``done``; if it was added meanwhile it
is queued once, at ``done``.

Delayed adds (:meth:`RateLimitingQueue.add_after`) wait in a heap; one timer task, sleeping on the
injected :class:`~agentic_operator.clock.Clock`, moves them to the queue when due, so a
``FakeClock`` drives them in tests without real sleeping.

Shutdown, precisely:

- ``shutdown(drain=False)``: adds of any kind are ignored from now on, pending delayed adds are
  dropped, queued keys are discarded, and every :meth:`get` (blocked or future) raises
  :class:`ShutDown`. Keys already handed out stay "processing" until their ``done``. (client-go
  keeps handing out queued items after ``ShutDown``; we stop at once, because a stopping controller
  should not start new reconciles.)
- ``shutdown(drain=True)``: adds are ignored and delayed adds dropped, but :meth:`get` keeps
  returning the keys that were already queued (and keys re-queued by ``done`` because they changed
  while processing) and raises :class:`ShutDown` only once the queue is empty.
- In both modes :meth:`wait_drained` returns when no key is being processed and (with drain) none
  is queued, which is what client-go's ``ShutDownWithDrain`` blocks on. ``shutdown`` itself does not
  block; await :meth:`wait_drained` (bounded by your own timeout) for that.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

from agentic_operator.clock import Clock, RealClock
from agentic_operator.ratelimit import RateLimiter, default_controller_rate_limiter
from agentic_operator.runtime.metrics import QueueMetrics


class ShutDown(Exception):
    """Raised by :meth:`RateLimitingQueue.get` when the queue has shut down (and, with drain, is
    empty): the worker should return."""


class RateLimitingQueue:
    """The controller's queue of ``namespace/name`` keys. Single event loop, not thread-safe."""

    def __init__(
        self,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        name: str = "",
        metrics: QueueMetrics | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock or RealClock()
        self._limiter: RateLimiter = rate_limiter or default_controller_rate_limiter(self._clock)
        self._metrics = metrics
        if metrics is not None:
            metrics.bind(self._clock, lambda: len(self._dirty))

        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()

        self._getters: deque[asyncio.Future[None]] = deque()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._shutting_down = False
        self._drain = False

        # Delayed adds: key -> when it is due; heap entries that disagree with the dict are stale.
        self._waiting: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_deadline = float("inf")

    # --- Adding -----------------------------------------------------------------------------

    def add(self, key: str) -> None:
        """Mark ``key`` as needing processing; queue it unless queued or being processed."""
        if self._shutting_down or key in self._dirty:
            return
        if self._metrics is not None:
            self._metrics.add(key)
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake_getter()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds of the clock have passed.

        If the key is already waiting, the earlier of the two due times is kept. A positive delay
        needs a running event loop (the timer is a task on it).
        """
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        due = self._clock.now() + delay
        current = self._waiting.get(key)
        if current is not None and current <= due:
            return
        self._waiting[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if due < self._timer_deadline:
            self._arm_timer(due)

    def add_rate_limited(self, key: str) -> float:
        """Add ``key`` after the delay the rate limiter asks for (and count the retry); returns
        that delay (0 when the queue is shutting down and nothing was added)."""
        if self._shutting_down:
            return 0.0
        if self._metrics is not None:
            self._metrics.retry()
        delay = self._limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key succeeded: reset its rate-limiter history (not its queued state)."""
        self._limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self._limiter.num_requeues(key)

    # --- Processing -------------------------------------------------------------------------

    async def get(self) -> str:
        """Hand out the next key and mark it processing; wait while the queue is empty.

        Raises :class:`ShutDown` as described in the module docstring.
        """
        while True:
            if self._queue and (self._drain or not self._shutting_down):
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                if self._metrics is not None:
                    self._metrics.get(key)
                if self._shutting_down:
                    self._check_drained()
                return key
            if self._shutting_down:
                raise ShutDown
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # If we were woken for an item and then cancelled, pass the wake-up on so the
                # item is not left waiting for the next add.
                if waiter.done() and not waiter.cancelled():
                    self._wake_getter()
                raise

    def done(self, key: str) -> None:
        """The worker finished ``key``; queue it again if it was added while being processed."""
        if self._metrics is not None:
            self._metrics.done(key)
        self._processing.discard(key)
        if key in self._dirty:
            if self._shutting_down and not self._drain:
                self._dirty.discard(key)
            else:
                self._queue.append(key)
                self._wake_getter()
        if self._shutting_down:
            self._check_drained()

    # --- Shutdown ---------------------------------------------------------------------------

    def shutdown(self, drain: bool = False) -> None:
        """Stop accepting keys; see the module docstring for what happens to the rest."""
        if self._shutting_down:
            # A later drain=False may end a drain early; a later drain=True cannot revive keys.
            self._drain = self._drain and drain
        else:
            self._shutting_down = True
            self._drain = drain
        if not self._drain:
            for key in self._queue:
                self._dirty.discard(key)
            self._queue.clear()
            if self._metrics is not None:
                self._metrics.discard_pending()
        self._waiting.clear()
        self._heap.clear()
        self._timer_deadline = float("inf")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self._check_drained()

    async def wait_drained(self) -> None:
        """Return once the queue is shut down and nothing is processing (nor, with drain, queued).

        Waits for :meth:`shutdown` to be called if it has not been yet.
        """
        while not self._is_drained():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._drain_waiters:
                    self._drain_waiters.remove(waiter)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys queued and ready for a worker (not those being processed or delayed)."""
        return len(self._queue)

    @property
    def processing(self) -> int:
        """Keys handed out and not yet ``done``."""
        return len(self._processing)

    @property
    def waiting(self) -> int:
        """Keys scheduled by :meth:`add_after` and not yet due."""
        return len(self._waiting)

    # --- Internals --------------------------------------------------------------------------

    def _wake_getter(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _is_drained(self) -> bool:
        return self._shutting_down and not self._processing and not (self._drain and self._queue)

    def _check_drained(self) -> None:
        if self._drain_waiters and self._is_drained():
            for waiter in self._drain_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._drain_waiters.clear()

    def _arm_timer(self, deadline: float) -> None:
        """(Re)start the single timer task so it wakes at ``deadline``."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = asyncio.get_running_loop().create_task(
            self._fire_at(deadline), name=f"workqueue-timer-{self.name}"
        )

    async def _fire_at(self, deadline: float) -> None:
        await self._clock.sleep(deadline - self._clock.now())
        self._timer = None
        self._timer_deadline = float("inf")
        now = self._clock.now()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, key = heapq.heappop(heap)
            if self._waiting.get(key) == due:
                del self._waiting[key]
                self.add(key)
        # Drop stale entries so the next deadline is a real one.
        while heap and self._waiting.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            self._arm_timer(heap[0][0])
