"""The agent registry: what each runner type needs from its pod, read from a mounted file.

The platform describes its runner types in the ConfigMap ``ambient-agent-registry``, which the
operator's Deployment mounts (optional) at ``/config/registry``; the file
(``AGENT_REGISTRY_PATH``) is a JSON array of entries with an ``id``. A session picks its entry by
``spec.environmentVariables.RUNNER_TYPE`` (default ``claude-agent-sdk``; the backend copies the
entry's ``container.env`` into the session at creation). Every field has a fallback, so no registry,
an unknown id, or a bad value in one field gives a working runner pod with the built-in defaults;
a bad value is logged (naming the entry and field) and replaced by the default.

The file is read through :class:`JsonFile`: at most once per ``ttl`` (60 s) of the injected clock,
the previous content when a read fails (the kubelet swaps ConfigMap files atomically, but a read may
still race it), and no content at all when the JSON is malformed. The models manifest
(``MODELS_MANIFEST_PATH``, ConfigMap ``ambient-models``) is read the same way.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeGuard

from agentic_operator.clock import Clock
from agentic_operator.kube.resources import Obj

log = logging.getLogger("agentic_operator.sessions.agents")

DEFAULT_RUNNER_TYPE: Final = "claude-agent-sdk"
DEFAULT_PORT: Final = 8001
DEFAULT_STATE_DIR: Final = ".claude"
DEFAULT_WORKSPACE_SIZE: Final = "10Gi"
DEFAULT_GRACE_SECONDS: Final = 60
FILE_TTL: Final = 60.0
"""Seconds a read file is used before it is read again."""

_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STATE_DIR = re.compile(r"^[A-Za-z0-9._-]+$")
RESOURCE_KEYS: Final = (
    ("requests", "cpu"),
    ("requests", "memory"),
    ("limits", "cpu"),
    ("limits", "memory"),
)


@dataclass(frozen=True)
class AgentSpec:
    """One runner type's pod settings, fallbacks applied. ``image`` and ``state_sync_image`` are
    empty when the registry has none (the operator's settings then decide); ``resources`` holds
    only the keys the registry sets, as ``{"requests": {"cpu": "500m"}, ...}``."""

    runner_type: str = DEFAULT_RUNNER_TYPE
    image: str = ""
    port: int = DEFAULT_PORT
    env: tuple[tuple[str, str], ...] = ()
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    state_dir: str = DEFAULT_STATE_DIR
    state_sync_image: str = ""
    persist: bool = True
    """False for ``sandbox.persistence: none``: no state-sync sidecar."""
    workspace_size: str = DEFAULT_WORKSPACE_SIZE
    grace_seconds: int = DEFAULT_GRACE_SECONDS
    clone_repos: bool = True
    hydrate_state: bool = True

    @property
    def hydrate(self) -> bool:
        """``init-hydrate`` runs when the workspace is seeded with repos or restored state."""
        return self.clone_repos or self.hydrate_state


DEFAULT_AGENT: Final = AgentSpec()


class JsonFile:
    """A JSON file read at most once per ``ttl`` seconds of ``clock``.

    :meth:`get` returns the parsed content; on a read error the last good content (None if there
    never was any; a missing file is the normal "not configured" case and is not logged); on a
    JSON error None, until the file is fixed.
    """

    def __init__(self, path: str, clock: Clock, ttl: float = FILE_TTL) -> None:
        self.path = Path(path)
        self.clock = clock
        self.ttl = ttl
        self._value: Any = None
        self._read_at: float | None = None

    def get(self) -> Any:
        now = self.clock.now()
        if self._read_at is not None and now - self._read_at < self.ttl:
            return self._value
        self._read_at = now
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return self._value
        except OSError as exc:
            log.warning("cannot read %s, keeping what was read before: %s", self.path, exc)
            return self._value
        try:
            self._value = json.loads(text)
        except ValueError as exc:
            log.warning("%s is not valid JSON, ignoring it: %s", self.path, exc)
            self._value = None
        return self._value


@dataclass(frozen=True)
class PodFiles:
    """The two mounted files the runner pod depends on."""

    registry: JsonFile
    models: JsonFile

    @classmethod
    def at(cls, registry_path: str, models_path: str, clock: Clock) -> PodFiles:
        return cls(JsonFile(registry_path, clock), JsonFile(models_path, clock))


def session_agent(registry: Any, session: Obj) -> AgentSpec:
    """The session's runner type (``spec.environmentVariables.RUNNER_TYPE``, else
    ``claude-agent-sdk``) from ``registry``, with the session's own ``RUNNER_STATE_DIR`` (when it
    is a valid directory name) in place of the registry's state directory."""
    env = (session.get("spec") or {}).get("environmentVariables")
    env = env if isinstance(env, dict) else {}
    kind = env.get("RUNNER_TYPE")
    agent = agent_spec(registry, kind if isinstance(kind, str) and kind else DEFAULT_RUNNER_TYPE)
    own = env.get("RUNNER_STATE_DIR")
    if isinstance(own, str) and own and _STATE_DIR.match(own) and own not in (".", ".."):
        return replace(agent, state_dir=own)
    return agent


