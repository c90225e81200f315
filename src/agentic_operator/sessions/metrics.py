"""The eight session metrics promised by the seed README (names, types and labels are a contract).

Label cardinality is bounded: namespace, phase, outcome, error type. Never a session name.
Each value is recorded once per real event, after the status write that makes it true succeeded,
so retries and conflicts never inflate them (see docs/metrics.md for the exact observation points).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from agentic_operator.registry import REGISTRY

_SLOW = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800)
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

SESSION_STARTUP = Histogram(
    "ambient_session_startup_duration_seconds",
    "Time from a run's start (Pending) to its runner container running (Running).",
    ["namespace"],
    buckets=_SLOW,
    registry=REGISTRY,
)
SESSIONS_TOTAL = Counter(
    "ambient_sessions_total",
    "Sessions created (counted once, when the operator first initialises the phase).",
    ["namespace"],
    registry=REGISTRY,
)
SESSIONS_COMPLETED = Counter(
    "ambient_sessions_completed_total",
    "Session runs reaching a terminal phase (Stopped, Failed, Completed).",
    ["namespace", "final_phase"],
    registry=REGISTRY,
)
PHASE_TRANSITIONS = Counter(
    "ambient_session_phase_transitions_total",
    "Phase transitions written to session status (from_phase=None for the first).",
    ["namespace", "from_phase", "to_phase"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "ambient_reconcile_duration_seconds",
    "Session reconcile duration by the phase it started in and whether it succeeded.",
    ["phase", "success"],
    buckets=_FAST,
    registry=REGISTRY,
)
POD_CREATION = Histogram(
    "ambient_pod_creation_duration_seconds",
    "Time from a run's start to its runner Job (and so its pod) being created.",
    ["namespace"],
    buckets=_FAST,
    registry=REGISTRY,
)
TOKEN_PROVISION = Histogram(
    "ambient_token_provision_duration_seconds",
    "Time to provision a runner's identity: ServiceAccount, Role, RoleBinding, token Secret.",
    ["namespace"],
    buckets=_FAST,
    registry=REGISTRY,
)
SESSION_ERRORS = Counter(
    "ambient_session_errors_total",
    "Session errors by phase and type (api_error, invalid_spec, secret_missing, "
    "token_provision, create_failed, job_missing, timeout, runner_failed).",
    ["namespace", "phase", "error_type"],
    registry=REGISTRY,
)
