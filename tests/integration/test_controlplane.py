"""The local control plane itself: PKI, binaries, start-up failures, what the real components
enforce (RBAC, PodSecurity, Job controller, garbage collector, TTL), the kwok runner outcomes, and
clean shutdown.

Tests marked ``cluster`` use the session control plane (or start their own where they must stop
it); the others need no cluster.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from testenv.binaries import (
    REQUIRED,
    BinariesError,
    build_binaries,
    find_binaries,
    find_kubectl,
)
from testenv.controlplane import (
    COMPONENTS,
    Cluster,
    ControlPlane,
    ControlPlaneError,
    port_is_listening,
)
from testenv.operator_process import (
    REGISTRY,
    OperatorProcess,
    OperatorProcessError,
    write_token_kubeconfig,
)
from testenv.pki import generate_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = "ambient-code-runner"


# --- helpers ---------------------------------------------------------------------------------


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` (against a real cluster, so real time) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def runner_job(
    name: str,
    env: dict[str, str] | None = None,
    *,
    container: str = RUNNER,
    ttl: int | None = None,
) -> str:
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": container,
                        "image": "registry.example/runner:test",
                        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                    }
                ],
            }
        },
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}
    return json.dumps(job)


def job_pods(cluster: Cluster, namespace: str, job: str) -> list[dict[str, Any]]:
    pods = get_json(cluster, "pods", "-n", namespace, "-l", f"job-name={job}")["items"]
    return list(pods)


def job_condition(cluster: Cluster, namespace: str, job: str) -> str | None:
    """ "Complete" / "Failed" once the Job controller has decided, else None."""
    status = get_json(cluster, "job", job, "-n", namespace).get("status", {})
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


def runner_state(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs["name"] == RUNNER:
            return dict(cs["state"])
    return {}


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (our work directory names every component)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


# --- no cluster needed -----------------------------------------------------------------------


def test_pki_is_accepted_by_strict_tls_verification(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    serving = x509.load_pem_x509_certificate(pki.serving.cert.read_bytes())
    admin = x509.load_pem_x509_certificate(pki.admin.cert.read_bytes())

    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = serving.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )
    eku = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert oct(pki.admin.key.stat().st_mode & 0o777) == "0o600"

    # A mutual-TLS handshake with X509_STRICT on (the default from Python 3.13) both ways.
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.serving.cert, pki.serving.key)
    server_ctx.load_verify_locations(pki.ca.cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    client_ctx.load_cert_chain(pki.admin.cert, pki.admin.key)

    peer: list[Any] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = listener.accept()
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    peer.append(tls.getpeercert())

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        for host in ("127.0.0.1", "localhost"):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                client_ctx.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.sendall(b"x")
        thread.join(5)
    assert len(peer) == 2
    assert (("commonName", "admin"),) in peer[0]["subject"]


def test_assets_dir_missing_binaries_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("etcd", "kubectl"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "kwok").write_text("not executable")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(BinariesError) as err:
        find_binaries()
    message = str(err.value)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        assert name in message
    assert "KUBEBUILDER_ASSETS" in message


def test_build_progress_is_streamed_and_failures_surface(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REQUIRED:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    ok = tmp_path / "ok.sh"
    ok.write_text(f"echo '[build] etcd: cached' >&2\necho noise\necho {bin_dir}\n")
    progress = io.StringIO()
    assert build_binaries(ok, progress) == bin_dir
    assert progress.getvalue() == "[build] etcd: cached\n"

    failing = tmp_path / "fail.sh"
    failing.write_text("echo 'error: Go is not installed' >&2\nexit 1\n")
    with pytest.raises(BinariesError, match=r"(?s)exit 1.*Go is not installed"):
        build_binaries(failing, io.StringIO())


def test_no_go_and_cold_cache_says_what_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("AGENTIC_TESTENV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BinariesError, match=r"Go is not installed.*KUBEBUILDER_ASSETS"):
        find_binaries()


def test_missing_binary_names_the_component(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in REQUIRED:
        if name != "kube-scheduler":
            (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
            (bin_dir / name).chmod(0o755)
    cp = ControlPlane(workdir=tmp_path / "work", binary_dir=bin_dir)
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    assert err.value.component == "kube-scheduler"
    assert str(bin_dir / "kube-scheduler") in str(err.value)
    assert not cp.running


# --- start-up faults (real binaries, own control planes) -------------------------------------


@pytest.mark.cluster
def test_component_dying_at_start_names_it_and_its_log(tmp_path: Path) -> None:
    cp = ControlPlane(workdir=tmp_path, extra_args={"etcd": ["--no-such-flag=1"]})
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    message = str(err.value)
    assert err.value.component == "etcd"
    assert message.startswith("etcd: exited during start-up")
    assert err.value.log_path == tmp_path / "logs" / "etcd.log"
    assert str(err.value.log_path) in message
    assert "no-such-flag" in message  # the log tail is in the message
    assert err.value.log_path.is_file()  # kept although start failed
    assert not processes_mentioning(str(tmp_path))


@pytest.mark.cluster
def test_apiserver_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cp = ControlPlane(workdir=tmp_path, apiserver_port=port, startup_timeout=30)
        with pytest.raises(ControlPlaneError) as err:
            cp.start()
    assert err.value.component == "kube-apiserver"
    assert "already in use" in str(err.value)
    assert str(tmp_path / "logs" / "kube-apiserver.log") in str(err.value)
    assert not processes_mentioning(str(tmp_path))  # etcd, started first, was stopped too


# --- what the real components enforce --------------------------------------------------------


@pytest.mark.cluster
def test_rbac_is_enforced_for_service_account_tokens(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    kubeconfig = tmp_path / "nobody.kubeconfig"
    write_token_kubeconfig(control_plane, kubeconfig, namespace=namespace, service_account="nobody")
    kubectl = find_kubectl()

    def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    denied = as_nobody("get", "pods", "-n", namespace)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f"system:serviceaccount:{namespace}:nobody" in denied.stderr

    # Control: the same token works once RBAC allows it, so the denial above was authorization.
    control_plane.kubectl(
        "create", "rolebinding", "nobody-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:nobody", "-n", namespace,
    )  # fmt: skip
    wait_for(
        "RBAC to allow listing pods",
        lambda: as_nobody("get", "pods", "-n", namespace).returncode == 0,
    )


@pytest.mark.cluster
def test_pod_security_restricted_rejects_privileged_pods(
    control_plane: Cluster, namespace: str
) -> None:
    control_plane.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )

    def pod(name: str, security: dict[str, Any], pod_security: dict[str, Any]) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "securityContext": pod_security,
                    "containers": [{"name": "c", "image": "x", "securityContext": security}],
                },
            }
        )

    rejected = control_plane.kubectl(
        "create", "-f", "-", input=pod("privileged", {"privileged": True}, {}), check=False
    )
    assert rejected.returncode != 0
    assert 'violates PodSecurity "restricted' in rejected.stderr
    restricted_ok = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    pod_ok = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    control_plane.kubectl("create", "-f", "-", input=pod("compliant", restricted_ok, pod_ok))


# --- kwok runner outcomes through the real Job controller ------------------------------------


@pytest.mark.cluster
def test_runner_outcomes(control_plane: Cluster, namespace: str) -> None:
    """All outcomes at once (they run concurrently, so the test takes as long as the slowest)."""
    k = control_plane.kubectl
    jobs = {
        "default": runner_job("default"),
        "slow": runner_job("slow", {"TESTENV_RUNNER_DURATION": "3s"}),
        "exit-2": runner_job("exit-2", {"TESTENV_RUNNER_OUTCOME": "exit-2"}),
        "exit-1": runner_job("exit-1", {"TESTENV_RUNNER_OUTCOME": "exit-1"}),
        "pull": runner_job("pull", {"TESTENV_RUNNER_OUTCOME": "image-pull-error"}),
        "forever": runner_job("forever", {"TESTENV_RUNNER_OUTCOME": "run-forever"}),
        "typo": runner_job("typo", {"TESTENV_RUNNER_OUTCOME": "exit-two"}),
        # The variable only counts on the runner container; a plain Job pod just runs.
        "other": runner_job("other", {"TESTENV_RUNNER_OUTCOME": "exit-2"}, container="main"),
    }
    for manifest in jobs.values():
        k("create", "-n", namespace, "-f", "-", input=manifest)

    assert wait_for("default job", lambda: job_condition(control_plane, namespace, "default")) == (
        "Complete"
    )
    (pod,) = job_pods(control_plane, namespace, "default")
    assert pod["status"]["phase"] == "Succeeded"
    assert runner_state(pod)["terminated"]["exitCode"] == 0

    for name, code in (("exit-2", 2), ("exit-1", 1)):
        condition = functools.partial(job_condition, control_plane, namespace, name)
        assert wait_for(name, condition) == "Failed"
        (pod,) = job_pods(control_plane, namespace, name)
        assert pod["status"]["phase"] == "Failed"
        terminated = runner_state(pod)["terminated"]
        assert terminated["exitCode"] == code
        assert terminated["reason"] == "Error"
        assert terminated["message"] == "runner failed on purpose"

    def waiting_reason(job: str) -> str | None:
        pods = job_pods(control_plane, namespace, job)
        return runner_state(pods[0]).get("waiting", {}).get("reason") if pods else None

    wait_for("ImagePullBackOff", lambda: waiting_reason("pull") == "ImagePullBackOff")
    wait_for("unknown outcome reported", lambda: waiting_reason("typo") == "TestenvUnknownOutcome")

    assert wait_for("slow job", lambda: job_condition(control_plane, namespace, "slow")) == (
        "Complete"
    )
    (slow,) = job_pods(control_plane, namespace, "slow")
    terminated = runner_state(slow)["terminated"]
    ran = dt.datetime.fromisoformat(terminated["finishedAt"]) - dt.datetime.fromisoformat(
        terminated["startedAt"]
    )
    assert ran >= dt.timedelta(seconds=2), ran  # 3s, at one-second timestamp resolution

    # After the others have finished, the run-forever, pull-error and non-runner pods have not.
    for name, phase in (("forever", "Running"), ("other", "Running"), ("pull", "Pending")):
        (pod,) = job_pods(control_plane, namespace, name)
        assert pod["status"]["phase"] == phase, name
        assert job_condition(control_plane, namespace, name) is None
    (pull,) = job_pods(control_plane, namespace, "pull")
    assert "image pull fails on purpose" not in json.dumps(runner_state(pull))  # now back-off
    assert "Back-off pulling image" in runner_state(pull)["waiting"]["message"]


@pytest.mark.cluster
def test_foreground_deletion_removes_running_pods(control_plane: Cluster, namespace: str) -> None:
    k = control_plane.kubectl
    k(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=runner_job("fg", {"TESTENV_RUNNER_OUTCOME": "run-forever"}),
    )
    wait_for(
        "runner pod Running",
        lambda: [
            p
            for p in job_pods(control_plane, namespace, "fg")
            if p["status"].get("phase") == "Running"
        ],
    )
    k("delete", "job", "fg", "-n", namespace, "--cascade=foreground", "--timeout=30s")
    assert k("get", "job", "fg", "-n", namespace, check=False).returncode != 0
    assert job_pods(control_plane, namespace, "fg") == []


@pytest.mark.cluster
def test_ttl_after_finished_deletes_the_job(control_plane: Cluster, namespace: str) -> None:
    control_plane.kubectl("create", "-n", namespace, "-f", "-", input=runner_job("ttl", ttl=0))

    def gone() -> bool:
        result = control_plane.kubectl("get", "job", "ttl", "-n", namespace, check=False)
        return result.returncode != 0 and "NotFound" in result.stderr

    wait_for("the finished Job to be deleted by its TTL", gone)
    wait_for(
        "its pod to be garbage collected", lambda: job_pods(control_plane, namespace, "ttl") == []
    )


@pytest.mark.cluster
def test_restart_apiserver_keeps_state(control_plane: Cluster, namespace: str) -> None:
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("restart_apiserver needs the local control plane")
    old_pid = control_plane.pids()["kube-apiserver"]
    port = control_plane.ports["kube-apiserver"]
    control_plane.restart_apiserver()
    assert control_plane.pids()["kube-apiserver"] != old_pid
    assert control_plane.ports["kube-apiserver"] == port
    control_plane.kubectl("get", "namespace", namespace)  # state survived (etcd kept running)


# --- shutdown --------------------------------------------------------------------------------


@pytest.mark.cluster
def test_stop_leaves_no_processes_and_frees_ports(tmp_path: Path) -> None:
    cp = ControlPlane(workdir=tmp_path / "cp", nodes=1)
    with cp:
        pids = cp.pids()
        ports = dict(cp.ports)
        assert set(pids) == set(COMPONENTS)
        assert all(port_is_listening(p) for n, p in ports.items() if n != "etcd-peer")
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), pid
    assert not processes_mentioning(str(tmp_path / "cp"))
    for port in ports.values():
        assert not port_is_listening(port)
        with socket.create_server(("127.0.0.1", port)):  # binds: the port is free again
            pass
    assert not (tmp_path / "cp" / "etcd-data").exists()


# The child takes Ctrl-C as a terminal's foreground process does, whatever it inherited: a shell
# starts background jobs (CI runners among them) with SIGINT ignored, and Python keeps that.
_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path[:0] = {paths!r}
from testenv.controlplane import ControlPlane
cp = ControlPlane(workdir={workdir!r}, nodes=1)
cp.start()
print("READY", flush=True)
time.sleep(600)
"""


