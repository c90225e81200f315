"""The runner client against a real local HTTP server (aiohttp web) that, like today's runner,
answers 401 without the session's ``X-Ambient-Session-Token``: the header's value, its absence
when the token cannot be read, the port, and the whole push (executor + client) end to end."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from agentic_operator.kube.resources import SECRETS, Obj
from agentic_operator.sessions.decide import decide
from agentic_operator.sessions.plan import WriteStatus
from agentic_operator.sessions.runner import RunnerCallError, RunnerClient
from tests.unit import sessionfix as fix
from tests.unit.sessionfix import NS
from tests.unit.test_apply import World

TOKEN = "0b3c6f0e-agui-token"


@dataclass
class FakeRunner:
    """Records every request; 401 unless the header equals ``token``."""

    token: str
    seen: list[tuple[str, str | None, Obj]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        header = request.headers.get("X-Ambient-Session-Token")
        self.seen.append((request.path, header, await request.json()))
        if header != self.token:
            return web.Response(status=401, text="unauthorized")
        return web.json_response({"ok": True})


@pytest.fixture
async def runner() -> AsyncIterator[tuple[FakeRunner, int]]:
    fake = FakeRunner(TOKEN)
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    try:
        yield fake, port
    finally:
        await app_runner.cleanup()


async def test_the_header_carries_the_token(runner: tuple[FakeRunner, int]) -> None:
    fake, port = runner
    client = RunnerClient("http://127.0.0.1:{port}/{namespace}/{session}")
    try:
        await client.post("ns", "s1", "/repos/add", {"url": "u"}, token=TOKEN, port=port)
        with pytest.raises(RunnerCallError, match="HTTP 401") as err:
            await client.post("ns", "s1", "/workflow", {"gitUrl": "w"}, port=port)
    finally:
        await client.close()
    assert fake.seen == [
        ("/ns/s1/repos/add", TOKEN, {"url": "u"}),
        ("/ns/s1/workflow", None, {"gitUrl": "w"}),
    ]
    assert TOKEN not in str(err.value)


def token_secret(**data: str) -> Obj:
    return {
        "metadata": {"name": "ambient-runner-token-s1", "namespace": NS},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


async def push(world: World) -> None:
    """Decide and apply the spec push of a Running session whose repos changed."""
    obs = fix.observe(world.session, fix.job(), (fix.pod(fix.RUNNING),))
    plan = decide(obs)
    assert plan.row == "A7"
    await world.executor.apply(world.session, plan)


def changed_session() -> Obj:
    return fix.session(
        "Running", generation=2, spec={"repos": [{"url": "https://g/o/a.git", "branch": "dev"}]}
    )


async def test_a_push_sends_the_secrets_agui_token(
    runner: tuple[FakeRunner, int], caplog: pytest.LogCaptureFixture
) -> None:
    fake, port = runner
    world = World(changed_session())
    world.api.put(SECRETS, token_secret(**{"k8s-token": "k", "agui-token": TOKEN}))
    client = RunnerClient(f"http://127.0.0.1:{port}/{{namespace}}/{{session}}")
    world.executor.runner = client
    caplog.set_level(logging.DEBUG, logger="agentic_operator")
    try:
        await push(world)
    finally:
        await client.close()
    assert fake.seen == [
        ("/proj/s1/repos/add", TOKEN, {"url": "https://g/o/a.git", "branch": "dev", "name": "a"})
    ]
    assert world.session["status"]["reconciledRepos"][0]["status"] == "Ready"
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("secret", "why"),
    [(None, "unreadable (NotFound)"), (token_secret(**{"k8s-token": "k"}), "has no agui-token")],
    ids=["no-secret", "no-key"],
)
async def test_without_a_token_the_header_is_omitted_and_the_failure_recorded(
    runner: tuple[FakeRunner, int],
    caplog: pytest.LogCaptureFixture,
    secret: Obj | None,
    why: str,
) -> None:
    fake, port = runner
    world = World(changed_session())
    if secret is not None:
        world.api.put(SECRETS, secret)
    client = RunnerClient(f"http://127.0.0.1:{port}/{{namespace}}/{{session}}")
    world.executor.runner = client
    caplog.set_level(logging.DEBUG, logger="agentic_operator")
    try:
        await push(world)
    finally:
        await client.close()
    assert [(path, header) for path, header, _ in fake.seen] == [("/proj/s1/repos/add", None)]
    assert why in caplog.text
    entry = world.session["status"]["reconciledRepos"][0]
    assert entry["status"] == "Failed", "a repo the runner refused is not reported Ready"
    assert ("Warning", "UpdateFailed") in world.recorder.events


def test_the_plan_never_holds_the_token() -> None:
    obs = fix.observe(changed_session(), fix.job(), (fix.pod(fix.RUNNING),))
    plan = decide(obs)
    assert TOKEN not in repr(plan)
    assert not any(isinstance(a, WriteStatus) for a in plan.actions)
