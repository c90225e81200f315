"""Run the operator as a separate process against a test cluster, as its own ServiceAccount.

The process authenticates with a token minted for the ServiceAccount the deploy/ manifests
create (``kubectl create token``), not as admin, so the RBAC shipped in deploy/ is what the
end-to-end tests exercise: a missing permission fails the test here, not in a user's cluster.

Every started instance is appended to :data:`REGISTRY`; the pytest hook in tests/conftest.py
reads it to attach operator logs to the report of a failing test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from testenv.controlplane import Cluster, Process, free_port, tail_file

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBE_FLAG = "--health-probe-bind-address"
METRICS_FLAG = "--metrics-bind-address"

REGISTRY: list[OperatorProcess] = []
"""Every OperatorProcess started in this interpreter, oldest first."""


class OperatorProcessError(RuntimeError):
    """The operator process exited or did not become ready; the message has its last log lines."""


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _port_of(address: str) -> int | None:
    _, sep, port = address.rpartition(":")
    return int(port) if sep and port.isdigit() and int(port) > 0 else None


def write_token_kubeconfig(
    cluster: Cluster,
    path: Path,
    *,
    namespace: str,
    service_account: str,
    duration: str = "24h",
    server: str | None = None,
) -> None:
    """Write a kubeconfig (mode 0600) that authenticates as ``namespace/service_account``.

    The cluster entry (server, CA) is copied from the cluster's own kubeconfig, the server
    replaced by ``server`` when given (a proxy in front of the API server whose certificate the
    cluster's CA signed: testenv.faultproxy); the bearer token comes from the TokenRequest API via
    ``kubectl create token`` and is never printed."""
    view = cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json")
    cluster_entry = json.loads(view.stdout)["clusters"][0]["cluster"]
    if server is not None:
        cluster_entry["server"] = server
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, f"--duration={duration}"
    ).stdout.strip()
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": cluster_entry}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "testenv",
                "context": {"cluster": "testenv", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "testenv",
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")


class OperatorProcess:
    """``python -m agentic_operator --kubeconfig <SA kubeconfig> *args`` with logs in a file.

    Probe and metrics ports: taken from ``args`` when given there
    (``--health-probe-bind-address=127.0.0.1:<port>``), otherwise picked here and added.
    ``env`` is merged over the current environment (minus ``KUBECONFIG``, so only the minted
    credentials are used) after ``NAMESPACE=<namespace>``, which the Deployment sets from the
    pod's namespace. ``command`` replaces ``python -m agentic_operator`` (tests of this
    helper use a stand-in; the image test runs ``podman run``); ``{kubeconfig}`` in its items
    becomes the path of the minted kubeconfig. ``server`` points the kubeconfig elsewhere than
    the cluster's API server (a :class:`testenv.faultproxy.FaultProxy`).
    """

    def __init__(
        self,
        cluster: Cluster,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        namespace: str = "ambient-code",
        service_account: str = "agentic-operator",
        name: str = "operator",
        workdir: Path | None = None,
        token_duration: str = "24h",  # noqa: S107 - a duration, not a secret
        command: Sequence[str] | None = None,
        server: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.server = server
        self.name = name
        self.namespace = namespace
        self.service_account = service_account
        self.token_duration = token_duration
        self.args = list(args)
        self.command = list(command) if command else [sys.executable, "-m", "agentic_operator"]
        self.extra_env = dict(env or {})

        probe = _flag_value(self.args, PROBE_FLAG)
        if probe is None:
            self.probe_port = free_port()
            self.args.append(f"{PROBE_FLAG}=127.0.0.1:{self.probe_port}")
        else:
            port = _port_of(probe)
            if port is None:
                raise ValueError(f"{PROBE_FLAG}={probe}: readiness needs an explicit port")
            self.probe_port = port
        metrics = _flag_value(self.args, METRICS_FLAG)
        if metrics is None:
            self.metrics_port: int | None = free_port()
            self.args.append(f"{METRICS_FLAG}=127.0.0.1:{self.metrics_port}")
        else:
            self.metrics_port = _port_of(metrics)

        base = workdir or getattr(cluster, "workdir", None)
        if base is not None:
            Path(base).mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
        self._owns_tempdir = base is None
        self.kubeconfig = self.workdir / "kubeconfig"
        self.log_path = self.workdir / f"{name}.log"
        self._process: Process | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> OperatorProcess:
        if self._process is not None and self._process.alive():
            raise RuntimeError(f"{self.name} is already running")
        write_token_kubeconfig(
            self.cluster,
            self.kubeconfig,
            namespace=self.namespace,
            service_account=self.service_account,
            duration=self.token_duration,
            server=self.server,
        )
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        src = str(REPO_ROOT / "src")
        env["PYTHONPATH"] = os.pathsep.join(
            [src, str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PYTHONUNBUFFERED"] = "1"
        # What deploy/manager/deployment.yaml sets through the downward API.
        env["NAMESPACE"] = self.namespace
        env.update(self.extra_env)
        self._process = Process(
            name=self.name,
            argv=[
                *(part.replace("{kubeconfig}", str(self.kubeconfig)) for part in self.command),
                "--kubeconfig",
                str(self.kubeconfig),
                *self.args,
            ],
            log_path=self.log_path,
            cwd=REPO_ROOT,
            env=env,
        )
        self._process.start()
        REGISTRY.append(self)
        return self

    def restart(self) -> OperatorProcess:
        """Start again with the same arguments (after stop()/kill()); logs are appended."""
        return self.start()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send ``sig`` to the operator and wait; SIGKILL the group after ``timeout``.

        Returns the exit code (negative for death by signal), or None if it never started."""
        proc = self._process
        if proc is None or proc.popen is None:
            return None
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.popen.pid, sig)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.signal_group(signal.SIGKILL)
        proc.signal_group(signal.SIGKILL)
        return proc.popen.wait()

    def kill(self) -> int | None:
        """SIGKILL: the crash case (no drain, no lease release)."""
        return self.stop(signal.SIGKILL, timeout=10.0)

    def cleanup(self) -> None:
        """Stop, and remove the temp directory when it is not under the control plane's."""
        self.stop()
        if self._owns_tempdir and os.environ.get("AGENTIC_TESTENV_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation --------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    @property
    def returncode(self) -> int | None:
        if self._process is None or self._process.popen is None:
            return None
        return self._process.popen.poll()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit by itself; raises subprocess.TimeoutExpired."""
        if self._process is None or self._process.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process.popen.wait(timeout=timeout)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 100) -> str:
        return tail_file(self.log_path, lines)

    def probe_url(self, path: str = "/readyz") -> str:
        return f"http://127.0.0.1:{self.probe_port}{path}"

    def metrics_url(self) -> str:
        if self.metrics_port is None:
            raise RuntimeError("metrics endpoint is disabled")
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.probe_url(), timeout=2) as resp:  # noqa: S310
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /readyz until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise OperatorProcessError(
                    f"{self.name} exited (code {self.returncode}) before becoming ready; "
                    f"log {self.log_path}:\n{self.log_tail(40)}"
                )
            if self.is_ready():
                return
            if time.monotonic() > deadline:
                raise OperatorProcessError(
                    f"{self.name} not ready after {timeout:.0f}s ({self.probe_url()}); "
                    f"log {self.log_path}:\n{self.log_tail(40)}"
                )
            time.sleep(0.1)
