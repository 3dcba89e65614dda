"""The SQLite store on a full disk and on other storage errors: every sqlite3 error becomes
the ApiError the API answers (507 full, 503 busy or closed, 500 with a message), failed
writes are rolled back cleanly, deletes still work on a full disk (the reserve file,
deletes that free their rows at once), the store recovers by itself once there is room,
`health()` says why writes are refused, and the store's files are private (0600).

Tests using the `tmpfs` fixture fill a real tiny tmpfs (they need root to mount it); the
others fake a full disk with SQLite's max_page_count and a fake free-space reading."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ApiError
from orchestrator.store import (
    DELETE,
    Compacted,
    SQLiteStore,
    StorageFull,
    StoreApiError,
    StoreClosed,
    StoreError,
    StoreFailure,
    StoreUnavailable,
)
from orchestrator.store import sqlite as sqlite_mod
from orchestrator.store.space import FreeSpace, Reserve
from tests.support.tmpfs import small_tmpfs

MiB = 1 << 20


class FakeSpace:
    """Stands in for the store's FreeSpace: the free bytes a test says there are."""

    def __init__(self, free: int | None) -> None:
        self.free = free

    def get(self, fresh: bool = False) -> int | None:
        return self.free

    def invalidate(self) -> None:
        pass


def chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def rows(store: SQLiteStore, key: str) -> int:
    return int(store._conn.execute("SELECT COUNT(*) FROM kv WHERE key = ?", (key,)).fetchone()[0])


def cap_pages(store: SQLiteStore) -> None:
    """From now on the database file cannot grow: the next write that needs a page fails
    with SQLITE_FULL, as on a full disk."""
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = store._pragma("page_count")
    store._conn.execute(f"PRAGMA max_page_count = {pages}")


def uncap_pages(store: SQLiteStore) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[tuple[SQLiteStore, FakeSpace]]:
    """A store with a few keys whose disk is "full": no page to grow into, 0 bytes free."""
    store = SQLiteStore(str(tmp_path / "state.db"), reserve_bytes=0, headroom_bytes=MiB)
    for i in range(5):
        store.create(f"/k/{i}", {"i": i, "pad": "p" * 3000})
    space = FakeSpace(0)
    store._space = space  # type: ignore[assignment]
    cap_pages(store)
    yield store, space
    store.close()


# -- error mapping ---------------------------------------------------------------------------


