"""Container ``env`` entries: plain values, Secret references, and append-if-absent merging.

Shared by the runner's environment (:mod:`.builders`) and the helper containers'
(:mod:`.statesync`), which merge the agent registry's and the session's variables the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentic_operator.kube.resources import Obj


def plain(name: str, value: str) -> Obj:
    return {"name": name, "value": value}


def secret_ref(name: str, secret: str, key: str, optional: bool) -> Obj:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}},
    }


def append_absent(env: list[Obj], entries: Iterable[tuple[str, str]]) -> None:
    """Append each ``(name, value)`` of ``entries`` whose name ``env`` does not have yet."""
    names = {e["name"] for e in env}
    for name, value in entries:
        if name not in names:
            names.add(name)
            env.append(plain(name, value))


def string_items(variables: object) -> list[tuple[str, str]]:
    """The string-to-string entries of a ``spec.environmentVariables`` map (others are left out:
    the runner's merge reports them, the helpers just do not get them)."""
    if not isinstance(variables, dict):
        return []
    return [(k, v) for k, v in variables.items() if isinstance(k, str) and isinstance(v, str)]
