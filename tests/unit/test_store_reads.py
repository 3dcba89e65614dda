"""Point reads of the SQLite store: served from the rows it keeps in memory, never stale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.store import SQLiteStore
from orchestrator.store import sqlite as sqlite_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_reads_see_every_write(store: SQLiteStore) -> None:
    assert store.get("/a") is None
    created = store.create("/a", {"v": 1})
    first = store.get("/a")
    assert first is not None and first.value == {"v": 1} and first.mod_revision == created.mod_revision
    assert store.get("/a") == first  # kept
    updated = store.update("/a", {"v": 2})
    again = store.get("/a")
    assert again is not None and again.value == {"v": 2} and again.mod_revision == updated.mod_revision
    assert again.create_revision == created.mod_revision
    store.delete("/a")
    assert store.get("/a") is None
    recreated = store.create("/a", {"v": 3})
    last = store.get("/a")
    assert last is not None and last.value == {"v": 3} and last.create_revision == recreated.mod_revision


def test_every_read_gets_its_own_value(store: SQLiteStore) -> None:
    store.create("/a", {"v": {"nested": 1}})
    one = store.get("/a")
    assert one is not None
    one.value["v"]["nested"] = 2
    other = store.get("/a")
    assert other is not None and other.value == {"v": {"nested": 1}}


def test_a_refused_write_leaves_reads_right(store: SQLiteStore) -> None:
    kv = store.create("/a", {"v": 1})
    assert store.get("/a") is not None
    with pytest.raises(Exception):  # noqa: B017 - a stale revision: RevisionConflict
        store.update("/a", {"v": 2}, expected_mod_revision=kv.mod_revision + 100)
    got = store.get("/a")
    assert got is not None and got.value == {"v": 1}


def test_compaction_keeps_reads_right(store: SQLiteStore) -> None:
    store.create("/a", {"v": 1})
    store.update("/a", {"v": 2})
    assert store.get("/a") is not None
    store.compact(store.current_revision())
    got = store.get("/a")
    assert got is not None and got.value == {"v": 2}


def test_rows_kept_are_bounded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "_ROWS_KEPT", 4)
    for i in range(10):
        store.create(f"/k{i}", {"i": i})
        assert store.get(f"/k{i}") is not None
        assert len(store._rows) <= 4
    for i in range(10):
        got = store.get(f"/k{i}")
        assert got is not None and got.value == {"i": i}


def test_rows_kept_are_bounded_in_size(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "_ROWS_KEPT_CHARS", 16 * 1000)
    for i in range(20):
        store.create(f"/k{i}", {"pad": "x" * 500})
        assert store.get(f"/k{i}") is not None
        assert store._rows_chars == sum(len(r[1]) for r in store._rows.values()) <= 16 * 1000
    store.create("/big", {"pad": "x" * 5000})  # beyond a sixteenth of the budget: never kept
    assert store.get("/big") is not None and "/big" not in store._rows
    for i in range(20):
        store.update(f"/k{i}", {"pad": "y"})
    assert store._rows_chars == sum(len(r[1]) for r in store._rows.values())