def test_disk_full_is_a_clean_507(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, _ = full_store
    rev = store.current_revision()
    with pytest.raises(StorageFull) as info:
        store.create("/big", {"v": "x" * 200_000})
    e = info.value
    assert isinstance(e, ApiError) and isinstance(e, StoreApiError) and not isinstance(e, StoreError)
    assert (e.code, e.reason) == (507, "InsufficientStorage")
    assert e.status()["code"] == 507 and e.status()["reason"] == "InsufficientStorage"
    assert "the master's disk is full" in e.message and store.directory in e.message
    assert "0 bytes free" in e.message and "delete objects" in e.message and "free space" in e.message
    assert "\n" not in e.message
    assert e.directory == store.directory and e.free_bytes == 0 and not e.deleting
    # the cause is SQLite's, and nothing about a failed rollback hides it
    assert any("database or disk is full" in str(x) for x in chain(e))
    assert not any("cannot rollback" in str(x) for x in chain(e))
    assert not store._conn.in_transaction
    assert store.current_revision() == rev and store.get("/big") is None
    assert store.get("/k/1") is not None and len(store.list("/k/")[0]) == 5


def test_full_store_refuses_creates_and_updates_at_once(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, _ = full_store
    with pytest.raises(StorageFull):
        store.create("/big", {"v": "x" * 200_000})
    uncap_pages(store)  # the database could take a small write now, but the disk is still full
    with pytest.raises(StorageFull):
        store.create("/small", {"v": 1})
    kv = store.get("/k/0")
    assert kv is not None
    with pytest.raises(StorageFull):
        store.update("/k/0", {"i": 0, "changed": True}, kv.mod_revision)
    assert store.get("/k/0") == kv and store.get("/small") is None


def test_health_says_why_writes_are_refused(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, space = full_store
    assert store.health() is None  # nothing has failed yet
    with pytest.raises(StorageFull):
        store.create("/big", {"v": "x" * 200_000})
    reason = store.health()
    assert reason is not None and "\n" not in reason
    assert reason.startswith(f"the master's disk is full: {store.directory} (0 bytes free)")
    space.free = 10 * MiB  # room again: ready, even before the next write
    assert store.health() is None


def test_deletes_on_a_full_disk_free_their_rows(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, _ = full_store
    with pytest.raises(StorageFull):
        store.create("/big", {"v": "x" * 200_000})
    before = store.current_revision()
    watch = store.watch("/k/", before)
    kv = store.delete("/k/1")
    assert kv.mod_revision == before + 1 and kv.value["i"] == 1
    assert store.get("/k/1") is None and rows(store, "/k/1") == 0
    # the delete took its own revision, and history before it is compacted
    assert store.current_revision() == before + 1
    assert store.compact_revision == before + 1
    with pytest.raises(Compacted):
        store.watch("/k/", before)
    ev = watch.get(timeout=2)
    assert ev is not None and ev.type == DELETE and ev.kv.key == "/k/1" and ev.prev is not None
    watch.close()
    # a delete that is a step of deleting an object (deletionTimestamp) goes through too
    kv2 = store.get("/k/2")
    assert kv2 is not None
    out = store.update("/k/2", {**kv2.value, "deletionTimestamp": "now"}, kv2.mod_revision, deleting=True)
    assert out.mod_revision == before + 2 and rows(store, "/k/2") == 1
    assert store.get("/k/2") == out
    # all the rest is intact
    assert [k.key for k in store.list("/k/")[0]] == ["/k/0", "/k/2", "/k/3", "/k/4"]
    # compaction (what the master runs periodically) is allowed as well
    assert store.compact(store.current_revision()) >= 0


def test_the_store_recovers_by_itself_once_there_is_room(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, space = full_store
    with pytest.raises(StorageFull):
        store.create("/big", {"v": "x" * 200_000})
    with pytest.raises(StorageFull):
        store.create("/small", {"v": 1})
    space.free = 10 * MiB
    uncap_pages(store)
    kv = store.create("/big", {"v": "x" * 200_000})
    assert store.get("/big") == kv and store.health() is None
    # and deletes append tombstones again (history is kept when there is room)
    store.delete("/k/3")
    assert rows(store, "/k/3") == 2


def test_a_key_deleted_on_a_full_disk_can_be_created_again(full_store: tuple[SQLiteStore, FakeSpace]) -> None:
    store, space = full_store
    with pytest.raises(StorageFull):
        store.create("/big", {"v": "x" * 200_000})
    old = store.get("/k/4")
    assert old is not None
    gone = store.delete("/k/4")
    space.free = 10 * MiB
    uncap_pages(store)
    again = store.create("/k/4", {"i": "new"})
    assert again.create_revision == again.mod_revision > gone.mod_revision > old.mod_revision


def test_io_error_on_a_full_filesystem_counts_as_full(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"), reserve_bytes=0)
    space = FakeSpace(0)
    store._space = space  # type: ignore[assignment]
    e = sqlite3.OperationalError("disk I/O error")
    e.sqlite_errorcode = 4874  # type: ignore[attr-defined]  # SQLITE_IOERR_SHMSIZE
    e.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"  # type: ignore[attr-defined]
    assert isinstance(store._error(e, "write to"), StorageFull)
    store._full = False
    space.free = 100 * MiB
    err = store._error(e, "write to")
    assert isinstance(err, StoreFailure) and err.code == 500
    assert "disk I/O error" in err.message and "SQLITE_IOERR_SHMSIZE" in err.message
    store.close()


def test_a_locked_database_is_a_503_to_retry(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    store.create("/a", {"v": 1})
    store._conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable) as info:
            store.create("/b", {"v": 2})
    finally:
        other.execute("ROLLBACK")
        other.close()
    e = info.value
    assert isinstance(e, ApiError) and not isinstance(e, StoreError)
    assert (e.code, e.reason) == (503, "ServiceUnavailable")
    assert e.details == {"retryAfterSeconds": 1}
    assert "busy" in e.message and path in e.message and "retry" in e.message
    assert not store._conn.in_transaction
    assert store.create("/b", {"v": 2}).key == "/b"  # the lock is gone: works again
    store.close()


def test_other_database_errors_are_a_500_that_says_what_failed(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    store._conn.execute("PRAGMA query_only = ON")  # writes fail with SQLITE_READONLY
    with pytest.raises(StoreFailure) as info:
        store.create("/a", {"v": 1})
    e = info.value
    assert (e.code, e.reason) == (500, "InternalError")
    assert path in e.message and "readonly" in e.message and "SQLITE_READONLY" in e.message
    assert "master's log" in e.message
    assert not store._conn.in_transaction
    store._conn.execute("PRAGMA query_only = OFF")
    assert store.create("/a", {"v": 1}).key == "/a"
    store.close()


class FailingReads:
    """A connection whose SELECTs fail; everything else goes to the real one."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.lstrip().upper().startswith("SELECT"):
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_read_errors_are_mapped_too(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.create("/a", {"v": 1})
    real = store._conn
    store._conn = FailingReads(real)  # type: ignore[assignment]
    for read in (lambda: store.get("/a"), lambda: store.list("/"), lambda: store.count("/"),
                 lambda: store.current_revision(), lambda: store.watch("/", 1)):
        with pytest.raises(StoreFailure, match="disk I/O error"):
            read()
    assert not real.in_transaction
    store._conn = real
    assert store.get("/a") is not None
    store.close()


def test_a_closed_store_is_a_503(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.close()
    with pytest.raises(StoreClosed) as info:
        store.get("/a")
    assert isinstance(info.value, StoreError) and isinstance(info.value, StoreUnavailable)
    assert (info.value.code, info.value.reason) == (503, "ServiceUnavailable")
    assert "closed" in info.value.message and str(info.value) == info.value.message
    assert store.health() == "the master's store is closed"


# -- files -------------------------------------------------------------------------------


def test_the_store_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = SQLiteStore(str(tmp_path / "state.db"))
        store.create("/a", {"v": "x" * 10_000})
        names = ["state.db", "state.db-wal", "state.db-shm", "state.db-reserve"]
        for name in names:
            assert mode(tmp_path / name) == 0o600, name
        store.close()
    finally:
        os.umask(old)


def test_existing_files_are_made_private_when_opened(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    store.create("/a", {"v": 1})
    store.close()
    for f in tmp_path.iterdir():
        os.chmod(f, 0o644)
    store = SQLiteStore(str(tmp_path / "state.db"))
    store.create("/b", {"v": 1})
    for f in tmp_path.iterdir():
        if f.name.startswith("state.db") and not f.name.endswith("-reserve"):
            assert mode(f) == 0o600, f.name
    store.close()


# -- the reserve -------------------------------------------------------------------------


def test_the_reserve_is_allocated_released_and_taken_again(tmp_path: Path) -> None:
    r = Reserve(str(tmp_path / "r"), 2 * MiB)
    assert r.take() and r.held and r.ok
    st = os.stat(r.path)
    assert st.st_size == 2 * MiB and st.st_blocks * 512 >= 2 * MiB and mode(Path(r.path)) == 0o600
    assert r.release() and not r.held and not os.path.exists(r.path)
    assert not r.release()
    assert r.take() and os.path.getsize(r.path) == 2 * MiB


def test_no_room_for_the_reserve_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    r = Reserve(str(tmp_path / "r"), MiB)
    assert not r.take() and not r.held and not r.disabled and not r.ok
    assert not os.path.exists(r.path)


def test_a_filesystem_that_refuses_the_reserve_disables_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "posix_fallocate", refused)
    r = Reserve(str(tmp_path / "r"), MiB)
    assert not r.take() and r.disabled and r.ok  # nothing to wait for
    assert Reserve(str(tmp_path / "none"), 0).disabled


def test_a_store_opened_without_room_for_its_reserve_accepts_only_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(str(tmp_path / "state.db"))
    store.create("/a", {"v": 1})
    store.close()
    os.unlink(tmp_path / "state.db-reserve")

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    monkeypatch.setattr(sqlite_mod, "FreeSpace", lambda directory: FakeSpace(100_000))
    store = SQLiteStore(str(tmp_path / "state.db"))
    reason = store.health()
    assert reason is not None and "(100000 bytes free)" in reason
    with pytest.raises(StorageFull):
        store.create("/b", {"v": 1})
    store.delete("/a")
    monkeypatch.undo()
    store._space = FreeSpace(store.directory)
    assert store.create("/b", {"v": 1}).key == "/b"  # room now: the reserve is taken back
    assert os.path.getsize(tmp_path / "state.db-reserve") == sqlite_mod.DEFAULT_RESERVE_BYTES
    assert store.health() is None
    store.close()


def test_an_old_database_is_converted_to_incremental_vacuum(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for stmt in sqlite_mod._SCHEMA:
        conn.execute(stmt)
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('kv', 1)")
    conn.execute("INSERT INTO meta (name, value) VALUES ('compact_revision', 0)")
    conn.execute("INSERT INTO kv VALUES (2, '/a', ?, 2, 0, 0)", (json.dumps({"v": 1}),))
    conn.execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'kv'")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    store = SQLiteStore(path)
    assert store._pragma("auto_vacuum") == 2
    kv = store.get("/a")
    assert kv is not None and kv.value == {"v": 1} and kv.mod_revision == 2
    assert store.create("/b", {"v": 2}).mod_revision == 3
    store.close()


# -- a real full disk (a tiny tmpfs) ---------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards whatever happens."""
    with small_tmpfs(tmp_path / "tmpfs", "8m") as mnt:
        yield mnt


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def fill(store: SQLiteStore, live: dict[str, int], start: int, size: int, limit: int = 2000) -> StorageFull:
    """Create keys until the disk is full; returns the 507. `live` gets what was stored."""
    for i in range(start, start + limit):
        try:
            store.create(f"/k/{i:05}", {"n": i, "v": "x" * size})
        except StorageFull as e:
            return e
        live[f"/k/{i:05}"] = i
    raise AssertionError(f"the disk never filled up after {limit} writes")


def check(store: SQLiteStore, live: dict[str, int]) -> None:
    items, _ = store.list("/k/")
    assert {kv.key: kv.value["n"] for kv in items} == live


def test_a_full_tmpfs_end_to_end(tmpfs: Path) -> None:
    filler = tmpfs / "filler"
    filler.write_bytes(b"\1" * 2 * MiB)
    store = SQLiteStore(str(tmpfs / "state.db"), reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
    live: dict[str, int] = {}
    e = fill(store, live, 0, 40_000)
    assert e.code == 507 and str(tmpfs) in e.message
    assert any("database or disk is full" in str(x) for x in chain(e))
    assert not any("cannot rollback" in str(x) for x in chain(e))
    assert len(live) > 20 and free(tmpfs) < 512 << 10
    reason = store.health()
    assert reason is not None and reason.startswith(f"the master's disk is full: {tmpfs} (")
    # creates keep failing; reads work; deletes succeed
    for _ in range(3):
        with pytest.raises(StorageFull):
            store.create("/other", {"v": 1})
    check(store, live)
    for key in list(live)[:3]:
        store.delete(key)
        del live[key]
    check(store, live)
    # the operator frees space elsewhere on the filesystem: writes work again, no restart
    filler.unlink()
    store.create("/k/99999", {"n": 99999, "v": "after"})
    live["/k/99999"] = 99999
    assert store.health() is None
    assert os.path.getsize(tmpfs / "state.db-reserve") == 2 * MiB  # taken back
    check(store, live)
    for name in ("state.db", "state.db-wal", "state.db-shm", "state.db-reserve"):
        assert mode(tmpfs / name) == 0o600, name
    store.close()


def test_deleting_objects_on_a_full_tmpfs_makes_room(tmpfs: Path) -> None:
    (tmpfs / "filler").write_bytes(b"\1" * 2 * MiB)
    store = SQLiteStore(str(tmpfs / "state.db"), reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
    live: dict[str, int] = {}
    fill(store, live, 0, 20_000)
    before = store.size_bytes()
    for key in list(live)[: len(live) * 9 // 10]:  # every one of these deletes succeeds
        store.delete(key)
        del live[key]
    assert store.size_bytes() < before  # given back to the filesystem, not just freed inside
    assert free(tmpfs) >= 512 << 10  # the headroom, on top of the reserve taken back
    assert os.path.getsize(tmpfs / "state.db-reserve") == 2 * MiB
    store.create("/k/99999", {"n": 99999, "v": "after"})  # no restart, filler still there
    live["/k/99999"] = 99999
    assert store.health() is None
    check(store, live)
    store.close()


def test_rounds_of_filling_and_deleting_a_tmpfs(tmpfs: Path) -> None:
    """Objects of mixed sizes, updates, deletes of random shares, reopening: deletes never
    fail and every acknowledged write reads back."""
    import random

    rnd = random.Random(7)
    (tmpfs / "filler").write_bytes(b"\1" * MiB)
    path = str(tmpfs / "state.db")
    store = SQLiteStore(path, reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
    live: dict[str, int] = {}
    n = 0
    for _ in range(5):
        refused = 0
        while refused < 3 and n < 5000:
            n += 1
            size = rnd.choice([100, 2_000, 30_000, 200_000])
            try:
                if live and rnd.random() < 0.3:
                    key = rnd.choice(sorted(live))
                    store.update(key, {"n": n, "v": "u" * size})
                else:
                    key = f"/k/{n:05}"
                    store.create(key, {"n": n, "v": "x" * size})
            except StorageFull:
                refused += 1
                continue
            live[key] = n
        keys = sorted(live)
        rnd.shuffle(keys)
        for key in keys[: int(len(keys) * rnd.uniform(0.3, 0.95))]:
            store.delete(key)
            del live[key]
        check(store, live)
        if rnd.random() < 0.5:
            store.close()
            store = SQLiteStore(path, reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
            check(store, live)
    store.close()


def test_a_store_reopens_on_a_full_tmpfs(tmpfs: Path) -> None:
    (tmpfs / "filler").write_bytes(b"\1" * 2 * MiB)
    path = str(tmpfs / "state.db")
    store = SQLiteStore(path, reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
    live: dict[str, int] = {}
    fill(store, live, 0, 30_000)
    store.close()
    store = SQLiteStore(path, reserve_bytes=2 * MiB, headroom_bytes=512 << 10)
    check(store, live)
    key = next(iter(live))
    store.delete(key)
    del live[key]
    check(store, live)
    store.close()
