"""A real Kubernetes control plane as local processes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes and kubelet-like pod status).

Used by the pytest fixtures, ``make run`` and the benchmark. The API is synchronous on purpose:
start-up is a sequence of blocking waits, and a session-scoped pytest fixture or a ``with`` block is
where it is called from.

Cleanup is layered so that no process outlives us, whatever happens to the test run:

* :meth:`ControlPlane.stop` (also via the context manager) stops every component: SIGTERM to its
  process group, SIGKILL after a grace period, then the work directory is removed;
* an ``atexit`` hook stops whatever is still running when the interpreter exits (Ctrl-C in pytest
  ends up here if fixture teardown was itself interrupted);
* SIGTERM and SIGHUP, when nobody else handles them, stop the control plane and then let the
  signal terminate us as it would have;
* every child runs in its own session (a Ctrl-C in the terminal reaches only us, so we decide
  the order) and, on Linux, asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``), which covers ``kill -9`` of the test runner.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol

from testenv.audit import POLICY as AUDIT_POLICY
from testenv.binaries import REQUIRED, find_binaries, find_kubectl
from testenv.kwok_watchdog import KwokWatchdog
from testenv.pki import PKI, CertPair, generate_pki

KEEP_ENV = "AGENTIC_TESTENV_KEEP"
DEFAULT_STAGES = Path(__file__).resolve().parent / "kwok" / "stages.yaml"
COMPONENTS: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)
NODE_LABELS = {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
_GRACE_SECONDS = 5.0


class ControlPlaneError(RuntimeError):
    """A component failed; names it and carries its log path and last log lines."""

    def __init__(
        self, component: str, problem: str, log_path: Path | None = None, tail: str = ""
    ) -> None:
        self.component = component
        self.log_path = log_path
        message = f"{component}: {problem}"
        if log_path is not None:
            message += f"\n  log: {log_path}"
        if tail.strip():
            indented = "\n".join("    " + line for line in tail.rstrip().splitlines())
            message += f"\n  last lines of the log:\n{indented}"
        super().__init__(message)


class KubectlError(subprocess.CalledProcessError):
    """``kubectl`` failed; unlike CalledProcessError the message includes its stderr."""

    def __str__(self) -> str:
        args = self.cmd[3:] if isinstance(self.cmd, list) else self.cmd
        stderr = (self.stderr or "").strip()
        return f"kubectl {' '.join(map(str, args))} exited {self.returncode}: {stderr}"


class Cluster(Protocol):
    """What tests and helpers need from a cluster: local (:class:`ControlPlane`) or existing."""

    @property
    def kubeconfig(self) -> Path: ...

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...

    def log_tails(self, lines: int = 30) -> dict[str, str]: ...


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail_file(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a (log) file, or "" if it does not exist."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    cmd = [str(kubectl), "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(
        cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise KubectlError(result.returncode, cmd, result.stdout, result.stderr)
    return result


# --- child processes -------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """preexec_fn asking the kernel to SIGKILL the child when its parent thread ends.

    PDEATHSIG fires when the *thread* that forked exits, so it is only used from the main thread
    (a worker thread, e.g. ``asyncio.to_thread``, may end long before the process does)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass
class Process:
    """One component: command line, log file, and a process group to signal."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    env: Mapping[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_offset: int = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            log.write(f"=== testenv: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=None if self.env is None else dict(self.env),
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def tail(self, lines: int = 40) -> str:
        return tail_file(self.log_path, lines)

    def output_since_start(self) -> str:
        """What the current run wrote to the log (the file is appended to across restarts)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def stop_processes(procs: Iterable[Process], grace: float = _GRACE_SECONDS) -> None:
    """SIGTERM every process group at once, SIGKILL what is left after ``grace`` seconds."""
    procs = [p for p in procs if p.popen is not None]
    for p in procs:
        if p.alive():
            p.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        assert p.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Also reaps helpers the component may have spawned in its group.
        p.signal_group(signal.SIGKILL)
        p.popen.wait()


# --- signals and exit ------------------------------------------------------------------------

_ACTIVE: list[ControlPlane] = []
_hooks_installed = False


