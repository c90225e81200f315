"""A thin async client for the Kubernetes API on plain dicts.

Every request of a client, watches included, goes through its one aiohttp session (keep-alive
connections, no limit on their number: each watch holds one for minutes, and the token bucket,
not the pool, bounds the request rate). A pool of our own framed by h11 was measured against it
and was not cheaper beyond the noise; the hand-framed pool it would have replaced was cheaper, but
its framing was ours to maintain and it re-sent written POSTs (docs/benchmarks.md, "One HTTP
stack"). Bodies are encoded and decoded with orjson, and objects stay ``dict``s (no model
classes): decoding a watch event this way costs microseconds instead of the hundreds of
microseconds a model-based client spends.

Every request:

* waits for a token from a client-side bucket (``qps``/``burst``; a watch takes one token when it
  starts), like client-go's ``rest.Config.QPS``/``Burst``;
* carries the current Authorization header from :class:`~agentic_operator.kube.config.KubeConfig`
  (after a 401 the credentials are reloaded once and the request is repeated);
* is counted in ``rest_client_requests_total{verb,resource,code}`` and timed in
  ``rest_client_request_duration_seconds{verb,resource}``, and in :attr:`ApiClient.request_counts`;
* fails with a typed error from :mod:`agentic_operator.kube.errors`.

Repeats, from the bottom up:

* **Connection.** aiohttp never writes to an idle connection it knows to be closed (the server's
  idle timeout, an API server restart): such a request goes out on a new connection, whatever its
  method. When a connection ends after the request was written and before the answer, aiohttp
  sends it once more only if its method is idempotent in RFC 9110 (GET, HEAD, OPTIONS, TRACE, PUT,
  DELETE: :data:`RESENT_METHODS`). A POST or PATCH is never sent twice; it fails with a
  :class:`~.errors.TransportError` that says it may have been applied. (A repeated PUT leaves
  the object as the first one did, or fails with a Conflict when it carries the resourceVersion
  the first one changed; a repeated DELETE answers NotFound.)
* **401.** The credentials are reloaded once and the request is repeated: the server refused it
  without processing it.
* **Retry policy.** Reads (GET, LIST) are retried a few times on transient failures
  (:func:`~.errors.is_transient`) with exponential backoff, honouring ``Retry-After``. Writes are
  retried only on 429, which guarantees the server did not process them: after a timeout, a broken
  connection or a 5xx a write may have been applied, and only the caller (who re-reads state) can
  tell whether to repeat it.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import functools
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Literal, NotRequired, Self, TypedDict, TypeVar, Unpack
from urllib.parse import urlencode

import aiohttp
import orjson

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube import metrics
from agentic_operator.kube.codec import decode_watch_line
from agentic_operator.kube.config import KubeConfig, load_config
from agentic_operator.kube.errors import (
    ApiError,
    Gone,
    RequestTimeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
    error_from_status,
    is_transient,
)
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.ratelimit import BucketRateLimiter

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class WatchOptions(TypedDict):
    """Keyword arguments of :meth:`ApiClient.watch` and :meth:`ApiClient.watch_lines`."""

    resource_version: str
    timeout_seconds: int
    label_selector: NotRequired[str | None]
    field_selector: NotRequired[str | None]
    allow_bookmarks: NotRequired[bool]
    inactivity_timeout: NotRequired[float | None]
    """No byte for this long (default ``timeout_seconds + 30``): the stream is presumed dead."""


PatchType = Literal["merge", "json", "strategic", "apply"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # Server-side apply accepts YAML, and JSON is YAML.
    "apply": "application/apply-patch+yaml",
}

_VERB_BY_METHOD = {
    "GET": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}

_ERROR_CODE = "<error>"  # client-go's code label when no response arrived

RESENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods aiohttp sends once more when the connection ends after the request was written and
before the answer (RFC 9110's idempotent methods; tests/unit/test_client_transport.py holds it to
that)."""


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


