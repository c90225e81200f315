"""Watch streams: the query of a watch, and its body read as newline-delimited JSON lines.

Watches stay on aiohttp (not the request pool): a watch is one request read for minutes, so what
aiohttp spends per request is paid once per watch, and reading its body is a chunk read per
event either way (docs/benchmarks.md, "One HTTP stack").
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import NotRequired, TypedDict

import aiohttp

from agentic_operator.kube.errors import RequestTimeout, TransportError


class WatchOptions(TypedDict):
    """Keyword arguments of :meth:`ApiClient.watch` and :meth:`ApiClient.watch_lines`."""

    resource_version: str
    timeout_seconds: int
    label_selector: NotRequired[str | None]
    field_selector: NotRequired[str | None]
    allow_bookmarks: NotRequired[bool]
    inactivity_timeout: NotRequired[float | None]
    """No byte for this long (default ``timeout_seconds + 30``): the stream is presumed dead."""


class WatchLineSplitter:
    """Reassembles newline-delimited JSON from arbitrary chunks of a watch response body.

    aiohttp's own line reader refuses lines above 64 KiB; Kubernetes objects can be larger, so the
    body is read in chunks and split here without a length limit.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Complete lines found so far (without the newline); the tail is kept for later."""
        if b"\n" not in chunk:
            self._partial += chunk
            return []
        lines = chunk.split(b"\n")
        if self._partial:
            # Only the line that straddles two chunks is copied again.
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        return lines

    def rest(self) -> bytes:
        """Whatever followed the last newline (a final event without a trailing newline)."""
        rest, self._partial = self._partial, b""
        return rest


def watch_query(options: WatchOptions) -> tuple[dict[str, str], float]:
    """The query parameters of a watch and its inactivity timeout in seconds."""
    timeout_seconds = options["timeout_seconds"]
    params: dict[str, str] = {
        "watch": "true",
        "resourceVersion": options["resource_version"],
        "timeoutSeconds": str(timeout_seconds),
        "allowWatchBookmarks": "true" if options.get("allow_bookmarks", True) else "false",
    }
    if label_selector := options.get("label_selector"):
        params["labelSelector"] = label_selector
    if field_selector := options.get("field_selector"):
        params["fieldSelector"] = field_selector
    inactivity_timeout = options.get("inactivity_timeout")
    idle = inactivity_timeout if inactivity_timeout is not None else timeout_seconds + 30.0
    return params, idle


def watch_timeout(idle: float) -> aiohttp.ClientTimeout:
    """No limit on the whole watch, ``idle`` seconds at most between two reads."""
    return aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=idle)


async def read_lines(
    response: aiohttp.ClientResponse, resource: str, idle: float
) -> AsyncGenerator[bytes, None]:
    """The lines of a watch body until the server ends it; releases the response when done.

    No byte for ``idle`` seconds raises :class:`RequestTimeout`, a broken stream
    :class:`TransportError`.
    """
    splitter = WatchLineSplitter()
    try:
        while True:
            try:
                chunk = await response.content.readany()
            except TimeoutError:
                raise RequestTimeout(
                    f"watch {resource}: no data for {idle:.0f}s, stream presumed dead"
                ) from None
            except aiohttp.ClientError as exc:
                raise TransportError(f"watch {resource}: stream broken: {exc!r}") from exc
            if not chunk:
                rest = splitter.rest()
                if rest:
                    yield rest
                return
            for line in splitter.feed(chunk):
                yield line
    finally:
        response.release()
