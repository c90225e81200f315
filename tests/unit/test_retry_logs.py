"""Logs that tell: a failure the code expects and retries (the API client's errors: connection
refused, 5xx, 429, conflicts, a 403 while a restarted API server's authorizer warms up) is one
WARNING line with the key, the reason and the next retry's delay, and no traceback; an exception
the code did not expect is logged with its traceback. Table-driven over the error kinds, for
every retry loop: the controller, the informer's reflector, leader election, the legacy watch."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from agentic_operator.clock import FakeClock, settle
from agentic_operator.kube import errors
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.legacy.watch import MONITOR_INTERVAL, LegacyWatchLoop
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.controller import Controller, Result
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.leaderelection import LeaderElector

CM = Resource("", "v1", "configmaps", "ConfigMap")
_names = itertools.count()

EXPECTED: list[Any] = [
    pytest.param(
        errors.TransportError("GET /api: connection refused"), "TransportError", id="refused"
    ),
    pytest.param(errors.RequestTimeout("GET /api: timed out"), "RequestTimeout", id="timeout"),
    pytest.param(
        errors.ServerError(503, "ServiceUnavailable", "the server is shutting down"),
        "ServerError",
        id="503",
    ),
    pytest.param(
        errors.ServerError(500, "InternalError", "etcd leader changed"), "ServerError", id="500"
    ),
    pytest.param(
        errors.TooManyRequests(429, "TooManyRequests", "too many requests", retry_after=1),
        "TooManyRequests",
        id="429",
    ),
    pytest.param(
        errors.Conflict(409, "Conflict", "the object has been modified"), "Conflict", id="409"
    ),
    pytest.param(
        errors.Forbidden(403, "Forbidden", 'User "system:serviceaccount:x:y" cannot list'),
        "Forbidden",
        id="403-after-restart",
    ),
]
UNEXPECTED: list[Any] = [
    pytest.param(ValueError("a bug"), id="ValueError"),
    pytest.param(KeyError("spec"), id="KeyError"),
    pytest.param(TypeError("NoneType is not subscriptable"), id="TypeError"),
]


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(logger)]


def assert_one_warning(records: list[logging.LogRecord], *fragments: str) -> None:
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None, "an expected failure has no traceback"
    assert "retrying in" in record.getMessage() or "retrying within" in record.getMessage()
    for fragment in fragments:
        assert fragment in record.getMessage()


def assert_traceback(records: list[logging.LogRecord]) -> None:
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None, "an unexpected exception is logged with its traceback"


# --- the controller ------------------------------------------------------------------------------


@asynccontextmanager
async def failing_controller(exc: BaseException) -> AsyncIterator[Controller]:
    async def reconcile(key: str) -> Result | None:
        raise exc

    ctrl = Controller(f"logs-ctrl-{next(_names)}", reconcile, clock=FakeClock())
    task = asyncio.create_task(ctrl.run())
    try:
        yield ctrl
    finally:
        await ctrl.stop(0)
        await task


def by_reason(ctrl: Controller, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "agentic_operator_reconcile_errors_by_reason_total",
        {"controller": ctrl.name, "reason": reason},
    )
    return value or 0.0


@pytest.mark.parametrize(("exc", "reason"), EXPECTED)
async def test_controller_logs_an_expected_failure_as_one_warning(
    exc: errors.KubeError, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with failing_controller(exc) as ctrl:
            ctrl.enqueue("ns/s1")
            await settle()
    records = lines(caplog, "agentic_operator.controller")
    assert_one_warning(records, "ns/s1", f"({reason})", str(exc))
    assert records[0].__dict__["reason"] == reason
    assert records[0].__dict__["retry_in"] > 0
    assert by_reason(ctrl, reason) == 1
    assert by_reason(ctrl, "Unexpected") == 0


@pytest.mark.parametrize("exc", UNEXPECTED)
async def test_controller_logs_an_unexpected_exception_with_its_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with failing_controller(exc) as ctrl:
            ctrl.enqueue("ns/s1")
            await settle()
    records = lines(caplog, "agentic_operator.controller")
    assert_traceback(records)
    assert "ns/s1" in records[0].getMessage()
    assert by_reason(ctrl, "Unexpected") == 1


# --- the informer's reflector ---------------------------------------------------------------------


class FailingListClient:
    """An API client whose LIST fails once with ``exc``, then never answers."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.lists = 0

    async def list_all(self, *args: Any, **kwargs: Any) -> tuple[list[Obj], str]:
        self.lists += 1
        if self.lists == 1:
            raise self.exc
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def run_reflector_once(exc: BaseException) -> FakeClock:
    clock = FakeClock()
    inf = Informer(FailingListClient(exc), CM, namespace="ns", clock=clock)  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    try:
        await settle()
        assert clock.sleepers == 1, "the reflector waits before it lists again"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return clock


