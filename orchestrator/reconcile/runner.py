"""A small controller runtime: level-triggered work queues fed by watches and a resync.

Each controller names the kinds it watches and maps every watch event to the keys of
the objects it must reconcile (`keys_for`). Keys are deduplicated while queued, and one
worker per controller processes them, so an object is never reconciled twice at once.
`sync(key)` reads the current state from the registry (no stale caches: the store is
in-process), acts, and returns; failures are retried with a per-key backoff. A periodic
resync enqueues every key again, so a missed event is corrected within one period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ApiError
from ..objects.kinds import Kind
from ..registry import Registry

log = logging.getLogger("dockyard.controllers")


class Controller:
    name = "controller"
    watches: tuple[Kind, ...] = ()
    resync_seconds = 10.0

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace")
        return [f"{ns}/{meta['name']}" if ns else meta["name"]]

    def all_keys(self) -> Iterable[str]:
        return []

    def sync(self, key: str) -> None:
        raise NotImplementedError


def split_key(key: str) -> tuple[str | None, str]:
    if "/" in key:
        ns, name = key.split("/", 1)
        return ns, name
    return None, key


class Runner:
    def __init__(self, registry: Registry, controllers: list[Controller]) -> None:
        self.registry = registry
        self.controllers = controllers
        self.queues: dict[str, asyncio.Queue[str]] = {}
        self.pending: dict[str, set[str]] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.retrying: set[tuple[str, str]] = set()  # keys with a delayed retry scheduled
        self.tasks: list[asyncio.Task[None]] = []

    def _retry(self, c: Controller, key: str) -> None:
        self.retrying.discard((c.name, key))
        self.enqueue(c, key)

    def queue_depth(self) -> dict[str, int]:
        return {name: q.qsize() for name, q in self.queues.items()}

    def enqueue(self, c: Controller, key: str) -> None:
        pending = self.pending[c.name]
        if key not in pending:
            pending.add(key)
            self.queues[c.name].put_nowait(key)

    async def start(self) -> None:
        for c in self.controllers:
            self.queues[c.name] = asyncio.Queue()
            self.pending[c.name] = set()
            self.tasks.append(asyncio.create_task(self._worker(c), name=f"{c.name}-worker"))
            self.tasks.append(asyncio.create_task(self._resync(c), name=f"{c.name}-resync"))
            for kind in c.watches:
                self.tasks.append(asyncio.create_task(self._watch(c, kind), name=f"{c.name}-watch-{kind.resource}"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def _watch(self, c: Controller, kind: Kind) -> None:
        rv: str | None = "0"
        while True:
            try:
                async for ev in self.registry.watch(kind, None, rv):
                    if ev["type"] == "ERROR":
                        rv = "0"
                        break
                    obj = ev["object"]
                    if ev["type"] == "BOOKMARK":
                        continue
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    for key in c.keys_for(kind, ev["type"], obj):
                        self.enqueue(c, key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: watch of %s failed; restarting", c.name, kind.resource)
                rv = "0"
                await asyncio.sleep(1.0)

    async def _resync(self, c: Controller) -> None:
        while True:
            await asyncio.sleep(c.resync_seconds)
            try:
                for key in c.all_keys():
                    self.enqueue(c, key)
            except Exception:
                log.exception("%s: resync failed", c.name)

    async def _worker(self, c: Controller) -> None:
        q = self.queues[c.name]
        while True:
            key = await q.get()
            self.pending[c.name].discard(key)
            try:
                c.sync(key)
                self.failures.pop((c.name, key), None)
            except Exception as e:
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
            # let the API server breathe between syncs
            await asyncio.sleep(0)
