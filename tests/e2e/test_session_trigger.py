"""``agentic-operator session-trigger`` as a process, authenticated as the namespace's
``ambient-session-trigger`` ServiceAccount (so the Role the operator made is what the API server
enforces), against the real control plane; the backend's AG-UI endpoint is a local fake that
checks the bearer token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess, write_token_kubeconfig

from tests.e2e.helpers import (
    Obj,
    create,
    get_json,
    get_session,
    runner_secret,
    session,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

SCHEDULE = "schedule-5d1c0a9e"
LABEL = "ambient-code.io/scheduled-session-name"
# What the backend writes into SESSION_TEMPLATE: the create-session request with userContext and
# displayName injected (runnerType and labels are request-only keys the CRD prunes).
TEMPLATE: Obj = {
    "initialPrompt": "Summarise yesterday's failed builds",
    "displayName": "Nightly build report",
    "llmSettings": {"model": "claude-sonnet-4-6", "temperature": 0.7, "maxTokens": 4000},
    "timeout": 300,
    "repos": [{"url": "https://github.com/example/app.git", "branch": "main"}],
    "userContext": {"userId": "alice", "displayName": "Alice"},
    "runnerType": "claude-agent-sdk",
    "labels": {"team": "build"},
}


@pytest.fixture
def trigger_identity(
    deployed: Cluster,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> Path:
    """A kubeconfig as ``ambient-session-trigger`` once the operator made its RBAC; the
    operator is then stopped, so only the trigger changes the sessions."""
    proc = start_operator()

    def ready() -> bool:
        ps = get_json(deployed, "projectsettings", "projectsettings", "-n", namespace) or {}
        return bool((ps.get("status") or {}).get("scheduledSessionRBACReady"))

    wait_for("scheduledSessionRBACReady", ready)
    proc.stop()
    path = tmp_path / "trigger.kubeconfig"
    write_token_kubeconfig(
        deployed, path, namespace=namespace, service_account="ambient-session-trigger"
    )
    return path


def run_trigger(kubeconfig: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG",) and not k.startswith("SESSION_")
    }
    return subprocess.run(
        [sys.executable, "-m", "agentic_operator", "session-trigger"],
        env={**base, "KUBECONFIG": str(kubeconfig), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def trigger_env(namespace: str, template: Obj | None = None, **extra: str) -> dict[str, str]:
    return {
        "SESSION_TEMPLATE": json.dumps(TEMPLATE if template is None else template),
        "PROJECT_NAMESPACE": namespace,
        "SCHEDULED_SESSION_NAME": SCHEDULE,
        **extra,
    }


def runs(cluster: Cluster, namespace: str) -> list[Obj]:
    out = get_json(cluster, "agenticsessions", "-n", namespace, "-l", f"{LABEL}={SCHEDULE}") or {}
    return list(out.get("items") or [])


def token_of(kubeconfig: Path) -> str:
    token: str = json.loads(kubeconfig.read_text())["users"][0]["user"]["token"]
    return token


def test_creates_a_session_from_the_backends_template(
    deployed: Cluster, namespace: str, trigger_identity: Path
) -> None:
    r = run_trigger(trigger_identity, **trigger_env(namespace))
    assert r.returncode == 0, r.stderr
    [made] = runs(deployed, namespace)
    name = made["metadata"]["name"]
    assert r.stdout.strip() == f"session-trigger: created session {name} in {namespace}"
    prefix, _, stamp = name.rpartition("-")
    assert (prefix, stamp.isdigit()) == ("nightly-build-report", True)
    assert made["metadata"]["labels"]["ambient-code.io/scheduled-run"] == "true"
    spec = made["spec"]
    assert spec["displayName"].startswith("Nightly build report (")
    assert spec["initialPrompt"] == TEMPLATE["initialPrompt"]
    assert spec["userContext"] == TEMPLATE["userContext"]
    assert spec["repos"][0]["url"] == TEMPLATE["repos"][0]["url"]
    # Request-only keys are not part of the CRD: the API server pruned them.
    assert "runnerType" not in spec
    assert "labels" not in spec


def _session(cluster: Cluster, namespace: str, name: str, phase: str, created_order: int) -> None:
    create(
        cluster,
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "AgenticSession",
            "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: SCHEDULE}},
            "spec": {"initialPrompt": f"run {created_order}"},
        },
    )
    cluster.kubectl(
        "patch",
        "agenticsession",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": phase}}),
    )


class FakeBackend:
    """``POST /api/projects/<ns>/agentic-sessions/<s>/agui/run``: 200 with the right bearer
    token, 401 otherwise; every request is recorded."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str | None, Obj]] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                auth = self.headers.get("Authorization")
                backend.requests.append((self.path, auth, body))
                self.send_response(200 if auth == f"Bearer {backend.token}" else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend(trigger_identity: Path) -> Iterator[FakeBackend]:
    with FakeBackend(token_of(trigger_identity)) as fake:
        yield fake


def test_reuses_a_running_session_through_the_backend(
    deployed: Cluster, namespace: str, trigger_identity: Path, backend: FakeBackend
) -> None:
    # Both may carry the same creationTimestamp (one-second resolution): the later name wins a
    # tie, so "run-2" is the newest either way.
    _session(deployed, namespace, "run-1", "Stopped", 1)
    _session(deployed, namespace, "run-2", "Running", 2)
    env = trigger_env(namespace, REUSE_LAST_SESSION="true", BACKEND_API_URL=backend.url)
    r = run_trigger(trigger_identity, **env)
    assert r.returncode == 0, r.stderr
    assert "sent the prompt to running session run-2" in r.stdout
    [(path, auth, body)] = backend.requests
    assert path == f"/api/projects/{namespace}/agentic-sessions/run-2/agui/run"
    assert auth == f"Bearer {token_of(trigger_identity)}"
    assert body["threadId"] == "run-2"
    assert body["messages"][0]["content"] == TEMPLATE["initialPrompt"]
    assert len(runs(deployed, namespace)) == 2  # nothing created

    backend.token = "not-the-pods-token"  # the backend refuses: the trigger fails, clearly
    r = run_trigger(trigger_identity, **env)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "session-trigger: error: the backend answered HTTP 401 to the follow-up for run-2"
    )


