"""Runner security of today's platform, end to end: the namespace's NetworkPolicy (in place for
a run, restored after drift), the runner's identity (user annotation, Role rules, the session's
annotations), the token Secret's fixed name, the token refresh while Running (only
``k8s-token`` changes), and the operator's live pushes to a fake runner that, like today's,
demands the session token."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import (
    Obj,
    create,
    get_json,
    runner_secret,
    secret,
    session,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]
POLICY = "runner-allow-backend-only"


def policy(cluster: Cluster, namespace: str) -> Obj | None:
    return get_json(cluster, "networkpolicy", POLICY, "-n", namespace)


def peers(spec: Obj) -> list[str]:
    return [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in spec["ingress"][0]["from"]
    ]


def wanted_spec(*namespaces: str) -> Obj:
    return {
        "podSelector": {"matchLabels": {"app": "ambient-code-runner"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                    for ns in namespaces
                ],
                "ports": [{"protocol": "TCP", "port": 8001}],
            }
        ],
    }


def test_network_policy_is_in_place_for_a_run_and_restored_after_drift(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    # The backend in a namespace of its own: the operator's namespace is a second peer.
    start_operator(env={"BACKEND_NAMESPACE": "platform-backend"})
    runner_secret(deployed, namespace)
    create(deployed, session("first", namespace, outcome="run-forever"))
    made = wait_for("the runner NetworkPolicy", lambda: policy(deployed, namespace), timeout=60)
    assert made["spec"] == wanted_spec("platform-backend", "ambient-code")
    labels = made["metadata"]["labels"]
    assert labels["ambient-code.io/managed-by"] == "operator"
    assert labels["app.kubernetes.io/managed-by"] == "agentic-operator"
    assert "ownerReferences" not in made["metadata"]
    wait_phase(deployed, namespace, "first", "Running", timeout=60)

    # Someone opens it to every namespace; the next run's start restores it (the project
    # controller only makes it when it is missing).
    deployed.kubectl(
        "patch",
        "networkpolicy",
        POLICY,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"ingress": [{}]}}),
    )
    drifted = policy(deployed, namespace)
    assert drifted is not None
    assert drifted["spec"]["ingress"] == [{}]
    create(deployed, session("second", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "second", "Creating", "Running", timeout=60)
    restored = policy(deployed, namespace)
    assert restored is not None
    assert restored["spec"] == wanted_spec("platform-backend", "ambient-code")
    assert peers(restored["spec"]) == ["platform-backend", "ambient-code"]


def test_a_policy_of_that_name_made_by_someone_else_is_left_alone(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    theirs = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY, "namespace": namespace, "labels": {"team": "netsec"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    create(deployed, theirs)
    before = policy(deployed, namespace)
    assert before is not None
    start_operator()
    runner_secret(deployed, namespace)
    create(deployed, session("s", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "s", "Running", timeout=60)
    after = policy(deployed, namespace)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_runner_identity_is_todays(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    runner_secret(deployed, namespace)
    body = session("who", namespace, outcome="run-forever", userContext={"userId": "user-7"})
    create(deployed, body)
    running = wait_phase(deployed, namespace, "who", "Running", timeout=60)
    sa = get_json(deployed, "serviceaccount", "ambient-session-who", "-n", namespace)
    assert sa is not None
    assert sa["metadata"]["annotations"]["ambient-code.io/created-by-user-id"] == "user-7"
    role = get_json(deployed, "role", "ambient-session-who-role", "-n", namespace)
    assert role is not None
    assert role["rules"] == [
        {
            "apiGroups": ["vteam.ambient-code"],
            "resources": ["agenticsessions"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {
            "apiGroups": ["mlflow.kubeflow.org"],
            "resources": ["experiments"],
            "verbs": ["get", "list", "update"],
        },
    ]
    annotations = running["metadata"]["annotations"]
    assert annotations["ambient-code.io/runner-sa"] == "ambient-session-who"
    assert annotations["ambient-code.io/runner-token-secret"] == "ambient-runner-token-who"


def secret_data(cluster: Cluster, namespace: str, name: str) -> tuple[dict[str, str], Obj]:
    secret = get_json(cluster, "secret", name, "-n", namespace)
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return data, secret["metadata"].get("annotations") or {}


def test_a_session_cannot_point_the_operator_at_another_secret(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    """Whoever may edit a session (its own runner too) can set ``runner-token-secret``; the
    operator must not take that as the Secret to write the token into (and to own)."""
    start_operator()
    runner_secret(deployed, namespace)
    secret(deployed, namespace, "victim", password="keep-me")
    before = get_json(deployed, "secret", "victim", "-n", namespace)
    assert before is not None
    body = session("nosy", namespace, outcome="run-forever")
    body["metadata"]["annotations"] = {"ambient-code.io/runner-token-secret": "victim"}
    create(deployed, body)
    running = wait_phase(deployed, namespace, "nosy", "Running", timeout=60)
    after = get_json(deployed, "secret", "victim", "-n", namespace)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]
    assert base64.b64decode(after["data"]["password"]) == b"keep-me"
    own = get_json(deployed, "secret", "ambient-runner-token-nosy", "-n", namespace)
    assert own is not None
    assert set(own["data"]) >= {"k8s-token", "agui-token"}
    job = get_json(deployed, "job", "nosy-job", "-n", namespace) or {}
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"ambient-runner-token-nosy"} == {
        v["secret"]["secretName"] for v in volumes if v.get("name") == "runner-token"
    }
    annotations = running["metadata"]["annotations"]
    assert annotations["ambient-code.io/runner-token-secret"] == "ambient-runner-token-nosy"


def test_the_runner_token_is_refreshed_while_running(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator(env={"RUNNER_TOKEN_REFRESH_INTERVAL": "5"})
    runner_secret(deployed, namespace)
    create(deployed, session("fresh", namespace, outcome="run-forever"))
    wait_phase(deployed, namespace, "fresh", "Running", timeout=60)
    name = "ambient-runner-token-fresh"
    first, first_ann = secret_data(deployed, namespace, name)
    assert first["k8s-token"]

    def refreshed() -> tuple[dict[str, str], Obj] | None:
        data, ann = secret_data(deployed, namespace, name)
        return (data, ann) if data["k8s-token"] != first["k8s-token"] else None

    data, ann = wait_for("a new k8s-token", refreshed, timeout=60)
    assert {k: v for k, v in data.items() if k != "k8s-token"} == {
        k: v for k, v in first.items() if k != "k8s-token"
    }, "only k8s-token changes (agui-token and the rest are kept)"
    assert (
        ann["ambient-code.io/token-refreshed-at"] >= first_ann["ambient-code.io/token-refreshed-at"]
    )
    job = get_json(deployed, "job", "fresh-job", "-n", namespace)
    assert job is not None
    assert "ambient-code.io/token-refreshed-at" in job["metadata"]["annotations"]


class FakeRunner(BaseHTTPRequestHandler):
    """Today's runner's manners: 401 without the right ``X-Ambient-Session-Token``."""

    token: str | None = None
    seen: list[tuple[str, str | None, Obj]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        header = self.headers.get("X-Ambient-Session-Token")
        type(self).seen.append((self.path, header, body))
        ok = self.token is not None and header == self.token
        self.send_response(200 if ok else 401)
        self.end_headers()
        self.wfile.write(b'{"ok":true}' if ok else b"unauthorized")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_runner() -> Iterator[tuple[type[FakeRunner], int]]:
    handler = type("Runner", (FakeRunner,), {"seen": [], "token": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_live_pushes_carry_the_session_token(
    deployed: Cluster,
    namespace: str,
    start_operator: StartOperator,
    fake_runner: tuple[type[FakeRunner], int],
) -> None:
    runner, port = fake_runner
    start_operator(env={"RUNNER_ENDPOINT": f"http://127.0.0.1:{port}/{{namespace}}/{{session}}"})
    runner_secret(deployed, namespace)
    workflow = {"gitUrl": "https://github.com/o/wf.git", "branch": "main", "path": "flows"}
    create(deployed, session("live", namespace, outcome="run-forever", activeWorkflow=workflow))
    wait_phase(deployed, namespace, "live", "Running", timeout=60)
    data, _ = secret_data(deployed, namespace, "ambient-runner-token-live")
    token = data["agui-token"]
    runner.token = token  # from now on the fake runner takes calls that carry it

    def confirmed() -> Obj | None:
        s = get_json(deployed, "agenticsession", "live", "-n", namespace) or {}
        conds = (s.get("status") or {}).get("conditions") or []
        ok = any(c["type"] == "WorkflowReconciled" and c["status"] == "True" for c in conds)
        return s if ok else None

    live = wait_for("the deferred workflow push", confirmed, timeout=60)
    assert live["status"]["reconciledWorkflow"]["gitUrl"] == workflow["gitUrl"]
    workflow_calls = [(p, h, b) for p, h, b in runner.seen if p.endswith("/workflow")]
    assert workflow_calls[-1] == (f"/{namespace}/live/workflow", token, workflow)
    assert all(h == token for _, h, _ in runner.seen), "every call carries the session token"

    runner.seen.clear()
    repo = {"url": "https://github.com/o/app.git", "branch": "dev"}
    deployed.kubectl(
        "patch",
        "agenticsession",
        "live",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"repos": [repo]}}),
    )

    def applied() -> Obj | None:
        s = get_json(deployed, "agenticsession", "live", "-n", namespace) or {}
        st = s.get("status") or {}
        return s if st.get("observedGeneration") == s["metadata"]["generation"] else None

    done = wait_for("the repo push applied", applied, timeout=60)
    assert runner.seen == [
        (
            f"/{namespace}/live/repos/add",
            token,
            {"url": repo["url"], "branch": "dev", "name": "app"},
        )
    ]
    entry = done["status"]["reconciledRepos"][0]
    assert (entry["url"], entry["name"], entry["branch"], entry["status"]) == (
        repo["url"],
        "app",
        "dev",
        "Ready",
    )
    assert entry["clonedAt"]