def _path_resource(path: str) -> str:
    """The metrics ``resource`` label for a raw API path (``plural`` or ``plural.group``)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return "nonresource"
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    plural = rest[0]
    return f"{plural}.{group}" if group else plural


def _bool(value: bool) -> str:
    return "true" if value else "false"


@functools.cache
def _request_counter(verb: str, resource: str, code: str) -> Any:
    """The labelled child, looked up once per combination (label lookups cost ~4% of CPU)."""
    return metrics.REST_CLIENT_REQUESTS.labels(verb=verb, resource=resource, code=code)


@functools.cache
def _latency_histogram(verb: str, resource: str) -> Any:
    return metrics.REST_CLIENT_LATENCY.labels(verb=verb, resource=resource)


class ApiClient:
    """Async Kubernetes API client over raw dicts. Create it with :func:`from_config`."""

    def __init__(
        self,
        config: KubeConfig,
        session: aiohttp.ClientSession,
        *,
        qps: float = 100.0,
        burst: int = 200,
        user_agent: str = "agentic-operator",
        request_timeout: float = 30.0,
        max_read_retries: int = 4,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._session = session
        self._clock = clock or RealClock()
        # qps <= 0 disables client-side throttling (controller-runtime's default: rely on APF).
        self._bucket = BucketRateLimiter(qps, burst, self._clock) if qps > 0 else None
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_read_retries = max_read_retries
        self.request_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        """HTTP requests sent, by (verb, resource); retries count as separate requests."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- typed verbs -----------------------------------------------------------------------------

    async def get(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        path = res.path(namespace, name, subresource)
        return await self._call("get", str(res), "GET", path)

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a LIST: the raw ``<Kind>List`` with ``metadata.continue`` if more remain."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return await self._call("list", str(res), "GET", res.path(namespace), params=params)

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        on_page: Callable[[builtins.list[Obj]], None] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """Every object (following ``continue`` tokens) and the list's resourceVersion.

        Items get ``apiVersion``/``kind`` filled in (a List omits them per item) so they look like
        objects from GET or WATCH. If a continue token expires between pages (410), the list is
        restarted once without pagination, as client-go's pager does.

        With ``on_page`` each page is handed over as it arrives and not accumulated (the returned
        list is empty): a consumer that keeps a compact form never holds every decoded object at
        once. ``on_restart`` is called when the list starts over after an expired token.
        """
        items: builtins.list[Obj] = []
        token: str | None = None
        limit: int | None = page_size
        while True:
            try:
                page = await self.list(
                    res,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=limit,
                    continue_=token,
                )
            except Gone:
                if token is None:
                    raise
                log.info("continue token for %s expired; listing without pagination", res)
                items, token, limit = [], None, None
                if on_restart is not None:
                    on_restart()
                continue
            page_items = page.get("items") or []
            for item in page_items:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
            if on_page is not None:
                on_page(page_items)
            else:
                items.extend(page_items)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None or limit is None:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(
        self, res: Resource, namespace: str | None = None, **options: Unpack[WatchOptions]
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """Stream ``(type, object)`` events until the server ends the watch.

        Types are ADDED, MODIFIED, DELETED and BOOKMARK; an ERROR event raises its mapped
        :class:`ApiError` (a 410 raises :class:`Gone`). Malformed lines are logged and skipped.
        Timeouts and errors of the stream are those of :meth:`watch_lines`. Use with
        ``contextlib.aclosing`` to release the connection when stopping early.
        """
        lines = self.watch_lines(res, namespace, **options)
        async with contextlib.aclosing(lines):
            async for line in lines:
                event = decode_watch_line(line)
                if event is None:
                    continue
                if event[0] == "ERROR":
                    raise error_from_status(0, event[1])
                yield event

    async def watch_lines(
        self, res: Resource, namespace: str | None = None, **options: Unpack[WatchOptions]
    ) -> AsyncGenerator[bytes, None]:
        """Stream the raw watch event lines (JSON, newline removed) until the server ends the watch.

        For callers that decode events themselves (the informer, see :mod:`.codec`). If no byte
        arrives for ``inactivity_timeout`` seconds (default ``timeout_seconds + 30``), the stream
        is presumed dead and :class:`RequestTimeout` is raised, so the caller re-watches instead of
        hanging on a half-open connection; a broken stream raises :class:`TransportError`.
        """
        timeout_seconds = options["timeout_seconds"]
        params: dict[str, str] = {
            "watch": "true",
            "resourceVersion": options["resource_version"],
            "timeoutSeconds": str(timeout_seconds),
            "allowWatchBookmarks": _bool(options.get("allow_bookmarks", True)),
        }
        if label_selector := options.get("label_selector"):
            params["labelSelector"] = label_selector
        if field_selector := options.get("field_selector"):
            params["fieldSelector"] = field_selector
        inactivity_timeout = options.get("inactivity_timeout")
        idle = inactivity_timeout if inactivity_timeout is not None else timeout_seconds + 30.0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=idle)
        resource = str(res)
        response = await self._send_stream(
            "watch", resource, res.path(namespace), params=params, client_timeout=timeout
        )
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

    async def create(
        self,
        res: Resource,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """POST ``body``. With a ``subresource`` (e.g. ``token``, ``eviction``) the object's name is
        taken from ``body.metadata.name``."""
        name = (body.get("metadata") or {}).get("name") if subresource else None
        params = self._write_params(dry_run, field_manager)
        path = res.path(namespace, name, subresource)
        return await self._call("create", str(res), "POST", path, params=params, body=body)

    async def replace(
        self,
        res: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        """PUT: an optimistic update; a stale ``metadata.resourceVersion`` raises Conflict."""
        params = self._write_params(dry_run, field_manager)
        path = res.path(namespace, name, subresource)
        return await self._call("update", str(res), "PUT", path, params=params, body=body)

    async def patch(
        self,
        res: Resource,
        name: str,
        body: Obj | builtins.list[Obj],
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        """PATCH with a merge, JSON (a list of operations), strategic or server-side apply patch.

        Server-side apply needs ``field_manager``; ``force`` takes over conflicting fields.
        """
        if patch_type not in _PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = self._write_params(dry_run, field_manager)
        if patch_type == "apply" and force:
            params["force"] = "true"
        return await self._call(
            "patch",
            str(res),
            "PATCH",
            res.path(namespace, name, subresource),
            params=params,
            body=body,
            content_type=_PATCH_CONTENT_TYPES[patch_type],
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        preconditions: Mapping[str, str] | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> Obj | None:
        """DELETE with optional preconditions (``uid``/``resourceVersion``; a mismatch raises
        Conflict). Returns the object when the server still holds it (finalizers, graceful pod
        deletion), None when it answered with a success Status."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            options["dryRun"] = ["All"]
        result = await self._call(
            "delete", str(res), "DELETE", res.path(namespace, name), body=options
        )
        return None if result.get("kind") == "Status" else result

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Obj | builtins.list[Obj] | None = None,
        content_type: str | None = None,
    ) -> Obj:
        """Any API call by path (e.g. ``/version``, a subresource the verbs above do not cover).

        GETs are retried like other reads; other methods follow the write rules.
        """
        method = method.upper()
        verb = _VERB_BY_METHOD.get(method, method.lower())
        return await self._call(
            verb,
            _path_resource(path),
            method,
            path,
            params=params,
            body=body,
            content_type=content_type,
        )

    async def server_version(self) -> Obj:
        """``GET /version``: a cheap reachability and credentials check for start-up."""
        return await self._call("get", "nonresource", "GET", "/version")

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _write_params(dry_run: bool, field_manager: str | None) -> dict[str, str]:
        params: dict[str, str] = {}
        if dry_run:
            params["dryRun"] = "All"
        if field_manager:
            params["fieldManager"] = field_manager
        return params

    async def _call(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Obj | builtins.list[Obj] | None = None,
        content_type: str | None = None,
    ) -> Obj:
        """Send with the retry policy of ``verb`` and decode the JSON answer."""
        data = orjson.dumps(body) if body is not None else None
        is_read = method == "GET"
        attempt = 0
        while True:
            try:
                raw = await self._exchange(
                    verb,
                    resource,
                    method,
                    path,
                    params=params,
                    data=data,
                    content_type=content_type,
                )
                if not raw:
                    return {}
                try:
                    decoded = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise TransportError(f"{method} {path}: response is not JSON") from exc
                if not isinstance(decoded, dict):
                    raise TransportError(f"{method} {path}: response is not a JSON object")
                return decoded
            except (ApiError, TransportError) as exc:
                retryable = is_transient(exc) if is_read else isinstance(exc, TooManyRequests)
                if not retryable or attempt >= self._max_read_retries:
                    raise
                delay = self._retry_delay(exc, attempt)
                log.debug("%s %s failed (%s); retry %d in %.2fs", method, path, exc, attempt, delay)
                attempt += 1
                await self._clock.sleep(delay)

    @staticmethod
    def _retry_delay(exc: BaseException, attempt: int) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), 60.0)
        base = min(0.2 * 2.0**attempt, 5.0)
        return base * random.uniform(0.8, 1.2)

    async def _throttle(self) -> None:
        if self._bucket is not None:
            delay = self._bucket.when("")
            if delay > 0:
                await self._clock.sleep(delay)

    async def _headers(self, data: bytes | None, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        auth = await self.config.authorization()
        if auth:
            headers["Authorization"] = auth
        if data is not None:
            headers["Content-Type"] = content_type or "application/json"
        return headers

    async def _attempts(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        perform: Callable[[dict[str, str]], Awaitable[tuple[int, Mapping[str, str], _T]]],
        error_body: Callable[[_T], Awaitable[bytes]],
        *,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> _T:
        """What every request goes through: the token bucket, fresh credentials, the counters and
        the latency histogram, typed errors, and after a 401 one credentials reload and a repeat
        (the server did not process the request).

        ``perform(headers)`` sends one attempt and returns ``(status, headers, payload)``; the
        payload of a 2xx answer is returned, ``error_body(payload)`` gives the body of any other.
        """
        await self._throttle()
        refreshed = False
        while True:
            headers = await self._headers(data, content_type)
            self.request_counts[(verb, resource)] += 1
            start = self._clock.now()
            code = _ERROR_CODE
            try:
                status, response_headers, payload = await perform(headers)
                code = str(status)
            except TimeoutError:
                raise RequestTimeout(f"{method} {path}: timed out") from None
            except aiohttp.ServerDisconnectedError as exc:
                raise TransportError(_disconnected(method, path)) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(f"{method} {path}: {exc!r}") from exc
            finally:
                _request_counter(verb, resource, code).inc()
                _latency_histogram(verb, resource).observe(max(0.0, self._clock.now() - start))
            if status < 400:
                return payload
            error = error_from_status(status, await error_body(payload), response_headers)
            if isinstance(error, Unauthorized) and not refreshed:
                refreshed = True
                await self.config.refresh()
                continue
            raise error

    async def _exchange(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> bytes:
        """One request whose answer is read whole; returns the body of a 2xx answer."""
        target = path + ("?" + urlencode(params) if params else "")

        async def perform(headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
            async with self._session.request(
                method,
                self.config.host + target,
                data=data,
                headers=headers,
                timeout=self._timeout,
                **self._aiohttp_connection(),
            ) as response:
                return response.status, response.headers, await response.read()

        return await self._attempts(
            verb,
            resource,
            method,
            path,
            perform,
            _body_as_is,
            data=data,
            content_type=content_type,
        )

    def _aiohttp_connection(self) -> dict[str, Any]:
        """TLS, server name and proxy of every aiohttp request (read per request: a credential
        reload may replace the client certificate)."""
        return {
            "ssl": self.config.ssl_context or True,
            "server_hostname": self.config.tls_server_name,
            "proxy": self.config.proxy,
        }

    async def _send_stream(
        self,
        verb: str,
        resource: str,
        path: str,
        *,
        params: Mapping[str, str],
        client_timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """A GET whose 2xx response is returned unread, for streaming (watches), via aiohttp."""
        url = self.config.host + path

        async def perform(
            headers: dict[str, str],
        ) -> tuple[int, Mapping[str, str], aiohttp.ClientResponse]:
            response = await self._session.request(
                "GET",
                url,
                params=params,
                headers=headers,
                timeout=client_timeout,
                **self._aiohttp_connection(),
            )
            return response.status, response.headers, response

        return await self._attempts(verb, resource, "GET", path, perform, _drain)


def _disconnected(method: str, path: str) -> str:
    """What a connection that ended after the request went out and before the answer means."""
    text = f"{method} {path}: the server closed the connection before answering"
    if method in RESENT_METHODS:
        return f"{text}, also when the request was sent once more"
    return f"{text}; the request may have been applied, and a {method} is not sent twice"


async def _body_as_is(body: bytes) -> bytes:
    return body


async def _drain(response: aiohttp.ClientResponse) -> bytes:
    """The body of an error answer on a streaming request (empty if it cannot be read)."""
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return b""
    finally:
        response.release()


async def from_config(
    config: KubeConfig,
    *,
    qps: float = 100.0,
    burst: int = 200,
    user_agent: str = "agentic-operator",
    request_timeout: float = 30.0,
    max_read_retries: int = 4,
    clock: Clock | None = None,
) -> ApiClient:
    """A client for ``config`` with its own aiohttp session (close it with
    :meth:`ApiClient.close`). The connector does not limit connections: every watch holds one for
    minutes, and the token bucket, not the pool, bounds the request rate.
    """
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    return ApiClient(
        config,
        session,
        qps=qps,
        burst=burst,
        user_agent=user_agent,
        request_timeout=request_timeout,
        max_read_retries=max_read_retries,
        clock=clock,
    )


async def connect(
    kubeconfig: str | None = None, *, context: str | None = None, **kw: Any
) -> ApiClient:
    """:func:`load_config` then :func:`from_config` (keyword arguments go to the latter)."""
    return await from_config(await load_config(kubeconfig, context), **kw)
