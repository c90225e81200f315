"""The API client and the informer against a small fake API server (in-process aiohttp).

The fake serves one namespaced collection (ConfigMaps in ``ns``): paginated LIST, a WATCH stream
whose events the test pushes explicitly, and scripted failures (5xx, 410, 429, malformed lines).
Time is a FakeClock: backoff and resync delays are asserted and advanced, never slept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from kubernetes_asyncio.client import Configuration

from agentic_operator.clock import FakeClock, settle
from agentic_operator.kube import errors
from agentic_operator.kube.client import ApiClient, WatchLineSplitter
from agentic_operator.kube.codec import decode_watch_line
from agentic_operator.kube.config import KubeConfig
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.informer import LAST_APPLIED, Informer, prune_object
from agentic_operator.runtime.store import CompactStore, Store, Upsert

CM = Resource("", "v1", "configmaps", "ConfigMap")
NS = "ns"
WAIT = 5.0  # generous bound for real socket round trips; never a synchronisation sleep


class RecordingClock(FakeClock):
    """FakeClock that remembers requested sleeps and signals when someone starts sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []
        self._sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._sleeping.set()
        await super().sleep(seconds)

    async def next_sleep(self) -> float:
        """Wait until a task starts sleeping on this clock; return the requested duration."""
        await asyncio.wait_for(self._sleeping.wait(), WAIT)
        self._sleeping.clear()
        return self.slept[-1]


def cm(name: str, rv: int, **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": NS,
            "resourceVersion": str(rv),
            "uid": f"uid-{name}",
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}],
            "annotations": {LAST_APPLIED: '{"big": "blob"}', "keep": "me"},
        },
        "data": data,
    }