@pytest.mark.cluster
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_owner_leaves_no_processes(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (SIGINT -> atexit), SIGTERM (our handler) and SIGKILL (PR_SET_PDEATHSIG)."""
    workdir = tmp_path / "cp"
    code = _CHILD.format(paths=[str(REPO_ROOT / "src"), str(REPO_ROOT)], workdir=str(workdir))
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("READY"):
                break
        assert processes_mentioning(str(workdir)), "".join(lines)
        child.send_signal(sig)
        child.wait(timeout=30)
        wait_for("components to exit", lambda: not processes_mentioning(str(workdir)), timeout=15)
        # SIGINT/SIGTERM go through ControlPlane.stop() (which removes the etcd data); SIGKILL can
        # only rely on the kernel's parent-death signal, so the data stays behind.
        assert (workdir / "etcd-data").exists() == (sig == signal.SIGKILL)
    finally:
        child.kill()
        child.wait()


# --- OperatorProcess (with a stand-in for the operator) --------------------------------------

_STAND_IN = """
import base64, http.server, json, signal, ssl, sys, threading, urllib.request

args = sys.argv[1:]
config = json.load(open(args[args.index("--kubeconfig") + 1]))
probe = next(a.split("=", 1)[1] for a in args if a.startswith("--health-probe-bind-address="))
cluster = config["clusters"][0]["cluster"]
ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
review = urllib.request.Request(
    cluster["server"] + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}',
    headers={
        "Authorization": "Bearer " + config["users"][0]["user"]["token"],
        "Content-Type": "application/json",
    },
    method="POST",
)
with urllib.request.urlopen(review, context=ssl.create_default_context(cadata=ca)) as resp:
    print("authenticated as", json.load(resp)["status"]["userInfo"]["username"], flush=True)


