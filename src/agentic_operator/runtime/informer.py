"""Informer: keeps an in-memory :class:`Store` of one kind in step with the API server.

The reflector loop follows client-go's ``tools/cache`` contract:

1. LIST in pages (``limit``/``continue``) and replace the store with the result, notifying adds and
   updates for what is listed and synthesised deletes for what vanished since the last list;
2. WATCH from the list's resourceVersion with bookmarks and a server ``timeoutSeconds`` drawn at
   random from [300, 600], so many informers do not re-watch in lockstep;
3. when the server ends a watch normally, WATCH again from the last resourceVersion seen (events
   and bookmarks both advance it), without listing;
4. on 410 Gone (HTTP or a watch ERROR event) the resourceVersion is too old: relist and diff;
5. on other failures (API server unreachable, 5xx, a silent stream detected by the client's
   inactivity timeout) back off exponentially with jitter, capped at 30 s (:mod:`.backoff`), then
   watch again (or list again when it was the list that failed).

Handlers are synchronous callbacks that run on the event loop right after the store changed, so
they see the store already updated; they are expected to be quick (enqueue a key). An exception in
a handler is logged and never stops the informer (:mod:`.handlers`). Updates whose resourceVersion
did not change are not delivered, except by the optional periodic resync, which re-delivers every
object as ``update(obj, obj)``.

To save memory, stored objects lose ``metadata.managedFields`` (often larger than the rest of the
object) and the ``kubectl.kubernetes.io/last-applied-configuration`` annotation unless
``prune=False``, and the store keeps each object as compact JSON bytes (:class:`CompactStore`)
unless ``compact=False``. With the compact store a watch event is not decoded to be stored: its
object's bytes are kept as they came (managedFields cut out, see :mod:`..kube.codec`), and dicts
are built only for handlers (the new object; for update handlers the stored old one too) and for
store reads, which return fresh copies, so a reader that modifies one cannot corrupt the cache.
Measured with ``bench/informer_bench.py`` on a ~4 KB Job: 10,000 Jobs take ~39 MB as bytes but
~160 MB as dicts; see docs/benchmarks.md for the event rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import orjson

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube import codec
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.errors import Gone, KubeError, error_from_status
from agentic_operator.kube.resources import Obj, Resource, object_key
from agentic_operator.runtime.backoff import Backoff
from agentic_operator.runtime.handlers import Handlers, OnAdd, OnDelete, OnUpdate
from agentic_operator.runtime.store import CompactStore, Store

__all__ = ["CompactStore", "Informer", "Store", "prune_object"]

log = logging.getLogger(__name__)

WATCH_INACTIVITY_TIMEOUT = 150.0
"""A watch that delivered nothing, not even a bookmark, for this long is treated as dead.

With ``allowWatchBookmarks`` the API server's watch cache sends a BOOKMARK after a minute without
events (measured here: 60.0 s on kube-apiserver v1.36), so 2.5 minutes of silence means the stream
stalled (a half-open connection, an overloaded server) and waiting out the server timeout
(5-10 minutes) would only delay recovery.
"""

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def prune_object(obj: Obj) -> Obj:
    """Drop fields an operator never reads but that dominate memory (in place; returns ``obj``)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if annotations and LAST_APPLIED in annotations:
            del annotations[LAST_APPLIED]
    return obj


class _ShortWatchError(Exception):
    """A watch ended at once without delivering anything; treated as a failure to avoid spinning."""


