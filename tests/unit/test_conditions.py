"""upsert_condition: the upstream upsert rules, and that inputs are never mutated."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.status import (
    find_condition,
    now_rfc3339,
    parse_rfc3339,
    upsert_condition,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123456)
T0S = "2026-01-01T12:00:00Z"
T1S = "2026-01-01T12:05:00Z"


def _ready(status: str = "False", reason: str = "Pending", message: str = "waiting") -> Obj:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T0S,
    }


@pytest.mark.parametrize(
    ("before", "args", "expected"),
    [
        pytest.param(
            [],
            ("Ready", "True", "Running", "runner up"),
            [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Running",
                    "message": "runner up",
                    "lastTransitionTime": T1S,
                }
            ],
            id="new-appended-with-now",
        ),
        pytest.param(
            [_ready()],
            ("Ready", "True", "Running", "runner up"),
            [_ready("True", "Running", "runner up") | {"lastTransitionTime": T1S}],
            id="status-change-bumps-time",
        ),
        pytest.param(
            [_ready()],
            ("Ready", "False", "Restarting", "again"),
            [_ready("False", "Restarting", "again")],
            id="same-status-keeps-time-updates-reason",
        ),
        pytest.param(
            [_ready()],
            ("Ready", "False", "", ""),
            [_ready()],
            id="empty-reason-message-not-overwritten",
        ),
        pytest.param(
            [_ready()],
            ("Ready", "True", "", ""),
            [_ready("True") | {"lastTransitionTime": T1S}],
            id="status-change-with-empty-reason-keeps-old-reason",
        ),
        pytest.param(
            [_ready() | {"type": "ready"}],
            ("Ready", "False", "X", ""),
            [_ready("False", "X") | {"type": "Ready"}],
            id="type-match-case-insensitive",
        ),
        pytest.param(
            [{"type": "JobCreated", "status": "True"}, _ready()],
            ("Ready", "True", "Running", "up"),
            [
                {"type": "JobCreated", "status": "True"},
                _ready("True", "Running", "up") | {"lastTransitionTime": T1S},
            ],
            id="other-conditions-kept-in-order",
        ),
        pytest.param(
            [{"type": "Ready", "status": "False"}],
            ("Ready", "False", "", ""),
            [{"type": "Ready", "status": "False", "lastTransitionTime": T1S}],
            id="missing-transition-time-filled",
        ),
    ],
)
def test_upsert_rules(
    before: list[Obj], args: tuple[str, str, str, str], expected: list[Obj]
) -> None:
    snapshot = copy.deepcopy(before)
    after = upsert_condition(before, *args, now=T1)
    assert after == expected
    assert before == snapshot, "input list or its dicts were mutated"
    assert after is not before


def test_no_change_compares_equal() -> None:
    before = [_ready("True", "Running", "up")]
    assert upsert_condition(before, "Ready", "True", "Running", "up", T1) == before


def test_observed_generation() -> None:
    new = upsert_condition([], "Ready", "True", "Running", "", T0, observed_generation=3)
    assert new[0]["observedGeneration"] == 3
    again = upsert_condition(new, "Ready", "True", "", "", T1, observed_generation=4)
    assert again[0]["observedGeneration"] == 4
    assert again[0]["lastTransitionTime"] == T0S
    assert "observedGeneration" not in upsert_condition([], "Ready", "True", "R", "", T0)[0]


def test_find_condition() -> None:
    conds = [{"type": "JobCreated", "status": "True"}, _ready()]
    assert find_condition(conds, "jobcreated") == conds[0]
    assert find_condition(conds, "Missing") is None
    assert find_condition(None, "Ready") is None


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (T1, T1S),
        (datetime(2026, 1, 1, 13, 5, tzinfo=timezone(timedelta(hours=1))), T1S),
        (datetime(2026, 1, 1, 12, 5), T1S),
    ],
)
def test_now_rfc3339(dt: datetime, text: str) -> None:
    assert now_rfc3339(dt) == text


@pytest.mark.parametrize(
    ("text", "dt"),
    [
        (T0S, T0),
        ("2026-01-01T12:00:00.5Z", T0 + timedelta(milliseconds=500)),
        ("2026-01-01T13:00:00+01:00", T0),
    ],
)
def test_parse_rfc3339(text: str, dt: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == dt
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-01-01", "2026-01-01T12:00:00"])
def test_parse_rfc3339_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_rfc3339(bad)
