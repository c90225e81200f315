"""Write-through of the operator's own writes into the informer store (both representations)."""

from __future__ import annotations

import pytest

from agentic_operator.kube.resources import Obj
from agentic_operator.runtime.store import CompactStore, Store


def obj(rv: str, phase: str = "Pending") -> Obj:
    return {
        "metadata": {"name": "s", "namespace": "ns", "resourceVersion": rv},
        "status": {"phase": phase},
    }


STORES = [pytest.param(Store, id="dict"), pytest.param(CompactStore, id="compact")]


@pytest.mark.parametrize("cls", STORES)
def test_stale_events_do_not_regress_a_written_through_object(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("10"))
    # Our writes: 10 -> 11 (Pending, status) -> 12 (Creating), each written through.
    assert store.write_through(obj("11", "Pending"), "10")
    assert store.write_through(obj("12", "Creating"), "11")
    # The watch now delivers 11 (our first write): older than our pending 12, skipped.
    assert store.upsert(obj("11", "Pending")) == (True, False, None)
    assert store.get("ns/s") == obj("12", "Creating")
    # Then 12 itself: same version, no change to report, marker cleared.
    assert store.upsert(obj("12", "Creating")).changed is False
    # A later change by someone else is applied normally.
    up = store.upsert(obj("13", "Running"))
    assert up.changed is True
    assert store.get("ns/s") == obj("13", "Running")


@pytest.mark.parametrize("cls", STORES)
def test_write_through_only_on_the_version_it_was_based_on(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("20"))
    assert not store.write_through(obj("22"), "19")  # the cache moved on: leave it alone
    assert store.get("ns/s") == obj("20")
    assert not store.write_through(obj("22"), None)  # None means "only if absent"
    assert store.write_through(
        {**obj("5"), "metadata": {**obj("5")["metadata"], "name": "t"}}, None
    )
    assert store.get("ns/t") is not None


@pytest.mark.parametrize("cls", STORES)
def test_a_newer_event_than_our_write_wins_and_clears_the_marker(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("1"))
    store.write_through(obj("3", "Creating"), "1")
    assert store.upsert(obj("7", "Running")).changed is True
    assert store.get("ns/s") == obj("7", "Running")
    assert store.upsert(obj("8", "Completed")).changed is True


@pytest.mark.parametrize("cls", STORES)
def test_relist_and_delete_forget_pending_writes(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("1"))
    store.write_through(obj("9"), "1")
    store.replace({"ns/s": obj("4")})
    assert store.upsert(obj("5", "Running")).changed is True  # not skipped as "stale"
    store.write_through(obj("9"), "5")
    store.delete("ns/s")
    assert store.upsert(obj("6")).existed is False


@pytest.mark.parametrize("cls", STORES)
def test_non_integer_versions_are_never_skipped(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("a"))
    store.write_through(obj("c", "Creating"), "a")
    assert store.upsert(obj("b", "Pending")).changed is True


# (version the cache holds or None, version of the write's result, stored?)
RESULTS = [
    pytest.param(None, "5", True, id="absent: stored"),
    pytest.param("4", "5", True, id="older held: replaced"),
    pytest.param("5", "5", False, id="same version: nothing to do"),
    pytest.param("6", "5", False, id="newer held: kept"),
    pytest.param("x", "5", True, id="not an etcd revision: stored like an event"),
]


@pytest.mark.parametrize("cls", STORES)
@pytest.mark.parametrize(("held", "written", "stored"), RESULTS)
def test_store_result_keeps_the_latest_version(
    cls: type[Store], held: str | None, written: str, stored: bool
) -> None:
    store = cls()
    if held is not None:
        store.upsert(obj(held, "Held"))
    assert store.store_result(obj(written, "Ours")) is stored
    got = store.get("ns/s")
    assert got is not None
    assert got["status"]["phase"] == ("Ours" if stored else "Held")


@pytest.mark.parametrize("cls", STORES)
def test_a_stored_result_is_not_regressed_by_its_own_older_events(cls: type[Store]) -> None:
    store = cls()
    store.upsert(obj("4", "Held"))
    assert store.store_result(obj("6", "Deleting"))
    assert store.upsert(obj("5", "Between")).changed is False  # in flight before ours: skipped
    assert store.get("ns/s") == obj("6", "Deleting")
