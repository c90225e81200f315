"""A controller: a work queue of keys, N workers, and controller-runtime's result handling.

The reconcile function receives a key (``namespace/name``) and looks at the current state itself
(level-triggered): it never learns which event woke it. What it returns or raises decides what
happens to the key next, exactly as in controller-runtime:

==============================  =========================================  ===================
reconcile outcome               queue action                               ``result`` label
==============================  =========================================  ===================
raises :class:`TerminalError`   ``forget`` (never retried)                 ``error``
raises any other ``Exception``  ``add_rate_limited`` (per-key backoff)     ``error``
``Result(requeue_after=s>0)``   ``forget`` then ``add_after(s)``           ``requeue_after``
``Result(requeue=True)``        ``add_rate_limited``                       ``requeue``
``Result()`` or ``None``        ``forget``                                 ``success``
==============================  =========================================  ===================

A worker never dies of a reconcile's exception: it is counted (also by reason,
:func:`error_reason`) and the key is retried. An error of the API client (an answer of the API
server such as a 409, 429, 5xx or a 403 while a restarted server's authorizer warms up, or a
transport failure such as a refused connection) is expected: it is logged as one WARNING line
with the key, the reason and the next retry's delay, without a traceback. Any other exception is
a bug and is logged with its traceback. Every line logged during a reconcile carries the
controller, the key and a reconcile id (:func:`agentic_operator.logs.reconcile_context`). Every
key handed out is marked ``done`` whatever happens, so the queue's per-key exclusivity always
ends.

Event wiring is kept free of any informer: :meth:`Controller.watch` takes any *source* with
``add_handler(on_add, on_update, on_delete)``, a *mapper* from an object to keys and an optional
:class:`Predicate` (both in :mod:`.predicates`: ``enqueue_object``, ``enqueue_controller_owner``,
``GENERATION_CHANGED``, ...).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.errors import KubeError, NamespaceTerminating
from agentic_operator.kube.resources import Obj
from agentic_operator.logs import reconcile_context
from agentic_operator.ratelimit import RateLimiter, default_controller_rate_limiter
from agentic_operator.runtime import metrics as m
from agentic_operator.runtime.predicates import Mapper, Predicate
from agentic_operator.runtime.workqueue import RateLimitingQueue, ShutDown


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for: nothing (done), a retry with backoff, or a retry after a delay.

    ``requeue_after`` wins over ``requeue`` when both are set, as in controller-runtime.
    """

    requeue: bool = False
    requeue_after: float = 0.0


class TerminalError(Exception):
    """A failure that retrying cannot fix (e.g. invalid input): counted and logged, not retried."""


Reconcile = Callable[[str], Awaitable[Result | None]]
"""A reconcile function; its argument is the key ``namespace/name`` (or ``name``)."""

# Go's runtime panics come from nil dereferences, bad indexing, failed type assertions, arithmetic
# faults and explicit panics; these are their Python counterparts. An exception of one of these
# types in a reconcile is a bug, not a failed API call, so it also counts as a "panic".
PANIC_TYPES: tuple[type[BaseException], ...] = (
    AttributeError,
    TypeError,
    NameError,
    LookupError,
    ArithmeticError,
    AssertionError,
    RecursionError,
    NotImplementedError,
)


UNEXPECTED = "Unexpected"
"""The reason of an exception that is neither the API client's nor a :class:`TerminalError`."""


def error_reason(exc: BaseException) -> str:
    """What failed, as a bounded label: the class of an API client error (``Conflict``,
    ``Forbidden``, ``ServerError``, ``TooManyRequests``, ``TransportError``, ...),
    ``TerminalError``, or :data:`UNEXPECTED`."""
    if isinstance(exc, KubeError | TerminalError):
        return type(exc).__name__
    return UNEXPECTED


class EventSource(Protocol):
    """Anything that calls back on object events: an informer, or a fake in tests."""

    def add_handler(
        self,
        on_add: Callable[[Obj], None],
        on_update: Callable[[Obj, Obj], None],
        on_delete: Callable[[Obj], None],
    ) -> None: ...


