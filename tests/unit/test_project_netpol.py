"""The project controller's runner NetworkPolicy (projects/reconciler.py, sessions/netpol.py):
made once per managed namespace, before any session, with the port of every registry entry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentic_operator.kube.errors import ApiError
from agentic_operator.kube.resources import NETWORK_POLICIES, PROJECT_SETTINGS, Obj, Resource
from agentic_operator.sessions import netpol
from agentic_operator.sessions.config import SessionConfig
from tests.unit.test_project_objects import NS, WRITES, FakeApi, conditions, run

CFG = SessionConfig(operator_namespace="ambient-code", backend_namespace="ambient-code")
POLICY = "runner-allow-backend-only"


@pytest.mark.parametrize(
    ("registry", "ports"),
    [
        (None, {8001}),
        ("not a list", {8001}),
        ([], {8001}),
        ([{"id": "a", "container": {"port": 8001}}], {8001}),
        ([{"id": "a", "container": {"port": 9000}}, {"id": "b"}], {8001, 9000}),
        ([{"id": "a", "container": {"port": 9000}}, {"id": "b", "container": {"port": 9100}}],
         {8001, 9000, 9100}),
        ([{"id": "a", "container": {"port": "9000"}}], {8001}),
        ([{"id": "a", "container": {"port": True}}], {8001}),
        ([{"id": "a", "container": {"port": 0}}, {"id": "b", "container": {"port": 70000}}],
         {8001}),
        ([{"id": "a", "container": "x"}, "junk", 3], {8001}),
    ],
)  # fmt: skip
def test_registry_ports(registry: Any, ports: set[int]) -> None:
    assert netpol.registry_ports(registry) == ports


def test_namespace_policy_admits_every_registry_port_from_the_backend_only() -> None:
    body = netpol.namespace_policy("proj", CFG, [{"id": "a", "container": {"port": 9000}}])
    assert body["metadata"]["name"] == POLICY
    assert body["metadata"]["namespace"] == "proj"
    assert "ownerReferences" not in body["metadata"]
    [rule] = body["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8001}, {"protocol": "TCP", "port": 9000}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ambient-code"}}}
    ]


class PolicyApi(FakeApi):
    def cached(self, res: Resource, namespace: str) -> Obj | None:
        if res is NETWORK_POLICIES:
            found = self.objects.get((res.plural, namespace, POLICY))
            return copy.deepcopy(found) if found is not None else None
        return super().cached(res, namespace)


def reconcile(api: PolicyApi) -> Obj:
    return run(api, runner_policy=lambda ns: netpol.namespace_policy(ns, CFG, None))


def policy_writes(api: FakeApi) -> list[tuple[str, str]]:
    return [(v, n) for v, p, n in api.calls if v in WRITES and p == NETWORK_POLICIES.plural]


def test_a_managed_namespace_gets_the_policy_once() -> None:
    api = PolicyApi()
    status = reconcile(api)
    assert policy_writes(api) == [("create", POLICY)]
    assert conditions(status)["RunnerNetworkPolicyReady"] == ("True", "Created")
    stored = api.objects[(NETWORK_POLICIES.plural, NS, POLICY)]
    assert stored["spec"] == netpol.namespace_policy(NS, CFG, None)["spec"]
    api.calls.clear()
    status = reconcile(api)
    assert policy_writes(api) == []
    assert conditions(status)["RunnerNetworkPolicyReady"] == ("True", "Present")


def test_an_edited_or_foreign_policy_is_left_to_the_session_controller_or_alone() -> None:
    api = PolicyApi()
    theirs = netpol.namespace_policy(NS, CFG, None)
    theirs["metadata"]["labels"] = {"team": "net"}
    theirs["spec"]["ingress"] = []
    api.put(NETWORK_POLICIES, theirs)
    status = reconcile(api)
    assert policy_writes(api) == []
    assert api.objects[(NETWORK_POLICIES.plural, NS, POLICY)]["spec"]["ingress"] == []
    assert conditions(status)["RunnerNetworkPolicyReady"] == ("True", "NotManaged")


def test_a_refused_create_is_reported_and_retried() -> None:
    api = PolicyApi()
    refused = ApiError(403, "Forbidden", "networkpolicies is forbidden")
    api.fail[("create", NETWORK_POLICIES.plural)] = refused
    with pytest.raises(ApiError) as raised:
        reconcile(api)
    assert raised.value is refused
    ps = api.objects[(PROJECT_SETTINGS.plural, NS, "projectsettings")]
    status = ps["status"]
    assert conditions(status)["RunnerNetworkPolicyReady"] == ("False", "ApiError")
    assert conditions(status)["Ready"] == ("True", "BindingsReconciled")
    assert status["limitRangeReady"] is True
