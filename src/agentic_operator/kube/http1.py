"""A small keep-alive HTTP/1.1 client for the API server's request/response calls.

Why not aiohttp for these: its client does per request what an API client never needs (cookie
jar, redirects, tracing hooks, URL objects, payload writers), and that costs about as much CPU
as the TLS and JSON work itself. Measured against the local kube-apiserver (GET of a 3 KB
ConfigMap, one task, 1,000 requests): aiohttp ~300-490 us of CPU per request, this client
~150-230 us. Watches stay on aiohttp (a stream read for minutes), and so does everything when
the kubeconfig names a proxy.

Scope, on purpose: one origin, HTTP/1.1, ``Content-Length`` or chunked response bodies, no
compression (none is requested), no redirects (the API server does not send them to API
requests). A connection is reused when the response allows it (HTTP/1.1 without
``Connection: close``); an idle connection the server has closed is noticed before reuse, and a
reused connection that fails before any byte of the answer arrived is replaced once, which is
how the server's idle-timeout race ends without the request being lost.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

MAX_IDLE = 64
"""Idle connections kept per pool (a controller with 10 workers uses about as many at once)."""

_NO_BODY_STATUS = frozenset({204, 304})


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    """Header names in lower case (a repeated header keeps its last value)."""
    body: bytes


class ProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x as this client understands it."""


class _StaleConnection(ConnectionError):
    """A reused connection closed before answering: the request can go out on a new one."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes, *, reused: bool) -> tuple[Response, bool]:
        """Send ``request`` and read the whole answer; also says whether the connection stays."""
        reader = self.reader
        self.writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _StaleConnection("connection closed by the server before answering") from exc
            raise ConnectionResetError("connection closed while reading the response") from exc
        except ConnectionError:
            if reused:
                raise _StaleConnection("connection reset before answering") from None
            raise
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("response header section too large") from exc
        status, headers, keep = _parse_head(head)
        if status in _NO_BODY_STATUS:
            return Response(status, headers, b""), keep
        try:
            body, keep = await self._read_body(headers, keep)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("connection closed in the middle of the body") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("chunk size line too long") from exc
        return Response(status, headers, body), keep

    async def _read_body(self, headers: dict[str, str], keep: bool) -> tuple[bytes, bool]:
        reader = self.reader
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise ProtocolError(f"bad Content-Length {length!r}") from None
            body = await reader.readexactly(size) if size else b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            body = await reader.read()  # delimited by the end of the connection
            keep = False
        return body, keep


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return int(code), headers, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readline()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            # Trailer section: header lines until an empty one.
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after the chunk


class ConnectionPool:
    """Keep-alive connections to one ``http://`` or ``https://`` origin.

    ``ssl_context`` is called for every new connection, so a client certificate replaced by a
    credential reload is used from then on.
    """

    def __init__(
        self,
        base_url: str,
        ssl_context: Callable[[], ssl.SSLContext | None],
        *,
        server_hostname: str | None = None,
        max_idle: int = MAX_IDLE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported server URL {base_url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        default_port = 443 if self._tls else 80
        self._host_header = host if self._port == default_port else f"{host}:{self._port}"
        self.base_path = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._closed = False
        self.connections_opened = 0

    async def request(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
        time_limit: float | None,
    ) -> Response:
        """Send one request (``target``: path and query, below the base URL) and read the answer.

        Raises TimeoutError after ``time_limit`` seconds, OSError (ConnectionError, ssl.SSLError)
        for transport failures, :class:`ProtocolError` for answers that are not HTTP.
        """
        lines = [f"{method} {self.base_path}{target} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        async with asyncio.timeout(time_limit):
            conn = self._take_idle()
            if conn is not None:
                try:
                    return await self._exchange(conn, request, reused=True)
                except _StaleConnection:
                    pass  # the server closed it while idle; once more on a fresh connection
            return await self._exchange(await self._connect(), request, reused=False)

    async def _exchange(self, conn: _Connection, request: bytes, *, reused: bool) -> Response:
        try:
            response, keep = await conn.exchange(request, reused=reused)
        except BaseException:
            conn.close()
            raise
        if keep and not self._closed and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # the most recently used: the least likely to have timed out
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        context = None
        if self._tls:
            context = self._ssl_context() or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=context,
            server_hostname=(self._server_hostname or self._host) if context else None,
            limit=1 << 20,
        )
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            try:
                await conn.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass
