"""Managed namespaces and ProjectSettings -> group RoleBindings, the scheduled-session trigger's
ServiceAccount/Role/RoleBinding and the default LimitRange, under the shipped RBAC."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from testenv.controlplane import Cluster
from testenv.operator_process import OperatorProcess

from tests.e2e.helpers import Obj, create, get_json, wait_for

pytestmark = pytest.mark.cluster

StartOperator = Callable[..., OperatorProcess]


def _settings(cluster: Cluster, ns: str) -> Obj | None:
    return get_json(cluster, "projectsettings", "projectsettings", "-n", ns)


def _managed_bindings(cluster: Cluster, ns: str) -> dict[str, Obj]:
    """The group bindings: managed ones with a group-name annotation (not the trigger's)."""
    out = get_json(cluster, "rolebindings", "-n", ns, "-l", "ambient-code.io/managed=true") or {}
    return {
        rb["metadata"]["name"]: rb
        for rb in out.get("items", [])
        if "ambient-code.io/group-name" in (rb["metadata"].get("annotations") or {})
    }


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


TRIGGER = "ambient-session-trigger"
MARKER = ("app.kubernetes.io/managed-by", "agentic-operator")
POLICY = "runner-allow-backend-only"
RBAC = "rbac.authorization.k8s.io"


def _status(cluster: Cluster, ns: str) -> Obj:
    return dict((_settings(cluster, ns) or {}).get("status") or {})


def _conditions(status: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status.get("conditions") or []}


def test_a_managed_namespace_gets_the_trigger_rbac_and_the_default_limits(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()

    def all_ready() -> Obj | None:
        status = _status(deployed, namespace)
        ready = status.get("scheduledSessionRBACReady") and status.get("limitRangeReady")
        return status if ready else None

    status = wait_for("scheduledSessionRBACReady and limitRangeReady", all_ready)
    assert status["groupBindingsCreated"] == 0
    assert _conditions(status) == {
        "Ready": "True",
        "ScheduledSessionRBACReady": "True",
        "LimitRangeReady": "True",
        "RunnerNetworkPolicyReady": "True",
    }
    # The runner NetworkPolicy is there before the namespace has any session.
    assert get_json(deployed, "agenticsessions", "-n", namespace)["items"] == []  # type: ignore[index]
    made = get_json(deployed, "networkpolicy", POLICY, "-n", namespace) or {}
    assert made["spec"]["podSelector"] == {"matchLabels": {"app": "ambient-code-runner"}}
    assert made["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8001}]
    assert "ownerReferences" not in made["metadata"]
    uid = _settings(deployed, namespace)["metadata"]["uid"]  # type: ignore[index]
    for kind in ("serviceaccount", "role", "rolebinding"):
        obj = get_json(deployed, kind, TRIGGER, "-n", namespace)
        assert obj is not None, kind
        assert obj["metadata"]["labels"][MARKER[0]] == MARKER[1], kind
        assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [uid], kind
    role = get_json(deployed, "role", TRIGGER, "-n", namespace) or {}
    assert role["rules"] == [
        {
            "apiGroups": ["vteam.ambient-code"],
            "resources": ["agenticsessions"],
            "verbs": ["create", "get", "list", "update"],
        }
    ]
    limits = get_json(deployed, "limitrange", "ambient-default-limits", "-n", namespace) or {}
    assert limits["spec"]["limits"] == [
        {
            "type": "Container",
            "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
            "default": {"cpu": "2", "memory": "4Gi"},
        }
    ]

    # An administrator's edit of the LimitRange stands; a deleted trigger Role comes back.
    deployed.kubectl(
        "patch",
        "limitrange",
        "ambient-default-limits",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/limits/0/default/cpu", "value": "3"}]),
    )
    deployed.kubectl("delete", "role", TRIGGER, "-n", namespace)
    deployed.kubectl("delete", "networkpolicy", POLICY, "-n", namespace)
    wait_for(
        "the trigger Role recreated", lambda: get_json(deployed, "role", TRIGGER, "-n", namespace)
    )
    again = wait_for(
        "the runner NetworkPolicy recreated",
        lambda: get_json(deployed, "networkpolicy", POLICY, "-n", namespace),
    )
    assert again["metadata"]["uid"] != made["metadata"]["uid"]
    limits = get_json(deployed, "limitrange", "ambient-default-limits", "-n", namespace) or {}
    assert limits["spec"]["limits"][0]["default"]["cpu"] == "3"


def _binding(name: str, ns: str, labels: dict[str, str], role_ref: Obj, subject: Obj) -> Obj:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "roleRef": role_ref,
        "subjects": [subject],
    }


def _foreign_bindings(ns: str) -> list[Obj]:
    """Made by someone else: a trigger binding of an admin's, and the backend's admin and
    permission bindings (which carry managed=true too)."""
    admin_role = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "ambient-project-admin"}
    view_role = {"apiGroup": RBAC, "kind": "ClusterRole", "name": "ambient-project-view"}
    alice = {"apiGroup": RBAC, "kind": "User", "name": "alice@example.com"}
    return [
        _binding(
            TRIGGER,
            ns,
            {"ambient-code.io/managed": "true"},
            view_role,
            {"kind": "ServiceAccount", "name": "someone-else", "namespace": ns},
        ),
        _binding(
            "ambient-admin-alice",
            ns,
            {"ambient-code.io/managed": "true", "ambient-code.io/role": "admin"},
            admin_role,
            alice,
        ),
        _binding(
            "ambient-permission-view-bob-user",
            ns,
            {"ambient-code.io/managed": "true", "app": "ambient-permission"},
            view_role,
            {"apiGroup": RBAC, "kind": "User", "name": "bob"},
        ),
    ]


def _versions(cluster: Cluster, ns: str, names: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        obj = get_json(cluster, "rolebinding", name, "-n", ns)
        found[name] = obj["metadata"]["resourceVersion"] if obj else None
    return found


def test_bindings_made_by_others_survive_every_reconcile(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    # The settings exist first, so the trigger binding can carry what made the operator of an
    # earlier version delete it: managed=true and a controller reference to the settings.
    create(
        deployed,
        {
            "apiVersion": "vteam.ambient-code/v1alpha1",
            "kind": "ProjectSettings",
            "metadata": {"name": "projectsettings", "namespace": namespace},
            "spec": {"groupAccess": []},
        },
    )
    ps = _settings(deployed, namespace) or {}
    owner = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "ProjectSettings",
        "name": "projectsettings",
        "uid": ps["metadata"]["uid"],
        "controller": True,
    }
    foreign = _foreign_bindings(namespace)
    foreign[0]["metadata"]["ownerReferences"] = [owner]
    for rb in foreign:
        create(deployed, rb)
    names = [rb["metadata"]["name"] for rb in foreign]
    before = _versions(deployed, namespace, names)
    start_operator()

    def conflict_reported() -> Obj | None:
        status = _status(deployed, namespace)
        if _conditions(status).get("ScheduledSessionRBACReady") == "False":
            return status
        return None

    status = wait_for("the foreign trigger binding reported", conflict_reported)
    assert status["scheduledSessionRBACReady"] is False
    assert status["limitRangeReady"] is True
    # Several more reconciles: add a group, then remove it again.
    _set_group_access(deployed, namespace, [{"groupName": "devs", "role": "edit"}])
    wait_for("devs-edit", lambda: "devs-edit" in _managed_bindings(deployed, namespace))
    wait_for("counted", lambda: _status(deployed, namespace).get("groupBindingsCreated") == 1)
    _set_group_access(deployed, namespace, [])
    wait_for("devs-edit removed", lambda: "devs-edit" not in _managed_bindings(deployed, namespace))
    wait_for("counted", lambda: _status(deployed, namespace).get("groupBindingsCreated") == 0)
    assert _versions(deployed, namespace, names) == before
    theirs = get_json(deployed, "rolebinding", TRIGGER, "-n", namespace) or {}
    assert MARKER[0] not in theirs["metadata"]["labels"]


def test_a_cronjob_shaped_like_the_backends_gets_its_pod_admitted(
    deployed: Cluster, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    wait_for(
        "scheduledSessionRBACReady",
        lambda: _status(deployed, namespace).get("scheduledSessionRBACReady"),
    )
    template = {"initialPrompt": "nightly check", "displayName": "Nightly"}
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "schedule-0b5e1f7a",
            "namespace": namespace,
            "labels": {
                "ambient-code.io/scheduled-session": "true",
                "ambient-code.io/created-by": "alice",
            },
            "annotations": {
                "ambient-code.io/display-name": "Nightly",
                "ambient-code.io/reuse-last-session": "false",
            },
        },
        "spec": {
            "schedule": "0 3 * * *",
            "suspend": True,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 5,
            "failedJobsHistoryLimit": 3,
            "startingDeadlineSeconds": 300,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "serviceAccountName": TRIGGER,
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "trigger",
                                    "image": "quay.io/ambient_code/vteam_operator:latest",
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["./operator", "session-trigger"],
                                    "env": [
                                        {"name": "SESSION_TEMPLATE", "value": json.dumps(template)},
                                        {"name": "PROJECT_NAMESPACE", "value": namespace},
                                        {
                                            "name": "SCHEDULED_SESSION_NAME",
                                            "value": "schedule-0b5e1f7a",
                                        },
                                        {"name": "REUSE_LAST_SESSION", "value": "false"},
                                    ],
                                    "securityContext": {
                                        "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        }
                    }
                }
            },
        },
    }
    create(deployed, cron)
    # A manual run, as the backend starts one: a Job from the CronJob's template.
    deployed.kubectl(
        "create",
        "job",
        "schedule-0b5e1f7a-manual-1a2b3c4d",
        "--from=cronjob/schedule-0b5e1f7a",
        "-n",
        namespace,
    )

    def pod() -> Obj | None:
        out = (
            get_json(
                deployed,
                "pods",
                "-n",
                namespace,
                "-l",
                "job-name=schedule-0b5e1f7a-manual-1a2b3c4d",
            )
            or {}
        )
        items = out.get("items") or []
        return items[0] if items else None

    admitted = wait_for("the trigger Job's pod", pod)
    assert admitted["spec"]["serviceAccountName"] == TRIGGER
