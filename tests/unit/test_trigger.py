"""``session-trigger``: inputs, names, the reuse decision, the writes, the exits."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agentic_operator.cli import main, session_trigger_main
from agentic_operator.kube.errors import Conflict, Forbidden
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.projects import trigger
from agentic_operator.projects.trigger import (
    Inputs,
    TriggerError,
    decide,
    display_name,
    follow_up,
    name_prefix,
    new_session,
    newest,
    read_inputs,
    restarted,
)

NOW = datetime(2026, 1, 2, 15, 4, 5, tzinfo=UTC)
TEMPLATE = {"initialPrompt": "check the build", "displayName": "Nightly Build!", "timeout": 300}
ENV = {
    "SESSION_TEMPLATE": json.dumps(TEMPLATE),
    "PROJECT_NAMESPACE": "team-a",
    "SCHEDULED_SESSION_NAME": "schedule-0b5e1f7a",
}


def inputs(**env: str) -> Inputs:
    return read_inputs({**ENV, **env})


def test_inputs_defaults() -> None:
    got = inputs()
    assert (got.template, got.namespace, got.schedule, got.reuse) == (
        TEMPLATE,
        "team-a",
        "schedule-0b5e1f7a",
        False,
    )
    assert got.backend_url == "http://backend-service.ambient-code.svc.cluster.local:8080/api"
    assert got.prompt == "check the build"


@pytest.mark.parametrize(
    ("env", "reuse", "url"),
    [
        ({"REUSE_LAST_SESSION": "true"}, True, None),
        ({"REUSE_LAST_SESSION": " TRUE "}, True, None),
        ({"REUSE_LAST_SESSION": "false"}, False, None),
        ({"REUSE_LAST_SESSION": ""}, False, None),
        (
            {"BACKEND_NAMESPACE": "platform"},
            False,
            "http://backend-service.platform.svc.cluster.local:8080/api",
        ),
        ({"BACKEND_API_URL": "http://127.0.0.1:9/api/"}, False, "http://127.0.0.1:9/api"),
    ],
)
def test_inputs_options(env: dict[str, str], reuse: bool, url: str | None) -> None:
    got = inputs(**env)
    assert got.reuse is reuse
    if url is not None:
        assert got.backend_url == url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSION_TEMPLATE": ""}, "SESSION_TEMPLATE is required"),
        ({"PROJECT_NAMESPACE": " "}, "PROJECT_NAMESPACE is required"),
        ({"SCHEDULED_SESSION_NAME": ""}, "SCHEDULED_SESSION_NAME is required"),
        ({"SESSION_TEMPLATE": "{not json"}, "SESSION_TEMPLATE is not JSON"),
        ({"SESSION_TEMPLATE": "[1, 2]"}, "must be a JSON object"),
        ({"SESSION_TEMPLATE": '{"initialPrompt": 3}'}, "initialPrompt must be a string"),
        ({"SESSION_TEMPLATE": '{"displayName": []}'}, "displayName must be a string"),
        ({"PROJECT_NAMESPACE": "Team_A"}, "is not a namespace name"),
        ({"SCHEDULED_SESSION_NAME": "a b"}, "is not a valid label value"),
        ({"SCHEDULED_SESSION_NAME": "x" * 64}, "is not a valid label value"),
        ({"REUSE_LAST_SESSION": "sometimes"}, "REUSE_LAST_SESSION"),
        ({"BACKEND_API_URL": "backend:8080"}, "expected an http(s) URL"),
    ],
)
def test_bad_inputs_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(TriggerError) as caught:
        read_inputs({**ENV, **env})
    assert message in str(caught.value)
    assert caught.value.code == 2
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("nightly", "nightly"),
        ("Nightly Build!", "nightly-build"),
        ("  --Weekly  report--  ", "weekly-report"),
        ("schedule-0b5e1f7a", "schedule-0b5e1f7a"),
        ("a" * 39 + " b", "a" * 39),
        ("x" * 60, "x" * 40),
        ("日本語", "run"),
        ("", "run"),
    ],
)
def test_name_prefix(text: str, prefix: str) -> None:
    assert name_prefix(text) == prefix


def test_new_session() -> None:
    s = new_session(inputs(), NOW)
    stamp = int(NOW.timestamp())
    assert s["metadata"] == {
        "name": f"nightly-build-{stamp}",
        "namespace": "team-a",
        "labels": {
            "ambient-code.io/scheduled-session-name": "schedule-0b5e1f7a",
            "ambient-code.io/scheduled-run": "true",
        },
    }
    assert s["spec"] == {**TEMPLATE, "displayName": "Nightly Build! (Jan 2, 2026 - 15:04:05)"}
    assert len(s["metadata"]["name"]) <= 51
    plain = new_session(inputs(SESSION_TEMPLATE='{"initialPrompt": "x"}'), NOW)
    assert plain["metadata"]["name"] == f"schedule-0b5e1f7a-{stamp}"
    assert "displayName" not in plain["spec"]


def test_display_name_is_utc() -> None:
    other_zone = datetime.fromisoformat("2026-11-30T23:59:01-05:00")
    assert display_name("N", other_zone) == "N (Dec 1, 2026 - 04:59:01)"


def sess(name: str, created: str, phase: str | None = None, **meta: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": created, **meta},
        "spec": {"initialPrompt": "old"},
    }
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def test_newest() -> None:
    a = sess("a", "2026-01-01T00:00:00Z")
    b = sess("b", "2026-01-02T00:00:00Z")
    c = sess("c", "2026-01-02T00:00:00Z")
    assert newest([]) is None
    assert newest([b, a]) is b
    assert newest([c, b, a]) is c


@pytest.mark.parametrize(
    ("phase", "prompt", "action"),
    [
        ("Running", "p", "follow-up"),
        ("Running", "", "nothing"),
        ("Stopped", "p", "restart"),
        ("Completed", "", "restart"),
        ("Failed", "p", "create"),
        ("Pending", "p", "create"),
        ("Creating", "p", "create"),
        ("Stopping", "p", "create"),
        (None, "p", "create"),
    ],
)
def test_decide(phase: str | None, prompt: str, action: str) -> None:
    assert decide(sess("s", "2026-01-01T00:00:00Z", phase), prompt) == action


def test_decide_without_sessions_creates() -> None:
    assert decide(None, "p") == "create"


@pytest.mark.parametrize("prompt", ["new prompt", ""])
def test_restarted(prompt: str) -> None:
    old = sess("s", "2026-01-01T00:00:00Z", "Stopped", annotations={"keep": "me"})
    before = copy.deepcopy(old)
    body = restarted(old, prompt, NOW)
    assert old == before
    ann = body["metadata"]["annotations"]
    assert ann["keep"] == "me"
    assert ann["ambient-code.io/desired-phase"] == "Running"
    assert ann["ambient-code.io/start-requested-at"] == "2026-01-02T15:04:05Z"
    if prompt:
        assert body["spec"]["initialPrompt"] == prompt
        assert ann["ambient-code.io/force-execute-prompt"] == "true"
    else:
        assert body["spec"]["initialPrompt"] == "old"
        assert "ambient-code.io/force-execute-prompt" not in ann


def test_follow_up() -> None:
    body = follow_up("s1", "hello", NOW)
    assert body["threadId"] == "s1"
    assert body["runId"] == f"scheduled-{int(NOW.timestamp())}"
    [msg] = body["messages"]
    assert (msg["role"], msg["content"]) == ("user", "hello")
    assert msg["id"].startswith("scheduled-msg-")


class FakeApi:
    def __init__(self, items: list[Obj], conflicts: int = 0) -> None:
        self.items = items
        self.conflicts = conflicts
        self.calls: list[str] = []
        self.written: list[Obj] = []
        self.fail: Exception | None = None

    async def list(self, res: Resource, namespace: str | None = None, **kw: Any) -> Obj:
        self.calls.append(f"list {kw.get('label_selector')}")
        if self.fail:
            raise self.fail
        return {"items": self.items}

    async def get(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(f"get {name}")
        return copy.deepcopy(next(s for s in self.items if s["metadata"]["name"] == name))

    async def create(self, res: Resource, body: Obj, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(f"create {body['metadata']['name']}")
        if self.fail:
            raise self.fail
        self.written.append(body)
        return body

    async def replace(
        self, res: Resource, name: str, body: Obj, namespace: str | None = None, **_: Any
    ) -> Obj:
        self.calls.append(f"replace {name}")
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(409, "Conflict", "the object has been modified")
        self.written.append(body)
        return body


class FakePost:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.sent: list[tuple[str, Obj]] = []

    async def __call__(self, url: str, body: Obj) -> int:
        self.sent.append((url, body))
        return self.status


def go(api: FakeApi, post: FakePost, **env: str) -> str:
    return asyncio.run(trigger.run(inputs(**env), api, post, lambda: NOW))  # type: ignore[arg-type]


SELECTOR = "list ambient-code.io/scheduled-session-name=schedule-0b5e1f7a"


@pytest.mark.parametrize(
    ("items", "calls", "outcome"),
    [
        pytest.param([], [SELECTOR, "create nightly-build-1767366245"], "created", id="none"),
        pytest.param(
            [
                sess("old", "2026-01-01T00:00:00Z", "Stopped"),
                sess("new", "2026-01-02T00:00:00Z", "Failed"),
            ],
            [SELECTOR, "create nightly-build-1767366245"],
            "created",
            id="newest-failed",
        ),
        pytest.param(
            [sess("s", "2026-01-01T00:00:00Z", "Completed")],
            [SELECTOR, "get s", "replace s"],
            "restarted session s",
            id="completed",
        ),
        pytest.param(
            [sess("s", "2026-01-01T00:00:00Z", "Running")],
            [SELECTOR],
            "sent the prompt to running session s",
            id="running",
        ),
    ],
)
def test_run_with_reuse(items: list[Obj], calls: list[str], outcome: str) -> None:
    api, post = FakeApi(items), FakePost()
    assert go(api, post, REUSE_LAST_SESSION="true").startswith(outcome)
    assert api.calls == calls
    if outcome.startswith("sent"):
        [(url, body)] = post.sent
        assert url == (
            "http://backend-service.ambient-code.svc.cluster.local:8080/api/projects/team-a"
            "/agentic-sessions/s/agui/run"
        )
        assert body["messages"][0]["content"] == "check the build"
    else:
        assert post.sent == []


def test_run_without_reuse_creates_even_with_a_running_session() -> None:
    api = FakeApi([sess("s", "2026-01-01T00:00:00Z", "Running")])
    assert go(api, FakePost()).startswith("created session nightly-build-")
    assert [c.split()[0] for c in api.calls] == ["create"]


def test_restart_retries_conflicts_then_writes_once() -> None:
    api = FakeApi([sess("s", "2026-01-01T00:00:00Z", "Stopped")], conflicts=2)
    go(api, FakePost(), REUSE_LAST_SESSION="true")
    assert api.calls == [SELECTOR, "get s", "replace s", "get s", "replace s", "get s", "replace s"]
    [body] = api.written
    assert body["metadata"]["annotations"]["ambient-code.io/force-execute-prompt"] == "true"


def test_restart_gives_up_after_repeated_conflicts() -> None:
    api = FakeApi([sess("s", "2026-01-01T00:00:00Z", "Stopped")], conflicts=99)
    with pytest.raises(TriggerError, match="still conflicting"):
        go(api, FakePost(), REUSE_LAST_SESSION="true")
    assert api.written == []


@pytest.mark.parametrize(
    ("api", "post", "env", "message"),
    [
        (
            FakeApi([sess("s", "2026-01-01T00:00:00Z", "Running")]),
            FakePost(401),
            {"REUSE_LAST_SESSION": "true"},
            "HTTP 401",
        ),
        (FakeApi([]), FakePost(), {}, "create the session: 403 Forbidden"),
        (FakeApi([]), FakePost(), {"REUSE_LAST_SESSION": "true"}, "list the schedule's sessions"),
    ],
)
def test_failures_are_one_line(
    api: FakeApi, post: FakePost, env: dict[str, str], message: str
) -> None:
    api.fail = None if message.startswith("HTTP") else Forbidden(403, "Forbidden", "no\naccess")
    with pytest.raises(TriggerError) as caught:
        go(api, post, **env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.code == 1


@pytest.mark.parametrize(
    ("args", "env", "code", "err"),
    [
        (["extra"], ENV, 2, "takes no arguments"),
        ([], {}, 2, "SESSION_TEMPLATE is required"),
        ([], {**ENV, "SESSION_TEMPLATE": "nope"}, 2, "SESSION_TEMPLATE is not JSON"),
        ([], {**ENV, "KUBECONFIG": "/nonexistent/kubeconfig"}, 1, "cannot load Kubernetes"),
    ],
)
def test_exits(
    args: list[str],
    env: dict[str, str],
    code: int,
    err: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    if "KUBECONFIG" in env:
        monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
    assert session_trigger_main(args, env) == code
    out = capsys.readouterr()
    assert out.out == ""
    [line] = out.err.splitlines()
    assert line.startswith("session-trigger: error: ")
    assert err in line


def test_help_and_dispatch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["session-trigger", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: agentic-operator session-trigger")
    for var in (
        "SESSION_TEMPLATE",
        "PROJECT_NAMESPACE",
        "SCHEDULED_SESSION_NAME",
        "REUSE_LAST_SESSION",
    ):
        assert var in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "session-trigger" in capsys.readouterr().out


def test_the_image_has_an_operator_executable_in_its_working_directory() -> None:
    from tests.unit.test_manifests import dockerfile_stages

    final = dockerfile_stages()[-1]
    workdirs = [line.split()[1] for line in final if line.startswith("WORKDIR ")]
    assert workdirs[-1] == "/app"
    link = "RUN ln -s /opt/venv/bin/agentic-operator /app/operator"
    assert link in final
    # Made before USER 1001 (root owns it; 1001 may run it), after the venv is in place.
    assert final.index(link) < final.index("USER 1001")
    assert final.index("COPY --from=builder /opt/venv /opt/venv") < final.index(link)
