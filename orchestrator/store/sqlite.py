"""The default store: a revisioned, watchable key-value map in one SQLite file (kine-style).

Layout
------
One append-only table, `kv`. Every write appends a row whose `rev` (INTEGER PRIMARY KEY
AUTOINCREMENT) is the new global revision:

    rev | key | value (JSON) | create_rev | prev_rev | deleted

* create: `create_rev = rev`; `prev_rev` is the key's previous row (a tombstone when the key
  is re-created after a delete) or 0.
* update: `create_rev` carried over, `prev_rev` = the row it replaces.
* delete: a tombstone (`deleted = 1`) that keeps the last value, so a DELETE event can carry it.

A key's current value is its row with the highest `rev`, unless that row is a tombstone; the
index on `(key, rev)` makes both point reads and prefix scans cheap. AUTOINCREMENT keeps a
revision from ever being handed out twice, even after compaction deleted the newest rows.

Revisions start at 1 for an empty store (the store's creation), so every revision a client can
observe is >= 1 and `watch(prefix, 0)` can mean "from now" without a race against a list that
returned revision 0.

Writes and consistency
----------------------
One connection (`check_same_thread=False`), guarded by one `threading.Lock`; reads of the
database take the same lock, which keeps things simple and correct (SQLite serialises writers
anyway; the rows kept for point reads have a lock of their own, see below). Each write is a
`BEGIN IMMEDIATE` transaction that reads the key's newest row, checks the precondition
(exists / does not exist / expected `mod_revision`) and appends the new row: a compare-and-swap.
`BEGIN IMMEDIATE` also makes this safe should another process open the same file (a backup
tool, say), with `busy_timeout` to wait for it.

Durability: WAL journal. A commit has been written to the WAL file before `COMMIT` returns, so
every acknowledged write survives the process being killed (`kill -9`). With
`synchronous=NORMAL` (the default) the WAL is fsynced at checkpoints only, so a power loss or
kernel crash may lose the last few commits; `synchronous=FULL` fsyncs on every commit.

Point reads
-----------
`get` is the hottest read (every GET of one object), and each SQLite read transaction
costs file-locking system calls on the WAL index. The newest row of recently read keys is
kept in memory (`_rows`, at most `_ROWS_KEPT` keys, oldest dropped first) and served from
there (at most `_ROWS_KEPT_CHARS` characters of values). The kept rows have a lock of their
own (`_rows_lock`), held only for a dictionary operation and never across I/O, so a read of
a kept row never waits for a writer, which holds the main lock through its transaction,
the checkpoints SQLite runs inside commits, and the watch fan-out.

Kept rows are never stale, because of two rules:

* a write drops the key's entry (under `_rows_lock`) before its transaction begins, while
  holding the main lock: from then on readers of the key miss and wait for the main lock,
  so none sees the old row once the write has committed;
* a reader that missed reads the database and keeps the row it found while it still holds
  the main lock, so no write can commit between its read and its keep (a write that
  starts after it drops the kept row again).

Entries are made by reads only (a read that fails fails, even right after a write). This
holds because the store is the database's only writer: other processes (a backup tool)
may read the file but never write it. `get` decodes the value for each read as before
(callers own what they get); `get_raw` hands out the row's JSON text and revisions
undecoded, for callers that only pass the bytes on.

Watches
-------
Fan-out happens in-process: after a write commits, still holding the lock, the writer pushes the
event into every matching watch's queue. Creating a watch takes the same lock, replays the rows
after its start revision straight from the table and registers it before releasing the lock, so
no write can fall between the replay and the live stream (no gaps, no duplicates). Queues are
unbounded: a slow consumer uses memory but never blocks writers. Replay of a long history
holds the lock for its duration; compaction keeps that history short.

Compaction
----------
`compact(R)` removes every row that was superseded by a later row of the same key at or before
R, and every tombstone at or before R. What remains is the state of the store as of R plus all
history after R: each row after R still has the row it replaced, so a watch resumed from any
revision >= R replays complete events (with `prev`). The compact revision is kept in the
`meta` table; a watch from before it raises `Compacted` (the API's 410 Gone).

Errors and a full disk
----------------------
No `sqlite3` exception leaves the store: each becomes the `ApiError` the API answers with
(a `StoreApiError`). A write is one transaction; when it fails it is rolled back (if
SQLite has not already done so) and nothing of it remains.

* SQLITE_FULL ("database or disk is full") is `StorageFull`, 507 InsufficientStorage,
  with a message naming the data directory and what to do.
* SQLITE_BUSY / SQLITE_LOCKED (another process held the database past `busy_timeout`) is
  `StoreUnavailable`, 503 ServiceUnavailable with `retryAfterSeconds`; so is a closed store
  (`StoreClosed`, which is also a `StoreError`).
* Anything else (an I/O error, a corrupt file, a read-only filesystem) is `StoreFailure`,
  500 InternalError naming the database file and SQLite's error, logged with its traceback.

A reserve file (`<db>-reserve`, `reserve_bytes`, 4 MiB by default) is allocated next to the
database when the store opens. When a write finds the disk full the store is *full*:

* creates and updates are refused at once with 507 (they would take the room deletes need);
* deletes, compaction and updates that are a step of a deletion (`update(deleting=True)`)
  still run: if one finds the disk full the reserve is released and it is retried, then once
  more after reclaiming space;
* a delete removes the key's rows instead of appending a tombstone (which would need as much
  room as the object), and moves the compact revision to its own: watches resuming from
  before it get Compacted (410) and relist, live watches get the DELETE event as always.
  Deletes do this also while free space is short (below what writes need plus
  `headroom_bytes`), so that deleting objects never fills the disk again;
* after each such delete the space goes back to the filesystem: history up to the compact
  revision is removed, the free pages are moved out of the file (`auto_vacuum =
  INCREMENTAL`, then an incremental vacuum) and the write-ahead log is checkpointed and
  truncated, each in pieces when doing it at once finds no room. Automatic checkpoints are
  off meanwhile (one that cannot finish still grows the file), and freed pages are not
  overwritten first (`secure_delete = FAST`; the vacuum cuts them out of the file);
* as soon as the filesystem has room for the reserve again plus `headroom_bytes` (freed by
  deletes, or by the operator elsewhere on that filesystem) the reserve is taken back and
  writes are accepted again, without a restart.

The write-ahead log is checkpointed automatically once it holds 1 MiB (SQLite's default is
4 MiB), so that the pages a checkpoint has to add to the file stay well within the reserve.

`health()` says whether writes are being refused for lack of space, from a statvfs cached
for a second. Databases created before incremental auto-vacuum are converted (a VACUUM)
when they are opened with enough free space for it.

The database, its -wal and -shm files and the reserve are mode 0600: the database file is
created 0600 before SQLite opens it (SQLite gives -wal and -shm the database's mode) and
existing files are tightened when the store opens.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .base import (
    DELETE,
    KV,
    PUT,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StorageFull,
    StoreClosed,
    StoreFailure,
    StoreUnavailable,
    Watch,
    WatchEvent,
)
from .space import FreeSpace, Reserve

log = logging.getLogger("dockyard.store")
T = TypeVar("T")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        rev INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        create_rev INTEGER NOT NULL,
        prev_rev INTEGER NOT NULL,
        deleted INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS kv_key_rev ON kv (key, rev)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_SYNCHRONOUS = ("NORMAL", "FULL")
_BUSY_TIMEOUT_MS = 5000
_MAX_CHAR = 0x10FFFF

DEFAULT_RESERVE_BYTES = 4 << 20  # released so that deletes can proceed on a full disk
DEFAULT_HEADROOM_BYTES = 1 << 20  # free beyond the reserve before writes are accepted again
_WAL_CHECKPOINT_BYTES = 1 << 20  # automatic checkpoint once the log holds this much
_RECLAIM_INTERVAL = 1.0  # seconds between two reclaims for refused writes while the disk is full
_RECLAIM_BUDGET = 2.0  # seconds one reclaim may spend compacting and vacuuming in pieces
_VACUUM_STEP_PAGES = 256
_FILE_MODE = 0o600
_SUFFIXES = ("", "-wal", "-shm", "-journal")
_ROWS_KEPT = 8192  # keys whose newest row `get` keeps in memory ...
_ROWS_KEPT_CHARS = 16 << 20  # ... and the most characters of values they may hold together


def _errcode(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # the primary code of an extended one


def _errname(e: sqlite3.Error) -> str:
    return str(getattr(e, "sqlite_errorname", None) or type(e).__name__)


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (None: no bound).

    SQLite compares TEXT byte-wise in UTF-8, which orders like code points, so bumping the
    last code point gives the exclusive upper bound of the prefix's range.
    """
    stripped = prefix.rstrip(chr(_MAX_CHAR))
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be stored; skip to the next scalar value
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _key_range(prefix: str, column: str) -> tuple[str, list[str]]:
    """A WHERE clause (and its parameters) selecting `column` values that start with `prefix`."""
    if not prefix:
        return "1", []
    end = _prefix_end(prefix)
    if end is None:
        return f"{column} >= ?", [prefix]
    return f"{column} >= ? AND {column} < ?", [prefix, end]


