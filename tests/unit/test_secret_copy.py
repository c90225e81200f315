"""Shared-secret copy rules (the upstream operator's copySecretToNamespace tests, as a table)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentic_operator.sessions.secrets import COPIED_FROM, copy_plan

SESSION = {
    "apiVersion": "vteam.ambient-code/v1alpha1",
    "kind": "AgenticSession",
    "metadata": {"name": "s1", "namespace": "proj", "uid": "uid-s1"},
}
SOURCE = {
    "metadata": {"name": "ambient-vertex", "namespace": "backend", "labels": {"a": "b"}},
    "type": "Opaque",
    "data": {"key.json": "bmV3"},
}


def target(refs: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "ambient-vertex",
        "namespace": "proj",
        "resourceVersion": "5",
        "ownerReferences": refs,
    }
    if annotations is not None:
        meta["annotations"] = annotations
    return {"metadata": meta, "type": "Opaque", "data": {"key.json": "b2xk"}}


def ref(uid: str, *, controller: bool, kind: str = "AgenticSession") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "name": uid, "uid": uid, "controller": controller}


def test_create_new_copy() -> None:
    body = copy_plan(SOURCE, None, SESSION)
    assert body is not None
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("ambient-vertex", "proj")
    assert body["data"] == SOURCE["data"]
    assert meta["labels"] == {"a": "b"}
    assert meta["annotations"] == {COPIED_FROM: "backend/ambient-vertex"}
    assert len(meta["ownerReferences"]) == 1
    owner = meta["ownerReferences"][0]
    assert (owner["uid"], owner["kind"], owner["controller"]) == ("uid-s1", "AgenticSession", True)


@pytest.mark.parametrize(
    ("existing_refs", "annotations", "expect_update", "expect_controller"),
    [
        # already owned (as controller) by this session: untouched
        ([ref("uid-s1", controller=True)], {}, False, None),
        # an unrelated non-controller owner (e.g. a Pod): ours is added as controller
        ([ref("pod-uid", controller=False, kind="Pod")], {}, True, True),
        # another session already controls it: ours is added without the controller flag
        ([ref("uid-other", controller=True)], {}, True, False),
        # nil annotations on the existing copy: the map is created
        ([], None, True, True),
    ],
)
def test_existing_copy(
    existing_refs: list[dict[str, Any]],
    annotations: dict[str, str] | None,
    expect_update: bool,
    expect_controller: bool | None,
) -> None:
    existing = target(existing_refs, annotations)
    before = copy.deepcopy(existing)
    body = copy_plan(SOURCE, existing, SESSION)
    assert existing == before, "the caller's object was mutated"
    if not expect_update:
        assert body is None
        return
    assert body is not None
    refs = body["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == [r["uid"] for r in existing_refs] + ["uid-s1"]
    assert refs[-1]["controller"] is expect_controller
    assert sum(1 for r in refs if r.get("controller")) == 1
    assert body["data"] == SOURCE["data"]
    assert body["metadata"]["annotations"][COPIED_FROM] == "backend/ambient-vertex"
    assert body["metadata"]["resourceVersion"] == "5"  # a PUT with optimistic concurrency
    assert refs is not existing["metadata"]["ownerReferences"]
