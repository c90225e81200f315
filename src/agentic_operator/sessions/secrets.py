"""Copies of shared secrets (Vertex AI credentials, Langfuse keys) into a session's namespace.

The rules of the upstream operator (its unit tests are the contract), as a pure function:

* target absent -> create it with the source's data, type and labels, the annotation
  ``vteam.ambient-code/copied-from: <ns>/<name>`` and a controller ownerReference to the session;
* target already owned by this session (any ownerReference with its UID) -> leave it untouched;
* otherwise -> add an ownerReference for this session (``controller: true`` only if the secret has
  no controller yet), refresh the data from the source and set the annotation; never mutate the
  caller's objects.

Unlike upstream, copies are never deleted explicitly when a session ends (that removed a secret
other sessions of the namespace were still using): every session that uses a copy owns it, and the
garbage collector deletes it when the last owner is gone.
"""

from __future__ import annotations

import copy
from typing import Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.model import owner_reference

COPIED_FROM: Final = "vteam.ambient-code/copied-from"


def copy_plan(source: Obj, target: Obj | None, session: Obj) -> Obj | None:
    """The Secret to create (target None) or to PUT (target given); None when nothing to do."""
    src_meta = source.get("metadata") or {}
    origin = f"{src_meta.get('namespace')}/{src_meta.get('name')}"
    ref = owner_reference(session)
    if target is None:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": src_meta.get("name"),
                "namespace": (session.get("metadata") or {}).get("namespace"),
                "labels": dict(src_meta.get("labels") or {}),
                "annotations": {COPIED_FROM: origin},
                "ownerReferences": [ref],
            },
            "type": source.get("type", "Opaque"),
            "data": dict(source.get("data") or {}),
        }
    refs = [dict(r) for r in (target.get("metadata") or {}).get("ownerReferences") or []]
    if any(r.get("uid") == ref["uid"] for r in refs):
        return None
    if any(r.get("controller") for r in refs):
        ref = {**ref, "controller": False}
    updated = copy.deepcopy(target)
    meta = updated.setdefault("metadata", {})
    meta["ownerReferences"] = [*refs, ref]
    meta["annotations"] = {**(meta.get("annotations") or {}), COPIED_FROM: origin}
    updated["data"] = dict(source.get("data") or {})
    return updated
