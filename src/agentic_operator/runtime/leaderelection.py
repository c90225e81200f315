"""Lease-based leader election with the semantics of client-go ``tools/leaderelection``.

Several replicas of the operator run side by side; exactly one of them may reconcile. They agree on
who that is through one ``coordination.k8s.io/v1`` Lease: the leader keeps rewriting ``renewTime``;
standbys watch the record and take it over only when it has stopped changing for a full lease
duration. All writes are optimistic (PUT carrying the ``resourceVersion`` that was read), so two
candidates racing for the same lease cannot both win: the loser gets a 409 Conflict.

Why the monotonic clock: a standby never compares the holder's ``renewTime`` (the holder's wall
clock) with its own wall clock, because the two may disagree by more than a lease duration. It only
notes, on its own monotonic clock, *when it last saw the record change*. Clock skew between
machines therefore cannot cause an early takeover; only a difference in clock *rate* could, and
``lease_duration > renew_deadline`` is the margin for that.

How the manager is meant to use it::

    elector = LeaderElector(client, name=..., namespace=..., identity=pod_name)
    await elector.acquire()                 # blocks until we lead
    hold = asyncio.create_task(elector.hold())
    start the controllers
    # Then wait for whichever comes first:
    #  * hold raises LeadershipLost -> stop the controllers AT ONCE (no drain) and exit the
    #    process non-zero. Another replica may already be reconciling; finishing in-flight work
    #    could mean two writers. This is what controller-runtime does.
    #  * SIGTERM (graceful shutdown) -> stop taking work, drain in-flight reconciles, then
    #    cancel ``hold`` and ``await elector.release()`` so a standby takes over at once instead
    #    of waiting a whole lease duration.

With ``release_on_cancel=True`` (the default) cancelling ``hold()`` releases the lease by itself;
an explicit ``release()`` afterwards is a harmless no-op, so the manager may always call it.
``release_on_cancel=False`` makes a cancelled ``hold()`` behave like a killed process (the lease is
left to expire), which is what failover tests need.

Deviations from client-go, all on the side of safety or latency, never earlier takeover:

* A renewal that finds the lease held by someone else ends leadership immediately instead of
  retrying until the renew deadline: the other holder is already acting as leader.
* ``is_leader`` turns False by itself once ``renew_deadline`` has passed since the last successful
  renewal, even if ``hold()`` is not running, so a caller can use it as a fence.
* While a foreign lease is valid, a standby wakes exactly when it would expire (if that comes
  before its next jittered retry), so failover takes ``lease duration + observation lag`` rather
  than up to one more jittered retry period.

The Lease bodies themselves (created, claimed, released), the record a standby watches and the
settings checks are pure functions in :mod:`.lease`; this module is the loops around them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from typing import Any

from agentic_operator.clock import Clock, RealClock, bounded
from agentic_operator.kube.errors import AlreadyExists, Conflict, KubeError, NotFound
from agentic_operator.kube.resources import LEASES, Obj
from agentic_operator.runtime import metrics
from agentic_operator.runtime.lease import (
    LeaseClient,
    advertised_duration,
    check_settings,
    claimed,
    format_micro_time,
    new_lease,
    record,
    released,
)

__all__ = ["LeaderElector", "LeadershipLost", "LeaseClient", "format_micro_time"]

log = logging.getLogger(__name__)

# Lower bound on any wait in the acquire loop, so a floating-point remainder can never turn it into
# a busy loop.
_MIN_WAIT = 0.001


class LeadershipLost(Exception):
    """Raised by :meth:`LeaderElector.hold` when leadership ended; the process should exit."""


class LeaderElector:
    """Campaigns for, holds and releases one Lease. See the module docstring for the life cycle.

    Durations are in seconds. ``lease_duration`` is how long a standby waits after the record last
    changed before taking over; ``renew_deadline`` is how long the leader keeps trying to renew
    before giving up (it must give up before anyone may take over, hence the ordering check);
    ``retry_period`` is the interval between attempts, stretched by up to ``jitter`` times itself
    in the acquire loop so standbys do not hit the API server in lock step.
    """

    def __init__(
        self,
        client: LeaseClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        release_on_cancel: bool = True,
        clock: Clock | None = None,
        jitter: float = 1.2,
        rng: random.Random | None = None,
    ) -> None:
        check_settings(
            name=name,
            namespace=namespace,
            identity=identity,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            jitter=jitter,
        )
        self._client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self._lease_ref = f"{namespace}/{name}"  # how logs and errors name the lease
        self.lease_duration = float(lease_duration)
        self.renew_deadline = float(renew_deadline)
        self.retry_period = float(retry_period)
        self.release_on_cancel = release_on_cancel
        self.jitter = float(jitter)
        self._clock: Clock = clock or RealClock()
        self._rng = rng or random.Random()
        # Whole seconds as the API requires; rounded up so others wait at least as long as we do.
        self._lease_seconds = max(1, math.ceil(self.lease_duration))

        self._leading = False
        self._lease: Obj | None = None  # last Lease object read or written
        self._observed_record: dict[str, Any] | None = None
        self._observed_time = 0.0  # monotonic time the record was last seen to change
        self._last_renew = -math.inf  # monotonic start of the last successful write as holder
        self._known_leader: str | None = None
        # Why the last attempt failed ("" when it did not), logged by the loop with its next wait.
        self._failure = ""
        # Not reset to 0 here: another elector for the same lease in this process may lead.
        self._gauge = metrics.LEADER_ELECTION_MASTER_STATUS.labels(name=name)

    # ----------------------------------------------------------------------------------- public

    @property
    def is_leader(self) -> bool:
        """True while we hold the lease and the last renewal is younger than ``renew_deadline``."""
        return self._leading and self._clock.now() < self._last_renew + self.renew_deadline

    @property
    def leader(self) -> str | None:
        """The holder identity we last observed (``None`` if unknown or released)."""
        return self._known_leader

    async def acquire(self) -> None:
        """Block until this elector holds the lease.

        Tries at once, then every ``retry_period`` (jittered). Each attempt is cut off after
        ``renew_deadline`` so a hung request cannot stall the campaign. Errors talking to the API
        server are logged and retried; only cancellation ends the loop early.
        """
        log.info("leader election: %s campaigning for lease %s", self.identity, self._lease_ref)
        while True:
            try:
                ok = await bounded(self._clock, self._try_acquire_or_renew(), self.renew_deadline)
            except TimeoutError:
                self._failure = f"acquire attempt on {self._lease_ref} timed out"
                ok = False
            if ok:
                self._set_leading(True)
                return
            wait = self._acquire_wait()
            self._log_retry(wait)
            await self._clock.sleep(wait)

    async def hold(self) -> None:
        """Renew the lease every ``retry_period`` until cancelled; raise :class:`LeadershipLost`.

        Leadership is lost when no renewal succeeded within ``renew_deadline`` of the previous one
        (each attempt is cut off at that deadline, so a hung request cannot extend it), or at once
        when the lease turns out to be held by someone else. When cancelled with
        ``release_on_cancel`` it releases the lease (bounded by ``renew_deadline``) before
        re-raising the cancellation.
        """
        if not self._leading:
            raise LeadershipLost(f"{self.identity} does not hold lease {self._lease_ref}")
        try:
            while True:
                await self._clock.sleep(self.retry_period)
                await self._renew_once()
        except LeadershipLost as exc:
            self._set_leading(False, reason=str(exc))
            raise
        except asyncio.CancelledError:
            if self.release_on_cancel and self._leading:
                await self.release()
            raise

    async def release(self) -> bool:
        """Give the lease up so a standby can take it at once; True if the release was written.

        Only writes if we believe we lead, and the write carries the resourceVersion of our last
        renewal: if anyone else touched the lease since, the API server answers 409 and the lease
        is left alone. Leading stops (gauge 0) before the write, so the caller must already have
        stopped its controllers.
        """
        if not self._leading or self._lease is None:
            return False
        self._set_leading(False, reason="released")
        body = released(self._lease, format_micro_time(self._clock.wall()))
        try:
            written = await bounded(
                self._clock,
                self._client.replace(LEASES, self.name, body, self.namespace),
                self.renew_deadline,
            )
        except Conflict:
            log.info(
                "leader election: lease %s changed since our last renewal; not releasing",
                self._lease_ref,
            )
            return False
        except (KubeError, TimeoutError) as exc:
            # Not retried: the lease then expires after its duration, as after a crash.
            log.warning(
                "leader election: releasing lease %s failed: %s",
                self._lease_ref,
                _describe(exc),
            )
            return False
        except Exception:
            log.exception(
                "leader election: releasing lease %s failed unexpectedly", self._lease_ref
            )
            return False
        self._lease = written
        self._observe(written, self._clock.now())
        log.info("leader election: %s released lease %s", self.identity, self._lease_ref)
        return True

    # --------------------------------------------------------------------------------- internals

    async def _renew_once(self) -> None:
        """One renewal round: retry every ``retry_period`` until success or the deadline."""
        while True:
            remaining = self._last_renew + self.renew_deadline - self._clock.now()
            if remaining <= 0:
                raise LeadershipLost(
                    f"failed to renew lease {self._lease_ref} within {self.renew_deadline:g}s"
                )
            try:
                ok = await bounded(self._clock, self._try_acquire_or_renew(), remaining)
            except TimeoutError:
                self._failure = f"renewing lease {self._lease_ref} timed out"
                ok = False
            if ok:
                return
            holder = (self._observed_record or {}).get("holderIdentity")
            if holder and holder != self.identity:
                raise LeadershipLost(f"lease {self._lease_ref} is now held by {holder}")
            remaining = self._last_renew + self.renew_deadline - self._clock.now()
            wait = max(0.0, min(self.retry_period, remaining))
            self._log_retry(wait)
            await self._clock.sleep(wait)

    def _log_retry(self, wait: float) -> None:
        """The failed attempt as one WARNING line with what failed and when the next one is."""
        if self._failure:
            log.warning(
                "leader election: %s; retrying in %.1fs",
                self._failure,
                wait,
                extra={"lease": self._lease_ref, "retry_in": round(wait, 3)},
            )
            self._failure = ""

    def _failed(self, what: str, exc: Exception) -> bool:
        """Note a failed request of an attempt (always False, the attempt's result). An error of
        the API client is expected (the API server restarting, throttling, a 403 while its
        authorizer warms up) and told by the loop in one line; anything else is a bug, logged at
        once with its traceback."""
        if isinstance(exc, KubeError):
            self._failure = f"{what} lease {self._lease_ref} failed: {_describe(exc)}"
        else:
            log.exception("leader election: %s lease %s failed unexpectedly", what, self._lease_ref)
        return False

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt: read the lease and, if we may, write ourselves in as holder.

        Returns False when someone else validly holds it, when a concurrent writer won (409), or
        on an API error (noted for the loop's log line). Never raises for API trouble: the loops
        decide what a failure means.
        """
        started = self._clock.now()
        now = format_micro_time(self._clock.wall())
        try:
            lease = await self._client.get(LEASES, self.name, self.namespace)
        except NotFound:
            return await self._create(started, now)
        except Exception as exc:
            return self._failed("reading", exc)
        # Measured after the read returned: the later we say we saw it, the later we take over.
        seen = self._clock.now()
        self._observe(lease, seen)
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and self._valid(spec, seen):
            return False
        body = claimed(lease, self.identity, self._lease_seconds, now)
        try:
            written = await self._client.replace(LEASES, self.name, body, self.namespace)
        except Conflict:
            log.debug("leader election: lost a race for lease %s", self._lease_ref)
            return False
        except Exception as exc:
            return self._failed("updating", exc)
        self._wrote(written, started)
        return True

    async def _create(self, started: float, now: str) -> bool:
        body = new_lease(self.name, self.namespace, self.identity, self._lease_seconds, now)
        try:
            created = await self._client.create(LEASES, body, self.namespace)
        except (AlreadyExists, Conflict):
            log.debug("leader election: lease %s created concurrently", self._lease_ref)
            return False
        except Exception as exc:
            return self._failed("creating", exc)
        self._wrote(created, started)
        return True

    def _wrote(self, lease: Obj, started: float) -> None:
        # Our own deadline counts from *before* the request: the server applied the write no
        # earlier than that, so others cannot have started their lease-duration wait earlier.
        self._last_renew = started
        self._observe(lease, self._clock.now())

    def _observe(self, lease: Obj, at: float) -> None:
        self._lease = lease
        seen = record(lease.get("spec") or {})
        if seen != self._observed_record:
            self._observed_record = seen
            self._observed_time = at
        holder = seen.get("holderIdentity") or None
        if holder != self._known_leader:
            self._known_leader = holder
            if holder is None:
                log.info("leader election: lease %s has no holder", self._lease_ref)
            else:
                log.info("leader election: %s is the leader of lease %s", holder, self._lease_ref)

    def _valid(self, spec: dict[str, Any], now: float) -> bool:
        """Whether the observed record is younger than the duration its holder advertised."""
        return now < self._observed_time + advertised_duration(spec, self.lease_duration)

    def _acquire_wait(self) -> float:
        wait = self.retry_period * (1.0 + self._rng.random() * self.jitter)
        seen = self._observed_record or {}
        holder = seen.get("holderIdentity")
        if holder and holder != self.identity:
            expires = self._observed_time + advertised_duration(seen, self.lease_duration)
            expires_in = expires - self._clock.now()
            if expires_in > 0:
                wait = min(wait, expires_in)
        return max(_MIN_WAIT, wait)

    def _set_leading(self, leading: bool, reason: str = "") -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self._gauge.set(1 if leading else 0)
        if leading:
            log.info("leader election: %s acquired lease %s", self.identity, self._lease_ref)
        else:
            log.warning(
                "leader election: %s stopped leading lease %s: %s",
                self.identity,
                self._lease_ref,
                reason,
            )


def _describe(exc: BaseException) -> str:
    """Error text for logs: the type and message, never request details such as headers."""
    return f"{type(exc).__name__}: {exc}"
