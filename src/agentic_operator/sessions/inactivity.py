"""Idle auto-stop: when a Running session has had no activity for too long (pure; rows A7/A8).

The platform's backend writes ``status.lastActivityTime`` for every AG-UI event it proxies (at
most every 10 s per session); nothing else measures activity. A session whose runner is up but
idle past its limit is stopped the way a user stops it (``desired-phase=Stopped``), with
``ambient-code.io/stop-reason=inactivity`` so that it ends with ``stoppedReason: inactivity``.

The limit, first found wins: ``spec.inactivityTimeout``, the project's
``ProjectSettings.spec.inactivityTimeoutSeconds``, the operator's ``DEFAULT_INACTIVITY_TIMEOUT``
(24 h); 0 disables. Idle time counts from ``status.lastActivityTime``, else the run's
``startTime``, else the session's creation. The check reads only the observation, and the
decision asks to be woken when the limit would be reached, so nothing polls the API server.
"""

from __future__ import annotations

from datetime import datetime

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.bounds import MAX_SECONDS
from agentic_operator.sessions.observe import Observation
from agentic_operator.sessions.status import parse_time


def _seconds(value: object) -> int | None:
    """A usable limit, at most :data:`MAX_SECONDS` (68 years, as good as never): a larger one,
    stored before the schema bounded it, would make a wake-up time the event loop cannot hold."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return min(value, MAX_SECONDS)
    return None


def limit(obs: Observation) -> int:
    """The session's idle limit in seconds (0: no idle auto-stop)."""
    own = _seconds((obs.session.get("spec") or {}).get("inactivityTimeout"))
    if own is not None:
        return own
    project: Obj = (obs.project_settings or {}).get("spec") or {}
    from_project = _seconds(project.get("inactivityTimeoutSeconds"))
    if from_project is not None:
        return from_project
    return obs.cfg.default_inactivity_timeout


def last_activity(obs: Observation) -> datetime | None:
    status = obs.session.get("status") or {}
    for value in (
        status.get("lastActivityTime"),
        status.get("startTime"),
        (obs.session.get("metadata") or {}).get("creationTimestamp"),
    ):
        when = parse_time(value)
        if when is not None:
            return when
    return None


def remaining(obs: Observation) -> float | None:
    """Seconds until the session counts as idle (<= 0: it is); None without a limit."""
    seconds = limit(obs)
    since = last_activity(obs)
    if seconds == 0 or since is None:
        return None
    return seconds - (obs.now - since).total_seconds()
