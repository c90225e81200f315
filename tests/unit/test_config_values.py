"""envparse: the one set of value parsers behind every flag and environment variable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentic_operator.envparse import (
    FALSE_WORDS,
    TRUE_WORDS,
    from_env,
    parse_bool,
    parse_duration,
    parse_positive_float,
    parse_positive_int,
    parse_positive_seconds,
)

# Spellings shared with tests/unit/test_cli.py, which runs them through every flag and variable.
BOOL_ACCEPTED: list[tuple[str, bool]] = [
    *((w, True) for w in TRUE_WORDS),
    *((w, False) for w in FALSE_WORDS),
    ("TRUE", True),
    ("True", True),
    ("T", True),
    ("Yes", True),
    ("ON", True),
    (" y ", True),
    ("FALSE", False),
    ("F", False),
    ("No", False),
    ("OFF", False),
    ("\t0\n", False),
]
BOOL_REFUSED = ["2", "-1", "10", "maybe", "tru", "yess", "y e s", "ja", "none", "enabled"]


def test_the_vocabulary() -> None:
    """Go strconv.ParseBool's spellings (1, t, true / 0, f, false) plus y, yes, on / n, no, off."""
    assert TRUE_WORDS == ("1", "t", "true", "y", "yes", "on")
    assert FALSE_WORDS == ("0", "f", "false", "n", "no", "off")


@pytest.mark.parametrize(("value", "expected"), BOOL_ACCEPTED)
def test_bool_accepted(value: str, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", [*BOOL_REFUSED, ""])
def test_bool_refused(value: str) -> None:
    with pytest.raises(
        ValueError, match=r"^expected true/false \(or 1/0, t/f, y/n, yes/no, on/off\)"
    ):
        parse_bool(value)


@pytest.mark.parametrize(
    ("parse", "value", "expected"),
    [
        (parse_positive_int, "1", 1),
        (parse_positive_int, "10", 10),
        (parse_positive_int, " 7 ", 7),
        (parse_positive_int, "+3", 3),
        (parse_positive_int, "007", 7),
        (parse_positive_seconds, "60", 60),
        (parse_positive_float, "100", 100.0),
        (parse_positive_float, "0.5", 0.5),
        (parse_positive_float, ".5", 0.5),
        (parse_positive_float, "2.", 2.0),
        (parse_duration, "30", 30.0),
        (parse_duration, "30s", 30.0),
        (parse_duration, "2.5s", 2.5),
        (parse_duration, " 0.25 ", 0.25),
    ],
)
def test_numbers_accepted(parse: Callable[[str], object], value: str, expected: object) -> None:
    assert parse(value) == expected


INT_REFUSED = ["0", "-1", "00", "1.5", "1e3", "1_000", "\u0663", "abc", "10s", "0x10", "", " "]
FLOAT_REFUSED = ["0", "0.0", "-1", "inf", "nan", "1e3", "1_0", "abc", "1,5", ""]
DURATION_REFUSED = ["0", "0s", "-1", "-1s", "inf", "nan", "1e3", "1m", "30ss", "s", "1h", ""]


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        *((parse_positive_int, v, "expected a positive integer, got ") for v in INT_REFUSED),
        *(
            (parse_positive_seconds, v, "expected a positive integer number of seconds, got ")
            for v in INT_REFUSED
        ),
        *((parse_positive_float, v, "expected a positive number, got ") for v in FLOAT_REFUSED),
        *(
            (parse_duration, v, r"expected a positive number of seconds \(such as 30 or 2.5s\)")
            for v in DURATION_REFUSED
        ),
    ],
)
def test_numbers_refused(parse: Callable[[str], object], value: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message) as exc:
        parse(value)
    assert repr(value) in str(exc.value)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 5), ({"N": ""}, 5), ({"N": "  "}, 5), ({"N": "7"}, 7), ({"N": " 8 "}, 8)],
)
def test_from_env_unset_or_blank_is_the_default(env: dict[str, str], expected: int) -> None:
    assert from_env(env, "N", parse_positive_int, 5) == expected


def test_from_env_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^N: expected a positive integer, got 'x'$"):
        from_env({"N": "x"}, "N", parse_positive_int, 5)


def test_from_env_passes_the_stripped_value() -> None:
    seen: list[str] = []
    from_env({"N": "  v \n"}, "N", seen.append, None)
    assert seen == ["v"]
