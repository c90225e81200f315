"""The client over aiohttp alone (what a proxied kubeconfig uses, and a client built on a session)
against a raw asyncio server that answers with exactly the bytes each test scripts: framing,
keep-alive reuse, which requests are sent again when a connection ends, malformed answers,
timeouts. The keep-alive pool that carries requests otherwise: tests/unit/test_pool.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from kubernetes_asyncio.client import Configuration

from agentic_operator.clock import FakeClock
from agentic_operator.kube import errors
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.config import KubeConfig
from agentic_operator.kube.transport import AIOHTTP_RESENT_METHODS
from tests.unit.rawserver import FRAMINGS, OK_JSON, PATH, Handler, Server, answers

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., ApiClient]]:
    clients: list[ApiClient] = []

    def make(server: Server, request_timeout: float = 5.0) -> ApiClient:
        config = KubeConfig(host=server.url, source="test", configuration=Configuration())
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        client = ApiClient(
            config,
            session,
            qps=0,
            clock=FakeClock(),  # any backoff sleep would hang: none may happen here
            max_read_retries=0,
            request_timeout=request_timeout,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def answer_then_hang_up(raw: bytes) -> Handler:
    """Answer the first request on a connection with ``raw``, then close the connection."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(raw)
        await writer.drain()

    return handler


async def send(client: ApiClient, method: str) -> dict[str, object]:
    body = None if method in ("GET", "DELETE") else {"metadata": {"name": "x"}}
    return await client.request(method, PATH, body=body)


@pytest.mark.parametrize(("raw", "body"), FRAMINGS)
async def test_framing_and_keep_alive_reuse(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., ApiClient],
    raw: bytes,
    body: dict[str, object],
) -> None:
    server = await serve(answers(raw, raw, raw))
    client = connect(server)
    for _ in range(3):
        assert await client.request("GET", PATH) == body
    assert (server.connections, len(server.requests)) == (1, 3)


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
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., ApiClient], raw: bytes
) -> None:
    server = await serve(answers(raw, raw))
    client = connect(server)
    assert await client.request("GET", PATH) == {}
    assert await client.request("GET", PATH) == {}
    assert server.connections == 2


async def test_body_until_eof(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., ApiClient]
) -> None:
    server = await serve(answer_then_hang_up(b'HTTP/1.1 200 OK\r\n\r\n{"all":"of it"}'))
    client = connect(server)
    assert await client.request("GET", PATH) == {"all": "of it"}
    assert await client.request("GET", PATH) == {"all": "of it"}
    assert server.connections == 2


@pytest.mark.parametrize("method", METHODS)
async def test_idle_connection_closed_by_the_server_is_not_written_to(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., ApiClient],
    method: str,
) -> None:
    # The server closes once it answered: the idle connection is dead before it would be reused,
    # so the request goes out, once, on a new connection, whatever its method.
    server = await serve(answer_then_hang_up(OK_JSON))
    client = connect(server)
    await client.request("GET", PATH)
    await server.wait_closed()
    assert await send(client, method) == {"a": 1}
    assert server.methods() == ["GET", method]
    assert server.connections == 2


def hang_up_on_second_request(
    reader_answer: bytes = OK_JSON,
) -> Handler:
    """First connection: answer one request, read the next one, close without answering. Later
    connections answer everything."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        first = server.connections == 1
        while await server.read_request(reader) is not None:
            if first and len(server.requests) == 2:
                return  # the request was read; the answer never comes
            writer.write(reader_answer)
            await writer.drain()

    return handler


@pytest.mark.parametrize("method", METHODS)
async def test_written_request_is_sent_again_only_when_idempotent(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., ApiClient],
    method: str,
) -> None:
    server = await serve(hang_up_on_second_request())
    client = connect(server)
    await client.request("GET", PATH)
    if method in ("GET", "PUT", "DELETE"):
        assert await send(client, method) == {"a": 1}
        assert server.methods() == ["GET", method, method]  # sent again on a new connection
        assert server.connections == 2
    else:
        with pytest.raises(errors.TransportError, match="may have been applied") as failed:
            await send(client, method)
        assert f"a {method} is not sent twice" in str(failed.value)
        assert server.methods() == ["GET", method]  # once, and never again
        assert server.connections == 1


def test_resent_methods_are_rfc_9110s_idempotent_ones() -> None:
    assert {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"} == AIOHTTP_RESENT_METHODS
    assert AIOHTTP_RESENT_METHODS == aiohttp.client.IDEMPOTENT_METHODS  # what aiohttp actually does


@pytest.mark.parametrize(("method", "attempts"), [("GET", 2), ("POST", 1), ("PATCH", 1)])
async def test_fresh_connection_dropped_before_answering(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., ApiClient],
    method: str,
    attempts: int,
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)

    server = await serve(handler)
    client = connect(server)
    with pytest.raises(errors.TransportError, match="closed the connection before answering"):
        await send(client, method)
    assert server.methods() == [method] * attempts


@pytest.mark.parametrize(
    ("raw", "hang_up", "connections"),
    [
        pytest.param(b"SPDY/3 200 OK\r\n\r\n", False, 2, id="not-http"),
        pytest.param(b"HTTP/1.1 abc\r\n\r\n", False, 2, id="no-status-code"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", False, 2, id="bad-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            False,
            2,
            id="bad-chunk",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", True, 2, id="truncated"
        ),
        # Valid HTTP with a body that is not JSON: the connection itself is fine to reuse.
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n<p>", False, 1, id="not-json"),
    ],
)
async def test_malformed_answers(
    serve: Callable[[Handler], Awaitable[Server]],
    connect: Callable[..., ApiClient],
    raw: bytes,
    hang_up: bool,
    connections: int,
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
        await client.request("GET", PATH)
    assert await client.request("GET", PATH) == {"a": 1}
    assert server.methods() == ["GET", "GET"]  # a broken answer is not a reason to send again
    assert server.connections == connections


async def test_timeout_discards_the_connection(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., ApiClient]
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
        await client.request("GET", PATH)
    assert await client.request("GET", PATH) == {"a": 1}
    assert server.connections == 2
    assert server.methods() == ["GET", "GET"]  # a timed-out request is not sent again


async def test_request_bytes(
    serve: Callable[[Handler], Awaitable[Server]], connect: Callable[..., ApiClient]
) -> None:
    server = await serve(answers(OK_JSON))
    client = connect(server)
    await client.request(
        "PATCH",
        PATH,
        params={"fieldManager": "m"},
        body={"a": 1},
        content_type="application/merge-patch+json",
    )
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"PATCH {PATH}?fieldManager=m HTTP/1.1"
    fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert fields["content-type"] == "application/merge-patch+json"
    assert fields["content-length"] == "7"
    assert fields["accept"] == "application/json"
    assert fields["user-agent"] == "agentic-operator"
    assert body == b'{"a":1}'