# --- The controller -----------------------------------------------------------------------------


class _ControllerMetrics:
    """The labelled children of one controller, looked up once instead of per reconcile."""

    def __init__(self, name: str, max_concurrent_reconciles: int) -> None:
        # Every result series exists (at 0) from the start, so rates and alerts work at once.
        self.total = {r: m.RECONCILE_TOTAL.labels(name, r) for r in m.RECONCILE_RESULTS}
        self.errors = m.RECONCILE_ERRORS.labels(name)
        self.name = name
        self.terminal = m.TERMINAL_RECONCILE_ERRORS.labels(name)
        self.panics = m.RECONCILE_PANICS.labels(name)
        self.time = m.RECONCILE_TIME.labels(name)
        self.active = m.ACTIVE_WORKERS.labels(name)
        m.MAX_CONCURRENT_RECONCILES.labels(name).set(max_concurrent_reconciles)

    def error(self, reason: str, *, panic: bool) -> None:
        if panic:
            self.panics.inc()
        self.errors.inc()
        self.total["error"].inc()
        m.RECONCILE_ERRORS_BY_REASON.labels(self.name, reason).inc()


class Controller:
    """Runs ``reconcile`` for the keys in :attr:`queue` on ``max_concurrent_reconciles`` workers.

    Distinct keys are reconciled concurrently; one key is never reconciled twice at once (the
    queue's exclusivity). ``metrics=False`` keeps this controller and its queue off the registry
    (benchmarks, tests that build many controllers).
    """

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        max_concurrent_reconciles: int = 1,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        metrics: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        if max_concurrent_reconciles < 1:
            raise ValueError("max_concurrent_reconciles must be >= 1")
        self.name = name
        self.max_concurrent_reconciles = max_concurrent_reconciles
        self._reconcile = reconcile
        self._clock: Clock = clock or RealClock()
        self._log = logger or logging.getLogger(f"agentic_operator.controller.{name}")
        self._metrics = metrics
        self.queue = RateLimitingQueue(
            rate_limiter or default_controller_rate_limiter(self._clock),
            self._clock,
            name=name,
            metrics=m.QueueMetrics(name) if metrics else None,
        )
        self._workers: list[asyncio.Task[None]] = []
        self._m = _ControllerMetrics(name, max_concurrent_reconciles) if metrics else None

    # --- Wiring -----------------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def watch(
        self, source: EventSource, mapper: Mapper, predicate: Predicate | None = None
    ) -> None:
        """Enqueue the keys ``mapper`` derives from ``source``'s events that pass ``predicate``.

        On update both the old and the new object are mapped (an owner may have changed). A
        mapper or predicate that raises is logged and the event dropped: the source's delivery
        loop must not die of it.
        """
        pred = predicate or Predicate()

        def enqueue_all(*objs: Obj) -> None:
            for obj in objs:
                for key in mapper(obj):
                    self.queue.add(key)

        def on_add(obj: Obj) -> None:
            try:
                if pred.create(obj):
                    enqueue_all(obj)
            except Exception:
                self._log.exception("controller %s: dropping add event", self.name)

        def on_update(old: Obj, new: Obj) -> None:
            try:
                if pred.update(old, new):
                    enqueue_all(old, new)
            except Exception:
                self._log.exception("controller %s: dropping update event", self.name)

        def on_delete(obj: Obj) -> None:
            try:
                if pred.delete(obj):
                    enqueue_all(obj)
            except Exception:
                self._log.exception("controller %s: dropping delete event", self.name)

        source.add_handler(on_add, on_update, on_delete)

    # --- Running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the workers and return when they have all stopped (see :meth:`stop`).

        Cancelling ``run`` cancels the workers.
        """
        if self._workers:
            raise RuntimeError(f"controller {self.name} is already running")
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._worker(), name=f"{self.name}-worker-{i}")
            for i in range(self.max_concurrent_reconciles)
        ]
        try:
            # return_exceptions: workers cancelled by stop() end run() normally; cancelling run()
            # itself still raises CancelledError here.
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def stop(self, grace: float) -> None:
        """Stop taking work; give in-flight reconciles ``grace`` seconds, then cancel them.

        Queued keys that no worker has taken yet are dropped (the queue shuts down without
        drain); the grace period is measured on the controller's clock.
        """
        self.queue.shutdown(drain=False)
        drained = asyncio.ensure_future(self.queue.wait_drained())
        timer = asyncio.ensure_future(self._clock.sleep(grace))
        try:
            await asyncio.wait({drained, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            in_time = drained.done() and not drained.cancelled()
            drained.cancel()
            timer.cancel()
        if not in_time:
            self._log.warning(
                "controller %s: %d reconciles still running after %.1fs grace; cancelling",
                self.name,
                self.queue.processing,
                grace,
            )
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                with reconcile_context(self.name, key):
                    await self._process(key)
            except Exception:
                # _process handles every reconcile outcome; this only guards the worker itself.
                self._log.exception("controller %s: internal error handling %s", self.name, key)
            finally:
                self.queue.done(key)

    async def _process(self, key: str) -> None:
        cm = self._m
        if cm is not None:
            cm.active.inc()
        start = self._clock.now()
        try:
            result = await self._reconcile(key)
            if result is not None and not isinstance(result, Result):
                raise TypeError(f"reconcile returned {type(result).__name__}, not Result or None")
        except TerminalError:
            self.queue.forget(key)
            self._log.exception("controller %s: terminal error reconciling %s", self.name, key)
            if cm is not None:
                cm.terminal.inc()
                cm.error("TerminalError", panic=False)
            return
        except NamespaceTerminating as exc:
            # Nothing can be made there until the namespace is gone, and its deletion removes the
            # object: retrying would be refused writes, with backoff, until then.
            self.queue.forget(key)
            self._log.info(
                "reconcile of %s stopped: its namespace is being deleted (not retried): %s",
                key,
                exc.message,
                extra={"error": "NamespaceTerminating"},
            )
            if cm is not None:
                cm.error("NamespaceTerminating", panic=False)
            return
        except Exception as exc:
            delay = self.queue.add_rate_limited(key)
            self._log_retry(key, exc, delay)
            if cm is not None:
                cm.error(error_reason(exc), panic=isinstance(exc, PANIC_TYPES))
            return
        finally:
            if cm is not None:
                cm.active.dec()
                cm.time.observe(self._clock.now() - start)

        outcome = self._handle_result(key, result)
        if cm is not None:
            cm.total[outcome].inc()

    def _log_retry(self, key: str, exc: Exception, delay: float) -> None:
        """One WARNING line for an expected failure (the API client's); the traceback only for
        an exception the code did not expect."""
        reason = error_reason(exc)
        if reason == UNEXPECTED:
            self._log.exception(
                "controller %s: error reconciling %s; retrying in %.3gs", self.name, key, delay
            )
            return
        self._log.warning(
            "reconcile of %s failed (%s), retrying in %.3gs: %s",
            key,
            reason,
            delay,
            exc,
            extra={"error": type(exc).__name__, "reason": reason, "retry_in": round(delay, 3)},
        )

    def _handle_result(self, key: str, result: Result | None) -> str:
        if result is None:
            self.queue.forget(key)
            return "success"
        if result.requeue_after > 0:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
            return "requeue_after"
        if result.requeue:
            self.queue.add_rate_limited(key)
            return "requeue"
        self.queue.forget(key)
        return "success"


# Mapper and Predicate are the types of watch()'s arguments, so they are exported here too.
__all__ = [
    "PANIC_TYPES",
    "UNEXPECTED",
    "Controller",
    "EventSource",
    "Mapper",
    "Predicate",
    "Reconcile",
    "Result",
    "TerminalError",
    "error_reason",
]
