"""The informer's in-memory cache: objects keyed by ``namespace/name``.

Readers (reconcilers, mappers) get the stored dicts themselves, not copies, so a lookup costs
nothing; in exchange they must treat them as read-only (copy before building a patch). Only the
informer writes. A per-namespace index makes "all Jobs in namespace X" cheap without a scan.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping

from agentic_operator.kube.resources import Obj, object_key, split_key


class Store:
    """Objects by key (``ns/name``, or ``name`` when cluster-scoped), indexed by namespace."""

    __slots__ = ("_by_ns", "_items")

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._by_ns: dict[str, dict[str, Obj]] = {}

    # -- reads -----------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def by_namespace(self, namespace: str) -> builtins.list[Obj]:
        """Objects of one namespace (empty for an unknown namespace)."""
        return list(self._by_ns.get(namespace, {}).values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    # -- writes (the informer's) -----------------------------------------------------------------

    def put(self, obj: Obj) -> Obj | None:
        """Store ``obj`` under its key; returns the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        self._items[key] = obj
        ns = split_key(key)[0] or ""
        self._by_ns.setdefault(ns, {})[key] = obj
        return old

    def delete(self, key: str) -> Obj | None:
        """Remove ``key``; returns the removed object, if it was there."""
        old = self._items.pop(key, None)
        if old is not None:
            ns = split_key(key)[0] or ""
            bucket = self._by_ns.get(ns)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._by_ns[ns]
        return old

    def replace(self, objects: Mapping[str, Obj]) -> dict[str, Obj]:
        """Swap in a complete new content (a relist); returns the previous content by key."""
        old = self._items
        self._items = dict(objects)
        self._by_ns = {}
        for key, obj in self._items.items():
            self._by_ns.setdefault(split_key(key)[0] or "", {})[key] = obj
        return old