def _stop_all() -> None:
    for cp in list(_ACTIVE):
        with contextlib.suppress(Exception):
            cp.stop()


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_exit_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _on_fatal_signal)


# --- the control plane -----------------------------------------------------------------------


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, user: str, client: CertPair) -> None:
    """A kubeconfig with everything embedded (JSON, which is valid YAML), mode 0600."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testenv",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": user}}],
        "current-context": "testenv",
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(config, indent=2) + "\n")


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    Args:
        workdir: where PKI, kubeconfigs, etcd data and logs go (default: a new temp directory).
        binary_dir: directory with the binaries (default: :func:`testenv.binaries.find_binaries`).
        keep: keep the work directory after :meth:`stop` (default: env ``AGENTIC_TESTENV_KEEP=1``).
            It is always kept when start-up fails, so the logs named in the error still exist.
        nodes: number of fake Nodes to create (kwok manages all of them).
        stages: kwok Stage file (default: ``testenv/kwok/stages.yaml``).
        apiserver_port: fixed API server port (default: a free one).
        extra_args: per component name, extra command-line flags appended to the defaults.
        startup_timeout: seconds each component gets to become ready.
        audit: write the API server's audit log to :attr:`audit_log` (policy
            :data:`testenv.audit.POLICY`: writes by non-admin users, level Metadata only).
    """

    def __init__(
        self,
        *,
        workdir: Path | str | None = None,
        binary_dir: Path | str | None = None,
        keep: bool | None = None,
        nodes: int = 3,
        stages: Path | str = DEFAULT_STAGES,
        apiserver_port: int | None = None,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        startup_timeout: float = 60.0,
        audit: bool = False,
    ) -> None:
        self.audit = audit
        self.audit_log: Path | None = None
        """The audit log (JSON lines) when started with ``audit=True``."""
        self._requested_workdir = Path(workdir) if workdir is not None else None
        self._binary_dir = Path(binary_dir) if binary_dir is not None else None
        self.keep = keep if keep is not None else os.environ.get(KEEP_ENV) == "1"
        self.node_count = nodes
        self.stages = Path(stages)
        self._fixed_apiserver_port = apiserver_port
        self.extra_args = {k: list(v) for k, v in (extra_args or {}).items()}
        self.startup_timeout = startup_timeout
        unknown = set(self.extra_args) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"extra_args for unknown components: {sorted(unknown)}")

        self.workdir = Path()
        self.log_dir = Path()
        self.kubeconfig = Path()
        self.ca_file = Path()
        self.server = ""
        self.ports: dict[str, int] = {}
        self.processes: dict[str, Process] = {}
        self.startup_seconds: float | None = None
        self.timings: dict[str, float] = {}
        """Seconds each start-up step took (for reports and benchmarks)."""
        self._pki: PKI | None = None
        self._bin = Path()
        self._started = False
        self._watchdog: KwokWatchdog | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._started

    @property
    def pki(self) -> PKI:
        """The generated certificates (e.g. the serving pair, for a proxy in front of the API)."""
        if self._pki is None:
            raise RuntimeError("control plane not started")
        return self._pki

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every component and wait until the cluster can run pods."""
        if self._started:
            raise RuntimeError("control plane already started")
        t0 = time.monotonic()
        _install_exit_hooks()
        self._prepare_workdir()
        _ACTIVE.append(self)
        self._started = True
        try:
            self._bin = self._binary_dir or find_binaries()
            self._check_binaries()
            for step, run in (
                ("etcd", self._start_etcd),
                ("kube-apiserver", self._start_apiserver),
                ("controller-manager+scheduler+kwok", self._start_clients),
                ("nodes Ready", self._create_nodes),
            ):
                t_step = time.monotonic()
                run()
                self.timings[step] = time.monotonic() - t_step
        except BaseException as err:
            if isinstance(err, Exception):
                self.keep = True  # the error message points at logs in the work directory
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        self._watchdog = KwokWatchdog(self.api, self.log_dir / "kwok-watchdog.log")
        self._watchdog.start()

    def stop(self) -> None:
        """Stop all components (idempotent), then remove the work directory unless kept."""
        if not self._started:
            return
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        clients = ("kwok", "kube-scheduler", "kube-controller-manager")
        stop_processes(_present(self.processes.get(n) for n in clients))
        stop_processes(_present([self.processes.get("kube-apiserver")]))
        stop_processes(_present([self.processes.get("etcd")]))
        self._started = False
        with contextlib.suppress(ValueError):
            _ACTIVE.remove(self)
        if not self.keep and self._requested_workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        elif not self.keep:
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)

    def restart_apiserver(self, grace: float = 1.0) -> None:
        """Stop kube-apiserver only and start it again on the same port (watch-recovery tests).

        SIGTERM closes the listener at once, but with clients connected the process lingers for
        seconds after that; ``grace`` bounds the wait before SIGKILL (which drops open watches)."""
        proc = self.processes["kube-apiserver"]
        stop_processes([proc], grace=grace)
        proc.start()
        self._wait_ready(proc, self._apiserver_ready)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin against this cluster; on failure (check=True) raise KubectlError."""
        return run_kubectl(
            self._bin / "kubectl", self.kubeconfig, args, input=input, check=check, timeout=timeout
        )

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float = 10,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One admin request to the API server, without kubectl's start-up cost: (status, JSON)."""
        assert self._pki is not None
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.ports["kube-apiserver"], context=self._admin_ssl(), timeout=timeout
        )
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return resp.status, decoded

    def log_tails(self, lines: int = 30) -> dict[str, str]:
        """Last lines of each component's log, by component name."""
        return {name: proc.tail(lines) for name, proc in self.processes.items()}

    def pids(self) -> dict[str, int]:
        return {n: p.pid for n, p in self.processes.items() if p.pid is not None and p.alive()}

    # -- start-up steps -----------------------------------------------------------------------

    def _prepare_workdir(self) -> None:
        if self._requested_workdir is not None:
            self.workdir = self._requested_workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="agentic-testenv-"))
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self._pki = generate_pki(self.workdir / "pki")
        self.ca_file = self._pki.ca.cert
        self.kubeconfig = self.workdir / "kubeconfig"

    def _check_binaries(self) -> None:
        for name in REQUIRED:
            path = self._bin / name
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ControlPlaneError(name, f"binary not found or not executable: {path}")
        if not self.stages.is_file():
            raise ControlPlaneError("kwok", f"stage file not found: {self.stages}")

    def _process(self, name: str, argv: list[str]) -> Process:
        proc = Process(
            name=name,
            argv=[str(self._bin / name), *argv, *self.extra_args.get(name, [])],
            log_path=self.log_dir / f"{name}.log",
            cwd=self.workdir,
        )
        self.processes[name] = proc
        return proc

    def _start_etcd(self) -> None:
        def argv() -> list[str]:
            client, peer = self.ports["etcd"], self.ports["etcd-peer"]
            return [
                "--name=testenv",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=testenv=http://127.0.0.1:{peer}",
                "--listen-metrics-urls=",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ]

        def ready() -> bool:
            status, body = _http_get(f"http://127.0.0.1:{self.ports['etcd']}/health")
            return status == 200 and b'"true"' in body

        self._start_with_ports("etcd", ("etcd", "etcd-peer"), argv, ready)

    def _start_apiserver(self) -> None:
        assert self._pki is not None
        pki = self._pki

        def argv() -> list[str]:
            port = self.ports["kube-apiserver"]
            return [
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--client-ca-file={pki.ca.cert}",
                # Published in kube-system/extension-apiserver-authentication; without it the
                # controller-manager and scheduler log an error about it several times a second.
                f"--requestheader-client-ca-file={pki.ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--authorization-mode=RBAC",
                # Defaults already include the first three; listed so the intent is visible and
                # stable. OwnerReferencesPermissionEnforcement is on in OpenShift, where the
                # platform runs: an update that changes ownerReferences needs delete on the
                # object, and blockOwnerDeletion needs update on the owner's finalizers.
                "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,"
                "OwnerReferencesPermissionEnforcement",
                "--service-cluster-ip-range=10.0.0.0/16",  # room for 65k Services (one per session)
                "--allow-privileged=true",
                f"--service-account-issuer=https://127.0.0.1:{port}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
                *audit,
            ]

        audit: list[str] = []
        if self.audit:
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(AUDIT_POLICY)
            self.audit_log = self.log_dir / "kube-apiserver-audit.log"
            audit = [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}"]
        fixed = self._fixed_apiserver_port
        self._start_with_ports(
            "kube-apiserver", ("kube-apiserver",), argv, self._apiserver_ready, fixed=fixed
        )
        self.server = f"https://127.0.0.1:{self.ports['kube-apiserver']}"
        write_kubeconfig(self.kubeconfig, self.server, pki.ca.cert, "admin", pki.admin)
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            write_kubeconfig(
                self.workdir / f"{name}.kubeconfig",
                self.server,
                pki.ca.cert,
                name,
                pki.clients[name],
            )

    def _start_clients(self) -> None:
        """Controller-manager, scheduler and kwok only need the API server: start them together."""
        assert self._pki is not None
        pki = self._pki
        cm_kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        sched_kubeconfig = self.workdir / "kube-scheduler.kubeconfig"
        # The serving certificate is valid for 127.0.0.1, so their health endpoints are verified
        # against our CA like the API server's.
        serving = [
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
        ]
        qps = ["--kube-api-qps=500", "--kube-api-burst=1000"]
        specs: dict[str, tuple[Callable[[], list[str]], Callable[[], bool]]] = {
            "kube-controller-manager": (
                lambda: [
                    f"--kubeconfig={cm_kubeconfig}",
                    f"--authentication-kubeconfig={cm_kubeconfig}",
                    f"--authorization-kubeconfig={cm_kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.ports['kube-controller-manager']}",
                    *serving,
                    "--leader-elect=false",
                    # The default set includes job, garbage-collector and ttl-after-finished.
                    "--controllers=*",
                    f"--root-ca-file={pki.ca.cert}",
                    f"--service-account-private-key-file={pki.service_account_key}",
                    "--use-service-account-credentials=false",
                    "--concurrent-job-syncs=20",
                    *qps,
                    "--v=1",
                ],
                lambda: self._https_ok("kube-controller-manager", "/healthz"),
            ),
            "kube-scheduler": (
                lambda: [
                    f"--kubeconfig={sched_kubeconfig}",
                    f"--authentication-kubeconfig={sched_kubeconfig}",
                    f"--authorization-kubeconfig={sched_kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.ports['kube-scheduler']}",
                    *serving,
                    "--leader-elect=false",
                    *qps,
                    "--v=1",
                ],
                lambda: self._https_ok("kube-scheduler", "/healthz"),
            ),
            "kwok": (
                lambda: [
                    f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                    "--manage-all-nodes=true",
                    f"--config={self.stages}",
                    f"--server-address=127.0.0.1:{self.ports['kwok']}",
                    "--node-ip=10.0.1.1",
                    "--cidr=10.0.128.0/17",
                ],
                lambda: _http_get(f"http://127.0.0.1:{self.ports['kwok']}/healthz")[0] == 200,
            ),
        }
        for name, (argv, _) in specs.items():
            self.ports[name] = free_port()
            self._process(name, argv()).start()
        for name, (argv, ready) in specs.items():
            self._wait_with_port_retry(name, (name,), argv, ready, fixed=None)

    def _create_nodes(self) -> None:
        names = [f"kwok-node-{i}" for i in range(self.node_count)]
        for name in names:
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {**NODE_LABELS, "kubernetes.io/hostname": name},
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "node.alpha.kubernetes.io/ttl": "0",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "10000"},
                    "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "10000"},
                },
            }
            status, body = self.api("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise ControlPlaneError("kube-apiserver", f"creating node {name}: {status} {body}")
        deadline = time.monotonic() + self.startup_timeout
        while True:
            status, body = self.api("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
            ready = {
                item["metadata"]["name"]
                for item in (body or {}).get("items", [])
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in item.get("status", {}).get("conditions") or []
                )
            }
            if set(names) <= ready:
                return
            kwok = self.processes["kwok"]
            if not kwok.alive():
                raise ControlPlaneError(
                    "kwok", "exited while initializing nodes", kwok.log_path, kwok.tail()
                )
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    "kwok",
                    f"nodes not Ready after {self.startup_timeout:.0f}s (ready: {sorted(ready)})",
                    kwok.log_path,
                    kwok.tail(),
                )
            time.sleep(0.1)

    # -- helpers ------------------------------------------------------------------------------

    def _start_with_ports(
        self,
        name: str,
        port_names: tuple[str, ...],
        argv: Callable[[], list[str]],
        ready: Callable[[], bool],
        fixed: int | None = None,
    ) -> None:
        for i, port_name in enumerate(port_names):
            self.ports[port_name] = fixed if (fixed is not None and i == 0) else free_port()
        self._process(name, argv()).start()
        self._wait_with_port_retry(name, port_names, argv, ready, fixed)

    def _wait_with_port_retry(
        self,
        name: str,
        port_names: tuple[str, ...],
        argv: Callable[[], list[str]],
        ready: Callable[[], bool],
        fixed: int | None,
    ) -> None:
        """Wait for readiness; if a port we picked was taken meanwhile, pick again (twice).

        A port chosen by :func:`free_port` can be grabbed by another process before the component
        binds it; a fixed port (``apiserver_port``) is the caller's choice and is not changed."""
        for attempt in range(3):
            proc = self.processes[name]
            try:
                self._wait_ready(proc, ready)
                return
            except ControlPlaneError as err:
                if "address already in use" not in proc.output_since_start():
                    raise
                ports = ", ".join(f"{p}={self.ports[p]}" for p in port_names)
                if fixed is not None or attempt == 2:
                    raise ControlPlaneError(
                        name, f"a port is already in use ({ports})", proc.log_path, proc.tail()
                    ) from err
            for port_name in port_names:
                self.ports[port_name] = free_port()
            proc.argv = [str(self._bin / name), *argv(), *self.extra_args.get(name, [])]
            proc.start()

    def _wait_ready(self, proc: Process, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.02
        while True:
            if not proc.alive():
                assert proc.popen is not None
                rc = proc.popen.returncode
                raise ControlPlaneError(
                    proc.name,
                    f"exited during start-up (exit code {rc})",
                    proc.log_path,
                    proc.tail(),
                )
            if ready():
                return
            if time.monotonic() > deadline:
                stop_processes([proc])
                raise ControlPlaneError(
                    proc.name,
                    f"not ready after {self.startup_timeout:.0f}s",
                    proc.log_path,
                    proc.tail(),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _admin_ssl(self) -> ssl.SSLContext:
        assert self._pki is not None
        ctx = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        ctx.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
        return ctx

    def _apiserver_ready(self) -> bool:
        url = f"https://127.0.0.1:{self.ports['kube-apiserver']}/readyz"
        status, body = _http_get(url, self._admin_ssl())
        return status == 200 and body.strip() == b"ok"

    def _https_ok(self, name: str, path: str) -> bool:
        assert self._pki is not None
        ctx = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        status, _ = _http_get(f"https://127.0.0.1:{self.ports[name]}{path}", ctx)
        return status == 200


def _present(procs: Iterable[Process | None]) -> list[Process]:
    return [p for p in procs if p is not None]


def _http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, http.client.HTTPException):
        return 0, b""


class ExistingCluster:
    """A cluster given by a kubeconfig (``USE_EXISTING_CLUSTER=true``), with the same helpers."""

    def __init__(self, kubeconfig: Path | str | None = None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config"
        self.kubeconfig = Path(str(path).split(os.pathsep)[0]).expanduser()
        if not self.kubeconfig.is_file():
            raise FileNotFoundError(f"kubeconfig {self.kubeconfig} does not exist")
        self._kubectl = find_kubectl()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(
            self._kubectl, self.kubeconfig, args, input=input, check=check, timeout=timeout
        )

    def log_tails(self, lines: int = 30) -> dict[str, str]:
        return {}