def test_restarts_a_stopped_session_with_force_execute_prompt(
    deployed: Cluster, namespace: str, trigger_identity: Path
) -> None:
    _session(deployed, namespace, "latest", "Stopped", 1)
    r = run_trigger(trigger_identity, **trigger_env(namespace, REUSE_LAST_SESSION="true"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "session-trigger: restarted session latest"
    s = get_session(deployed, namespace, "latest") or {}
    ann = s["metadata"]["annotations"]
    assert ann["ambient-code.io/desired-phase"] == "Running"
    assert ann["ambient-code.io/force-execute-prompt"] == "true"
    assert ann["ambient-code.io/start-requested-at"].endswith("Z")
    assert s["spec"]["initialPrompt"] == TEMPLATE["initialPrompt"]
    assert len(runs(deployed, namespace)) == 1


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"SESSION_TEMPLATE": ""}, 2, "SESSION_TEMPLATE is required"),
        ({"SESSION_TEMPLATE": "{oops"}, 2, "SESSION_TEMPLATE is not JSON"),
        ({"SESSION_TEMPLATE": '"a string"'}, 2, "must be a JSON object"),
        ({"PROJECT_NAMESPACE": ""}, 2, "PROJECT_NAMESPACE is required"),
        ({"SCHEDULED_SESSION_NAME": "not a label"}, 2, "not a valid label value"),
        ({"REUSE_LAST_SESSION": "perhaps"}, 2, "REUSE_LAST_SESSION"),
        # Valid JSON the CRD refuses: the API server says no, nothing is created.
        (
            {"SESSION_TEMPLATE": '{"initialPrompt": "x", "timeout": "soon"}'},
            1,
            "create the session",
        ),
        # Another namespace: the trigger's Role does not reach it.
        ({"PROJECT_NAMESPACE": "default"}, 1, "forbidden"),
    ],
)
def test_bad_input_fails_cleanly_and_creates_nothing(
    deployed: Cluster,
    namespace: str,
    trigger_identity: Path,
    change: dict[str, str],
    code: int,
    message: str,
) -> None:
    r = run_trigger(trigger_identity, **{**trigger_env(namespace), **change})
    assert r.returncode == code
    assert r.stdout == ""
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("session-trigger: error: ")
    assert message in line
    assert runs(deployed, namespace) == []
    assert token_of(trigger_identity) not in r.stderr


def test_a_restarted_run_executes_the_new_prompt(
    deployed: Cluster,
    namespace: str,
    start_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    """With the operator running: the restart's run gets IS_RESUME=false (force-execute-prompt),
    and the annotation is spent once that run's Job exists."""
    start_operator()
    runner_secret(deployed, namespace)
    body = session("nightly-1", namespace, duration="1s")
    body["metadata"]["labels"] = {LABEL: SCHEDULE}
    create(deployed, body)
    wait_phase(deployed, namespace, "nightly-1", "Completed", timeout=90)
    # The second run's runner never exits, so its Job stays to be looked at (a run that ends at
    # once has its Job deleted seconds later, faster than a loaded machine's kubectl polls).
    forever = {"TESTENV_RUNNER_OUTCOME": "run-forever", "TESTENV_RUNNER_DURATION": None}
    deployed.kubectl(
        "patch", "agenticsession", "nightly-1", "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"environmentVariables": forever}}),
    )  # fmt: skip

    def rbac_ready() -> bool:
        ps = get_json(deployed, "projectsettings", "projectsettings", "-n", namespace) or {}
        return bool((ps.get("status") or {}).get("scheduledSessionRBACReady"))

    wait_for("scheduledSessionRBACReady", rbac_ready)
    kubeconfig = tmp_path / "trigger.kubeconfig"
    write_token_kubeconfig(
        deployed, kubeconfig, namespace=namespace, service_account="ambient-session-trigger"
    )
    r = run_trigger(kubeconfig, **trigger_env(namespace, REUSE_LAST_SESSION="true"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "session-trigger: restarted session nightly-1"

    def second_run_job() -> Obj | None:
        job = get_json(deployed, "job", "nightly-1-job", "-n", namespace) or {}
        annotations = (job.get("metadata") or {}).get("annotations") or {}
        return job if annotations.get("ambient-code.io/run") == "2" else None

    job = wait_for("the second run's Job", second_run_job, timeout=60)
    [runner] = [
        c
        for c in job["spec"]["template"]["spec"]["containers"]
        if c["name"] == "ambient-code-runner"
    ]
    env = {e["name"]: e.get("value") for e in runner["env"]}
    assert env["IS_RESUME"] == "false"
    assert env["TESTENV_RUNNER_OUTCOME"] == "run-forever"  # rebuilt from the spec of now

    def spent() -> bool:
        s = get_session(deployed, namespace, "nightly-1") or {}
        ann = s["metadata"].get("annotations") or {}
        return "ambient-code.io/force-execute-prompt" not in ann

    wait_for("force-execute-prompt cleared", spent)
    s = get_session(deployed, namespace, "nightly-1") or {}
    assert s["spec"]["initialPrompt"] == TEMPLATE["initialPrompt"]
