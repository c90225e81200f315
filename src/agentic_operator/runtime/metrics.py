"""Prometheus metrics of the runtime, under controller-runtime's names.

Dashboards and alerts written for Go operators (controller-runtime, client-go) keep working when the
families keep their names and labels, so this module reuses them verbatim:

- ``controller_runtime_*``: per-controller reconcile counts, errors, latencies and worker gauges,
  updated by :mod:`agentic_operator.runtime.controller`.
- ``workqueue_*``: per-queue depth, adds, retries and latencies. The queue sits on the hottest
  path of the operator, so :class:`QueueMetrics` keeps plain integers and bucket arrays and turns
  them into samples only when Prometheus scrapes (a custom collector), instead of paying for
  ``prometheus_client``'s locks on every add/get/done.
- ``leader_election_master_status``, updated by the leader elector.
- ``agentic_operator_reconcile_errors_by_reason_total``: this operator's own addition, the
  reconcile errors of :data:`RECONCILE_ERRORS` split by what failed.

The REST client families live with the client (:mod:`agentic_operator.kube.metrics`); all are
registered on :data:`agentic_operator.registry.REGISTRY`.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from agentic_operator.clock import Clock, RealClock
from agentic_operator.registry import REGISTRY

# --- Families other modules update directly (defined first: imported by name elsewhere). ---------

LEADER_ELECTION_MASTER_STATUS = Gauge(
    "leader_election_master_status",
    "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
    "1 indicates master. 'name' is the string used to identify the lease.",
    ["name"],
    registry=REGISTRY,
)

# --- controller_runtime_* ----------------------------------------------------------------------

# controller-runtime's reconcile time buckets: fine below a second, coarse up to a minute.
RECONCILE_TIME_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
    *(0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    *(6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0),
)

RECONCILE_RESULTS = ("success", "error", "requeue", "requeue_after")
"""Values of the ``result`` label of :data:`RECONCILE_TOTAL`."""

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller.",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
    registry=REGISTRY,
)
TERMINAL_RECONCILE_ERRORS = Counter(
    "controller_runtime_terminal_reconcile_errors_total",
    "Total number of terminal reconciliation errors per controller.",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_ERRORS_BY_REASON = Counter(
    "agentic_operator_reconcile_errors_by_reason",
    "Reconcile errors per controller and reason: the API client's error class (Conflict, "
    "Forbidden, ServerError, TooManyRequests, TransportError, ...), TerminalError, or Unexpected "
    "for an exception the code did not expect.",
    ["controller", "reason"],
    registry=REGISTRY,
)
RECONCILE_PANICS = Counter(
    "controller_runtime_reconcile_panics_total",
    "Total number of reconciliation panics per controller.",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=RECONCILE_TIME_BUCKETS,
    registry=REGISTRY,
)
MAX_CONCURRENT_RECONCILES = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller.",
    ["controller"],
    registry=REGISTRY,
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller.",
    ["controller"],
    registry=REGISTRY,
)

# --- workqueue_* -------------------------------------------------------------------------------

# client-go's work queue latency buckets: 10 ns to 1000 s, one per decade.
QUEUE_LATENCY_BUCKETS = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


class _Buckets:
    """A histogram as plain counts: ``observe`` is one bisect and two additions, no lock.

    The operator runs on one event loop; a scrape from another thread may read a count that is one
    observation behind the sum, which Prometheus tolerates.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((floatToGoString(bound), float(total)))  # type: ignore[no-untyped-call]
        return out


