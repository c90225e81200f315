"""``make run``: a local control plane, the operator on it, and the sample session's lifecycle.

    python -m testenv.run            # keeps everything running until Ctrl-C
    python -m testenv.run --once     # exits once the sample session is Stopped (used by a test)

The sample runs as today's platform runs sessions: its runner never exits (kwok's ``run-forever``
outcome, chosen through the testenv-only variable ``TESTENV_RUNNER_OUTCOME``), so the session goes
Pending -> Creating -> Running and stays there. The demo then stops it the way the platform's
backend does (``ambient-code.io/desired-phase=Stopped`` and ``stop-requested-at``), and follows it
through Stopping to Stopped.

The operator runs as a separate process under its own ServiceAccount's token, so the RBAC in
``deploy/rbac`` is what it gets; its log (human-readable, DEV_MODE=true) is streamed here.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from testenv.binaries import find_kubectl
from testenv.controlplane import ControlPlane
from testenv.kubectl_watch import json_documents
from testenv.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parent.parent
DEMO_NAMESPACE = "demo"
SAMPLE = REPO / "deploy" / "samples" / "agenticsession.yaml"
TERMINAL = ("Completed", "Failed", "Stopped")
RUNNING_FOR = 3.0
"""Seconds the demo lets the session run before it stops it."""
RESTART = (
    f"kubectl annotate --overwrite -n {DEMO_NAMESPACE} agenticsession/hello-world "
    "ambient-code.io/desired-phase=Running"
)


def _say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def _stream(path: Path, stop: threading.Event) -> None:
    """Print the operator's log line by line as it grows (a small ``tail -f``)."""
    offset, partial = 0, b""
    while not stop.is_set():
        try:
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        offset += len(chunk)
        *lines, partial = (partial + chunk).split(b"\n")
        for line in lines:
            print(f"    | {line.decode(errors='replace')}", flush=True)
        stop.wait(0.2)


def _follow(
    cp: ControlPlane,
    name: str,
    timeout: float,
    create: Callable[[], None],
    on_running: Callable[[], None],
) -> str:
    """Start a watch, ``create`` the session, print each phase it goes through, call
    ``on_running`` the first time it is Running; return the terminal phase it reached (or the last
    one seen when ``timeout`` ran out).

    The watch is open before the session exists, so no phase can be missed.
    """
    proc = subprocess.Popen(
        [
            str(find_kubectl()),
            "--kubeconfig",
            str(cp.kubeconfig),
            "get",
            "agenticsessions",
            "-n",
            DEMO_NAMESPACE,
            f"--field-selector=metadata.name={name}",
            "--watch",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(0.5)  # kubectl lists (nothing) and starts watching
    create()
    timer = threading.Timer(timeout, proc.terminate)
    timer.start()
    last, ran = "", False
    try:
        assert proc.stdout is not None
        for obj in json_documents(proc.stdout):
            phase = _show_phase(name, obj, last)
            last = phase or last
            if phase == "Running" and not ran:
                ran = True
                on_running()
            if phase in TERMINAL:
                break
    finally:
        timer.cancel()
        proc.terminate()
        proc.wait(10)
    return last


def _show_phase(name: str, obj: dict[str, Any], last: str) -> str:
    """Print the session's phase (with the Ready condition's message) when it changed."""
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "")
    if phase and phase != last:
        ready: dict[str, str] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        detail = f" ({ready['message']})" if ready.get("message") else ""
        reason = f", stoppedReason {status['stoppedReason']}" if status.get("stoppedReason") else ""
        _say(f"session {name}: {phase}{detail}{reason}")
    return phase


def _sample() -> str:
    """The sample session as YAML, with the testenv-only outcome that keeps its runner running."""
    obj = yaml.safe_load(SAMPLE.read_text())
    env = obj["spec"].setdefault("environmentVariables", {})
    env["TESTENV_RUNNER_OUTCOME"] = "run-forever"
    return str(yaml.safe_dump(obj))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testenv.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--once", action="store_true", help="exit after the sample session ended")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the sample")
    args = parser.parse_args(argv)

    _say(
        "starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
    )
    with ControlPlane() as cp:
        _say(f"control plane ready in {cp.startup_seconds:.1f}s at {cp.server}")
        cp.kubectl("apply", "-f", str(REPO / "deploy" / "namespace.yaml"))
        cp.kubectl("apply", "-k", str(REPO / "deploy" / "crds"))
        cp.kubectl("apply", "-k", str(REPO / "deploy" / "rbac"))
        cp.kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=60s")
        _say("CRDs and RBAC from deploy/ applied")

        cp.kubectl("create", "namespace", DEMO_NAMESPACE)
        cp.kubectl("label", "namespace", DEMO_NAMESPACE, "ambient-code.io/managed=true")
        cp.kubectl("wait", "--for=create", "serviceaccount/default", "-n", DEMO_NAMESPACE)
        cp.kubectl(
            "create",
            "secret",
            "generic",
            "ambient-runner-secrets",
            "-n",
            DEMO_NAMESPACE,
            "--from-literal=ANTHROPIC_API_KEY=placeholder",
        )
        _say(f"namespace {DEMO_NAMESPACE!r} labelled ambient-code.io/managed=true")

        stop = threading.Event()
        with OperatorProcess(cp, [], {"DEV_MODE": "true"}) as op:
            tail = threading.Thread(target=_stream, args=(op.log_path, stop), daemon=True)
            tail.start()
            op.wait_ready(60)
            _say(f"operator ready (metrics {op.metrics_url()})")

            def create() -> None:
                cp.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", "-", input=_sample())
                _say(f"created the sample session from {SAMPLE.relative_to(REPO)}")

            def stop_it() -> None:
                time.sleep(RUNNING_FOR)
                at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                stop = [
                    "agenticsession/hello-world",
                    "ambient-code.io/desired-phase=Stopped",
                    f"ambient-code.io/stop-requested-at={at}",
                ]
                _say(f"the runner keeps running; stopping it as the backend does: {' '.join(stop)}")
                cp.kubectl("annotate", "--overwrite", "-n", DEMO_NAMESPACE, *stop)

            final = _follow(cp, "hello-world", args.timeout, create, stop_it)
            ok = final == "Stopped"
            if not ok:
                _say(f"the sample session did not stop (phase {final or 'none'})")

            if args.once:
                stop.set()
                return 0 if ok else 1

            kubectl = find_kubectl()
            _say("everything keeps running; in another terminal:")
            print(f"      export KUBECONFIG={cp.kubeconfig}", flush=True)
            print(f"      {kubectl} get agenticsessions -A", flush=True)
            print(f"      {RESTART}    # restart it", flush=True)
            print(f"      curl -s {op.metrics_url()} | grep ambient_", flush=True)
            _say("press Ctrl-C to stop")
            try:
                while op.alive:
                    time.sleep(0.5)
                _say("the operator exited")
                return 1
            except KeyboardInterrupt:
                _say("stopping")
                return 0
            finally:
                stop.set()


if __name__ == "__main__":
    sys.exit(main())