class Probe(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = probe.rsplit(":", 1)
server = http.server.HTTPServer((host, int(port)), Probe)


def drain(*_):
    print("draining", flush=True)
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, drain)
server.serve_forever()
"""


@pytest.mark.cluster
def test_operator_process_runs_as_its_service_account(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "stand-in", "-n", namespace)
    script = tmp_path / "stand_in.py"
    script.write_text(_STAND_IN)
    proc = OperatorProcess(
        control_plane,
        ["--leader-elect"],
        {"EXAMPLE": "1"},
        namespace=namespace,
        service_account="stand-in",
        command=[sys.executable, str(script)],
    )
    with proc:
        assert proc in REGISTRY
        proc.wait_ready(timeout=30)
        assert f"authenticated as system:serviceaccount:{namespace}:stand-in" in proc.log_text()
        assert oct(proc.kubeconfig.stat().st_mode & 0o777) == "0o600"
        token = json.loads(proc.kubeconfig.read_text())["users"][0]["user"]["token"]
        assert token not in proc.log_text()  # the command line names the file, not the token
        assert proc.is_ready()
        assert proc.stop() == 0  # SIGTERM: the stand-in drains and exits 0
    assert "draining" in proc.log_text()

    proc.restart()
    proc.wait_ready(timeout=30)
    assert proc.kill() == -signal.SIGKILL
    assert not proc.is_ready()


@pytest.mark.cluster
def test_operator_process_exiting_early_reports_its_log(
    control_plane: Cluster, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("create", "serviceaccount", "stand-in", "-n", namespace)
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('cannot start: bad flag', flush=True)\nsys.exit(3)\n")
    proc = OperatorProcess(
        control_plane,
        namespace=namespace,
        service_account="stand-in",
        command=[sys.executable, str(script)],
    ).start()
    with pytest.raises(OperatorProcessError) as err:
        proc.wait_ready(timeout=30)
    assert "exited (code 3)" in str(err.value)
    assert "cannot start: bad flag" in str(err.value)
