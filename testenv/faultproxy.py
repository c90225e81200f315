"""A fault-injecting HTTPS proxy between a client (the operator) and kube-apiserver.

It terminates TLS with a certificate of the control plane's PKI (the API server's serving pair,
valid for 127.0.0.1, so a kubeconfig that trusts the cluster's CA trusts the proxy) and
re-originates every request over its own TLS connection to the API server, headers untouched:
the client's bearer token goes through, so the API server authenticates, authorises and audits the
client, not the proxy. Each client connection gets one upstream connection of its own, so
keep-alive and the order of requests on a connection are what the client made them.

Faults (:class:`Faults`, switchable at runtime with :meth:`FaultProxy.set_faults`), chosen per
request by :func:`decide` from a seeded RNG:

* ``500`` / ``503`` / ``429``: the request is read and answered by the proxy with a Kubernetes
  ``Status`` body (429 with ``Retry-After``); the API server never sees it;
* ``reset-before``: the connection is reset before the request is forwarded;
* ``reset-after``: the request is forwarded and the API server's whole answer read (so a write is
  applied), then the client's connection is reset instead of answering: the lost-answer case;
* a watch stream (``watch=true``) may be cut (reset) at a random moment of its life;
* latency: every request waits this long before it is forwarded.

Nothing is logged: neither headers (the Authorization header is a token) nor bodies (Secrets,
TokenRequests). :attr:`FaultProxy.stats` counts what was done, by kind.

The proxy runs its own event loop in a thread, so synchronous tests and the benchmark use it
alike: ``with FaultProxy(cluster.server_port, cluster.pki.serving, cluster.ca_file) as proxy``,
then point a kubeconfig at ``proxy.url``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import socket
import ssl
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from testenv.pki import CertPair

ANSWERED = ("500", "503", "429")
"""Faults the proxy answers itself."""
RESETS = ("reset-before", "reset-after")
FAULT_KINDS: tuple[str, ...] = (*ANSWERED, *RESETS)
_REASONS = {
    500: ("Internal Server Error", "InternalError"),
    503: ("Service Unavailable", "ServiceUnavailable"),
    429: ("Too Many Requests", "TooManyRequests"),
}
_HEAD_LIMIT = 1 << 20
"""Longest request or response head (request line/status line plus headers) accepted."""


@dataclass(frozen=True, slots=True)
class Faults:
    """What the proxy does to traffic; the default is nothing (a plain proxy)."""

    share: float = 0.0
    """Share of requests (watches included) that get one of ``kinds``, equally likely."""
    kinds: tuple[str, ...] = FAULT_KINDS
    watch_cut: float = 0.0
    """Share of watch streams (not otherwise faulted) that are cut."""
    watch_cut_within: float = 30.0
    """A cut watch is reset at a uniform random moment in (0, this) seconds after it started."""
    latency: float = 0.0
    """Seconds each request waits before it is forwarded (or answered by a fault)."""
    retry_after: int = 1
    """The ``Retry-After`` seconds of an injected 429."""

    def __post_init__(self) -> None:
        for name in ("share", "watch_cut"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be a non-empty subset of {FAULT_KINDS}: {self.kinds}")
        if self.latency < 0 or self.watch_cut_within <= 0 or self.retry_after < 0:
            raise ValueError("latency, retry_after >= 0 and watch_cut_within > 0 required")


OFF = Faults()


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one request."""

    fault: str | None
    """One of :data:`FAULT_KINDS`, or None: forwarded as it is."""
    cut_after: float | None
    """For a forwarded watch: reset the stream after this many seconds."""
    delay: float


def decide(rng: random.Random, faults: Faults, *, watch: bool) -> Decision:
    """The fate of one request. Pure given ``rng``: the same seed gives the same sequence."""
    fault = rng.choice(faults.kinds) if rng.random() < faults.share else None
    cut_after = None
    if watch and fault is None and rng.random() < faults.watch_cut:
        cut_after = rng.uniform(0.0, faults.watch_cut_within)
    return Decision(fault, cut_after, faults.latency)


def is_watch(target: str) -> bool:
    """Whether a request target asks for a watch stream (``?watch=true`` or ``=1``)."""
    values = parse_qs(urlsplit(target).query).get("watch", [])
    return any(v.lower() in ("true", "1") for v in values)


def error_response(code: int, *, retry_after: int | None = None, keep_alive: bool = True) -> bytes:
    """A complete HTTP/1.1 answer as kube-apiserver gives it: a ``Status`` JSON body with its
    ``Content-Length`` (so the connection stays usable), ``Retry-After`` when given."""
    phrase, reason = _REASONS[code]
    status: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"testenv fault proxy: injected {code}",
        "reason": reason,
        "code": code,
    }
    if retry_after is not None:
        status["details"] = {"retryAfterSeconds": retry_after}
    body = json.dumps(status, separators=(",", ":")).encode()
    lines = [
        f"HTTP/1.1 {code} {phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-cache, private",
    ]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed request or response head: the first line's three parts and the headers."""

    first: tuple[str, str, str]
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def chunked(self) -> bool:
        return "chunked" in (self.header("transfer-encoding") or "").lower()

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None else None

    @property
    def close(self) -> bool:
        return (self.header("connection") or "").lower() == "close"


