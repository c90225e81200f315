"""ProjectSettings groupAccess -> RoleBindings: mapping, naming, validation and the write plan."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.projects.bindings import (
    GROUP_ANNOTATION,
    MANAGED_LABEL,
    MAX_NAME_LENGTH,
    ROLE_TO_CLUSTERROLE,
    Plan,
    binding_name,
    default_project_settings,
    desired_role_bindings,
    invalid_entries,
    plan_role_bindings,
)
from agentic_operator.sessions.model import LABEL_MANAGED_BY, MANAGED_BY, PROJECT_SETTINGS_NAME

UID = "11111111-2222-3333-4444-555555555555"
OTHER_UID = "99999999-8888-7777-6666-555555555555"
MARKED = {MANAGED_LABEL: "true", LABEL_MANAGED_BY: MANAGED_BY}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def settings(*entries: Any, uid: str = UID, namespace: str = "proj") -> Obj:
    return {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "ProjectSettings",
        "metadata": {"name": PROJECT_SETTINGS_NAME, "namespace": namespace, "uid": uid},
        "spec": {"groupAccess": list(entries)},
    }


def access(group: Any, role: Any) -> dict[str, Any]:
    return {"groupName": group, "role": role}


def h8(group: str) -> str:
    return hashlib.sha256(group.encode()).hexdigest()[:8]


def test_default_project_settings() -> None:
    assert default_project_settings("team-a") == {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "ProjectSettings",
        "metadata": {"name": "projectsettings", "namespace": "team-a", "labels": MARKED},
        "spec": {"groupAccess": []},
    }


@pytest.mark.parametrize(
    ("group", "role", "expected"),
    [
        ("devs", "edit", "devs-edit"),
        ("team-1", "admin", "team-1-admin"),
        ("devs", "EDIT", "devs-edit"),
        ("Devs", "view", f"devs-{h8('Devs')}-view"),
        ("Platform Team", "admin", "platform-team-f28ffdbd-admin"),  # docs/deploy.md's example
        ("team.example.com", "view", f"team-example-com-{h8('team.example.com')}-view"),
        ("oidc:group/x", "edit", f"oidc-group-x-{h8('oidc:group/x')}-edit"),
        ("-lead-", "view", f"lead-{h8('-lead-')}-view"),
        ("日本", "view", f"group-{h8('日本')}-view"),
        ("a" * 300, "admin", "a" * (MAX_NAME_LENGTH - 15) + f"-{h8('a' * 300)}-admin"),
        ("a" * 248, "view", "a" * 248 + "-view"),
        ("a" * 249, "view", "a" * (MAX_NAME_LENGTH - 14) + f"-{h8('a' * 249)}-view"),
    ],
)
def test_binding_name(group: str, role: str, expected: str) -> None:
    name = binding_name(group, role)
    assert name == expected
    assert len(name) <= MAX_NAME_LENGTH
    assert DNS_SUBDOMAIN.match(name)


def test_binding_names_keep_case_distinct_groups_apart() -> None:
    assert binding_name("Devs", "view") != binding_name("devs", "view")
    assert binding_name("a b", "view") != binding_name("a-b", "view")
    assert binding_name("a b", "view") != binding_name("a_b", "view")


@pytest.mark.parametrize(
    ("role", "clusterrole"),
    [
        ("admin", "ambient-project-admin"),
        ("edit", "ambient-project-edit"),
        ("view", "ambient-project-view"),
        ("Admin", "ambient-project-admin"),
        ("EDIT", "ambient-project-edit"),
        ("ViEw", "ambient-project-view"),
    ],
)
def test_role_maps_to_clusterrole_case_insensitively(role: str, clusterrole: str) -> None:
    [binding] = desired_role_bindings(settings(access("devs", role))).values()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": clusterrole,
    }
    assert binding["metadata"]["name"] == f"devs-{role.lower()}"


def test_binding_shape() -> None:
    desired = desired_role_bindings(settings(access("Platform Team", "admin"), namespace="ns1"))
    name = f"platform-team-{h8('Platform Team')}-admin"
    assert desired == {
        name: {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": name,
                "namespace": "ns1",
                "labels": MARKED,
                "annotations": {GROUP_ANNOTATION: "Platform Team"},
                "ownerReferences": [
                    {
                        "apiVersion": "vteam.ambient-code/v1alpha1",
                        "kind": "ProjectSettings",
                        "name": "projectsettings",
                        "uid": UID,
                        "controller": True,
                    }
                ],
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "ambient-project-admin",
            },
            # The subject keeps the exact group name; only the binding name is sanitised.
            "subjects": [
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "Platform Team"}
            ],
        }
    }


@pytest.mark.parametrize(
    ("entries", "names", "problems"),
    [
        pytest.param([], [], [], id="empty"),
        pytest.param(
            [access("devs", "edit"), access("devs", "view")],
            ["devs-edit", "devs-view"],
            [],
            id="one-group-two-roles",
        ),
        pytest.param(
            [access("devs", "edit"), access("devs", "edit"), access("devs", "Edit")],
            ["devs-edit"],
            [],
            id="duplicates-collapse",
        ),
        pytest.param(
            [access("devs", "owner")],
            [],
            [
                "spec.groupAccess[0]: unknown role 'owner' for group 'devs'"
                " (allowed: admin, edit, view)"
            ],
            id="unknown-role-not-mapped-to-view",
        ),
        pytest.param(
            [access("ops", "view"), access("", "edit"), access("  ", "edit")],
            ["ops-view"],
            [
                "spec.groupAccess[1]: groupName is required",
                "spec.groupAccess[2]: groupName is required",
            ],
            id="empty-group",
        ),
        pytest.param(
            [{"groupName": "ops"}, access("ops", ""), access("ops", 3)],
            [],
            [
                "spec.groupAccess[0]: role is required for group 'ops'",
                "spec.groupAccess[1]: role is required for group 'ops'",
                "spec.groupAccess[2]: role is required for group 'ops'",
            ],
            id="missing-role",
        ),
        pytest.param(
            ["devs", None, access(7, "view")],
            [],
            [
                "spec.groupAccess[0]: must be an object with groupName and role",
                "spec.groupAccess[1]: must be an object with groupName and role",
                "spec.groupAccess[2]: groupName is required",
            ],
            id="malformed-items",
        ),
    ],
)
def test_entries(entries: list[Any], names: list[str], problems: list[str]) -> None:
    obj = settings(*entries)
    assert sorted(desired_role_bindings(obj)) == names
    assert invalid_entries(obj) == problems


@pytest.mark.parametrize(
    ("spec", "problems"),
    [
        ({}, []),
        ({"groupAccess": None}, []),
        ({"groupAccess": "devs:admin"}, ["spec.groupAccess: must be a list"]),
    ],
)
def test_group_access_container(spec: dict[str, Any], problems: list[str]) -> None:
    obj = settings()
    obj["spec"] = spec
    assert desired_role_bindings(obj) == {}
    assert invalid_entries(obj) == problems


def test_name_collision_is_reported_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force every name to collide, as a SHA-256 prefix collision would.
    import agentic_operator.projects.bindings as mod

    monkeypatch.setattr(mod, "binding_name", lambda group, role: f"same-{role}")
    obj = settings(access("a", "view"), access("b", "view"))
    desired = desired_role_bindings(obj)
    assert [b["subjects"][0]["name"] for b in desired.values()] == ["a"]
    assert invalid_entries(obj) == [
        "spec.groupAccess[1]: group 'b' maps to RoleBinding 'same-view', already used by group 'a'"
    ]


@pytest.mark.parametrize("meta", [{"namespace": "ns"}, {"uid": UID}])
def test_desired_needs_stored_settings(meta: dict[str, str]) -> None:
    obj = settings(access("devs", "view"))
    obj["metadata"] = {"name": PROJECT_SETTINGS_NAME, **meta}
    with pytest.raises(ValueError, match=r"metadata\.namespace and metadata\.uid"):
        desired_role_bindings(obj)


# --- plan -----------------------------------------------------------------------------------


def stored(binding: Obj, rv: str = "7") -> Obj:
    """A desired binding as the API server would return it."""
    obj = copy.deepcopy(binding)
    obj["metadata"]["resourceVersion"] = rv
    obj["metadata"]["uid"] = "rb-uid"
    return obj


def unmanaged(name: str, role: str = "view", group: str = "someone") -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "proj", "resourceVersion": "3"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ROLE_TO_CLUSTERROLE[role],
        },
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}],
    }


DESIRED = desired_role_bindings(settings(access("devs", "edit"), access("ops", "view")))


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_plan_creates_missing() -> None:
    plan = plan_role_bindings(DESIRED, [], UID)
    assert names(plan.create) == ["devs-edit", "ops-view"]
    assert plan.create[0] is DESIRED["devs-edit"]
    assert (plan.update, plan.delete, plan.recreate, plan.conflicts) == ([], [], [], [])
    assert not plan.empty


def test_plan_in_sync_is_empty() -> None:
    existing = [stored(b) for b in DESIRED.values()]
    plan = plan_role_bindings(DESIRED, existing, UID)
    assert plan == Plan()
    assert plan.empty


def test_plan_in_sync_with_extra_labels_and_annotations_is_empty() -> None:
    have = stored(DESIRED["devs-edit"])
    have["metadata"]["labels"]["team"] = "x"
    have["metadata"]["annotations"]["note"] = "kept"
    plan = plan_role_bindings({"devs-edit": DESIRED["devs-edit"]}, [have], UID)
    assert plan.empty


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b.update(subjects=[{"kind": "User", "name": "eve"}]), id="subjects"),
        pytest.param(lambda b: b.update(subjects=[]), id="no-subjects"),
        pytest.param(lambda b: b["metadata"]["annotations"].clear(), id="annotation"),
        pytest.param(lambda b: b["metadata"].pop("ownerReferences"), id="unowned-adopted"),
        pytest.param(lambda b: b["metadata"]["ownerReferences"].clear(), id="no-owners-adopted"),
        pytest.param(lambda b: b["metadata"]["labels"].pop(MANAGED_LABEL), id="owned-label-lost"),
        pytest.param(
            lambda b: b["metadata"]["labels"].pop(LABEL_MANAGED_BY), id="earlier-version-adopted"
        ),
        pytest.param(
            lambda b: b["metadata"]["ownerReferences"][0].update(uid=OTHER_UID),
            id="ours-of-an-earlier-settings-object",
        ),
        pytest.param(
            lambda b: b["metadata"]["labels"].update({MANAGED_LABEL: "yes"}), id="owned-label-value"
        ),
    ],
)
def test_plan_updates_drift(mutate: Any) -> None:
    want = DESIRED["devs-edit"]
    have = stored(want)
    have["metadata"]["labels"]["team"] = "x"
    mutate(have)
    before = copy.deepcopy(have)
    plan = plan_role_bindings({"devs-edit": want}, [have], UID)
    [fixed] = plan.update
    assert (plan.create, plan.delete, plan.recreate, plan.conflicts) == ([], [], [], [])
    assert fixed["subjects"] == want["subjects"]
    assert fixed["roleRef"] == want["roleRef"]
    meta = fixed["metadata"]
    assert meta["resourceVersion"] == "7"  # the PUT is conditional on what we looked at
    assert meta["labels"] == {**MARKED, "team": "x"}  # foreign labels kept
    assert meta["annotations"][GROUP_ANNOTATION] == "devs"
    assert [(r["uid"], r["controller"]) for r in meta["ownerReferences"]] == [(UID, True)]
    assert have == before  # the cached object is not mutated


def test_plan_recreates_on_roleref_change() -> None:
    want = DESIRED["devs-edit"]
    have = stored(want)
    have["roleRef"] = dict(have["roleRef"], name="ambient-project-view")
    plan = plan_role_bindings({"devs-edit": want}, [have], UID)
    assert plan.recreate == [want]
    assert (plan.create, plan.update, plan.delete) == ([], [], [])


def _ours(group: str, role: str = "view", uid: str = UID) -> Obj:
    return stored(desired_role_bindings(settings(access(group, role), uid=uid))[f"{group}-{role}"])


def _earlier_version(group: str) -> Obj:
    """What earlier versions of this operator made: no marker, the rest as today."""
    rb = _ours(group)
    del rb["metadata"]["labels"][LABEL_MANAGED_BY]
    return rb


def _without(rb: Obj, *path: str) -> Obj:
    node = rb["metadata"]
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return rb


def _backend(name: str, labels: dict[str, str]) -> Obj:
    rb = unmanaged(name, role="admin", group="alice")
    rb["metadata"]["labels"] = {MANAGED_LABEL: "true", **labels}
    rb["metadata"]["ownerReferences"] = [dict(_ours("x")["metadata"]["ownerReferences"][0])]
    return rb


def _platform_trigger_binding() -> Obj:
    """The platform operator's ambient-session-trigger binding: managed=true, owner settings."""
    rb = _backend("ambient-session-trigger", {})
    rb["roleRef"] = {"apiGroup": RBAC, "kind": "Role", "name": "ambient-session-trigger"}
    rb["subjects"] = [{"kind": "ServiceAccount", "name": "ambient-session-trigger"}]
    return rb


