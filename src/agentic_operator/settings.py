"""The process settings: what :mod:`agentic_operator.cli` builds and :mod:`agentic_operator.app`
runs with.

A module of its own so that the wiring (``app``) depends on the value, not on the command line
that produces it: ``cli`` imports ``app``, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentic_operator.sessions.config import SessionConfig


@dataclass(frozen=True)
class Settings:
    """Everything the process needs, validated once at start-up."""

    kubeconfig: str | None
    max_concurrent_reconciles: int
    metrics_bind_address: str
    health_probe_bind_address: str
    leader_elect: bool
    leader_election_id: str
    leader_election_namespace: str
    legacy_watch: bool
    dev_mode: bool
    event_loop: str
    qps: float
    burst: int
    cache_sync_timeout: float
    graceful_shutdown_timeout: float
    sessions: SessionConfig = field(repr=False)