@pytest.mark.parametrize(("exc", "reason"), EXPECTED)
async def test_informer_logs_an_expected_failure_as_one_warning(
    exc: errors.KubeError, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await run_reflector_once(exc)
    records = [r for r in lines(caplog, "agentic_operator.runtime.informer") if r.levelno >= 30]
    assert_one_warning(records, "configmaps", "list failed", reason)
    assert records[0].__dict__["reason"] == reason


@pytest.mark.parametrize("exc", UNEXPECTED)
async def test_informer_logs_an_unexpected_exception_with_its_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await run_reflector_once(exc)
    records = [r for r in lines(caplog, "agentic_operator.runtime.informer") if r.levelno >= 30]
    assert_traceback(records)


# --- leader election -----------------------------------------------------------------------------


class FailingLeaseClient:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        raise self.exc

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj:
        raise AssertionError("not reached")

    async def replace(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        raise AssertionError("not reached")


async def campaign_once(exc: BaseException) -> None:
    clock = FakeClock()
    elector = LeaderElector(
        FailingLeaseClient(exc), name="lease", namespace="ns", identity="me", clock=clock
    )
    task = asyncio.create_task(elector.acquire())
    try:
        await settle()
        assert clock.sleepers == 1, "the candidate waits before its next attempt"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(("exc", "reason"), EXPECTED)
async def test_leader_election_logs_an_expected_failure_as_one_warning(
    exc: errors.KubeError, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await campaign_once(exc)
    records = [
        r for r in lines(caplog, "agentic_operator.runtime.leaderelection") if r.levelno >= 30
    ]
    assert_one_warning(records, "reading lease ns/lease failed", reason)
    assert records[0].__dict__["lease"] == "ns/lease"


@pytest.mark.parametrize("exc", UNEXPECTED)
async def test_leader_election_logs_an_unexpected_exception_with_its_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await campaign_once(exc)
    records = [
        r for r in lines(caplog, "agentic_operator.runtime.leaderelection") if r.levelno >= 30
    ]
    assert_traceback(records)


# --- the legacy watch mode -----------------------------------------------------------------------


def legacy_loop(exc: BaseException) -> LegacyWatchLoop:
    async def reconcile(key: str) -> Result | None:
        raise exc

    class NoSessions:
        def list(self) -> list[Obj]:
            return []

    return LegacyWatchLoop(None, reconcile, NoSessions(), clock=FakeClock())  # type: ignore[arg-type]


@pytest.mark.parametrize(("exc", "reason"), EXPECTED)
async def test_legacy_reconcile_logs_an_expected_failure_as_one_warning(
    exc: errors.KubeError, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await legacy_loop(exc)._run_one("ns/s1")
    records = lines(caplog, "agentic_operator.legacy")
    assert_one_warning(records, "ns/s1", f"({reason})", f"{MONITOR_INTERVAL:g}s")


@pytest.mark.parametrize("exc", UNEXPECTED)
async def test_legacy_reconcile_logs_an_unexpected_exception_with_its_traceback(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await legacy_loop(exc)._run_one("ns/s1")
    assert_traceback(lines(caplog, "agentic_operator.legacy"))
