"""The operator end to end: N sessions created at once on the local control plane, run to Completed.

Everything runs as real processes (testenv's etcd, kube-apiserver, controller-manager, scheduler and
kwok; the operator as ``python -m agentic_operator`` under its own ServiceAccount, default flags,
``--max-concurrent-reconciles 10``; set up by :func:`bench.cluster.operator_cluster`, with its /16
Service IP range). Three phases, each bounded in time:

1. **Full run.** ``kubectl get -w`` watchers on sessions and Jobs are started first; then N sessions
   (runner outcome ``complete``, ``TESTENV_RUNNER_DURATION=1s``) are created by a few parallel
   ``kubectl create -f -`` of v1 Lists, and we wait until every one is Completed. Latencies use the
   *local receive time* of watch lines (monotonic clock, sub-second): a session's first event is
   its creation, its Job's first event is "Job created", its first event with phase Running (or a
   later phase, for runners that finished before the operator looked) is "Running". API requests
   come from the operator's ``rest_client_requests_total`` (delta over the run, once the operator
   has cleaned up); CPU from ``/proc/<pid>/stat`` (utime+stime) between the first create and the
   last Completed; peak RSS from ``VmHWM``. Runner pods whose stage kwok lost are re-triggered by
   testenv's kwok watchdog; :func:`kwok_nudges` counts them.
2. **No-op reconciles.** An unrelated annotation on 100 Completed sessions; once
   ``controller_runtime_reconcile_total`` rose by at least 100 and the queue is empty, the write
   counters are compared (target: no change).
3. **Stored sessions.** ``stored`` sessions in total: the N Completed ones plus ``stored - N`` more
   created in a namespace *without* the managed label and given the status of a real Completed
   session (``kubectl patch --subresource=status``). The sessions informer caches every
   AgenticSession cluster-wide, so both kinds cost the operator the same memory, and the unmanaged
   ones cannot start runs. VmRSS is read from the running operator (once a sentinel event sent
   after the last patch was reconciled: the single watch stream is ordered, so the cache holds them
   all), and again after a restart, once the initial list and the reconciles it triggers are done.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from testenv.binaries import find_kubectl
from testenv.controlplane import ControlPlane
from testenv.operator_process import OperatorProcess

from bench.cluster import log, make_namespace, operator_cluster

RUN_NS = "bench-run"
STORED_NS = "bench-stored"
SESSION_CONTROLLER = "agenticsession-controller"
NOOP_ANNOTATION = "bench.ambient-code.io/noop"
SYNC_ANNOTATION = "bench.ambient-code.io/sync"
NOOP_SESSIONS = 100
CREATE_WORKERS = 4
"""Parallel ``kubectl`` processes for bulk creates and patches (each has its own client-side
rate limit, so one process alone would pace the burst of creates)."""
READ_VERBS = frozenset({"get", "list", "watch"})
EVENTS = "events"
LATER_THAN_RUNNING = ("Running", "Completed", "Failed")
CLK_TCK = os.sysconf("SC_CLK_TCK")

Obj = dict[str, Any]
Sample = tuple[str, dict[str, str], float]


def _log(msg: str) -> None:
    log("operator", msg)


# --- /proc ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # comm may contain spaces; fields start at 3
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` / ``VmHWM`` (kB in /proc/<pid>/status) in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


# --- Prometheus text format ----------------------------------------------------------------------

_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(op: OperatorProcess) -> list[Sample]:
    with urllib.request.urlopen(op.metrics_url(), timeout=10) as resp:  # noqa: S310 - 127.0.0.1
        text = resp.read().decode()
    out: list[Sample] = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            out.append((m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])))
    return out


Requests = dict[tuple[str, str, str], float]


def requests(samples: Iterable[Sample]) -> Requests:
    """rest_client_requests_total by (verb, resource, code)."""
    out: defaultdict[tuple[str, str, str], float] = defaultdict(float)
    for name, labels, value in samples:
        if name == "rest_client_requests_total":
            out[(labels["verb"], labels["resource"], labels["code"])] += value
    return dict(out)


def requests_delta(before: Requests, after: Requests) -> Requests:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def writes(counts: Requests) -> float:
    return sum(v for (verb, _, _), v in counts.items() if verb not in READ_VERBS)


def reconciles(samples: Iterable[Sample], controller: str | None = SESSION_CONTROLLER) -> float:
    """controller_runtime_reconcile_total of one controller (None: of all), every result."""
    return sum(
        v
        for name, labels, v in samples
        if name == "controller_runtime_reconcile_total"
        and (controller is None or labels.get("controller") == controller)
    )


def reconcile_errors(samples: Iterable[Sample]) -> float:
    return sum(
        v
        for name, labels, v in samples
        if name == "controller_runtime_reconcile_total"
        and labels.get("controller") == SESSION_CONTROLLER
        and labels.get("result") == "error"
    )


def wait_quiet(op: OperatorProcess, timeout: float, still: float = 2.0) -> list[Sample]:
    """Wait until every work queue is empty and neither a reconcile nor an API request happened
    for ``still`` seconds (Events are written off the reconcile path, so requests are watched
    too); returns the last scrape."""
    deadline = time.monotonic() + timeout
    last: tuple[float, float] = (-1.0, -1.0)
    since = time.monotonic()
    while True:
        samples = scrape(op)
        state = (reconciles(samples, None), sum(requests(samples).values()))
        depth = sum(v for name, _, v in samples if name == "workqueue_depth")
        if state != last or depth > 0:
            last, since = state, time.monotonic()
        elif time.monotonic() - since >= still:
            return samples
        if time.monotonic() > deadline:
            raise RuntimeError(f"operator not quiet after {timeout:.0f}s")
        time.sleep(0.25)


def wait_reconciles(op: OperatorProcess, target: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while (count := reconciles(scrape(op))) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"reconciles stuck at {count:.0f} < {target:.0f} after {timeout}s")
        time.sleep(0.1)
    return count


# --- watchers ------------------------------------------------------------------------------------


class Watch:
    """``kubectl get -w --output-watch-events`` with a jsonpath template; a reader thread hands
    each line, split into fields, to ``on_line`` with its local (monotonic) receive time.

    A watch can end: under the lifecycle benchmark's 1,000 sessions on loaded cores the session
    watch's kubectl exited within ten minutes (the API server closes a watch that falls too far
    behind, among other reasons), and kubectl does not resume one. The watch is then started again:
    its initial list replays every object as ADDED, so a first-seen time can be late by the gap
    but is never lost. ``restarts`` counts them; kubectl's stderr, which says why it ended, goes
    to ``<log_dir>/watch-<resource>.log``."""

    def __init__(
        self,
        cp: ControlPlane,
        resource: str,
        namespace: str,
        fields: str,
        on_line: Callable[[float, list[str]], None],
    ) -> None:
        template = "jsonpath={.type} " + fields + '{"\\n"}'
        self._argv = [
            str(find_kubectl()),
            *("--kubeconfig", str(cp.kubeconfig), "get", resource, "-n", namespace),
            *("--watch", "--output-watch-events", "-o", template),
        ]
        self._stderr = cp.log_dir / f"watch-{resource}.log"
        self._lock = threading.Lock()
        self._stopping = False
        self.restarts = 0
        self.proc = self._spawn()
        self._on_line = on_line
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[str]:
        with self._stderr.open("a") as err:
            return subprocess.Popen(self._argv, stdout=subprocess.PIPE, stderr=err, text=True)

    def _read(self) -> None:
        while True:
            proc = self.proc
            assert proc.stdout is not None
            for line in proc.stdout:
                self._on_line(time.monotonic(), line.split())
            proc.wait()
            with self._lock:
                if self._stopping:
                    return
                self.restarts += 1
                self.proc = self._spawn()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            proc = self.proc
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._thread.join(5)


class Timeline:
    """First receive time per session of: any event, its Job, each phase."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, float] = {}
        self.job: dict[str, float] = {}
        self.phase: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self.finished: dict[str, str] = {}

    def on_session(self, t: float, fields: list[str]) -> None:
        if len(fields) < 2 or fields[0] == "DELETED":
            return
        name = fields[1]
        phase = fields[2] if len(fields) > 2 else ""
        with self.lock:
            self.seen.setdefault(name, t)
            if phase:
                self.phase[name].setdefault(phase, t)
            if phase in ("Completed", "Failed"):
                self.finished.setdefault(name, phase)

    def on_job(self, t: float, fields: list[str]) -> None:
        if len(fields) >= 2:
            with self.lock:
                self.job.setdefault(fields[1], t)  # the owner: the session's name

    def done(self) -> int:
        with self.lock:
            return len(self.finished)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is an observed value)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --- cluster set-up ------------------------------------------------------------------------------


