"""How one API call goes out: the plumbing under :class:`~agentic_operator.kube.client.ApiClient`.

A request/response call goes through the keep-alive :class:`~.pool.ConnectionPool` when the client
has one, else (a proxied kubeconfig, or a client built on an aiohttp session alone) through
aiohttp; watches always go through aiohttp (:meth:`Transport._send_stream`).

Every request:

* waits for a token from a client-side bucket (``qps``/``burst``; a watch takes one token when it
  starts), like client-go's ``rest.Config.QPS``/``Burst``;
* carries the current Authorization header from :class:`~agentic_operator.kube.config.KubeConfig`
  (after a 401 the credentials are reloaded once and the request is repeated);
* is counted in ``rest_client_requests_total{verb,resource,code}`` and timed in
  ``rest_client_request_duration_seconds{verb,resource}``, and in :attr:`ApiClient.request_counts`;
* fails with a typed error from :mod:`agentic_operator.kube.errors`.

Repeats, from the bottom up:

* **Connection.** Neither transport writes to an idle connection it has seen closed (the server's
  idle timeout, an API server restart): such a request goes out on a new connection, whatever its
  method. When a connection ends after the request was written, the pool sends it once more only
  if its method is GET, HEAD, OPTIONS or TRACE (:data:`~.pool.REPLAYABLE_METHODS`), the connection
  was a reused one and no byte of the answer had arrived: Go's rule. aiohttp (the proxy case) also
  sends a PUT or DELETE once more (:data:`~.transport.AIOHTTP_RESENT_METHODS`). Any other written
  request (always a POST or PATCH) fails with a :class:`~.errors.TransportError` that says it may
  have been applied.
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
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlencode

import aiohttp
import orjson

from agentic_operator.clock import Clock, RealClock
from agentic_operator.kube import metrics
from agentic_operator.kube.config import KubeConfig
from agentic_operator.kube.errors import (
    ApiError,
    RequestTimeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
    error_from_status,
    is_transient,
)
from agentic_operator.kube.pool import REPLAYABLE_METHODS, ConnectionDropped, ConnectionPool
from agentic_operator.kube.resources import Obj
from agentic_operator.ratelimit import BucketRateLimiter

log = logging.getLogger("agentic_operator.kube.client")

_T = TypeVar("_T")

_ERROR_CODE = "<error>"  # client-go's code label when no response arrived

AIOHTTP_RESENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""Methods aiohttp sends once more when the connection ends after the request was written and
before the answer (RFC 9110's idempotent methods; tests/unit/test_client_transport.py holds it to
that). Only the aiohttp path (a proxied kubeconfig) does this; the pool follows Go's rule."""

Perform = Callable[[dict[str, str]], Awaitable[tuple[int, Mapping[str, str], _T]]]


@functools.cache
def _request_counter(verb: str, resource: str, code: str) -> Any:
    """The labelled child, looked up once per combination (label lookups cost ~4% of CPU)."""
    return metrics.REST_CLIENT_REQUESTS.labels(verb=verb, resource=resource, code=code)


@functools.cache
def _latency_histogram(verb: str, resource: str) -> Any:
    return metrics.REST_CLIENT_LATENCY.labels(verb=verb, resource=resource)


class Transport:
    """The request machinery of an API client; :class:`~.client.ApiClient` adds the verbs."""

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
        pool: ConnectionPool | None = None,
    ) -> None:
        """``pool`` carries the request/response calls when given; without it, and for watches,
        ``session`` does."""
        self.config = config
        self._session = session
        self._pool = pool
        self._clock = clock or RealClock()
        # qps <= 0 disables client-side throttling (controller-runtime's default: rely on APF).
        self._bucket = BucketRateLimiter(qps, burst, self._clock) if qps > 0 else None
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._max_read_retries = max_read_retries
        self.request_counts: collections.Counter[tuple[str, str]] = collections.Counter()
        """HTTP requests sent, by (verb, resource); retries count as separate requests (a re-send
        inside the pool or inside aiohttp does not)."""

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
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
        """Send with the retry policy of ``verb`` and decode the JSON answer.

        Reads (GET) are retried on transient failures (:func:`~.errors.is_transient`) with
        exponential backoff, honouring ``Retry-After``; writes only on 429, which guarantees the
        server did not process them.
        """
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
                return _decode_object(raw, method, path)
            except (ApiError, TransportError) as exc:
                retryable = is_transient(exc) if is_read else isinstance(exc, TooManyRequests)
                if not retryable or attempt >= self._max_read_retries:
                    raise
                delay = _retry_delay(exc, attempt)
                log.debug("%s %s failed (%s); retry %d in %.2fs", method, path, exc, attempt, delay)
                attempt += 1
                await self._clock.sleep(delay)

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
        perform: Perform[_T],
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
            except ConnectionDropped as exc:
                raise TransportError(_dropped(method, path, exc)) from exc
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
        """One request whose answer is read whole; returns the body of a 2xx answer. Through the
        pool when there is one, else through aiohttp."""
        target = path + ("?" + urlencode(params) if params else "")
        pool = self._pool
        perform: Perform[bytes]
        if pool is not None:
            time_limit = self._timeout.total

            async def perform(headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
                answer = await pool.request(method, target, headers.items(), data, time_limit)
                return answer.status, answer.headers, answer.body

        else:

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
            verb, resource, method, path, perform, _body_as_is, data=data, content_type=content_type
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


def _decode_object(raw: bytes, method: str, path: str) -> Obj:
    if not raw:
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TransportError(f"{method} {path}: response is not JSON") from exc
    if not isinstance(decoded, dict):
        raise TransportError(f"{method} {path}: response is not a JSON object")
    return decoded


def _retry_delay(exc: BaseException, attempt: int) -> float:
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(float(retry_after), 60.0)
    base = min(0.2 * 2.0**attempt, 5.0)
    return base * random.uniform(0.8, 1.2)


def _dropped(method: str, path: str, exc: ConnectionDropped) -> str:
    """What a pool connection that ended before the whole answer means for the request."""
    text = f"{method} {path}: {exc}"
    if exc.written and method not in REPLAYABLE_METHODS:
        return f"{text}; the request may have been applied, and a {method} is not sent twice"
    if exc.resent:
        return f"{text}, also when the request was sent once more"
    return text


def _disconnected(method: str, path: str) -> str:
    """What an aiohttp connection that ended after the request went out and before the answer
    means."""
    text = f"{method} {path}: the server closed the connection before answering"
    if method in AIOHTTP_RESENT_METHODS:
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