class Informer:
    """List+watch one resource (optionally one namespace / selector) into a :class:`Store`."""

    def __init__(
        self,
        client: ApiClient,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
        prune: bool = True,
        compact: bool = True,
    ) -> None:
        """``transform`` runs on every object before it is stored (after pruning, if enabled);
        ``watch_timeout`` is the range the server-side watch timeout is drawn from; ``compact``
        chooses :class:`CompactStore` over :class:`Store` (see the module notes)."""
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.name = name or (f"{res}/{namespace}" if namespace else str(res))
        self.store: Store = CompactStore() if compact else Store()
        self.lists = 0
        """Completed LISTs (the first sync plus every relist)."""
        self._transform = transform
        self._prune = prune
        self._clock = clock or RealClock()
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._handlers = Handlers(self.name, log)
        # Copied from the handlers and their methods bound once: these are on the per-event path.
        self._wants_old = False
        self._has_add = False
        self._notify_add = self._handlers.notify_add
        self._notify_update = self._handlers.notify_update
        self._notify_delete = self._handlers.notify_delete
        self._synced = asyncio.Event()
        self._last_rv = ""
        self._events_seen = 0
        # Watch events can be stored as their own bytes (see process_line).
        self._raw_ok = compact and transform is None

    # -- public surface --------------------------------------------------------------------------

    @property
    def last_sync_resource_version(self) -> str:
        """The resourceVersion the next watch starts from (last list, event or bookmark)."""
        return self._last_rv

    def add_handler(
        self,
        on_add: OnAdd | None = None,
        on_update: OnUpdate | None = None,
        on_delete: OnDelete | None = None,
    ) -> None:
        """Register callbacks. A handler added after the first sync first gets an add for every
        object already in the store, so late registration misses nothing."""
        self._handlers.add(on_add, on_update, on_delete)
        self._wants_old = self._handlers.wants_old
        self._has_add = self._handlers.has_add
        if on_add is not None:
            for obj in self.store.list():
                self._handlers.call(on_add, obj)

    def has_synced(self) -> bool:
        """True once the first LIST has been stored (stays True across relists)."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (injected clock)
        """Wait for the first sync; False if ``timeout`` (on the informer's clock) passed first."""
        if self._synced.is_set() or timeout is None:
            await self._synced.wait()
            return True
        waiter = asyncio.ensure_future(self._synced.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return self._synced.is_set()

    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = None
        if self.resync_period:
            resync = asyncio.create_task(self._resync_loop(self.resync_period))
        try:
            await self._reflect()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    def process_event(self, event_type: str, obj: Obj) -> None:
        """Apply one decoded watch event to the store and notify handlers.

        This is the whole per-event hot path after JSON decoding (the benchmark drives it
        directly). Unknown event types and objects without a name are logged and skipped.
        """
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            log.warning("%s: skipping %s event without metadata", self.name, event_type)
            return
        rv = meta.get("resourceVersion")
        if event_type == "BOOKMARK":
            if rv:
                self._last_rv = str(rv)
            return
        if event_type not in ("ADDED", "MODIFIED", "DELETED") or not meta.get("name"):
            log.warning("%s: skipping malformed %r event", self.name, event_type)
            return
        prepared = self._prepare(obj)
        if prepared is None:
            return
        if event_type == "DELETED":
            self.store.delete(object_key(prepared))
            self._notify_delete(prepared)
        else:
            result = self.store.upsert(prepared, need_old=self._wants_old)
            if not result.existed:
                self._notify_add(prepared)
            elif result.changed:
                self._notify_update(result.old or prepared, prepared)
        if rv:
            self._last_rv = str(rv)

    def process_line(self, line: bytes) -> None:
        """Decode one watch event line and apply it: the watch loop's whole per-event path.

        An ERROR event raises its mapped :class:`~agentic_operator.kube.errors.ApiError` (410:
        :class:`Gone`); malformed lines are logged and skipped. With a :class:`CompactStore`, no
        transform and no ``last-applied-configuration`` annotation, the object is stored as the
        event's own bytes (managedFields cut out) and decoded only for the handlers, once; else
        it is decoded and goes through :meth:`process_event`.
        """
        envelope = codec.decode_envelope(line)
        if envelope is None:
            return
        event_type, raw = envelope
        head = (
            codec.decode_head(raw) if self._raw_ok and event_type in ("ADDED", "MODIFIED") else None
        )
        if head is not None and head.name:
            data: bytes | None = raw
            if self._prune:
                if head.last_applied:
                    data = None  # dropping an annotation takes a decode
                elif head.managed_fields:
                    data = codec.strip_managed_fields(raw, head.managed_fields)
            if data is not None:
                self._apply_raw(head, data)
                return
        # Everything else (deletes, bookmarks, errors, odd layouts) is decoded whole.
        event = codec.decode_watch_line(line)
        if event is None:
            return
        if event[0] == "ERROR":
            raise error_from_status(0, event[1])
        self.process_event(*event)

    def _apply_raw(self, head: codec.Head, data: bytes) -> None:
        store = self.store
        assert isinstance(store, CompactStore)
        result = store.upsert_raw(head.key, head.resource_version, data, need_old=self._wants_old)
        if result.changed:
            if not result.existed:
                if self._has_add:
                    self._notify_add(orjson.loads(data))
            elif self._wants_old:
                new = orjson.loads(data)
                self._notify_update(result.old or new, new)
        if head.resource_version:
            self._last_rv = head.resource_version

    # -- reflector -------------------------------------------------------------------------------

    async def _reflect(self) -> None:
        backoff = Backoff()
        need_list = True
        while True:
            seen_before = self._events_seen
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    backoff.reset()
                started = self._clock.now()
                delivered = await self._watch()
                if delivered == 0 and self._clock.now() - started < 1.0:
                    raise _ShortWatchError("watch closed immediately without events")
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Gone as exc:
                # The resourceVersion we hold was compacted away; only a relist can catch up.
                log.info("%s: %s; relisting", self.name, exc)
                need_list = True
            except Exception as exc:
                if self._events_seen > seen_before:
                    backoff.reset()  # the stream worked for a while: start over from short delays
                delay = backoff.after(exc)
                self._log_retry("list" if need_list else "watch", exc, delay)
                await self._clock.sleep(delay)

    def _log_retry(self, what: str, exc: Exception, delay: float) -> None:
        """A failed list or watch of the API client (the server down or restarting, a 403 while
        its authorizer warms up, a 429 or 5xx, a cut stream) is expected: one WARNING line with
        the reason and the delay. Anything else is a bug, logged with its traceback; the
        reflector retries either way."""
        if isinstance(exc, KubeError | _ShortWatchError):
            log.warning(
                "%s: %s failed (%s: %s); retrying in %.1fs",
                self.name,
                what,
                type(exc).__name__,
                exc,
                delay,
                extra={"reason": type(exc).__name__, "retry_in": round(delay, 3)},
            )
        else:
            log.exception("%s: %s failed unexpectedly; retrying in %.1fs", self.name, what, delay)

    async def _list(self) -> None:
        # Pages are pruned and put into stored form as they arrive, so a large initial list never
        # exists as decoded objects all at once (measured: 10,000 sessions as dicts with
        # managedFields ~100 MB, which the allocator then keeps).
        fresh: dict[str, Any] = {}

        def take(page: list[Obj]) -> None:
            for item in page:
                prepared = self._prepare(item)
                if prepared is not None:
                    fresh[object_key(prepared)] = self.store.encode(prepared)
            page.clear()

        _, rv = await self.client.list_all(
            self.res,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self._page_size,
            on_page=take,
            on_restart=fresh.clear,
        )
        changes = self.store.replace_encoded(fresh)
        self._last_rv = rv
        self.lists += 1
        for key, old in changes.items():
            new = self.store.get(key) if key in fresh else None
            if new is None:
                # Deleted while we were not watching: the last state we knew stands in for it.
                assert old is not None
                self._notify_delete(old)
            elif old is None:
                self._notify_add(new)
            else:
                self._notify_update(old, new)
        self._synced.set()
        log.debug("%s: listed %d objects at resourceVersion %s", self.name, len(fresh), rv)

    async def _watch(self) -> int:
        lo, hi = self._watch_timeout
        delivered = 0
        lines = self.client.watch_lines(
            self.res,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=self._last_rv,
            timeout_seconds=random.randint(lo, hi),
            allow_bookmarks=True,
            inactivity_timeout=WATCH_INACTIVITY_TIMEOUT,
        )
        process = self.process_line
        async with contextlib.aclosing(lines):
            async for line in lines:
                delivered += 1
                self._events_seen += 1
                process(line)
        return delivered

    async def _resync_loop(self, period: float) -> None:
        while True:
            await self._clock.sleep(period)
            if not self.has_synced():
                continue
            for obj in self.store.list():
                self._notify_update(obj, obj)

    # -- helpers ---------------------------------------------------------------------------------

    def write_through(self, obj: Obj, expected_resource_version: str | None) -> bool:
        """Put the result of the operator's own write into the store (see Store.write_through).

        The object is pruned and transformed like a watch event, so the event that later carries
        the same version compares equal and notifies nobody. Handlers are not called.
        """
        prepared = self._prepare(obj)
        if prepared is None:
            return False
        return self.store.write_through(prepared, expected_resource_version)

    def store_result(self, obj: Obj) -> bool:
        """Put the result of the operator's own write of a child into the store (see
        Store.store_result), pruned and transformed like a watch event."""
        prepared = self._prepare(obj)
        return prepared is not None and self.store.store_result(prepared)

    def _prepare(self, obj: Obj) -> Obj | None:
        if self._prune:
            prune_object(obj)
        if self._transform is None:
            return obj
        try:
            return self._transform(obj)
        except Exception:
            log.exception("%s: transform failed; object skipped", self.name)
            return None
