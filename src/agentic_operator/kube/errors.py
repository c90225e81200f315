"""Typed errors of the Kubernetes API and of the transport under it.

The API server reports failures as a ``Status`` object (``code``, ``reason``, ``message``,
``details``). Callers decide by *kind* (not found, conflict, transient, invalid input...), so every
status is mapped once, here, to an exception class; nobody else parses Status objects or compares
HTTP codes. Failures where no response arrived at all (connection refused or reset, DNS, TLS,
client-side timeout) are :class:`TransportError` rather than :class:`ApiError`, because there is
no status to inspect and a write may or may not have been applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson


class KubeError(Exception):
    """Base of every error raised by :mod:`agentic_operator.kube`."""


class ApiError(KubeError):
    """The API server answered with a failure ``Status``.

    ``status`` is the HTTP code (or the Status ``code`` of a watch ``ERROR`` event), ``reason`` the
    machine-readable StatusReason (``NotFound``, ``AlreadyExists``, ``Expired``...), ``message`` the
    human text, ``details`` the Status ``details`` (name, kind, causes, retryAfterSeconds).
    """

    default_status = 0

    def __init__(
        self,
        status: int | None = None,
        reason: str = "",
        message: str = "",
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = self.default_status if status is None else status
        self.reason = reason
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.status} {self.reason or type(self).__name__}"
        return f"{text}: {self.message}" if self.message else text


class BadRequest(ApiError):
    default_status = 400


class Unauthorized(ApiError):
    """Credentials missing, wrong or expired (the client refreshes them once and retries)."""

    default_status = 401


class Forbidden(ApiError):
    """Authenticated but not allowed (RBAC), or refused by admission (e.g. a quota)."""

    default_status = 403


class NamespaceTerminating(Forbidden):
    """403 from the NamespaceLifecycle admission: a create in a namespace being deleted.

    Trying again cannot succeed (the namespace refuses new content until it is gone, and its own
    cleanup removes what was there), so controllers drop the key instead of retrying. Known by the
    Status cause ``NamespaceTerminating``, or, from servers that send no cause, the message."""


NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"
_TERMINATING_TEXT = "because it is being terminated"


class NotFound(ApiError):
    default_status = 404


class MethodNotAllowed(ApiError):
    default_status = 405


class Conflict(ApiError):
    """409: a stale ``resourceVersion``, a failed precondition, a server-side apply field conflict,
    or (the subclass :class:`AlreadyExists`) a create for a name that is taken.

    The state moved under the caller: re-read and decide again, never overwrite. ``except
    Conflict`` catches AlreadyExists too; a caller for whom the two mean different things catches
    AlreadyExists first.
    """

    default_status = 409


class AlreadyExists(Conflict):
    """409 with reason ``AlreadyExists``: a create for a name that is taken."""


class Gone(ApiError):
    """410: the requested ``resourceVersion`` (or a list ``continue`` token) was compacted away.

    Raised both for HTTP 410 and for watch ``ERROR`` events with code 410 / reason ``Expired`` or
    ``Gone``; an informer answers it with a full relist.
    """

    default_status = 410


class Invalid(ApiError):
    """422: the object failed validation. ``causes`` lists ``{field, reason, message}`` entries."""

    default_status = 422

    def __init__(
        self,
        status: int | None = None,
        reason: str = "",
        message: str = "",
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        raw = (details or {}).get("causes") or []
        self.causes: list[dict[str, Any]] = [dict(c) for c in raw if isinstance(c, Mapping)]
        super().__init__(status, reason, message, details, retry_after)

    @property
    def fields(self) -> list[str]:
        """The offending field paths, in the order the server reported them, without repeats."""
        return list(dict.fromkeys(str(c["field"]) for c in self.causes if c.get("field")))

    def _describe(self) -> str:
        text = super()._describe()
        fields = self.fields
        return f"{text} (fields: {', '.join(fields)})" if fields else text


class TooManyRequests(ApiError):
    """429: throttled (API Priority and Fairness, or an eviction blocked by a budget).

    The request was not processed, so even writes may be retried after ``retry_after`` seconds.
    """

    default_status = 429


class ServerError(ApiError):
    """5xx: the server failed; reads may be retried, writes only after re-reading state."""

    default_status = 500


class ServerTimeout(ServerError):
    """504, or reason ``Timeout``/``ServerTimeout``: the server gave up; the outcome is unknown."""

    default_status = 504


class TransportError(KubeError):
    """No HTTP response: connection refused or reset, DNS failure, TLS failure, broken stream.

    A write that fails this way after it went out may have been applied (the message says so when
    the server closed the connection before answering); it is not retried by the client.
    """


class RequestTimeout(TransportError):
    """The client gave up waiting (total request timeout, or a watch stream went silent)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
    504: ServerTimeout,
}

