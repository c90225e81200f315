"""Session lifecycle paths, end to end: the operator process (under its shipped RBAC) against the
real API server, Job controller, garbage collector and kwok-driven runner pods."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    Obj,
    annotate,
    condition,
    create,
    events_for,
    exists,
    get_json,
    get_session,
    phase_of,
    runner_secret,
    secret,
    session,
    wait_condition,
    wait_for,
    wait_phase,
    wait_run,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
WF = "https://example.com/org/wf.git"  # the schema admits only cloneable URL forms


@pytest.fixture
def operator(start_operator: StartOperator) -> OperatorProcess:
    return start_operator(env={"PENDING_TIMEOUT": "60"})


def test_session_completes_and_cleans_up(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("ok", namespace, duration="2s"))

    job = wait_for("the runner Job", lambda: get_json(deployed, "job", "ok-job", "-n", namespace))
    # The Job model: one pod, never retried, owned by the session, no deadline (sessions run
    # until they are stopped; MAX_SESSION_DURATION is off by default).
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in spec
    assert job["metadata"]["annotations"]["ambient-code.io/run"] == "1"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("AgenticSession", "ok", True)
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["automountServiceAccountToken"] is False
    runner = pod_spec["containers"][0]
    assert runner["name"] == "ambient-code-runner"
    env = {e["name"]: e for e in runner["env"]}
    assert env["AGENTIC_SESSION_NAME"]["value"] == "ok"
    assert env["IS_RESUME"]["value"] == "false"
    # The runner's API token is a file of the token Secret (refreshed in place), its AG-UI token
    # a reference to the same Secret; neither is a plain value.
    assert "BOT_TOKEN" not in env
    ref = env["AGUI_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("ambient-runner-token-ok", "agui-token")
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["runner-token"]["secret"]["secretName"] == "ambient-runner-token-ok"

    wait_phase(deployed, namespace, "ok", "Running", "Completed")
    done = wait_phase(deployed, namespace, "ok", "Completed")
    st = done["status"]
    assert st["run"] == 1
    assert st["startTime"] <= st["completionTime"]
    # The spec is the user's: the end of a run does not rewrite it (today's platform no longer
    # turns a batch session interactive), so the generation the status observes is the first.
    assert done["spec"]["interactive"] is False
    assert done["metadata"]["generation"] == 1
    assert st["observedGeneration"] == done["metadata"]["generation"]
    assert condition(done, "Ready")["reason"] == "Completed"
    assert condition(done, "JobCreated")["status"] == "True"
    assert condition(done, "RunnerStarted")["status"] == "True"

    # A finished run deletes its Job, and the garbage collector its Service with it; the runner
    # identity stays until deletion.
    wait_for("Job deleted", lambda: not exists(deployed, "job", "ok-job", namespace))
    wait_for("Service collected", lambda: not exists(deployed, "service", "session-ok", namespace))
    token = get_json(deployed, "secret", "ambient-runner-token-ok", "-n", namespace)
    assert token is not None
    assert token["data"]["k8s-token"]
    for kind, name in (
        ("serviceaccount", "ambient-session-ok"),
        ("role", "ambient-session-ok-role"),
        ("rolebinding", "ambient-session-ok-rb"),
    ):
        assert exists(deployed, kind, name, namespace), kind

    reasons = [e["reason"] for e in events_for(deployed, namespace, "ok")]
    for reason in ("Pending", "Creating", "Completed"):
        assert reason in reasons


def test_a_token_secret_left_from_before_is_replaced_on_the_first_run(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    # The first run skips the token Secret's GET; a Secret that exists anyway (an operator that
    # died after creating it, or a leftover) must be found through the create's AlreadyExists.
    runner_secret(deployed, namespace)
    secret(deployed, namespace, "ambient-runner-token-left", **{"k8s-token": "stale"})
    create(deployed, session("left", namespace, duration="500ms"))
    wait_phase(deployed, namespace, "left", "Completed")
    token = get_json(deployed, "secret", "ambient-runner-token-left", "-n", namespace)
    assert token is not None
    assert base64.b64decode(token["data"]["k8s-token"]) not in (b"", b"stale")
    owner = token["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("AgenticSession", "left")


@pytest.mark.parametrize(
    ("outcome", "reason", "message_part"),
    [
        ("exit-2", "PrerequisiteFailed", ""),
        ("exit-1", "RunnerExit", "runner failed on purpose"),
        ("image-pull-error", "ErrImagePull|ImagePullBackOff", ""),
    ],
)
def test_runner_failures_mark_the_session_failed(
    deployed: Cluster,
    namespace: str,
    operator: OperatorProcess,
    outcome: str,
    reason: str,
    message_part: str,
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("bad", namespace, outcome=outcome, duration="500ms"))
    failed = wait_phase(deployed, namespace, "bad", "Failed", "Completed")
    assert failed["status"]["phase"] == "Failed"
    ready = condition(failed, "Ready")
    assert ready["reason"] in reason.split("|")
    assert message_part in ready.get("message", "")
    assert failed["status"].get("completionTime")
    assert failed["spec"]["interactive"] is False
    warnings = [e for e in events_for(deployed, namespace, "bad") if e["type"] == "Warning"]
    assert any(e["reason"] == ready["reason"] for e in warnings)
    wait_for("Job deleted", lambda: not exists(deployed, "job", "bad-job", namespace))


def test_the_optional_ceiling_is_enforced_by_the_job_deadline(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(env={"MAX_SESSION_DURATION": "3"})
    runner_secret(deployed, namespace)
    create(deployed, session("slow", namespace, outcome="run-forever", timeout=300))
    job = wait_for("Job", lambda: get_json(deployed, "job", "slow-job", "-n", namespace))
    assert job["spec"]["activeDeadlineSeconds"] == 3, "the ceiling, not spec.timeout"
    failed = wait_phase(deployed, namespace, "slow", "Failed", timeout=40)
    assert condition(failed, "Ready")["reason"] == "Timeout"


def test_pending_timeout_when_the_runner_secret_never_appears(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(env={"PENDING_TIMEOUT": "5"})
    create(deployed, session("nosecret", namespace))
    waiting = wait_condition(deployed, namespace, "nosecret", "SecretsReady", "False")
    assert condition(waiting, "SecretsReady")["reason"] == "RunnerSecretMissing"
    assert waiting["status"]["phase"] == "Pending"
    failed = wait_phase(deployed, namespace, "nosecret", "Failed", timeout=30)
    assert condition(failed, "Ready")["reason"] == "PendingTimeout"
    assert not exists(deployed, "job", "nosecret-job", namespace)


@pytest.mark.parametrize(
    ("from_phase", "outcome", "with_secret"),
    [
        ("Pending", "run-forever", False),  # no runner secret: the run cannot start
        ("Creating", "stay-pending", True),  # the pod never starts its container
        ("Running", "run-forever", True),
    ],
)
def test_stop_from_each_phase(
    deployed: Cluster,
    namespace: str,
    operator: OperatorProcess,
    from_phase: str,
    outcome: str,
    with_secret: bool,
) -> None:
    if with_secret:
        runner_secret(deployed, namespace)
    create(deployed, session("stopme", namespace, outcome=outcome))
    wait_phase(deployed, namespace, "stopme", from_phase)
    annotate(
        deployed,
        namespace,
        "stopme",
        "ambient-code.io/desired-phase=Stopped",
        "ambient-code.io/stop-requested-at=2026-01-01T00:00:00Z",
    )
    stopped = wait_phase(deployed, namespace, "stopme", "Stopped")
    assert condition(stopped, "Ready")["reason"] == "UserStopped"
    assert stopped["status"].get("completionTime")

    def annotations() -> set[str]:
        s = get_session(deployed, namespace, "stopme") or {}
        return set((s.get("metadata") or {}).get("annotations") or {})

    wait_for(
        "stop annotations cleared",
        lambda: (
            not {"ambient-code.io/desired-phase", "ambient-code.io/stop-requested-at"}
            & annotations()
        ),
    )
    assert not exists(deployed, "job", "stopme-job", namespace)
    assert not exists(deployed, "service", "session-stopme", namespace)
    assert not _runner_pods(deployed, namespace, "stopme")


def _runner_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, object]]:
    out = get_json(cluster, "pods", "-n", namespace, "-l", f"agentic-session={name}")
    return list((out or {}).get("items") or [])


def test_restart_starts_a_new_run_with_a_new_job(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("again", namespace, duration="500ms"))
    first_job = wait_for("Job", lambda: get_json(deployed, "job", "again-job", "-n", namespace))
    first = wait_phase(deployed, namespace, "again", "Completed")
    wait_for("first Job deleted", lambda: not exists(deployed, "job", "again-job", namespace))
    # Run 2's runner lasts long enough for its Job to be seen before the run ends and the Job
    # goes (a loaded machine's kubectl polls can miss a sub-second run).
    deployed.kubectl(
        "patch", "agenticsession", "again", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"environmentVariables": {"TESTENV_RUNNER_DURATION": "10s"}}}',
    )  # fmt: skip

    annotate(deployed, namespace, "again", "ambient-code.io/desired-phase=Running")
    job = wait_for(
        "Job of run 2",
        lambda: (
            (j := get_json(deployed, "job", "again-job", "-n", namespace))
            and j["metadata"]["annotations"].get("ambient-code.io/run") == "2"
            and j
        ),
    )
    assert job["metadata"]["uid"] != first_job["metadata"]["uid"]
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["IS_RESUME"] == "true"
    assert "INTERACTIVE" not in env  # today's runner does not read it
    second = wait_phase(deployed, namespace, "again", "Completed", timeout=60)
    assert second["status"]["run"] == 2
    assert second["status"]["startTime"] >= first["status"]["completionTime"]
    assert "ambient-code.io/desired-phase" not in (second["metadata"].get("annotations") or {})


def test_deleting_a_session_garbage_collects_everything_it_owns(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("gone", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "gone", "Running")
    owned = [
        ("job", "gone-job"),
        ("service", "session-gone"),
        ("secret", "ambient-runner-token-gone"),
        ("serviceaccount", "ambient-session-gone"),
        ("role", "ambient-session-gone-role"),
        ("rolebinding", "ambient-session-gone-rb"),
    ]
    for kind, name in owned:
        assert exists(deployed, kind, name, namespace), f"{kind}/{name} before deletion"
    # The Service is the run's Job's, with blockOwnerDeletion (a stop's foreground delete of the
    # Job waits for it).
    job, svc = (get_json(deployed, k, n, "-n", namespace) for k, n in owned[:2])
    assert job is not None
    assert svc is not None
    assert svc["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "gone-job",
            "uid": job["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    deployed.kubectl("delete", "agenticsession", "gone", "-n", namespace, "--wait=false")
    for kind, name in owned:

        def collected(kind: str = kind, name: str = name) -> bool:
            return not exists(deployed, kind, name, namespace)

        wait_for(f"{kind}/{name} collected", collected)
    wait_for("runner pods collected", lambda: not _runner_pods(deployed, namespace, "gone"))


def test_unmanaged_namespace_is_ignored_until_labelled(
    deployed: Cluster, unmanaged_namespace: str, operator: OperatorProcess
) -> None:
    ns = unmanaged_namespace
    runner_secret(deployed, ns)
    create(deployed, session("later", ns))
    # Give the operator time to (wrongly) act, then check it did not.
    time.sleep(2)
    assert phase_of(deployed, ns, "later") is None
    assert not exists(deployed, "job", "later-job", ns)
    deployed.kubectl("label", "namespace", ns, "ambient-code.io/managed=true")
    wait_phase(deployed, ns, "later", "Completed")


def test_invalid_spec_fails_with_a_reason_naming_the_field(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("invalid", namespace, env={"1-NOT-A-NAME": "x"}))
    failed = wait_phase(deployed, namespace, "invalid", "Failed")
    ready = condition(failed, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "environmentVariables" in ready["message"]
    assert failed["spec"]["interactive"] is False  # an invalid spec is left as written
    assert not exists(deployed, "job", "invalid-job", namespace)
    # One bad object does not stop the operator: a good session next to it still completes.
    create(deployed, session("fine", namespace))
    wait_phase(deployed, namespace, "fine", "Completed")
    assert operator.alive


def test_user_env_cannot_clobber_the_session_token(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(
        deployed,
        session(
            "env", namespace, outcome="run-forever", env={"AGUI_TOKEN": "stolen", "EXTRA": "1"}
        ),
    )
    job = wait_for("Job", lambda: get_json(deployed, "job", "env-job", "-n", namespace))
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "valueFrom" in env["AGUI_TOKEN"]
    assert "value" not in env["AGUI_TOKEN"]
    assert env["EXTRA"]["value"] == "1"
    wait_for(
        "warning event about the ignored override",
        lambda: any(
            e["reason"] == "EnvironmentOverrideIgnored"
            for e in events_for(deployed, namespace, "env")
        ),
    )


def test_a_vanished_job_starts_a_new_run(
    deployed: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    runner_secret(deployed, namespace)
    create(deployed, session("lost", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "lost", "Running")
    deployed.kubectl("delete", "job", "lost-job", "-n", namespace, "--wait=false")

    again = wait_run(deployed, namespace, "lost", 2, "Running")
    job = get_json(deployed, "job", "lost-job", "-n", namespace)
    assert job is not None
    assert job["metadata"]["annotations"]["ambient-code.io/run"] == "2"
    assert condition(again, "JobCreated")["status"] == "True"
    reasons = [e["reason"] for e in events_for(deployed, namespace, "lost")]
    assert "JobMissing" in reasons


def test_vertex_mode_copies_the_shared_secret_or_fails_clearly(
    deployed: Cluster, namespace: str, unmanaged_namespace: str, start_operator: StartOperator
) -> None:
    backend = unmanaged_namespace
    start_operator(
        env={
            "CLAUDE_CODE_USE_VERTEX": "1",
            "CLOUD_ML_REGION": "global",
            "ANTHROPIC_VERTEX_PROJECT_ID": "example-project",
            "GOOGLE_APPLICATION_CREDENTIALS": "/app/vertex/key.json",
            "BACKEND_NAMESPACE": backend,
        }
    )
    create(deployed, session("novertex", namespace))
    failed = wait_phase(deployed, namespace, "novertex", "Failed")
    assert condition(failed, "Ready")["reason"] == "VertexSecretMissing"
    assert condition(failed, "SecretsReady")["status"] == "False"

    secret(deployed, backend, "ambient-vertex", **{"key.json": "{}"})
    create(deployed, session("vertex", namespace))
    wait_phase(deployed, namespace, "vertex", "Completed")
    copied = get_json(deployed, "secret", "ambient-vertex", "-n", namespace)
    assert copied is not None
    assert copied["metadata"]["annotations"]["vteam.ambient-code/copied-from"] == (
        f"{backend}/ambient-vertex"
    )
    owners = copied["metadata"]["ownerReferences"]
    assert [(o["name"], o["controller"]) for o in owners] == [("vertex", True)]


def test_workspace_pvc_and_oauth_placeholder_are_provisioned_and_kept(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    operator_env = {
        "PENDING_TIMEOUT": "60",
        "RUNNER_WORKSPACE_PVC": "true",
        "GOOGLE_OAUTH_CLIENT_ID": "client-1",
        "GOOGLE_OAUTH_CLIENT_SECRET": "oauth-s3cret",
    }
    first_operator = start_operator(env=operator_env)
    runner_secret(deployed, namespace)
    # A volume for the claim to bind to (the testenv has no provisioner); the scheduler only
    # places a pod whose claims are bound.
    pv = f"pv-{namespace}"[:63]
    create(
        deployed,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/agentic-operator-test"},
                "claimRef": {"namespace": namespace, "name": "ambient-workspace-ws"},
            },
        },
    )
    try:
        create(deployed, session("ws", namespace, duration="500ms"))
        job = wait_for("Job", lambda: get_json(deployed, "job", "ws-job", "-n", namespace))
        pod_spec = job["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        assert volumes["workspace"]["persistentVolumeClaim"] == {
            "claimName": "ambient-workspace-ws"
        }
        oauth_volume = volumes["google-oauth"]["secret"]
        assert (oauth_volume["secretName"], oauth_volume["optional"]) == ("ws-google-oauth", True)
        # The OAuth client secret reaches the runner through its token Secret, never the Job.
        assert "oauth-s3cret" not in json.dumps(job)
        env = {e["name"]: e for e in pod_spec["containers"][0]["env"]}
        assert env["GOOGLE_OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
            "name": "ambient-runner-token-ws",
            "key": "google-oauth-client-secret",
            "optional": False,
        }
        token = get_json(deployed, "secret", "ambient-runner-token-ws", "-n", namespace)
        assert token is not None
        assert base64.b64decode(token["data"]["google-oauth-client-secret"]) == b"oauth-s3cret"
        wait_phase(deployed, namespace, "ws", "Completed", timeout=60)

        pvc = get_json(deployed, "pvc", "ambient-workspace-ws", "-n", namespace)
        assert pvc is not None
        assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
        assert pvc["metadata"]["ownerReferences"][0]["name"] == "ws"
        oauth = get_json(deployed, "secret", "ws-google-oauth", "-n", namespace)
        assert oauth is not None
        assert oauth["metadata"]["labels"]["ambient-code.io/oauth"] == "placeholder"
        assert oauth["metadata"]["ownerReferences"][0]["name"] == "ws"

        # The backend fills the credentials in; a restart keeps them and the same claim.
        creds = base64.b64encode(b'{"token": "t"}').decode()
        deployed.kubectl(
            "patch", "secret", "ws-google-oauth", "-n", namespace,
            "--type=merge", "-p", f'{{"data": {{"credentials.json": "{creds}"}}}}',
        )  # fmt: skip
        annotate(deployed, namespace, "ws", "ambient-code.io/desired-phase=Running")
        wait_run(deployed, namespace, "ws", 2, "Completed")
        oauth = get_json(deployed, "secret", "ws-google-oauth", "-n", namespace)
        assert oauth is not None
        assert oauth["data"]["credentials.json"] == creds
        again = get_json(deployed, "pvc", "ambient-workspace-ws", "-n", namespace)
        assert again is not None
        assert again["metadata"]["uid"] == pvc["metadata"]["uid"]

        # A changed client secret reaches the next run: its token Secret is re-minted with it.
        first_operator.stop()
        start_operator(env={**operator_env, "GOOGLE_OAUTH_CLIENT_SECRET": "rotated"})
        annotate(deployed, namespace, "ws", "ambient-code.io/desired-phase=Running")
        wait_run(deployed, namespace, "ws", 3, "Completed")
        token = get_json(deployed, "secret", "ambient-runner-token-ws", "-n", namespace)
        assert token is not None
        assert base64.b64decode(token["data"]["google-oauth-client-secret"]) == b"rotated"
    finally:
        deployed.kubectl("delete", "pv", pv, "--wait=false", "--ignore-not-found")


def test_operator_settings_shape_the_job_and_langfuse_is_optional(
    deployed: Cluster, namespace: str, unmanaged_namespace: str, start_operator: StartOperator
) -> None:
    backend = unmanaged_namespace
    start_operator(
        env={
            "BACKEND_NAMESPACE": backend,
            "LANGFUSE_ENABLED": "true",
            "AMBIENT_CODE_RUNNER_IMAGE": "registry.example.com/runner:v9",
            "IMAGE_PULL_POLICY": "Always",
            "MAX_SESSION_DURATION": "900",
            "RUNNER_CPU_REQUEST": "250m",
            "RUNNER_MEMORY_LIMIT": "1Gi",
        }
    )
    runner_secret(deployed, namespace)

    # Langfuse is optional: without the shared Secret the session still runs, with nothing copied.
    create(deployed, session("plain", namespace, duration="500ms"))
    job = wait_for("Job", lambda: get_json(deployed, "job", "plain-job", "-n", namespace))
    spec = job["spec"]
    runner = spec["template"]["spec"]["containers"][0]
    assert (runner["image"], runner["imagePullPolicy"]) == (
        "registry.example.com/runner:v9",
        "Always",
    )
    assert spec["activeDeadlineSeconds"] == 900
    assert runner["resources"]["requests"]["cpu"] == "250m"
    assert runner["resources"]["limits"]["memory"] == "1Gi"
    env = {e["name"]: e for e in runner["env"]}
    assert env["TIMEOUT"]["value"] == "300", "spec.timeout's CRD default, not the ceiling"
    assert env["LANGFUSE_HOST"]["valueFrom"]["secretKeyRef"] == {
        "name": "ambient-admin-langfuse-secret",
        "key": "LANGFUSE_HOST",
        "optional": True,
    }
    wait_phase(deployed, namespace, "plain", "Completed")
    assert not exists(deployed, "secret", "ambient-admin-langfuse-secret", namespace)

    # With the shared Secret in the backend namespace, the next session gets its own copy.
    secret(
        deployed,
        backend,
        "ambient-admin-langfuse-secret",
        LANGFUSE_HOST="https://langfuse.example.com",
        LANGFUSE_PUBLIC_KEY="pk",
        LANGFUSE_SECRET_KEY="sk",
    )
    create(deployed, session("traced", namespace, duration="500ms"))
    wait_phase(deployed, namespace, "traced", "Completed")
    copied = get_json(deployed, "secret", "ambient-admin-langfuse-secret", "-n", namespace)
    assert copied is not None
    assert base64.b64decode(copied["data"]["LANGFUSE_HOST"]) == b"https://langfuse.example.com"
    assert copied["metadata"]["annotations"]["vteam.ambient-code/copied-from"] == (
        f"{backend}/ambient-admin-langfuse-secret"
    )


class FakeRunner:
    """The runner's HTTP API on the test host: records each POST, answers ``status``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Obj]] = []
        self.status = 200
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                fake.calls.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
                self.send_response(fake.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_spec_changes_of_a_running_session_reach_its_runner(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    runner = FakeRunner()
    try:
        start_operator(
            env={"RUNNER_ENDPOINT": f"http://127.0.0.1:{runner.port}/{{namespace}}/{{session}}"}
        )
        runner_secret(deployed, namespace)
        base = f"/{namespace}/live"
        a, b = "https://example.com/org/a.git", "https://example.com/org/b.git"
        create(deployed, session("live", namespace, outcome="run-forever", repos=[{"url": a}]))
        wait_phase(deployed, namespace, "live", "Running", timeout=60)
        assert runner.calls == []  # the runner got its repos from REPOS_JSON

        def patch_spec(spec: Obj) -> None:
            deployed.kubectl(
                "patch", "agenticsession", "live", "-n", namespace, "--type=merge",
                "-p", json.dumps({"spec": spec}),
            )  # fmt: skip

        def applied(reason: str) -> Obj:
            def check() -> Obj | None:
                s = get_session(deployed, namespace, "live")
                if (
                    s
                    and condition(s, "Reconciled").get("reason") == reason
                    and s["status"].get("observedGeneration") == s["metadata"]["generation"]
                ):
                    return s
                return None

            result: Obj = wait_for(f"Reconciled {reason}", check, timeout=30)
            return result

        # Added repo and a workflow: only the difference goes to the runner.
        patch_spec({"repos": [{"url": a}, {"url": b}], "activeWorkflow": {"gitUrl": WF}})
        done = applied("SpecApplied")
        assert runner.calls == [
            (f"{base}/repos/add", {"url": b, "branch": "main", "name": "b"}),
            (f"{base}/workflow", {"gitUrl": WF, "branch": "main", "path": ""}),
        ]
        repos = done["status"]["reconciledRepos"]
        assert [(r["url"], r["status"]) for r in repos] == [(a, "Ready"), (b, "Ready")]
        assert done["status"]["reconciledWorkflow"]["status"] == "Active"
        assert condition(done, "ReposReconciled")["status"] == "True"

        # A removed repo.
        runner.calls.clear()
        patch_spec({"repos": [{"url": b}]})
        applied("SpecApplied")
        assert runner.calls == [(f"{base}/repos/remove", {"name": "a"})]

        # The runner refuses a workflow change: the session says so and does not claim it.
        runner.calls.clear()
        runner.status = 500
        patch_spec({"activeWorkflow": {"gitUrl": WF, "branch": "dev"}})
        refused = wait_for(
            "WorkflowReconciled False",
            lambda: (
                (s := get_session(deployed, namespace, "live"))
                and condition(s, "WorkflowReconciled").get("status") == "False"
                and s
            ),
            timeout=30,
        )
        assert condition(refused, "Reconciled")["reason"] == "WorkflowReconciliationFailed"
        assert refused["status"]["observedGeneration"] < refused["metadata"]["generation"]
        assert refused["status"]["reconciledWorkflow"]["branch"] == "main"
        assert phase_of(deployed, namespace, "live") == "Running"

        # Once it takes it, the next change goes through.
        runner.status = 200
        patch_spec({"activeWorkflow": {"gitUrl": WF, "branch": "dev", "path": "flows"}})
        done = applied("SpecApplied")
        assert done["status"]["reconciledWorkflow"]["path"] == "flows"
        assert runner.calls[-1] == (
            f"{base}/workflow",
            {"gitUrl": WF, "branch": "dev", "path": "flows"},
        )
    finally:
        runner.close()
