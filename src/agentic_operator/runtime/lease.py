"""The leader-election record in a ``coordination.k8s.io/v1`` Lease, and the elector's settings.

Pure functions: what a Lease body looks like when it is created, claimed or released, which of its
fields are the record a standby watches, and which timing settings are consistent. The campaign
and renewal loops that read and write these bodies are in :mod:`.leaderelection`.

The record is written the way client-go writes it, so operators using either implementation can
share a Lease: whole-second ``leaseDurationSeconds``, ``metav1.MicroTime`` timestamps,
``leaseTransitions`` counting changes of holder, and a release that empties ``holderIdentity``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, Protocol

from agentic_operator.kube.resources import LEASES, Obj, Resource

# The fields of a Lease spec that make up the leader-election record. A standby compares only these
# to decide whether the holder is alive, so unrelated edits (labels, annotations) do not count as a
# heartbeat, and any rewrite of the record by the holder does.
RECORD_FIELDS = (
    "holderIdentity",
    "leaseDurationSeconds",
    "acquireTime",
    "renewTime",
    "leaseTransitions",
)


class LeaseClient(Protocol):
    """The part of the API client the elector needs (see ``agentic_operator.kube.client``)."""

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj: ...

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj: ...

    async def replace(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None
    ) -> Obj: ...


def format_micro_time(ts: datetime) -> str:
    """A ``metav1.MicroTime`` string: RFC 3339 in UTC with exactly six fractional digits."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(spec: dict[str, Any]) -> dict[str, Any]:
    """The leader-election record of a Lease spec (:data:`RECORD_FIELDS`, absent ones as None)."""
    return {k: spec.get(k) for k in RECORD_FIELDS}


def advertised_duration(spec: dict[str, Any], default: float) -> float:
    """How long the holder promised to renew within: its ``leaseDurationSeconds``, else ``default``.

    The holder's own promise is respected (client-go does too), so a standby configured with a
    shorter duration still waits as long as the holder expects.
    """
    seconds = spec.get("leaseDurationSeconds")
    if isinstance(seconds, int) and seconds > 0:
        return float(seconds)
    return default


def check_settings(
    *,
    name: str,
    namespace: str,
    identity: str,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
    jitter: float,
) -> None:
    """Raise ``ValueError`` naming the setting when the elector's settings are inconsistent.

    The same checks as client-go's: ``lease_duration > renew_deadline`` because a leader must have
    given up before a standby may take over; ``renew_deadline > jitter * retry_period`` so that a
    renewal round has room for a retry after a failed attempt.
    """
    for what, value in (("name", name), ("namespace", namespace), ("identity", identity)):
        if not value:
            raise ValueError(f"leader election: {what} must not be empty")
    if not retry_period > 0:
        raise ValueError(f"leader election: retry_period ({retry_period}) must be > 0")
    if not jitter > 0:
        raise ValueError(f"leader election: jitter ({jitter}) must be > 0")
    if not renew_deadline > jitter * retry_period:
        raise ValueError(
            f"leader election: renew_deadline ({renew_deadline}) must be greater than "
            f"jitter * retry_period ({jitter} * {retry_period} = {jitter * retry_period})"
        )
    if not lease_duration > renew_deadline:
        raise ValueError(
            f"leader election: lease_duration ({lease_duration}) must be greater than "
            f"renew_deadline ({renew_deadline})"
        )


def new_lease(name: str, namespace: str, identity: str, lease_seconds: int, now: str) -> Obj:
    """A Lease to create when none exists: held by ``identity``, acquired and renewed ``now``."""
    return {
        "apiVersion": LEASES.api_version,
        "kind": LEASES.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": lease_seconds,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        },
    }


def claimed(lease: Obj, identity: str, lease_seconds: int, now: str) -> Obj:
    """``lease`` with ``identity`` written in as holder, renewed ``now``: a renewal or a takeover.

    A takeover (another or no holder before) sets ``acquireTime`` and counts one more
    ``leaseTransitions``; a renewal keeps both (``acquireTime`` is filled in if missing). The body
    keeps the ``resourceVersion`` that was read, so the PUT fails with 409 if anyone wrote since.
    """
    spec: dict[str, Any] = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    new_spec = dict(spec)
    new_spec.update(
        holderIdentity=identity,
        leaseDurationSeconds=lease_seconds,
        renewTime=now,
    )
    if holder != identity or not spec.get("acquireTime"):
        new_spec["acquireTime"] = now
    if holder != identity:
        new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
    body = dict(lease)
    body["spec"] = new_spec
    return body


def released(lease: Obj, now: str) -> Obj:
    """``lease`` given up: no holder and a one-second duration, so a standby may take it at once.

    A deep copy: the caller's last-seen Lease stays as it was if the write fails.
    """
    body = copy.deepcopy(lease)
    spec = body.setdefault("spec", {})
    spec.update(
        holderIdentity="",
        leaseDurationSeconds=1,
        renewTime=now,
    )
    return body
