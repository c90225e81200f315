"""What one reconcile of a session intends to do, as data: the output of ``decide``.

A :class:`Plan` is an ordered list of actions (at most one of them a status write), the effects
each action has once it succeeded (Events, metric observations), and when to look again. The
decision code builds plans without touching the API; :mod:`.apply` carries them out. Because a
plan is plain data, the decision tests compare plans instead of recording API calls.

Effects hang off the action that makes them true: a phase-transition Event and counter follow the
status write that records the transition, the pod-creation histogram follows the Job's create.
A failed action stops the plan, so an effect is never recorded for something that did not happen
and a retry, which decides again from the new state, does not record it twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter, Histogram

from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.sessions.model import AGUI_PORT
from agentic_operator.sessions.status import upsert_condition

NEXT_STEP = 0.001
"""Requeue delay of a plan whose work continues in the next reconcile (a new run's first status
write, then its children): the key comes back at once, after this reconcile's writes are cached."""


# --- effects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the session."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Count:
    """``metric.labels(*labels).inc()``."""

    metric: Counter
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Measure:
    """``metric.labels(*labels).observe(value)``."""

    metric: Histogram
    labels: tuple[str, ...]
    value: float


Effect = Event | Count | Measure


# --- actions -------------------------------------------------------------------------------------

CacheName = Literal["jobs", "services", "network_policies"]


@dataclass(frozen=True)
class Create:
    """Create ``body``.

    ``exists``: what an AlreadyExists answer means. ``"ok"``: the object is someone's to keep as it
    is (a placeholder the backend fills in, identity objects), so the plan goes on. ``"stale"``:
    the observation missed it (a cache that lags): the live object is read into ``cache`` and the
    plan stops with an immediate requeue, so the next decision sees it (the Job: the duplicate
    fence). ``on_error`` turns any other API error into a plan (conditions, Events) applied before
    the error is re-raised for a retry with backoff.
    """

    resource: Resource
    body: Obj
    exists: Literal["ok", "stale"] = "ok"
    cache: CacheName | None = None
    then: tuple[Effect, ...] = ()
    on_error: Callable[[str], Plan] | None = None


@dataclass(frozen=True)
class Replace:
    """PUT ``body`` (carrying its resourceVersion: a 409 means it moved, retry). ``cache`` and
    ``on_error`` as for :class:`Create`."""

    resource: Resource
    body: Obj
    cache: CacheName | None = None
    on_error: Callable[[str], Plan] | None = None


@dataclass(frozen=True)
class Patch:
    """Merge-patch a child (``body``); ``cache`` names the store the result is written to."""

    resource: Resource
    name: str
    namespace: str
    body: Obj
    cache: CacheName | None = None


@dataclass(frozen=True)
class Delete:
    """Delete the object with this UID (precondition); NotFound or a UID mismatch mean it is gone
    already. A background delete is removed from ``cache`` at once, so a reconcile that runs before
    the DELETED event does not delete again; a foreground delete stays until the event (its
    ``deletionTimestamp`` tells the next decision that it is under way)."""

    resource: Resource
    name: str
    namespace: str
    uid: str
    propagation: Literal["Foreground", "Background"] = "Background"
    cache: CacheName | None = None


@dataclass(frozen=True)
class EnsureIdentity:
    """The runner's ServiceAccount, Role and RoleBinding as :mod:`.objects` builds them, made true
    at every run start: each is created; an existing ServiceAccount gets the
    ``created-by-user-id`` annotation merge-patched when it differs, an existing Role its rules
    replaced when they differ (an identity made by an earlier version converges), an existing
    RoleBinding is kept (its roleRef is immutable and always the same). ``on_error`` as for
    :class:`Create`."""

    on_error: Callable[[str], Plan] | None = None


