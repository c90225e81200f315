"""The runner NetworkPolicy (sessions/netpol.py): created, restored, adopted, or left alone."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions import netpol
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.objects import build_runner_network_policy
from agentic_operator.sessions.plan import Create, Replace
from tests.unit.sessionfix import observe, session

CFG = SessionConfig(operator_namespace="ambient-code", backend_namespace="ambient-code")
OURS = {"app.kubernetes.io/managed-by": "agentic-operator"}
UPSTREAM = {"app": "ambient-code", "ambient-code.io/managed-by": "operator"}


def job(port: int | None = None) -> Obj:
    ports = [] if port is None else [{"name": "agui", "containerPort": port}]
    containers = [
        {"name": "init", "ports": [{"name": "agui", "containerPort": 1}]},
        {"name": "ambient-code-runner", "ports": ports},
    ]
    return {"spec": {"template": {"spec": {"containers": containers}}}}


def policy(labels: dict[str, str], ports: list[int] = [8001]) -> Obj:  # noqa: B006
    body = build_runner_network_policy("proj", CFG, ports)
    body["metadata"].update(labels=dict(labels), resourceVersion="5", uid="np-1")
    return body


def ensure(current: Obj | None, job_obj: Obj, cfg: SessionConfig = CFG) -> Create | Replace | None:
    obs = replace(observe(session("Pending"), cfg=cfg), network_policy=current)
    return netpol.ensure(obs, job_obj)


def test_created_when_absent() -> None:
    action = ensure(None, job())
    assert isinstance(action, Create)
    assert action.body == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "runner-allow-backend-only",
            "namespace": "proj",
            "labels": {**UPSTREAM, **OURS},
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "ambient-code-runner"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ambient-code"}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 8001}],
                }
            ],
        },
    }
    assert "ownerReferences" not in action.body["metadata"], "it outlives every session"


def test_the_operators_own_namespace_is_a_second_peer_when_it_is_not_the_backends() -> None:
    cfg = SessionConfig(operator_namespace="ops", backend_namespace="ambient-code")
    action = ensure(None, job(), cfg)
    assert action is not None
    peers = action.body["spec"]["ingress"][0]["from"]
    assert [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers
    ] == [
        "ambient-code",
        "ops",
    ]


def test_the_port_follows_the_runner() -> None:
    action = ensure(None, job(9100))
    assert action is not None
    assert action.body["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9100}]
    assert netpol.runner_port(job()) == 8001


def test_ours_and_current_is_left_as_it_is() -> None:
    assert ensure(policy({**UPSTREAM, **OURS}), job()) is None


@pytest.mark.parametrize(
    "drift",
    [
        lambda s: s["ingress"][0]["from"][0]["namespaceSelector"].update(matchLabels={}),
        lambda s: s.update(ingress=[{}]),
        lambda s: s.update(podSelector={}),
        lambda s: s.update(policyTypes=["Egress"]),
    ],
    ids=["peer", "allow-all", "selector", "types"],
)
def test_a_drifted_one_of_ours_is_restored(drift: object) -> None:
    current = policy({**UPSTREAM, **OURS, "extra": "kept"})
    assert callable(drift)
    drift(current["spec"])
    action = ensure(current, job())
    assert isinstance(action, Replace)
    assert action.body["spec"] == build_runner_network_policy("proj", CFG, [8001])["spec"]
    assert action.body["metadata"]["resourceVersion"] == "5"
    assert action.body["metadata"]["labels"]["extra"] == "kept"


def test_ports_of_other_runners_are_kept() -> None:
    action = ensure(policy({**UPSTREAM, **OURS}, [8001]), job(9100))
    assert isinstance(action, Replace)
    assert action.body["spec"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": 8001},
        {"protocol": "TCP", "port": 9100},
    ]


def test_upstreams_policy_is_adopted() -> None:
    current = policy(UPSTREAM)
    action = ensure(copy.deepcopy(current), job())
    assert isinstance(action, Replace)
    assert action.body["metadata"]["labels"] == {**UPSTREAM, **OURS}
    assert action.body["spec"] == current["spec"]


@pytest.mark.parametrize(
    "labels", [{}, {"app": "ambient-code"}, {"ambient-code.io/managed": "true"}]
)
def test_someone_elses_policy_of_that_name_is_never_touched(labels: dict[str, str]) -> None:
    current = policy(labels)
    current["spec"]["ingress"] = [{}]
    assert ensure(current, job()) is None
