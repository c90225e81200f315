"""Controller: workers, result handling, exception recovery, metrics, event wiring (FakeClock)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentic_operator.clock import FakeClock, settle
from agentic_operator.kube.errors import NamespaceTerminating
from agentic_operator.kube.resources import Obj
from agentic_operator.ratelimit import ItemExponentialFailureRateLimiter
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.controller import Controller, Result, TerminalError
from agentic_operator.runtime.predicates import (
    GENERATION_CHANGED,
    RESOURCE_VERSION_CHANGED,
    Predicate,
    all_of,
    any_of,
    enqueue_controller_owner,
    enqueue_object,
)

_names = itertools.count()


@dataclass
class Harness:
    clock: FakeClock
    ctrl: Controller
    calls: list[tuple[float, str]] = field(default_factory=list)

    def times(self, key: str) -> list[float]:
        start = 1000.0  # FakeClock's default start
        return [round(t - start, 6) for t, k in self.calls if k == key]

    def metric(self, family: str, **labels: str) -> float:
        value = REGISTRY.get_sample_value(family, {"controller": self.ctrl.name, **labels})
        return 0.0 if value is None else value


Behaviour = Callable[[str, int], Any]
"""(key, attempt number from 0) -> a Result/None to return, or an exception to raise."""


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Harness]]:
    """Builds a running controller whose reconcile follows a scripted behaviour."""
    running: list[tuple[Controller, asyncio.Future[None]]] = []

    def build(
        behaviour: Behaviour,
        *,
        workers: int = 1,
        duration: float = 0.0,
        base: float = 1.0,
        cap: float = 1000.0,
    ) -> Harness:
        clock = FakeClock()
        attempts: dict[str, int] = {}
        harness: Harness

        async def reconcile(key: str) -> Result | None:
            harness.calls.append((clock.now(), key))
            n = attempts.get(key, 0)
            attempts[key] = n + 1
            if duration:
                await clock.sleep(duration)
            outcome = behaviour(key, n)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome  # type: ignore[no-any-return]

        ctrl = Controller(
            f"test-ctrl-{next(_names)}",
            reconcile,
            max_concurrent_reconciles=workers,
            rate_limiter=ItemExponentialFailureRateLimiter(base=base, cap=cap),
            clock=clock,
        )
        harness = Harness(clock, ctrl)
        running.append((ctrl, asyncio.ensure_future(ctrl.run())))
        return harness

    yield build
    for ctrl, task in running:
        await ctrl.stop(0)
        await asyncio.wait_for(task, timeout=5)


def ok(_key: str, _n: int) -> Result | None:
    return None


# --- Workers --------------------------------------------------------------------------------------


async def test_workers_run_concurrently_and_never_more_than_n() -> None:
    clock = FakeClock()
    active = 0
    peak = 0

    async def reconcile(_key: str) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await clock.sleep(1.0)
        finally:
            active -= 1

    name = f"test-ctrl-{next(_names)}"
    ctrl = Controller(name, reconcile, max_concurrent_reconciles=3, clock=clock)
    run = asyncio.ensure_future(ctrl.run())
    for i in range(10):
        ctrl.enqueue(f"ns/k{i}")
    await settle()

    def gauge(family: str) -> float | None:
        return REGISTRY.get_sample_value(family, {"controller": name})

    assert active == 3  # three really in flight at once
    assert gauge("controller_runtime_active_workers") == 3
    assert gauge("controller_runtime_max_concurrent_reconciles") == 3
    for _ in range(4):
        await clock.advance(1.0)
    assert active == 0
    assert peak == 3
    assert len(ctrl.queue) == 0
    assert gauge("controller_runtime_active_workers") == 0
    assert (
        REGISTRY.get_sample_value(
            "controller_runtime_reconcile_total", {"controller": name, "result": "success"}
        )
        == 10
    )
    await ctrl.stop(0)
    await asyncio.wait_for(run, timeout=5)


async def test_one_key_is_never_reconciled_concurrently(make: Callable[..., Harness]) -> None:
    h = make(ok, workers=4, duration=1.0)
    h.ctrl.enqueue("ns/a")
    await settle()
    for _ in range(3):
        h.ctrl.enqueue("ns/a")  # arrives while "ns/a" is in flight
    await settle()
    assert h.times("ns/a") == [0.0]  # not started a second time yet
    await h.clock.advance(1.0)
    assert h.times("ns/a") == [0.0, 1.0]  # once more, after the first finished
    await h.clock.advance(5.0)
    assert h.times("ns/a") == [0.0, 1.0]


# --- Result handling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "label"),
    [(None, "success"), (Result(), "success"), (Result(requeue=False), "success")],
)
async def test_success_forgets_and_is_counted(
    make: Callable[..., Harness], outcome: Result | None, label: str
) -> None:
    h = make(lambda _k, n: RuntimeError("boom") if n == 0 else outcome)
    h.ctrl.enqueue("ns/a")
    await settle()
    assert h.ctrl.queue.num_requeues("ns/a") == 1
    await h.clock.advance(1.0)
    assert h.times("ns/a") == [0.0, 1.0]
    assert h.ctrl.queue.num_requeues("ns/a") == 0  # forgotten
    assert h.metric("controller_runtime_reconcile_total", result=label) == 1
    await h.clock.advance(100.0)
    assert len(h.calls) == 2


async def test_exception_is_retried_with_backoff_and_the_worker_survives(
    make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make(lambda k, n: ValueError("transient") if k == "ns/bad" and n < 3 else None, workers=1)
    with caplog.at_level(logging.ERROR):
        h.ctrl.enqueue("ns/bad")
        await settle()
        h.ctrl.enqueue("ns/good")  # the only worker is still alive after the exception
        await settle()
        assert h.times("ns/good") == [0.0]
        await h.clock.advance(10.0)
    assert h.times("ns/bad") == [0.0, 1.0, 3.0, 7.0]  # 1 s, 2 s, 4 s backoff
    assert h.ctrl.queue.num_requeues("ns/bad") == 0  # forgotten after the success
    assert h.metric("controller_runtime_reconcile_errors_total") == 3
    assert h.metric("controller_runtime_reconcile_total", result="error") == 3
    assert h.metric("controller_runtime_reconcile_total", result="success") == 2
    assert h.metric("controller_runtime_reconcile_panics_total") == 0
    errors = [r for r in caplog.records if "ns/bad" in r.getMessage()]
    assert len(errors) == 3
    assert all(r.exc_info is not None for r in errors)  # logged with the traceback


@pytest.mark.parametrize(
    ("exc", "panic"),
    [
        (KeyError("spec"), True),
        (AttributeError("x"), True),
        (TypeError("x"), True),
        (ZeroDivisionError(), True),
        (RuntimeError("api down"), False),
        (OSError("reset"), False),
        (TimeoutError(), False),
    ],
)
async def test_bug_like_exceptions_count_as_panics(
    make: Callable[..., Harness], exc: Exception, panic: bool
) -> None:
    h = make(lambda _k, n: exc if n == 0 else None)
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(1.0)
    assert h.times("ns/a") == [0.0, 1.0]  # retried either way
    assert h.metric("controller_runtime_reconcile_panics_total") == (1 if panic else 0)
    assert h.metric("controller_runtime_reconcile_errors_total") == 1


async def test_a_wrong_return_type_is_an_error_not_a_dead_worker(
    make: Callable[..., Harness],
) -> None:
    h = make(lambda k, n: "yes" if k == "ns/a" and n == 0 else None)
    h.ctrl.enqueue("ns/a")
    await settle()
    h.ctrl.enqueue("ns/b")
    await settle()
    assert h.times("ns/b") == [0.0]  # the single worker is alive
    await h.clock.advance(1.0)
    assert h.times("ns/a") == [0.0, 1.0]  # retried with backoff
    assert h.metric("controller_runtime_reconcile_panics_total") == 1


async def reconcile_once_and_wait(h: Harness, key: str) -> None:
    """Reconcile ``key`` once, then let a long time pass: a key dropped is never retried."""
    h.ctrl.enqueue(key)
    await settle()
    await h.clock.advance(10_000.0)
    assert h.times(key) == [0.0]
    assert h.ctrl.queue.num_requeues(key) == 0
    assert h.ctrl.queue.waiting == 0


async def a_new_event_reconciles_it_again(h: Harness, key: str) -> None:
    h.ctrl.enqueue(key)
    await settle()
    assert h.times(key) == [0.0, 10_000.0]


async def test_terminal_error_is_not_retried(make: Callable[..., Harness]) -> None:
    h = make(lambda _k, _n: TerminalError("invalid spec"))
    await reconcile_once_and_wait(h, "ns/a")
    assert h.metric("controller_runtime_terminal_reconcile_errors_total") == 1
    assert h.metric("controller_runtime_reconcile_errors_total") == 1
    assert h.metric("controller_runtime_reconcile_total", result="error") == 1
    await a_new_event_reconciles_it_again(h, "ns/a")


async def test_requeue_after_is_honoured_and_forgets(make: Callable[..., Harness]) -> None:
    h = make(
        lambda _k, n: (
            RuntimeError("x") if n == 0 else Result(requeue_after=30.0) if n == 1 else None
        )
    )
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(1.0)  # the retry after the error (1 s backoff)
    assert h.ctrl.queue.num_requeues("ns/a") == 0  # requeue_after forgets the failures
    await h.clock.advance(29.9)
    assert h.times("ns/a") == [0.0, 1.0]
    await h.clock.advance(0.1)
    assert h.times("ns/a") == [0.0, 1.0, 31.0]
    assert h.metric("controller_runtime_reconcile_total", result="requeue_after") == 1


async def test_requeue_after_wins_over_requeue(make: Callable[..., Harness]) -> None:
    h = make(lambda _k, n: Result(requeue=True, requeue_after=5.0) if n == 0 else None)
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(4.9)
    assert h.times("ns/a") == [0.0]  # not the 1 s backoff
    await h.clock.advance(0.1)
    assert h.times("ns/a") == [0.0, 5.0]


async def test_requeue_uses_backoff(make: Callable[..., Harness]) -> None:
    h = make(lambda _k, n: Result(requeue=True) if n < 4 else None, cap=4.0)
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(20.0)
    assert h.times("ns/a") == [0.0, 1.0, 3.0, 7.0, 11.0]  # 1, 2, 4, then capped at 4
    assert h.metric("controller_runtime_reconcile_total", result="requeue") == 4
    assert h.ctrl.queue.num_requeues("ns/a") == 0


async def test_reconcile_time_is_measured_on_the_clock(make: Callable[..., Harness]) -> None:
    h = make(ok, duration=2.0)
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(2.0)
    assert h.metric("controller_runtime_reconcile_time_seconds_count") == 1
    assert h.metric("controller_runtime_reconcile_time_seconds_sum") == pytest.approx(2.0)
    assert h.metric("controller_runtime_reconcile_time_seconds_bucket", le="1.0") == 0
    assert h.metric("controller_runtime_reconcile_time_seconds_bucket", le="2.0") == 1


async def test_work_queue_metrics_carry_the_controller_name(make: Callable[..., Harness]) -> None:
    h = make(lambda _k, n: RuntimeError("x") if n == 0 else None)
    h.ctrl.enqueue("ns/a")
    await settle()
    await h.clock.advance(1.0)
    name = h.ctrl.name
    assert h.metric("workqueue_adds_total", name=name) == 2
    assert h.metric("workqueue_retries_total", name=name) == 1


# --- Stopping -------------------------------------------------------------------------------------


async def test_stop_lets_in_flight_finish_within_grace_and_drops_queued() -> None:
    clock = FakeClock()
    finished: list[str] = []

    async def reconcile(key: str) -> None:
        await clock.sleep(5.0)
        finished.append(key)

    ctrl = Controller("stop-ok", reconcile, clock=clock, metrics=False)
    run = asyncio.ensure_future(ctrl.run())
    ctrl.enqueue("ns/a")
    ctrl.enqueue("ns/b")
    await settle()
    stopping = asyncio.ensure_future(ctrl.stop(grace=10.0))
    await settle()
    assert not stopping.done()
    ctrl.enqueue("ns/c")  # ignored: no new work after stop
    await clock.advance(5.0)
    await asyncio.wait_for(stopping, timeout=5)
    await asyncio.wait_for(run, timeout=5)
    assert finished == ["ns/a"]  # in flight finished; queued "ns/b" never started


async def test_stop_cancels_reconciles_that_outlive_the_grace() -> None:
    clock = FakeClock()
    cancelled: list[str] = []

    async def reconcile(key: str) -> None:
        try:
            await clock.sleep(3600.0)
        except asyncio.CancelledError:
            cancelled.append(key)
            raise

    ctrl = Controller("stop-cancel", reconcile, clock=clock, max_concurrent_reconciles=2)
    run = asyncio.ensure_future(ctrl.run())
    ctrl.enqueue("ns/a")
    ctrl.enqueue("ns/b")
    await settle()
    stopping = asyncio.ensure_future(ctrl.stop(grace=30.0))
    await settle()  # stop() has started: the grace period runs from here
    await clock.advance(29.0)
    assert not stopping.done()
    assert cancelled == []
    await clock.advance(1.0)
    await asyncio.wait_for(stopping, timeout=5)
    await asyncio.wait_for(run, timeout=5)
    assert sorted(cancelled) == ["ns/a", "ns/b"]
    assert ctrl.queue.processing == 0  # done() ran for the cancelled keys
    active = REGISTRY.get_sample_value(
        "controller_runtime_active_workers", {"controller": "stop-cancel"}
    )
    assert active == 0


async def test_stop_before_run_makes_run_return() -> None:
    ctrl = Controller("stop-first", ok_reconcile, clock=FakeClock(), metrics=False)
    await ctrl.stop(0)
    await asyncio.wait_for(ctrl.run(), timeout=5)


async def ok_reconcile(_key: str) -> None:
    return None


# --- Event wiring ---------------------------------------------------------------------------------


class FakeSource:
    """Stands in for an informer: records the handlers and lets a test fire events."""

    def __init__(self) -> None:
        self.handlers: list[tuple[Any, Any, Any]] = []

    def add_handler(
        self,
        on_add: Callable[[Obj], None],
        on_update: Callable[[Obj, Obj], None],
        on_delete: Callable[[Obj], None],
    ) -> None:
        self.handlers.append((on_add, on_update, on_delete))

    def add(self, obj: Obj) -> None:
        for on_add, _, _ in self.handlers:
            on_add(obj)

    def update(self, old: Obj, new: Obj) -> None:
        for _, on_update, _ in self.handlers:
            on_update(old, new)

    def delete(self, obj: Obj) -> None:
        for _, _, on_delete in self.handlers:
            on_delete(obj)


def obj(
    name: str,
    ns: str | None = "ns",
    *,
    generation: int = 1,
    rv: str = "1",
    owners: list[dict[str, Any]] | None = None,
) -> Obj:
    meta: dict[str, Any] = {"name": name, "generation": generation, "resourceVersion": rv}
    if ns:
        meta["namespace"] = ns
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"metadata": meta}


def session_ref(name: str, *, controller: bool = True, **over: Any) -> dict[str, Any]:
    ref = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "name": name,
        "uid": "u-1",
        "controller": controller,
    }
    ref.update(over)
    return ref


def idle_controller() -> Controller:
    return Controller(f"watch-{next(_names)}", ok_reconcile, clock=FakeClock(), metrics=False)


async def drain(ctrl: Controller) -> list[str]:
    out = []
    while len(ctrl.queue):
        key = await ctrl.queue.get()
        ctrl.queue.done(key)
        out.append(key)
    return out


@pytest.mark.parametrize(
    ("o", "expected"),
    [
        (obj("a"), ["ns/a"]),
        (obj("node-1", ns=None), ["node-1"]),
    ],
)
def test_enqueue_object(o: Obj, expected: list[str]) -> None:
    assert enqueue_object(o) == expected


@pytest.mark.parametrize(
    ("owners", "expected"),
    [
        ([session_ref("s1")], ["ns/s1"]),
        ([session_ref("s1", controller=False)], []),  # owner, but not the controller
        ([session_ref("s1", controller=False), session_ref("s2")], ["ns/s2"]),
        ([session_ref("s1", kind="ProjectSettings")], []),  # other kind
        ([session_ref("s1", apiVersion="other.example/v1alpha1")], []),  # other group
        ([session_ref("s1", apiVersion="vteam.ambient-code/v1beta1")], ["ns/s1"]),  # any version
        ([{"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}], []),
        ([], []),
        (None, []),
    ],
)
def test_enqueue_controller_owner(owners: list[dict[str, Any]] | None, expected: list[str]) -> None:
    mapper = enqueue_controller_owner("AgenticSession", "vteam.ambient-code")
    assert mapper(obj("job-1", owners=owners)) == expected


def test_enqueue_controller_owner_core_group() -> None:
    mapper = enqueue_controller_owner("Pod", "")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "p", "controller": True}
    assert mapper(obj("x", owners=[ref])) == ["ns/p"]


async def test_watch_maps_events_to_keys() -> None:
    ctrl = idle_controller()
    src = FakeSource()
    ctrl.watch(src, enqueue_object)
    src.add(obj("a"))
    src.add(obj("a"))  # de-duplicated by the queue
    src.update(obj("b", rv="1"), obj("b", rv="2"))
    src.delete(obj("c"))
    assert await drain(ctrl) == ["ns/a", "ns/b", "ns/c"]


async def test_watch_owner_mapping_uses_old_and_new_on_update() -> None:
    ctrl = idle_controller()
    src = FakeSource()
    ctrl.watch(src, enqueue_controller_owner("AgenticSession", "vteam.ambient-code"))
    src.update(obj("job", owners=[session_ref("s1")]), obj("job", owners=[session_ref("s2")]))
    src.add(obj("orphan", owners=[]))
    assert await drain(ctrl) == ["ns/s1", "ns/s2"]


async def test_watch_applies_the_predicate() -> None:
    ctrl = idle_controller()
    src = FakeSource()
    ctrl.watch(src, enqueue_object, Predicate(create=lambda _o: False) & GENERATION_CHANGED)
    src.add(obj("new"))  # create filtered out
    src.update(obj("status-only", generation=1, rv="1"), obj("status-only", generation=1, rv="2"))
    src.update(obj("spec", generation=1), obj("spec", generation=2))
    src.delete(obj("gone"))
    assert await drain(ctrl) == ["ns/spec", "ns/gone"]


async def test_watch_survives_a_failing_mapper(caplog: pytest.LogCaptureFixture) -> None:
    ctrl = idle_controller()
    src = FakeSource()

    def mapper(o: Obj) -> list[str]:
        if o["metadata"]["name"] == "poison":
            raise ValueError("bad object")
        return enqueue_object(o)

    ctrl.watch(src, mapper)
    with caplog.at_level(logging.ERROR):
        src.add(obj("poison"))  # must not raise into the informer
    src.add(obj("fine"))
    assert await drain(ctrl) == ["ns/fine"]
    assert any("dropping add event" in r.getMessage() for r in caplog.records)


def _update(p: Predicate, old: Obj, new: Obj) -> bool:
    return p.update(old, new)


YES = Predicate()
NO = Predicate(create=lambda _o: False, update=lambda _a, _b: False, delete=lambda _o: False)


@pytest.mark.parametrize(
    ("predicate", "create", "update_same_gen", "update_new_gen"),
    [
        (YES, True, True, True),
        (NO, False, False, False),
        (~NO, True, True, True),
        (YES & NO, False, False, False),
        (YES | NO, True, True, True),
        (all_of(YES, GENERATION_CHANGED), True, False, True),
        (any_of(NO, GENERATION_CHANGED), True, False, True),
        (~GENERATION_CHANGED, False, True, False),
        (RESOURCE_VERSION_CHANGED, True, True, True),
    ],
)
def test_predicates(
    predicate: Predicate, create: bool, update_same_gen: bool, update_new_gen: bool
) -> None:
    assert predicate.create(obj("a")) is create
    assert _update(predicate, obj("a", rv="1"), obj("a", rv="2")) is update_same_gen
    assert _update(predicate, obj("a", generation=1), obj("a", generation=2, rv="2")) is (
        update_new_gen
    )


def test_resource_version_changed_drops_resyncs() -> None:
    assert RESOURCE_VERSION_CHANGED.update(obj("a", rv="7"), obj("a", rv="7")) is False


async def test_a_create_refused_by_a_terminating_namespace_is_not_retried(
    make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    refused = NamespaceTerminating(
        403,
        "Forbidden",
        "unable to create new content in namespace ns because it is being terminated",
    )
    h = make(lambda _k, _n: refused)
    with caplog.at_level(logging.INFO):
        await reconcile_once_and_wait(h, "ns/a")
    assert h.metric("controller_runtime_reconcile_errors_total") == 1
    assert (
        h.metric("agentic_operator_reconcile_errors_by_reason_total", reason="NamespaceTerminating")
        == 1
    )
    lines = [r for r in caplog.records if "ns/a" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO]  # an expected end, not a warning
    assert lines[0].exc_info is None
    await a_new_event_reconciles_it_again(h, "ns/a")
