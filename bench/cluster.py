"""The set-up the cluster benchmarks share (``operator_bench``, ``lifecycle_bench``).

A testenv ``ControlPlane`` with one change to its defaults (a /16 Service IP range, see
:data:`SERVICE_RANGE`), ``deploy/`` applied, one managed namespace holding the
``ambient-runner-secrets`` Secret, and the operator as ``python -m agentic_operator`` under its
own ServiceAccount with default flags and ``--max-concurrent-reconciles 10``.
:func:`operator_cluster` brings all of it up and takes it down again, also when the benchmark
fails half-way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testenv.controlplane import ControlPlane
from testenv.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parent.parent
MANAGED_LABEL = "ambient-code.io/managed"
RUNNER_SECRET = "ambient-runner-secrets"  # noqa: S105 - a Secret's name
OPERATOR_ARGS = ("--max-concurrent-reconciles", "10")
SERVICE_RANGE = "10.0.0.0/16"
"""Every running session owns a ClusterIP Service. testenv's default range is a /24 (254 IPs): with
more sessions alive at once, Service creation fails with "range is full" and the run measures
retries instead of the operator. Real clusters use a /12 or /16."""


def log(bench: str, msg: str) -> None:
    """A progress line on stderr (the report itself goes to stdout)."""
    print(f"[{bench} bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def deploy(cp: ControlPlane) -> None:
    cp.kubectl("apply", "-f", str(REPO / "deploy" / "namespace.yaml"))
    cp.kubectl("apply", "-k", str(REPO / "deploy" / "crds"))
    cp.kubectl("apply", "-k", str(REPO / "deploy" / "rbac"))
    cp.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=60s")


def make_namespace(cp: ControlPlane, name: str, *, managed: bool) -> None:
    labels = {MANAGED_LABEL: "true"} if managed else {}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    cp.kubectl("create", "-f", "-", input=json.dumps(ns))
    cp.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    if managed:
        cp.kubectl(
            "create",
            "secret",
            "generic",
            RUNNER_SECRET,
            "-n",
            name,
            "--from-literal=ANTHROPIC_API_KEY=placeholder",
        )


def profiled_command(profile: Path | None) -> list[str] | None:
    """The operator's command under ``python -m cProfile -o <profile>`` (None: the default)."""
    if profile is None:
        return None
    return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "agentic_operator"]


@contextmanager
def operator_cluster(
    bench: str, namespace: str, profile: Path | None = None
) -> Iterator[tuple[ControlPlane, OperatorProcess]]:
    """A started control plane with ``deploy/`` applied, the managed ``namespace`` and the
    operator ready; on the way out the operator is stopped (SIGTERM, so a profile is written) and
    the control plane with it. When the body fails, the operator's last log lines go to stderr."""
    cp = ControlPlane(
        extra_args={"kube-apiserver": [f"--service-cluster-ip-range={SERVICE_RANGE}"]}
    )
    log(bench, "starting the control plane")
    cp.start()
    op: OperatorProcess | None = None
    try:
        deploy(cp)
        make_namespace(cp, namespace, managed=True)
        op = OperatorProcess(
            cp,
            list(OPERATOR_ARGS),
            {"DEV_MODE": "false"},
            name=f"bench-{bench}",
            command=profiled_command(profile),
        )
        op.start()
        op.wait_ready(120)
        log(bench, f"operator ready (pid {op.pid})")
        yield cp, op
    except BaseException:
        if op is not None:
            print(f"operator log (last lines):\n{op.log_tail(40)}", file=sys.stderr)
        raise
    finally:
        if op is not None:
            op.stop()
        cp.stop()
