"""Point reads of the SQLite store: served from the rows it keeps in memory, never stale,
and never waiting for a writer when the row is kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store import KV, SQLiteStore
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


def test_raw_reads_are_the_stored_text(store: SQLiteStore) -> None:
    assert store.get_raw("/a") is None
    created = store.create("/a", {"v": "é", "n": [1, 2]})
    assert store.get_raw("/a") == ('{"v":"é","n":[1,2]}', created.mod_revision, created.mod_revision)
    updated = store.update("/a", {"v": 2})
    assert store.get_raw("/a") == ('{"v":2}', updated.mod_revision, created.mod_revision)
    store.delete("/a")
    assert store.get_raw("/a") is None


def test_a_kept_row_is_read_while_a_writer_holds_the_store(store: SQLiteStore) -> None:
    """A writer holds the main lock through its transaction (and SQLite's checkpoints):
    a read of a kept row does not wait for it."""
    store.create("/a", {"v": 1})
    assert store.get("/a") is not None  # kept
    got: list[object] = []
    with store._lock:  # a write in progress, to another key
        reader = threading.Thread(target=lambda: got.append(store.get("/a")))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "a kept read waited for a writer"
    assert len(got) == 1 and got[0] is not None


def test_a_write_in_progress_sends_readers_of_its_key_to_the_database(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a write's start and its commit the key is not served from memory: a reader
    waits for the commit and sees the new value, never the old one after it."""
    store.create("/a", {"v": 1})
    assert store.get("/a") is not None
    in_txn, go_on = threading.Event(), threading.Event()
    append = store._append

    def paused_append(*args: Any) -> None:
        append(*args)
        in_txn.set()
        assert go_on.wait(5)

    monkeypatch.setattr(store, "_append", paused_append)
    writer = threading.Thread(target=lambda: store.update("/a", {"v": 2}))
    writer.start()
    assert in_txn.wait(5)
    assert "/a" not in store._rows  # dropped before the transaction commits
    got: list[KV | None] = []
    reader = threading.Thread(target=lambda: got.append(store.get("/a")))
    reader.start()
    reader.join(timeout=0.2)
    assert reader.is_alive()  # waits for the write: its key is not kept
    go_on.set()
    writer.join(timeout=5)
    reader.join(timeout=5)
    assert got and got[0] is not None and got[0].value == {"v": 2}
    kept = store.get("/a")
    assert kept is not None and kept.value == {"v": 2}


def test_a_read_overtaken_by_a_write_does_not_keep_its_row(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that read the database just before a write must not put its (then stale)
    row into memory after the write. Forced interleaving: the reader, having read the
    database, pauses just before keeping its row until a write to the key has returned
    (or, if the write cannot get in meanwhile, half a second)."""
    store.create("/a", {"v": 1})
    read_done, write_done = threading.Event(), threading.Event()
    keep = store._keep_row

    def paused_keep(key: str, row: tuple[int, str, int]) -> None:
        if threading.current_thread().name == "reader":
            read_done.set()
            write_done.wait(0.5)  # a write that can overtake the reader does so now
        keep(key, row)

    monkeypatch.setattr(store, "_keep_row", paused_keep)
    got: list[KV | None] = []
    reader = threading.Thread(target=lambda: got.append(store.get("/a")), name="reader")
    reader.start()
    assert read_done.wait(5)  # the reader has read {"v": 1} and not kept it yet
    wrote: list[KV] = []

    def write() -> None:
        wrote.append(store.update("/a", {"v": 2}))
        write_done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reader.join(timeout=5)
    writer.join(timeout=5)
    assert got and got[0] is not None and got[0].value == {"v": 1}  # read before the write
    assert wrote and wrote[0].value == {"v": 2}
    for _ in range(3):  # the write's value is what is read (and kept) from now on
        now = store.get("/a")
        assert now is not None and now.value == {"v": 2} and now.mod_revision == wrote[0].mod_revision


def test_kept_reads_race_writes(store: SQLiteStore) -> None:
    """Readers and writers of the same keys at once: once a write has returned, no read
    that starts after it sees an older revision."""
    keys = [f"/k{i}" for i in range(4)]
    for k in keys:
        store.create(k, {"n": 0})
    done = threading.Event()
    floor = {k: 0 for k in keys}  # the newest revision whose write has returned, per key
    stale: list[str] = []

    def write() -> None:
        for n in range(1, 200):
            for k in keys:
                floor[k] = store.update(k, {"n": n}).mod_revision
        done.set()

    def read() -> None:
        while not done.is_set():
            for k in keys:
                least = floor[k]
                got = store.get(k)
                if got is None or got.mod_revision < least:
                    stale.append(f"{k}: {got} after revision {least}")

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not stale, stale[:3]
