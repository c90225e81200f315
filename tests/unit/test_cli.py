"""Flags and environment -> Settings; bad input exits 2 naming the culprit."""

from __future__ import annotations

import pytest

from agentic_operator.cli import LEASE_NAME, parse_settings


def test_defaults_match_the_readme() -> None:
    s = parse_settings([], {})
    assert s.max_concurrent_reconciles == 10
    assert s.metrics_bind_address == ":8080"
    assert s.health_probe_bind_address == ":8081"
    assert s.leader_elect is False
    assert s.legacy_watch is False
    assert s.leader_election_id == LEASE_NAME
    assert s.leader_election_namespace == "default"
    assert s.dev_mode is False
    assert (s.qps, s.burst) == (100.0, 200)
    assert s.sessions.runner_image == "quay.io/ambient_code/vteam_claude_runner:latest"
    assert s.sessions.backend_namespace == "default"


@pytest.mark.parametrize(
    ("argv", "env", "field", "expected"),
    [
        (["--leader-elect"], {}, "leader_elect", True),
        (["--leader-elect=true"], {}, "leader_elect", True),
        (["--leader-elect=false"], {}, "leader_elect", False),
        (["--legacy-watch"], {}, "legacy_watch", True),
        (["--max-concurrent-reconciles=20"], {}, "max_concurrent_reconciles", 20),
        (
            ["--max-concurrent-reconciles=20"],
            {"MAX_CONCURRENT_RECONCILES": "3"},
            "max_concurrent_reconciles",
            3,
        ),
        ([], {"MAX_CONCURRENT_RECONCILES": " "}, "max_concurrent_reconciles", 10),
        (["--metrics-bind-address=0"], {}, "metrics_bind_address", "0"),
        (
            ["--health-probe-bind-address=127.0.0.1:9999"],
            {},
            "health_probe_bind_address",
            "127.0.0.1:9999",
        ),
        ([], {"DEV_MODE": "true"}, "dev_mode", True),
        ([], {}, "event_loop", "uvloop"),
        ([], {"EVENT_LOOP": "asyncio"}, "event_loop", "asyncio"),
        ([], {"EVENT_LOOP": " UVLoop "}, "event_loop", "uvloop"),
        ([], {"NAMESPACE": "ambient-code"}, "leader_election_namespace", "ambient-code"),
        (["--leader-election-namespace=x"], {"NAMESPACE": "y"}, "leader_election_namespace", "x"),
        (["--kubeconfig", "/tmp/kc"], {}, "kubeconfig", "/tmp/kc"),
    ],
)
def test_flags_and_environment(
    argv: list[str], env: dict[str, str], field: str, expected: object
) -> None:
    assert getattr(parse_settings(argv, env), field) == expected


def test_backend_namespace_defaults_to_namespace() -> None:
    s = parse_settings([], {"NAMESPACE": "ops"})
    assert s.sessions.operator_namespace == "ops"
    assert s.sessions.backend_namespace == "ops"
    s = parse_settings([], {"NAMESPACE": "ops", "BACKEND_NAMESPACE": "backend"})
    assert s.sessions.backend_namespace == "backend"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--max-concurrent-reconciles=0"], {}, "--max-concurrent-reconciles"),
        (["--max-concurrent-reconciles=ten"], {}, "--max-concurrent-reconciles"),
        (["--leader-elect=maybe"], {}, "--leader-elect"),
        (["--metrics-bind-address=8080"], {}, "--metrics-bind-address"),
        (["--health-probe-bind-address=:99999"], {}, "--health-probe-bind-address"),
        (["--no-such-flag"], {}, "--no-such-flag"),
        ([], {"MAX_CONCURRENT_RECONCILES": "-1"}, "MAX_CONCURRENT_RECONCILES"),
        ([], {"DEV_MODE": "sometimes"}, "DEV_MODE"),
        ([], {"EVENT_LOOP": "trio"}, "EVENT_LOOP"),
        ([], {"DEFAULT_SESSION_TIMEOUT": "abc"}, "DEFAULT_SESSION_TIMEOUT"),
        ([], {"PENDING_TIMEOUT": "0"}, "PENDING_TIMEOUT"),
    ],
)
def test_bad_values_exit_2_naming_them(
    argv: list[str], env: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv, env)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert named in err
    assert "usage:" in err


def test_help_lists_every_readme_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_settings(["--help"], {})
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--max-concurrent-reconciles",
        "--metrics-bind-address",
        "--health-probe-bind-address",
        "--leader-elect",
        "--legacy-watch",
        "--kubeconfig",
    ):
        assert flag in out