def session_manifest(name: str, namespace: str) -> Obj:
    """A realistic non-interactive session (fields of deploy/samples) whose runner kwok completes
    after 1 s."""
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "displayName": f"Benchmark {name}",
            "initialPrompt": "Summarise the README of the repository in three sentences.",
            "interactive": False,
            "timeout": 600,
            "repos": [{"url": "https://github.com/ambient-code/platform.git", "branch": "main"}],
            "llmSettings": {
                "model": "claude-3-7-sonnet-latest",
                "temperature": 0.7,
                "maxTokens": 4000,
            },
            "environmentVariables": {"TESTENV_RUNNER_DURATION": "1s"},
        },
    }


def in_parallel(cp: ControlPlane, args: list[str], items: list[Obj], timeout: float) -> None:
    """``kubectl <args> -f -`` over ``items``, as CREATE_WORKERS Lists in parallel processes."""
    chunks = [items[i::CREATE_WORKERS] for i in range(CREATE_WORKERS)]

    def one(chunk: list[Obj]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": chunk})
        cp.kubectl(*args, "-f", "-", input=body, timeout=timeout)

    with ThreadPoolExecutor(CREATE_WORKERS) as pool:
        for future in [pool.submit(one, c) for c in chunks if c]:
            future.result()


def kwok_nudges(cp: ControlPlane, namespace: str) -> int:
    """Pods of ``namespace`` testenv's kwok watchdog had to re-trigger (kwok lost their stage)."""
    try:
        text = (cp.log_dir / "kwok-watchdog.log").read_text()
    except FileNotFoundError:
        return 0
    return text.count(f" nudged {namespace}/")


def log_digest(op: OperatorProcess, top: int = 3) -> list[str]:
    """The most frequent warning/error messages of the operator's JSON log, digits masked."""
    counts: Counter[str] = Counter()
    for line in op.log_text().splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("warning", "error"):
            counts[re.sub(r"\d+", "N", str(entry.get("msg", "")))[:160]] += 1
    return [f"{count} x {msg}" for msg, count in counts.most_common(top)]


def phase_counts(cp: ControlPlane, namespace: str) -> dict[str, int]:
    template = "jsonpath={range .items[*]}{.status.phase}{'-'}{' '}{end}"
    out = cp.kubectl("get", "agenticsessions", "-n", namespace, "-o", template).stdout
    return dict(Counter(p.rstrip("-") or "(none)" for p in out.split()))


def count_objects(cp: ControlPlane, kinds: str, namespace: str) -> int:
    out = cp.kubectl("get", kinds, "-n", namespace, "-o", "name").stdout
    return len(out.split())


def request_figures(delta: Requests, n: int) -> dict[str, float]:
    """Requests per session of a ``requests_delta``: by verb and, for writes, by resource, with
    Events apart (``event_writes_per_session``, not in ``writes_per_session``) and the non-2xx
    answers by verb and code."""
    by_verb: defaultdict[str, float] = defaultdict(float)
    by_resource: defaultdict[str, float] = defaultdict(float)
    by_code: defaultdict[str, float] = defaultdict(float)
    event_writes = 0.0
    for (verb, resource, code), value in delta.items():
        if resource == EVENTS:
            event_writes += value if verb not in READ_VERBS else 0
            continue
        by_verb[verb] += value
        if verb not in READ_VERBS:
            by_resource[resource] += value
        if not code.startswith("2"):
            by_code[f"{verb} {code}"] += value
    out: dict[str, float] = {}
    for verb in sorted(by_verb):
        out[f"requests_per_session.{verb}"] = by_verb[verb] / n
    out["writes_per_session"] = sum(by_resource.values()) / n
    for resource in sorted(by_resource):
        out[f"writes_per_session.{resource}"] = by_resource[resource] / n
    for what in sorted(by_code):
        out[f"not_2xx_per_session.{what}"] = by_code[what] / n
    out["event_writes_per_session"] = event_writes / n
    return out


# --- phases --------------------------------------------------------------------------------------


def full_run(cp: ControlPlane, op: OperatorProcess, n: int) -> dict[str, float]:
    assert op.pid is not None
    pid = op.pid
    timeline = Timeline()
    watches = [
        Watch(
            cp,
            "agenticsessions",
            RUN_NS,
            "{.object.metadata.name} {.object.status.phase}",
            timeline.on_session,
        ),
        Watch(cp, "jobs", RUN_NS, "{.object.metadata.ownerReferences[0].name}", timeline.on_job),
    ]
    try:
        time.sleep(1.5)  # kubectl lists (nothing yet) and opens its watch
        names = [f"s-{i:05d}" for i in range(n)]
        cp_pids = cp.pids()
        cp_cpu0 = sum(cpu_seconds(p) for p in cp_pids.values())
        before_samples = wait_quiet(op, 60)
        before = requests(before_samples)
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        in_parallel(cp, ["create"], [session_manifest(s, RUN_NS) for s in names], 600)
        t_submitted = time.monotonic()
        _log(f"{n} sessions created in {t_submitted - t0:.1f}s; waiting for Completed")
        deadline = t0 + 180 + 0.6 * n
        next_report = t0 + 30
        while timeline.done() < n:
            if not op.alive:
                raise RuntimeError(f"operator exited:\n{op.log_tail(40)}")
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(
                    f"only {timeline.done()}/{n} sessions finished after {now - t0:.0f}s; "
                    f"phases: {phase_counts(cp, RUN_NS)}; operator log:\n{op.log_tail(30)}"
                )
            if now > next_report:
                _log(f"{timeline.done()}/{n} finished after {now - t0:.0f}s")
                next_report += 30
            time.sleep(0.1)
        cpu1 = cpu_seconds(pid)
        cp_cpu1 = sum(cpu_seconds(p) for p in cp_pids.values())
        hwm = memory_mb(pid, "VmHWM")
        with timeline.lock:
            t_last = max(timeline.phase[s][timeline.finished[s]] for s in names)
            failed = sum(1 for s in names if timeline.finished[s] != "Completed")
            to_job = [timeline.job[s] - timeline.seen[s] for s in names if s in timeline.job]
            to_running, skipped = [], 0
            for s in names:
                seen = timeline.phase[s]
                if "Running" not in seen:
                    skipped += 1
                first = min(seen[p] for p in LATER_THAN_RUNNING if p in seen)
                to_running.append(first - timeline.seen[s])
        wall = t_last - t0
        for line in log_digest(op):
            _log(f"operator log: {line}")
        _log(f"all finished after {wall:.1f}s; waiting for cleanup (Jobs, Services, pods gone)")

        # The run is over for the operator once it deleted each run's Job and Service and the
        # pods the garbage collector removes have stopped waking it up.
        settle_deadline = time.monotonic() + 120 + 0.1 * n
        while count_objects(cp, "jobs,services,pods", RUN_NS) > 0:
            if time.monotonic() > settle_deadline:
                raise RuntimeError("Jobs/Services/pods of finished sessions were not removed")
            time.sleep(1)
        after_samples = wait_quiet(op, 120)
        cpu_settled = cpu_seconds(pid)
    finally:
        for w in watches:
            w.stop()

    delta = requests_delta(before, requests(after_samples))
    out: dict[str, float] = {
        "sessions": n,
        "failed": failed,
        "kwok_nudges": kwok_nudges(cp, RUN_NS),
        "create_submit_s": t_submitted - t0,
        "wall_s": wall,
        "sessions_per_s": n / wall,
        "to_job_p50_s": percentile(to_job, 50),
        "to_job_p99_s": percentile(to_job, 99),
        "to_running_p50_s": percentile(to_running, 50),
        "to_running_p99_s": percentile(to_running, 99),
        "running_not_observed": skipped,
    }
    out.update(request_figures(delta, n))
    out["reconciles_per_session"] = (reconciles(after_samples) - reconciles(before_samples)) / n
    out["reconcile_errors_per_session"] = (
        reconcile_errors(after_samples) - reconcile_errors(before_samples)
    ) / n
    out["api_requests_per_s"] = sum(delta.values()) / wall
    out["cpu_ms_per_session"] = (cpu1 - cpu0) * 1000 / n
    out["cpu_ms_per_session_with_cleanup"] = (cpu_settled - cpu0) * 1000 / n
    out["operator_cpu_share"] = (cpu1 - cpu0) / wall
    out["control_plane_cpu_s"] = cp_cpu1 - cp_cpu0
    out["peak_rss_mb"] = hwm
    return out


def noop(cp: ControlPlane, op: OperatorProcess, count: int) -> dict[str, float]:
    names = [f"s-{i:05d}" for i in range(count)]
    before = wait_quiet(op, 60)
    start = reconciles(before)
    cp.kubectl(
        "annotate", "--overwrite", "agenticsessions", "-n", RUN_NS, *names, f"{NOOP_ANNOTATION}=1"
    )
    wait_reconciles(op, start + count, 60)
    after = wait_quiet(op, 60)
    delta = requests_delta(requests(before), requests(after))
    return {
        "noop_reconciles": reconciles(after) - start,
        "noop_writes": writes(delta),
        "noop_requests": sum(delta.values()),
    }


def stored_sessions(
    cp: ControlPlane, op: OperatorProcess, run_sessions: int, stored: int
) -> dict[str, float]:
    extra = max(0, stored - run_sessions)
    out: dict[str, float] = {"stored_sessions": run_sessions + extra}
    if extra:
        status = json.loads(
            cp.kubectl("get", "agenticsession", "s-00000", "-n", RUN_NS, "-o", "json").stdout
        )["status"]
        make_namespace(cp, STORED_NS, managed=False)
        names = [f"stored-{i:06d}" for i in range(extra)]
        t0 = time.monotonic()
        in_parallel(cp, ["create"], [session_manifest(s, STORED_NS) for s in names], 1800)
        refs = [
            {
                "apiVersion": "vteam.ambient-code/v1alpha1",
                "kind": "AgenticSession",
                "metadata": {"name": s, "namespace": STORED_NS},
            }
            for s in names
        ]
        patch = json.dumps({"status": status})
        in_parallel(cp, ["patch", "--subresource=status", "--type=merge", "-p", patch], refs, 1800)
        out["stored_setup_s"] = time.monotonic() - t0
        _log(f"{extra} Completed sessions added in {out['stored_setup_s']:.0f}s")
    # A sentinel after the last write: reconciled => every earlier session event was cached.
    start = reconciles(scrape(op))
    cp.kubectl(
        "annotate",
        "--overwrite",
        "agenticsession",
        "s-00000",
        "-n",
        RUN_NS,
        f"{SYNC_ANNOTATION}={time.time_ns()}",
    )
    wait_reconciles(op, start + 1, 120)
    assert op.pid is not None
    out["rss_mb_stored_running"] = memory_mb(op.pid, "VmRSS")
    out["hwm_mb_stored_running"] = memory_mb(op.pid, "VmHWM")

    _log("restarting the operator with every session stored")
    op.stop()
    t0 = time.monotonic()
    op.start()
    op.wait_ready(300)
    out["restart_ready_s"] = time.monotonic() - t0
    samples = wait_quiet(op, 300)
    assert op.pid is not None
    out["rss_mb_stored_restarted"] = memory_mb(op.pid, "VmRSS")
    out["hwm_mb_stored_restarted"] = memory_mb(op.pid, "VmHWM")
    out["restart_reconciles"] = reconciles(samples)
    counts = requests(samples)
    out["restart_writes"] = writes(counts)
    for (verb, resource, code), value in sorted(counts.items()):
        if verb not in READ_VERBS and value:
            _log(f"restart write: {verb} {resource} {code}: {value:.0f}")
    return out


def run(sessions: int = 1000, stored: int = 10000, profile: Path | None = None) -> dict[str, float]:
    """Start a control plane and the operator, run the three phases, stop everything.

    ``profile``: run the operator under ``python -m cProfile -o <profile>`` (written when it exits
    after the full run and the no-op phase; the stored phase is then skipped). Profiling roughly
    doubles the operator's CPU time, so CPU figures of such a run are not comparable.
    """
    if sessions < 1:
        raise ValueError("sessions must be >= 1")
    with operator_cluster("operator", RUN_NS, profile) as (cp, op):
        _log(f"creating {sessions} sessions")
        results = full_run(cp, op, sessions)
        results.update(noop(cp, op, min(NOOP_SESSIONS, sessions)))
        if profile is None:
            results.update(stored_sessions(cp, op, sessions, stored))
        else:
            op.stop()
            _log(f"operator profile written to {profile}")
        return results


if __name__ == "__main__":
    for key, value in run(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 10000,
    ).items():
        print(f"{key}: {value:,.3f}")
