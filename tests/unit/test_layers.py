"""The package's import graph: no cycles, and every import goes down the layers.

Every module under ``src/agentic_operator`` is parsed with ``ast`` (nothing is imported), and every
``import`` / ``from ... import`` anywhere in it counts: at module level, inside functions, and
under ``if TYPE_CHECKING:`` (a type-only import is still a dependency a reader has to follow, and
the first to turn into a real one). The layers, lowest first:

* leaves (``LEAVES``): import nothing of the package but other leaves;
* ``kube``: leaves and kube;
* ``runtime``: leaves, kube and runtime (generic machinery, knows nothing about sessions);
* ``sessions``, ``projects``: anything below, never the entry layer (``ENTRY``: legacy, settings,
  app, cli, __main__);
* only ``cli`` imports ``app``, and only ``__main__`` imports ``cli``.

``from agentic_operator.kube import metrics`` is an edge to the submodule ``kube.metrics`` when
that module exists, else to the package ``kube`` itself. Importing a submodule also runs its
package's ``__init__``; that implicit edge is not counted (a package may import its own
submodules, and Python handles the partial package fine).

Run: ``.venv/bin/pytest tests/unit/test_layers.py`` (docs/CONVENTIONS.md, "Layers").
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = "agentic_operator"
SRC = Path(__file__).resolve().parents[2] / "src"

LEAVES = frozenset(
    f"{PACKAGE}{suffix}"
    for suffix in ("", ".clock", ".ratelimit", ".registry", ".envparse", ".logs")
)
"""The package ``__init__`` (it holds ``__version__``) and the modules every layer may use."""
LAYERED = ("kube", "runtime", "sessions", "projects", "legacy")
ENTRY = frozenset({"legacy", "settings", "app", "cli", "__main__"})

MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "leaf": frozenset({"leaf"}),
    "kube": frozenset({"leaf", "kube"}),
    "runtime": frozenset({"leaf", "kube", "runtime"}),
}
"""Layer -> the only layers it may import."""
MUST_NOT_IMPORT: Mapping[str, frozenset[str]] = {
    "sessions": ENTRY,
    "projects": ENTRY,
}
ONLY_IMPORTED_BY: Mapping[str, frozenset[str]] = {
    "app": frozenset({"cli"}),
    "cli": frozenset({"__main__"}),
}


class Module(NamedTuple):
    name: str
    path: str
    source: str
    is_package: bool


class Edge(NamedTuple):
    importer: str
    imported: str
    where: str
    """``path:line`` of the import statement."""

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.where})"


def package_modules(src: Path = SRC) -> list[Module]:
    modules = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        rel = str(path.relative_to(src.parent))
        modules.append(Module(".".join(parts), rel, path.read_text(encoding="utf-8"), is_package))
    return modules


def _resolve(name: str, known: frozenset[str]) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of ours (None: not ours)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def import_edges(modules: Iterable[Module]) -> list[Edge]:
    """Every import of a package module by a package module, wherever it is written."""
    modules = list(modules)
    known = frozenset(m.name for m in modules)
    edges: list[Edge] = []
    for mod in modules:
        tree = ast.parse(mod.source, filename=mod.path)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.name.split(".")
                    if not mod.is_package:
                        base.pop()
                    base = base[: len(base) - (node.level - 1)]
                    origin = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    origin = node.module or ""
                # ``from pkg import sub`` names the submodule when there is one.
                targets = [
                    f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin
                    for a in node.names
                ]
            else:
                continue
            for target in targets:
                imported = _resolve(target, known)
                if imported is not None and imported != mod.name:
                    edge = Edge(mod.name, imported, f"{mod.path}:{node.lineno}")
                    if edge not in edges:
                        edges.append(edge)
    return edges


def layer_of(module: str) -> str | None:
    if module in LEAVES:
        return "leaf"
    rest = module.removeprefix(f"{PACKAGE}.")
    top = rest.split(".")[0]
    if top in LAYERED or (rest == top and top in ENTRY):
        return top
    return None


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """One concrete cycle per strongly connected component that has one (Tarjan's algorithm)."""
    graph: dict[str, list[Edge]] = {}
    for e in edges:
        graph.setdefault(e.importer, []).append(e)
        graph.setdefault(e.imported, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for e in graph[v]:
            w = e.imported
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first inside the component from start back to start: a shortest cycle.
        paths: dict[str, list[Edge]] = {start: []}
        frontier = [start]
        found: list[Edge] | None = None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for e in graph[v]:
                    if e.imported == start:
                        found = [*paths[v], e]
                        break
                    if e.imported in component and e.imported not in paths:
                        paths[e.imported] = [*paths[v], e]
                        nxt.append(e.imported)
                if found is not None:
                    break
            frontier = nxt
        assert found is not None
        cycles.append(found)
    return cycles


def layer_violations(edges: Iterable[Edge]) -> list[str]:
    problems = []
    for e in edges:
        src, dst = layer_of(e.importer), layer_of(e.imported)
        if src is None or dst is None:
            continue  # reported by test_every_module_has_a_layer
        allowed = MAY_IMPORT.get(src)
        if allowed is not None and dst not in allowed:
            problems.append(f"{e}: {src} may import only {', '.join(sorted(allowed))}")
        if dst in MUST_NOT_IMPORT.get(src, frozenset()):
            problems.append(f"{e}: {src} must not import {dst}")
        importers = ONLY_IMPORTED_BY.get(dst)
        if importers is not None and src not in importers:
            problems.append(f"{e}: only {', '.join(sorted(importers))} may import {dst}")
    return problems


def describe_cycle(cycle: list[Edge]) -> str:
    names = " -> ".join([cycle[0].importer, *(e.imported for e in cycle)])
    return names + "\n" + "\n".join(f"    {e}" for e in cycle)


# --- the real tree --------------------------------------------------------------------------------

MODULES = package_modules()
EDGES = import_edges(MODULES)


def test_the_tree_was_read() -> None:
    names = {m.name for m in MODULES}
    assert {f"{PACKAGE}.cli", f"{PACKAGE}.app", f"{PACKAGE}.kube.client"} <= names
    assert names >= LEAVES, f"leaf modules missing: {sorted(LEAVES - names)}"
    assert len(EDGES) > 50


def test_every_module_has_a_layer() -> None:
    unplaced = [m.name for m in MODULES if layer_of(m.name) is None]
    assert not unplaced, f"modules in no layer (place them in {__name__}): {unplaced}"


def test_no_import_cycle() -> None:
    cycles = find_cycles(EDGES)
    assert not cycles, "import cycles:\n" + "\n".join(describe_cycle(c) for c in cycles)


def test_imports_go_down_the_layers() -> None:
    problems = layer_violations(EDGES)
    assert not problems, "imports against the layer order:\n" + "\n".join(problems)


# --- the checker itself: each of these must be caught --------------------------------------------


def _mods(sources: Mapping[str, str]) -> list[Module]:
    """Synthetic modules by path under the package, without ``.py``: ``kube/client``,
    ``kube/__init__``, ``__main__``."""
    out = []
    for rel, text in sources.items():
        parts = [PACKAGE, *rel.split("/")]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out.append(Module(".".join(parts), f"{rel}.py", text, is_package))
    return out


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        pytest.param(
            {
                "app": "from agentic_operator.cli import x",
                "cli": "from agentic_operator import app",
            },
            ["agentic_operator.app -> agentic_operator.cli -> agentic_operator.app"],
            id="module-level",
        ),
        pytest.param(
            {
                "app": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from agentic_operator.cli import Settings\n",
                "cli": "def main():\n    from agentic_operator.app import run\n",
            },
            ["agentic_operator.app -> agentic_operator.cli -> agentic_operator.app"],
            id="type-checking-and-function-level",
        ),
        pytest.param(
            {
                "sessions/__init__": "",
                "sessions/a": "from . import b",
                "sessions/b": "from .c import x",
                "sessions/c": "import agentic_operator.sessions.a",
            },
            [
                "agentic_operator.sessions.a -> agentic_operator.sessions.b -> "
                "agentic_operator.sessions.c -> agentic_operator.sessions.a"
            ],
            id="relative-three-step",
        ),
        pytest.param(
            {
                "kube/__init__": "from agentic_operator.kube.client import Client",
                "kube/client": "from agentic_operator.kube import metrics",
                "kube/metrics": "",
            },
            [],
            id="package-init-importing-its-own-submodules-is-no-cycle",
        ),
    ],
)
def test_cycles_are_found(sources: dict[str, str], expected: list[str]) -> None:
    cycles = find_cycles(import_edges(_mods(sources)))
    assert [describe_cycle(c).splitlines()[0] for c in cycles] == expected


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        pytest.param(
            {"clock": "from agentic_operator.kube import x", "kube/__init__": ""},
            "agentic_operator.clock -> agentic_operator.kube (clock.py:1): leaf may import only",
            id="leaf-imports-kube",
        ),
        pytest.param(
            {
                "kube/client": "\n\nfrom agentic_operator.runtime import metrics",
                "runtime/metrics": "",
            },
            "agentic_operator.kube.client -> agentic_operator.runtime.metrics (kube/client.py:3)",
            id="kube-imports-runtime",
        ),
        pytest.param(
            {
                "runtime/store": "def f():\n    import agentic_operator.sessions.model\n",
                "sessions/model": "",
            },
            "agentic_operator.runtime.store -> agentic_operator.sessions.model "
            "(runtime/store.py:2)",
            id="runtime-imports-sessions-in-a-function",
        ),
        pytest.param(
            {"projects/r": "from agentic_operator.legacy.watch import Loop", "legacy/watch": ""},
            "projects must not import legacy",
            id="projects-imports-legacy",
        ),
        pytest.param(
            {"sessions/r": "from agentic_operator import cli", "cli": ""},
            "sessions must not import cli",
            id="sessions-imports-cli",
        ),
        pytest.param(
            {"legacy/watch": "from agentic_operator.app import run", "app": ""},
            "only cli may import app",
            id="app-imported-by-legacy",
        ),
        pytest.param(
            {"app": "from agentic_operator.cli import Settings", "cli": ""},
            "only __main__ may import cli",
            id="cli-imported-by-app",
        ),
    ],
)
def test_layer_violations_are_found(sources: dict[str, str], expected: str) -> None:
    problems = layer_violations(import_edges(_mods(sources)))
    assert any(expected in p for p in problems), problems


def test_the_intended_shape_passes() -> None:
    modules = _mods(
        {
            "__init__": "",
            "__main__": "from agentic_operator.cli import main",
            "cli": "from agentic_operator import app, envparse, settings",
            "app": "from agentic_operator.settings import Settings",
            "settings": "from agentic_operator.sessions.config import SessionConfig",
            "legacy/watch": "from agentic_operator.sessions.model import X",
            "projects/r": "from agentic_operator.sessions.status import upsert",
            "sessions/config": "from agentic_operator.envparse import from_env",
            "sessions/model": "from agentic_operator.runtime.controller import Result",
            "sessions/status": "",
            "runtime/controller": "from agentic_operator.kube.resources import Obj\n"
            "import agentic_operator.clock",
            "kube/resources": "from agentic_operator import registry",
            "envparse": "import re",
            "registry": "",
            "clock": "",
        }
    )
    edges = import_edges(modules)
    assert len(edges) == 13
    assert layer_violations(edges) == []
    assert find_cycles(edges) == []
