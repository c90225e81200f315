"""Informers against the real local API server: list+watch, bookmarks, a forced 410, restarts."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.codec import decode_envelope
from agentic_operator.kube.config import load_config
from agentic_operator.kube.resources import EVENTS, Obj, Resource, object_key
from agentic_operator.runtime.informer import Informer

pytestmark = pytest.mark.cluster

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
WAIT = 30.0


class ObservedClient(ApiClient):
    """The real client, plus: counts of watch event types, and a gate that can hold the next
    watch before it is sent (so a test can change things the informer must not see as events)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.event_types: collections.Counter[str] = collections.Counter()
        self.watch_calls = 0
        self.gate: asyncio.Event | None = None
        self.parked = asyncio.Event()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate`` holds; it is re-checked whenever a watch starts or delivers."""

        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), WAIT)

    async def watch_lines(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        if self.gate is not None:
            gate, self.gate = self.gate, None
            self.parked.set()
            await gate.wait()
        self.watch_calls += 1
        self._changed.set()
        async with contextlib.aclosing(super().watch_lines(*args, **kwargs)) as lines:
            async for line in lines:
                envelope = decode_envelope(line)
                if envelope is not None:
                    self.event_types[envelope[0]] += 1
                self._changed.set()
                yield line


@pytest.fixture
async def client(control_plane: Any) -> AsyncIterator[ObservedClient]:
    config = await load_config(str(control_plane.kubeconfig))
    # The session from_config gives the operator (whose idle connections an API server restart
    # kills).
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    c = ObservedClient(config, session, qps=0)
    yield c
    await c.close()


class Recorder:
    """Handler callbacks recorded as (kind, name); waits on a condition instead of sleeping."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

    def add(self, obj: Obj) -> None:
        self._record("add", obj)

    def update(self, old: Obj, new: Obj) -> None:
        self._record("update", new)

    def delete(self, obj: Obj) -> None:
        self._record("delete", obj)

    def _record(self, kind: str, obj: Obj) -> None:
        self.events.append((kind, obj["metadata"]["name"]))
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], within: float = WAIT) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), within)

    def count(self, kind: str, name: str) -> int:
        return self.events.count((kind, name))


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[Recorder]:
    rec = Recorder()
    informer.add_handler(rec.add, rec.update, rec.delete)
    task = asyncio.create_task(informer.run())
    try:
        assert await informer.wait_synced(WAIT)
        yield rec
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def configmap(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def assert_store_matches_server(
    client: ApiClient, informer: Informer, namespace: str, label_selector: str | None = None
) -> None:
    items, _ = await client.list_all(informer.res, namespace, label_selector=label_selector)
    server = {object_key(o): o["metadata"]["resourceVersion"] for o in items}
    cached = {object_key(o): o["metadata"]["resourceVersion"] for o in informer.store.list()}
    assert cached == server


async def test_list_watch_and_bookmarks(client: ObservedClient, namespace: str) -> None:
    for name in ("a", "b"):
        await client.create(CONFIGMAPS, configmap(name, v="0"), namespace)
    informer = Informer(client, CONFIGMAPS, namespace=namespace, watch_timeout=(5, 5))
    async with running(informer) as rec:
        # The namespace also holds kube-root-ca.crt, published by the controller-manager.
        assert {"a", "b"} <= {n for kind, n in rec.events if kind == "add"}
        listed_rv = int(informer.last_sync_resource_version)

        await client.create(CONFIGMAPS, configmap("c"), namespace)
        await client.patch(CONFIGMAPS, "a", {"data": {"v": "1"}}, namespace)
        await client.delete(CONFIGMAPS, "b", namespace)
        await rec.until(lambda: rec.count("delete", "b") == 1)
        assert rec.count("add", "c") == 1
        assert rec.count("update", "a") == 1
        stored = informer.store.get_by_name(namespace, "a")
        assert stored is not None
        assert stored["data"] == {"v": "1"}
        assert "managedFields" not in stored["metadata"]
        last_event_rv = int(informer.last_sync_resource_version)
        assert last_event_rv > listed_rv

        # A change outside the watched namespace moves the resource's version; the informer only
        # learns it from a bookmark (this watch carries no event for it).
        other = await client.create(CONFIGMAPS, configmap(f"elsewhere-{namespace}"), "default")
        try:
            other_rv = int(other["metadata"]["resourceVersion"])
            await client.until(lambda: int(informer.last_sync_resource_version) >= other_rv)
        finally:
            await client.delete(CONFIGMAPS, f"elsewhere-{namespace}", "default")
        assert client.event_types["BOOKMARK"] > 0
        assert rec.count("add", f"elsewhere-{namespace}") == 0
        # The 5 s watches ended and were resumed from the last resourceVersion, without a relist.
        await client.until(lambda: client.watch_calls >= 2)
        assert informer.lists == 1
        await assert_store_matches_server(client, informer, namespace)


async def compact_etcd(control_plane: Any, revision: str) -> None:
    """Compact etcd up to ``revision`` through its JSON gateway (what the API server does every
    few minutes), so older resourceVersions are gone for watches served from etcd."""
    ports = getattr(control_plane, "ports", None)
    if not ports or "etcd" not in ports:
        pytest.skip("needs the local control plane's etcd")
    url = f"http://127.0.0.1:{ports['etcd']}/v3/kv/compaction"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"revision": revision, "physical": True}) as response,
    ):
        assert response.status == 200, await response.text()


