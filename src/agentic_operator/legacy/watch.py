"""``--legacy-watch``: the debugging driver. Same reconcile, no work queue.

A raw watch on AgenticSessions (no resourceVersion, so every (re)connect replays all sessions as
ADDED, like the operator this project replaces) calls the session reconcile inline, one event at a
time, after a 100 ms pause. A monitor tick every 5 s re-runs the reconcile for every session that
is not in a terminal phase, standing in for Job/pod-triggered reconciles. There is no
de-duplication, no backoff and no concurrency: errors are logged and the loop goes on (an error
of the API client as one WARNING line with the retry, at the latest the next monitor tick; any
other exception with its traceback). Use it to step through one session's reconciles in order;
use the default mode for anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import KubeError
from agentic_operator.kube.resources import AGENTIC_SESSIONS, Obj, object_key
from agentic_operator.logs import reconcile_context
from agentic_operator.runtime.controller import Result
from agentic_operator.sessions.model import TERMINAL_PHASES

log = logging.getLogger(__name__)

EVENT_DELAY = 0.1
RETRY_AFTER_ERROR = 5.0
RETRY_AFTER_CLOSE = 2.0
MONITOR_INTERVAL = 5.0


class SessionStore(Protocol):
    def list(self) -> list[Obj]: ...


class LegacyWatchLoop:
    def __init__(
        self,
        client: ApiClient,
        reconcile: Callable[[str], Awaitable[Result | None]],
        sessions: SessionStore,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.reconcile = reconcile
        self.sessions = sessions
        self.clock = clock or RealClock()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch_loop(), name="legacy-watch"),
            asyncio.create_task(self._monitor_loop(), name="legacy-monitor"),
        ]
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            pass

    async def stop(self, grace: float) -> None:
        # Wait for the reconcile in progress (if any), then stop both loops.
        try:
            await asyncio.wait_for(self._lock.acquire(), grace)
        except TimeoutError:
            pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_one(self, key: str) -> None:
        async with self._lock:
            self.reconciles += 1
            with reconcile_context("legacy-watch", key):
                try:
                    await self.reconcile(key)
                except KubeError as exc:
                    log.warning(
                        "reconcile of %s failed (%s), retrying within %.3gs: %s",
                        key,
                        type(exc).__name__,
                        MONITOR_INTERVAL,
                        exc,
                        extra={"reason": type(exc).__name__, "retry_in": MONITOR_INTERVAL},
                    )
                except Exception:
                    log.exception("legacy reconcile of %s failed", key)

    async def _watch_loop(self) -> None:
        while True:
            try:
                async for event_type, obj in self.client.watch(
                    AGENTIC_SESSIONS, resource_version="", timeout_seconds=300
                ):
                    if event_type == "DELETED":
                        log.info("session deleted", extra={"session": object_key(obj)})
                        continue
                    if event_type not in ("ADDED", "MODIFIED"):
                        continue
                    if not (obj.get("metadata") or {}).get("namespace"):
                        continue
                    await self.clock.sleep(EVENT_DELAY)
                    await self._run_one(object_key(obj))
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                log.warning(
                    "session watch failed (%s: %s); retrying in %.3gs",
                    type(exc).__name__,
                    exc,
                    RETRY_AFTER_ERROR,
                    extra={"reason": type(exc).__name__, "retry_in": RETRY_AFTER_ERROR},
                )
                await self.clock.sleep(RETRY_AFTER_ERROR)
                continue
            except Exception:
                log.exception("session watch failed; retrying in %.3gs", RETRY_AFTER_ERROR)
                await self.clock.sleep(RETRY_AFTER_ERROR)
                continue
            await self.clock.sleep(RETRY_AFTER_CLOSE)

    async def _monitor_loop(self) -> None:
        while True:
            await self.clock.sleep(MONITOR_INTERVAL)
            for session in self.sessions.list():
                phase = (session.get("status") or {}).get("phase")
                if phase in TERMINAL_PHASES:
                    continue
                await self._run_one(object_key(session))
