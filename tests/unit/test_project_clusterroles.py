"""The project ClusterRoles hold at least what the platform's own roles of the same names grant.

The platform ships ``ambient-project-admin``, ``-edit`` and ``-view`` itself, and its backend acts
with the caller's token: a deploy/ that shipped narrower rules under those names would, applied over
a platform install, break the sharing, access-key, secrets and feature-flag pages of the UI. The
tables below are the facts recorded from the platform's manifests (its
``components/manifests/base/rbac/ambient-project-*-clusterrole.yaml``), one row per rule:
(API group, resources, verbs, resourceNames).
"""

from __future__ import annotations

import pytest

from agentic_operator.projects.bindings import ROLE_TO_CLUSTERROLE
from tests.unit.test_manifests import Perm, grants, one, perms

READ = ("get", "list", "watch")
ALL = (*READ, "create", "update", "patch", "delete")
Row = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]

PLATFORM: dict[str, list[Row]] = {
    "admin": [
        ("vteam.ambient-code", ("projectsettings", "agenticsessions"), ALL, ()),
        ("vteam.ambient-code", ("projectsettings/status",), (*READ, "update", "patch"), ()),
        ("vteam.ambient-code", ("agenticsessions/status",), READ, ()),
        ("", ("secrets", "configmaps", "serviceaccounts"), ALL, ()),
        ("", ("serviceaccounts/token",), ("create",), ()),
        ("rbac.authorization.k8s.io", ("roles", "rolebindings"), ALL, ()),
        ("batch", ("jobs",), ALL, ()),
        ("", ("pods", "pods/log", "events"), READ, ()),
        ("project.openshift.io", ("projects",), READ, ()),
        ("", ("persistentvolumeclaims", "services"), (*READ, "delete"), ()),
        ("apps", ("deployments",), (*READ, "delete"), ()),
    ],
    "edit": [
        ("vteam.ambient-code", ("agenticsessions",), (*READ, "create", "update", "patch"), ()),
        ("vteam.ambient-code", ("agenticsessions/status", "projectsettings"), READ, ()),
        ("project.openshift.io", ("projects",), READ, ()),
        ("", ("configmaps",), ("get",), ()),
        ("", ("secrets",), ("get",), ("ambient-runner-secrets",)),
        ("", ("secrets",), ("create",), ()),
        ("batch", ("jobs",), (*READ, "delete"), ()),
        ("", ("pods", "pods/log", "events", "persistentvolumeclaims", "services"), READ, ()),
        ("apps", ("deployments",), READ, ()),
        ("", ("serviceaccounts",), ("get", "list", "create", "update", "patch"), ()),
        (
            "rbac.authorization.k8s.io",
            ("roles", "rolebindings"),
            ("get", "list", "create", "update", "patch", "delete"),
            (),
        ),
        ("", ("serviceaccounts/token",), ("create",), ()),
    ],
    "view": [
        (
            "vteam.ambient-code",
            (
                "agenticsessions",
                "agenticsessions/status",
                "projectsettings",
                "projectsettings/status",
            ),
            READ,
            (),
        ),
        ("project.openshift.io", ("projects",), READ, ()),
        ("batch", ("jobs",), READ, ()),
        ("", ("pods", "pods/log", "events", "persistentvolumeclaims", "services"), READ, ()),
        ("apps", ("deployments",), READ, ()),
    ],
}


def expand(rows: list[Row]) -> set[Perm]:
    return {
        (group, resource, verb, name)
        for group, resources, verbs, names in rows
        for resource in resources
        for verb in verbs
        for name in names or (None,)
    }


@pytest.mark.parametrize("role", sorted(PLATFORM))
def test_ours_hold_every_rule_of_the_platforms(role: str) -> None:
    ours = perms(one("ClusterRole", ROLE_TO_CLUSTERROLE[role])["rules"])
    missing = sorted((p for p in expand(PLATFORM[role]) if not grants(ours, p)), key=str)
    assert missing == []


@pytest.mark.parametrize("role", sorted(PLATFORM))
def test_the_check_can_fail(role: str) -> None:
    rules = one("ClusterRole", ROLE_TO_CLUSTERROLE[role])["rules"]
    narrowed = perms([r for r in rules if "pods" not in r["resources"]])
    assert any(not grants(narrowed, p) for p in expand(PLATFORM[role]))


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        ("edit", ("", "secrets", "get", "ambient-runner-secrets")),
        ("edit", ("", "configmaps", "get", None)),
        ("edit", ("rbac.authorization.k8s.io", "rolebindings", "list", None)),
        ("admin", ("", "serviceaccounts", "list", None)),
        ("admin", ("", "configmaps", "get", None)),
    ],
)
def test_the_pages_that_broke_are_covered(role: str, granted: Perm) -> None:
    # The sharing page lists RoleBindings, the access-key page ServiceAccounts, feature flags
    # read ConfigMaps, sessions check the runner secrets.
    assert grants(perms(one("ClusterRole", ROLE_TO_CLUSTERROLE[role])["rules"]), granted)


def test_edit_reads_only_the_runner_secrets() -> None:
    edit = perms(one("ClusterRole", ROLE_TO_CLUSTERROLE["edit"])["rules"])
    secrets = {p for p in edit if p[1] == "secrets"}
    assert secrets == {
        ("", "secrets", "get", "ambient-runner-secrets"),
        ("", "secrets", "create", None),
    }
