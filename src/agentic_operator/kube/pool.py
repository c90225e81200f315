"""Keep-alive HTTP/1.1 connections for the API server's request/response calls.

Why not aiohttp for these: per request, aiohttp's client does what an API client never needs
(cookie jar, redirects, tracing hooks, URL objects, payload writers, stream readers), and on this
operator's request mix that costs about a quarter of its CPU per session (figures in
docs/benchmarks.md, "One HTTP stack"). Watches and proxied kubeconfigs stay on aiohttp.

Framing, on purpose split in two:

* **Answers** are parsed by llhttp, the HTTP/1.1 parser Node.js uses, through MagicStack's
  httptools: status line, headers, ``Content-Length`` and chunked bodies (extensions, trailers),
  ``Connection: close`` and HTTP/1.0 (:meth:`~httptools.HttpResponseParser.should_keep_alive`),
  informational answers. Two cases the bindings cannot be told about are ours: a body delimited by
  the end of the connection (no length, not chunked: complete when the connection ends, which
  httptools has no call for), and the answer to a HEAD (no body whatever its headers say: the
  answer ends with its head and the connection is not reused).
* **Requests** are written here with one fixed framing: the request line, the headers, and a
  ``Content-Length`` body. A line break in a header or a space in the target is refused.

Each connection is an :class:`asyncio.Protocol` that reads all the time, also while idle, so the
end of an idle connection (the server's idle timeout, a restart) is seen as soon as the loop reads
it, and such a connection is never written to. Bytes arriving on an idle connection, or after a
complete answer, make it unusable. Timeouts, cancellation and malformed answers close the
connection. Idle connections older than :data:`IDLE_TIMEOUT` are closed instead of reused.

Re-sending follows Go's ``net/http`` transport (``persistConn.shouldRetryRequest``): when a
connection ends before the whole answer arrived, the request goes out once more, on a new
connection, only if no byte of it was written, or if its method is in
:data:`REPLAYABLE_METHODS` and the connection was a reused one that ended before any byte of the
answer. Everything else, in particular a POST, PUT, PATCH or DELETE that was even partly written,
fails with :class:`ConnectionDropped` (``written`` true: the server may have applied it). A request
is re-sent at most once.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import httptools

from agentic_operator.clock import Clock, RealClock

REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods re-sent after a reused connection ended before the first byte of the answer (Go's
``Request.isReplayable``; PUT and DELETE are idempotent too, but Go leaves them out)."""

MAX_IDLE = 64
"""Idle connections kept per pool (a controller with 10 workers uses about as many at once)."""

IDLE_TIMEOUT = 15.0
"""Seconds an idle connection is kept (aiohttp's default), well below kube-apiserver's 90 s, so
the server rarely closes one just as a request is written to it."""

MAX_HEAD = 1 << 20
"""Bytes of an answer's status line and headers (kube-apiserver's own limit for requests)."""

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    """Names in lower case; a repeated header keeps its last value; trailers are left out."""
    body: bytes


class ProtocolError(ConnectionError):
    """The answer is not HTTP/1.1 as llhttp reads it (the connection is closed, nothing re-sent)."""


class ConnectionDropped(ConnectionError):
    """The connection ended before the whole answer arrived."""

    def __init__(self, reason: str, *, written: bool, answered: bool, reused: bool) -> None:
        super().__init__(reason)
        self.written = written
        """Some of the request was handed to the connection (it may have reached the server)."""
        self.answered = answered
        """Some of the answer had arrived."""
        self.reused = reused
        """The connection had carried an earlier request."""
        self.resent = False
        """The request was sent once more, on a new connection, and that one failed too."""


def may_resend(method: str, dropped: ConnectionDropped) -> bool:
    """Go's rule: nothing written, or a replayable method on a reused connection, unanswered."""
    if not dropped.written:
        return True
    return method in REPLAYABLE_METHODS and dropped.reused and not dropped.answered


