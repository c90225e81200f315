"""ProjectSettings ``groupAccess`` -> RoleBindings: the pure half of the projects controller.

A managed project namespace holds one ProjectSettings object named ``projectsettings``. Each
``spec.groupAccess`` entry ``{groupName, role}`` grants a group one of three project ClusterRoles
(``ambient-project-admin|edit|view``) through a RoleBinding in that namespace. This module decides
*what* should exist and *what to change*; the reconciler performs the API calls.

Differences from the upstream operator's handling of ``groupAccess``, on purpose:

* Unknown roles are reported (see :func:`invalid_entries`) instead of silently becoming ``view``:
  a typo such as ``adimn`` should be visible, not quietly grant less than intended.
* Bindings carry the operator's marker (see :mod:`agentic_operator.projects.ownership`) and a
  controller ownerReference to the ProjectSettings, so deleting the settings lets the garbage
  collector remove them, and bindings for removed entries are deleted: only those with the marker.
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
from agentic_operator.projects.ownership import Origin, controller_uid, origin, with_marker
from agentic_operator.sessions.model import LABEL_MANAGED, PROJECT_SETTINGS_NAME

ROLE_TO_CLUSTERROLE: dict[str, str] = {
    "admin": "ambient-project-admin",
    "edit": "ambient-project-edit",
    "view": "ambient-project-view",
}

MANAGED_LABEL = LABEL_MANAGED
"""On managed namespaces and, for the platform's sake, on the RoleBindings this controller makes
(value ``"true"``); shared with the backend, so it does not say who made an object."""

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
        "metadata": {
            "name": PROJECT_SETTINGS_NAME,
            "namespace": namespace,
            "labels": with_marker(),
        },
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


def settings_owner(project_settings: Obj) -> Obj:
    """The controller ownerReference to a stored ProjectSettings (namespace and uid set)."""
    meta = project_settings.get("metadata") or {}
    if not meta.get("namespace") or not meta.get("uid"):
        raise ValueError("ProjectSettings needs metadata.namespace and metadata.uid")
    return {
        "apiVersion": PROJECT_SETTINGS.api_version,
        "kind": PROJECT_SETTINGS.kind,
        "name": meta.get("name", PROJECT_SETTINGS_NAME),
        "uid": meta["uid"],
        # No blockOwnerDeletion: it would need update on projectsettings/finalizers wherever
        # the OwnerReferencesPermissionEnforcement admission plugin is enabled, for no benefit.
        "controller": True,
    }


def desired_role_bindings(project_settings: Obj) -> dict[str, Obj]:
    """Binding name -> the RoleBinding that should exist for each valid ``groupAccess`` entry.

    The settings must be a stored object (namespace and uid set): the bindings are owned by it.
    """
    owner = settings_owner(project_settings)
    namespace = project_settings["metadata"]["namespace"]
    entries, _ = _analyse(project_settings)
    return {
        name: {
            "apiVersion": ROLE_BINDINGS.api_version,
            "kind": ROLE_BINDINGS.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": with_marker(),
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


def _corrected(existing: Obj, want: Obj) -> Obj | None:
    """``existing`` with ``want``'s subjects, labels, annotations and owner; None if no drift.

    Another controller reference (an earlier incarnation of the settings) is replaced: the API
    server allows one controller per object."""
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
    if controller_uid(existing) != want_owner["uid"]:
        owners = [
            r for r in owners if not r.get("controller") and r.get("uid") != want_owner["uid"]
        ]
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


def _proven_ours(have: Obj, settings_uid: str) -> bool:
    """Ours, or made by an earlier version of this operator: ``managed=true``, the group-name
    annotation and a controller reference to these settings, all of which it always set."""
    found = origin(have, settings_uid)
    annotations = (have.get("metadata") or {}).get("annotations") or {}
    return found is Origin.OURS or (found is Origin.LEGACY and GROUP_ANNOTATION in annotations)


def _grants_the_same(have: Obj, want: Obj) -> bool:
    return bool(have.get("roleRef") == want["roleRef"] and have.get("subjects") == want["subjects"])


def plan_role_bindings(desired: dict[str, Obj], existing: list[Obj], settings_uid: str) -> Plan:
    """Compare desired bindings with the RoleBindings in the namespace (any labels).

    * missing -> create;
    * ours (the marker) or made by an earlier version of this operator (:func:`_proven_ours`) ->
      update if the subjects, labels, annotation or owner drifted (adding the marker adopts it),
      recreate if ``roleRef`` differs;
    * left by the platform's operator (``managed=true``, no owner, or a controller reference to
      these settings) and granting exactly what is wanted -> adopted by the same update;
    * anything else with a desired name (the backend's, someone else's, or an older one granting
      something else) -> never touched, reported in ``conflicts``;
    * not desired -> deleted only if it carries the marker, the group-name annotation and a
      controller reference to these settings. Objects without the marker are never deleted.
    """
    plan = Plan()
    by_name = {str((b.get("metadata") or {}).get("name")): b for b in existing}
    for name in sorted(desired):
        want = desired[name]
        have = by_name.get(name)
        if have is None:
            plan.create.append(want)
            continue
        found = origin(have, settings_uid)
        adoptable = found in (Origin.LEGACY, Origin.UNOWNED) and _grants_the_same(have, want)
        if not (_proven_ours(have, settings_uid) or adoptable):
            plan.conflicts.append(name)
            continue
        if have.get("roleRef") != want["roleRef"]:
            plan.recreate.append(want)
            continue
        fixed = _corrected(have, want)
        if fixed is not None:
            plan.update.append(fixed)
    for name in sorted(by_name):
        have = by_name[name]
        annotations = (have.get("metadata") or {}).get("annotations") or {}
        if (
            name not in desired
            and origin(have, settings_uid) is Origin.OURS
            and GROUP_ANNOTATION in annotations
            and controller_uid(have) == settings_uid
        ):
            plan.delete.append(name)
    return plan
