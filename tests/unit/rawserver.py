"""A raw HTTP server on loopback for the client's transport tests: it answers each connection
with exactly the bytes a test's handler writes (tests/unit/test_pool.py, test_pool_uvloop.py,
test_client_transport.py; the ``serve`` fixture is in tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]

PATH = "/api/v1/namespaces/ns/configmaps/x"
OK_JSON = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


@dataclass
class Server:
    handler: Handler
    requests: list[bytes] = field(default_factory=list)
    """Every request the server read, whole or (``read_part``) in part, in order."""
    connections: int = 0
    url: str = ""
    closed: asyncio.Event = field(default_factory=asyncio.Event)

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

    async def read_part(self, reader: asyncio.StreamReader) -> None:
        """Read the start of a request (its method and a space) and no more."""
        self.requests.append(await reader.readuntil(b" "))

    def methods(self) -> list[str]:
        return [r.split(b" ", 1)[0].decode() for r in self.requests]

    async def wait_closed(self) -> None:
        """Until the server closed a connection and the client's loop has seen the end of it."""
        await asyncio.wait_for(self.closed.wait(), 5)
        self.closed.clear()
        await asyncio.sleep(0.05)


async def start_server(
    handler: Handler, context: ssl.SSLContext | None = None
) -> tuple[asyncio.Server, Server]:
    """A raw server on loopback (TLS with ``context``) running ``handler`` per connection."""
    state = Server(handler)

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
            state.closed.set()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=context)
    scheme = "https" if context else "http"
    state.url = f"{scheme}://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return server, state


def answers(*responses: bytes) -> Handler:
    """Answer the n-th request on a connection with ``responses[n]`` (then hold the connection
    until the client closes it)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        for response in responses:
            if await server.read_request(reader) is None:
                return
            writer.write(response)
            await writer.drain()
        await reader.read()

    return handler


FRAMINGS = [
    pytest.param(OK_JSON, {"a": 1}, id="content-length"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\r\n{"a\r\n4;ext=1\r\n":1}\r\n0\r\nX-Trailer: t\r\n\r\n',
        {"a": 1},
        id="chunked-with-extension-and-trailer",
    ),
    pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", {}, id="no-content"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", {}, id="empty"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_JSON, {"a": 1}, id="informational-first"),
]
"""Well-framed answers and the JSON each carries: every transport must read them alike."""