@dataclass(frozen=True)
class ProvisionToken:
    """Mint the runner token and store it in the token Secret.

    ``secret``: the token Secret as observed (replaced, keeping its resourceVersion), or None
    (created; AlreadyExists means an earlier attempt got that far: it is read and replaced).
    ``refresh``: only the ``k8s-token`` key and its annotations change, by a merge patch of the
    existing Secret, so every other key (``agui-token``, ...) is kept as it is (the refresh of a
    Running session, :mod:`.running`). A TokenRequest that answers NotFound (the ServiceAccount
    is gone) recreates the identity once.
    """

    lifetime: int
    secret: Obj | None
    on_error: Callable[[str], Plan] | None = None
    refresh: bool = False


@dataclass(frozen=True)
class PatchSession:
    """Merge-patch the session, guarded by the resourceVersion the decision was made on (so that
    clearing ``desired-phase=Stopped`` cannot erase a restart request written meanwhile)."""

    patch: Obj


@dataclass(frozen=True)
class WriteStatus:
    """PUT ``/status`` with ``status``, carrying the session's resourceVersion; ``then`` follows
    once it is written (transition Events and counters)."""

    status: Obj
    then: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class RunnerCall:
    """POST ``body`` to the runner's HTTP API at ``path``; ``label`` names it in Events."""

    path: str
    body: Obj
    label: str


@dataclass(frozen=True)
class CallRunner:
    """Make ``calls`` on the runner's ``port`` (each may fail on its own); ``decide(errors)``
    turns the outcome (the error text per call, None for success, in order) into the rest of the
    plan. The executor sends the session's AG-UI token with them (read from the token Secret, so
    that it never is part of a plan)."""

    calls: tuple[RunnerCall, ...]
    decide: Callable[[Sequence[str | None]], Plan]
    port: int = AGUI_PORT


Action = (
    Create
    | Replace
    | Patch
    | Delete
    | EnsureIdentity
    | ProvisionToken
    | PatchSession
    | WriteStatus
    | CallRunner
)


@dataclass(frozen=True)
class Plan:
    """One reconcile's intent. ``row`` names the phase-table row (``docs/sessions.md``) it follows.

    ``requeue_after``: look again after that many seconds (None: when an event says so).
    ``effects`` follow once every action succeeded. ``reads``: the decision needs a live read
    first (``"job"``, ``"start"``, see :mod:`.observe`) and is made again with it; such a plan has
    no actions. ``note``: a line the reconcile logs (e.g. why nothing can be done).
    """

    row: str
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None
    effects: tuple[Effect, ...] = ()
    reads: frozenset[str] = frozenset()
    note: str = ""

    @property
    def status_writes(self) -> int:
        return sum(isinstance(a, WriteStatus) for a in self.actions)


# --- building a status ---------------------------------------------------------------------------


class StatusEdit:
    """A copy of a session's ``status`` being edited; :attr:`changed` tells whether to write it.

    Only the keys the operator sets are touched: everything else in ``status`` (fields the backend
    or the runner own, fields this version does not know) is carried over as it was.
    """

    def __init__(self, session: Obj, now: datetime) -> None:
        self.old: Obj = session.get("status") or {}
        self.new: Obj = copy.deepcopy(self.old)
        self.now = now

    def set(self, **fields: Any) -> StatusEdit:
        """Set fields; ``None`` removes one."""
        for k, v in fields.items():
            if v is None:
                self.new.pop(k, None)
            else:
                self.new[k] = v
        return self

    def condition(self, type_: str, status: str, reason: str, message: str = "") -> StatusEdit:
        self.new["conditions"] = upsert_condition(
            self.new.get("conditions") or [], type_, status, reason, message, self.now
        )
        return self

    @property
    def changed(self) -> bool:
        return self.new != self.old

    @property
    def old_phase(self) -> str:
        return str(self.old.get("phase") or "")

    @property
    def new_phase(self) -> str:
        return str(self.new.get("phase") or "")


@dataclass
class Steps:
    """An ordered list of actions being assembled (a small builder for the decision code)."""

    actions: list[Action] = field(default_factory=list)

    def add(self, *actions: Action | None) -> Steps:
        self.actions.extend(a for a in actions if a is not None)
        return self

    def plan(self, row: str, **kwargs: Any) -> Plan:
        return Plan(row, tuple(self.actions), **kwargs)
