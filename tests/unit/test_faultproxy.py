"""The fault proxy's pure parts: fault choice from a seeded RNG, the injected answers' HTTP
framing, the body framing it relays, and the audit log reader. Its behaviour against the API
server is proven by tests/e2e/test_faults.py."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from testenv import audit
from testenv.faultproxy import (
    FAULT_KINDS,
    OFF,
    Faults,
    copy_body,
    decide,
    error_response,
    is_watch,
    parse_head,
)


def draws(faults: Faults, n: int, *, watch: bool = False, seed: int = 7) -> list[Any]:
    rng = random.Random(seed)
    return [decide(rng, faults, watch=watch) for _ in range(n)]


def test_the_same_seed_gives_the_same_faults() -> None:
    faults = Faults(share=0.3, watch_cut=0.5, latency=0.2)
    assert draws(faults, 500, watch=True) == draws(faults, 500, watch=True)
    assert draws(faults, 500, watch=True) != draws(faults, 500, watch=True, seed=8)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.3, 1.0])
def test_the_share_of_faulted_requests_is_the_configured_one(share: float) -> None:
    decisions = draws(Faults(share=share), 20_000)
    faulted = sum(d.fault is not None for d in decisions) / len(decisions)
    assert faulted == pytest.approx(share, abs=0.01)
    assert all(d.cut_after is None for d in decisions), "a cut is for watches only"
    if share:
        kinds = Counter(d.fault for d in decisions if d.fault)
        assert set(kinds) == set(FAULT_KINDS)
        assert max(kinds.values()) / min(kinds.values()) < 1.3, f"kinds not equally likely: {kinds}"


def test_only_the_configured_kinds_occur_and_latency_applies_to_every_request() -> None:
    decisions = draws(Faults(share=0.5, kinds=("429", "reset-after"), latency=0.2), 2000)
    assert {d.fault for d in decisions} == {None, "429", "reset-after"}
    assert {d.delay for d in decisions} == {0.2}


def test_watch_cuts_happen_at_the_share_within_the_window_and_not_on_faulted_watches() -> None:
    decisions = draws(Faults(share=0.1, watch_cut=0.25, watch_cut_within=10.0), 20_000, watch=True)
    cuts = [d.cut_after for d in decisions if d.cut_after is not None]
    unfaulted = [d for d in decisions if d.fault is None]
    assert len(cuts) / len(unfaulted) == pytest.approx(0.25, abs=0.015)
    assert all(0.0 <= c <= 10.0 for c in cuts)
    assert all(d.cut_after is None for d in decisions if d.fault is not None)


def test_off_does_nothing() -> None:
    assert {(d.fault, d.cut_after, d.delay) for d in draws(OFF, 1000, watch=True)} == {
        (None, None, 0.0)
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"share": -0.1},
        {"share": 1.5},
        {"watch_cut": 2.0},
        {"kinds": ()},
        {"kinds": ("418",)},
        {"latency": -1.0},
        {"watch_cut_within": 0.0},
        {"retry_after": -1},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must be|required"):
        Faults(**kwargs)


@pytest.mark.parametrize(
    ("target", "watch"),
    [
        ("/api/v1/pods?watch=true&resourceVersion=5", True),
        ("/api/v1/pods?watch=1", True),
        ("/api/v1/pods?labelSelector=watch%3Dtrue", False),
        ("/api/v1/pods?watch=false", False),
        ("/api/v1/namespaces/watch", False),
        ("/api/v1/pods", False),
    ],
)
def test_watch_requests_are_told_by_the_query(target: str, watch: bool) -> None:
    assert is_watch(target) is watch


class _Stream(io.BytesIO):
    def close(self) -> None:  # the response closes it once the body is read; we read on
        return None


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.stream = _Stream(data)

    def makefile(self, mode: str) -> io.BytesIO:
        return self.stream


def parse_response(data: bytes) -> tuple[http.client.HTTPResponse, bytes, bytes]:
    """Parse with the standard library's HTTP client: (response, body, what follows it)."""
    sock = _Sock(data)
    resp = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    resp.begin()
    body = resp.read()
    return resp, body, sock.stream.read()


