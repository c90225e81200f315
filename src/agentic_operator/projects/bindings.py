"""ProjectSettings ``groupAccess`` -> RoleBindings: the pure half of the projects controller.

A managed project namespace holds one ProjectSettings object named ``projectsettings``. Each
``spec.groupAccess`` entry ``{groupName, role}`` grants a group one of three project ClusterRoles
(``ambient-project-admin|edit|view``) through a RoleBinding in that namespace. This module decides
*what* should exist and *what to change*; the reconciler performs the API calls.

Differences from the upstream operator's handling of ``groupAccess``, on purpose:

* Unknown roles are reported (see :func:`invalid_entries`) instead of silently becoming ``view``:
  a typo such as ``adimn`` should be visible, not quietly grant less than intended.
* Bindings carry a controller ownerReference to the ProjectSettings, so deleting the settings lets
  the garbage collector remove them, and bindings for removed entries are deleted.
* Drift (subjects, labels, annotation, owner) is corrected; a changed ``roleRef`` (immutable in the
  API) is handled by delete + create.

RoleBinding naming rule (``binding_name``): the name is ``<group>-<role>`` where ``<role>`` is the
lower-cased role. When the group name is already lowercase ``[a-z0-9-]``, starts and ends with an
alphanumeric character and is short enough, it is used verbatim (``devs`` + ``edit`` ->
``devs-edit``). Otherwise the group name is lower-cased, every run of characters outside
``[a-z0-9]`` becomes one ``-``, leading/trailing ``-`` are stripped, the result is cut to fit
253 characters (``group`` if nothing is left), and the first 8 hex digits of the SHA-256 of the
*exact* group name are inserted before the role (``Platform Team`` + ``admin`` ->
``platform-team-f28ffdbd-admin``). The hash keeps distinct groups apart: Kubernetes group names are
case-sensitive, so ``Devs`` and ``devs`` are different groups and must never share a binding.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from agentic_operator.kube.resources import PROJECT_SETTINGS, ROLE_BINDINGS, Obj
from agentic_operator.sessions.model import PROJECT_SETTINGS_NAME

ROLE_TO_CLUSTERROLE: dict[str, str] = {
    "admin": "ambient-project-admin",
    "edit": "ambient-project-edit",
    "view": "ambient-project-view",
}

MANAGED_LABEL = "ambient-code.io/managed"
"""Marks managed namespaces and the RoleBindings this controller owns (value ``"true"``)."""

GROUP_ANNOTATION = "ambient-code.io/group-name"
"""The exact group name on a binding, since the (sanitised) binding name may not show it."""

RBAC_API_GROUP = "rbac.authorization.k8s.io"
MAX_NAME_LENGTH = 253
_HASH_LENGTH = 8
_VERBATIM = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_INVALID_RUN = re.compile(r"[^a-z0-9]+")


def default_project_settings(namespace: str) -> Obj:
    """The ProjectSettings created for a managed namespace that has none (no group access yet)."""
    return {
        "apiVersion": PROJECT_SETTINGS.api_version,
        "kind": PROJECT_SETTINGS.kind,
        "metadata": {"name": PROJECT_SETTINGS_NAME, "namespace": namespace},
        "spec": {"groupAccess": []},
    }


def binding_name(group: str, role: str) -> str:
    """RoleBinding name for ``group`` and a valid ``role``; the rule is in the module docstring."""
    role = role.lower()
    if _VERBATIM.match(group) and len(group) + 1 + len(role) <= MAX_NAME_LENGTH:
        return f"{group}-{role}"
    digest = hashlib.sha256(group.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    suffix = f"-{digest}-{role}"
    base = _INVALID_RUN.sub("-", group.lower()).strip("-")
    base = base[: MAX_NAME_LENGTH - len(suffix)].rstrip("-") or "group"
    return base + suffix


@dataclass(frozen=True, slots=True)
class _Entry:
    group: str
    role: str


def _analyse(project_settings: Obj) -> tuple[dict[str, _Entry], list[str]]:
    """Valid entries by binding name, and one message per invalid entry (in spec order)."""
    spec = project_settings.get("spec") or {}
    raw = spec.get("groupAccess")
    if raw is None:
        return {}, []
    if not isinstance(raw, list):
        return {}, ["spec.groupAccess: must be a list"]
    valid: dict[str, _Entry] = {}
    problems: list[str] = []
    for index, item in enumerate(raw):
        where = f"spec.groupAccess[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be an object with groupName and role")
            continue
        group: Any = item.get("groupName")
        role: Any = item.get("role")
        if not isinstance(group, str) or not group.strip():
            problems.append(f"{where}: groupName is required")
            continue
        if not isinstance(role, str) or not role.strip():
            problems.append(f"{where}: role is required for group {group!r}")
            continue
        if role.lower() not in ROLE_TO_CLUSTERROLE:
            allowed = ", ".join(ROLE_TO_CLUSTERROLE)
            problems.append(
                f"{where}: unknown role {role!r} for group {group!r} (allowed: {allowed})"
            )
            continue
        entry = _Entry(group, role.lower())
        name = binding_name(entry.group, entry.role)
        other = valid.get(name)
        if other is None:
            valid[name] = entry
        elif other != entry:
            # Only reachable on a SHA-256 prefix collision; refuse rather than merge two groups.
            problems.append(
                f"{where}: group {group!r} maps to RoleBinding {name!r}, "
                f"already used by group {other.group!r}"
            )
        # An exact duplicate (same group, same role in any case) is harmless: one binding.
    return valid, problems


def invalid_entries(project_settings: Obj) -> list[str]:
    """Human-readable problems with ``spec.groupAccess``, for a status condition message."""
    return _analyse(project_settings)[1]


def desired_role_bindings(project_settings: Obj) -> dict[str, Obj]:
    """Binding name -> the RoleBinding that should exist for each valid ``groupAccess`` entry.

    The settings must be a stored object (namespace and uid set): the bindings are owned by it.
    """
    meta = project_settings.get("metadata") or {}
    namespace, uid = meta.get("namespace"), meta.get("uid")
    if not namespace or not uid:
        raise ValueError("ProjectSettings needs metadata.namespace and metadata.uid")
    owner = {
        "apiVersion": PROJECT_SETTINGS.api_version,
        "kind": PROJECT_SETTINGS.kind,
        "name": meta.get("name", PROJECT_SETTINGS_NAME),
        "uid": uid,
        # No blockOwnerDeletion: it would need update on projectsettings/finalizers wherever
        # the OwnerReferencesPermissionEnforcement admission plugin is enabled, for no benefit.
        "controller": True,
    }
    entries, _ = _analyse(project_settings)
    return {
        name: {
            "apiVersion": ROLE_BINDINGS.api_version,
            "kind": ROLE_BINDINGS.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {MANAGED_LABEL: "true"},
                "annotations": {GROUP_ANNOTATION: entry.group},
                "ownerReferences": [dict(owner)],
            },
            "roleRef": {
                "apiGroup": RBAC_API_GROUP,
                "kind": "ClusterRole",
                "name": ROLE_TO_CLUSTERROLE[entry.role],
            },
            "subjects": [{"kind": "Group", "apiGroup": RBAC_API_GROUP, "name": entry.group}],
        }
        for name, entry in entries.items()
    }


@dataclass
class Plan:
    """Writes that bring the existing RoleBindings to the desired ones.

    ``update`` holds complete objects for a PUT (they keep the existing ``resourceVersion``, so a
    concurrent change yields a 409 and a fresh reconcile). ``recreate`` holds desired objects whose
    existing namesake must be deleted first because ``roleRef`` cannot be changed in place.
    ``conflicts`` names desired bindings blocked by an object this controller must not touch.
    """

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    recreate: list[Obj] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when no API write is needed (conflicts need none either)."""
        return not (self.create or self.update or self.delete or self.recreate)