# The StatusReason decides first (as in client-go's IsNotFound & co.); the code is the fallback
# for responses without a known reason (proxies, older servers, bare HTTP errors).
_BY_REASON: dict[str, type[ApiError]] = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "MethodNotAllowed": MethodNotAllowed,
    "AlreadyExists": AlreadyExists,
    "Conflict": Conflict,
    "Gone": Gone,
    "Expired": Gone,
    "Invalid": Invalid,
    "TooManyRequests": TooManyRequests,
    "Timeout": ServerTimeout,
    "ServerTimeout": ServerTimeout,
    "InternalError": ServerError,
    "ServiceUnavailable": ServerError,
}


def _classify(code: int, reason: str) -> type[ApiError]:
    if reason in _BY_REASON:
        return _BY_REASON[reason]
    if code in _BY_STATUS:
        return _BY_STATUS[code]
    if code >= 500:
        return ServerError
    return ApiError


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _decode_body(body: Mapping[str, Any] | bytes | str | None) -> tuple[dict[str, Any], str]:
    """The Status object if the body is one, else an empty dict plus a short text excerpt."""
    if body is None:
        return {}, ""
    if isinstance(body, Mapping):
        return dict(body), ""
    raw = body.encode() if isinstance(body, str) else body
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Proxies and load balancers answer with HTML or plain text; keep a bounded excerpt.
        return {}, raw[:200].decode("utf-8", "replace").strip()
    return (decoded, "") if isinstance(decoded, dict) else ({}, "")


def error_from_status(
    http_status: int,
    body: Mapping[str, Any] | bytes | str | None,
    headers: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> ApiError:
    """Map an HTTP failure (or a watch ``ERROR`` event, ``http_status`` 0) to its ApiError class.

    The Status ``code`` is used when the HTTP status is absent or 200 (errors inside a watch
    stream). ``Retry-After`` comes from the header, else from ``details.retryAfterSeconds``.
    """
    status_obj, text = _decode_body(body)
    code_field = status_obj.get("code")
    code = http_status
    if code in (0, 200) and isinstance(code_field, int):
        code = code_field
    reason = str(status_obj.get("reason") or "")
    message = str(status_obj.get("message") or text)
    details = status_obj.get("details")
    details = details if isinstance(details, dict) else {}

    retry_after: float | None = None
    if headers is not None:
        header = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        retry_after = parse_retry_after(header, now)
    if retry_after is None and isinstance(details.get("retryAfterSeconds"), int | float):
        retry_after = float(details["retryAfterSeconds"])

    cls = _classify(code, reason)
    if cls is Forbidden and _namespace_terminating(details, message):
        cls = NamespaceTerminating
    return cls(code, reason, message, details, retry_after)


def _namespace_terminating(details: Mapping[str, Any], message: str) -> bool:
    causes = details.get("causes")
    if isinstance(causes, list) and any(
        isinstance(c, Mapping) and c.get("reason") == NAMESPACE_TERMINATING_CAUSE for c in causes
    ):
        return True
    return _TERMINATING_TEXT in message


def is_transient(exc: BaseException) -> bool:
    """True when simply trying the same request again later may succeed.

    Transport failures, client timeouts, throttling (429) and server errors (5xx) are transient.
    Conflicts are not: they mean "re-read and decide again" (requeue at once), and Gone means
    "relist". Bare OS-level connection errors and timeouts count too, for callers that catch
    errors from outside this package.
    """
    if isinstance(exc, TransportError | TooManyRequests | ServerError):
        return True
    if isinstance(exc, ApiError):
        return False
    return isinstance(exc, ConnectionError | TimeoutError)
