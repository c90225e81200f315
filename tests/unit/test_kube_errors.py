"""Mapping of API Status objects and HTTP failures to typed errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agentic_operator.kube import errors as e


def status(code: int, reason: str = "", message: str = "", **details: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details,
    }


@pytest.mark.parametrize(
    ("http", "reason", "cls"),
    [
        (400, "BadRequest", e.BadRequest),
        (401, "Unauthorized", e.Unauthorized),
        (403, "Forbidden", e.Forbidden),
        (404, "NotFound", e.NotFound),
        (405, "MethodNotAllowed", e.MethodNotAllowed),
        (409, "AlreadyExists", e.AlreadyExists),
        (409, "Conflict", e.Conflict),
        (410, "Gone", e.Gone),
        (410, "Expired", e.Gone),
        (422, "Invalid", e.Invalid),
        (429, "TooManyRequests", e.TooManyRequests),
        (500, "InternalError", e.ServerError),
        (503, "ServiceUnavailable", e.ServerError),
        (504, "Timeout", e.ServerTimeout),
        (500, "ServerTimeout", e.ServerTimeout),
        # No (or an unknown) reason: the HTTP code decides.
        (404, "", e.NotFound),
        (409, "", e.Conflict),
        (410, "", e.Gone),
        (422, "", e.Invalid),
        (429, "", e.TooManyRequests),
        (502, "", e.ServerError),
        (504, "", e.ServerTimeout),
        (418, "", e.ApiError),
        (413, "RequestEntityTooLarge", e.ApiError),
    ],
)
def test_status_table(http: int, reason: str, cls: type[e.ApiError]) -> None:
    err = e.error_from_status(http, status(http, reason, "boom"))
    assert type(err) is cls
    assert err.status == http
    assert err.reason == reason
    assert err.message == "boom"
    assert "boom" in str(err)


def test_already_exists_is_a_conflict_but_not_vice_versa() -> None:
    exists = e.error_from_status(409, status(409, "AlreadyExists"))
    stale = e.error_from_status(409, status(409, "Conflict"))
    assert isinstance(exists, e.Conflict)
    assert not isinstance(stale, e.AlreadyExists)


@pytest.mark.parametrize("reason", ["Expired", "Gone"])
def test_watch_error_event_uses_status_code(reason: str) -> None:
    # Errors inside a watch stream arrive with HTTP 200 (or none): the Status code decides.
    err = e.error_from_status(0, status(410, reason, "too old resource version: 1 (500)"))
    assert isinstance(err, e.Gone)
    assert err.status == 410
    assert e.error_from_status(200, status(410, "")).status == 410


def test_body_as_bytes_and_non_json() -> None:
    err = e.error_from_status(404, orjson.dumps(status(404, "NotFound", "cm x not found")))
    assert isinstance(err, e.NotFound)
    assert err.message == "cm x not found"
    proxy = e.error_from_status(502, b"<html>Bad Gateway</html>")
    assert isinstance(proxy, e.ServerError)
    assert "Bad Gateway" in proxy.message
    empty = e.error_from_status(503, b"")
    assert isinstance(empty, e.ServerError)
    assert str(empty) == "503 ServerError"


def test_invalid_causes_and_message_names_fields() -> None:
    body = status(
        422,
        "Invalid",
        'ConfigMap "Bad_Name" is invalid',
        name="Bad_Name",
        kind="ConfigMap",
        causes=[
            {
                "reason": "FieldValueInvalid",
                "message": "a lowercase RFC 1123",
                "field": "metadata.name",
            },
            {"reason": "FieldValueRequired", "message": "Required value", "field": "data[k]"},
            {"reason": "FieldValueInvalid", "message": "again", "field": "metadata.name"},
        ],
    )
    err = e.error_from_status(422, body)
    assert isinstance(err, e.Invalid)
    assert len(err.causes) == 3
    assert err.causes[1] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "data[k]",
    }
    assert err.fields == ["metadata.name", "data[k]"]
    assert str(err).endswith("(fields: metadata.name, data[k])")
    assert err.details["name"] == "Bad_Name"


def test_invalid_without_causes() -> None:
    err = e.error_from_status(422, status(422, "Invalid", "nope"))
    assert isinstance(err, e.Invalid)
    assert err.causes == []
    assert err.fields == []
    assert str(err) == "422 Invalid: nope"


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert e.parse_retry_after(header, NOW) == expected


def test_too_many_requests_retry_after_header_beats_details() -> None:
    body = status(429, "TooManyRequests", "slow down", retryAfterSeconds=9)
    err = e.error_from_status(429, body, {"Retry-After": "3"}, now=NOW)
    assert isinstance(err, e.TooManyRequests)
    assert err.retry_after == 3.0
    from_details = e.error_from_status(429, body, {"Content-Type": "application/json"})
    assert from_details.retry_after == 9.0
    nothing = e.error_from_status(429, status(429, "TooManyRequests"))
    assert nothing.retry_after is None


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (e.TransportError("refused"), True),
        (e.RequestTimeout("slow"), True),
        (e.TooManyRequests(), True),
        (e.ServerError(), True),
        (e.ServerTimeout(), True),
        (e.Conflict(), False),
        (e.AlreadyExists(), False),
        (e.Gone(), False),
        (e.NotFound(), False),
        (e.Invalid(), False),
        (e.Forbidden(), False),
        (e.Unauthorized(), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError(), False),
    ],
)
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert e.is_transient(exc) is transient


def test_default_status_per_class() -> None:
    assert e.NotFound().status == 404
    assert e.AlreadyExists().status == 409
    assert e.ServerTimeout().status == 504
    assert isinstance(e.RequestTimeout("x"), e.TransportError)
    assert isinstance(e.TransportError("x"), e.KubeError)
    assert not isinstance(e.TransportError("x"), e.ApiError)


TERMINATING = (
    'limitranges "ambient-default-limits" is forbidden: unable to create new content in namespace'
    " ns-1 because it is being terminated"
)


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        # The NamespaceLifecycle admission's answer: the cause says it.
        (
            status(403, "Forbidden", TERMINATING, causes=[{"reason": "NamespaceTerminating"}]),
            e.NamespaceTerminating,
        ),
        # A server that sends no cause: the message says it.
        (status(403, "Forbidden", TERMINATING), e.NamespaceTerminating),
        (
            status(403, "Forbidden", "x", causes=[{"reason": "NamespaceTerminating"}]),
            e.NamespaceTerminating,
        ),
        # RBAC or another admission refusal stays a plain Forbidden (retried).
        (status(403, "Forbidden", 'jobs is forbidden: User "op" cannot create'), e.Forbidden),
        (
            status(403, "Forbidden", "exceeded quota", causes=[{"reason": "FieldValueInvalid"}]),
            e.Forbidden,
        ),
        # Only a 403 can be one.
        (status(409, "AlreadyExists", TERMINATING), e.AlreadyExists),
    ],
)
def test_namespace_terminating(body: dict[str, Any], cls: type[e.ApiError]) -> None:
    err = e.error_from_status(body["code"], body)
    assert type(err) is cls
    assert isinstance(err, e.Forbidden) == (body["code"] == 403)  # `except Forbidden` still holds
