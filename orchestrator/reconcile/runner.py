"""A small controller runtime: informers, level-triggered work queues and a resync, on a
thread of their own.

Each controller names the kinds it watches and maps every change of those kinds to the
keys of the objects it must reconcile (`keys_for`). A `Runner` runs a set of controllers
as one unit (the controller manager is one, the scheduler another): it owns a thread with
its own asyncio event loop, so a slow reconcile never stalls the API server's loop, and
`start()`/`stop()` switch the whole unit on and off (both idempotent; `stop` cancels the
workers and the watches and joins the thread; a stopped runner can be started again).
A restart lists every kind again and announces what changed while it was stopped
(deletions included) before any worker runs, then enqueues every key at once, as a
controller manager taking over does.

The runner keeps one `Informer` per watched kind, shared by all its controllers (one
watch per kind, however many controllers want it); each informer change is offered to
every controller watching that kind, whose keys go on its queue. Controllers may read
their watched kinds from those caches (`Controller.lister(kind)`, read-only objects);
used without a runner (as the unit tests do) the same call reads the registry.

Keys are deduplicated while queued, and one worker per controller processes them, so an
object is never reconciled twice at once; a worker starts once the caches of its kinds
hold their first list. `sync(key)` acts and returns; failures are retried with a per-key
backoff. A periodic resync enqueues every key again (`all_keys`), so a missed event is
corrected within one period. `on_sync(controller, key, seconds, error)` is called after
every sync (the master's metrics time them through it).

Controllers of one runner share its thread: their state needs no locks as long as it is
touched only from `keys_for`, `all_keys` and `sync`. What they share with other threads
(the registry, create hooks, the Event recorder) is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind
from .informer import Informer, Informers, Lister, RegistryLister

log = logging.getLogger("dockyard.controllers")

SyncHook = Callable[[str, str, float, "BaseException | None"], None]


class Controller:
    name = "controller"
    watches: tuple[Kind, ...] = ()
    resync_seconds = 10.0
    informers: Informers | None = None  # the runner's, once it runs this controller

    def __init__(self, registry: ObjectAccess) -> None:
        self.registry = registry

    def use_informers(self, informers: Informers) -> None:
        """Read the watched kinds from `informers` (the runner's) from now on."""
        self.informers = informers

    def lister(self, kind: Kind) -> Lister:
        """Reads of `kind`: the runner's informer cache when it has one, else the registry."""
        if self.informers is not None and kind in self.informers:
            return self.informers.get(kind)
        return RegistryLister(self.registry, kind)

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace")
        return [f"{ns}/{meta['name']}" if ns else meta["name"]]

    def all_keys(self) -> Iterable[str]:
        return []

    def sync(self, key: str) -> None:
        raise NotImplementedError

    async def stopped(self) -> None:
        """The runner stopped (called on its loop, before the loop closes): drop what is
        bound to that loop. The runner may start the controller again on a new loop."""


def split_key(key: str) -> tuple[str | None, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


class Runner:
    """Controllers, their informers and work queues on a thread and event loop of their own."""

    def __init__(self, registry: ObjectAccess, controllers: list[Controller], *, name: str = "controller-manager",
                 on_sync: SyncHook | None = None, nice: int = 0) -> None:
        self.registry = registry
        self.nice = nice  # added to the thread's scheduling niceness (Linux: per thread)
        self.controllers = controllers
        self.name = name
        self.on_sync = on_sync
        self.informers = Informers(registry)
        for c in controllers:
            for kind in c.watches:
                self.informers.get(kind).add_handler(self._handler(c, kind))
            c.use_informers(self.informers)
        self.queues: dict[str, asyncio.Queue[str]] = {}
        self.pending: dict[str, set[str]] = {c.name: set() for c in controllers}
        self.failures: dict[tuple[str, str], int] = {}
        self.retrying: set[tuple[str, str]] = set()  # keys with a delayed retry scheduled
        self.tasks: list[asyncio.Task[None]] = []
        self._switch = threading.Lock()  # serializes start() and stop()
        self._lock = threading.Lock()  # guards the fields read from other threads
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.starts = 0  # how many times the runner's loop has started

    # -- switching on and off (any thread but the runner's own) ----------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread, the informers and the workers. Idempotent."""
        with self._switch:
            if self._thread is not None and self._thread.is_alive():
                return
            ready = threading.Event()
            self._thread = threading.Thread(target=self._main, args=(ready,), name=self.name, daemon=True)
            self._thread.start()
            if not ready.wait(timeout):
                log.warning("%s: the runner's loop did not start within %.0fs", self.name, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel the workers and watches and join the thread. Idempotent."""
        with self._switch:
            thread = self._thread
            if thread is None:
                return
            with self._lock:
                loop, stop = self._loop, self._stop
            if thread is threading.current_thread():
                raise RuntimeError("a runner cannot stop itself from its own thread")
            if loop is not None and stop is not None:
                try:
                    loop.call_soon_threadsafe(stop.set)
                except RuntimeError:
                    pass  # the loop already closed
            thread.join(timeout)
            if thread.is_alive():
                log.error("%s: the runner's thread did not stop within %.0fs", self.name, timeout)
            self._thread = None

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Block until every informer holds its first list (True), or `timeout` passes."""
        deadline = time.monotonic() + timeout
        return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in self.informers.all())

    # -- reading from other threads ----------------------------------------------------------

    def queue_depth(self) -> dict[str, int]:
        """Keys waiting in each controller's queue (safe from any thread)."""
        with self._lock:
            pending = dict(self.pending)
        return {name: len(keys) for name, keys in pending.items()}

    # -- the runner's thread -----------------------------------------------------------------

    def _main(self, ready: threading.Event) -> None:
        if self.nice:
            # Reconciling is level-triggered and tolerates a delay; requests do not: when both
            # want the CPU, the API's thread goes first.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._run(loop, ready))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            log.exception("%s: the runner failed", self.name)
        finally:
            ready.set()
            asyncio.set_event_loop(None)
            loop.close()
            with self._lock:
                self._loop = None
                self._stop = None

    async def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        stop = asyncio.Event()
        queues: dict[str, asyncio.Queue[str]] = {c.name: asyncio.Queue() for c in self.controllers}
        with self._lock:
            self._loop, self._stop = loop, stop
            self.queues = queues
            self.pending = {c.name: set() for c in self.controllers}
        self.retrying.clear()
        self.failures.clear()
        self.starts += 1
        restarted = self.starts > 1
        for informer in self.informers.all():
            if restarted:  # the world moved on while stopped: list again, announce the differences
                informer.invalidate()
            self.tasks.append(asyncio.create_task(informer.run(), name=f"{self.name}-informer-{informer.kind.resource}"))
        for c in self.controllers:
            self.tasks.append(asyncio.create_task(self._worker(c), name=f"{c.name}-worker"))
            self.tasks.append(asyncio.create_task(self._resync(c, at_once=restarted), name=f"{c.name}-resync"))
        ready.set()
        try:
            await stop.wait()
        finally:
            await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        await _cancel(self.tasks)
        self.tasks.clear()
        for c in self.controllers:
            try:
                await c.stopped()
            except Exception:
                log.exception("%s: stopping failed", c.name)
        # whatever the controllers started on this loop (e.g. autoscaler rounds)
        await _cancel([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    def _handler(self, c: Controller, kind: Kind) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            for key in c.keys_for(kind, event_type, obj):
                self.enqueue(c, key)

        return handle

    def _retry(self, c: Controller, key: str) -> None:
        self.retrying.discard((c.name, key))
        self.enqueue(c, key)

    def enqueue(self, c: Controller, key: str) -> None:
        """Queue `key` for `c` unless already queued (on the runner's loop only)."""
        pending = self.pending[c.name]
        if key not in pending:
            pending.add(key)
            self.queues[c.name].put_nowait(key)

    def _informers_of(self, c: Controller) -> list[Informer]:
        return [self.informers.get(kind) for kind in c.watches]

    async def _wait_synced(self, c: Controller) -> None:
        informers = self._informers_of(c)
        while not all(i.synced.is_set() for i in informers):
            await asyncio.sleep(0.01)

    async def _resync(self, c: Controller, at_once: bool = False) -> None:
        """Enqueue every key each period; on a restart also at once (once the caches are
        current), as a fresh controller manager reconciles everything when it takes over."""
        if at_once:
            await self._wait_synced(c)
        while True:
            if not at_once:
                await asyncio.sleep(c.resync_seconds)
            at_once = False
            try:
                for key in c.all_keys():
                    self.enqueue(c, key)
            except Exception:
                log.exception("%s: resync failed", c.name)

    async def _worker(self, c: Controller) -> None:
        await self._wait_synced(c)
        q = self.queues[c.name]
        while True:
            key = await q.get()
            self.pending[c.name].discard(key)
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                c.sync(key)
                self.failures.pop((c.name, key), None)
            except Exception as e:
                error = e
                n = self.failures.get((c.name, key), 0) + 1
                self.failures[(c.name, key)] = n
                delay = min(0.05 * (2 ** min(n, 8)), 10.0)
                if isinstance(e, ApiError) and e.reason in ("Conflict", "AlreadyExists", "NotFound"):
                    log.debug("%s: %s: %s; retrying in %.2fs", c.name, key, e.message, delay)
                else:
                    log.exception("%s: sync of %s failed; retrying in %.2fs", c.name, key, delay)
                retry = (c.name, key)
                if retry not in self.retrying:  # one delayed retry per key, as a workqueue keeps
                    self.retrying.add(retry)
                    asyncio.get_running_loop().call_later(delay, self._retry, c, key)
            if self.on_sync is not None:
                try:
                    self.on_sync(c.name, key, time.perf_counter() - started, error)
                except Exception:  # measuring must never break the controllers
                    log.exception("%s: the sync hook failed", c.name)
            # let the informers deliver events between syncs
            await asyncio.sleep(0)


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    # cancel again a task that swallowed one cancellation (a cancel can race a result)
    for _ in range(100):
        alive = [t for t in tasks if not t.done()]
        if not alive:
            return
        for t in alive:
            t.cancel()
        await asyncio.wait(alive, timeout=0.1)
