"""The agent registry: entry selection, every field's fallback, and the 60 s file cache."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agentic_operator.clock import FakeClock
from agentic_operator.sessions.agents import (
    AgentSpec,
    JsonFile,
    agent_spec,
    session_agent,
    vertex_model_id,
)

SHIPPED = [
    {
        "id": "claude-agent-sdk",
        "container": {
            "image": "quay.io/ambient_code/vteam_claude_runner:latest",
            "port": 8001,
            "env": {"RUNNER_TYPE": "claude-agent-sdk", "RUNNER_STATE_DIR": ".claude"},
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "2", "memory": "8Gi"},
            },
        },
        "sandbox": {
            "stateDir": ".claude",
            "stateSyncImage": "quay.io/ambient_code/vteam_state_sync:latest",
            "persistence": "s3",
            "workspaceSize": "10Gi",
            "terminationGracePeriod": 60,
            "seed": {"cloneRepos": True, "hydrateState": True},
        },
    },
    {"id": "gemini-cli", "container": {"port": 9000}, "sandbox": {"stateDir": ".gemini"}},
]


def entry(**fields: Any) -> list[dict[str, Any]]:
    return [{"id": "x", **fields}]


CASES = [
    pytest.param(None, "claude-agent-sdk", AgentSpec(), id="no-registry"),
    pytest.param({"not": "a list"}, "x", AgentSpec(runner_type="x"), id="registry-not-a-list"),
    pytest.param(SHIPPED, "unknown", AgentSpec(runner_type="unknown"), id="unknown-id"),
    pytest.param(
        SHIPPED,
        "claude-agent-sdk",
        AgentSpec(
            image="quay.io/ambient_code/vteam_claude_runner:latest",
            env=(("RUNNER_TYPE", "claude-agent-sdk"), ("RUNNER_STATE_DIR", ".claude")),
            resources={
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "2", "memory": "8Gi"},
            },
            state_sync_image="quay.io/ambient_code/vteam_state_sync:latest",
        ),
        id="shipped-claude",
    ),
    pytest.param(
        SHIPPED,
        "gemini-cli",
        AgentSpec(runner_type="gemini-cli", port=9000, state_dir=".gemini"),
        id="shipped-gemini-defaults",
    ),
    pytest.param(
        entry(sandbox={"persistence": "none", "seed": {"cloneRepos": False}}),
        "x",
        AgentSpec(runner_type="x", persist=False, clone_repos=False),
        id="persistence-none",
    ),
    pytest.param(
        entry(container={"port": 70000, "image": "has space"}),
        "x",
        AgentSpec(runner_type="x"),
        id="bad-port-and-image",
    ),
    pytest.param(
        entry(container={"resources": {"requests": {"cpu": "lots", "memory": 1024}}}),
        "x",
        AgentSpec(runner_type="x", resources={"requests": {"memory": "1024"}}),
        id="bad-quantity-is-left-to-the-default",
    ),
    pytest.param(
        entry(sandbox={"stateDir": "../etc", "workspaceSize": "big", "terminationGracePeriod": 0}),
        "x",
        AgentSpec(runner_type="x"),
        id="bad-sandbox-values",
    ),
    pytest.param(
        entry(container={"env": {"OK": "1", "bad name": "2", "NUM": 3}}),
        "x",
        AgentSpec(runner_type="x", env=(("OK", "1"),)),
        id="env-keeps-the-good-entries",
    ),
    pytest.param(
        entry(sandbox={"seed": {"cloneRepos": "yes", "hydrateState": False}}),
        "x",
        AgentSpec(runner_type="x", hydrate_state=False),
        id="seed-flags",
    ),
]


@pytest.mark.parametrize(("registry", "kind", "expected"), CASES)
def test_agent_spec(registry: Any, kind: str, expected: AgentSpec) -> None:
    assert agent_spec(registry, kind) == expected


def test_bad_values_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    agent_spec(entry(container={"port": "8001"}), "x")
    assert "agent registry entry 'x': ignoring container.port '8001'" in caplog.text


@pytest.mark.parametrize(
    ("env", "kind", "state_dir"),
    [
        ({}, "claude-agent-sdk", ".claude"),
        ({"RUNNER_TYPE": "gemini-cli"}, "gemini-cli", ".gemini"),
        ({"RUNNER_TYPE": "gemini-cli", "RUNNER_STATE_DIR": ".mine"}, "gemini-cli", ".mine"),
        ({"RUNNER_STATE_DIR": "../../x"}, "claude-agent-sdk", ".claude"),
        ({"RUNNER_TYPE": ""}, "claude-agent-sdk", ".claude"),
    ],
)
def test_session_agent(env: dict[str, str], kind: str, state_dir: str) -> None:
    agent = session_agent(SHIPPED, {"spec": {"environmentVariables": env}})
    assert (agent.runner_type, agent.state_dir) == (kind, state_dir)


MANIFEST = {
    "version": 1,
    "models": [
        {"id": "claude-sonnet-4-6", "vertexId": "claude-sonnet-4-6@1", "available": True},
        {"id": "claude-old", "vertexId": "claude-old@1", "available": False},
    ],
}


@pytest.mark.parametrize(
    ("manifest", "model", "expected"),
    [
        (MANIFEST, "claude-sonnet-4-6", "claude-sonnet-4-6@1"),
        (MANIFEST, "claude-old", ""),
        (MANIFEST, "nope", ""),
        (None, "claude-sonnet-4-6", ""),
        ({"models": "x"}, "claude-sonnet-4-6", ""),
    ],
)
def test_vertex_model_id(manifest: Any, model: str, expected: str) -> None:
    assert vertex_model_id(manifest, model) == expected


def test_json_file_is_cached_for_a_minute_and_survives_read_errors(tmp_path: Path) -> None:
    clock = FakeClock()

    def later(seconds: float) -> None:
        asyncio.run(clock.advance(seconds))

    path = tmp_path / "agent-registry.json"
    f = JsonFile(str(path), clock)
    assert f.get() is None  # not mounted: no registry, no error
    path.write_text(json.dumps(SHIPPED))
    assert f.get() is None, "the missing file was read less than 60 s ago"
    later(60)
    assert f.get() == SHIPPED
    path.write_text("[]")
    later(59)
    assert f.get() == SHIPPED, "cached"
    later(1)
    assert f.get() == []
    path.unlink()
    path.mkdir()  # reading a directory fails with an OSError other than FileNotFoundError
    later(60)
    assert f.get() == [], "a read error keeps the last content"
    path.rmdir()
    path.write_text("{not json")
    later(60)
    assert f.get() is None, "malformed JSON: no registry"
