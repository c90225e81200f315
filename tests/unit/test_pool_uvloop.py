"""The keep-alive pool as the operator runs it: on uvloop (whose TLS transport is its own, not
asyncio's), over TLS and plain TCP. The scenarios of tests/unit/test_pool.py that depend on how the
loop reports a connection's end: keep-alive reuse, an idle connection the server closed, the re-send
rule after a dropped reused connection, malformed answers, timeouts, ``Connection: close``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from testenv.pki import PKI, generate_pki

from agentic_operator.kube import errors
from tests.unit.rawserver import OK_JSON, PATH, Handler, Server, answers, start_server
from tests.unit.test_pool import (
    Client,
    answer_then_hang_up,
    fail_at,
    make_client,
    send,
)

Scenario = Callable[[Server, Client], Awaitable[None]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return generate_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["tls", "tcp"])
def contexts(
    request: pytest.FixtureRequest, pki: PKI
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """The server's and the client's TLS contexts (None, None for plain TCP)."""
    if request.param == "tcp":
        return None, None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.serving.cert, pki.serving.key)
    client = ssl.create_default_context(cafile=str(pki.ca.cert))
    return server, client


def run(
    handler: Handler,
    scenario: Scenario,
    contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
    request_timeout: float = 5.0,
) -> Server:
    """``scenario`` against a server running ``handler``, on a uvloop loop of its own."""

    async def main() -> Server:
        server, state = await start_server(handler, contexts[0])
        client = make_client(state, request_timeout, contexts[1])
        try:
            await scenario(state, client)
        finally:
            await client.api.close()
            server.close()
            await server.wait_closed()
        return state

    return uvloop.run(main())


def test_keep_alive_reuse(contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None]) -> None:
    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}\r\n0\r\n\r\n'

    async def scenario(server: Server, client: Client) -> None:
        for _ in range(3):
            assert await client.api.request("GET", PATH) == {"a": 1}

    server = run(answers(OK_JSON, chunked, OK_JSON), scenario, contexts)
    assert (server.connections, len(server.requests)) == (1, 3)


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_idle_connection_closed_by_the_server_is_not_written_to(
    contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None], method: str
) -> None:
    async def scenario(server: Server, client: Client) -> None:
        await client.api.request("GET", PATH)
        await server.wait_closed()
        await send(client, method)

    server = run(answer_then_hang_up(OK_JSON), scenario, contexts)
    assert server.methods() == ["GET", method]
    assert server.connections == 2


@pytest.mark.parametrize(("method", "resent"), [("GET", True), ("POST", False), ("PUT", False)])
def test_reused_connection_ends_after_the_whole_request(
    contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None], method: str, resent: bool
) -> None:
    async def scenario(server: Server, client: Client) -> None:
        await client.api.request("GET", PATH)
        if resent:
            assert await send(client, method) == {"a": 1}
            return
        with pytest.raises(errors.TransportError, match="may have been applied"):
            await send(client, method)

    server = run(fail_at("request-whole", reused=True), scenario, contexts)
    assert server.methods() == ["GET", method, method] if resent else ["GET", method]


def test_malformed_answer_and_timeout_close_the_connection(
    contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
) -> None:
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        while await server.read_request(reader) is not None:
            if server.connections == 1:
                writer.write(b"HTTP/1.1 abc\r\n\r\n")
            elif server.connections == 3:
                writer.write(OK_JSON)
            await writer.drain()  # connection 2: no answer at all

    async def scenario(server: Server, client: Client) -> None:
        with pytest.raises(errors.TransportError):
            await client.api.request("GET", PATH)
        with pytest.raises(errors.RequestTimeout):
            await client.api.request("GET", PATH)
        assert await client.api.request("GET", PATH) == {"a": 1}

    server = run(handler, scenario, contexts, request_timeout=0.5)
    assert (server.connections, server.methods()) == (3, ["GET", "GET", "GET"])


def test_connection_close_is_honoured(
    contexts: tuple[ssl.SSLContext | None, ssl.SSLContext | None],
) -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"

    async def scenario(server: Server, client: Client) -> None:
        assert await client.api.request("GET", PATH) == {}
        assert await client.api.request("GET", PATH) == {}

    assert run(answers(close, close), scenario, contexts).connections == 2
