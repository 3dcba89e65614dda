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
One connection (`check_same_thread=False`), guarded by one `threading.Lock`; reads take the same
lock, which keeps things simple and correct (SQLite serialises writers anyway). Each write is a
`BEGIN IMMEDIATE` transaction that reads the key's newest row, checks the precondition
(exists / does not exist / expected `mod_revision`) and appends the new row: a compare-and-swap.
`BEGIN IMMEDIATE` also makes this safe should another process open the same file (a backup
tool, say), with `busy_timeout` to wait for it.

Durability: WAL journal. A commit has been written to the WAL file before `COMMIT` returns, so
every acknowledged write survives the process being killed (`kill -9`). With
`synchronous=NORMAL` (the default) the WAL is fsynced at checkpoints only, so a power loss or
kernel crash may lose the last few commits; `synchronous=FULL` fsyncs on every commit.

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
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from .base import (
    DELETE,
    KV,
    PUT,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StoreError,
    Watch,
    WatchEvent,
)

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


class SQLiteStore:
    """Revisioned key-value store on one SQLite file; see the module docstring."""

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        sync = synchronous.upper()
        if sync not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}")
        self.path = path
        self.synchronous = sync
        self._lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._watchers: tuple[Watch, ...] = ()  # copy-on-write, replaced under _watch_lock
        self._closed = False
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {sync}")
            self._conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            if self._conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'kv'").fetchone() is None:
                # Revision 1 is the store's creation; see the module docstring.
                self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('kv', 1)")
            self._conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('compact_revision', 0)")
            self._conn.execute("COMMIT")
            self._compact_rev = self._read_compact_revision()
        except BaseException:
            self._conn.close()
            raise

    # -- reads ---------------------------------------------------------------------------

    def current_revision(self) -> int:
        with self._lock:
            self._check_open()
            return self._seq()

    @property
    def compact_revision(self) -> int:
        return self._compact_rev

    def get(self, key: str) -> KV | None:
        with self._lock:
            self._check_open()
            row = self._latest(key)
        if row is None or row[3]:
            return None
        return KV(key, json.loads(row[1]), row[0], row[2])

    def list(self, prefix: str) -> tuple[list[KV], int]:
        """Live keys under `prefix`, sorted by key, and the revision this snapshot is at."""
        where, params = _key_range(prefix, "key")
        sql = (
            "SELECT k.key, k.value, k.rev, k.create_rev FROM kv k"
            f" JOIN (SELECT MAX(rev) AS rev FROM kv WHERE {where} GROUP BY key) m ON k.rev = m.rev"
            " WHERE k.deleted = 0 ORDER BY k.key"
        )
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN")  # one read snapshot for the rows and the revision
            try:
                rows = self._conn.execute(sql, params).fetchall()
                rev = self._seq()
            finally:
                self._conn.execute("COMMIT")
        return [KV(r[0], json.loads(r[1]), r[2], r[3]) for r in rows], rev

    def count(self, prefix: str) -> int:
        """Number of live keys under `prefix`."""
        where, params = _key_range(prefix, "key")
        sql = (
            "SELECT COUNT(*) FROM kv k"
            f" JOIN (SELECT MAX(rev) AS rev FROM kv WHERE {where} GROUP BY key) m ON k.rev = m.rev"
            " WHERE k.deleted = 0"
        )
        with self._lock:
            self._check_open()
            return int(self._conn.execute(sql, params).fetchone()[0])

    def size_bytes(self) -> int:
        """Bytes on disk: the database pages plus the write-ahead log."""
        with self._lock:
            self._check_open()
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        size = int(pages) * int(page_size)
        try:
            size += os.path.getsize(self.path + "-wal")
        except OSError:
            pass
        return size

    # -- writes --------------------------------------------------------------------------

    def create(self, key: str, value: dict[str, Any]) -> KV:
        """Create `key`; KeyExists if it is live (a deleted key can be created again)."""
        text = _encode(value)
        with self._lock:
            self._begin_write()
            try:
                latest = self._latest(key)
                if latest is not None and not latest[3]:
                    raise KeyExists(key)
                rev = self._seq() + 1
                prev_rev = latest[0] if latest is not None else 0
                self._append_commit(rev, key, text, rev, prev_rev, 0)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            kv = KV(key, json.loads(text), rev, rev)
            self._dispatch(WatchEvent(PUT, kv, None))
        # the caller gets its own decoded value: the dispatched one is shared by every watcher
        return KV(key, json.loads(text), rev, rev)

    def update(self, key: str, value: dict[str, Any], expected_mod_revision: int | None = None) -> KV:
        """Replace the value of a live key, optionally only if its mod_revision is as expected."""
        text = _encode(value)
        with self._lock:
            self._begin_write()
            try:
                prev = self._check_live(key, expected_mod_revision)
                rev = self._seq() + 1
                self._append_commit(rev, key, text, prev.create_revision, prev.mod_revision, 0)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            kv = KV(key, json.loads(text), rev, prev.create_revision)
            self._dispatch(WatchEvent(PUT, kv, prev))
        return KV(key, json.loads(text), rev, prev.create_revision)

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KV:
        """Delete a live key; returns its last value with mod_revision = the delete's revision."""
        with self._lock:
            self._begin_write()
            try:
                prev = self._check_live(key, expected_mod_revision)
                rev = self._seq() + 1
                self._append_commit(rev, key, _encode(prev.value), prev.create_revision, prev.mod_revision, 1)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            kv = KV(key, prev.value, rev, prev.create_revision)
            self._dispatch(WatchEvent(DELETE, kv, prev))
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
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._seq()
                if revision > current:
                    raise ValueError(f"cannot compact at {revision}: the current revision is {current}")
                removed = self._conn.execute(
                    "DELETE FROM kv WHERE rev IN (SELECT prev_rev FROM kv WHERE prev_rev != 0 AND rev <= ?)",
                    (revision,),
                ).rowcount
                removed += self._conn.execute(
                    "DELETE FROM kv WHERE deleted = 1 AND rev <= ?", (revision,)
                ).rowcount
                self._conn.execute("UPDATE meta SET value = ? WHERE name = 'compact_revision'", (revision,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._compact_rev = revision
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
        with self._lock:
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
        """Close every watch and the database. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
        for watch in self._watchers:
            watch.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (callers hold self._lock) ---------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    def _begin_write(self) -> None:
        self._check_open()
        self._conn.execute("BEGIN IMMEDIATE")

    def _seq(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        return int(row[0]) if row is not None else 0

    def _read_compact_revision(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE name = 'compact_revision'").fetchone()
        return int(row[0]) if row is not None else 0

    def _latest(self, key: str) -> tuple[int, str, int, int] | None:
        """(rev, value, create_rev, deleted) of the key's newest row."""
        return self._conn.execute(
            "SELECT rev, value, create_rev, deleted FROM kv WHERE key = ? ORDER BY rev DESC LIMIT 1",
            (key,),
        ).fetchone()

    def _check_live(self, key: str, expected_mod_revision: int | None) -> KV:
        row = self._latest(key)
        if row is None or row[3]:
            raise KeyNotFound(key)
        current = KV(key, json.loads(row[1]), row[0], row[2])
        if expected_mod_revision is not None and expected_mod_revision != current.mod_revision:
            raise RevisionConflict(key, expected_mod_revision, current)
        return current

    def _append_commit(
        self, rev: int, key: str, text: str, create_rev: int, prev_rev: int, deleted: int
    ) -> None:
        """Append the row for revision `rev` and commit the open write transaction."""
        self._conn.execute(
            "INSERT INTO kv (rev, key, value, create_rev, prev_rev, deleted) VALUES (?, ?, ?, ?, ?, ?)",
            (rev, key, text, create_rev, prev_rev, deleted),
        )
        self._conn.execute("COMMIT")

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
