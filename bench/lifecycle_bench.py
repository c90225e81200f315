"""Sessions of the platform's real shape on the local control plane: a runner that never exits.

The runner pod hydrates (``init-hydrate``), runs a ``state-sync`` native sidecar and serves until
it is stopped (kwok outcome ``run-forever``). Set-up as the operator benchmark's
(:func:`bench.cluster.operator_cluster`); every session has ``spec.inactivityTimeout`` =
:data:`IDLE_LIMIT_S`, far beyond the run, so no session is stopped for being idle. Four parts, in
one control plane and one managed namespace, in this order:

1. **Lifecycle writes.** N sessions created at once go to Running; each is then stopped the way
   the backend stops it (a merge patch of the annotations ``desired-phase=Stopped`` and
   ``stop-requested-at=<RFC3339>``) and reaches Stopped. Once Jobs, Services and pods are gone and
   the operator is quiet, the delta of its ``rest_client_requests_total`` / N is the figure, by verb
   and resource (``bench.operator_bench.request_figures``).
2. **Arrival at a steady rate.** Sessions created one by one at ``arrival_rate`` per second for
   ``arrival_seconds``; create -> Running per session from the *receive times* of a ``kubectl get
   -w`` on sessions (a session's first event is its creation, its first Running event is Running).
3. **Burst.** ``burst`` sessions submitted at once (16 creates in flight), the same latency.
4. **Steady state.** The Running sessions of parts 2 and 3, topped up to ``steady_sessions``;
   once the operator is quiet, the benchmark writes each one's ``status.lastActivityTime`` every
   ``activity_interval_s`` as the backend does (a merge patch of the status subresource, paced
   evenly, so 1,000 sessions every 10 s are 100 writes/s) for ``steady_seconds``. Figures: the
   operator's CPU share of one core, RSS, API requests during the window (expected 0: the only
   requests the operator should make are idle stops, and there are none), and what the control
   plane and the writer itself spent.

Creates, stops and activity writes go through the project's own API client (keep-alive pool,
client rate limit lifted), as the admin user: ``kubectl`` per request would cost the shared two
cores more than the operator does.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import resource
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from testenv.controlplane import ControlPlane
from testenv.operator_process import OperatorProcess

from agentic_operator.kube.client import ApiClient, connect
from agentic_operator.kube.errors import KubeError
from agentic_operator.kube.resources import AGENTIC_SESSIONS
from bench import operator_bench as ob
from bench.cluster import log, operator_cluster

T = TypeVar("T")
NS = "bench-lifecycle"
IDLE_LIMIT_S = 604_800
"""``spec.inactivityTimeout`` of every session (7 days): no idle stop falls into a run."""
DESIRED_PHASE = "ambient-code.io/desired-phase"
STOP_REQUESTED_AT = "ambient-code.io/stop-requested-at"
IN_FLIGHT = 16
"""Creates and stops in flight at once ("at once" for the burst and the lifecycle's N)."""
STALL_S = 60.0
STRAGGLERS = 0.05
"""A wait for a phase ends when at most this share of the sessions is left and none moved on for
STALL_S: kwok sometimes leaves a pod in a status no stage moves on from (docs/benchmarks.md), and
the figures of the others should not be lost to it. The stragglers are counted in the report."""
WRITERS_IN_FLIGHT = 64
"""Activity writes in flight at most; a slower API server shows as lateness, not as a lower rate
hidden in the figures."""


@dataclass(frozen=True)
class Options:
    lifecycle_sessions: int = 100
    steady_sessions: int = 1000
    steady_seconds: float = 300.0
    activity_interval_s: float = 10.0
    arrival_rate: float = 2.0
    arrival_seconds: float = 120.0
    burst: int = 300


def _log(msg: str) -> None:
    log("lifecycle", msg)


def rfc3339_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_manifest(name: str) -> ob.Obj:
    """The operator benchmark's session, reshaped as the platform creates one today: interactive,
    ``timeout: 300`` (the UI's and the CRD's default, which ends nothing), a runner that never
    exits and an idle limit beyond the run."""
    body = ob.session_manifest(name, NS)
    spec = body["spec"]
    spec["interactive"] = True
    spec["timeout"] = 300
    spec["inactivityTimeout"] = IDLE_LIMIT_S
    spec["environmentVariables"] = {"TESTENV_RUNNER_OUTCOME": "run-forever"}
    return body


# --- pure helpers (tests/unit/test_lifecycle_bench.py) --------------------------------------------


@dataclass(frozen=True)
class Pacer:
    """Item k of a fixed-rate sequence is due at ``start + k / rate``. Due times never drift: an
    item started late does not push the later ones back, so the average rate holds as long as the
    sender keeps up on average."""

    start: float
    rate: float

    def due(self, k: int) -> float:
        return self.start + k / self.rate

    def wait(self, k: int, now: float) -> float:
        """Seconds to sleep before item k (0 when it is already due or late)."""
        return max(0.0, self.due(k) - now)


async def run_paced(
    pacer: Pacer,
    count: int,
    action: Callable[[int], Awaitable[None]],
    limit: int,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[float]:
    """Start ``action(k)`` at ``pacer.due(k)`` for k < count, at most ``limit`` in flight, and wait
    for all; returns each item's lateness at its start (s). ``action`` handles its own errors."""
    slots = asyncio.Semaphore(limit)
    lateness: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(k: int) -> None:
        try:
            await action(k)
        finally:
            slots.release()

    for k in range(count):
        await sleep(pacer.wait(k, now()))
        await slots.acquire()
        lateness.append(max(0.0, now() - pacer.due(k)))
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    return lateness


def phase_latencies(
    seen: dict[str, float], phases: dict[str, dict[str, float]], names: Iterable[str], phase: str
) -> tuple[list[float], int]:
    """First event -> first event with ``phase``, per session that has both; and how many lack
    one of them."""
    out: list[float] = []
    missing = 0
    for name in names:
        at = phases.get(name, {}).get(phase)
        if at is None or name not in seen:
            missing += 1
        else:
            out.append(at - seen[name])
    return out, missing


def by_verb_resource(
    delta: ob.Requests, prefix: str, per: float = 1.0, *, failed_only: bool = False
) -> dict[str, float]:
    """``{prefix}.<verb> <resource>``: a requests delta summed over answer codes, / ``per``; with
    ``failed_only`` the non-2xx answers alone, keyed ``<verb> <resource> <code>``."""
    sums: defaultdict[str, float] = defaultdict(float)
    for (verb, res, code), value in delta.items():
        if not failed_only:
            sums[f"{verb} {res}"] += value
        elif not code.startswith("2"):
            sums[f"{verb} {res} {code}"] += value
    return {f"{prefix}.{key}": sums[key] / per for key in sorted(sums)}


def reconciles_by_controller(
    before: Iterable[ob.Sample], after: Iterable[ob.Sample], prefix: str
) -> dict[str, float]:
    """``{prefix}.<controller> <result>``: the rise of ``controller_runtime_reconcile_total``."""
    sums: defaultdict[str, float] = defaultdict(float)
    for sign, samples in ((-1.0, before), (1.0, after)):
        for name, labels, value in samples:
            if name == "controller_runtime_reconcile_total":
                sums[f"{labels.get('controller')} {labels.get('result')}"] += sign * value
    return {f"{prefix}.{key}": sums[key] for key in sorted(sums) if sums[key]}


# --- the benchmark's own API calls ---------------------------------------------------------------


async def with_client(cp: ControlPlane, body: Callable[[ApiClient], Awaitable[T]]) -> T:
    """``body`` with an admin client whose own rate limit is out of the way."""
    client = await connect(str(cp.kubeconfig), qps=10_000.0, burst=10_000, user_agent="bench")
    try:
        return await body(client)
    finally:
        await client.close()


async def create_sessions(
    client: ApiClient, names: list[str], rate: float = float("inf")
) -> list[float]:
    """Create the sessions at ``rate`` per second (default: all at once, IN_FLIGHT at a time);
    returns each create's lateness against its due time."""

    async def one(k: int) -> None:
        await client.create(AGENTIC_SESSIONS, session_manifest(names[k]), NS)

    return await run_paced(Pacer(time.monotonic(), rate), len(names), one, IN_FLIGHT)


async def stop_sessions(client: ApiClient, names: list[str]) -> None:
    """Stop each session as the backend does: one merge patch of its annotations."""

    async def one(k: int) -> None:
        annotations = {DESIRED_PHASE: "Stopped", STOP_REQUESTED_AT: rfc3339_now()}
        await client.patch(
            AGENTIC_SESSIONS, names[k], {"metadata": {"annotations": annotations}}, NS
        )

    await run_paced(Pacer(time.monotonic(), float("inf")), len(names), one, IN_FLIGHT)


@dataclass
class Activity:
    """What the activity writer did: per write its latency (s); failed writes counted apart."""

    latencies: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    errors: int = 0


async def write_activity(client: ApiClient, names: list[str], opts: Options) -> Activity:
    """Each session's ``status.lastActivityTime`` every ``activity_interval_s``, evenly paced over
    all of them (session k % n at write k), for ``steady_seconds``: a merge patch of the status
    subresource, the backend's write of it."""
    pacer = Pacer(time.monotonic() + 0.1, len(names) / opts.activity_interval_s)
    stats = Activity()

    async def one(k: int) -> None:
        body = {"status": {"lastActivityTime": rfc3339_now()}}
        started = time.monotonic()
        try:
            await client.patch(
                AGENTIC_SESSIONS, names[k % len(names)], body, NS, subresource="status"
            )
        except KubeError:
            stats.errors += 1
        else:
            stats.latencies.append(time.monotonic() - started)

    count = int(opts.steady_seconds * pacer.rate)
    stats.lateness = await run_paced(pacer, count, one, WRITERS_IN_FLIGHT)
    return stats


# --- waiting on the session watch ----------------------------------------------------------------


def snapshot(timeline: ob.Timeline) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    with timeline.lock:
        return dict(timeline.seen), {k: dict(v) for k, v in timeline.phase.items()}


def settled(left: int, total: int, idle_s: float) -> bool:
    """Whether to stop waiting for a phase: nobody is left, or only stragglers are (at most
    :data:`STRAGGLERS` of the sessions) and none moved on for :data:`STALL_S`."""
    return left == 0 or (left <= STRAGGLERS * total and idle_s >= STALL_S)


def wait_phase(
    cp: ControlPlane, op: OperatorProcess, timeline: ob.Timeline, names: list[str], phase: str
) -> int:
    """Until every session of ``names`` was seen in ``phase`` or only stalled stragglers are left
    (:func:`settled`); returns how many never got there. Bounded: 180 s + 0.6 s per session."""
    started = time.monotonic()
    deadline, next_report = started + 180 + 0.6 * len(names), started + 30
    last_left, moved = len(names), started
    while True:
        _, phases = snapshot(timeline)
        left = sum(1 for s in names if phase not in phases.get(s, {}))
        now = time.monotonic()
        if left != last_left:
            last_left, moved = left, now
        if settled(left, len(names), now - moved):
            if left:
                stuck = [s for s in names if phase not in phases.get(s, {})]
                _log(f"{left} sessions not {phase}, none moved for {now - moved:.0f}s: {stuck}")
            return left
        if not op.alive:
            raise RuntimeError(f"operator exited:\n{op.log_tail(40)}")
        if now > deadline:
            raise RuntimeError(
                f"{left}/{len(names)} sessions not {phase} after {now - started:.0f}s; phases: "
                f"{ob.phase_counts(cp, NS)}; operator log:\n{op.log_tail(30)}"
            )
        if now > next_report:
            _log(f"{len(names) - left}/{len(names)} {phase} after {now - started:.0f}s")
            next_report += 30
        time.sleep(0.2)


def wait_children_gone(cp: ControlPlane, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while ob.count_objects(cp, "jobs,services,pods", NS) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("Jobs/Services/pods of stopped sessions were not removed")
        time.sleep(1)


def session_phases(cp: ControlPlane) -> dict[str, str]:
    template = "jsonpath={range .items[*]}{.metadata.name}={.status.phase}{' '}{end}"
    out = cp.kubectl("get", "agenticsessions", "-n", NS, "-o", template).stdout
    return dict(item.partition("=")[::2] for item in out.split())


def latency_figures(timeline: ob.Timeline, names: list[str], prefix: str) -> dict[str, float]:
    """create -> Running, and create -> the Job's first event (how much of it is the operator's
    own queue: the rest is the Job controller, the scheduler, kwok and the operator seeing the
    runner start)."""
    seen, phases = snapshot(timeline)
    values, missing = phase_latencies(seen, phases, names, "Running")
    with timeline.lock:
        to_job = [timeline.job[s] - seen[s] for s in names if s in timeline.job and s in seen]
    return {
        f"{prefix}_to_job_p50_s": ob.percentile(to_job, 50),
        f"{prefix}_to_job_p99_s": ob.percentile(to_job, 99),
        f"{prefix}_p50_s": ob.percentile(values, 50),
        f"{prefix}_p99_s": ob.percentile(values, 99),
        f"{prefix}_max_s": max(values, default=float("nan")),
        f"{prefix}_unmeasured": missing,
    }


# --- parts ---------------------------------------------------------------------------------------


def lifecycle_writes(
    cp: ControlPlane, op: OperatorProcess, timeline: ob.Timeline, n: int
) -> dict[str, float]:
    """create -> Running -> stop -> Stopped for n sessions; requests per session until the
    operator is quiet after the cleanup."""
    assert op.pid is not None
    names = [f"l-{i:05d}" for i in range(n)]
    before = ob.wait_quiet(op, 60)
    cpu0, t0 = ob.cpu_seconds(op.pid), time.monotonic()
    asyncio.run(with_client(cp, lambda c: create_sessions(c, names)))
    not_running = wait_phase(cp, op, timeline, names, "Running")
    t_running = time.monotonic()
    _log(f"{n - not_running}/{n} sessions Running after {t_running - t0:.1f}s; stopping all")
    asyncio.run(with_client(cp, lambda c: stop_sessions(c, names)))
    not_stopped = wait_phase(cp, op, timeline, names, "Stopped")
    t_stopped = time.monotonic()
    _log(
        f"{n - not_stopped}/{n} Stopped after {t_stopped - t_running:.1f}s; waiting for the cleanup"
    )
    wait_children_gone(cp, 120 + 0.1 * n)
    after = ob.wait_quiet(op, 120)
    cpu1 = ob.cpu_seconds(op.pid)
    delta = ob.requests_delta(ob.requests(before), ob.requests(after))
    no_events = {k: v for k, v in delta.items() if k[1] != ob.EVENTS}
    out: dict[str, float] = {
        "lc_sessions": n,
        "lc_create_to_running_s": t_running - t0,
        "lc_stop_to_stopped_s": t_stopped - t_running,
        "lc_not_running": not_running,
        "lc_not_stopped": not_stopped,
        "requests_per_session": sum(no_events.values()) / n,
        "requests_per_session_with_events": sum(delta.values()) / n,
    }
    out.update(ob.request_figures(delta, n))
    out.update(by_verb_resource(no_events, "calls_per_session", n))
    out.update(by_verb_resource(delta, "failed_calls_per_session", n, failed_only=True))
    out["reconciles_per_session"] = (ob.reconciles(after) - ob.reconciles(before)) / n
    out["reconcile_errors_per_session"] = (
        ob.reconcile_errors(after) - ob.reconcile_errors(before)
    ) / n
    out["lc_cpu_ms_per_session"] = (cpu1 - cpu0) * 1000 / n
    return out


def arrival(
    cp: ControlPlane, op: OperatorProcess, timeline: ob.Timeline, opts: Options
) -> tuple[dict[str, float], list[str]]:
    """Sessions created one by one at ``arrival_rate``/s for ``arrival_seconds``."""
    count = round(opts.arrival_rate * opts.arrival_seconds)
    names = [f"a-{i:05d}" for i in range(count)]
    ob.wait_quiet(op, 60)
    _log(f"creating {count} sessions at {opts.arrival_rate:g}/s")
    lateness = asyncio.run(with_client(cp, lambda c: create_sessions(c, names, opts.arrival_rate)))
    stuck = wait_phase(cp, op, timeline, names, "Running")
    out: dict[str, float] = {
        "arrival_sessions": count,
        "arrival_rate": opts.arrival_rate,
        "arrival_late_max_s": max(lateness),
        "arrival_stuck": stuck,
    }
    out.update(latency_figures(timeline, names, "arrival"))
    return out, names


def burst(
    cp: ControlPlane, op: OperatorProcess, timeline: ob.Timeline, count: int
) -> tuple[dict[str, float], list[str]]:
    """``count`` sessions submitted at once."""
    names = [f"b-{i:05d}" for i in range(count)]
    ob.wait_quiet(op, 120)
    _log(f"creating {count} sessions at once")
    t0 = time.monotonic()
    asyncio.run(with_client(cp, lambda c: create_sessions(c, names)))
    submitted = time.monotonic() - t0
    stuck = wait_phase(cp, op, timeline, names, "Running")
    _, phases = snapshot(timeline)
    running = [phases[s]["Running"] for s in names if "Running" in phases.get(s, {})]
    out: dict[str, float] = {
        "burst_sessions": count,
        "burst_submit_s": submitted,
        "burst_wall_s": max(running) - t0,
        "burst_stuck": stuck,
    }
    out.update(latency_figures(timeline, names, "burst"))
    return out, names


def activity_window(
    cp: ControlPlane, op: OperatorProcess, names: list[str], opts: Options
) -> dict[str, float]:
    """The activity writes for ``steady_seconds``, with what the operator, the control plane and
    the writer spent meanwhile."""
    assert op.pid is not None
    cp_pids = list(cp.pids().values())
    samples0 = ob.scrape(op)
    cpu0, cp0 = ob.cpu_seconds(op.pid), sum(ob.cpu_seconds(p) for p in cp_pids)
    self0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    stats = asyncio.run(with_client(cp, lambda c: write_activity(c, names, opts)))
    window = time.monotonic() - t0
    cpu1, cp1 = ob.cpu_seconds(op.pid), sum(ob.cpu_seconds(p) for p in cp_pids)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    samples1 = ob.scrape(op)
    delta = ob.requests_delta(ob.requests(samples0), ob.requests(samples1))
    writes = len(stats.latencies)
    out: dict[str, float] = {
        "steady_sessions": len(names),
        "steady_window_s": window,
        "steady_activity_writes": writes,
        "steady_activity_writes_per_s": writes / window,
        "steady_activity_write_errors": stats.errors,
        "steady_activity_late_p99_s": ob.percentile(stats.lateness, 99),
        "steady_activity_write_p50_ms": ob.percentile(stats.latencies, 50) * 1000,
        "steady_activity_write_p99_ms": ob.percentile(stats.latencies, 99) * 1000,
        "steady_cpu_share": (cpu1 - cpu0) / window,
        "steady_cpu_us_per_activity_write": (cpu1 - cpu0) * 1e6 / max(1, writes),
        "steady_rss_mb": ob.memory_mb(op.pid, "VmRSS"),
        "steady_hwm_mb": ob.memory_mb(op.pid, "VmHWM"),
        "steady_requests": sum(delta.values()),
        "steady_requests_besides_watches": sum(v for k, v in delta.items() if k[0] != "watch"),
    }
    out.update(by_verb_resource(delta, "steady_requests"))
    out["steady_reconciles"] = ob.reconciles(samples1, None) - ob.reconciles(samples0, None)
    out.update(reconciles_by_controller(samples0, samples1, "steady_reconciles"))
    out["steady_control_plane_cores"] = (cp1 - cp0) / window
    self_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    out["steady_writer_cores"] = self_cpu / window
    return out


def steady_state(
    cp: ControlPlane,
    op: OperatorProcess,
    timeline: ob.Timeline,
    watches: list[ob.Watch],
    running: list[str],
    opts: Options,
) -> dict[str, float]:
    """Top the Running sessions up to ``steady_sessions``, then the activity window (with the
    watches stopped: their kubectl would share the cores with the operator)."""
    fill = [f"s-{i:05d}" for i in range(max(0, opts.steady_sessions - len(running)))]
    t0 = time.monotonic()
    if fill:
        _log(f"creating {len(fill)} more sessions for {len(running) + len(fill)} Running")
        asyncio.run(with_client(cp, lambda c: create_sessions(c, fill)))
        wait_phase(cp, op, timeline, fill, "Running")
    _, phases = snapshot(timeline)
    names = [s for s in running + fill if "Running" in phases.get(s, {})]
    for watch in watches:
        watch.stop()
    ob.wait_quiet(op, 300)
    out: dict[str, float] = {
        "steady_fill_s": time.monotonic() - t0,
        "steady_stuck": len(running) + len(fill) - len(names),
    }
    _log(f"writing lastActivityTime of {len(names)} sessions for {opts.steady_seconds:g}s")
    out.update(activity_window(cp, op, names, opts))
    after = session_phases(cp)
    out["steady_not_running_after"] = sum(1 for s in names if after.get(s) != "Running")
    return out


def run(opts: Options | None = None, profile: Path | None = None) -> dict[str, float]:
    """One control plane and operator for the four parts (each skipped when its size is 0). Each
    part's figures also go to stderr as it ends, so a later part that fails does not lose them."""
    opts = opts or Options()
    with operator_cluster("lifecycle", NS, profile) as (cp, op):
        timeline = ob.Timeline()
        fields = "{.object.metadata.name} {.object.status.phase}"
        owner = "{.object.metadata.ownerReferences[0].name}"
        watches = [
            ob.Watch(cp, "agenticsessions", NS, fields, timeline.on_session),
            ob.Watch(cp, "jobs", NS, owner, timeline.on_job),
        ]
        results: dict[str, float] = {}

        def add(figures: dict[str, float]) -> None:
            _log(f"figures: {json.dumps(figures)}")
            results.update(figures)

        try:
            time.sleep(1.5)  # kubectl lists (nothing yet) and opens its watch
            if opts.lifecycle_sessions:
                add(lifecycle_writes(cp, op, timeline, opts.lifecycle_sessions))
            running: list[str] = []
            if round(opts.arrival_rate * opts.arrival_seconds) > 0:
                figures, names = arrival(cp, op, timeline, opts)
                add(figures)
                running += names
            if opts.burst:
                figures, names = burst(cp, op, timeline, opts.burst)
                add(figures)
                running += names
            if opts.steady_sessions and opts.steady_seconds > 0:
                add(steady_state(cp, op, timeline, watches, running, opts))
        finally:
            for watch in watches:
                watch.stop()
        results["watch_restarts"] = sum(w.restarts for w in watches)
        return results


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:,.3f}")
