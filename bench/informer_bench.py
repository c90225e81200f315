"""Informer hot path: watch events decoded and stored per second, and memory per stored Job.

No network: a byte stream of newline-delimited watch events is synthesised up front and fed in
64 KiB chunks through exactly what the informer runs per event: the client's line splitter
(:class:`WatchLineSplitter`), then :meth:`Informer.process_line` (decode, prune managedFields,
store, notify handlers).

- ``events_per_s``: ADDED/MODIFIED events of a ~4 KB Job (wire size, managedFields included) over
  2,000 distinct Jobs, best of ``repeat`` runs (target >= 50,000/s on one core). Two
  configurations: ``cache_only`` (no handlers: the compact store keeps the event's bytes, so only
  the envelope and metadata are decoded), and ``with_handlers`` (add, update and delete handlers
  the way a controller registers them: every add decodes the new object, every update the old one
  too, since predicates compare them).
- ``mb_per_10k_jobs``: memory held by the store after 10,000 Jobs were added, measured with
  tracemalloc (target <= 60 MB).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import cast

import orjson

from agentic_operator.kube.client import ApiClient, WatchLineSplitter
from agentic_operator.kube.resources import JOBS, Obj
from agentic_operator.runtime.informer import Informer

CHUNK = 64 * 1024
EVENTS = 100_000
DISTINCT = 2_000
STORED = 10_000
ENV_VARS = 18  # what the session builder sets on a runner


def job(i: int, rv: int) -> Obj:
    """A Job as a session operator creates it, with status and managedFields (~4 KB of JSON)."""
    name = f"session-{i:06d}-runner"
    ns = f"project-{i % 50}"
    env = [
        {"name": f"RUNNER_SETTING_{k}", "value": f"http://backend.{ns}.svc/{k}/{i:06d}"}
        for k in range(ENV_VARS)
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"0b1c2d3e-0000-4000-8000-{i:012d}",
            "resourceVersion": str(rv),
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "app.kubernetes.io/managed-by": "agentic-operator",
                "vteam.ambient-code/session": f"session-{i:06d}",
                "batch.kubernetes.io/job-name": name,
            },
            "annotations": {"vteam.ambient-code/attempt": "1"},
            "ownerReferences": [
                {
                    "apiVersion": "vteam.ambient-code/v1alpha1",
                    "kind": "AgenticSession",
                    "name": f"session-{i:06d}",
                    "uid": f"9a8b7c6d-0000-4000-8000-{i:012d}",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "agentic-operator",
                    "operation": "Apply",
                    "apiVersion": "batch/v1",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}}},
                        "f:spec": {
                            "f:backoffLimit": {},
                            "f:activeDeadlineSeconds": {},
                            "f:template": {"f:spec": {"f:containers": {'k:{"name":"runner"}': {}}}},
                        },
                    },
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "batch/v1",
                    "time": "2026-01-01T00:00:05Z",
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:active": {}, "f:ready": {}, "f:startTime": {}}},
                },
            ],
        },
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": 600,
            "podReplacementPolicy": "Failed",
            "completionMode": "NonIndexed",
            "suspend": False,
            "manualSelector": False,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": f"uid-{i}"}},
            "template": {
                "metadata": {
                    "labels": {
                        "vteam.ambient-code/session": f"session-{i:06d}",
                        "batch.kubernetes.io/controller-uid": f"0b1c2d3e-0000-4000-8000-{i:012d}",
                        "batch.kubernetes.io/job-name": name,
                    }
                },
                "spec": {
                    "restartPolicy": "Never",
                    "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler",
                    "terminationGracePeriodSeconds": 30,
                    "serviceAccountName": f"ambient-session-{i:06d}",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "runner",
                            "image": "quay.io/ambient_code/vteam_claude_runner:latest",
                            "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "ports": [{"name": "agui", "containerPort": 8001, "protocol": "TCP"}],
                            "args": ["--session", f"session-{i:06d}", "--namespace", ns],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": "2", "memory": "4Gi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                        }
                    ],
                    "volumes": [{"name": "workspace", "emptyDir": {"sizeLimit": "10Gi"}}],
                },
            },
        },
        "status": {
            "active": 1,
            "ready": 1,
            "startTime": "2026-01-01T00:00:03Z",
            "uncountedTerminatedPods": {},
            "conditions": [],
        },
    }


def _stream(count: int, distinct: int) -> bytes:
    lines = []
    for n in range(count):
        i = n % distinct
        event_type = "ADDED" if n < distinct else "MODIFIED"
        lines.append(orjson.dumps({"type": event_type, "object": job(i, 1000 + n)}))
    return b"\n".join(lines) + b"\n"


def _informer(compact: bool, handlers: bool = True) -> tuple[Informer, list[str]]:
    # process_line never touches the client; the informer is not run.
    informer = Informer(cast(ApiClient, None), JOBS, compact=compact)
    keys: list[str] = []

    def enqueue(obj: Obj) -> None:
        keys.append(obj["metadata"]["name"])

    def on_update(old: Obj, new: Obj) -> None:
        # A controller's update handler: its predicate compares old and new, then it maps both.
        if old["metadata"]["resourceVersion"] != new["metadata"]["resourceVersion"]:
            enqueue(new)

    if handlers:
        informer.add_handler(enqueue, on_update, enqueue)
    return informer, keys


def _feed(informer: Informer, data: bytes) -> int:
    """The watch loop minus the socket: split chunks into lines, decode, apply."""
    splitter = WatchLineSplitter()
    process = informer.process_line
    count = 0
    for start in range(0, len(data), CHUNK):
        for line in splitter.feed(data[start : start + CHUNK]):
            process(line)
            count += 1
    return count


def events_per_second(compact: bool, handlers: bool, repeat: int = 3) -> tuple[float, float]:
    """(events/s, mean wire bytes per event)."""
    data = _stream(EVENTS, DISTINCT)
    best = 0.0
    for _ in range(repeat):
        informer, keys = _informer(compact, handlers)
        gc.collect()
        start = time.perf_counter()
        count = _feed(informer, data)
        elapsed = time.perf_counter() - start
        expected = (EVENTS, EVENTS if handlers else 0, DISTINCT)
        if (count, len(keys), len(informer.store)) != expected:
            raise RuntimeError("benchmark stream was not applied completely")
        best = max(best, count / elapsed)
    return best, len(data) / EVENTS


def memory_per_10k_jobs(compact: bool) -> float:
    """MB held by a store of 10,000 Jobs (managedFields dropped), by tracemalloc."""
    data = _stream(STORED, STORED)
    informer, keys = _informer(compact)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _feed(informer, data)
        keys.clear()  # the handler's key list is the queue's business, not the store's
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    if len(informer.store) != STORED:
        raise RuntimeError("benchmark stream was not applied completely")
    return (after - before) / 1e6 * (10_000 / STORED)


def run() -> dict[str, float]:
    results: dict[str, float] = {}
    rate, size = events_per_second(compact=True, handlers=False)
    results["event_wire_bytes"] = round(size)
    results["watch_events_per_s_compact_cache_only"] = round(rate)
    for compact, store in ((True, "compact"), (False, "dict")):
        rate, _ = events_per_second(compact, handlers=True)
        results[f"watch_events_per_s_{store}_with_handlers"] = round(rate)
    results["mb_per_10k_jobs_compact"] = round(memory_per_10k_jobs(True), 1)
    results["mb_per_10k_jobs_dict"] = round(memory_per_10k_jobs(False), 1)
    return results


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:,}")