def _encode(value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise TypeError(f"store values must be JSON objects (dict), not {type(value).__name__}")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _secure_files(path: str) -> None:
    """Create the database file 0600 if it is new (SQLite gives its -wal and -shm files the
    database's mode) and take group and other permissions away from existing ones."""
    with contextlib.suppress(OSError):  # a path that cannot be created: sqlite3 reports it
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE))
    for suffix in _SUFFIXES:
        name = path + suffix
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & 0o077:
                os.chmod(name, mode & ~0o077)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("cannot make %s private (mode 0600): %s", name, e)


class SQLiteStore:
    """Revisioned key-value store on one SQLite file; see the module docstring.

    `reserve_bytes` is the size of the reserve file kept for deletes on a full disk (0: none),
    `headroom_bytes` the free space beyond it the filesystem needs before a full store
    accepts creates and updates again.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "NORMAL",
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        headroom_bytes: int = DEFAULT_HEADROOM_BYTES,
    ) -> None:
        sync = synchronous.upper()
        if sync not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}")
        self.path = path
        self.synchronous = sync
        on_disk = path not in ("", ":memory:")
        self.directory = os.path.dirname(os.path.abspath(path)) if on_disk else ""
        self.headroom_bytes = max(0, int(headroom_bytes))
        self._space = FreeSpace(self.directory or os.getcwd())
        self._reserve = Reserve(os.path.abspath(path) + "-reserve" if on_disk else "", reserve_bytes if on_disk else 0)
        self._full = False  # a write found the disk full and there has not been room since
        self._full_logged = float("-inf")
        self._last_reclaim = float("-inf")
        self._autocheckpoint_pages = 0
        self._secure_delete = 0
        self._compacted_through = 0  # history at or before this revision is known to be gone
        self._lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._watchers: tuple[Watch, ...] = ()  # copy-on-write, replaced under _watch_lock
        self._closed = False
        # key -> (rev, value, create_rev) of its live newest row; see "Point reads"
        self._rows_lock = threading.Lock()
        self._rows: dict[str, tuple[int, str, int]] = {}
        self._rows_chars = 0
        if on_disk:
            _secure_files(path)
        for attempt in (1, 2):
            try:
                self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as e:
                raise self._error(e, "open") from e
            try:
                self._open(sync)
                break
            except sqlite3.Error as e:
                self._conn.close()
                # opening needs a little room too (the -wal and -shm files): the reserve is for that
                if attempt == 1 and self._is_full(e) and self._reserve.discard():
                    continue
                raise self._error(e, "open") from e
            except BaseException:
                self._conn.close()
                raise
        if on_disk:
            self._convert_to_incremental_vacuum()
            if not self._reserve.take() and not self._reserve.disabled:
                self._note_full()
                log.warning("no room for the store's %d-byte reserve at %s: only deletes are accepted until "
                            "space is freed", self._reserve.size, self._reserve.path)

    def _open(self, sync: str) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if self._pragma("page_count") == 0:
            # Only a new database takes the mode this way (before its first table); older
            # ones are converted by _convert_to_incremental_vacuum. Not set otherwise: even
            # an unchanged mode is written, which a full disk refuses.
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {sync}")
        self._autocheckpoint_pages = max(16, _WAL_CHECKPOINT_BYTES // self._pragma("page_size"))
        self._conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint_pages}")
        self._secure_delete = self._pragma("secure_delete")

        def schema() -> None:
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            if self._conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'kv'").fetchone() is None:
                # Revision 1 is the store's creation; see the module docstring.
                self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('kv', 1)")
            self._conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_revision', 0)")

        self._transact(schema)
        self._compact_rev = self._read_compact_revision()

    def _convert_to_incremental_vacuum(self) -> None:
        """Give a database made without incremental auto-vacuum that mode (a one-time VACUUM),
        if the filesystem has room for it; without it, space freed inside the database file
        is reused by later writes but never given back to the filesystem."""
        try:
            if self._pragma("auto_vacuum") != 0:
                return
            size = self._file_bytes()
            free = self._space.get(fresh=True)
            need = 2 * size + self._reserve.size + self.headroom_bytes
            if free is not None and free < need:
                log.warning("%s was made without incremental auto-vacuum and there is no room to convert it "
                            "(%d bytes free, %d needed): space freed by deletes stays inside the file",
                            self.path, free, need)
                return
            log.info("converting %s (%d bytes) to incremental auto-vacuum", self.path, size)
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            self._conn.execute("VACUUM")
            self._checkpoint()
        except sqlite3.Error as e:
            self._rollback()
            log.warning("could not convert %s to incremental auto-vacuum: %s", self.path, e)
        finally:
            self._space.invalidate()

    # -- reads ---------------------------------------------------------------------------

    def current_revision(self) -> int:
        with self._lock, self._errors("read"):
            self._check_open()
            return self._seq()

    @property
    def compact_revision(self) -> int:
        return self._compact_rev

    def get(self, key: str) -> KV | None:
        # the hottest read (every GET of one object): see "Point reads" in the module docstring
        row = self._row(key)
        if row is None:
            return None
        return KV(key, json.loads(row[1]), row[0], row[2])

    def get_raw(self, key: str) -> tuple[str, int, int] | None:
        """The live value of `key` as the JSON text it is stored as (compact separators, not
        ASCII-escaped), with its mod and create revisions: `get` without the decode."""
        row = self._row(key)
        if row is None:
            return None
        return row[1], row[0], row[2]

    def _row(self, key: str) -> tuple[int, str, int] | None:
        """(rev, value, create_rev) of the key's live newest row: kept, or read and kept."""
        if self._closed:
            raise StoreClosed()
        with self._rows_lock:
            kept = self._rows.get(key)
        if kept is not None:
            return kept
        with self._lock:
            self._check_open()
            try:
                row = self._latest(key)
            except sqlite3.Error as e:
                raise self._error(e, "read") from e
            if row is None or row[3]:
                return None
            kept = (row[0], row[1], row[2])
            self._keep_row(key, kept)  # still under the main lock: no write between the read and this
        return kept

    def list(self, prefix: str) -> tuple[list[KV], int]:
        """Live keys under `prefix`, sorted by key, and the revision this snapshot is at."""
        where, params = _key_range(prefix, "key")
        sql = (
            "SELECT k.key, k.value, k.rev, k.create_rev FROM kv k"
            f" JOIN (SELECT MAX(rev) AS rev FROM kv WHERE {where} GROUP BY key) m ON k.rev = m.rev"
            " WHERE k.deleted = 0 ORDER BY k.key"
        )
        with self._lock, self._errors("read"):
            self._check_open()
            self._conn.execute("BEGIN")  # one read snapshot for the rows and the revision
            try:
                rows = self._conn.execute(sql, params).fetchall()
                rev = self._seq()
            finally:
                self._end_read()
        return [KV(r[0], json.loads(r[1]), r[2], r[3]) for r in rows], rev

    def list_page(
        self, prefix: str, revision: int = 0, start: str = "", limit: int = 0
    ) -> tuple[builtins.list[KV], int, int]:
        """One page of a list: the keys under `prefix` from `start` on (inclusive), as they
        were at `revision` (0: now), sorted by key, at most `limit` of them (0: all).

        Returns (items, the revision listed at, how many live keys follow the page). A
        revision before the compact revision is `Compacted` (its rows may be gone); one
        after the current revision is a ValueError."""
        where, params = _key_range(prefix, "key")
        at = "" if revision <= 0 else " AND rev <= ?"
        live = (f"FROM kv k JOIN (SELECT MAX(rev) AS rev FROM kv WHERE {where} AND key >= ?{at} GROUP BY key) m"
                " ON k.rev = m.rev WHERE k.deleted = 0")
        args: list[Any] = [*params, start, *([revision] if revision > 0 else [])]
        with self._lock, self._errors("read"):
            self._check_open()
            self._conn.execute("BEGIN")  # one read snapshot for the rows, the count and the revisions
            try:
                current = self._seq()
                if revision > current:
                    raise ValueError(f"revision {revision} is newer than the store ({current})")
                if 0 < revision < self._read_compact_revision():
                    raise Compacted(self._read_compact_revision(), revision)
                sql = f"SELECT k.key, k.value, k.rev, k.create_rev {live} ORDER BY k.key"
                rows = self._conn.execute(sql + (" LIMIT ?" if limit > 0 else ""),
                                          [*args, *([limit] if limit > 0 else [])]).fetchall()
                remaining = 0
                if limit > 0 and len(rows) == limit:
                    total = int(self._conn.execute(f"SELECT COUNT(*) {live}", args).fetchone()[0])
                    remaining = total - len(rows)
            finally:
                self._end_read()
        return [KV(r[0], json.loads(r[1]), r[2], r[3]) for r in rows], revision or current, remaining

    def count(self, prefix: str) -> int:
        """Number of live keys under `prefix`."""
        where, params = _key_range(prefix, "key")
        sql = (
            "SELECT COUNT(*) FROM kv k"
            f" JOIN (SELECT MAX(rev) AS rev FROM kv WHERE {where} GROUP BY key) m ON k.rev = m.rev"
            " WHERE k.deleted = 0"
        )
        with self._lock, self._errors("read"):
            self._check_open()
            return int(self._conn.execute(sql, params).fetchone()[0])

    def size_bytes(self) -> int:
        """Bytes on disk: the database pages plus the write-ahead log."""
        with self._lock, self._errors("read"):
            self._check_open()
            return self._file_bytes()

    def health(self) -> str | None:
        """None while the store accepts writes; otherwise one line saying why it does not.

        Today that is a full disk: "the master's disk is full: <data dir> (<N> bytes free);
        ...". Cheap enough for every readiness probe: no lock, no query, the filesystem's
        free space from a statvfs cached for a second.
        """
        if self._closed:
            return "the master's store is closed"
        if not self._full and self._reserve.ok:
            return None
        free = self._space.get()
        if free is not None and free >= self._room_needed():
            return None  # room again: the next write takes the reserve back
        return f"the master's disk is full: {self._where(free)}; only deletes are accepted until space is freed"

    # -- writes --------------------------------------------------------------------------

    def create(self, key: str, value: dict[str, Any]) -> KV:
        """Create `key`; KeyExists if it is live (a deleted key can be created again)."""
        text = _encode(value)

        def txn() -> int:
            latest = self._latest(key)
            if latest is not None and not latest[3]:
                raise KeyExists(key)
            rev = self._seq() + 1
            prev_rev = latest[0] if latest is not None else 0
            self._append(rev, key, text, rev, prev_rev, 0)
            return rev

        with self._lock:
            self._forget_row(key)
            rev = self._write(txn)
            kv = KV(key, json.loads(text), rev, rev)
            self._dispatch(WatchEvent(PUT, kv, None))
        # the caller gets its own decoded value: the dispatched one is shared by every watcher
        return KV(key, json.loads(text), rev, rev)

    def update(
        self, key: str, value: dict[str, Any], expected_mod_revision: int | None = None, *, deleting: bool = False
    ) -> KV:
        """Replace the value of a live key, optionally only if its mod_revision is as expected.

        `deleting`: this update is a step of deleting the object (setting its
        deletionTimestamp, removing a finalizer), so it is accepted on a full disk like a delete.
        """
        text = _encode(value)

        def txn() -> tuple[KV, int, bool]:
            prev = self._check_live(key, expected_mod_revision)
            rev = self._seq() + 1
            in_place = deleting and (self._full or low)
            if in_place:
                self._drop_history(key, rev)
            self._append(rev, key, text, prev.create_revision, prev.mod_revision, 0)
            return prev, rev, in_place

        with self._lock:
            self._forget_row(key)
            low = deleting and self._low_on_space()
            prev, rev, in_place = self._write(txn, deleting=deleting)
            if in_place:
                self._compact_rev = max(self._compact_rev, rev)
            kv = KV(key, json.loads(text), rev, prev.create_revision)
            self._dispatch(WatchEvent(PUT, kv, prev))
            if in_place:
                self._freed()
        return KV(key, json.loads(text), rev, prev.create_revision)

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KV:
        """Delete a live key; returns its last value with mod_revision = the delete's revision.

        Accepted on a full disk. There, and while free space is short, it removes the key's
        rows instead of appending a tombstone, and so moves the compact revision to its own
        (see the module docstring)."""

        def txn() -> tuple[KV, int, bool]:
            prev = self._check_live(key, expected_mod_revision)
            rev = self._seq() + 1
            in_place = self._full or low
            if in_place:
                self._drop_history(key, rev)
                self._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'kv'", (rev,))
            else:
                self._append(rev, key, _encode(prev.value), prev.create_revision, prev.mod_revision, 1)
            return prev, rev, in_place

        with self._lock:
            self._forget_row(key)
            low = self._low_on_space()
            prev, rev, in_place = self._write(txn, deleting=True)
            if in_place:
                self._compact_rev = max(self._compact_rev, rev)
            kv = KV(key, prev.value, rev, prev.create_revision)
            self._dispatch(WatchEvent(DELETE, kv, prev))
            if in_place:
                self._freed()
        return kv

    def compact(self, revision: int) -> int:
        """Drop history up to `revision` (see the module docstring); returns rows removed.

        Compacting at or below the current compact revision is a no-op returning 0;
        compacting past the current revision is a ValueError.
        """
        with self._lock:
            self._check_open()
            if revision <= self._compact_rev:
                return 0
            removed = self._write(lambda: self._compact_txn(revision), deleting=True)
            self._compact_rev = revision
            self._compacted_through = max(self._compacted_through, revision)
            self._freed()
        return removed

    # -- watches -------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int, loop: asyncio.AbstractEventLoop | None = None) -> Watch:
        """Events for keys under `prefix` with revision > `after_revision`, in order.

        `after_revision` 0 means "from now": only writes that commit after this call.
        Otherwise history after `after_revision` is replayed first; Compacted if that
        history is gone. `loop` defaults to the running event loop, if any: with a loop
        the watch is read with `await next()`, without one with the blocking `get()`.
        """
        if after_revision < 0:
            raise ValueError("after_revision must be >= 0")
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        with self._lock, self._errors("read"):
            self._check_open()
            if after_revision == 0:
                start = self._seq()
            elif after_revision < self._compact_rev:
                raise Compacted(self._compact_rev, after_revision)
            else:
                start = after_revision
            watch = Watch(prefix, start, loop, on_close=self._unregister)
            for event in self._history(prefix, start):
                watch._push(event, direct=True)
            with self._watch_lock:
                self._watchers = (*self._watchers, watch)
        return watch

    def close(self) -> None:
        """Close every watch and the database. Idempotent. The reserve file stays on disk."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._rows_lock:
                self._rows.clear()
                self._rows_chars = 0
            self._conn.close()
        for watch in self._watchers:
            watch.close()

    def close_watches(self) -> None:
        """End every open watch: its consumer sees the stream end (an API watch ends its
        response, clients watch again). The store stays open; new watches may start."""
        for watch in self._watchers:
            watch.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (callers hold self._lock) ---------------------------------------------

    def _keep_row(self, key: str, row: tuple[int, str, int]) -> None:
        """Keep the newest row of `key` for `get`, dropping the oldest kept ones beyond the
        bounds. The caller holds the main lock and has just read `row` under it."""
        size = len(row[1])
        if size > _ROWS_KEPT_CHARS // 16:
            return  # a very large value: read from the database every time
        with self._rows_lock:
            rows = self._rows
            gone = rows.pop(key, None)
            if gone is not None:
                self._rows_chars -= len(gone[1])
            while rows and (len(rows) >= _ROWS_KEPT or self._rows_chars + size > _ROWS_KEPT_CHARS):
                self._rows_chars -= len(rows.pop(next(iter(rows)))[1])
            rows[key] = row
            self._rows_chars += size

    def _forget_row(self, key: str) -> None:
        """Before a write to `key` (under the main lock): readers of it go to the database."""
        with self._rows_lock:
            gone = self._rows.pop(key, None)
            if gone is not None:
                self._rows_chars -= len(gone[1])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed()

    def _seq(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        return int(row[0]) if row is not None else 0

    def _read_compact_revision(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
        return int(row[0]) if row is not None else 0

    def _pragma(self, name: str) -> int:
        return int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def _file_bytes(self) -> int:
        size = self._pragma("page_count") * self._pragma("page_size")
        with contextlib.suppress(OSError):
            size += os.path.getsize(self.path + "-wal")
        return size

    def _latest(self, key: str) -> tuple[int, str, int, int] | None:
        """(rev, value, create_rev, deleted) of the key's newest row."""
        row: tuple[int, str, int, int] | None = self._conn.execute(
            "SELECT rev, value, create_rev, deleted FROM kv WHERE key = ? ORDER BY rev DESC LIMIT 1",
            (key,),
        ).fetchone()
        return row

    def _check_live(self, key: str, expected_mod_revision: int | None) -> KV:
        row = self._latest(key)
        if row is None or row[3]:
            raise KeyNotFound(key)
        current = KV(key, json.loads(row[1]), row[0], row[2])
        if expected_mod_revision is not None and expected_mod_revision != current.mod_revision:
            raise RevisionConflict(key, expected_mod_revision, current)
        return current

    def _append(self, rev: int, key: str, text: str, create_rev: int, prev_rev: int, deleted: int) -> None:
        """Append the row for revision `rev` (inside the open write transaction)."""
        self._conn.execute(
            "INSERT INTO kv (rev, key, value, create_rev, prev_rev, deleted) VALUES (?, ?, ?, ?, ?, ?)",
            (rev, key, text, create_rev, prev_rev, deleted),
        )

    def _drop_history(self, key: str, rev: int) -> None:
        """Remove every row of `key` and move the compact revision to `rev` (the write that
        follows in the same transaction): on a full disk a delete frees the key's space at
        once instead of appending a tombstone. Watches resuming from before `rev` get
        Compacted (410) and relist, which is how they learn of the delete."""
        self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))
        self._conn.execute(
            "UPDATE meta SET value = MAX(value, ?) WHERE name = 'compact_revision'", (rev,)
        )

    def _compact_txn(self, revision: int) -> int:
        current = self._seq()
        if revision > current:
            raise ValueError(f"cannot compact at {revision}: the current revision is {current}")
        removed = self._conn.execute(
            "DELETE FROM kv WHERE rev IN (SELECT prev_rev FROM kv WHERE prev_rev != 0 AND rev <= ?)",
            (revision,),
        ).rowcount
        removed += self._conn.execute("DELETE FROM kv WHERE deleted = 1 AND rev <= ?", (revision,)).rowcount
        self._conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))
        return int(removed)

    # -- transactions and errors ---------------------------------------------------------

    def _transact(self, txn: Callable[[], T]) -> T:
        """Run `txn` in a write transaction and commit it; on any error nothing of it remains."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = txn()
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        return result

    def _rollback(self) -> None:
        # After some errors (SQLITE_FULL, SQLITE_IOERR...) SQLite has rolled the transaction
        # back itself; a ROLLBACK then would only fail with "no transaction is active".
        if not self._conn.in_transaction:
            return
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            log.warning("store %s: rollback failed: %s", self.path, e)

    def _end_read(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def _write(self, txn: Callable[[], T], deleting: bool = False) -> T:
        """Run a write transaction, mapping SQLite's errors; see "a full disk" in the module
        docstring. `deleting`: the write only deletes, so it goes ahead on a full disk and
        may use the reserve."""
        self._check_open()
        if not deleting:
            self._ensure_room()
        attempts: tuple[Callable[[], bool] | None, ...] = (None,)
        if deleting:
            attempts = (None, self._reserve.release, self._reclaim)
        error: sqlite3.Error | None = None
        for make_room in attempts:
            if make_room is not None and not make_room():
                continue
            try:
                return self._transact(txn)
            except sqlite3.Error as e:
                if not self._is_full(e):
                    raise self._error(e, "write to") from e
                self._note_full()
                error = e
        raise self._full_error(deleting) from error

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            raise self._error(e, what) from e

    def _error(self, e: sqlite3.Error, what: str) -> StorageFull | StoreUnavailable | StoreFailure:
        """The StoreError (and ApiError) for a sqlite3 error."""
        if self._is_full(e):
            self._note_full()
            return self._full_error(False)
        code = _errcode(e)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            log.warning("store %s: could not %s it: %s", self.path, what, e)
            return StoreUnavailable(
                f"the master's store is busy ({e}: another process is using {self.path}); retry shortly"
            )
        log.error("store %s: could not %s it: %s (%s)", self.path, what, e, _errname(e), exc_info=e)
        return StoreFailure(f"the master's store could not {what} {self.path}: {e} ({_errname(e)}); "
                            "see the master's log")

    def _is_full(self, e: sqlite3.Error) -> bool:
        code = _errcode(e)
        if code == sqlite3.SQLITE_FULL or "database or disk is full" in str(e):
            return True
        if code == sqlite3.SQLITE_IOERR and self.directory:
            # ENOSPC where SQLite reports an I/O error (growing the -shm file, say)
            free = self._space.get(fresh=True)
            return free is not None and free < max(self.headroom_bytes, 64 << 10)
        return False

    def _where(self, free: int | None) -> str:
        return f"{self.directory or self.path} ({'unknown' if free is None else free} bytes free)"

    def _full_error(self, deleting: bool) -> StorageFull:
        free = self._space.get()
        if deleting:
            message = (f"the master's disk is full: {self._where(free)}; not even a delete can be stored now: "
                       "free space on that filesystem, then retry")
        else:
            message = (f"the master's disk is full: {self._where(free)}; the write was not stored: "
                       "free space on that filesystem or delete objects that are no longer needed "
                       "(deletes are still accepted), then retry")
        return StorageFull(message, self.directory, free, deleting)

    # -- a full disk ---------------------------------------------------------------------

    def _note_full(self) -> None:
        self._space.invalidate()
        now = time.monotonic()
        if not self._full or now - self._full_logged >= 60:
            self._full_logged = now
            log.warning("the master's disk is full: %s; creates and updates are refused, deletes accepted, "
                        "until space is freed", self._where(self._space.get(fresh=True)))
        if not self._full:
            self._full = True
            self._full_mode(True)

    def _full_mode(self, on: bool) -> None:
        """Settings for a full disk. No automatic checkpoints: one that cannot finish still
        grows the database file and takes the room deletes need (the store checkpoints
        after each delete instead). Freed pages are not overwritten first (secure_delete
        FAST): that would write as much to the log as a delete frees; the incremental
        vacuum that follows cuts them out of the file."""
        pages = 0 if on else self._autocheckpoint_pages
        # the pragma reads FAST as 2 but takes only the keyword ("2" would mean ON)
        secure = "FAST" if on or self._secure_delete == 2 else str(self._secure_delete)
        with contextlib.suppress(sqlite3.Error, AttributeError):  # AttributeError: not open yet
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            self._conn.execute(f"PRAGMA secure_delete = {secure}")

    def _low_on_space(self) -> bool:
        """Short of space: less free than writes need to be accepted plus one more headroom.
        Deletes then free their rows at once rather than append tombstones, which would
        fill the disk again (a statvfs per delete: cheap next to a commit)."""
        if self._full:
            return True
        if not self.directory:
            return False
        free = self._space.get(fresh=True)
        return free is not None and free < self._room_needed() + self.headroom_bytes

    def _room_needed(self) -> int:
        return self.headroom_bytes + (0 if self._reserve.ok else self._reserve.size)

    def _ensure_room(self) -> None:
        """Before a create or update: StorageFull while the disk is full and stays so."""
        if not self._full and self._reserve.ok:
            return
        if self._full and time.monotonic() - self._last_reclaim >= _RECLAIM_INTERVAL:
            self._reclaim()
        if not self._recover():
            raise self._full_error(False)

    def _recover(self) -> bool:
        """Take the reserve back and leave the full state if the filesystem has room again."""
        free = self._space.get(fresh=True)
        if free is not None and free < self._room_needed():
            return False
        if not self._reserve.ok:
            self._reserve.take()
            if not self._reserve.ok:
                return False
        if self._full:
            self._full = False
            self._full_mode(False)
            self._space.invalidate()
            log.warning("the master's disk has room again: %s; writes are accepted again",
                        self._where(self._space.get(fresh=True)))
        return True

    def _freed(self) -> None:
        """After a delete that freed its rows or a compaction, on a full disk or short of space:
        give the space back to the filesystem now, and accept writes again if that made room."""
        if self._low_on_space():
            self._reclaim()
            if self._full:
                self._recover()

    def _reclaim(self) -> bool:
        """Give the filesystem back what the database no longer needs; True if the files shrank.

        Removes the history up to the compact revision (deletes on a full disk move it to
        their own revision), moves the free pages out of the database file (incremental
        vacuum) and truncates the write-ahead log. Each step works in pieces, with a
        checkpoint in between, when doing it at once finds no room.
        """
        self._last_reclaim = time.monotonic()
        try:
            before = self._file_bytes()
        except sqlite3.Error:
            before = 0
        deadline = time.monotonic() + _RECLAIM_BUDGET
        self._compact_history(deadline)
        self._vacuum(deadline)
        self._checkpoint()
        self._space.invalidate()
        try:
            after = self._file_bytes()
        except sqlite3.Error:
            after = before
        if after < before:
            log.debug("disk full: %s shrank from %d to %d bytes", self.path, before, after)
        return after < before

    def _compact_history(self, deadline: float) -> None:
        """Remove the rows compaction at the compact revision removes, a range of revisions
        at a time (a range that finds no room is halved), with a checkpoint after each."""
        try:
            lowest = self._conn.execute("SELECT MIN(rev) FROM kv").fetchone()[0]
        except sqlite3.Error as e:
            log.warning("disk full: reading %s failed: %s", self.path, e)
            return
        lo = max(self._compacted_through, (lowest or 1) - 1)
        step = 1024
        while lo < self._compact_rev and time.monotonic() < deadline:
            hi = min(self._compact_rev, lo + step)
            try:
                self._transact(lambda: self._compact_range(lo, hi))  # noqa: B023 - called at once
            except sqlite3.Error as e:
                if not self._is_full(e) or step == 1:
                    log.warning("disk full: compacting %s failed: %s", self.path, e)
                    break
                step //= 2
                self._checkpoint()
                continue
            lo = self._compacted_through = hi
            self._checkpoint()
            step = min(step * 2, 1 << 16)

    def _compact_range(self, lo: int, hi: int) -> int:
        """What `_compact_txn(hi)` removes that `_compact_txn(lo)` did not."""
        removed = self._conn.execute(
            "DELETE FROM kv WHERE rev IN (SELECT prev_rev FROM kv WHERE prev_rev != 0 AND rev > ? AND rev <= ?)",
            (lo, hi),
        ).rowcount
        removed += self._conn.execute(
            "DELETE FROM kv WHERE deleted = 1 AND rev > ? AND rev <= ?", (lo, hi)
        ).rowcount
        return int(removed)

    def _vacuum(self, deadline: float) -> None:
        """Move the free pages out of the database file: at once, or (when that finds no room
        for the pages it moves) a number of pages at a time, halved while even that fails."""
        step = 0  # 0: every free page
        while time.monotonic() < deadline:
            try:
                if not self._pragma("freelist_count") or self._pragma("auto_vacuum") == 0:
                    return
                # executescript, not execute: the pragma frees one page per step, and
                # execute() steps a statement without result columns only once
                self._conn.executescript(f"PRAGMA incremental_vacuum({step});")
            except sqlite3.Error as e:
                self._rollback()
                if not self._is_full(e) or step == 1:
                    log.warning("disk full: vacuuming %s failed: %s", self.path, e)
                    return
                step = _VACUUM_STEP_PAGES if step == 0 else max(1, step // 2)
            self._checkpoint()

    def _checkpoint(self) -> bool:
        """Copy the write-ahead log into the database and truncate it; False if it could not."""
        try:
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as e:
            log.debug("store %s: checkpoint failed: %s", self.path, e)
            return False
        return not busy

    # -- watches (callers hold self._lock) -----------------------------------------------

    def _history(self, prefix: str, after: int) -> Iterable[WatchEvent]:
        where, params = _key_range(prefix, "k.key")
        rows = self._conn.execute(
            "SELECT k.rev, k.key, k.value, k.create_rev, k.prev_rev, k.deleted, p.value, p.create_rev"
            " FROM kv k LEFT JOIN kv p ON p.rev = k.prev_rev"
            f" WHERE k.rev > ? AND {where} ORDER BY k.rev",
            [after, *params],
        ).fetchall()
        for rev, key, text, create_rev, prev_rev, deleted, prev_text, prev_create in rows:
            value = json.loads(text)
            kv = KV(key, value, rev, create_rev)
            if deleted:
                # The tombstone holds the last value, so `prev` never depends on the older row.
                yield WatchEvent(DELETE, kv, KV(key, value, prev_rev, create_rev))
            elif create_rev == rev:
                yield WatchEvent(PUT, kv, None)
            else:
                prev = (
                    KV(key, json.loads(prev_text), prev_rev, prev_create) if prev_text is not None else None
                )
                yield WatchEvent(PUT, kv, prev)

    def _dispatch(self, event: WatchEvent) -> None:
        dead = [w for w in self._watchers if w.matches(event) and not w._push(event)]
        for watch in dead:
            watch.close()

    def _unregister(self, watch: Watch) -> None:
        with self._watch_lock:
            self._watchers = tuple(w for w in self._watchers if w is not watch)
