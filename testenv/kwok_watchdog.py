"""A watchdog for kwok's stage engine: re-trigger pods whose next stage never played.

kwok v0.8 occasionally loses a delayed stage transition under load: the pod keeps its status (say
Running, with the `complete` outcome and a 1 s duration) and no event comes to re-evaluate it, so
it never finishes (observed here: about one runner pod in three hundred during the 100-session
crash test). A real kubelet has no such failure mode, so tests would fail for a reason that is not
the operator's. The watchdog polls pods; one that should have moved on (see :func:`overdue`) but
whose resourceVersion has not changed for ``stall`` seconds gets an annotation bump, which is an
update event for kwok, which then evaluates its stages again. Every nudge is written to
``<log_dir>/kwok-watchdog.log`` so it is visible, never silent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNNER = "ambient-code-runner"
OUTCOME_ANNOTATION = "testenv.ambient-code.io/outcome"
DURATION_ANNOTATION = "testenv.ambient-code.io/duration"
HYDRATE_ANNOTATION = "testenv.ambient-code.io/hydrate-duration"
NUDGE_ANNOTATION = "testenv.ambient-code.io/nudge"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

Api = Callable[..., tuple[int, Any]]


def go_duration(text: str, default: float = 1.0) -> float:
    """Seconds in a Go duration string (``500ms``, ``2s``, ``1m30s``); ``default`` if malformed."""
    parts = _DURATION_PART.findall(text or "")
    if not parts or "".join(n + u for n, u in parts) != text:
        return default
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _runner_env(pod: dict[str, Any], name: str) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == RUNNER:
            for e in c.get("env") or []:
                if e.get("name") == name and isinstance(e.get("value"), str):
                    return str(e["value"])
    return ""


def _init_env(pod: dict[str, Any], name: str) -> str:
    for c in (pod.get("spec") or {}).get("initContainers") or []:
        for e in c.get("env") or []:
            if e.get("name") == name and isinstance(e.get("value"), str):
                return str(e["value"])
    return ""


def _since(statuses: list[dict[str, Any]], now: datetime) -> float | None:
    """Seconds since the latest ``state.running.startedAt`` among ``statuses`` (None: none)."""
    started = None
    for cs in statuses:
        at = (cs.get("state") or {}).get("running", {}).get("startedAt")
        if at:
            started = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return None if started is None else (now - started).total_seconds()


def outcome_of(pod: dict[str, Any]) -> str:
    """The outcome the stages in kwok/stages.yaml pick for this pod (same precedence)."""
    meta = pod.get("metadata") or {}
    chosen = (meta.get("annotations") or {}).get(OUTCOME_ANNOTATION) or _runner_env(
        pod, "TESTENV_RUNNER_OUTCOME"
    )
    if chosen:
        return str(chosen)
    owned_by_job = any(r.get("kind") == "Job" for r in meta.get("ownerReferences") or [])
    has_runner = any(
        c.get("name") == RUNNER for c in (pod.get("spec") or {}).get("containers") or []
    )
    return "complete" if owned_by_job and has_runner else "run-forever"


def overdue(pod: dict[str, Any], now: datetime) -> str | None:
    """Why this pod should already have moved to its next stage, or None if it is where it rests."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    phase = status.get("phase")
    if meta.get("deletionTimestamp"):
        return "deletion not finished"
    if phase in ("Succeeded", "Failed") or not (pod.get("spec") or {}).get("nodeName"):
        return None
    outcome = outcome_of(pod)
    waiting = [
        (cs.get("state") or {}).get("waiting", {}).get("reason")
        for cs in status.get("containerStatuses") or []
    ]
    if (
        phase == "Pending"
        and outcome != "stay-pending"
        and (not waiting or "ContainerCreating" in waiting)
    ):
        return "not started"
    if phase == "Running" and "ContainerCreating" in waiting and outcome != "stay-pending":
        return "running with a container still being created"
    annotations = meta.get("annotations") or {}
    if phase == "Pending" and "PodInitializing" in waiting:
        hydrate = go_duration(
            annotations.get(HYDRATE_ANNOTATION) or _init_env(pod, "TESTENV_HYDRATE_DURATION"), 0.1
        )
        since = _since(status.get("initContainerStatuses") or [], now)
        if since is not None and since > hydrate:
            return f"init containers due after {hydrate:g}s"
    ends = outcome in ("complete", "oom") or outcome.startswith("exit-")
    if phase == "Running" and ends:
        duration = go_duration(
            annotations.get(DURATION_ANNOTATION) or _runner_env(pod, "TESTENV_RUNNER_DURATION")
        )
        since = _since(status.get("containerStatuses") or [], now)
        if since is not None and since > duration:
            return f"{outcome} due after {duration:g}s"
    return None


class KwokWatchdog:
    def __init__(
        self, api: Api, log_path: Path, *, interval: float = 10.0, stall: float = 15.0
    ) -> None:
        self.api = api
        self.log_path = log_path
        self.interval = interval
        self.stall = stall
        self.nudges = 0
        self._seen: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kwok-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once(time.monotonic(), datetime.now(UTC))
            except Exception as exc:  # the API server may be restarting; try again later
                self._log(f"poll failed: {exc}")

    def check_once(self, mono: float, now: datetime) -> int:
        """One poll: nudge every overdue pod stalled for ``stall`` seconds; returns how many."""
        code, body = self.api("GET", "/api/v1/pods")
        if code != 200 or not isinstance(body, dict):
            return 0
        seen: dict[str, tuple[str, float]] = {}
        nudged = 0
        for pod in body.get("items") or []:
            meta = pod.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            rv = str(meta.get("resourceVersion"))
            since = self._seen.get(key, (rv, mono))
            since = since if since[0] == rv else (rv, mono)
            seen[key] = since
            reason = overdue(pod, now)
            if reason is None or mono - since[1] < self.stall:
                continue
            self.nudges += 1
            nudged += 1
            patch = {"metadata": {"annotations": {NUDGE_ANNOTATION: str(self.nudges)}}}
            path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}"
            code, _ = self.api("PATCH", path, patch, content_type="application/merge-patch+json")
            self._log(f"nudged {key} ({reason}; unchanged for {mono - since[1]:.0f}s): {code}")
        self._seen = seen
        return nudged

    def _log(self, line: str) -> None:
        with self.log_path.open("a") as f:
            f.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {line}\n")
