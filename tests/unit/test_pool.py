"""The keep-alive pool (kube/pool.py) under the client, against a raw asyncio server that answers
with exactly the bytes each test scripts: Go's re-send rule per method and per failure point,
keep-alive reuse, framing (llhttp's), malformed answers, timeouts, ``Connection: close``, idle
connections. The same over TLS on uvloop (the operator's set-up): tests/unit/test_pool_uvloop.py."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from kubernetes_asyncio.client import Configuration

from agentic_operator.clock import FakeClock
from agentic_operator.kube import errors
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.config import KubeConfig
from agentic_operator.kube.pool import (
    IDLE_TIMEOUT,
    MAX_HEAD,
    REPLAYABLE_METHODS,
    ConnectionDropped,
    ConnectionPool,
    _Connection,
    may_resend,
)
from tests.unit.rawserver import FRAMINGS, OK_JSON, PATH, Handler, Server, answers

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
METHODS = ["GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Client:
    api: ApiClient
    pool: ConnectionPool
    clock: FakeClock


def make_client(
    server: Server, request_timeout: float = 5.0, context: ssl.SSLContext | None = None
) -> Client:
    """An ApiClient whose requests go through a pool (``context``: the client's TLS settings)."""
    clock = FakeClock()  # any backoff sleep would hang: none may happen here
    config = KubeConfig(
        host=server.url, source="test", configuration=Configuration(), ssl_context=context
    )
    pool = ConnectionPool(server.url, lambda: context, clock=clock)
    api = ApiClient(
        config,
        aiohttp.ClientSession(),
        qps=0,
        clock=clock,
        max_read_retries=0,
        request_timeout=request_timeout,
        pool=pool,
    )
    return Client(api, pool, clock)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(server: Server, request_timeout: float = 5.0) -> Client:
        clients.append(make_client(server, request_timeout))
        return clients[-1]

    yield make
    for client in clients:
        await client.api.close()


def answer(method: str) -> bytes:
    return OK_HEAD if method == "HEAD" else OK_JSON


async def send(client: Client, method: str) -> dict[str, object]:
    body = {"metadata": {"name": "x"}} if method in ("POST", "PUT", "PATCH") else None
    return await client.api.request(method, PATH, body=body)


# -- re-sending -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "written", "answered", "reused", "resend"),
    [
        # Nothing of it written: any method, any connection.
        ("POST", False, False, False, True),
        ("PATCH", False, False, True, True),
        ("DELETE", False, False, True, True),
        # Written, on a reused connection, no byte of the answer: only the replayable methods.
        ("GET", True, False, True, True),
        ("HEAD", True, False, True, True),
        ("OPTIONS", True, False, True, True),
        ("TRACE", True, False, True, True),
        ("POST", True, False, True, False),
        ("PUT", True, False, True, False),
        ("PATCH", True, False, True, False),
        ("DELETE", True, False, True, False),
        # A fresh connection has no idle-timeout race to excuse it; an answer had begun.
        ("GET", True, False, False, False),
        ("GET", True, True, True, False),
        ("POST", True, True, True, False),
    ],
)
def test_go_resend_rule(
    method: str, written: bool, answered: bool, reused: bool, resend: bool
) -> None:
    dropped = ConnectionDropped("x", written=written, answered=answered, reused=reused)
    assert may_resend(method, dropped) is resend


def test_replayable_methods_are_gos() -> None:
    assert {"GET", "HEAD", "OPTIONS", "TRACE"} == REPLAYABLE_METHODS


