"""The container image, built from the Dockerfile, runs the operator against the real API server.

The image is built by ``testenv/image/build-image.sh`` (buildah, no Docker engine; a Debian
bookworm stand-in for ``python:3.11-slim``, see that script) unless ``AGENTIC_OPERATOR_IMAGE``
names one that is already built, and run with podman on the host network under the operator's
ServiceAccount token, with the image's own ENTRYPOINT and USER. Building needs root and apt; a
machine without them skips this module, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess, write_token_kubeconfig

from tests.e2e.helpers import create, get_json, runner_secret, session, wait_for, wait_phase

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "testenv" / "image" / "build-image.sh"
DEFAULT_IMAGE = "localhost/agentic-operator:dev"


def _cannot_build_reason() -> str | None:
    if os.geteuid() != 0:
        return "building the image needs root (buildah, debootstrap)"
    if shutil.which("apt-get") is None:
        return "building the image needs apt-get to install buildah and podman"
    return None


@pytest.fixture(scope="session")
def operator_image() -> str:
    """A built image: ``AGENTIC_OPERATOR_IMAGE`` as given, or built from this checkout."""
    given = os.environ.get("AGENTIC_OPERATOR_IMAGE")
    if given:
        return given
    reason = _cannot_build_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test the image, but {reason}", pytrace=False)
        pytest.skip(f"{reason}; set AGENTIC_OPERATOR_IMAGE to test a prebuilt image")
    result = subprocess.run(
        [str(BUILD_SCRIPT)],
        env={**os.environ, "IMAGE": DEFAULT_IMAGE},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{BUILD_SCRIPT.name} failed ({result.returncode}):\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return DEFAULT_IMAGE


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"agentic-operator-test-{uuid.uuid4().hex[:8]}"
    yield name
    _podman("rm", "--force", "--time", "5", name)


def test_image_runs_the_operator(
    deployed: Cluster,
    namespace: str,
    operator_image: str,
    container_name: str,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    nofile = subprocess.run(
        ["bash", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True
    ).stdout.strip()
    command = [
        "podman",
        "run",
        "--rm",
        "--name",
        container_name,
        "--pull=never",
        "--network=host",
        # crun refuses this machine's hybrid cgroup layout, and podman's default rlimits exceed
        # the host's hard limits (see testenv/image/build-image.sh).
        "--runtime=runc",
        f"--ulimit=nofile={nofile}:{nofile}",
        "--ulimit=nproc=4096:4096",
        # The minted kubeconfig, at the same path, owned by the container's user (the U option).
        "--volume={kubeconfig}:{kubeconfig}:ro,U",
        "--env=NAMESPACE=ambient-code",
        operator_image,
    ]
    proc = start_operator(name="image-operator", wait_ready=False, command=command)
    proc.wait_ready(timeout=90)

    # The operator in the container runs as the image's USER, 1001.
    uid = _podman("exec", container_name, "id", "-u")
    assert (uid.returncode, uid.stdout.strip()) == (0, "1001"), uid.stderr
    top = _podman("top", container_name, "user", "args")
    assert top.returncode == 0, top.stderr
    rows = [line.split(maxsplit=1) for line in top.stdout.splitlines()[1:] if line.strip()]
    assert any("/opt/venv/bin/agentic-operator --kubeconfig" in args for _, args in rows), (
        top.stdout
    )
    assert {user for user, _ in rows} == {"operator"}, top.stdout

    runner_secret(deployed, namespace)
    create(deployed, session("from-image", namespace, duration="1s"))
    wait_phase(deployed, namespace, "from-image", "Completed", timeout=120)


def _pod_credentials(cluster: Cluster, namespace: str, directory: Path) -> tuple[str, str]:
    """What the kubelet mounts into a pod of ``ambient-session-trigger``: ``token`` and
    ``ca.crt`` in ``directory``; returns the API server's host and port."""
    kubeconfig = directory / "kubeconfig"
    write_token_kubeconfig(
        cluster, kubeconfig, namespace=namespace, service_account="ambient-session-trigger"
    )
    config = json.loads(kubeconfig.read_text())
    entry = config["clusters"][0]["cluster"]
    if "certificate-authority-data" in entry:
        ca = base64.b64decode(entry["certificate-authority-data"])
    else:
        ca = Path(entry["certificate-authority"]).read_bytes()
    (directory / "token").write_text(config["users"][0]["user"]["token"])
    (directory / "ca.crt").write_bytes(ca)
    kubeconfig.unlink()
    host, _, port = entry["server"].removeprefix("https://").rpartition(":")
    return host, port


def test_image_runs_session_trigger_as_the_cronjob_pods_do(
    deployed: Cluster,
    namespace: str,
    operator_image: str,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    start_operator()

    def rbac_ready() -> bool:
        ps = get_json(deployed, "projectsettings", "projectsettings", "-n", namespace) or {}
        return bool((ps.get("status") or {}).get("scheduledSessionRBACReady"))

    wait_for("scheduledSessionRBACReady", rbac_ready)
    secrets = tmp_path / "serviceaccount"
    secrets.mkdir()
    host, port = _pod_credentials(deployed, namespace, secrets)
    template = {"initialPrompt": "nightly", "displayName": "Nightly"}
    nofile = subprocess.run(
        ["bash", "-c", "ulimit -Hn"], capture_output=True, text=True, check=True
    ).stdout.strip()
    # As in the backend's CronJob: the command ./operator session-trigger (relative to the
    # image's working directory), no flags, the image's USER, in-cluster credentials.
    result = _podman(
        "run",
        "--rm",
        "--pull=never",
        "--network=host",
        "--runtime=runc",
        f"--ulimit=nofile={nofile}:{nofile}",
        "--ulimit=nproc=4096:4096",
        f"--volume={secrets}:/var/run/secrets/kubernetes.io/serviceaccount:ro,U",
        f"--env=KUBERNETES_SERVICE_HOST={host}",
        f"--env=KUBERNETES_SERVICE_PORT={port}",
        f"--env=SESSION_TEMPLATE={json.dumps(template)}",
        f"--env=PROJECT_NAMESPACE={namespace}",
        "--env=SCHEDULED_SESSION_NAME=schedule-image",
        "--env=REUSE_LAST_SESSION=false",
        "--entrypoint=./operator",
        operator_image,
        "session-trigger",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "session-trigger: created session nightly-" in result.stdout
    made = get_json(
        deployed,
        "agenticsessions",
        "-n",
        namespace,
        "-l",
        "ambient-code.io/scheduled-session-name=schedule-image",
    )
    assert len((made or {}).get("items") or []) == 1