RBAC = "rbac.authorization.k8s.io"


@pytest.mark.parametrize(
    ("have", "deleted"),
    [
        pytest.param(_ours("old", "admin"), True, id="ours-removed"),
        pytest.param(_without(_ours("kept"), "labels", MANAGED_LABEL), True, id="ours-no-managed"),
        pytest.param(_ours("gone", uid=OTHER_UID), False, id="ours-other-settings"),
        pytest.param(_without(_ours("a"), "annotations", GROUP_ANNOTATION), False, id="no-group"),
        pytest.param(_without(_ours("o"), "ownerReferences"), False, id="ours-unowned"),
        pytest.param(_earlier_version("legacy"), False, id="earlier-version"),
        pytest.param(_without(_earlier_version("u"), "ownerReferences"), False, id="platform"),
        pytest.param(_platform_trigger_binding(), False, id="platform-trigger-binding"),
        pytest.param(_backend("ambient-admin-alice", {"ambient-code.io/role": "admin"}), False),
        pytest.param(_backend("ambient-permission-edit-bob", {"app": "ambient-permission"}), False),
        pytest.param(_backend("ambient-key-ci", {"app": "ambient-access-key"}), False),
        pytest.param(unmanaged("someone-view"), False, id="unmanaged"),
    ],
)
def test_plan_deletes_only_bindings_with_the_marker(have: Obj, deleted: bool) -> None:
    before = copy.deepcopy(have)
    plan = plan_role_bindings({}, [have], UID)
    assert plan.delete == ([have["metadata"]["name"]] if deleted else [])
    assert (plan.create, plan.update, plan.recreate, plan.conflicts) == ([], [], [], [])
    assert have == before


