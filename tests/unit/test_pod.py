"""The runner pod: init-hydrate, the state-sync sidecar and the runner, as the agent registry and
the operator's settings shape them (presence, order, env, probes, security, resources)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import model
from agentic_operator.sessions.agents import AgentSpec
from agentic_operator.sessions.builders import PodInputs, build_job
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.objects import build_service

CFG = SessionConfig(runner_image="reg/runner:7", state_sync_image="reg/sync:3")
S3 = SessionConfig(s3_access_key_id="AKID", s3_secret_access_key="SECRETKEY")


def session(**spec: Any) -> Obj:
    meta: Obj = {"name": "s1", "namespace": "ns", "uid": "uid-1", "generation": 1}
    return {"apiVersion": model.API_VERSION, "kind": model.KIND, "metadata": meta, "spec": spec}


def pod(obj: Obj | None = None, cfg: SessionConfig = CFG, agent: AgentSpec | None = None) -> Obj:
    inputs = PodInputs(agent=agent or AgentSpec())
    job, _ = build_job(obj or session(), cfg, run=1, inputs=inputs)
    spec: Obj = job["spec"]["template"]["spec"]
    return spec


def init(spec: Obj, name: str) -> Obj:
    return next(c for c in spec.get("initContainers") or () if c["name"] == name)


def env(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize(
    ("agent", "names"),
    [
        (AgentSpec(), ["init-hydrate", "state-sync"]),
        (AgentSpec(persist=False), ["init-hydrate"]),
        (AgentSpec(clone_repos=False), ["init-hydrate", "state-sync"]),
        (AgentSpec(clone_repos=False, hydrate_state=False), ["state-sync"]),
        (AgentSpec(persist=False, clone_repos=False, hydrate_state=False), []),
    ],
)
def test_helpers_present_per_registry(agent: AgentSpec, names: list[str]) -> None:
    spec = pod(agent=agent)
    assert [c["name"] for c in spec.get("initContainers") or ()] == names
    assert [c["name"] for c in spec["containers"]] == ["ambient-code-runner"]


def test_helper_containers_shape() -> None:
    spec = pod()
    hydrate, sync = spec["initContainers"]
    assert (hydrate["image"], hydrate["command"]) == ("reg/sync:3", ["/usr/local/bin/hydrate.sh"])
    assert "restartPolicy" not in hydrate, "init-hydrate must finish before anything else starts"
    assert "resources" not in hydrate
    assert (sync["image"], sync["command"]) == ("reg/sync:3", ["/usr/local/bin/sync.sh"])
    assert sync["restartPolicy"] == "Always", "a native sidecar: the Job completes with the runner"
    assert sync["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1000m", "memory": "1Gi"},
    }
    for c in (hydrate, sync):
        assert c["imagePullPolicy"] == "IfNotPresent"
        assert c["volumeMounts"] == [
            {"name": "workspace", "mountPath": "/workspace"},
            {"name": "workspace", "mountPath": "/app/.claude", "subPath": ".claude"},
        ]


def test_registry_state_sync_image_wins() -> None:
    spec = pod(agent=AgentSpec(state_sync_image="reg/other-sync:1"))
    assert {c["image"] for c in spec["initContainers"]} == {"reg/other-sync:1"}


def test_every_container_is_restricted() -> None:
    spec = pod(cfg=SessionConfig(pod_fs_group=0))
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": 0,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    for c in [*spec["initContainers"], *spec["containers"]]:
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1001,
        }, c["name"]
    assert "fsGroup" not in pod()["securityContext"]


HYDRATE_ORDER = [
    "SESSION_NAME",
    "NAMESPACE",
    "S3_ENDPOINT",
    "S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BACKEND_API_URL",
    "PROJECT_NAME",
    "REPOS_JSON",
    "ACTIVE_WORKFLOW_GIT_URL",
    "BOT_TOKEN",
    "RUNNER_STATE_DIR",
    "EXTRA",
]
SYNC_ORDER = [
    "SESSION_NAME",
    "NAMESPACE",
    "S3_ENDPOINT",
    "S3_BUCKET",
    "SYNC_INTERVAL",
    "MAX_SYNC_SIZE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RUNNER_STATE_DIR",
    "FROM_REGISTRY",
    "EXTRA",
]


def test_helper_env_order_and_merge() -> None:
    obj = session(
        repos=[{"url": "https://g/a.git"}],
        mainRepoName="a",
        activeWorkflow={"gitUrl": "https://g/wf"},
        environmentVariables={"EXTRA": "1", "SESSION_NAME": "not-mine", "BAD": 3},
    )
    agent = AgentSpec(env=(("FROM_REGISTRY", "r"), ("NAMESPACE", "no")))
    spec = pod(obj, S3, agent)
    hydrate, sync = spec["initContainers"]
    assert [e["name"] for e in hydrate["env"]] == HYDRATE_ORDER
    assert [e["name"] for e in sync["env"]] == SYNC_ORDER
    for c in (hydrate, sync):
        e = env(c)
        assert e["SESSION_NAME"]["value"] == "s1", "the session's variables never replace ours"
        assert e["NAMESPACE"]["value"] == "ns"
        assert e["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "ambient-runner-token-s1",
            "key": "s3-secret-access-key",
            "optional": False,
        }
    assert env(hydrate)["BOT_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "k8s-token"
    assert env(sync)["SYNC_INTERVAL"]["value"] == "60"
    assert env(sync)["MAX_SYNC_SIZE"]["value"] == "1073741824"
    assert "AKID" not in json.dumps(spec)
    assert "SECRETKEY" not in json.dumps(spec)


def test_helpers_without_s3_keys_get_no_key_variables() -> None:
    hydrate, sync = pod()["initContainers"]
    for c in (hydrate, sync):
        e = env(c)
        assert "AWS_ACCESS_KEY_ID" not in e
        assert e["S3_ENDPOINT"]["value"] == "https://s3.amazonaws.com"
        assert e["S3_BUCKET"]["value"] == "ambient-sessions"


def test_runner_probes_and_grace_follow_the_registry() -> None:
    spec = pod(agent=AgentSpec(port=9100, grace_seconds=90))
    runner = spec["containers"][0]
    assert spec["terminationGracePeriodSeconds"] == 90
    assert runner["ports"] == [{"name": "agui", "containerPort": 9100, "protocol": "TCP"}]
    assert env(runner)["AGUI_PORT"]["value"] == "9100"
    assert runner["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": 9100},
        "initialDelaySeconds": 3,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert runner["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": 9100},
        "initialDelaySeconds": 20,
        "periodSeconds": 30,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    assert pod()["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize(
    ("cfg", "agent", "image", "resources"),
    [
        (
            CFG,
            AgentSpec(),
            "reg/runner:7",
            {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "2", "memory": "8Gi"},
            },
        ),
        (
            SessionConfig(runner_cpu_request="1", runner_memory_limit="6Gi"),
            AgentSpec(image="reg/gemini:1", resources={"limits": {"cpu": "4"}}),
            "reg/gemini:1",
            {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "4", "memory": "6Gi"}},
        ),
    ],
)
def test_runner_image_and_resources(
    cfg: SessionConfig, agent: AgentSpec, image: str, resources: Obj
) -> None:
    runner = pod(cfg=cfg, agent=agent)["containers"][0]
    assert runner["image"] == image
    assert runner["resources"] == resources


def test_post_start_copies_oauth_credentials_only_with_the_oauth_mount() -> None:
    assert "lifecycle" not in pod()["containers"][0]
    runner = pod(cfg=SessionConfig(google_oauth_client_id="c"))["containers"][0]
    command = runner["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    assert command[2].endswith("exit 0"), "a failing hook would kill the runner"


def test_service_port_follows_the_registry() -> None:
    svc = build_service(session(), {"metadata": {"name": "s1-job", "uid": "j"}}, port=9100)
    assert svc["spec"]["ports"] == [
        {"name": "agui", "port": 9100, "targetPort": "agui", "protocol": "TCP"}
    ]
