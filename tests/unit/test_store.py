"""Tests for the SQLite store: CRUD and compare-and-swap, list snapshots, watches (replay, live,
prefix, async and blocking), compaction, concurrency from threads and durability under kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.store import (
    DELETE,
    KV,
    PUT,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    SQLiteStore,
    StoreError,
    Watch,
    WatchEvent,
)
from orchestrator.store.sqlite import _prefix_end

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def store(db_path: str) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db_path)
    yield s
    s.close()


def drain(watch: Watch, n: int, timeout: float = 2.0) -> list[WatchEvent]:
    events = []
    for _ in range(n):
        ev = watch.get(timeout=timeout)
        assert ev is not None, f"expected {n} events, got {len(events)}"
        events.append(ev)
    return events


def summary(events: list[WatchEvent]) -> list[tuple[str, str, int]]:
    return [(e.type, e.kv.key, e.revision) for e in events]


# -- CRUD and compare-and-swap -------------------------------------------------------------


def test_crud_roundtrip(store: SQLiteStore) -> None:
    start = store.current_revision()
    assert start >= 1  # no observable revision is 0; watch(.., 0) means "from now"

    created = store.create("/a", {"v": 1})
    assert created == KV("/a", {"v": 1}, start + 1, start + 1)
    assert store.get("/a") == created

    updated = store.update("/a", {"v": 2})
    assert updated == KV("/a", {"v": 2}, start + 2, start + 1)
    assert store.get("/a") == updated

    deleted = store.delete("/a")
    assert deleted == KV("/a", {"v": 2}, start + 3, start + 1)
    assert store.get("/a") is None
    assert store.current_revision() == start + 3


def test_returned_value_is_independent_of_the_callers_dict(store: SQLiteStore) -> None:
    value: dict[str, Any] = {"spec": {"replicas": 1}}
    kv = store.create("/a", value)
    value["spec"]["replicas"] = 5
    assert kv.value == {"spec": {"replicas": 1}}
    assert store.get("/a") == kv


def _setup_live(s: SQLiteStore) -> int:
    return s.create("/k", {"v": 0}).mod_revision


def _setup_deleted(s: SQLiteStore) -> int:
    rev = s.create("/k", {"v": 0}).mod_revision
    s.delete("/k")
    return rev


def _setup_none(s: SQLiteStore) -> int:
    return 0


@pytest.mark.parametrize(
    ("setup", "op", "error"),
    [
        (_setup_live, lambda s, rev: s.create("/k", {}), KeyExists),
        (_setup_none, lambda s, rev: s.update("/k", {}), KeyNotFound),
        (_setup_deleted, lambda s, rev: s.update("/k", {}), KeyNotFound),
        (_setup_none, lambda s, rev: s.delete("/k"), KeyNotFound),
        (_setup_deleted, lambda s, rev: s.delete("/k"), KeyNotFound),
        (_setup_deleted, lambda s, rev: s.update("/k", {}, expected_mod_revision=rev), KeyNotFound),
        (_setup_live, lambda s, rev: s.update("/k", {}, expected_mod_revision=rev + 100), RevisionConflict),
        (_setup_live, lambda s, rev: s.update("/k", {}, expected_mod_revision=rev - 1), RevisionConflict),
        (_setup_live, lambda s, rev: s.delete("/k", expected_mod_revision=rev + 1), RevisionConflict),
    ],
    ids=[
        "create-live",
        "update-missing",
        "update-deleted",
        "delete-missing",
        "delete-deleted",
        "cas-update-deleted",
        "cas-update-future",
        "cas-update-stale",
        "cas-delete-stale",
    ],
)
def test_write_errors_leave_the_store_unchanged(
    store: SQLiteStore,
    setup: Callable[[SQLiteStore], int],
    op: Callable[[SQLiteStore, int], Any],
    error: type[StoreError],
) -> None:
    rev = setup(store)
    before = (store.get("/k"), store.current_revision())
    with pytest.raises(error) as info:
        op(store, rev)
    assert info.value.key == "/k"  # type: ignore[attr-defined]
    assert (store.get("/k"), store.current_revision()) == before


def test_cas_succeeds_with_current_revision_and_conflict_reports_current(store: SQLiteStore) -> None:
    v1 = store.create("/k", {"v": 1})
    v2 = store.update("/k", {"v": 2}, expected_mod_revision=v1.mod_revision)
    with pytest.raises(RevisionConflict) as info:
        store.update("/k", {"v": 3}, expected_mod_revision=v1.mod_revision)
    assert info.value.current == v2
    gone = store.delete("/k", expected_mod_revision=v2.mod_revision)
    assert gone.value == {"v": 2}


def test_recreate_after_delete_gets_a_new_create_revision(store: SQLiteStore) -> None:
    first = store.create("/k", {"gen": 1})
    store.delete("/k")
    second = store.create("/k", {"gen": 2})
    assert second.create_revision == second.mod_revision > first.create_revision
    assert store.get("/k") == second
    assert store.update("/k", {"gen": 3}).create_revision == second.create_revision


def test_rejects_non_object_values(store: SQLiteStore) -> None:
    with pytest.raises(TypeError):
        store.create("/k", ["not", "an", "object"])  # type: ignore[arg-type]


# -- list and count ------------------------------------------------------------------------


def test_list_is_a_sorted_snapshot_of_live_keys_under_the_prefix(store: SQLiteStore) -> None:
    store.create("/pods/b", {"n": "b"})
    store.create("/pods/a", {"n": "a"})
    store.create("/pods/c", {"n": "c"})
    store.create("/podsx/z", {"n": "outside"})
    store.create("/pod", {"n": "outside"})
    store.update("/pods/a", {"n": "a2"})
    store.delete("/pods/c")

    items, rev = store.list("/pods/")
    assert [(kv.key, kv.value["n"]) for kv in items] == [("/pods/a", "a2"), ("/pods/b", "b")]
    assert rev == store.current_revision()
    assert store.count("/pods/") == 2
    assert store.count("") == 4

    all_items, _ = store.list("")
    assert [kv.key for kv in all_items] == ["/pod", "/pods/a", "/pods/b", "/podsx/z"]

    store.create("/pods/d", {"n": "d"})
    assert store.list("/pods/")[1] == rev + 1


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("", None),
        ("/a/", "/a0"),
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("x\ud7ff", "x\ue000"),
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert _prefix_end(prefix) == end


def test_list_with_unusual_prefix_characters(store: SQLiteStore) -> None:
    for key in ["a\U0010ffff", "a\U0010ffffz", "b", "\ue000", "a\ud7ff"]:
        store.create(key, {})
    assert [kv.key for kv in store.list("a\U0010ffff")[0]] == ["a\U0010ffff", "a\U0010ffffz"]
    assert [kv.key for kv in store.list("a")[0]] == ["a\ud7ff", "a\U0010ffff", "a\U0010ffffz"]


# -- watches -------------------------------------------------------------------------------


def test_watch_replays_history_then_streams_live_events(store: SQLiteStore) -> None:
    a1 = store.create("/a", {"v": 1})
    a2 = store.update("/a", {"v": 2})
    store.create("/b", {"v": 1})
    store.delete("/a")

    with store.watch("/", a1.mod_revision) as w:
        store.create("/c", {"v": 1})
        events = drain(w, 4)
        assert w.get(timeout=0.05) is None
    base = a1.mod_revision
    assert summary(events) == [
        (PUT, "/a", base + 1),
        (PUT, "/b", base + 2),
        (DELETE, "/a", base + 3),
        (PUT, "/c", base + 4),
    ]
    update, create_b, delete, _ = events
    assert update.prev == a1 and update.kv == a2
    assert create_b.prev is None
    assert delete.kv == KV("/a", {"v": 2}, base + 3, a1.create_revision)
    assert delete.prev == a2


def test_watch_from_zero_starts_now(store: SQLiteStore) -> None:
    store.create("/old", {})
    with store.watch("", 0) as w:
        assert w.get(timeout=0.05) is None
        new = store.create("/new", {})
        assert summary(drain(w, 1)) == [(PUT, "/new", new.mod_revision)]


def test_watch_from_a_future_revision_skips_until_then(store: SQLiteStore) -> None:
    rev = store.current_revision()
    with store.watch("", rev + 2) as w:
        store.create("/1", {})
        store.create("/2", {})
        store.create("/3", {})
        assert summary(drain(w, 1)) == [(PUT, "/3", rev + 3)]


def test_watch_prefix_filter(store: SQLiteStore) -> None:
    start = store.current_revision()
    store.create("/pods/default/a", {})
    store.create("/pods/kube/b", {})
    with store.watch("/pods/default/", start) as w:
        store.create("/pods/default/c", {})
        store.create("/pods/defaultx/d", {})
        store.create("/services/default/e", {})
        store.delete("/pods/default/a")
        events = drain(w, 3)
        assert w.get(timeout=0.05) is None
    assert [(e.type, e.kv.key) for e in events] == [
        (PUT, "/pods/default/a"),
        (PUT, "/pods/default/c"),
        (DELETE, "/pods/default/a"),
    ]


def test_closed_watch_is_unregistered_and_returns_none(store: SQLiteStore) -> None:
    w = store.watch("", 0)
    store.create("/a", {})
    w.close()
    w.close()
    store.create("/b", {})
    assert summary(drain(w, 1))[0][1] == "/a"  # queued before close: still readable
    assert w.get(timeout=1) is None
    assert w.closed


def test_blocking_get_wakes_on_close_from_another_thread(store: SQLiteStore) -> None:
    w = store.watch("", 0)
    threading.Timer(0.05, w.close).start()
    assert w.get(timeout=5) is None


def test_watch_async_replay_and_live_from_writer_threads(store: SQLiteStore) -> None:
    first = store.create("/x/0", {"i": 0})

    async def main() -> list[WatchEvent]:
        w = store.watch("/x/", first.mod_revision - 1)  # captures the running loop
        assert w.loop is asyncio.get_running_loop()
        with pytest.raises(RuntimeError):
            w.get(timeout=0)

        def writer() -> None:
            for i in range(1, 51):
                store.create(f"/x/{i}", {"i": i})

        thread = threading.Thread(target=writer)
        thread.start()
        events = []
        while len(events) < 51:
            ev = await w.next(timeout=2)
            assert ev is not None
            events.append(ev)
        thread.join()
        assert await w.next(timeout=0.05) is None
        w.close()
        assert await w.next() is None
        return events

    events = asyncio.run(main())
    assert [e.kv.value["i"] for e in events] == list(range(51))
    revs = [e.revision for e in events]
    assert revs == sorted(revs) and len(set(revs)) == 51


def test_sync_watch_rejects_next(store: SQLiteStore) -> None:
    w = store.watch("", 0)

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await w.next(timeout=0)

    asyncio.run(main())
    w.close()


def test_watch_on_a_closed_loop_does_not_break_writers(store: SQLiteStore) -> None:
    loop = asyncio.new_event_loop()
    w = store.watch("", 0, loop=loop)
    loop.close()
    store.create("/a", {})
    store.create("/b", {})
    assert w.closed
    assert store._watchers == ()


def test_watch_no_gaps_or_duplicates_while_writers_run(store: SQLiteStore) -> None:
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            store.create(f"/w/{i}", {})
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        watches = []
        for _ in range(5):
            rev = store.current_revision()
            watches.append((rev, store.watch("/w/", max(rev - 3, 1))))
    finally:
        stop.set()
        thread.join()
    end = store.current_revision()
    for rev, w in watches:
        start = max(rev - 3, 1)
        got = [e.revision for e in drain(w, end - start)]
        assert got == list(range(start + 1, end + 1))
        w.close()


# -- compaction ----------------------------------------------------------------------------


def test_compaction_keeps_latest_values_and_drops_history(db_path: str) -> None:
    store = SQLiteStore(db_path)
    for i in range(3):
        store.create(f"/k/{i}", {"v": 0})
    for v in range(1, 4):
        store.update("/k/0", {"v": v})
    store.delete("/k/1")
    store.create("/k/gone", {})
    store.delete("/k/gone")
    before = store.list("")
    cut = store.current_revision()
    store.update("/k/2", {"v": 1})  # history after the cut stays

    # Superseded: /k/0 v0..v2, /k/1 v0, /k/gone; tombstones: /k/1, /k/gone.
    assert store.compact(cut) == 7
    assert store.compact_revision == cut
    assert store.compact(cut) == 0
    assert store.get("/k/0") == before[0][0]
    assert store.get("/k/1") is None and store.get("/k/gone") is None
    assert [kv.key for kv in store.list("")[0]] == ["/k/0", "/k/2"]

    with pytest.raises(Compacted) as info:
        store.watch("", cut - 1)
    assert (info.value.compact_revision, info.value.requested) == (cut, cut - 1)

    # Resuming exactly at the compact revision still yields full events, prev included.
    with store.watch("", cut) as w:
        (ev,) = drain(w, 1)
    assert ev.type == PUT and ev.prev == KV("/k/2", {"v": 0}, ev.prev.mod_revision, ev.prev.create_revision)

    with pytest.raises(ValueError):
        store.compact(store.current_revision() + 1)

    # The compact revision persists; revisions are never reused even though compaction
    # removed rows up to the newest one.
    store.delete("/k/2")
    top = store.current_revision()
    store.compact(top)
    store.close()
    reopened = SQLiteStore(db_path)
    try:
        assert reopened.compact_revision == top
        assert reopened.current_revision() == top
        assert reopened.create("/k/new", {}).mod_revision == top + 1
        with pytest.raises(Compacted):
            reopened.watch("", top - 1)
    finally:
        reopened.close()


# -- concurrency, options, durability ------------------------------------------------------


def test_concurrent_writers_get_unique_revisions_and_lose_nothing(store: SQLiteStore) -> None:
    threads, per_thread = 8, 100
    results: list[list[KV]] = [[] for _ in range(threads)]

    def work(t: int) -> None:
        for i in range(per_thread):
            results[t].append(store.create(f"/t/{t}/{i}", {"t": t, "i": i}))

    start = store.current_revision()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    revs = sorted(kv.mod_revision for r in results for kv in r)
    assert revs == list(range(start + 1, start + 1 + threads * per_thread))
    assert store.count("/t/") == threads * per_thread


def test_concurrent_cas_increments_are_not_lost(store: SQLiteStore) -> None:
    store.create("/counter", {"n": 0})
    threads, per_thread = 6, 40

    def work() -> None:
        for _ in range(per_thread):
            while True:
                cur = store.get("/counter")
                assert cur is not None
                try:
                    store.update(
                        "/counter", {"n": cur.value["n"] + 1}, expected_mod_revision=cur.mod_revision
                    )
                    break
                except RevisionConflict:
                    continue

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    final = store.get("/counter")
    assert final is not None and final.value["n"] == threads * per_thread


@pytest.mark.parametrize("sync", ["NORMAL", "full"])
def test_synchronous_option(tmp_path: Path, sync: str) -> None:
    s = SQLiteStore(str(tmp_path / "s.db"), synchronous=sync)
    try:
        level = s._conn.execute("PRAGMA synchronous").fetchone()[0]
        assert level == {"NORMAL": 1, "FULL": 2}[sync.upper()]
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        s.create("/a", {"x": "y" * 1000})
        assert s.size_bytes() > 1000
    finally:
        s.close()


def test_invalid_synchronous_and_use_after_close(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(str(tmp_path / "s.db"), synchronous="OFF")
    s = SQLiteStore(str(tmp_path / "s.db"))
    w = s.watch("", 0)
    s.close()
    s.close()
    assert w.closed and w.get(timeout=1) is None
    with pytest.raises(StoreError):
        s.get("/a")
    with pytest.raises(StoreError):
        s.create("/a", {})


_WRITER = """
import sys
from orchestrator.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
for i in range(1_000_000):
    store.create(f"/ack/{i:07d}", {"i": i})
    print(i, flush=True)
"""


def test_acknowledged_writes_survive_kill_9(db_path: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, db_path], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    acked = []
    try:
        for line in proc.stdout:
            acked.append(int(line))
            if len(acked) >= 300:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    # Everything printed before the kill was acknowledged too.
    # (a line cut short by the kill was not acknowledged: only complete lines count)
    complete = rest if rest.endswith("\n") else rest.rpartition("\n")[0]
    acked += [int(line) for line in complete.splitlines() if line.strip()]
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300

    store = SQLiteStore(db_path)
    try:
        items, _ = store.list("/ack/")
        present = {kv.value["i"] for kv in items}
        missing = [i for i in acked if i not in present]
        assert not missing, f"{len(missing)} acknowledged writes lost, first {missing[:5]}"
        # Rows committed after the last line this test read were simply not seen as acked;
        # nothing is ever present that was not written.
        assert present <= set(range(max(present) + 1))
    finally:
        store.close()
