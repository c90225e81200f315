"""From object events to keys: mappers and predicates for :meth:`.controller.Controller.watch`.

A *mapper* turns a changed object into the keys to reconcile (the object's own, or its controlling
owner's); a :class:`Predicate` decides which events get that far. Both are plain functions of the
objects, kept apart from the controller so a watch can be wired and tested without a queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agentic_operator.kube.resources import Obj, object_key

Mapper = Callable[[Obj], Iterable[str]]
"""Maps a changed object to the keys to reconcile."""


# --- Mapping events to keys ---------------------------------------------------------------------


def enqueue_object(obj: Obj) -> list[str]:
    """The object's own key (controller-runtime's ``EnqueueRequestForObject``)."""
    return [object_key(obj)]


def _api_group(api_version: str) -> str:
    group, sep, _ = api_version.rpartition("/")
    return group if sep else ""


def enqueue_controller_owner(kind: str, group: str) -> Callable[[Obj], list[str]]:
    """A mapper to the key of the object's *controlling* owner, if that owner is ``kind``/``group``.

    Only the ownerReference with ``controller: true`` counts (there is at most one), and the owner
    is looked up in the object's own namespace: namespaced owners cannot live elsewhere. This is
    what ``Owns(&batchv1.Job{})`` does in controller-runtime.
    """

    def mapper(obj: Obj) -> list[str]:
        meta = obj.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            if not ref.get("controller"):
                continue
            if ref.get("kind") != kind or _api_group(str(ref.get("apiVersion", ""))) != group:
                return []
            name = ref.get("name")
            if not name:
                return []
            ns = meta.get("namespace")
            return [f"{ns}/{name}" if ns else str(name)]
        return []

    return mapper


def _yes(_obj: Obj) -> bool:
    return True


def _yes2(_old: Obj, _new: Obj) -> bool:
    return True


@dataclass(frozen=True)
class Predicate:
    """Filters events before they become keys; every callable defaults to "let it through".

    Combine with ``&``, ``|`` and ``~`` (or :func:`all_of` / :func:`any_of`).
    """

    create: Callable[[Obj], bool] = _yes
    update: Callable[[Obj, Obj], bool] = _yes2
    delete: Callable[[Obj], bool] = _yes

    def __and__(self, other: Predicate) -> Predicate:
        return all_of(self, other)

    def __or__(self, other: Predicate) -> Predicate:
        return any_of(self, other)

    def __invert__(self) -> Predicate:
        return Predicate(
            create=lambda o: not self.create(o),
            update=lambda old, new: not self.update(old, new),
            delete=lambda o: not self.delete(o),
        )


def all_of(*predicates: Predicate) -> Predicate:
    """Passes an event only if every predicate does."""
    return Predicate(
        create=lambda o: all(p.create(o) for p in predicates),
        update=lambda old, new: all(p.update(old, new) for p in predicates),
        delete=lambda o: all(p.delete(o) for p in predicates),
    )


def any_of(*predicates: Predicate) -> Predicate:
    """Passes an event if at least one predicate does."""
    return Predicate(
        create=lambda o: any(p.create(o) for p in predicates),
        update=lambda old, new: any(p.update(old, new) for p in predicates),
        delete=lambda o: any(p.delete(o) for p in predicates),
    )


def _meta(obj: Obj, field: str) -> object:
    return (obj.get("metadata") or {}).get(field)


GENERATION_CHANGED = Predicate(
    update=lambda old, new: _meta(old, "generation") != _meta(new, "generation")
)
"""Updates only when ``metadata.generation`` moved (spec changes; ignores status-only writes)."""

RESOURCE_VERSION_CHANGED = Predicate(
    update=lambda old, new: _meta(old, "resourceVersion") != _meta(new, "resourceVersion")
)
"""Updates only when the object really changed (drops periodic-resync re-deliveries)."""


__all__ = [
    "GENERATION_CHANGED",
    "RESOURCE_VERSION_CHANGED",
    "Mapper",
    "Predicate",
    "all_of",
    "any_of",
    "enqueue_controller_owner",
    "enqueue_object",
]