class _Connection(asyncio.Protocol):
    """One connection: httptools' parser fed from ``data_received``, one answer at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.ended = False
        """The connection is over (EOF, reset, closed by us) or must not carry another request."""
        self.reused = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[Response, bool]] | None = None
        self._head_only = False
        self._received = False
        self._head_bytes = 0
        self._headers_done = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the transport has closed."""

    # -- the request --------------------------------------------------------------------------

    async def exchange(
        self, request: bytes, *, head_only: bool, deadline: float | None
    ) -> tuple[Response, bool]:
        """Write ``request`` and wait for the whole answer; also says whether the connection can
        carry another request. Raises :class:`ConnectionDropped`, :class:`ProtocolError`, or
        TimeoutError at ``deadline`` (the loop's time)."""
        transport = self.transport
        if self.ended or transport is None or transport.is_closing():
            raise ConnectionDropped(
                "connection closed before the request was written",
                written=False,
                answered=False,
                reused=self.reused,
            )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[Response, bool]] = loop.create_future()
        self._waiter = waiter
        self._head_only = head_only
        self._received = False
        self._start_message()
        timer = None if deadline is None else loop.call_at(deadline, self._time_out)
        transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once, whatever is buffered: the connection's state is unknown."""
        self.ended = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TLS transport is not a subclass of asyncio.Transport, only its duck type.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: what comes next cannot be framed
            return
        self._received = True
        if not self._headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._fail(ProtocolError(f"response header section above {MAX_HEAD} bytes"))
                return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(ProtocolError(f"malformed response: {exc!r}"))

    def eof_received(self) -> bool:
        self._end(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        if not self.lost.done():
            self.lost.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.ended = True  # a second answer to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._headers_done:  # after the head: a chunked body's trailer, left out
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        if self._head_only and self._status >= 200:
            self._complete(keep=False)  # llhttp would wait for the body the headers announce

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:
            self._start_message()  # informational: the real answer follows
            return
        self._complete(keep=self._parser.should_keep_alive())

    # -- plumbing -----------------------------------------------------------------------------

    def _start_message(self) -> None:
        self._head_bytes = 0
        self._headers_done = False
        self._status = 0
        self._headers = {}
        self._body = []

    def _complete(self, *, keep: bool) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            response = Response(self._status, self._headers, b"".join(self._body))
            waiter.set_result((response, keep))

    def _time_out(self) -> None:
        self._fail(TimeoutError())

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def _end(self, exc: Exception | None) -> None:
        self.ended = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_eof():
            self._complete(keep=False)
            return
        reason = "connection closed by the server" if exc is None else f"connection lost: {exc!r}"
        waiter.set_exception(
            ConnectionDropped(
                f"{reason} {'in the middle of' if self._received else 'before'} the answer",
                written=True,
                answered=self._received,
                reused=self.reused,
            )
        )

    def _until_eof(self) -> bool:
        """The answer's body is delimited by the end of the connection (RFC 9112, 6.3, rule 8)."""
        headers = self._headers
        return (
            self._status not in (204, 304)
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )


class ConnectionPool:
    """Keep-alive connections to one ``http://`` or ``https://`` origin, no limit on their number
    (the client's token bucket bounds the request rate).

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
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Clock | None = None,
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
        self._idle_timeout = idle_timeout
        self._clock = clock or RealClock()
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

        Raises TimeoutError after ``time_limit`` seconds, :class:`ConnectionDropped` when the
        connection ended before the whole answer and the request was not (or no longer) to be
        re-sent, :class:`ProtocolError` for answers that are not HTTP, other OSErrors
        (ssl.SSLError, refused connections) as they come.
        """
        request = self._encode(method, target, headers, body)
        head_only = method == "HEAD"
        # A deadline, not asyncio.timeout: a timer on the answer costs a fraction as much.
        deadline = None if time_limit is None else asyncio.get_running_loop().time() + time_limit
        conn = self._take_idle() or await self._connect(deadline)
        try:
            return await self._exchange(conn, request, head_only, deadline)
        except ConnectionDropped as dropped:
            if not may_resend(method, dropped):
                raise
        try:
            conn = await self._connect(deadline)
            return await self._exchange(conn, request, head_only, deadline)
        except ConnectionDropped as dropped:
            dropped.resent = True
            raise

    async def _exchange(
        self, conn: _Connection, request: bytes, head_only: bool, deadline: float | None
    ) -> Response:
        try:
            response, keep = await conn.exchange(request, head_only=head_only, deadline=deadline)
        except BaseException:
            conn.abort()
            raise
        # ``ended`` may have been set after the answer: more bytes came in the same read.
        if keep and not conn.ended and not self._closed and len(self._idle) < self._max_idle:
            conn.reused = True
            conn.idle_since = self._clock.now()
            self._idle.append(conn)
        else:
            conn.close()
        return response

    def _encode(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes | None
    ) -> bytes:
        lines = [f"{method} {self.base_path}{target} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if body is not None or method in _WITH_BODY:
            lines.append(f"Content-Length: {len(body or b'')}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        breaks = len(lines) + 1
        if head.count("\n") != breaks or head.count("\r") != breaks or lines[0].count(" ") != 2:
            raise ValueError(f"{method} {target}: a line break in a header or a space in the path")
        return head.encode("latin-1") + body if body else head.encode("latin-1")

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have timed out
            if self._clock.now() - conn.idle_since > self._idle_timeout:
                conn.close()
                for older in idle:
                    older.close()
                idle.clear()
                return None
            if not conn.ended:
                return conn
            conn.close()
        return None

    async def _connect(self, deadline: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if self._tls:
            context = self._ssl_context() or ssl.create_default_context()
        async with asyncio.timeout_at(deadline):
            _, conn = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=context,
                server_hostname=(self._server_hostname or self._host) if context else None,
            )
        self.connections_opened += 1
        return conn

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if idle:
            await asyncio.wait([conn.lost for conn in idle], timeout=1.0)
