"""The informer's in-memory cache: objects keyed by ``namespace/name``, indexed by namespace.

Two representations with the same interface:

* :class:`Store` keeps the decoded dicts. Reads cost nothing and return the stored dicts
  themselves, so readers must treat them as read-only (copy before building a patch).
* :class:`CompactStore` keeps each object as JSON bytes (the watch event's own, see
  :mod:`agentic_operator.kube.codec`) and decodes on every read. A Python dict tree costs about
  four times its JSON size (a ~4 KB Job holds ~70 dicts of ~190 bytes each plus its strings), so
  for large caches this cuts memory by ~4x; in exchange each read costs a decode (~10 us for 4 KB)
  and returns a fresh copy that the caller may modify.

Only the informer writes, plus :meth:`Store.write_through` for the operator's own writes.

Write-through: right after a successful write the cache does not yet hold its result (the watch
event is on its way), and a reconcile that runs in between would act on stale data, fail with a
409 and retry. ``write_through`` stores the write's result at once, but only if the cache still
holds the version the write was based on, and remembers its resourceVersion. Until the watch
delivers that version, older watch events for the key (our own earlier writes, still in flight)
are skipped instead of regressing the cache; the write's own event then finds nothing changed, so
it wakes no controller. Only resourceVersions that both parse as integers (etcd revisions) are
ordered; anything else is applied as usual, so the worst case is the normal informer behaviour.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from agentic_operator.kube.resources import Obj, object_key, split_key


class Upsert(NamedTuple):
    """Outcome of :meth:`Store.upsert`."""

    existed: bool
    changed: bool
    """False when the stored object had the same resourceVersion (CompactStore: the same non-empty
    one; bytes are not compared)."""
    old: Obj | None
    """The replaced object, when it existed and changed (CompactStore decodes it only when
    ``need_old`` is set)."""


def _rv(obj: Obj) -> object:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _older(rv: object, than: str) -> bool:
    """True if ``rv`` is an etcd revision before ``than`` (False when either is not an integer)."""
    try:
        return int(str(rv)) < int(than)
    except ValueError:
        return False


class Store:
    """Decoded objects by key (``ns/name``, or ``name`` when cluster-scoped)."""

    __slots__ = ("_by_ns", "_items", "_written")

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._by_ns: dict[str, dict[str, Any]] = {}
        self._written: dict[str, str] = {}

    # -- representation (overridden by CompactStore) ---------------------------------------------

    def _encode(self, obj: Obj) -> Any:
        return obj

    def _stored_rv(self, value: Any) -> object:
        return _rv(value)

    def _decode(self, value: Any) -> Obj:
        return value  # type: ignore[no-any-return]

    # -- reads -----------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        value = self._items.get(key)
        return None if value is None else self._decode(value)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> builtins.list[Obj]:
        decode = self._decode
        return [decode(v) for v in self._items.values()]

    def keys(self) -> builtins.list[str]:
        return builtins.list(self._items)

    def by_namespace(self, namespace: str) -> builtins.list[Obj]:
        """Objects of one namespace (empty for an unknown namespace)."""
        decode = self._decode
        return [decode(v) for v in self._by_ns.get(namespace, {}).values()]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(builtins.list(self._items))

    # -- writes ----------------------------------------------------------------------------------

    def put(self, obj: Obj) -> None:
        """Store ``obj`` under its key (replacing any previous version)."""
        self._set(object_key(obj), self._encode(obj))

    def write_through(self, obj: Obj, expected_resource_version: str | None) -> bool:
        """Store the result of our own write if the cache holds the version it was based on.

        ``expected_resource_version`` None means "only if the key is absent" (a create). Returns
        whether the object was stored. See the module docstring.
        """
        key = object_key(obj)
        current = self._items.get(key)
        if current is None:
            if expected_resource_version is not None:
                return False
        elif self._stored_rv(current) != expected_resource_version:
            return False
        self._remember(key, obj)
        return True

    def store_result(self, obj: Obj) -> bool:
        """Store the result of our own write of a child (its create, update or patch, a
        foreground delete's answer, a read after AlreadyExists) unless the cache already holds
        that version or a later one. Unlike :meth:`write_through` the caller does not know the
        version its write was based on, so only etcd-revision order guards against regressing the
        cache (resourceVersions that are not integers are stored, as a watch event would be)."""
        key = object_key(obj)
        current = self._items.get(key)
        rv = _rv(obj)
        if current is not None:
            held = self._stored_rv(current)
            if held == rv or (held is not None and _older(rv, str(held))):
                return False
        self._remember(key, obj)
        return True

    def _remember(self, key: str, obj: Obj) -> None:
        self._set(key, self._encode(obj))
        rv = _rv(obj)
        if rv is not None:
            self._written[key] = str(rv)

    def _skip_stale(self, key: str, rv: object) -> bool:
        """True if a watch event of version ``rv`` predates our own pending write of ``key`` (see
        write_through)."""
        pending = self._written.get(key)
        if pending is None:
            return False
        if rv == pending:
            del self._written[key]
            return False
        if _older(rv, pending):
            return True
        del self._written[key]
        return False

    def upsert(self, obj: Obj, *, need_old: bool = True) -> Upsert:
        """Store ``obj`` and report what it replaced (the informer's per-event step)."""
        key = object_key(obj)
        if self._skip_stale(key, _rv(obj)):
            return Upsert(True, False, None)
        old = self._items.get(key)
        self._set(key, obj)
        if old is None:
            return Upsert(False, True, None)
        if _rv(old) == _rv(obj):
            return Upsert(True, False, None)
        return Upsert(True, True, old)

    def delete(self, key: str) -> Obj | None:
        """Remove ``key``; returns the removed object, if it was there."""
        self._written.pop(key, None)
        old = self._items.pop(key, None)
        if old is None:
            return None
        ns = split_key(key)[0] or ""
        bucket = self._by_ns.get(ns)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._by_ns[ns]
        return self._decode(old)

    def encode(self, obj: Obj) -> Any:
        """The stored form of ``obj`` (for :meth:`replace_encoded`)."""
        return self._encode(obj)

    def replace(self, objects: Mapping[str, Obj]) -> dict[str, Obj | None]:
        """Swap in a complete new content (a relist) and return what changed, by key.

        A key of ``objects`` maps to None when it is new, to its previous object when its
        resourceVersion differs; a key that vanished maps to its last object. Unchanged keys are
        left out, so a relist notifies nothing for them.
        """
        return self.replace_encoded({k: self._encode(v) for k, v in objects.items()})

    def replace_encoded(self, values: Mapping[str, Any]) -> dict[str, Obj | None]:
        """:meth:`replace` with values already in stored form (see :meth:`encode`)."""
        previous = self._items
        self._items = {}
        self._by_ns = {}
        self._written = {}
        changes: dict[str, Obj | None] = {}
        for key, value in values.items():
            self._set(key, value)
            old = previous.pop(key, None)
            if old is None:
                changes[key] = None
            elif self._differs(old, value):
                changes[key] = self._decode(old)
        for key, old in previous.items():
            changes[key] = self._decode(old)
        return changes

    def _differs(self, old: Any, new: Any) -> bool:
        return bool(_rv(old) != _rv(new))

    def _set(self, key: str, value: Any) -> None:
        self._items[key] = value
        self._by_ns.setdefault(split_key(key)[0] or "", {})[key] = value


def _encode_exact(obj: Obj) -> bytes:
    """orjson encoding in a right-sized buffer.

    orjson returns its growth buffer as is (8 KiB for a 3 KB object, measured with tracemalloc and
    RSS); copying into an exact-size ``bytes`` costs ~0.3 us and halves what a stored object holds.
    """
    return bytes(memoryview(orjson.dumps(obj)))


class CompactStore(Store):
    """Objects kept as ``(resourceVersion, JSON bytes)``; every read decodes a fresh copy.

    The JSON comes either from orjson (objects given as dicts) or, through :meth:`upsert_raw`,
    straight from the watch stream, so it is never decoded unless somebody reads it. Versions are
    compared by resourceVersion, not by bytes: the two encodings of one version may differ.
    """

    __slots__ = ()

    def _encode(self, obj: Obj) -> tuple[str, bytes]:
        return str(_rv(obj) or ""), _encode_exact(obj)

    def _decode(self, value: Any) -> Obj:
        return orjson.loads(value[1])  # type: ignore[no-any-return]

    def _stored_rv(self, value: Any) -> object:
        return value[0] or None

    def _differs(self, old: Any, new: Any) -> bool:
        return bool(old[0] != new[0])

    def upsert(self, obj: Obj, *, need_old: bool = True) -> Upsert:
        value = self._encode(obj)
        return self.upsert_raw(object_key(obj), value[0], value[1], need_old=need_old)

    def upsert_raw(
        self, key: str, resource_version: str, data: bytes, *, need_old: bool = True
    ) -> Upsert:
        """:meth:`upsert` of an object already encoded as JSON ``data`` (a watch event's bytes,
        managedFields removed), known by its ``key`` and ``resource_version``."""
        if self._skip_stale(key, resource_version):
            return Upsert(True, False, None)
        old = self._items.get(key)
        self._set(key, (resource_version, data))
        if old is None:
            return Upsert(False, True, None)
        if old[0] == resource_version and resource_version:
            return Upsert(True, False, None)
        return Upsert(True, True, orjson.loads(old[1]) if need_old else None)
