"""Who made an object in a project namespace, and so what the operator may do with it.

In a project namespace the platform's backend, its kustomize manifests and this operator all put
``ambient-code.io/managed=true`` on their objects, and a session controller-owns Secrets that the
backend makes. Neither that label nor an ownerReference says "made by this operator". The one marker
that does is the label ``app.kubernetes.io/managed-by=agentic-operator``
(:data:`~agentic_operator.sessions.model.LABEL_MANAGED_BY`), which every object the operator creates
carries. The operator updates and deletes only objects with that marker.

Objects made before the marker existed are adopted (the marker is added, once) when their metadata
shows where they came from; adoption never deletes anything:

* :attr:`Origin.LEGACY`: ``managed=true`` and a controller ownerReference to *these* ProjectSettings
  (by UID). That is what earlier versions of this operator put on the group RoleBindings, and what
  the platform's own operator puts on the ``ambient-session-trigger`` objects.
* :attr:`Origin.UNOWNED`: ``managed=true`` and no ownerReference at all, which is how the platform's
  operator leaves its group RoleBindings. Callers adopt these only when the object already grants
  exactly what they want, so adoption changes nobody's rights.
* :attr:`Origin.BACKEND`: an object the backend made (its markers below) is never touched, whatever
  else it carries; nor is anything else (:attr:`Origin.FOREIGN`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.model import LABEL_MANAGED, LABEL_MANAGED_BY, MANAGED_BY

BACKEND_APPS: Final = frozenset(
    {
        "ambient-permission",
        "ambient-access-key",
        "ambient-runner-secrets",
        "ambient-integration-secrets",
    }
)
"""Values of the ``app`` label on objects the backend makes in a project namespace: user and
group permission bindings, access-key ServiceAccounts and bindings, the runner and integration
Secrets."""
BACKEND_LABELS: Final = ("ambient-code.io/role", "ambient-code.io/oauth")
"""Labels only the backend sets: on ``ambient-admin-<user>`` bindings and on OAuth Secrets."""
BACKEND_NAME_PREFIXES: Final = ("ambient-admin-", "ambient-permission-", "ambient-key-")
"""Name prefixes of the backend's bindings and access keys (also when their labels were lost)."""


class Origin(StrEnum):
    OURS = "ours"
    LEGACY = "legacy"
    UNOWNED = "unowned"
    BACKEND = "backend"
    FOREIGN = "foreign"


def labels_of(obj: Obj) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def is_ours(obj: Obj) -> bool:
    """The object carries this operator's marker."""
    return labels_of(obj).get(LABEL_MANAGED_BY) == MANAGED_BY


def is_backends(obj: Obj) -> bool:
    """The object carries one of the backend's markers (and not ours)."""
    labels = labels_of(obj)
    name = str((obj.get("metadata") or {}).get("name", ""))
    return (
        labels.get("app") in BACKEND_APPS
        or any(key in labels for key in BACKEND_LABELS)
        or name.startswith(BACKEND_NAME_PREFIXES)
    )


def controller_uid(obj: Obj) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def origin(obj: Obj, settings_uid: str) -> Origin:
    """Where ``obj`` comes from, seen from the ProjectSettings whose UID is ``settings_uid``."""
    if is_ours(obj):
        return Origin.OURS
    if is_backends(obj):
        return Origin.BACKEND
    if labels_of(obj).get(LABEL_MANAGED) != "true":
        return Origin.FOREIGN
    if controller_uid(obj) == settings_uid:
        return Origin.LEGACY
    if not (obj.get("metadata") or {}).get("ownerReferences"):
        return Origin.UNOWNED
    return Origin.FOREIGN


def with_marker(labels: dict[str, str] | None = None) -> dict[str, str]:
    """``labels`` plus the upstream-compatible ``managed=true`` and this operator's marker."""
    return {**(labels or {}), LABEL_MANAGED: "true", LABEL_MANAGED_BY: MANAGED_BY}
