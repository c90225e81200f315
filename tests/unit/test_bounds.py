"""Bounds the operator can honour: settings refused at start-up, values derived from them capped at
what the API accepts, and stored values beyond the schema's maxima read as the maximum."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agentic_operator.sessions import bounds, inactivity, start
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.decide import decide
from agentic_operator.sessions.plan import ProvisionToken
from tests.unit.sessionfix import job, observe, pod, session

RUNNING = {"running": {"startedAt": "2026-06-01T11:59:50Z"}}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_SESSION_DURATION": str(2**32)}, "MAX_SESSION_DURATION: at most 4294966096"),
        (
            {"MAX_SESSION_DURATION": str(2**32 - 1200), "PENDING_TIMEOUT": "601"},
            "MAX_SESSION_DURATION: at most 4294966095",
        ),
        ({"PENDING_TIMEOUT": str(2**31)}, "PENDING_TIMEOUT: at most 2147483647"),
        ({"DEFAULT_INACTIVITY_TIMEOUT": str(2**31)}, "DEFAULT_INACTIVITY_TIMEOUT: at most"),
    ],
    ids=["ceiling-beyond-token", "ceiling-with-pending", "pending", "idle-default"],
)
def test_settings_beyond_what_the_api_accepts_stop_the_operator(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match="at most") as info:
        SessionConfig.from_env(env)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "env",
    [
        {"MAX_SESSION_DURATION": str(2**32 - 1200)},
        {"PENDING_TIMEOUT": str(bounds.MAX_SECONDS)},
        {"DEFAULT_INACTIVITY_TIMEOUT": str(bounds.MAX_SECONDS)},
    ],
    ids=["ceiling", "pending", "idle-default"],
)
def test_settings_at_their_bound_are_accepted(env: dict[str, str]) -> None:
    SessionConfig.from_env(env)


@pytest.mark.parametrize(
    ("cfg", "lifetime"),
    [
        (SessionConfig(), 2 * 86400 + 600 + 600),
        (SessionConfig(max_session_duration=60), 3600),
        (SessionConfig(max_session_duration=2**32 - 1200), 2**32),
        # Settings no from_env would give, and still a lifetime the TokenRequest API accepts.
        (SessionConfig(max_session_duration=2**40, pending_timeout=2**40), 2**32),
    ],
    ids=["no-ceiling", "short-ceiling", "longest-ceiling", "beyond"],
)
def test_the_token_lifetime_is_one_the_token_request_api_accepts(
    cfg: SessionConfig, lifetime: int
) -> None:
    obs = observe(session("Pending"), cfg=cfg)
    assert start.token_lifetime(obs) == lifetime
    token = next(a for a in decide(obs).actions if isinstance(a, ProvisionToken))
    assert bounds.TOKEN_MIN_EXPIRATION <= token.lifetime <= bounds.TOKEN_MAX_EXPIRATION


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (0, 0),
        (bounds.MAX_SECONDS, bounds.MAX_SECONDS),
        (bounds.MAX_SECONDS + 1, bounds.MAX_SECONDS),
        (2**63 - 1, bounds.MAX_SECONDS),
    ],
    ids=["off", "at-bound", "above", "int64-max"],
)
def test_a_stored_idle_limit_beyond_the_schema_counts_as_the_maximum(
    value: int, limit: int
) -> None:
    for spec, project in (
        ({"inactivityTimeout": value}, None),
        (
            {},
            {"metadata": {"name": "projectsettings"}, "spec": {"inactivityTimeoutSeconds": value}},
        ),
    ):
        sess = session("Running", spec=spec)
        obs = replace(observe(sess, job(), (pod(RUNNING),)), project_settings=project)
        assert inactivity.limit(obs) == limit
        if limit:
            # The wake-up a Running session asks for is one an event loop can hold.
            assert 0 < (decide(obs).requeue_after or 0) <= bounds.MAX_SECONDS