def event(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "labels": {"test": "informer-410"}},
        "involvedObject": {
            "kind": "ConfigMap",
            "name": "x",
            "namespace": namespace,
            "apiVersion": "v1",
        },
        "reason": "Testing",
        "message": "m",
        "type": "Normal",
    }


async def test_forced_410_relists_without_losing_or_duplicating(
    client: ObservedClient, control_plane: Any, namespace: str
) -> None:
    # Core Events have no watch cache in kube-apiserver: their watches are served by etcd, so
    # compacting etcd makes an older resourceVersion really "too old" (410 Expired).
    selector = "test=informer-410"
    for name in ("a", "b", "c"):
        await client.create(EVENTS, event(name, namespace), namespace)
    informer = Informer(
        client, EVENTS, namespace=namespace, label_selector=selector, watch_timeout=(2, 2)
    )
    async with running(informer) as rec:
        assert sorted(rec.events) == [("add", "a"), ("add", "b"), ("add", "c")]
        # Hold the informer's next watch, change things behind its back, compact history.
        client.gate = asyncio.Event()
        gate = client.gate
        await asyncio.wait_for(client.parked.wait(), WAIT)
        await client.delete(EVENTS, "a", namespace)
        await client.patch(EVENTS, "b", {"message": "changed"}, namespace)
        await client.create(EVENTS, event("d", namespace), namespace)
        _, current = await client.list_all(EVENTS, namespace, label_selector=selector)
        await compact_etcd(control_plane, current)
        gate.set()

        await rec.until(lambda: informer.lists == 2 and rec.count("add", "d") == 1)
        assert rec.count("delete", "a") == 1  # synthesised: the watch never saw it
        assert rec.count("update", "b") == 1
        for name in "abcd":
            assert rec.count("add", name) == 1, name  # nothing added twice
        assert rec.count("update", "c") == 0  # unchanged objects are not re-notified
        await assert_store_matches_server(client, informer, namespace, selector)
        assert sorted(o["metadata"]["name"] for o in informer.store.list()) == ["b", "c", "d"]


async def test_recovers_after_apiserver_restart(
    client: ObservedClient, control_plane: Any, namespace: str
) -> None:
    if not hasattr(control_plane, "restart_apiserver"):
        pytest.skip("needs the local control plane")
    for name in ("keep", "gone"):
        await client.create(CONFIGMAPS, configmap(name), namespace)
    informer = Informer(client, CONFIGMAPS, namespace=namespace)
    async with running(informer) as rec:
        watches = client.request_counts[("watch", "configmaps")]
        await asyncio.to_thread(control_plane.restart_apiserver)
        await client.create(CONFIGMAPS, configmap("after"), namespace)
        await client.delete(CONFIGMAPS, "gone", namespace)
        await rec.until(
            lambda: rec.count("add", "after") == 1 and rec.count("delete", "gone") == 1,
            within=90,
        )
        assert client.request_counts[("watch", "configmaps")] > watches
        for name in ("keep", "gone", "after"):
            assert rec.count("add", name) == 1, name
        await assert_store_matches_server(client, informer, namespace)
