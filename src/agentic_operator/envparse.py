"""Value parsers shared by every command line flag and environment variable.

A flag and a variable that mean the same kind of thing accept the same spellings: there is one
boolean vocabulary (:data:`TRUE_WORDS` / :data:`FALSE_WORDS`, those of Go's ``strconv.ParseBool``
plus yes/no/on/off) and one syntax each for positive integers, positive numbers and durations.
The parsers raise ``ValueError`` with a message that does not name the input; the caller puts the
flag or variable name in front (:func:`from_env` for variables, the argparse adapter in ``cli``
for flags), so both sources report a bad value the same way.

A leaf module: it imports nothing from the package, so any layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

TRUE_WORDS: Final = ("1", "t", "true", "y", "yes", "on")
FALSE_WORDS: Final = ("0", "f", "false", "n", "no", "off")
"""Accepted boolean spellings, compared case-insensitively after stripping blanks."""

_T = TypeVar("_T")
# ASCII digits only: int() would also take "1_000" and non-ASCII digits.
_INTEGER = re.compile(r"\+?[0-9]+")
# Plain decimals: float() would also take inf, nan, 1e3 and 1_0.
_DECIMAL = re.compile(r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_BOOL_HINT = ", ".join(
    f"{t}/{f}" for t, f in zip(TRUE_WORDS, FALSE_WORDS, strict=True) if t != "true"
)


def parse_bool(value: str) -> bool:
    """``1 t true y yes on`` -> True, ``0 f false n no off`` -> False (any case)."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true/false (or {_BOOL_HINT}), got {value!r}")


def parse_positive_int(value: str, *, unit: str = "") -> int:
    """A decimal integer > 0; ``unit`` (e.g. "seconds") only shapes the error message."""
    text = value.strip()
    if _INTEGER.fullmatch(text):
        n = int(text)
        if n > 0:
            return n
    what = f"a positive integer number of {unit}" if unit else "a positive integer"
    raise ValueError(f"expected {what}, got {value!r}")


def parse_positive_seconds(value: str) -> int:
    """Whole seconds > 0 (``60``), for values that end up in integer API fields."""
    return parse_positive_int(value, unit="seconds")


def parse_seconds_or_zero(value: str) -> int:
    """Whole seconds >= 0, where 0 means "off" (``86400``, ``0``)."""
    text = value.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    raise ValueError(f"expected a whole number of seconds (0 to turn it off), got {value!r}")


def parse_positive_float(value: str) -> float:
    """A positive decimal number such as ``100`` or ``0.5`` (a rate)."""
    text = value.strip()
    if _DECIMAL.fullmatch(text):
        n = float(text)
        if n > 0:
            return n
    raise ValueError(f"expected a positive number, got {value!r}")


def parse_duration(value: str) -> float:
    """A positive number of seconds with an optional ``s`` suffix: ``30``, ``2.5s``."""
    text = value.strip()
    if _DECIMAL.fullmatch(text.removesuffix("s")):
        seconds = float(text.removesuffix("s"))
        if seconds > 0:
            return seconds
    raise ValueError(f"expected a positive number of seconds (such as 30 or 2.5s), got {value!r}")


def from_env(env: Mapping[str, str], name: str, parse: Callable[[str], _T], default: _T) -> _T:
    """``parse`` the variable ``name``; unset or blank means ``default``.

    Raises ``ValueError`` whose message starts with ``name``, so the caller can report it as is.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
