"""The manager: runs informers, controllers, leader election and the HTTP endpoints as one unit.

Order of events (controller-runtime's, kept on purpose):

1. ``/healthz`` and ``/metrics`` are served at once; ``/readyz`` fails until every informer synced.
2. Informers start in every replica (a standby keeps warm caches so a failover is fast).
3. After the caches synced (or ``cache_sync_timeout`` -> exit 1), the manager waits for leadership
   when leader election is on, then starts the controllers.
4. SIGTERM/SIGINT: controllers stop taking work and get ``graceful_shutdown_timeout`` to finish
   in-flight reconciles; the lease is released so a standby takes over at once; exit 0.
5. Lost leadership: controllers are cancelled at once and the process exits 1 without releasing
   anything, so two replicas never reconcile together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import Protocol

from agentic_operator.runtime.health import HttpEndpoints, ProbeChecks
from agentic_operator.runtime.leaderelection import LeaderElector, LeadershipLost

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1


class InformerLike(Protocol):
    name: str

    async def run(self) -> None: ...

    def has_synced(self) -> bool: ...

    async def wait_synced(self, timeout: float | None) -> bool: ...  # noqa: ASYNC109


class Runnable(Protocol):
    """A controller (or anything like one) run only while leading."""

    async def run(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


class Manager:
    def __init__(
        self,
        *,
        probe_address: str,
        metrics_address: str,
        cache_sync_timeout: float = 120.0,
        graceful_shutdown_timeout: float = 30.0,
        elector: LeaderElector | None = None,
    ) -> None:
        self.checks = ProbeChecks()
        self.http = HttpEndpoints(
            self.checks, probe_address=probe_address, metrics_address=metrics_address
        )
        self.cache_sync_timeout = cache_sync_timeout
        self.grace = graceful_shutdown_timeout
        self.elector = elector
        self.informers: list[InformerLike] = []
        self.runnables: list[Runnable] = []
        self.stop_event = asyncio.Event()
        self.checks.readyz["informers-synced"] = self.caches_synced

    def add_informer(self, informer: InformerLike) -> None:
        self.informers.append(informer)

    def add_runnable(self, runnable: Runnable) -> None:
        self.runnables.append(runnable)

    def caches_synced(self) -> bool:
        return all(i.has_synced() for i in self.informers)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop_event.is_set():
            log.warning("second %s: exiting at once", sig.name)
            raise SystemExit(EXIT_FAILURE)
        log.info("received %s, shutting down", sig.name)
        self.stop_event.set()

    async def run(self) -> int:
        """Run until a signal (exit 0) or a fatal condition (exit 1)."""
        await self.http.start()
        informer_tasks = [
            asyncio.create_task(i.run(), name=f"informer:{i.name}") for i in self.informers
        ]
        worker_tasks: list[asyncio.Task[None]] = []
        hold_task: asyncio.Task[None] | None = None
        code = EXIT_OK
        try:
            if not await self._until_stopped(self._wait_synced(), self.cache_sync_timeout):
                if self.stop_event.is_set():
                    return EXIT_OK
                pending = [i.name for i in self.informers if not i.has_synced()]
                log.error("caches did not sync within %ss: %s", self.cache_sync_timeout, pending)
                return EXIT_FAILURE
            log.info("caches synced", extra={"informers": len(self.informers)})

            if self.elector is not None:
                if not await self._until_stopped(self.elector.acquire(), None):
                    return EXIT_OK
                hold_task = asyncio.create_task(self.elector.hold(), name="leader-election")

            worker_tasks = [
                asyncio.create_task(r.run(), name=f"runnable:{type(r).__name__}")
                for r in self.runnables
            ]
            code = await self._supervise(informer_tasks, worker_tasks, hold_task)
            return code
        finally:
            await self._shutdown(informer_tasks, worker_tasks, hold_task, graceful=code == 0)

    async def _wait_synced(self) -> None:
        await asyncio.gather(*(i.wait_synced(None) for i in self.informers))

    async def _until_stopped(self, aw: Awaitable[None], limit: float | None) -> bool:
        """Await ``aw`` unless a stop signal comes first; False on stop or timeout."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.create_task(self.stop_event.wait())
        done, _ = await asyncio.wait(
            {task, stopper}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
        )
        for t in (task, stopper):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if task in done:
            task.result()
            return True
        return False

    async def _supervise(
        self,
        informers: list[asyncio.Task[None]],
        workers: list[asyncio.Task[None]],
        hold: asyncio.Task[None] | None,
    ) -> int:
        stopper = asyncio.create_task(self.stop_event.wait(), name="stop-signal")
        watched: set[asyncio.Task[None] | asyncio.Task[bool]] = {stopper, *informers, *workers}
        if hold is not None:
            watched.add(hold)
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not stopper.done():
                stopper.cancel()
        if stopper in done:
            return EXIT_OK
        for task in done:
            exc = task.exception() if not task.cancelled() else None
            if task is hold:
                if isinstance(exc, LeadershipLost) or exc is None:
                    log.error("leader election lost: %s; exiting", exc or "lease not renewed")
                else:
                    log.error("leader election failed: %s; exiting", exc)
            else:
                log.error("%s stopped unexpectedly: %s", task.get_name(), exc or "returned")
        return EXIT_FAILURE

    async def _shutdown(
        self,
        informers: list[asyncio.Task[None]],
        workers: list[asyncio.Task[None]],
        hold: asyncio.Task[None] | None,
        *,
        graceful: bool,
    ) -> None:
        if graceful:
            await asyncio.gather(
                *(r.stop(self.grace) for r in self.runnables), return_exceptions=True
            )
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if hold is not None:
            hold.cancel()
            await asyncio.gather(hold, return_exceptions=True)
        if self.elector is not None and graceful and self.elector.is_leader:
            with contextlib.suppress(Exception):
                await self.elector.release()
        for t in informers:
            t.cancel()
        await asyncio.gather(*informers, return_exceptions=True)
        await self.http.stop()
