"""Backend-neutral pieces of the store: values, watch events, errors and the watch handle.

The store is a revisioned key-value map in the style of etcd: every write (create, update,
delete) gets the next value of one global, strictly increasing revision counter. A key's
current value carries the revision of the write that produced it (`mod_revision`) and the
revision of the write that created it (`create_revision`); both are what the API exposes as
`resourceVersion` and what compare-and-swap updates are checked against.

A `Watch` is a queue of `WatchEvent`s that a backend fills. It is fed from the writing
thread, so it works in one of two modes, chosen when it is created:

* **async** (an event loop was captured): events are handed to the loop with
  `loop.call_soon_threadsafe` into an `asyncio.Queue`; consume with `await watch.next()`.
* **blocking** (no loop): events go into a `queue.Queue`; consume with `watch.get()` from
  any thread.

Queues are unbounded on purpose: a slow consumer costs memory, never a stalled writer.
Consumers that can fall far behind should close the watch and resume later from the last
revision they saw.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import errors

PUT = "PUT"
DELETE = "DELETE"


@dataclass(frozen=True)
class KV:
    """One value of one key. `value` is shared with other readers: treat it as read-only."""

    key: str
    value: dict[str, Any]
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class WatchEvent:
    """A write seen by a watch.

    For "PUT", `kv` is the new value and `prev` the value it replaced (None for a create).
    For "DELETE", `kv` is the last value with `mod_revision` set to the delete's revision,
    and `prev` is that last value as it was stored (its own `mod_revision`).
    """

    type: str
    kv: KV
    prev: KV | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StoreError(Exception):
    """Root of the store's exceptions."""


