"""Managed namespaces and ProjectSettings -> group RoleBindings, under the shipped RBAC."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import Obj, get_json, wait_for

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def _settings(cluster: Cluster, ns: str) -> Obj | None:
    return get_json(cluster, "projectsettings", "projectsettings", "-n", ns)


def _managed_bindings(cluster: Cluster, ns: str) -> dict[str, Obj]:
    out = get_json(cluster, "rolebindings", "-n", ns, "-l", "ambient-code.io/managed=true") or {}
    return {rb["metadata"]["name"]: rb for rb in out.get("items", [])}


def _set_group_access(cluster: Cluster, ns: str, entries: list[dict[str, str]]) -> None:
    cluster.kubectl(
        "patch",
        "projectsettings",
        "projectsettings",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"groupAccess": entries}}),
    )


def test_group_access_becomes_role_bindings_with_drift_correction_and_removal(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    ps = wait_for("the projectsettings singleton", lambda: _settings(deployed, namespace))
    assert ps["spec"]["groupAccess"] == []

    _set_group_access(
        deployed,
        namespace,
        [{"groupName": "devs", "role": "edit"}, {"groupName": "leads", "role": "admin"}],
    )

    def two_bindings() -> dict[str, Obj] | None:
        found = _managed_bindings(deployed, namespace)
        return found if len(found) == 2 else None

    bindings = wait_for("two RoleBindings", two_bindings)
    devs = bindings["devs-edit"]
    assert devs["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "ambient-project-edit",
    }
    assert devs["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}
    ]
    assert bindings["leads-admin"]["roleRef"]["name"] == "ambient-project-admin"

    def counted() -> bool:
        status = (_settings(deployed, namespace) or {}).get("status") or {}
        return bool(status.get("groupBindingsCreated") == 2)

    wait_for("status.groupBindingsCreated == 2", counted)

    # Drift: someone edits a managed binding's subjects; the operator puts them back.
    deployed.kubectl(
        "patch",
        "rolebinding",
        "devs-edit",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "replace",
                    "path": "/subjects/0/name",
                    "value": "intruders",
                }
            ]
        ),
    )
    wait_for(
        "drift corrected",
        lambda: (
            _managed_bindings(deployed, namespace)["devs-edit"]["subjects"][0]["name"] == "devs"
        ),
    )

    # Removing an entry removes its binding; an invalid role is reported, not mapped to view.
    _set_group_access(
        deployed,
        namespace,
        [{"groupName": "devs", "role": "edit"}],
    )
    wait_for(
        "leads-admin removed", lambda: set(_managed_bindings(deployed, namespace)) == {"devs-edit"}
    )


def test_namespace_gaining_the_label_gets_project_settings(
    deployed: Cluster, unmanaged_namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    assert _settings(deployed, unmanaged_namespace) is None
    deployed.kubectl("label", "namespace", unmanaged_namespace, "ambient-code.io/managed=true")
    wait_for("projectsettings created", lambda: _settings(deployed, unmanaged_namespace))


def test_project_settings_name_is_a_singleton(deployed: Cluster, namespace: str) -> None:
    r = deployed.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "vteam.ambient-code/v1alpha1",
                "kind": "ProjectSettings",
                "metadata": {"name": "other", "namespace": namespace},
                "spec": {"groupAccess": []},
            }
        ),
        check=False,
    )
    assert r.returncode != 0
    assert "projectsettings" in r.stderr
