"""Flags and environment -> Settings; bad input exits 2 naming the culprit."""

from __future__ import annotations

from operator import attrgetter

import pytest

from agentic_operator.cli import LEASE_NAME, PRECEDENCE, parse_settings
from agentic_operator.settings import Settings
from tests.unit.test_config_values import (
    BOOL_ACCEPTED,
    BOOL_REFUSED,
    DURATION_REFUSED,
    FLOAT_REFUSED,
    INT_REFUSED,
)

VERTEX = {
    "CLOUD_ML_REGION": "us-east5",
    "ANTHROPIC_VERTEX_PROJECT_ID": "proj",
    "GOOGLE_APPLICATION_CREDENTIALS": "/app/vertex/key.json",
}
BOOL_FLAGS = {"--leader-elect": "leader_elect", "--legacy-watch": "legacy_watch"}
BOOL_VARIABLES = {
    "DEV_MODE": "dev_mode",
    "LANGFUSE_ENABLED": "sessions.langfuse_enabled",
    "RUNNER_WORKSPACE_PVC": "sessions.workspace_pvc",
    "CLAUDE_CODE_USE_VERTEX": "sessions.use_vertex",
}
INT_FLAGS = {
    "--max-concurrent-reconciles": "max_concurrent_reconciles",
    "--kube-api-burst": "burst",
}
INT_VARIABLES = {
    "MAX_CONCURRENT_RECONCILES": "max_concurrent_reconciles",
    "PENDING_TIMEOUT": "sessions.pending_timeout",
}
DURATION_FLAGS = {
    "--cache-sync-timeout": "cache_sync_timeout",
    "--graceful-shutdown-timeout": "graceful_shutdown_timeout",
}
NUMBER_FLAGS = {"--kube-api-qps": "qps"}


def field(settings: Settings, path: str) -> object:
    return attrgetter(path)(settings)


def refused(argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> str:
    """stderr of a parse that must exit 2 with usage."""
    with pytest.raises(SystemExit) as exc:
        parse_settings(argv, env)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    return err


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
        ([], {"DEFAULT_INACTIVITY_TIMEOUT": "abc"}, "DEFAULT_INACTIVITY_TIMEOUT"),
        ([], {"DEFAULT_INACTIVITY_TIMEOUT": "-1"}, "DEFAULT_INACTIVITY_TIMEOUT"),
        ([], {"PENDING_TIMEOUT": "0"}, "PENDING_TIMEOUT"),
    ],
)
def test_bad_values_exit_2_naming_them(
    argv: list[str], env: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert named in refused(argv, env, capsys)


# --- one vocabulary for every flag and variable ----------------------------------------------


@pytest.mark.parametrize(("value", "expected"), BOOL_ACCEPTED)
@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_bool_flag_spellings(flag: str, value: str, expected: bool) -> None:
    assert field(parse_settings([f"{flag}={value}"], {}), BOOL_FLAGS[flag]) is expected


@pytest.mark.parametrize(("value", "expected"), BOOL_ACCEPTED)
@pytest.mark.parametrize("name", BOOL_VARIABLES)
def test_bool_variable_spellings(name: str, value: str, expected: bool) -> None:
    assert field(parse_settings([], {**VERTEX, name: value}), BOOL_VARIABLES[name]) is expected


@pytest.mark.parametrize("value", [*BOOL_REFUSED, ""])
@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_bool_flag_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused([f"{flag}={value}"], {}, capsys)
    assert f"argument {flag}: expected true/false" in err


@pytest.mark.parametrize("value", BOOL_REFUSED)
@pytest.mark.parametrize("name", BOOL_VARIABLES)
def test_bool_variable_refused(name: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused([], {**VERTEX, name: value}, capsys)
    assert f"environment variable {name}: expected true/false" in err


@pytest.mark.parametrize("name", [*BOOL_FLAGS, *BOOL_VARIABLES])
def test_bool_unset_is_false(name: str) -> None:
    path = BOOL_FLAGS.get(name) or BOOL_VARIABLES[name]
    assert field(parse_settings([], {name: ""} if name.isupper() else {}), path) is False


@pytest.mark.parametrize("flag", BOOL_FLAGS)
def test_bool_flag_alone_is_true(flag: str) -> None:
    assert field(parse_settings([flag], {}), BOOL_FLAGS[flag]) is True


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("25", 25), ("+3", 3), ("007", 7)])
@pytest.mark.parametrize("name", [*INT_FLAGS, *INT_VARIABLES])
def test_integer_spellings(name: str, value: str, expected: int) -> None:
    if name.startswith("--"):
        settings, path = parse_settings([f"{name}={value}"], {}), INT_FLAGS[name]
    else:
        settings, path = parse_settings([], {name: value}), INT_VARIABLES[name]
    assert field(settings, path) == expected