class QueueMetrics:
    """The ``workqueue_*`` families of one queue (labels ``name`` and ``controller``).

    The queue calls :meth:`add` when a key becomes dirty, :meth:`get` when a worker takes it,
    :meth:`done` when the worker finishes and :meth:`retry` on a rate-limited re-add. Depth,
    unfinished work and the longest running processor are derived at scrape time from what the
    queue and these hooks already track, so they cost nothing per operation.

    Only one instance per ``name`` is exported: a newer instance with the same name replaces the
    older one and carries its counters forward, so a restarted queue never makes a counter go back.
    """

    def __init__(self, name: str, controller: str | None = None) -> None:
        self.name = name
        self.controller = name if controller is None else controller
        self._now: Callable[[], float] = RealClock().now
        self._depth: Callable[[], int] = lambda: 0
        self.adds = 0
        self.retries = 0
        self.queue_duration = _Buckets(QUEUE_LATENCY_BUCKETS)
        self.work_duration = _Buckets(QUEUE_LATENCY_BUCKETS)
        self._added_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}
        previous = _COLLECTOR.register(self)
        if previous is not None:
            self.adds = previous.adds
            self.retries = previous.retries
            self.queue_duration = previous.queue_duration
            self.work_duration = previous.work_duration

    def bind(self, clock: Clock, depth: Callable[[], int]) -> None:
        """Called by the queue: the clock that times items, and how to read its depth."""
        self._now = clock.now
        self._depth = depth

    # Hot-path hooks --------------------------------------------------------------------------

    def add(self, key: str) -> None:
        self.adds += 1
        if key not in self._added_at:
            self._added_at[key] = self._now()

    def get(self, key: str) -> None:
        now = self._now()
        added = self._added_at.pop(key, None)
        if added is not None:
            self.queue_duration.observe(now - added)
        self._started_at[key] = now

    def done(self, key: str) -> None:
        started = self._started_at.pop(key, None)
        if started is not None:
            self.work_duration.observe(self._now() - started)

    def retry(self) -> None:
        self.retries += 1

    def discard_pending(self) -> None:
        """Forget the add times of keys that will never be handed out (queue shut down)."""
        self._added_at.clear()

    # Scrape-time values ----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self._depth()

    def unfinished_work_seconds(self) -> float:
        """Total time the items currently being processed have been in progress."""
        now = self._now()
        return sum(now - t for t in self._started_at.values())

    def longest_running_processor_seconds(self) -> float:
        now = self._now()
        return max((now - t for t in self._started_at.values()), default=0.0)

    def close(self) -> None:
        """Stop exporting this queue's series (e.g. a controller that is gone for good)."""
        _COLLECTOR.unregister(self)


class _QueueCollector:
    """Turns every live :class:`QueueMetrics` into ``workqueue_*`` samples at scrape time."""

    _LABELS = ("name", "controller")

    def __init__(self) -> None:
        # Weak values: a queue nobody references any more disappears from the scrape by itself.
        self._queues: weakref.WeakValueDictionary[str, QueueMetrics] = weakref.WeakValueDictionary()

    def register(self, metrics: QueueMetrics) -> QueueMetrics | None:
        previous = self._queues.get(metrics.name)
        self._queues[metrics.name] = metrics
        return previous

    def unregister(self, metrics: QueueMetrics) -> None:
        if self._queues.get(metrics.name) is metrics:
            del self._queues[metrics.name]

    def describe(self) -> Iterable[Metric]:
        return self._build(())

    def collect(self) -> Iterable[Metric]:
        return self._build(list(self._queues.values()))

    def _build(self, queues: Iterable[QueueMetrics]) -> list[Metric]:
        labels = self._LABELS
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=labels)
        adds = CounterMetricFamily(
            "workqueue_adds", "Total number of adds handled by workqueue", labels=labels
        )
        retries = CounterMetricFamily(
            "workqueue_retries", "Total number of retries handled by workqueue", labels=labels
        )
        queue_d = HistogramMetricFamily(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            labels=labels,
        )
        work_d = HistogramMetricFamily(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            labels=labels,
        )
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed "
            "by work_duration. Large values indicate stuck threads.",
            labels=labels,
        )
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            labels=labels,
        )
        for q in queues:
            values = (q.name, q.controller)
            depth.add_metric(values, float(q.depth))
            adds.add_metric(values, float(q.adds))
            retries.add_metric(values, float(q.retries))
            queue_d.add_metric(values, q.queue_duration.cumulative(), q.queue_duration.sum)
            work_d.add_metric(values, q.work_duration.cumulative(), q.work_duration.sum)
            unfinished.add_metric(values, q.unfinished_work_seconds())
            longest.add_metric(values, q.longest_running_processor_seconds())
        return [depth, adds, retries, queue_d, work_d, unfinished, longest]


_COLLECTOR = _QueueCollector()
REGISTRY.register(_COLLECTOR)
