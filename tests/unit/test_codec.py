"""Watch events read without decoding whole objects (kube/codec.py) and the informer's raw path."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest

from agentic_operator.kube import codec, errors
from agentic_operator.kube.client import ApiClient
from agentic_operator.kube.resources import Obj, Resource
from agentic_operator.runtime.informer import LAST_APPLIED, Informer
from agentic_operator.runtime.store import CompactStore

CM = Resource("", "v1", "configmaps", "ConfigMap")
MF = b'[{"manager":"kubectl","fieldsV1":{"f:data":{}}}]'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            b'{"metadata":{"managedFields":MF,"name":"a"}}',
            b'{"metadata":{"name":"a"}}',
            id="first-member",
        ),
        pytest.param(
            b'{"metadata":{"name":"a","managedFields":MF,"uid":"u"}}',
            b'{"metadata":{"name":"a","uid":"u"}}',
            id="middle-member",
        ),
        pytest.param(
            b'{"metadata":{"name":"a","managedFields":MF},"data":{}}',
            b'{"metadata":{"name":"a"},"data":{}}',
            id="last-member",
        ),
        pytest.param(
            b'{"metadata":{"managedFields":MF}}',
            b'{"metadata":{}}',
            id="only-member",
        ),
        pytest.param(b'{"metadata":{"name":"a"}}', None, id="absent"),
        pytest.param(
            b'{"metadata":{"name":"a", "managedFields": MF}}', None, id="not-verbatim-spaces"
        ),
    ],
)
def test_strip_managed_fields(raw: bytes, expected: bytes | None) -> None:
    raw = raw.replace(b"MF", MF)
    stripped = codec.strip_managed_fields(raw, MF)
    assert stripped == expected
    if stripped is not None:
        reference = orjson.loads(raw)
        del reference["metadata"]["managedFields"]
        assert orjson.loads(stripped) == reference


def test_strip_refuses_a_different_value() -> None:
    raw = b'{"metadata":{"managedFields":[1],"name":"a"}}'
    assert codec.strip_managed_fields(raw, b"[2]") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            b'{"type":"MODIFIED","object":{"a":1}}', ("MODIFIED", b'{"a":1}'), id="server-layout"
        ),
        pytest.param(
            b'{"type":"BOOKMARK","object":{"metadata":{}}}',
            ("BOOKMARK", b'{"metadata":{}}'),
            id="bookmark",
        ),
        pytest.param(
            b'{"object":{"a":1},"type":"ADDED"}', ("ADDED", b'{"a":1}'), id="other-order-decoded"
        ),
        pytest.param(
            b'{ "type" : "ADDED" , "object" : {"a": 1} }', ("ADDED", b'{"a": 1}'), id="spaces"
        ),
        pytest.param(b'{"type":"ERROR","object":{"code":410}}', ("ERROR", b'{"code":410}')),
        pytest.param(b"", None, id="empty"),
        pytest.param(b"   ", None, id="blank"),
        pytest.param(b'{"type":"ADDED"', None, id="truncated"),
        pytest.param(b'{"type":"ADDED"}', None, id="no-object"),
        pytest.param(b'{"type":7,"object":{}}', None, id="type-not-string"),
        pytest.param(b"[1]", None, id="not-an-object"),
    ],
)
def test_decode_envelope(line: bytes, expected: tuple[str, bytes] | None) -> None:
    assert codec.decode_envelope(line) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            b'{"metadata":{"name":"a","namespace":"ns","resourceVersion":"7"},"spec":{"x":[1]}}',
            codec.Head("a", "ns", "7", b"", last_applied=False),
            id="namespaced",
        ),
        pytest.param(
            b'{"metadata":{"name":"n","managedFields":[{"m":1}],'
            b'"annotations":{"' + LAST_APPLIED.encode() + b'":"{}"}}}',
            codec.Head("n", "", "", b'[{"m":1}]', last_applied=True),
            id="cluster-scoped-with-extras",
        ),
        pytest.param(
            b'{"metadata":{"annotations":{"note":"' + LAST_APPLIED.encode() + b' is a key"}}}',
            codec.Head("", "", "", b"", last_applied=False),
            id="key-only-as-text-in-a-value",
        ),
        pytest.param(b'{"spec":{}}', None, id="no-metadata"),
        pytest.param(b'{"metadata":null}', None, id="null-metadata"),
        pytest.param(b'{"metadata":{"name":5}}', None, id="name-not-string"),
        pytest.param(b'{"metadata":{}},"extra":1', None, id="trailing-bytes"),
        pytest.param(b"[]", None, id="array"),
    ],
)
def test_decode_head(raw: bytes, expected: codec.Head | None) -> None:
    assert codec.decode_head(raw) == expected


def test_head_key() -> None:
    assert codec.Head("a", "ns", "1", b"", last_applied=False).key == "ns/a"
    assert codec.Head("node", "", "1", b"", last_applied=False).key == "node"


# -- the informer's raw path -------------------------------------------------------------------


def cm(name: str, rv: int, *, last_applied: bool = False, **data: str) -> Obj:
    annotations = {"keep": "me"}
    if last_applied:
        annotations[LAST_APPLIED] = '{"big":"blob"}'
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(rv),
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}],
            "annotations": annotations,
        },
        "data": data,
    }


def line(event_type: str, obj: Obj) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj})


def pruned(obj: Obj) -> Obj:
    obj = orjson.loads(orjson.dumps(obj))
    del obj["metadata"]["managedFields"]
    obj["metadata"]["annotations"].pop(LAST_APPLIED, None)
    return obj


class Seen:
    def __init__(self, informer: Informer) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        informer.add_handler(
            lambda o: self.events.append(("add", None, o)),
            lambda old, new: self.events.append(("update", old, new)),
            lambda o: self.events.append(("delete", None, o)),
        )


def informer(**kwargs: Any) -> Informer:
    return Informer(cast(ApiClient, None), CM, **kwargs)


def test_raw_path_stores_event_bytes_without_managed_fields() -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1, k="v")))
    inf.process_line(line("MODIFIED", cm("a", 2, k="w")))
    store = inf.store
    assert isinstance(store, CompactStore)
    assert store.get("ns/a") == pruned(cm("a", 2, k="w"))
    assert seen.events == [
        ("add", None, pruned(cm("a", 1, k="v"))),
        ("update", pruned(cm("a", 1, k="v")), pruned(cm("a", 2, k="w"))),
    ]
    assert inf.last_sync_resource_version == "2"


def test_same_version_again_notifies_nobody() -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1)))
    inf.process_line(line("MODIFIED", cm("a", 1)))
    assert [e[0] for e in seen.events] == ["add"]


def test_last_applied_annotation_is_dropped_through_the_decoding_path() -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1, last_applied=True)))
    assert inf.store.get("ns/a") == pruned(cm("a", 1))
    assert seen.events == [("add", None, pruned(cm("a", 1)))]


def test_write_through_then_own_event_is_quiet_on_the_raw_path() -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1, k="v")))
    assert inf.write_through(cm("a", 3, k="ours"), "1")
    inf.process_line(line("MODIFIED", cm("a", 2, k="stale")))  # in flight before our write
    inf.process_line(line("MODIFIED", cm("a", 3, k="ours")))  # our write's own event
    assert inf.store.get("ns/a") == pruned(cm("a", 3, k="ours"))
    assert [e[0] for e in seen.events] == ["add"]
    inf.process_line(line("MODIFIED", cm("a", 4, k="theirs")))
    assert seen.events[-1] == (
        "update",
        pruned(cm("a", 3, k="ours")),
        pruned(cm("a", 4, k="theirs")),
    )


def test_deletes_bookmarks_and_errors() -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1)))
    inf.process_line(line("DELETED", cm("a", 5)))
    assert "ns/a" not in inf.store
    assert seen.events[-1] == ("delete", None, pruned(cm("a", 5)))
    inf.process_line(line("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "9"}}))
    assert inf.last_sync_resource_version == "9"
    with pytest.raises(errors.Gone):
        inf.process_line(
            line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})
        )


@pytest.mark.parametrize(
    "bad",
    [
        b'{"type":"ADDED","object":{"metadata":{"name":"a"}}',  # truncated
        b'{"type":"ADDED","object":[1,2]}',
        b'{"type":"ADDED","object":{"metadata":{}}}',  # no name
        b'{"type":"MODIFIED","object":{"metadata":{"name":"a"}},"junk"}',
        b'{"type":"SURPRISE","object":{"metadata":{"name":"a"}}}',
    ],
)
def test_malformed_lines_are_skipped(bad: bytes) -> None:
    inf = informer()
    seen = Seen(inf)
    inf.process_line(bad)
    inf.process_line(line("ADDED", cm("b", 2)))
    assert inf.store.keys() == ["ns/b"]
    assert [e[0] for e in seen.events] == ["add"]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"compact": False}, id="dict-store"),
        pytest.param({"transform": lambda o: o}, id="transform"),
        pytest.param({"prune": False}, id="no-prune"),
    ],
)
def test_other_configurations_take_the_same_events(kwargs: dict[str, Any]) -> None:
    inf = informer(**kwargs)
    seen = Seen(inf)
    inf.process_line(line("ADDED", cm("a", 1)))
    inf.process_line(line("MODIFIED", cm("a", 2)))
    expected = cm("a", 2) if kwargs.get("prune") is False else pruned(cm("a", 2))
    assert inf.store.get("ns/a") == expected
    assert [e[0] for e in seen.events] == ["add", "update"]


def test_extra_envelope_fields_fall_back_to_a_full_decode() -> None:
    inf = informer()
    inf.process_line(b'{"type":"ADDED","object":' + orjson.dumps(cm("a", 1)) + b',"x":1}')
    assert inf.store.get("ns/a") == pruned(cm("a", 1))
