"""Locating (and if needed building) the control plane binaries.

Order of precedence:

1. ``KUBEBUILDER_ASSETS`` (envtest's convention): a directory that must hold all of
   :data:`REQUIRED`; a missing one is an error naming it, never a silent build.
2. the versioned cache directory ``build-binaries.sh`` fills (``~/.cache/agentic-operator/bin/
   k8s-<v>-etcd-<v>-kwok-<v>``, versions from ``testenv/gomod/*/go.mod``), when complete: no
   subprocess, and no Go needed;
3. ``testenv/build-binaries.sh``: builds what is missing from the Go module proxy into that cache
   and prints the directory as its last stdout line. Its progress (stderr) is streamed through
   so a cold build of several minutes is not silent.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

REQUIRED: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
BUILD_SCRIPT = Path(__file__).resolve().parent / "build-binaries.sh"
GOMOD_DIR = Path(__file__).resolve().parent / "gomod"
ASSETS_ENV = "KUBEBUILDER_ASSETS"
CACHE_ENV = "AGENTIC_TESTENV_CACHE"


class BinariesError(RuntimeError):
    """The binaries are missing or could not be built; the message says what is needed."""


def missing_binaries(directory: Path) -> list[str]:
    """Names from :data:`REQUIRED` that are not executable files in ``directory``."""
    return [
        name
        for name in REQUIRED
        if not (directory / name).is_file() or not os.access(directory / name, os.X_OK)
    ]


def _check_dir(directory: Path, origin: str) -> Path:
    missing = missing_binaries(directory)
    if missing:
        raise BinariesError(
            f"{origin} ({directory}) lacks {', '.join(missing)}; it must hold all of "
            f"{', '.join(REQUIRED)}"
        )
    return directory


def build_binaries(script: Path = BUILD_SCRIPT, progress: TextIO | None = None) -> Path:
    """Run the build script, stream its progress to ``progress`` (stderr), return the bin dir."""
    sink = progress if progress is not None else sys.stderr
    if not script.is_file():
        raise BinariesError(f"build script {script} not found")
    proc = subprocess.Popen(
        ["bash", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stdout_lines: list[str] = []
    stdout = proc.stdout
    # stdout is read on a thread so neither pipe can fill up while the other is being drained.
    reader = threading.Thread(target=lambda: stdout_lines.extend(stdout), daemon=True)
    reader.start()
    tail: collections.deque[str] = collections.deque(maxlen=15)
    for line in proc.stderr:
        tail.append(line.rstrip("\n"))
        sink.write(line)
        sink.flush()
    rc = proc.wait()
    reader.join()
    if rc != 0:
        details = "\n".join(tail)
        raise BinariesError(f"{script.name} failed (exit {rc}):\n{details}")
    lines = [line.strip() for line in stdout_lines if line.strip()]
    if not lines:
        raise BinariesError(f"{script.name} printed no binary directory")
    return _check_dir(Path(lines[-1]), f"the directory built by {script.name}")


def _required_version(go_mod: Path, module: str) -> str | None:
    for line in go_mod.read_text().splitlines():
        words = line.split()
        if words[:1] == ["require"]:
            words = words[1:]
        if len(words) >= 2 and words[0] == module and words[1].startswith("v"):
            return words[1]
    return None


def cached_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The versioned cache directory build-binaries.sh would produce, if it is complete.

    Computed the same way as the script (versions pinned by ``testenv/gomod/*/go.mod``) so a warm
    cache costs no subprocess and works on a machine without Go."""
    environ = os.environ if env is None else env
    try:
        k8s = _required_version(GOMOD_DIR / "kubernetes" / "go.mod", "k8s.io/kubernetes")
        etcd = _required_version(GOMOD_DIR / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")
        kwok = _required_version(GOMOD_DIR / "kwok" / "go.mod", "sigs.k8s.io/kwok")
    except OSError:
        return None
    if not (k8s and etcd and kwok):
        return None
    root = environ.get(CACHE_ENV) or str(
        Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentic-operator"
    )
    directory = Path(root).expanduser() / "bin" / f"k8s-{k8s}-etcd-{etcd}-kwok-{kwok}"
    return None if missing_binaries(directory) else directory


def find_binaries(env: Mapping[str, str] | None = None, *, build: bool = True) -> Path:
    """Directory holding every binary in :data:`REQUIRED` (building them if allowed)."""
    environ = os.environ if env is None else env
    assets = environ.get(ASSETS_ENV)
    if assets:
        return _check_dir(Path(assets).expanduser(), ASSETS_ENV)
    cached = cached_dir(environ)
    if cached is not None:
        return cached
    if not build:
        raise BinariesError(f"{ASSETS_ENV} is not set, the cache is cold and building is disabled")
    if shutil.which("go") is None:
        raise BinariesError(
            "Go is not installed: building etcd, kube-apiserver, kube-controller-manager, "
            "kube-scheduler, kubectl and kwok needs Go >= 1.26 and a reachable Go module proxy. "
            f"Alternatively set {ASSETS_ENV} to a directory holding those binaries."
        )
    return build_binaries()


def find_kubectl(env: Mapping[str, str] | None = None) -> Path:
    """kubectl for talking to an existing cluster: the testenv one if available, else PATH."""
    environ = os.environ if env is None else env
    assets = environ.get(ASSETS_ENV)
    if assets and (Path(assets) / "kubectl").is_file():
        return Path(assets) / "kubectl"
    cached = cached_dir(environ)
    if cached is not None:
        return cached / "kubectl"
    on_path = shutil.which("kubectl")
    if on_path:
        return Path(on_path)
    return find_binaries(environ) / "kubectl"