@pytest.mark.parametrize(
    ("code", "reason", "retry_after"),
    [(500, "InternalError", None), (503, "ServiceUnavailable", None), (429, "TooManyRequests", 3)],
)
def test_injected_answers_are_framed_like_the_api_servers(
    code: int, reason: str, retry_after: int | None
) -> None:
    # Two answers back to back: the first one's framing must end exactly where it should, or
    # the client would read the second as part of it (keep-alive).
    data = error_response(code, retry_after=retry_after) * 2
    resp, body, rest = parse_response(data)
    assert resp.status == code
    assert resp.getheader("Content-Type") == "application/json"
    assert resp.getheader("Retry-After") == (None if retry_after is None else str(retry_after))
    assert resp.getheader("Connection") is None
    status = json.loads(body)
    assert (status["kind"], status["code"], status["reason"]) == ("Status", code, reason)
    if retry_after is not None:
        assert status["details"] == {"retryAfterSeconds": retry_after}
    assert rest == error_response(code, retry_after=retry_after)


def test_an_injected_answer_can_close_the_connection() -> None:
    resp, _, _ = parse_response(error_response(503, keep_alive=False))
    assert resp.getheader("Connection") == "close"


class _Buffer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


CHUNKED = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"


@pytest.mark.parametrize(
    ("head", "body", "until_eof", "copied"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", b"hello", False, b"hello"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", CHUNKED, False, CHUNKED),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n",
            b"0\r\n\r\n",
            False,
            b"0\r\n\r\n",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", b"until the end", True, b"until the end"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", False, b""),
    ],
)
async def test_bodies_are_copied_exactly_and_what_follows_is_left(
    head: bytes, body: bytes, until_eof: bool, copied: bytes
) -> None:
    reader = asyncio.StreamReader()
    follows = b"" if until_eof else b"GET /next HTTP/1.1\r\n\r\n"
    reader.feed_data(body + follows)
    reader.feed_eof()
    sink = _Buffer()
    await copy_body(reader, parse_head(head), sink, until_eof=until_eof)
    assert sink.data == copied
    assert await reader.read() == follows


async def test_a_body_cut_short_is_an_error_not_a_short_copy() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"hel")
    reader.feed_eof()
    with pytest.raises(asyncio.IncompleteReadError):
        await copy_body(reader, parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), None)


def test_heads_are_parsed_case_insensitively() -> None:
    head = parse_head(
        b"POST /api/v1/x?watch=1 HTTP/1.1\r\nConnection: close\r\ncontent-length: 12\r\n\r\n"
    )
    assert head.first == ("POST", "/api/v1/x?watch=1", "HTTP/1.1")
    assert (head.content_length, head.close, head.chunked) == (12, True, False)
    with pytest.raises(ValueError, match="malformed"):
        parse_head(b"garbage\r\n\r\n")


def _event(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "stage": "ResponseComplete",
        "verb": "create",
        "user": {"username": "system:serviceaccount:ambient-code:agentic-operator"},
        "objectRef": {"resource": "jobs", "namespace": "ns", "name": "s1-job"},
        "responseStatus": {"code": 201},
    }
    for key, value in kw.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def test_job_creates_are_counted_by_name_from_the_audit_log(tmp_path: Path) -> None:
    events = [
        _event(),
        _event(objectRef={"name": "s2-job"}),
        _event(objectRef={"name": "s2-job"}),  # a duplicate
        _event(objectRef={"name": "s3-job"}, responseStatus={"code": 409}),  # AlreadyExists
        _event(objectRef={"name": "s4-job", "namespace": "other"}),
        _event(objectRef={"name": "s5-job", "resource": "pods"}),
        _event(objectRef={"name": "s6", "resource": "serviceaccounts", "subresource": "token"}),
        _event(objectRef={"name": "s7-job"}, verb="get"),
        _event(objectRef={"name": "s8-job"}, stage="Panic"),
    ]
    log = tmp_path / "audit.log"
    log.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"torn')
    read = audit.read_events(log)
    assert len(read) == len(events)
    assert audit.created(read, "jobs", "ns") == Counter({"s1-job": 1, "s2-job": 2})
    assert len(list(audit.writes(read, namespace="ns", user="someone else"))) == 0


def test_the_audit_policy_never_records_bodies() -> None:
    levels = [
        line.split(":", 1)[1].strip() for line in audit.POLICY.splitlines() if "level:" in line
    ]
    assert set(levels) == {"None", "Metadata"}
    assert audit.parse_time("2026-01-01T00:00:01.500000Z") == 1767225601.5
