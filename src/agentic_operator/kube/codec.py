"""Watch events read without decoding whole objects (the informer's hot path).

Decoding a ~4 KB object into dicts costs ~10 us; an informer that keeps objects as JSON bytes
(:class:`~agentic_operator.runtime.store.CompactStore`) only needs the event type, the object's
namespace, name and resourceVersion, and the object's bytes without ``metadata.managedFields``.
msgspec gets those by decoding into small typed structs, skipping every other field without
building it (~3 us per event, measured by ``bench/informer_bench.py``), and hands over the
object's JSON as a :class:`msgspec.Raw` slice of the line.

``managedFields`` is cut out of the bytes (:func:`strip_managed_fields`): msgspec returns its exact
JSON value, and the member ``"managedFields":<value>`` is removed with one adjacent comma. Removing
a whole member keeps any JSON object valid, so the cut cannot corrupt the object even in theory;
when the member is not found verbatim (pretty-printed JSON), the caller falls back to a full
decode: :func:`decode_watch_line`, which is also what :meth:`ApiClient.watch` yields.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import msgspec
import orjson

log = logging.getLogger(__name__)

MANAGED_FIELDS_KEY = b'"managedFields":'
LAST_APPLIED_KEY = b'"kubectl.kubernetes.io/last-applied-configuration"'


class _Meta(msgspec.Struct):
    name: str = ""
    namespace: str = ""
    resourceVersion: str = ""
    managedFields: msgspec.Raw = msgspec.Raw()
    annotations: msgspec.Raw = msgspec.Raw()


class _Head(msgspec.Struct):
    metadata: _Meta | None = None


class _Envelope(msgspec.Struct):
    type: str
    object: msgspec.Raw


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_head_decoder = msgspec.json.Decoder(_Head)


class Head(NamedTuple):
    """What the informer needs of an object before deciding whether to decode it."""

    name: str
    namespace: str
    resource_version: str
    managed_fields: bytes
    """The exact JSON of ``metadata.managedFields``, or ``b""`` when absent."""
    last_applied: bool
    """Whether ``metadata.annotations`` holds kubectl's last-applied-configuration."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


# The API server writes each event as {"type":"<TYPE>","object":<object>} in this order and
# without spaces; such lines are split by slicing, anything else is decoded.
_PREFIXES = {
    t: b'{"type":"%s","object":' % t.encode() for t in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")
}


def decode_envelope(line: bytes) -> tuple[str, bytes] | None:
    """Split a watch line into ``(type, object JSON)``; None (after logging) if malformed.

    A line in the API server's own layout is sliced, not decoded: the object's bytes are then only
    known to sit between the prefix and the final brace, and :func:`decode_head` (which rejects
    anything but a single JSON object) must accept them before they are used.

    Only lengths and error texts are logged, never the line itself: it may be a Secret.
    """
    if line[-1:] == b"}" and line.startswith(b'{"type":"'):
        end = line.find(b'"', 9)
        event_type = line[9:end].decode("ascii", "replace")
        prefix = _PREFIXES.get(event_type)
        if prefix is not None and line.startswith(prefix):
            return event_type, line[len(prefix) : -1]
    if not line.strip():
        return None
    try:
        event = _envelope_decoder.decode(line)
    except msgspec.DecodeError as exc:
        log.warning("skipping malformed watch event (%d bytes): %s", len(line), exc)
        return None
    return event.type, bytes(event.object)


def decode_watch_line(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """A whole watch event, ``(type, object)``, decoded in one pass (any layout; for callers
    that want every object as a dict). None, after logging, if it is malformed."""
    if not line.strip():
        return None
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        log.warning("skipping malformed watch event (%d bytes): %s", len(line), exc)
        return None
    event_type = event.get("type") if isinstance(event, dict) else None
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(event_type, str) or not isinstance(obj, dict):
        log.warning("skipping watch event without type/object (%d bytes)", len(line))
        return None
    return event_type, obj


def decode_head(raw: bytes) -> Head | None:
    """The object's identity, or None if ``raw`` is not an object with a metadata object."""
    try:
        head = _head_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
    meta = head.metadata
    if meta is None:
        return None
    return Head(
        meta.name,
        meta.namespace,
        meta.resourceVersion,
        bytes(meta.managedFields),
        LAST_APPLIED_KEY in bytes(meta.annotations),
    )


def strip_managed_fields(raw: bytes, managed_fields: bytes) -> bytes | None:
    """``raw`` minus its ``"managedFields":<managed_fields>`` member; None if not found verbatim."""
    start = raw.find(MANAGED_FIELDS_KEY)
    value_at = start + len(MANAGED_FIELDS_KEY)
    if start < 0 or not raw.startswith(managed_fields, value_at):
        return None
    end = value_at + len(managed_fields)
    if raw[end : end + 1] == b",":
        end += 1  # "managedFields":[...],"next":...
    elif start > 0 and raw[start - 1 : start] == b",":
        start -= 1  # ...,"managedFields":[...]}
    return raw[:start] + raw[end:]