@pytest.mark.parametrize("value", [v for v in INT_REFUSED if v.strip()])
@pytest.mark.parametrize("name", [*INT_FLAGS, *INT_VARIABLES])
def test_integer_refused(name: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name.startswith("--"):
        err = refused([f"{name}={value}"], {}, capsys)
        assert f"argument {name}: expected a positive integer" in err
    else:
        err = refused([], {name: value}, capsys)
        assert f"environment variable {name}: expected a positive integer" in err


@pytest.mark.parametrize(("value", "expected"), [("30", 30.0), ("30s", 30.0), ("2.5s", 2.5)])
@pytest.mark.parametrize("flag", DURATION_FLAGS)
def test_duration_spellings(flag: str, value: str, expected: float) -> None:
    assert field(parse_settings([f"{flag}={value}"], {}), DURATION_FLAGS[flag]) == expected


@pytest.mark.parametrize("value", DURATION_REFUSED)
@pytest.mark.parametrize("flag", DURATION_FLAGS)
def test_duration_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused([f"{flag}={value}"], {}, capsys)
    assert f"argument {flag}: expected a positive number of seconds" in err


@pytest.mark.parametrize(("value", "expected"), [("100", 100.0), ("0.5", 0.5), ("20", 20.0)])
@pytest.mark.parametrize("flag", NUMBER_FLAGS)
def test_number_spellings(flag: str, value: str, expected: float) -> None:
    assert field(parse_settings([f"{flag}={value}"], {}), NUMBER_FLAGS[flag]) == expected


@pytest.mark.parametrize("value", FLOAT_REFUSED)
@pytest.mark.parametrize("flag", NUMBER_FLAGS)
def test_number_refused(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused([f"{flag}={value}"], {}, capsys)
    assert f"argument {flag}: expected a positive number" in err


# --- precedence: explicit flag > environment variable > default --------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "path", "expected"),
    [
        ([], {}, "max_concurrent_reconciles", 10),
        ([], {"MAX_CONCURRENT_RECONCILES": " "}, "max_concurrent_reconciles", 10),
        ([], {"MAX_CONCURRENT_RECONCILES": "3"}, "max_concurrent_reconciles", 3),
        (["--max-concurrent-reconciles=20"], {}, "max_concurrent_reconciles", 20),
        (
            ["--max-concurrent-reconciles=20"],
            {"MAX_CONCURRENT_RECONCILES": "3"},
            "max_concurrent_reconciles",
            20,
        ),
        (
            ["--max-concurrent-reconciles", "10"],  # the default value, given explicitly
            {"MAX_CONCURRENT_RECONCILES": "3"},
            "max_concurrent_reconciles",
            10,
        ),
        (
            ["--max-concurrent-reconciles=20"],  # the overridden variable is not read
            {"MAX_CONCURRENT_RECONCILES": "bogus"},
            "max_concurrent_reconciles",
            20,
        ),
        ([], {}, "leader_election_namespace", "default"),
        ([], {"NAMESPACE": "ambient-code"}, "leader_election_namespace", "ambient-code"),
        (["--leader-election-namespace=x"], {}, "leader_election_namespace", "x"),
        (["--leader-election-namespace=x"], {"NAMESPACE": "y"}, "leader_election_namespace", "x"),
        # Only the Lease namespace is overridden: NAMESPACE still names the operator namespace.
        (["--leader-election-namespace=x"], {"NAMESPACE": "y"}, "sessions.operator_namespace", "y"),
    ],
)
def test_explicit_flag_beats_environment_beats_default(
    argv: list[str], env: dict[str, str], path: str, expected: object
) -> None:
    assert field(parse_settings(argv, env), path) == expected


def test_a_bad_flag_is_refused_even_with_a_good_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = refused(["--max-concurrent-reconciles=0"], {"MAX_CONCURRENT_RECONCILES": "3"}, capsys)
    assert "argument --max-concurrent-reconciles" in err


def test_help_documents_the_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--help"], {})
    out = capsys.readouterr().out
    assert "explicit flag > environment variable > default" in out
    for flag, variable, default in PRECEDENCE:
        assert f"{flag} > ${variable} > {default}" in out
    assert "--max-concurrent-reconciles > $MAX_CONCURRENT_RECONCILES > 10" in out


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
