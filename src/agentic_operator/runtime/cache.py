"""Views over informer stores that reconcilers read: a write-through cache and a label index."""

from __future__ import annotations

from collections import defaultdict

from agentic_operator.kube.resources import Obj, object_key
from agentic_operator.runtime.informer import Informer
from agentic_operator.runtime.store import Store


class CacheWriter:
    """Read access to an informer's store plus the two corrections a reconciler makes after its
    own writes.

    ``replace_if`` writes our own write's result through to the cache (Informer.write_through:
    only if the cache still holds the version the write was based on); ``store_result`` does so
    for a write whose base version is unknown (unless the cache holds that version or a later
    one); ``remove`` forgets an object we deleted, so a reconcile that runs before the DELETED
    event does not delete twice.
    """

    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.store = informer.store

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def replace_if(self, obj: Obj, expected_resource_version: str | None) -> bool:
        return self.informer.write_through(obj, expected_resource_version)

    def store_result(self, obj: Obj) -> bool:
        return self.informer.store_result(obj)

    def remove(self, key: str) -> None:
        self.store.delete(key)


class LabelIndex:
    """(namespace, label value) -> object keys, kept current by informer callbacks."""

    def __init__(self, store: Store, label: str) -> None:
        self.store = store
        self.label = label
        self._index: defaultdict[tuple[str, str], set[str]] = defaultdict(set)

    def _value(self, obj: Obj) -> tuple[str, str] | None:
        meta = obj.get("metadata") or {}
        value = (meta.get("labels") or {}).get(self.label)
        return (str(meta.get("namespace", "")), str(value)) if value else None

    def on_add(self, obj: Obj) -> None:
        v = self._value(obj)
        if v:
            self._index[v].add(object_key(obj))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.on_delete(old)
        self.on_add(new)

    def on_delete(self, obj: Obj) -> None:
        v = self._value(obj)
        if v and v in self._index:
            self._index[v].discard(object_key(obj))
            if not self._index[v]:
                del self._index[v]

    def lookup(self, namespace: str, value: str) -> list[Obj]:
        out = []
        for key in self._index.get((namespace, value), ()):
            obj = self.store.get(key)
            if obj is not None:
                out.append(obj)
        return out
