"""Kubernetes Events for ``kubectl describe``, written off the reconcile's critical path.

Events are best effort (as in client-go's recorder): a failure is logged at debug level and dropped.
A repeat of the same (object, type, reason, message) within ``dedupe_window`` bumps the existing
Event's count with a PATCH instead of creating a new object.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections import OrderedDict
from typing import Any, Protocol

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube.resources import EVENTS, Obj

log = logging.getLogger(__name__)


class _EventClient(Protocol):
    async def create(self, res: Any, body: Obj, namespace: str | None = None) -> Obj: ...

    async def patch(self, res: Any, name: str, body: Obj, namespace: str | None = None) -> Obj: ...


def _ts(clock: Clock) -> str:
    return clock.wall().strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(
        self,
        client: _EventClient,
        component: str = "agentic-operator",
        *,
        clock: Clock | None = None,
        dedupe_window: float = 600.0,
        max_tracked: int = 4096,
    ) -> None:
        self._client = client
        self._component = component
        self._host = os.environ.get("HOSTNAME", "")
        self._clock = clock or RealClock()
        self._window = dedupe_window
        self._max = max_tracked
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, int, float]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.emit(obj, "Normal", reason, message)

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.emit(obj, "Warning", reason, message)

    def emit(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Schedule the Event write and return at once."""
        task = asyncio.get_running_loop().create_task(self._write(obj, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait for scheduled writes (tests and shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _write(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        key = (str(meta.get("uid", "")), type_, reason, message)
        now = self._clock.now()
        prev = self._seen.get(key)
        try:
            if prev is not None and now - prev[2] < self._window:
                name, count, _ = prev
                await self._client.patch(
                    EVENTS,
                    name,
                    {"count": count + 1, "lastTimestamp": _ts(self._clock)},
                    namespace,
                )
                self._remember(key, name, count + 1, now)
                return
            name = f"{meta.get('name', 'object')}.{secrets.token_hex(8)}"
            ts = _ts(self._clock)
            body: Obj = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion", ""),
                    "kind": obj.get("kind", ""),
                    "name": meta.get("name", ""),
                    "namespace": namespace,
                    "uid": meta.get("uid", ""),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
                "source": {"component": self._component, "host": self._host},
                "reportingComponent": self._component,
                "reportingInstance": self._host or self._component,
                "firstTimestamp": ts,
                "lastTimestamp": ts,
                "count": 1,
            }
            await self._client.create(EVENTS, body, namespace)
            self._remember(key, name, 1, now)
        except Exception as exc:  # best effort by design
            log.debug("dropping event %s for %s: %s", reason, meta.get("name"), exc)

    def _remember(self, key: tuple[str, str, str, str], name: str, count: int, at: float) -> None:
        self._seen[key] = (name, count, at)
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