def _platform_group_binding() -> Obj:
    """How the platform's operator leaves a group binding: managed=true, no owner, no marker."""
    rb = unmanaged("devs-edit", role="edit", group="devs")
    rb["metadata"]["labels"] = {MANAGED_LABEL: "true"}
    return rb


def test_plan_adopts_the_platform_operators_binding_when_it_grants_the_same() -> None:
    plan = plan_role_bindings({"devs-edit": DESIRED["devs-edit"]}, [_platform_group_binding()], UID)
    [adopted] = plan.update
    assert adopted["metadata"]["labels"] == MARKED
    assert adopted["metadata"]["annotations"] == {GROUP_ANNOTATION: "devs"}
    assert [r["uid"] for r in adopted["metadata"]["ownerReferences"]] == [UID]
    assert (adopted["roleRef"], adopted["subjects"]) == (
        DESIRED["devs-edit"]["roleRef"],
        DESIRED["devs-edit"]["subjects"],
    )


def _earlier_version_of_other_settings(group: str, role: str) -> Obj:
    rb = _ours(group, role, uid=OTHER_UID)
    del rb["metadata"]["labels"][LABEL_MANAGED_BY]
    return rb


def _also(rb: Obj, **changes: Any) -> Obj:
    return {**rb, **changes}


@pytest.mark.parametrize(
    "have",
    [
        pytest.param(unmanaged("devs-edit", role="admin", group="mallory"), id="unmanaged"),
        pytest.param(
            _earlier_version_of_other_settings("devs", "edit"),
            id="other-controller",
        ),
        pytest.param(
            _also(_platform_group_binding(), subjects=[{"kind": "User", "name": "eve"}]),
            id="platform-granting-something-else",
        ),
        pytest.param(
            _also(
                _platform_group_binding(),
                metadata={
                    "name": "devs-edit",
                    "labels": {MANAGED_LABEL: "true", "ambient-code.io/role": "admin"},
                },
            ),
            id="backend-marker",
        ),
    ],
)
def test_plan_never_touches_foreign_binding_with_desired_name(have: Obj) -> None:
    before = copy.deepcopy(have)
    plan = plan_role_bindings({"devs-edit": DESIRED["devs-edit"]}, [have], UID)
    assert plan.conflicts == ["devs-edit"]
    assert plan.empty
    assert have == before


def test_plan_mixed() -> None:
    desired = desired_role_bindings(
        settings(access("devs", "edit"), access("ops", "admin"), access("new", "view"))
    )
    ops = stored(desired["ops-admin"])
    ops["roleRef"]["name"] = "ambient-project-view"
    devs = stored(desired["devs-edit"])
    devs["subjects"][0]["name"] = "Devs"
    gone = stored(desired_role_bindings(settings(access("gone", "view")))["gone-view"])
    plan = plan_role_bindings(desired, [ops, devs, gone, unmanaged("x-view")], UID)
    assert names(plan.create) == ["new-view"]
    assert names(plan.update) == ["devs-edit"]
    assert names(plan.recreate) == ["ops-admin"]
    assert plan.delete == ["gone-view"]
    assert plan.conflicts == []