@dataclass
class FakeApi:
    """Scriptable stand-in for the API server's ConfigMap endpoints."""

    objects: dict[str, Obj] = field(default_factory=dict)
    rv: int = 100
    requests: list[tuple[str, str, dict[str, str], bytes, str | None]] = field(default_factory=list)
    watchers: list[asyncio.Queue[bytes | None]] = field(default_factory=list)
    # Scripted answers, consumed in order per verb: (status, body, headers).
    fail: dict[str, list[tuple[int, Obj, dict[str, str]]]] = field(default_factory=dict)
    watch_opened: asyncio.Condition = field(default_factory=asyncio.Condition)
    watches_opened: int = 0
    url: str = ""

    def set(self, name: str, emit: bool = True, **data: str) -> Obj:
        self.rv += 1
        event = "MODIFIED" if name in self.objects else "ADDED"
        obj = cm(name, self.rv, **data)
        self.objects[name] = obj
        if emit:
            self.emit(event, obj)
        return obj

    def remove(self, name: str, emit: bool = True) -> None:
        self.rv += 1
        obj = self.objects.pop(name)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if emit:
            self.emit("DELETED", obj)

    def emit(self, event_type: str, obj: Obj) -> None:
        self.emit_raw(orjson.dumps({"type": event_type, "object": obj}) + b"\n")

    def emit_raw(self, data: bytes) -> None:
        for q in self.watchers:
            q.put_nowait(data)

    def end_watches(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)

    async def wait_watches(self, count: int) -> None:
        async with self.watch_opened:
            await asyncio.wait_for(
                self.watch_opened.wait_for(lambda: self.watches_opened >= count), WAIT
            )

    def scripted(self, verb: str) -> web.Response | None:
        queue = self.fail.get(verb)
        if not queue:
            return None
        status, body, headers = queue.pop(0)
        return web.json_response(body, status=status, headers=headers)

    def last(self, verb: str) -> dict[str, str]:
        return next(p for v, _, p, _, _ in reversed(self.requests) if v == verb)

    async def collection(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        watching = params.get("watch") == "true"
        verb = "watch" if watching else "list"
        self.requests.append((verb, request.path, params, b"", None))
        scripted = self.scripted(verb)
        if scripted is not None:
            return scripted
        if watching:
            return await self._watch(request)
        names = sorted(self.objects)
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0) or len(names)
        page = names[start : start + limit]
        meta: Obj = {"resourceVersion": str(self.rv)}
        if start + limit < len(names):
            meta["continue"] = str(start + limit)
        items = []
        for name in page:
            item = orjson.loads(orjson.dumps(self.objects[name]))
            items.append(item)  # Lists carry items without apiVersion/kind.
        return web.json_response(
            {"kind": "ConfigMapList", "apiVersion": "v1", "metadata": meta, "items": items},
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.watchers.append(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        async with self.watch_opened:
            self.watches_opened += 1
            self.watch_opened.notify_all()
        try:
            while (data := await queue.get()) is not None:
                await response.write(data)
        finally:
            self.watchers.remove(queue)
        return response

    async def item(self, request: web.Request) -> web.Response:
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(
            request.method, "delete"
        )
        body = await request.read()
        self.requests.append(
            (verb, request.path, dict(request.query), body, request.headers.get("Content-Type"))
        )
        scripted = self.scripted(verb)
        if scripted is not None:
            return scripted
        name = request.match_info.get("name", "")
        if verb == "delete":
            return web.json_response({"kind": "Status", "status": "Success"})
        if verb == "get" and name not in self.objects:
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound", "message": f"{name} gone"},
                status=404,
            )
        echoed = orjson.loads(body or b"{}")
        return web.json_response(
            self.objects.get(name) or (echoed if isinstance(echoed, dict) else {"kind": name})
        )


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    app = web.Application()
    base = f"/api/v1/namespaces/{NS}/configmaps"
    app.router.add_get(base, fake.collection)
    app.router.add_post(base, fake.item)
    app.router.add_route("*", base + "/{name}", fake.item)
    app.router.add_route("*", base + "/{name}/{sub}", fake.item)
    runner, port = await serve(app)
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.end_watches()
    await runner.cleanup()


@pytest.fixture
def clock() -> RecordingClock:
    return RecordingClock()


@pytest.fixture
async def client(api: FakeApi, clock: RecordingClock) -> AsyncIterator[ApiClient]:
    import aiohttp

    config = KubeConfig(host=api.url, source="test", configuration=Configuration())
    session = aiohttp.ClientSession()
    c = ApiClient(config, session, qps=0, clock=clock, max_read_retries=2)
    yield c
    await c.close()


def status(code: int, reason: str, **extra: Any) -> Obj:
    return {"kind": "Status", "code": code, "reason": reason, "message": reason, **extra}


# -- client ----------------------------------------------------------------------------------------


async def test_get_decodes_and_counts(api: FakeApi, client: ApiClient) -> None:
    api.set("a", x="1")
    labels = {"verb": "get", "resource": "configmaps", "code": "200"}
    before = REGISTRY.get_sample_value("rest_client_requests_total", labels) or 0.0
    obj = await client.get(CM, "a", NS)
    assert obj["data"] == {"x": "1"}
    assert client.request_counts[("get", "configmaps")] == 1
    assert REGISTRY.get_sample_value("rest_client_requests_total", labels) == before + 1
    with pytest.raises(errors.NotFound, match="b gone"):
        await client.get(CM, "b", NS)


async def test_reads_retry_transient_errors_honouring_retry_after(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.set("a", x="1")
    api.fail["get"] = [
        (503, status(503, "ServiceUnavailable"), {}),
        (429, status(429, "TooManyRequests"), {"Retry-After": "7"}),
    ]
    task = asyncio.create_task(client.get(CM, "a", NS))
    first = await clock.next_sleep()
    assert 0.16 <= first <= 0.24  # 0.2 s * jitter
    await clock.advance(first)
    assert await clock.next_sleep() == 7.0  # Retry-After wins over the backoff
    await clock.advance(7)
    assert (await asyncio.wait_for(task, WAIT))["data"] == {"x": "1"}
    assert client.request_counts[("get", "configmaps")] == 3


async def test_reads_give_up_after_max_retries(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.fail["get"] = [(500, status(500, "InternalError"), {})] * 3
    task = asyncio.create_task(client.get(CM, "a", NS))
    for _ in range(2):
        await clock.advance(await clock.next_sleep())
    with pytest.raises(errors.ServerError):
        await asyncio.wait_for(task, WAIT)
    assert client.request_counts[("get", "configmaps")] == 3


async def test_writes_not_retried_except_on_429(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.fail["create"] = [(503, status(503, "ServiceUnavailable"), {})]
    with pytest.raises(errors.ServerError):
        await asyncio.wait_for(client.create(CM, {"metadata": {"name": "a"}}, NS), WAIT)
    assert client.request_counts[("create", "configmaps")] == 1
    assert clock.slept == []

    api.fail["patch"] = [(429, status(429, "TooManyRequests"), {"Retry-After": "2"})]
    task = asyncio.create_task(client.patch(CM, "a", {"data": {"k": "v"}}, NS))
    assert await clock.next_sleep() == 2.0
    await clock.advance(2)
    await asyncio.wait_for(task, WAIT)
    assert client.request_counts[("patch", "configmaps")] == 2


async def test_typed_errors_from_writes(api: FakeApi, client: ApiClient) -> None:
    api.fail["create"] = [(409, status(409, "AlreadyExists"), {})]
    with pytest.raises(errors.AlreadyExists):
        await client.create(CM, {"metadata": {"name": "a"}}, NS)
    causes = [{"field": "data", "reason": "FieldValueTooLong", "message": "too long"}]
    api.fail["update"] = [(422, status(422, "Invalid", details={"causes": causes}), {})]
    with pytest.raises(errors.Invalid) as info:
        await client.replace(CM, "a", {"metadata": {"name": "a"}}, NS)
    assert info.value.fields == ["data"]


@pytest.mark.parametrize(
    ("patch_type", "content_type", "params"),
    [
        ("merge", "application/merge-patch+json", {}),
        ("json", "application/json-patch+json", {}),
        ("strategic", "application/strategic-merge-patch+json", {}),
        ("apply", "application/apply-patch+yaml", {"fieldManager": "op", "force": "true"}),
    ],
)
async def test_patch_types(
    api: FakeApi, client: ApiClient, patch_type: Any, content_type: str, params: dict[str, str]
) -> None:
    body: Any = [{"op": "add", "path": "/data/k", "value": "v"}] if patch_type == "json" else {}
    await client.patch(CM, "a", body, NS, patch_type=patch_type, field_manager="op", force=True)
    verb, path, query, raw, ctype = api.requests[-1]
    assert (verb, path, ctype) == ("patch", f"/api/v1/namespaces/{NS}/configmaps/a", content_type)
    assert query == (params or {"fieldManager": "op"})
    assert orjson.loads(raw) == body


async def test_apply_needs_field_manager(client: ApiClient) -> None:
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(CM, "a", {}, NS, patch_type="apply")


async def test_delete_options_and_status_answer(api: FakeApi, client: ApiClient) -> None:
    result = await client.delete(
        CM,
        "a",
        NS,
        propagation_policy="Foreground",
        preconditions={"uid": "u1"},
        grace_period_seconds=0,
    )
    assert result is None
    assert orjson.loads(api.requests[-1][3]) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u1"},
        "gracePeriodSeconds": 0,
    }


async def test_status_subresource_path_and_raw_request_labels(
    api: FakeApi, client: ApiClient
) -> None:
    await client.replace(CM, "a", {"metadata": {"name": "a"}}, NS, subresource="status")
    assert api.requests[-1][:2] == ("update", f"/api/v1/namespaces/{NS}/configmaps/a/status")
    await client.request("PATCH", f"/api/v1/namespaces/{NS}/configmaps/a", body={})
    assert client.request_counts[("patch", "configmaps")] == 1


async def test_list_all_pages_and_fills_kind(api: FakeApi, client: ApiClient) -> None:
    for i in range(5):
        api.set(f"o{i}", emit=False)
    items, rv = await client.list_all(CM, NS, page_size=2)
    assert [i["metadata"]["name"] for i in items] == ["o0", "o1", "o2", "o3", "o4"]
    assert {(i["kind"], i["apiVersion"]) for i in items} == {("ConfigMap", "v1")}
    assert rv == str(api.rv)
    assert client.request_counts[("list", "configmaps")] == 3
    assert [p.get("continue") for v, _, p, _, _ in api.requests] == [None, "2", "4"]


async def test_list_all_restarts_unpaginated_when_continue_expires(
    api: FakeApi, client: ApiClient
) -> None:
    for i in range(3):
        api.set(f"o{i}", emit=False)
    # First page fine, second page: the continue token expired.
    original = api.scripted

    def scripted(verb: str) -> web.Response | None:
        if verb == "list" and api.requests[-1][2].get("continue"):
            return web.json_response(status(410, "Expired"), status=410)
        return original(verb)

    api.scripted = scripted  # type: ignore[method-assign]
    items, _ = await client.list_all(CM, NS, page_size=2)
    assert len(items) == 3
    assert "limit" not in api.requests[-1][2]


async def test_watch_stream_decoding(api: FakeApi, client: ApiClient) -> None:
    events: list[tuple[str, Obj]] = []

    async def consume() -> None:
        async for ev in client.watch(CM, NS, resource_version="5", timeout_seconds=300):
            events.append(ev)

    task = asyncio.create_task(consume())
    await api.wait_watches(1)
    params = api.last("watch")
    assert params == {
        "watch": "true",
        "resourceVersion": "5",
        "timeoutSeconds": "300",
        "allowWatchBookmarks": "true",
    }
    big = cm("big", 7, blob="x" * 200_000)  # larger than aiohttp's 64 KiB line limit
    line = orjson.dumps({"type": "ADDED", "object": big}) + b"\n"
    api.emit_raw(line[:1000])
    api.emit_raw(line[1000:] + b"not json\n[1,2]\n" + b'{"type": "ADDED"}\n')
    api.emit("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    api.end_watches()
    await asyncio.wait_for(task, WAIT)
    assert [t for t, _ in events] == ["ADDED", "BOOKMARK"]
    assert events[0][1]["data"]["blob"] == "x" * 200_000
    assert client.request_counts[("watch", "configmaps")] == 1


async def test_watch_error_event_raises_gone(api: FakeApi, client: ApiClient) -> None:
    async def consume() -> None:
        async for _ in client.watch(CM, NS, resource_version="1", timeout_seconds=300):
            pass

    task = asyncio.create_task(consume())
    await api.wait_watches(1)
    api.emit("ERROR", status(410, "Expired", message="too old resource version: 1 (100)"))
    with pytest.raises(errors.Gone, match="too old"):
        await asyncio.wait_for(task, WAIT)


async def test_silent_watch_stream_is_detected(api: FakeApi, client: ApiClient) -> None:
    watch = client.watch(CM, NS, resource_version="1", timeout_seconds=300, inactivity_timeout=0.2)
    with pytest.raises(errors.RequestTimeout, match="presumed dead"):
        async for _ in watch:
            pass


async def test_connection_refused_is_transport_error(clock: RecordingClock) -> None:
    import aiohttp

    config = KubeConfig(host="http://127.0.0.1:9", source="t", configuration=Configuration())
    async with ApiClient(
        config, aiohttp.ClientSession(), qps=0, clock=clock, max_read_retries=0
    ) as c:
        with pytest.raises(errors.TransportError):
            await c.get(CM, "a", NS)
        assert c.request_counts[("get", "configmaps")] == 1


async def test_client_rate_limit(api: FakeApi, clock: RecordingClock) -> None:
    import aiohttp

    api.set("a", emit=False)
    config = KubeConfig(host=api.url, source="t", configuration=Configuration())
    async with ApiClient(config, aiohttp.ClientSession(), qps=10, burst=2, clock=clock) as c:
        await c.get(CM, "a", NS)
        await c.get(CM, "a", NS)
        assert clock.slept == []  # the burst
        task = asyncio.create_task(c.get(CM, "a", NS))
        assert await clock.next_sleep() == pytest.approx(0.1)
        await settle()
        assert not task.done()
        await clock.advance(0.1)
        await asyncio.wait_for(task, WAIT)


def test_line_splitter_and_decoder() -> None:
    s = WatchLineSplitter()
    assert s.feed(b'{"type":"ADDED","object":{"a"') == []
    assert s.feed(b":1}}\n\n{") == [b'{"type":"ADDED","object":{"a":1}}', b""]
    assert s.rest() == b"{"
    assert decode_watch_line(b'{"type":"ADDED","object":{"a":1}}') == ("ADDED", {"a": 1})
    for bad in (b"", b"  ", b"{", b"[]", b'{"type":1,"object":{}}', b'{"type":"X","object":[]}'):
        assert decode_watch_line(bad) is None


# -- store -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("store_cls", [Store, CompactStore])
def test_store_index(store_cls: type[Store]) -> None:
    s = store_cls()
    a, b = cm("a", 1), cm("b", 2)
    other = cm("c", 3)
    other["metadata"]["namespace"] = "other"
    node = {"metadata": {"name": "n1", "resourceVersion": "4"}}
    for obj in (a, b, other, node):
        assert s.upsert(obj) == Upsert(existed=False, changed=True, old=None)
    assert len(s) == 4
    assert s.get("ns/a") == a
    assert s.get_by_name("other", "c") == other
    assert s.get("n1") == node
    assert s.get("ns/zz") is None
    assert "ns/b" in s
    assert {o["metadata"]["name"] for o in s.by_namespace(NS)} == {"a", "b"}
    assert s.upsert(cm("a", 1)) == Upsert(existed=True, changed=False, old=None)
    changed = s.upsert(cm("a", 5), need_old=True)
    assert changed.existed
    assert changed.changed
    assert changed.old == a
    assert s.delete("ns/b") == b
    assert s.delete("ns/b") is None
    assert [o["metadata"]["name"] for o in s.by_namespace(NS)] == ["a"]
    changes = s.replace({"other/c": other, "ns/new": cm("new", 9), "n1": cm("n1", 10)})
    assert changes == {
        "ns/new": None,  # new
        "n1": node,  # changed: previous version
        "ns/a": cm("a", 5),  # vanished: last version
    }
    assert s.by_namespace(NS) == [cm("new", 9)]
    assert sorted(s.keys()) == ["n1", "ns/new", "other/c"]


def test_store_read_semantics() -> None:
    plain, compact = Store(), CompactStore()
    obj = cm("a", 1)
    plain.put(obj)
    compact.put(obj)
    assert plain.get("ns/a") is obj  # the stored dict itself: free, but read-only by contract
    copy = compact.get("ns/a")
    assert copy == obj
    assert copy is not compact.get("ns/a")  # fresh copies: a reader cannot corrupt the cache
    assert copy is not None
    copy["data"] = {"mutated": "yes"}
    assert compact.get("ns/a") == obj


def test_prune_object() -> None:
    obj = prune_object(cm("a", 1))
    assert "managedFields" not in obj["metadata"]
    assert obj["metadata"]["annotations"] == {"keep": "me"}
    assert prune_object({"metadata": {}}) == {"metadata": {}}


# -- informer --------------------------------------------------------------------------------------


@dataclass
class Recorder:
    events: list[tuple[str, str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, obj: Obj) -> None:
        self._record("add", obj)

    def update(self, old: Obj, new: Obj) -> None:
        self._record("update", new, old)

    def delete(self, obj: Obj) -> None:
        self._record("delete", obj)

    def _record(self, kind: str, obj: Obj, old: Obj | None = None) -> None:
        rv = obj["metadata"]["resourceVersion"]
        if old is not None:
            rv = f"{old['metadata']['resourceVersion']}->{rv}"
        self.events.append((kind, obj["metadata"]["name"], rv))
        self.arrived.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), WAIT)

    def take(self) -> list[tuple[str, str, str]]:
        out, self.events = self.events, []
        return out


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_informer(client: ApiClient, clock: RecordingClock, **kw: Any) -> tuple[Informer, Recorder]:
    rec = Recorder()
    inf = Informer(client, CM, namespace=NS, clock=clock, page_size=2, **kw)
    inf.add_handler(rec.add, rec.update, rec.delete)
    return inf, rec


async def synced(inf: Informer, api: FakeApi, watches: int = 1) -> None:
    assert await inf.wait_synced(WAIT)
    await api.wait_watches(watches)


@pytest.mark.parametrize("compact", [True, False])
async def test_list_then_watch(
    api: FakeApi, client: ApiClient, clock: RecordingClock, compact: bool
) -> None:
    for name in "abc":
        api.set(name, emit=False, v="0")
    inf, rec = make_informer(client, clock, compact=compact)
    assert not inf.has_synced()
    async with running(inf):
        await synced(inf, api)
        assert rec.take() == [("add", "a", "101"), ("add", "b", "102"), ("add", "c", "103")]
        assert inf.last_sync_resource_version == "103"
        assert [v for v, *_ in api.requests] == ["list", "list", "watch"]  # 2 pages, then watch
        params = api.last("watch")
        assert params["resourceVersion"] == "103"
        assert params["allowWatchBookmarks"] == "true"
        assert 300 <= int(params["timeoutSeconds"]) <= 600
        stored = inf.store.get("ns/a")
        assert stored is not None
        assert "managedFields" not in stored["metadata"]
        assert stored["metadata"]["annotations"] == {"keep": "me"}
        assert stored["kind"] == "ConfigMap"

        api.set("d", v="1")
        api.set("a", v="2")
        same_rv = dict(api.objects["b"])
        api.emit("MODIFIED", same_rv)  # no change: no update callback
        api.emit_raw(b"{garbage\n")
        api.emit("WHATEVER", cm("x", 1))
        api.emit("ADDED", {"metadata": {"resourceVersion": "1"}})  # no name
        api.remove("c")
        api.emit("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "200"}})
        await rec.until(lambda: len(rec.events) >= 3)
        assert rec.take() == [
            ("add", "d", "104"),
            ("update", "a", "101->105"),
            ("delete", "c", "106"),
        ]
        assert sorted(inf.store.keys()) == ["ns/a", "ns/b", "ns/d"]
        stored_a = inf.store.get("ns/a")
        assert stored_a is not None
        assert stored_a["data"] == {"v": "2"}

        # Normal end of the watch: watch again from the bookmark, no relist.
        api.end_watches()
        await api.wait_watches(2)
        assert inf.last_sync_resource_version == "200"
        assert api.last("watch")["resourceVersion"] == "200"
        assert inf.lists == 1
        assert rec.take() == []


@pytest.mark.parametrize(("how", "compact"), [("event", True), ("http", True), ("event", False)])
async def test_gone_relists_and_diffs(
    api: FakeApi, client: ApiClient, clock: RecordingClock, how: str, compact: bool
) -> None:
    for name in "abc":
        api.set(name, emit=False)
    inf, rec = make_informer(client, clock, compact=compact)
    async with running(inf):
        await synced(inf, api)
        rec.take()
        slept = len(clock.slept)
        # Changes the informer does not see as events...
        api.remove("a", emit=False)
        api.set("b", emit=False, v="new")
        api.set("d", emit=False)
        # ...then the watch expires.
        if how == "event":
            api.emit("ERROR", status(410, "Expired", message="too old resource version"))
        else:
            # The watch ends normally, and re-watching from its resourceVersion answers 410.
            api.emit("BOOKMARK", {"metadata": {"resourceVersion": "103"}})
            api.fail["watch"] = [(410, status(410, "Gone"), {})]
            api.end_watches()
        await api.wait_watches(2)
        assert inf.lists == 2
        events = rec.take()
        assert sorted(events) == [
            ("add", "d", "106"),
            ("delete", "a", "101"),
            ("update", "b", "102->105"),
        ]
        assert sorted(inf.store.keys()) == ["ns/b", "ns/c", "ns/d"]
        assert api.last("watch")["resourceVersion"] == "106"
        assert clock.slept[slept:] == []  # a relist after 410 does not back off


async def test_backoff_while_api_fails(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.set("a", emit=False)
    # The client retries reads twice itself; the informer sees the third failure.
    api.fail["list"] = [(503, status(503, "ServiceUnavailable"), {})] * 6
    inf, rec = make_informer(client, clock)
    async with running(inf):
        informer_delays = []
        for _ in range(2):  # two failed informer-level attempts of 3 requests each
            for _ in range(2):
                await clock.advance(await clock.next_sleep())  # client-level retries
            informer_delays.append(await clock.next_sleep())
            await clock.advance(informer_delays[-1])
        await synced(inf, api)
        assert 0.4 <= informer_delays[0] <= 0.8
        assert 0.8 <= informer_delays[1] <= 1.6
        assert rec.take() == [("add", "a", "101")]

        # A watch that fails with 5xx is retried from the same resourceVersion, without a list,
        # and the backoff starts short again after a productive watch.
        api.emit("BOOKMARK", {"metadata": {"resourceVersion": "150"}})
        api.fail["watch"] = [(500, status(500, "InternalError"), {})]
        api.end_watches()
        delay = await clock.next_sleep()
        assert 0.4 <= delay <= 0.8
        await clock.advance(delay)
        await api.wait_watches(2)
        assert inf.lists == 1
        assert api.last("watch")["resourceVersion"] == "150"


async def test_immediately_closed_watches_back_off(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    inf, _ = make_informer(client, clock)
    async with running(inf):
        await synced(inf, api)
        api.end_watches()
        delay = await clock.next_sleep()
        assert delay > 0
        await clock.advance(delay)
        await api.wait_watches(2)


async def test_handler_errors_do_not_stop_the_informer(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    def broken(obj: Obj) -> None:
        raise RuntimeError("handler bug")

    inf = Informer(client, CM, namespace=NS, clock=clock)
    inf.add_handler(on_add=broken)
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    async with running(inf) as task:
        await synced(inf, api)
        api.set("a")
        api.set("b")
        await rec.until(lambda: len(rec.events) == 2)
        assert not task.done()


async def test_late_handler_gets_existing_objects_and_resync(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.set("a", emit=False)
    api.set("b", emit=False)
    inf = Informer(client, CM, namespace=NS, clock=clock, resync_period=60)
    async with running(inf):
        await synced(inf, api)
        rec = Recorder()
        inf.add_handler(rec.add, rec.update, rec.delete)
        assert sorted(rec.take()) == [("add", "a", "101"), ("add", "b", "102")]
        await clock.advance(59)
        assert rec.take() == []
        await clock.advance(1)
        assert sorted(rec.take()) == [("update", "a", "101->101"), ("update", "b", "102->102")]


async def test_wait_synced_times_out_on_the_clock(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    inf, _ = make_informer(client, clock)
    waiter = asyncio.create_task(inf.wait_synced(10))
    assert await clock.next_sleep() == 10
    await clock.advance(9)
    assert not waiter.done()
    await clock.advance(1)
    assert await asyncio.wait_for(waiter, WAIT) is False
    async with running(inf):
        assert await inf.wait_synced(10) is True
        assert inf.has_synced()


async def test_forbidden_list_keeps_retrying_unsynced(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.fail["list"] = [(403, status(403, "Forbidden"), {})] * 2
    inf, _ = make_informer(client, clock)
    async with running(inf):
        for _ in range(2):
            assert not inf.has_synced()
            await clock.advance(await clock.next_sleep())  # not retried by the client: backoff
        assert await inf.wait_synced(WAIT)
        assert client.request_counts[("list", "configmaps")] == 3


async def test_transform_applies_and_failures_skip_object(
    api: FakeApi, client: ApiClient, clock: RecordingClock
) -> None:
    api.set("a", emit=False, v="1")
    api.set("bad", emit=False)

    def transform(obj: Obj) -> Obj:
        if obj["metadata"]["name"] == "bad":
            raise ValueError("nope")
        return {"metadata": obj["metadata"], "only": obj["data"]["v"]}

    inf, _ = make_informer(client, clock, transform=transform)
    async with running(inf):
        await synced(inf, api)
        assert inf.store.keys() == ["ns/a"]
        stored = inf.store.get("ns/a")
        assert stored is not None
        assert stored["only"] == "1"
        assert "data" not in stored