def fail_at(point: str, reused: bool) -> Handler:
    """First connection: answer one GET (when ``reused``), then end the connection at ``point``
    of the next request. Later connections answer everything."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        if server.connections == 1:
            if reused:
                await server.read_request(reader)
                writer.write(OK_JSON)
                await writer.drain()
            if point == "request-in-part":
                await server.read_part(reader)
                return
            await server.read_request(reader)
            if point == "answer-head-in-part":
                writer.write(OK_JSON[:30])
            elif point == "answer-body-in-part":
                writer.write(OK_JSON[:-3])
            return
        while (request := await server.read_request(reader)) is not None:
            writer.write(answer(request.split(b" ", 1)[0].decode()))
            await writer.drain()

    return handler


POINTS = ["request-in-part", "request-whole", "answer-head-in-part", "answer-body-in-part"]


@pytest.mark.parametrize("reused", [True, False], ids=["reused", "fresh"])
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("method", METHODS)
async def test_connection_ends_after_the_request_was_written(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., Client],
    method: str,
    point: str,
    reused: bool,
) -> None:
    server = await serve(fail_at(point, reused))
    client = connect(server)
    before = ["GET"] if reused else []
    if reused:
        await client.api.request("GET", PATH)
    if method == "HEAD" and point == "answer-body-in-part":
        assert await send(client, method) == {}  # the answer to a HEAD ends with its head
        return
    resent = method in REPLAYABLE_METHODS and reused and point.startswith("request")
    if resent:
        assert await send(client, method) == ({} if method == "HEAD" else {"a": 1})
        assert server.methods() == [*before, method, method]  # once more, on a new connection
        assert server.connections == 2
        return
    with pytest.raises(errors.TransportError) as failed:
        await send(client, method)
    assert server.methods() == [*before, method]  # once, and never again
    assert server.connections == 1
    applied = "may have been applied" in str(failed.value)
    assert applied is (method not in REPLAYABLE_METHODS)
    if applied:
        assert f"a {method} is not sent twice" in str(failed.value)


def answer_then_hang_up(raw: bytes) -> Handler:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while (request := await server.read_request(reader)) is not None:
            writer.write(
                answer(request.split(b" ", 1)[0].decode()) if server.connections > 1 else raw
            )
            await writer.drain()
            if server.connections == 1:
                return

    return handler


@pytest.mark.parametrize("method", METHODS)
async def test_idle_connection_closed_by_the_server_is_not_written_to(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client], method: str
) -> None:
    # The server closes once it answered; the client sees the end before it would reuse the
    # connection, so the request goes out, once, on a new connection, whatever its method.
    server = await serve(answer_then_hang_up(OK_JSON))
    client = connect(server)
    await client.api.request("GET", PATH)
    await server.wait_closed()
    await send(client, method)
    assert server.methods() == ["GET", method]
    assert server.connections == 2


class FirstConnectionEndsBeforeWriting(ConnectionPool):
    async def _connect(self, deadline: float | None) -> _Connection:
        conn = await super()._connect(deadline)
        if self.connections_opened == 1:
            conn.close()
        return conn


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_nothing_written_is_sent_on_a_new_connection(
    serve: Callable[[Handler], Awaitable[Server]], method: str
) -> None:
    server = await serve(answers(OK_JSON))
    pool = FirstConnectionEndsBeforeWriting(server.url, lambda: None)
    try:
        answered = await pool.request(method, PATH, [], b"{}", 5.0)
    finally:
        await pool.close()
    assert answered.status == 200
    assert server.methods() == [method]
    assert (pool.connections_opened, server.connections) == (2, 2)


# -- framing and keep-alive -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        *FRAMINGS,
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n" + b'{"a":1}\r\n0\r\n\r\n',
            {"a": 1},
            id="chunked",
        ),
    ],
)
async def test_framing_and_keep_alive_reuse(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., Client],
    raw: bytes,
    body: dict[str, object],
) -> None:
    server = await serve(answers(raw, raw, raw))
    client = connect(server)
    for _ in range(3):
        assert await client.api.request("GET", PATH) == body
    assert (server.connections, len(server.requests)) == (1, 3)


async def test_answer_arriving_a_byte_at_a_time(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n'

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            for i in range(len(chunked)):
                writer.write(chunked[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0)

    server = await serve(handler)
    client = connect(server)
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.connections == 1


async def test_concurrent_requests_take_connections_of_their_own_then_reuse_them(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    server = await serve(answers(*[OK_JSON] * 10))
    client = connect(server)
    for _ in range(2):
        await asyncio.gather(*(client.api.request("GET", PATH) for _ in range(5)))
    assert len(server.requests) == 10
    assert server.connections == client.pool.connections_opened == 5


async def test_head_answer_ends_with_its_head(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    # llhttp alone would wait for the 7 bytes the headers announce.
    server = await serve(answers(OK_HEAD, OK_HEAD))
    client = connect(server, request_timeout=2.0)
    assert await client.api.request("HEAD", PATH) == {}
    assert await client.api.request("HEAD", PATH) == {}
    assert server.connections == 2  # not reused: the parser was not told there is no body


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", id="close"
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", id="http-1.0"),
    ],
)
async def test_connections_the_server_will_not_keep_are_not_reused(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client], raw: bytes
) -> None:
    server = await serve(answers(raw, raw))
    client = connect(server)
    assert await client.api.request("GET", PATH) == {}
    assert await client.api.request("GET", PATH) == {}
    assert server.connections == 2


async def test_body_until_the_end_of_the_connection(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"all":')
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b'"of it"}')

    server = await serve(handler)
    client = connect(server)
    assert await client.api.request("GET", PATH) == {"all": "of it"}
    assert await client.api.request("GET", PATH) == {"all": "of it"}
    assert server.connections == 2


async def test_idle_connections_expire(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    server = await serve(answers(OK_JSON, OK_JSON, OK_JSON))
    client = connect(server)
    await client.api.request("GET", PATH)
    await client.clock.advance(IDLE_TIMEOUT - 1)
    await client.api.request("GET", PATH)
    assert server.connections == 1
    await client.clock.advance(IDLE_TIMEOUT + 1)
    await client.api.request("GET", PATH)
    assert server.connections == 2
    await server.wait_closed()  # the expired one was closed, not left open


async def test_close_closes_idle_connections(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    server = await serve(answers(OK_JSON))
    pool = ConnectionPool(server.url, lambda: None)
    assert (await pool.request("GET", PATH, [], None, 5.0)).status == 200
    await pool.close()
    await server.wait_closed()


# -- what ends a connection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "hang_up"),
    [
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", False, id="not-http"),
        pytest.param(b"HTTP/1.1 abc\r\n\r\n", False, id="no-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", False, id="bad-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            False,
            id="two-lengths",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", False, id="bad-chunk"
        ),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
            False,
            id="upgrade",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", False, id="huge-head"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True, id="truncated"),
    ],
)
async def test_malformed_answers_close_the_connection(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., Client],
    raw: bytes,
    hang_up: bool,
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            writer.write(raw if len(server.requests) == 1 else OK_JSON)
            await writer.drain()
            if hang_up and len(server.requests) == 1:
                return

    server = await serve(handler)
    # A connection reused after a broken answer would wait for an answer that never comes.
    client = connect(server, request_timeout=2.0)
    with pytest.raises(errors.TransportError):
        await client.api.request("GET", PATH)
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.methods() == ["GET", "GET"]  # a broken answer is not a reason to send again
    assert server.connections == 2


async def test_valid_http_that_is_not_json_keeps_the_connection(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    server = await serve(answers(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n<p>", OK_JSON))
    client = connect(server)
    with pytest.raises(errors.TransportError, match="not JSON"):
        await client.api.request("GET", PATH)
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.connections == 1


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(OK_JSON, id="a-second-answer"),
        pytest.param(b"HTTP/1.1 2", id="the-start-of-one"),
        pytest.param(b"garbage", id="garbage"),
    ],
)
async def test_bytes_after_the_answer_spoil_the_connection(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client], extra: bytes
) -> None:
    server = await serve(answers(OK_JSON + extra, OK_JSON))
    client = connect(server)
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.connections == 2


async def test_bytes_on_an_idle_connection_spoil_it(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            writer.write(OK_JSON)
            await writer.drain()
            if server.connections == 1:
                await asyncio.sleep(0.02)
                writer.write(OK_JSON)  # unasked
                await writer.drain()

    server = await serve(handler)
    client = connect(server)
    await client.api.request("GET", PATH)
    await server.wait_closed()  # the client hung up on it
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.connections == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_timeout_closes_the_connection_and_sends_nothing_again(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client], method: str
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            if len(server.requests) > 1:
                writer.write(OK_JSON)
                await writer.drain()

    server = await serve(handler)
    client = connect(server, request_timeout=0.2)
    with pytest.raises(errors.RequestTimeout, match="timed out"):
        await send(client, method)
    assert await client.api.request("GET", PATH) == {"a": 1}
    assert server.connections == 2
    assert server.methods() == [method, "GET"]


# -- requests as written --------------------------------------------------------------------------


def request_fields(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], fields, body


async def test_request_bytes(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., Client]
) -> None:
    server = await serve(answers(OK_JSON, OK_JSON, OK_JSON))
    client = connect(server)
    await client.api.request(
        "PATCH",
        PATH,
        params={"fieldManager": "m"},
        body={"a": 1},
        content_type="application/merge-patch+json",
    )
    await client.api.request("GET", PATH)
    await client.api.request("POST", PATH)
    line, fields, body = request_fields(server.requests[0])
    assert line == f"PATCH {PATH}?fieldManager=m HTTP/1.1"
    assert fields["host"] == server.url.removeprefix("http://")
    assert fields["content-type"] == "application/merge-patch+json"
    assert fields["content-length"] == "7"
    assert fields["accept"] == "application/json"
    assert fields["user-agent"] == "agentic-operator"
    assert body == b'{"a":1}'
    line, fields, body = request_fields(server.requests[1])
    assert (line, "content-length" in fields, body) == (f"GET {PATH} HTTP/1.1", False, b"")
    assert request_fields(server.requests[2])[1]["content-length"] == "0"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        pytest.param(PATH, [("Authorization", "Bearer x\r\nX-Injected: 1")], id="crlf-in-header"),
        pytest.param(PATH, [("Authorization", "Bearer x\nX-Injected: 1")], id="lf-in-header"),
        pytest.param(PATH, [("Authorization", "Bearer x\rX-Injected: 1")], id="cr-in-header"),
        pytest.param(PATH + " HTTP/1.1\r\nX-Injected: 1", [], id="crlf-in-target"),
        pytest.param("/a b", [], id="space-in-target"),
    ],
)
async def test_line_breaks_and_spaces_are_refused(
    serve: Callable[[Handler], Awaitable[Server]], target: str, headers: list[tuple[str, str]]
) -> None:
    server = await serve(answers(OK_JSON))
    pool = ConnectionPool(server.url, lambda: None)
    try:
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", target, headers, None, 5.0)
    finally:
        await pool.close()
    assert server.connections == 0


def test_base_url() -> None:
    pool = ConnectionPool("https://[::1]:6443/prefix/", lambda: None)
    assert pool.base_path == "/prefix"
    with pytest.raises(ValueError, match="unsupported"):
        ConnectionPool("unix:///run/k.sock", lambda: None)