def agent_spec(registry: Any, kind: str) -> AgentSpec:
    """The entry ``kind`` of ``registry`` (the parsed file) with fallbacks; the defaults when the
    registry is missing, not a list, or has no such entry."""
    entries = registry if isinstance(registry, list) else []
    entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == kind), None)
    if entry is None:
        return AgentSpec(runner_type=kind)
    container = _section(entry, "container", kind)
    sandbox = _section(entry, "sandbox", kind)
    seed = _section(sandbox, "seed", kind)
    return AgentSpec(
        runner_type=kind,
        image=_image(container.get("image"), kind),
        port=_port(container.get("port"), kind),
        env=_env(container.get("env"), kind),
        resources=_resources(container.get("resources"), kind),
        state_dir=_state_dir(sandbox.get("stateDir"), kind),
        state_sync_image=_image(sandbox.get("stateSyncImage"), kind),
        persist=sandbox.get("persistence") != "none",
        workspace_size=_quantity(sandbox.get("workspaceSize"), kind, "sandbox.workspaceSize")
        or DEFAULT_WORKSPACE_SIZE,
        grace_seconds=_grace(sandbox.get("terminationGracePeriod"), kind),
        clone_repos=_flag(seed.get("cloneRepos"), kind, "cloneRepos"),
        hydrate_state=_flag(seed.get("hydrateState"), kind, "hydrateState"),
    )


def vertex_model_id(manifest: Any, model: str) -> str:
    """``vertexId`` of the available models-manifest entry whose ``id`` is ``model``, else ""."""
    models = manifest.get("models") if isinstance(manifest, dict) else None
    for entry in models if isinstance(models, list) else ():
        if isinstance(entry, dict) and entry.get("id") == model and entry.get("available") is True:
            vertex = entry.get("vertexId")
            return vertex if isinstance(vertex, str) else ""
    return ""


# --- field readers: a bad value is logged and replaced by the default -----------------------------


def _bad(kind: str, what: str, value: Any) -> None:
    log.warning("agent registry entry %r: ignoring %s %r (using the default)", kind, what, value)


def _section(obj: Mapping[str, Any], key: str, kind: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _bad(kind, key, value)
        return {}
    return value


def _image(value: Any, kind: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        _bad(kind, "image", value)
        return ""
    return value


def is_port(value: Any) -> TypeGuard[int]:
    """Whether a registry entry's ``container.port`` is a TCP port number."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _port(value: Any, kind: str) -> int:
    if value is None:
        return DEFAULT_PORT
    if is_port(value):
        return value
    _bad(kind, "container.port", value)
    return DEFAULT_PORT


def _env(value: Any, kind: str) -> tuple[tuple[str, str], ...]:
    """``container.env``, a map of names to strings, in the file's order."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        _bad(kind, "container.env", value)
        return ()
    out = []
    for name, var in value.items():
        if isinstance(name, str) and _ENV_NAME.match(name) and isinstance(var, str):
            out.append((name, var))
        else:
            _bad(kind, f"container.env.{name}", var)
    return tuple(out)


def _resources(value: Any, kind: str) -> dict[str, dict[str, str]]:
    """The resource quantities the entry sets, per key; a bad one is left to the default."""
    spec = value if isinstance(value, dict) else {}
    if value is not None and not isinstance(value, dict):
        _bad(kind, "container.resources", value)
    out: dict[str, dict[str, str]] = {}
    for section, key in RESOURCE_KEYS:
        part = spec.get(section)
        raw = part.get(key) if isinstance(part, dict) else None
        quantity = _quantity(raw, kind, f"container.resources.{section}.{key}")
        if quantity:
            out.setdefault(section, {})[key] = quantity
    return out


def _quantity(value: Any, kind: str, what: str) -> str:
    """A resource quantity as a string ("" when absent or bad); numbers are accepted too."""
    if value is None or value == "":
        return ""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(text, str) and _QUANTITY.match(text):
        return text
    _bad(kind, what, value)
    return ""


def _state_dir(value: Any, kind: str) -> str:
    """A directory name under the workspace; never absolute, never a path with ``..``."""
    if value is None or value == "":
        return DEFAULT_STATE_DIR
    if isinstance(value, str) and _STATE_DIR.match(value) and value not in (".", ".."):
        return value
    _bad(kind, "sandbox.stateDir", value)
    return DEFAULT_STATE_DIR


def _grace(value: Any, kind: str) -> int:
    if value is None:
        return DEFAULT_GRACE_SECONDS
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    _bad(kind, "sandbox.terminationGracePeriod", value)
    return DEFAULT_GRACE_SECONDS


def _flag(value: Any, kind: str, what: str) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    _bad(kind, f"sandbox.seed.{what}", value)
    return True
