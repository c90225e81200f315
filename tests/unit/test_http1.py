"""The keep-alive HTTP/1.1 pool (kube/http1.py) against a raw asyncio server that answers with
exactly the bytes each test scripts: framing, connection reuse, stale connections, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from agentic_operator.kube.http1 import ConnectionPool, ProtocolError, Response

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    handler: Handler
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        state = Server(handler)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await handler(reader, writer, state)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answers(*responses: bytes) -> Handler:
    """Answer the n-th request on a connection with ``responses[n]`` (then keep reading)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        for response in responses:
            if await server.read_request(reader) is None:
                return
            writer.write(response)
            await writer.drain()
        await reader.read()  # hold the connection until the client closes it

    return handler


def answer_then_hang_up(raw: bytes) -> Handler:
    """Answer the first request on a connection with ``raw``, then close the connection."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(raw)
        await writer.drain()

    return handler


OK_JSON = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


async def get(pool: ConnectionPool, target: str = "/x", time_limit: float = 5.0) -> Response:
    return await pool.request("GET", target, [("Accept", "application/json")], None, time_limit)


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        pytest.param(OK_JSON, b'{"a":1}', id="content-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'3\r\n{"a\r\n4;ext=1\r\n":1}\r\n0\r\nX-Trailer: t\r\n\r\n',
            b'{"a":1}',
            id="chunked-with-extension-and-trailer",
        ),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", b"", id="no-content"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", b"", id="empty"),
    ],
)
async def test_framing_and_reuse(
    serve: Callable[[Handler], Awaitable[Server]], raw: bytes, body: bytes
) -> None:
    server = await serve(answers(raw, raw, raw))
    pool = ConnectionPool(server.url, lambda: None)
    for _ in range(3):
        response = await get(pool)
        assert response.body == body
        assert response.status in (200, 204)
    assert (server.connections, pool.connections_opened) == (1, 1)
    await pool.close()


async def test_request_bytes(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    server = await serve(answers(OK_JSON, OK_JSON))
    pool = ConnectionPool(server.url + "/prefix/", lambda: None)
    await pool.request("PATCH", "/api/v1/x?a=b", [("Content-Type", "c/t")], b"{}", 5)
    await pool.request("POST", "/empty", [], None, 5)
    host = server.url.removeprefix("http://").encode()
    assert server.requests == [
        b"PATCH /prefix/api/v1/x?a=b HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Content-Type: c/t\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /prefix/empty HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n\r\n",
    ]
    await pool.close()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", id="close"
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", id="http-1.0"),
    ],
)
async def test_connections_the_server_will_not_keep_are_not_reused(
    serve: Callable[[Handler], Awaitable[Server]], raw: bytes
) -> None:
    server = await serve(answers(raw))
    pool = ConnectionPool(server.url, lambda: None)
    assert (await get(pool)).body == b"ok"
    assert (await get(pool)).body == b"ok"
    assert pool.connections_opened == 2
    await pool.close()


async def test_body_until_eof(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    server = await serve(answer_then_hang_up(b"HTTP/1.1 200 OK\r\n\r\nall of it"))
    pool = ConnectionPool(server.url, lambda: None)
    assert (await get(pool)).body == b"all of it"
    assert (await get(pool)).body == b"all of it"
    assert pool.connections_opened == 2
    await pool.close()


async def test_idle_connection_closed_by_the_server_is_replaced(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    # The server closes at once: the client's idle connection is dead before it is reused.
    server = await serve(answer_then_hang_up(OK_JSON))
    pool = ConnectionPool(server.url, lambda: None)
    await get(pool)
    await asyncio.sleep(0.05)  # let the EOF arrive
    assert (await get(pool)).body == b'{"a":1}'
    assert len(server.requests) == 2
    await pool.close()


async def test_reused_connection_dropped_before_answering_is_retried_once(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(OK_JSON)
        await writer.drain()
        if server.connections == 1:
            await server.read_request(reader)  # the second request: read, then hang up
            return
        await reader.read()

    server = await serve(handler)
    pool = ConnectionPool(server.url, lambda: None)
    await get(pool)
    assert (await get(pool)).body == b'{"a":1}'
    assert (server.connections, len(server.requests)) == (2, 3)
    await pool.close()


async def test_fresh_connection_dropped_before_answering_fails(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)

    server = await serve(handler)
    pool = ConnectionPool(server.url, lambda: None)
    with pytest.raises(ConnectionResetError):
        await get(pool)
    assert server.connections == 1  # a new connection is not retried: it may have been processed
    await pool.close()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", ProtocolError, id="not-http"),
        pytest.param(b"HTTP/1.1 abc\r\n\r\n", ProtocolError, id="no-status-code"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", ProtocolError, id="bad-length"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            ProtocolError,
            id="bad-chunk",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            ConnectionResetError,
            id="truncated",
        ),
    ],
)
async def test_bad_answers(
    serve: Callable[[Handler], Awaitable[Server]], raw: bytes, error: type[Exception]
) -> None:
    server = await serve(answer_then_hang_up(raw))
    pool = ConnectionPool(server.url, lambda: None)
    with pytest.raises(error):
        await get(pool)
    assert pool._idle == []  # a connection in an unknown state is never reused
    await pool.close()


async def test_timeout_discards_the_connection(
    serve: Callable[[Handler], Awaitable[Server]],
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            if len(server.requests) > 1:
                writer.write(OK_JSON)
                await writer.drain()

    server = await serve(handler)
    pool = ConnectionPool(server.url, lambda: None)
    with pytest.raises(TimeoutError):
        await get(pool, time_limit=0.2)
    assert pool._idle == []
    assert (await get(pool)).body == b'{"a":1}'
    assert pool.connections_opened == 2
    await pool.close()


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "https://", "unix:///var/run/kube.sock", "example.com:6443"]
)
def test_unsupported_urls(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported server URL"):
        ConnectionPool(url, lambda: None)


async def test_idle_pool_is_bounded(serve: Callable[[Handler], Awaitable[Server]]) -> None:
    server = await serve(answers(OK_JSON, OK_JSON))
    pool = ConnectionPool(server.url, lambda: None, max_idle=2)
    await asyncio.gather(*(get(pool) for _ in range(5)))
    assert pool.connections_opened == 5
    assert len(pool._idle) == 2
    await pool.close()
    assert pool._idle == []