def _controller_uid(obj: Obj) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _is_managed(obj: Obj) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_LABEL) == "true"


def _corrected(existing: Obj, want: Obj) -> Obj | None:
    """``existing`` with ``want``'s subjects, labels, annotations and owner; None if no drift."""
    meta = existing.get("metadata") or {}
    want_meta = want["metadata"]
    labels = dict(meta.get("labels") or {})
    annotations = dict(meta.get("annotations") or {})
    owners = [dict(ref) for ref in meta.get("ownerReferences") or []]
    want_owner = want_meta["ownerReferences"][0]
    drifted = False
    if existing.get("subjects") != want["subjects"]:
        drifted = True
    for key, value in want_meta["labels"].items():
        if labels.get(key) != value:
            labels[key], drifted = value, True
    for key, value in want_meta["annotations"].items():
        if annotations.get(key) != value:
            annotations[key], drifted = value, True
    if not any(ref.get("uid") == want_owner["uid"] and ref.get("controller") for ref in owners):
        # Adopt: upstream created these bindings with the managed label and no owner.
        owners = [ref for ref in owners if ref.get("uid") != want_owner["uid"]]
        owners.append(dict(want_owner))
        drifted = True
    if not drifted:
        return None
    fixed = dict(existing)
    fixed["metadata"] = {
        **meta,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": owners,
    }
    fixed["subjects"] = [dict(s) for s in want["subjects"]]
    return fixed


def plan_role_bindings(desired: dict[str, Obj], existing: list[Obj], settings_uid: str) -> Plan:
    """Compare desired bindings with the RoleBindings in the namespace (any labels).

    * missing -> create;
    * present and ours -> update if the subjects, labels, annotation or owner drifted, recreate if
      ``roleRef`` differs. Ours means controller-owned by these settings (``settings_uid``; a lost
      managed label is then restored), or carrying the managed label with no controller at all
      (bindings made by the upstream operator, which are adopted);
    * present but foreign (no managed label and not controlled by these settings, or controlled
      by another owner) -> never touched, reported in ``conflicts``;
    * not desired -> deleted only if it carries the managed label AND is controller-owned by these
      settings.
    """
    plan = Plan()
    by_name = {str((b.get("metadata") or {}).get("name")): b for b in existing}
    for name in sorted(desired):
        want = desired[name]
        have = by_name.get(name)
        if have is None:
            plan.create.append(want)
            continue
        controller = _controller_uid(have)
        ours = controller == settings_uid or (controller is None and _is_managed(have))
        if not ours:
            plan.conflicts.append(name)
            continue
        if have.get("roleRef") != want["roleRef"]:
            plan.recreate.append(want)
            continue
        fixed = _corrected(have, want)
        if fixed is not None:
            plan.update.append(fixed)
    for name in sorted(by_name):
        if name in desired:
            continue
        have = by_name[name]
        if _is_managed(have) and _controller_uid(have) == settings_uid:
            plan.delete.append(name)
    return plan
