"""Work queue throughput: add/get/done cycles per second on one task (target >= 200,000/s).

Three workloads, each with the queue's metrics off (``metrics=None``) and on
(:class:`QueueMetrics`):

- ``unique``: N distinct keys are added, then each is taken and marked done (a relist storm).
- ``interleaved``: add one key, take it, mark it done; the queue stays tiny (steady state).
- ``hot``: N add events in batches of 1,000, 90% of them on 100 hot keys, drained after each
  batch; de-duplication turns most events into no-ops. Reported as *events* per second.

Every figure is the best of ``repeat`` runs, because the machine is shared.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import random
import sys
import time
from collections.abc import Awaitable, Callable

from agentic_operator.runtime.metrics import QueueMetrics
from agentic_operator.runtime.workqueue import RateLimitingQueue

N = 200_000
BATCH = 1_000
HOT_KEYS = 100
HOT_SHARE = 0.9


def _queue(with_metrics: bool, label: str) -> RateLimitingQueue:
    name = f"bench-{label}"
    return RateLimitingQueue(name=name, metrics=QueueMetrics(name) if with_metrics else None)


async def _unique(q: RateLimitingQueue, keys: list[str]) -> int:
    for key in keys:
        q.add(key)
    for _ in range(len(keys)):
        q.done(await q.get())
    return len(keys)


async def _interleaved(q: RateLimitingQueue, keys: list[str]) -> int:
    for key in keys:
        q.add(key)
        q.done(await q.get())
    return len(keys)


async def _hot(q: RateLimitingQueue, events: list[str]) -> int:
    for start in range(0, len(events), BATCH):
        for key in events[start : start + BATCH]:
            q.add(key)
        while len(q):
            q.done(await q.get())
    return len(events)


def _hot_events(n: int) -> list[str]:
    rng = random.Random(42)
    hot = [f"hot/k{i}" for i in range(HOT_KEYS)]
    return [rng.choice(hot) if rng.random() < HOT_SHARE else f"cold/k{i}" for i in range(n)]


def _measure(
    workload: Callable[[RateLimitingQueue, list[str]], Awaitable[int]],
    keys: list[str],
    with_metrics: bool,
    label: str,
    repeat: int,
) -> float:
    best = 0.0
    for _ in range(repeat):
        q = _queue(with_metrics, label)
        gc.collect()

        async def timed(q: RateLimitingQueue = q) -> float:
            start = time.perf_counter()
            count = await workload(q, keys)
            return count / (time.perf_counter() - start)

        best = max(best, asyncio.run(timed()))
    return best


def run(n: int = N, repeat: int = 3) -> dict[str, float]:
    """Cycles (or events, for ``hot``) per second, keyed ``<workload>[_metrics]``."""
    unique_keys = [f"ns/session-{i}" for i in range(n)]
    hot_events = _hot_events(n)
    workloads: list[
        tuple[str, Callable[[RateLimitingQueue, list[str]], Awaitable[int]], list[str]]
    ] = [
        ("unique", _unique, unique_keys),
        ("interleaved", _interleaved, unique_keys),
        ("hot", _hot, hot_events),
    ]
    out: dict[str, float] = {}
    for label, workload, keys in workloads:
        out[f"{label}_cycles_per_s"] = _measure(workload, keys, False, label, repeat)
        out[f"{label}_metrics_cycles_per_s"] = _measure(workload, keys, True, label, repeat)
    return out


def main() -> None:
    print(
        f"queue bench: {N:,} keys, nproc={len(os.sched_getaffinity(0))}, "
        f"python {platform.python_version()} ({sys.implementation.name}), {platform.machine()}"
    )
    for name, value in run().items():
        print(f"  {name:34s} {value:>12,.0f}")


if __name__ == "__main__":
    main()
