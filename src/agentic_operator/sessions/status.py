"""Status helpers: RFC 3339 times as the API writes them, and conditions found and upserted the
way ``meta.SetStatusCondition`` does (what the runner says: :mod:`.verdict`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentic_operator.kube.resources import Obj

# --- time ----------------------------------------------------------------------------------------


def now_rfc3339(dt: datetime) -> str:
    """``dt`` as RFC3339 UTC with second precision (``2026-01-01T00:00:00Z``), the API's format.

    A naive datetime is taken to be UTC already.
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> datetime:
    """Parse an API timestamp (``Z`` or numeric offset, optional fraction) to an aware UTC datetime.

    Raises ``ValueError`` on anything else.
    """
    text = s.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"not an RFC3339 timestamp: {s!r}")
    return dt.astimezone(UTC)


def parse_time(value: Any) -> datetime | None:
    """Like :func:`parse_rfc3339` for a value read from an object: None for anything unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


# --- conditions ----------------------------------------------------------------------------------


def find_condition(conditions: list[Obj] | None, type_: str) -> Obj | None:
    """The condition of this type (case-insensitive), or None."""
    want = type_.lower()
    for cond in conditions or ():
        if str(cond.get("type", "")).lower() == want:
            return cond
    return None


def upsert_condition(
    conditions: list[Obj],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Obj]:
    """Return a new condition list with ``type_`` set; the input list and its dicts are untouched.

    Rules (upstream's, kept so existing clients read the same thing):
    * the condition is found by type, case-insensitively (and gets the canonical spelling);
    * ``lastTransitionTime`` moves only when ``status`` changes, so it says when the state flipped,
      not when the operator last looked;
    * ``reason``/``message`` are overwritten only by non-empty values;
    * a new condition is appended with ``lastTransitionTime=now``.

    When nothing changes the result compares equal to the input, which lets the reconciler skip
    the status write (a no-op reconcile makes no API write).
    """
    ts = now_rfc3339(now)
    out: list[Obj] = []
    found = False
    for cond in conditions:
        if found or str(cond.get("type", "")).lower() != type_.lower():
            out.append(cond)
            continue
        found = True
        new = dict(cond)
        new["type"] = type_
        if new.get("status") != status or not new.get("lastTransitionTime"):
            new["lastTransitionTime"] = ts
        new["status"] = status
        if reason:
            new["reason"] = reason
        if message:
            new["message"] = message
        if observed_generation is not None:
            new["observedGeneration"] = observed_generation
        out.append(new)
    if not found:
        cond = {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": ts,
        }
        if observed_generation is not None:
            cond["observedGeneration"] = observed_generation
        out.append(cond)
    return out
