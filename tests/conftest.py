"""Shared pytest fixtures: the local control plane, namespaces, deploy/ manifests, the operator.

Fixtures (see docs/testenv.md):

* ``control_plane`` (session): a :class:`testenv.ControlPlane`, or with
  ``USE_EXISTING_CLUSTER=true`` the cluster of ``KUBECONFIG`` (:class:`testenv.ExistingCluster`);
* ``kubectl``: ``control_plane.kubectl`` (admin);
* ``namespace`` / ``unmanaged_namespace``: a fresh namespace with / without the
  ``ambient-code.io/managed=true`` label, deleted (without waiting) after the test;
* ``deployed`` (session): CRDs, namespace and RBAC from deploy/ applied, CRDs Established;
* ``start_operator``: factory for :class:`testenv.OperatorProcess` running as the operator's
  ServiceAccount; every process it started is stopped after the test.

A failing test's report gets the logs of the operator processes started during it and, for
``cluster`` tests, the last lines of each control plane component's log.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from testenv.binaries import find_binaries
from testenv.controlplane import Cluster, ControlPlane, ExistingCluster
from testenv.operator_process import REGISTRY, OperatorProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
MANAGED_LABEL = "ambient-code.io/managed"

_cluster: Cluster | None = None
_registry_start = pytest.StashKey[int]()
_logs_attached = pytest.StashKey[bool]()


def _use_existing_cluster() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries before any test runs when cluster tests were collected.

    A cold build takes many minutes; done here it is not counted against the first test's
    pytest-timeout, and a failure (e.g. no Go) is reported once, up front."""
    if _use_existing_cluster() or session.config.option.collectonly:
        return
    if any(item.get_closest_marker("cluster") for item in session.items):
        find_binaries()


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    global _cluster
    if _use_existing_cluster():
        _cluster = ExistingCluster()
        yield _cluster
        _cluster = None
        return
    cp = ControlPlane(audit=True)
    cp.start()
    _cluster = cp
    try:
        yield cp
    finally:
        _cluster = None
        cp.stop()


@pytest.fixture
def kubectl(control_plane: Cluster) -> Kubectl:
    return control_plane.kubectl


def _namespace_name(request: pytest.FixtureRequest) -> str:
    """DNS label from the test name (readable in logs) plus a random suffix (unique)."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"{base or 't'}-{uuid.uuid4().hex[:8]}"


def _make_namespace(cluster: Cluster, name: str, labels: dict[str, str]) -> Iterator[str]:
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(manifest))
    try:
        # ServiceAccount admission is on: pods in a namespace whose "default" ServiceAccount the
        # controller-manager has not created yet are rejected. Wait so tests do not race it.
        cluster.kubectl(
            "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=30s"
        )
        yield name
    finally:
        cluster.kubectl(
            "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
        )


@pytest.fixture
def namespace(control_plane: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace labelled ``ambient-code.io/managed=true``."""
    yield from _make_namespace(control_plane, _namespace_name(request), {MANAGED_LABEL: "true"})


@pytest.fixture
def unmanaged_namespace(control_plane: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace without the managed label."""
    yield from _make_namespace(control_plane, _namespace_name(request), {})


@pytest.fixture(scope="session")
def deployed(control_plane: Cluster) -> Cluster:
    """CRDs and RBAC from deploy/ applied to the cluster, CRDs Established."""
    missing = [
        str(p.relative_to(REPO_ROOT)) for p in (DEPLOY / "crds", DEPLOY / "rbac") if not p.is_dir()
    ]
    if missing:
        pytest.fail(
            f"cannot deploy the operator's manifests: {', '.join(missing)} missing "
            f"(expected kustomizations under {DEPLOY})",
            pytrace=False,
        )
    if (DEPLOY / "namespace.yaml").is_file():
        control_plane.kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"))
    control_plane.kubectl("apply", "-k", str(DEPLOY / "crds"))
    control_plane.kubectl("apply", "-k", str(DEPLOY / "rbac"))
    control_plane.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=60s")
    return control_plane


@pytest.fixture
def start_operator(deployed: Cluster) -> Iterator[Callable[..., OperatorProcess]]:
    """``start_operator(*args, env=None, wait_ready=True, **kw)`` -> a running OperatorProcess."""
    started: list[OperatorProcess] = []

    def start(
        *args: str, env: dict[str, str] | None = None, wait_ready: bool = True, **kwargs: Any
    ) -> OperatorProcess:
        proc = OperatorProcess(deployed, list(args), env or {}, **kwargs)
        started.append(proc)
        proc.start()
        if wait_ready:
            proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.cleanup()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_registry_start] = len(REGISTRY)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed or item.stash.get(_logs_attached, False):
        return report
    item.stash[_logs_attached] = True
    seen: set[int] = set()
    for proc in REGISTRY[item.stash.get(_registry_start, len(REGISTRY)) :]:
        if id(proc) in seen:
            continue
        seen.add(id(proc))
        report.sections.append(
            (f"operator log: {proc.name} pid {proc.pid} ({proc.log_path})", proc.log_tail(200))
        )
    if _cluster is not None and item.get_closest_marker("cluster") is not None:
        for component, tail in _cluster.log_tails(25).items():
            report.sections.append((f"{component} log (last lines)", tail))
    return report