def parse_head(raw: bytes) -> Head:
    """Parse ``raw`` (up to and including the blank line); raises ValueError when malformed."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2:
        raise ValueError("malformed first line")
    first = (parts[0], parts[1], parts[2] if len(parts) > 2 else "")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header line")
        headers.append((name.strip(), value.strip()))
    return Head(first, tuple(headers), raw)


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next head on ``reader``, or None at a clean end of the stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise
    return parse_head(raw)


class Sink(Protocol):
    """Where a body goes: an asyncio.StreamWriter (or a test's stand-in)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def copy_body(
    reader: asyncio.StreamReader,
    head: Head,
    writer: Sink | None,
    *,
    until_eof: bool = False,
) -> None:
    """Copy the body that follows ``head`` to ``writer`` (or drop it when None), chunk by chunk,
    so a watch stream's events pass as they come. ``until_eof``: a response without length."""

    async def out(data: bytes) -> None:
        if writer is not None:
            writer.write(data)
            await writer.drain()

    if head.chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                trailer = size_line
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    trailer += line
                await out(trailer + b"\r\n")
                return
            await out(size_line + await reader.readexactly(size + 2))
    length = head.content_length
    if length is not None:
        while length > 0:
            data = await reader.read(min(length, 1 << 16))
            if not data:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(data)
            await out(data)
    elif until_eof:
        while data := await reader.read(1 << 16):
            await out(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _response_has_body(method: str, head: Head) -> bool:
    code = int(head.first[1])
    return method != "HEAD" and code >= 200 and code not in (204, 304)


class _Upstream:
    """The API server connection paired with one client connection, opened when first needed."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self._port = port
        self._context = context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.reader is None or self.writer is None or self.reader.at_eof():
            self.close()
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1",
                self._port,
                ssl=self._context,
                server_hostname="127.0.0.1",
                limit=_HEAD_LIMIT,
            )
        return self.reader, self.writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        self.reader = self.writer = None


class FaultProxy:
    """The proxy on ``127.0.0.1:<port>`` in front of the API server on ``upstream_port``.

    ``serving`` is the certificate it presents (the control plane's serving pair); ``ca_file``
    verifies the API server. ``seed`` makes the sequence of fault choices reproducible (the
    order requests arrive in is the operator's, so a run is reproducible only that far).
    """

    def __init__(
        self,
        upstream_port: int,
        serving: CertPair,
        ca_file: Path,
        *,
        faults: Faults = OFF,
        seed: int = 0,
    ) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.stats: collections.Counter[str] = collections.Counter()
        """Requests by what was done: ``forwarded``, a fault kind, ``watch-cut``."""
        self._faults = faults
        self._rng = random.Random(seed)
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(str(serving.cert), str(serving.key))
        self._server_ctx.set_alpn_protocols(["http/1.1"])
        self._client_ctx = ssl.create_default_context(cafile=str(ca_file))
        self._client_ctx.set_alpn_protocols(["http/1.1"])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Change the faults from now on (any thread); requests in flight keep their decision."""
        self._faults = faults

    # -- lifecycle (called from the test's thread) -------------------------------------------

    def start(self) -> FaultProxy:
        if self._loop is not None:
            raise RuntimeError("fault proxy already started")
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        return self

    def stop(self) -> None:
        """Close the listener and every connection (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the event loop's side ---------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", 0, ssl=self._server_ctx, limit=_HEAD_LIMIT
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream = _Upstream(self.upstream_port, self._client_ctx)
        try:
            while await self._exchange(reader, writer, upstream):
                pass
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError):
            # A client or the API server went away mid-exchange, or sent what is not HTTP/1.1:
            # the client sees its connection dropped. (IncompleteReadError is an EOFError.)
            _reset(writer)
        finally:
            upstream.close()
            self._clients.discard(writer)
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: _Upstream
    ) -> bool:
        """One request and its answer (or fault); True when the connection stays usable."""
        head = await read_head(reader)
        if head is None:
            return False
        watch = is_watch(head.first[1])
        faults = self._faults
        decision = decide(self._rng, faults, watch=watch)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        fault = decision.fault
        if fault is not None:
            self.stats[fault] += 1
        if fault == "reset-before":
            _reset(writer)
            return False
        if fault in ANSWERED:
            await copy_body(reader, head, None)
            code = int(fault)
            retry_after = faults.retry_after if code == 429 else None
            writer.write(error_response(code, retry_after=retry_after, keep_alive=not head.close))
            await writer.drain()
            return not head.close
        up_reader, up_writer = await upstream.open()
        up_writer.write(head.raw)
        await copy_body(reader, head, up_writer)
        await up_writer.drain()
        return await self._answer(head, decision, writer, upstream, up_reader)

    async def _answer(
        self,
        request: Head,
        decision: Decision,
        writer: asyncio.StreamWriter,
        upstream: _Upstream,
        up_reader: asyncio.StreamReader,
    ) -> bool:
        """Relay the API server's answer to a forwarded request, or drop it (reset-after, cut)."""
        resp = await read_head(up_reader)
        if resp is None:
            raise ConnectionResetError("the API server closed the connection")
        has_body = _response_has_body(request.first[0], resp)
        until_eof = has_body and not resp.chunked and resp.content_length is None
        if decision.fault == "reset-after":
            if has_body and decision.cut_after is None and not is_watch(request.first[1]):
                await copy_body(up_reader, resp, None, until_eof=until_eof)
            upstream.close()
            _reset(writer)
            return False
        writer.write(resp.raw)
        if has_body:
            try:
                async with asyncio.timeout(decision.cut_after):
                    await copy_body(up_reader, resp, writer, until_eof=until_eof)
            except TimeoutError:
                self.stats["watch-cut"] += 1
                upstream.close()
                _reset(writer)
                return False
        await writer.drain()
        self.stats["forwarded"] += 1
        return not (until_eof or resp.close or request.close)