class KeyExists(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFound(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class RevisionConflict(StoreError):
    """A compare-and-swap failed; `current` is the key's value now (None if it is gone)."""

    def __init__(self, key: str, expected: int, current: KV | None) -> None:
        have = current.mod_revision if current is not None else None
        super().__init__(f"key {key!r}: expected mod_revision {expected}, found {have}")
        self.key = key
        self.expected = expected
        self.current = current


class Compacted(StoreError):
    """The history asked for has been compacted away (the API answers 410 Gone)."""

    def __init__(self, compact_revision: int, requested: int) -> None:
        super().__init__(
            f"revision {requested} has been compacted; the oldest resumable revision is {compact_revision}"
        )
        self.compact_revision = compact_revision
        self.requested = requested


class StoreApiError(errors.ApiError):
    """A failure of the storage itself, as the `ApiError` the API answers with (never a bare 500).

    Not a `StoreError` (except `StoreClosed`, as before): `StoreError`s are the store's own
    outcomes (a key exists, a revision moved, history compacted, the store closed), and
    code that takes a `StoreError` for "the store is gone" keeps doing so.
    """

    def __init__(self, error: errors.ApiError) -> None:
        super().__init__(error.code, error.reason, error.message, error.details)


class StorageFull(StoreApiError):
    """507 InsufficientStorage: the filesystem of the store is full (SQLITE_FULL or ENOSPC).

    `directory` is the store's data directory, `free_bytes` what the filesystem had left
    (None if unknown) and `deleting` whether the refused write was a delete.
    """

    def __init__(self, message: str, directory: str, free_bytes: int | None, deleting: bool = False) -> None:
        super().__init__(errors.insufficient_storage(message))
        self.directory = directory
        self.free_bytes = free_bytes
        self.deleting = deleting


class StoreUnavailable(StoreApiError):
    """503 ServiceUnavailable: the store is busy (locked by another process past the busy
    timeout) or closed; retry after `details.retryAfterSeconds`."""

    def __init__(self, message: str, retry_after_seconds: int | None = 1) -> None:
        super().__init__(errors.service_unavailable(message, retry_after_seconds))


class StoreClosed(StoreError, StoreUnavailable):
    """The store has been closed (the master is stopping): a StoreError and a 503."""

    def __init__(self, message: str = "the master's store is closed (the master is shutting down); "
                 "retry shortly") -> None:
        StoreUnavailable.__init__(self, message)


class StoreFailure(StoreApiError):
    """500 InternalError naming the store and the database error (I/O error, corruption...)."""

    def __init__(self, message: str) -> None:
        super().__init__(errors.internal_error(message))


class _Closed:
    """Queue marker that wakes a consumer blocked on a watch that was closed."""


_CLOSED = _Closed()


class Watch:
    """Events strictly after `after_revision` for keys starting with `prefix`, in revision order.

    Backends call `_push` (from any thread) for each event, in revision order, and pass
    an `on_close` callback that unregisters the watch. `next()`/`get()` return None on
    timeout and, once the watch is closed and drained, None at once.
    """

    def __init__(
        self,
        prefix: str,
        after_revision: int,
        loop: asyncio.AbstractEventLoop | None,
        on_close: Callable[[Watch], None] | None = None,
    ) -> None:
        self.prefix = prefix
        self.after_revision = after_revision
        self.loop = loop
        self._on_close = on_close
        self._closed = False
        self._close_lock = threading.Lock()
        self._aqueue: asyncio.Queue[WatchEvent | _Closed] | None = None
        self._squeue: queue.Queue[WatchEvent | _Closed] | None = None
        if loop is not None:
            self._aqueue = asyncio.Queue()
        else:
            self._squeue = queue.Queue()

    @property
    def closed(self) -> bool:
        return self._closed

    def matches(self, event: WatchEvent) -> bool:
        return event.revision > self.after_revision and event.kv.key.startswith(self.prefix)

    def _push(self, item: WatchEvent | _Closed, *, direct: bool = False) -> bool:
        """Queue an item; False if the consumer's loop is gone (the caller should drop us).

        `direct` puts into an asyncio queue without going through the loop; only safe
        before the watch is handed out (replay), when nothing can be waiting on it.
        """
        if self._squeue is not None:
            self._squeue.put_nowait(item)
            return True
        assert self._aqueue is not None and self.loop is not None
        if direct:
            self._aqueue.put_nowait(item)
            return True
        try:
            self.loop.call_soon_threadsafe(self._aqueue.put_nowait, item)
        except RuntimeError:  # the loop is closed; nobody will read this watch again
            self._closed = True
            return False
        return True

    async def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event, or None on timeout or when the watch is closed."""
        if self._aqueue is None:
            raise RuntimeError("this watch was created without an event loop; use get()")
        if self._closed and self._aqueue.empty():
            return None
        try:
            if not self._aqueue.empty():
                item = self._aqueue.get_nowait()
            elif timeout is None:
                item = await self._aqueue.get()
            else:
                # asyncio.timeout, not wait_for: wait_for on 3.11 can swallow a cancellation
                # that arrives together with an event, and the cancelled task runs on
                async with asyncio.timeout(timeout):
                    item = await self._aqueue.get()
        except TimeoutError:
            return None
        if isinstance(item, _Closed):
            self._aqueue.put_nowait(item)  # keep later calls from blocking
            return None
        return item

    def get(self, timeout: float | None = None) -> WatchEvent | None:
        """Blocking form of `next()`, for watches created without an event loop."""
        if self._squeue is None:
            raise RuntimeError("this watch belongs to an event loop; use 'await next()'")
        if self._closed and self._squeue.empty():
            return None
        try:
            item = self._squeue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Closed):
            self._squeue.put_nowait(item)
            return None
        return item

    def close(self) -> None:
        """Unregister; events already queued can still be read. Idempotent."""
        with self._close_lock:
            if self._closed and self._on_close is None:
                return
            self._closed = True
            on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)
        self._push(_CLOSED)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(Protocol):
    """What the API server, controllers and scheduler rely on; SQLite and etcd implement it."""

    def current_revision(self) -> int: ...

    @property
    def compact_revision(self) -> int: ...

    def get(self, key: str) -> KV | None: ...

    def get_raw(self, key: str) -> tuple[str, int, int] | None:
        """(the value's JSON text, mod_revision, create_revision) of a live key: `get`
        without the decode, for callers that pass the bytes on."""
        ...

    def list(self, prefix: str) -> tuple[list[KV], int]: ...

    def count(self, prefix: str) -> int: ...

    def create(self, key: str, value: dict[str, Any]) -> KV: ...

    def update(
        self, key: str, value: dict[str, Any], expected_mod_revision: int | None = None, *, deleting: bool = False
    ) -> KV: ...

    def delete(self, key: str, expected_mod_revision: int | None = None) -> KV: ...

    def watch(
        self, prefix: str, after_revision: int, loop: asyncio.AbstractEventLoop | None = None
    ) -> Watch: ...

    def compact(self, revision: int) -> int: ...

    def health(self) -> str | None: ...

    def close(self) -> None: ...
