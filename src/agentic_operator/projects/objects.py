"""The objects a project namespace gets from its ProjectSettings besides the group bindings.

* ``ambient-session-trigger``: a ServiceAccount, a Role and a RoleBinding. The backend's scheduled
  sessions are CronJobs whose pods run as that ServiceAccount and create or restart sessions
  (``agentic-operator session-trigger``); without the ServiceAccount the Job controller cannot even
  create their pods. The Role grants exactly what the trigger does: ``create``, ``get``, ``list``
  and ``update`` on ``agenticsessions``.
* ``ambient-default-limits``: a LimitRange giving containers without resources (init containers,
  trigger pods) requests and limits, which the platform relies on for autoscaler bin-packing.
  It is created once and never updated, so an administrator's edit stands.

Each carries this operator's marker and a controller ownerReference to the ProjectSettings.
:func:`plan_object` decides what to do about an existing namesake (see
:mod:`agentic_operator.projects.ownership`): ours is corrected, one the platform's operator made
(``managed=true``, owned by these settings) is adopted when it already says what we want, anything
else is never touched and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from agentic_operator.kube.resources import (
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    Obj,
    Resource,
)
from agentic_operator.projects.bindings import RBAC_API_GROUP, settings_owner
from agentic_operator.projects.ownership import Origin, controller_uid, origin, with_marker
from agentic_operator.sessions.model import GROUP

TRIGGER_NAME: Final = "ambient-session-trigger"
"""ServiceAccount, Role and RoleBinding of the backend's scheduled-session CronJob pods."""
TRIGGER_VERBS: Final = ("create", "get", "list", "update")
LIMIT_RANGE_NAME: Final = "ambient-default-limits"
LIMIT_RANGES: Final = Resource("", "v1", "limitranges", "LimitRange")
DEFAULT_REQUEST: Final = {"cpu": "250m", "memory": "256Mi"}
DEFAULT_LIMIT: Final = {"cpu": "2", "memory": "4Gi"}

CONTENT: Final[dict[str, tuple[str, ...]]] = {
    SERVICE_ACCOUNTS.kind: (),
    ROLES.kind: ("rules",),
    ROLE_BINDINGS.kind: ("roleRef", "subjects"),
    LIMIT_RANGES.kind: ("spec",),
}
"""What an object says, by kind: compared to decide on drift and adoption."""


def _metadata(project_settings: Obj, name: str) -> Obj:
    return {
        "name": name,
        "namespace": project_settings["metadata"]["namespace"],
        "labels": with_marker(),
        "ownerReferences": [settings_owner(project_settings)],
    }


def trigger_service_account(project_settings: Obj) -> Obj:
    return {
        "apiVersion": SERVICE_ACCOUNTS.api_version,
        "kind": SERVICE_ACCOUNTS.kind,
        "metadata": _metadata(project_settings, TRIGGER_NAME),
    }


def trigger_role(project_settings: Obj) -> Obj:
    return {
        "apiVersion": ROLES.api_version,
        "kind": ROLES.kind,
        "metadata": _metadata(project_settings, TRIGGER_NAME),
        "rules": [
            {"apiGroups": [GROUP], "resources": ["agenticsessions"], "verbs": list(TRIGGER_VERBS)}
        ],
    }


def trigger_role_binding(project_settings: Obj) -> Obj:
    namespace = project_settings["metadata"]["namespace"]
    return {
        "apiVersion": ROLE_BINDINGS.api_version,
        "kind": ROLE_BINDINGS.kind,
        "metadata": _metadata(project_settings, TRIGGER_NAME),
        "roleRef": {"apiGroup": RBAC_API_GROUP, "kind": "Role", "name": TRIGGER_NAME},
        "subjects": [{"kind": "ServiceAccount", "name": TRIGGER_NAME, "namespace": namespace}],
    }


def default_limit_range(project_settings: Obj) -> Obj:
    return {
        "apiVersion": LIMIT_RANGES.api_version,
        "kind": LIMIT_RANGES.kind,
        "metadata": _metadata(project_settings, LIMIT_RANGE_NAME),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": dict(DEFAULT_REQUEST),
                    "default": dict(DEFAULT_LIMIT),
                }
            ]
        },
    }


Action = Literal["none", "create", "update", "recreate", "conflict"]


@dataclass(frozen=True, slots=True)
class Write:
    """What to do about one object: ``body`` is what to create, or the PUT body (it keeps the
    existing ``resourceVersion``) for an update; ``origin`` says who made an existing object."""

    action: Action
    body: Obj | None = None
    origin: Origin | None = None


def _says_the_same(have: Obj, want: Obj) -> bool:
    return all(have.get(key) == want.get(key) for key in CONTENT[want["kind"]])


def _corrected(have: Obj, want: Obj) -> Obj | None:
    """``have`` with ``want``'s content, labels and controller owner; None when nothing differs.
    Labels and annotations of others are kept."""
    meta = have.get("metadata") or {}
    want_owner = want["metadata"]["ownerReferences"][0]
    labels = {**(meta.get("labels") or {}), **want["metadata"]["labels"]}
    owners = list(meta.get("ownerReferences") or [])
    if controller_uid(have) != want_owner["uid"]:
        owners = [
            r for r in owners if not r.get("controller") and r.get("uid") != want_owner["uid"]
        ]
        owners.append(dict(want_owner))
    fixed = {**have, "metadata": {**meta, "labels": labels, "ownerReferences": owners}}
    for key in CONTENT[want["kind"]]:
        fixed[key] = want[key]
    return None if fixed == have else fixed


def plan_object(want: Obj, have: Obj | None, settings_uid: str, *, create_only: bool) -> Write:
    """One object's write; ``create_only`` objects are never changed once they exist.

    A RoleBinding of ours whose immutable ``roleRef`` differs is recreated; an earlier object is
    adopted only when it already says what ``want`` says (adoption never changes what it grants).
    """
    if have is None:
        return Write("create", want)
    found = origin(have, settings_uid)
    if create_only:
        return Write("none", origin=found)
    if found is Origin.OURS:
        if want["kind"] == ROLE_BINDINGS.kind and have.get("roleRef") != want["roleRef"]:
            return Write("recreate", want, found)
    elif not (found is Origin.LEGACY and _says_the_same(have, want)):
        return Write("conflict", origin=found)
    fixed = _corrected(have, want)
    return Write("none", origin=found) if fixed is None else Write("update", fixed, found)


def grants_trigger(obj: Obj, namespace: str) -> bool:
    """Whether an object named like ours, whoever made it, does the trigger's job: any
    ServiceAccount; a Role granting the four verbs on sessions; a binding of that ServiceAccount
    to that Role."""
    kind = obj.get("kind")
    if kind == SERVICE_ACCOUNTS.kind:
        return True
    if kind == ROLES.kind:
        held = {
            verb
            for rule in obj.get("rules") or []
            if GROUP in (rule.get("apiGroups") or [])
            and "agenticsessions" in (rule.get("resources") or [])
            and not rule.get("resourceNames")
            for verb in rule.get("verbs") or []
        }
        return set(TRIGGER_VERBS) <= held
    if kind == ROLE_BINDINGS.kind:
        role = {"apiGroup": RBAC_API_GROUP, "kind": "Role", "name": TRIGGER_NAME}
        # A ServiceAccount subject without a namespace means the binding's own namespace.
        return obj.get("roleRef") == role and any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == TRIGGER_NAME
            and (s.get("namespace") or namespace) == namespace
            for s in obj.get("subjects") or []
        )
    return False
