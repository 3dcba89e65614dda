"""Informers: an indexed, watch-fed cache of one kind, shared by the controllers of a runner.

What client-go's SharedIndexInformer is to kube-controller-manager. An `Informer` lists
its kind, then watches it from the list's resourceVersion, and keeps every object in a
cache with indexes (by namespace, by the uid of each owner; more can be added with
`add_index`). Each change is handed to the registered handlers as `(event_type, obj)`,
`event_type` being ADDED, MODIFIED or DELETED; the runtime's handlers map it to work
queue keys. When the watch ends it resumes from the last resourceVersion seen; when that
history is compacted (410 Gone) it lists again and *replaces* the cache: objects that
appeared or changed are announced as ADDED/MODIFIED, those that disappeared as DELETED,
so no handler misses a deletion that happened while it was not watching.

Objects handed out by the cache (`get`, `list`, `by_index`, the handlers' `obj`) are
shared by every reader: they must never be mutated. Copy before changing one (the
registry hands out fresh objects: write from those).

A controller that writes an object can `note()` the write's result (and `note_deleted()`
a delete) so that its next pass sees its own write even before the watch delivers it, as
client-go's mutation cache does; the watch's copy arriving later carries the same or a
newer resourceVersion, and an older event never replaces a newer object (nor resurrects a
deleted one).

`Lister` is the read interface controllers use; `RegistryLister` implements it straight
on the registry (every call a store read), for a controller used without a runner, as
the unit tests do. `Informers` hands out one informer per kind (one watch per kind for a
whole runner, however many controllers want it).

Threading: the informer runs as a task on its runner's event loop, where the handlers
run too; the cache is guarded by a lock, so reads from another thread are safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from ..errors import ApiError
from ..objects import Obj
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind
from ..store import StoreClosed

log = logging.getLogger("dockyard.informer")

Objs = list[Obj]  # (inside the classes below, `list` is a method's name)
Handler = Callable[[str, Obj], None]
IndexFunc = Callable[[Obj], Iterable[str]]

BY_NAMESPACE = "namespace"
BY_OWNER = "owner"  # the uid of each ownerReference


def namespace_index(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owner_index(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]


DEFAULT_INDEXES: dict[str, IndexFunc] = {BY_NAMESPACE: namespace_index, BY_OWNER: owner_index}


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _rv(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class Lister(Protocol):
    """Reads of one kind, from an informer's cache or the registry. Read-only results."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...

    def list(self, namespace: str | None = None) -> Objs: ...

    def by_index(self, index: str, value: str) -> Objs: ...

    def note(self, obj: Obj) -> None: ...

    def note_deleted(self, obj: Obj) -> None: ...


def note_delete(lister: Lister, result: Obj) -> None:
    """Note what a registry delete returned: an object only marked for deletion (graceful
    pod deletion, finalizers) stays, terminating; one deleted at once leaves the cache."""
    if (result.get("metadata") or {}).get("deletionTimestamp"):
        lister.note(result)
    else:
        lister.note_deleted(result)


class RegistryLister:
    """A `Lister` reading the registry directly (no cache, nothing to note)."""

    def __init__(self, registry: ObjectAccess, kind: Kind) -> None:
        self.registry = registry
        self.kind = kind

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.registry.try_get(self.kind, namespace, name)

    def list(self, namespace: str | None = None) -> Objs:
        return self.registry.items(self.kind, namespace)

    def by_index(self, index: str, value: str) -> Objs:
        fn = DEFAULT_INDEXES.get(index)
        if fn is None:
            raise KeyError(f"no index {index!r} without an informer")
        if index == BY_NAMESPACE:
            return self.registry.items(self.kind, value or None)
        return [o for o in self.registry.items(self.kind) if value in fn(o)]

    def note(self, obj: Obj) -> None:
        pass

    def note_deleted(self, obj: Obj) -> None:
        pass


class Informer:
    """List+watch of one kind into an indexed cache, with event handlers."""

    def __init__(self, registry: ObjectAccess, kind: Kind, indexes: dict[str, IndexFunc] | None = None) -> None:
        self.registry = registry
        self.kind = kind
        self._lock = threading.RLock()
        self._items: dict[str, Obj] = {}
        self._tombstones: dict[str, int] = {}  # key -> resourceVersion of a noted delete
        self._index_funcs: dict[str, IndexFunc] = dict(DEFAULT_INDEXES if indexes is None else indexes)
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._index_funcs}
        self._handlers: list[Handler] = []
        self.resource_version: str | None = None  # of the last list or event seen
        self.synced = threading.Event()  # the first list is in the cache
        self.relists = 0

    # -- configuration ------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        with self._lock:
            if name in self._index_funcs:
                return
            self._index_funcs[name] = fn
            index: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for value in fn(obj):
                    index.setdefault(value, set()).add(key)
            self._indexes[name] = index

    # -- reads (Lister) -----------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        key = f"{namespace}/{name}" if namespace and self.kind.namespaced else name
        with self._lock:
            return self._items.get(key)

    def list(self, namespace: str | None = None) -> Objs:
        if namespace and self.kind.namespaced:
            return self.by_index(BY_NAMESPACE, namespace)
        with self._lock:
            return [self._items[k] for k in sorted(self._items)]

    def by_index(self, index: str, value: str) -> Objs:
        """The objects whose index `index` holds `value`, in key order (as a store list)."""
        with self._lock:
            keys = self._indexes[index].get(value) or ()
            return [self._items[k] for k in sorted(keys)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    # -- a controller's own writes --------------------------------------------------------

    def note(self, obj: Obj) -> None:
        """Put the result of a write in the cache now (no handler runs); ignored if older."""
        key = object_key(obj)
        with self._lock:
            current = self._items.get(key)
            if current is not None and _rv(current) > _rv(obj):
                return
            if self._tombstones.get(key, -1) >= _rv(obj):
                return
            self._tombstones.pop(key, None)
            self._put(key, obj)

    def note_deleted(self, obj: Obj) -> None:
        """Drop a deleted object from the cache now; older events will not bring it back."""
        key = object_key(obj)
        with self._lock:
            current = self._items.get(key)
            if current is not None and _rv(current) > _rv(obj) and \
                    current["metadata"].get("uid") != obj.get("metadata", {}).get("uid"):
                return  # a newer object of the same name
            self._tombstones[key] = max(_rv(obj), _rv(current) if current is not None else 0)
            self._remove(key)

    # -- cache maintenance (the caller holds the lock) ------------------------------------

    def _put(self, key: str, obj: Obj) -> None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._index_funcs.items():
            index = self._indexes[name]
            for value in fn(obj):
                index.setdefault(value, set()).add(key)

    def _remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._index_funcs.items():
            index = self._indexes[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    # -- feeding ------------------------------------------------------------------------

    def apply(self, event_type: str, obj: Obj) -> None:
        """One watch event: update the cache, then run the handlers."""
        key = object_key(obj)
        rv = _rv(obj)
        with self._lock:
            if rv:
                self.resource_version = str(rv)
            if event_type == "DELETED":
                self._tombstones.pop(key, None)
                self._remove(key)
            else:
                current = self._items.get(key)
                if current is not None and _rv(current) > rv:
                    obj = current  # a write already noted is newer than this event
                elif self._tombstones.get(key, -1) >= rv:
                    return  # deleted since (a noted delete): its DELETED event is coming
                else:
                    self._tombstones.pop(key, None)
                    self._put(key, obj)
        self._dispatch(event_type, obj)

    def replace(self, items: Objs, resource_version: str) -> None:
        """A fresh list: the cache becomes `items`; the differences are announced."""
        events: list[tuple[str, Obj]] = []
        with self._lock:
            fresh = {object_key(o): o for o in items}
            for key in [k for k in self._items if k not in fresh]:
                old = self._remove(key)
                if old is not None:
                    events.append(("DELETED", old))
            for key, obj in fresh.items():
                current = self._items.get(key)
                if current is None:
                    events.append(("ADDED", obj))
                elif _rv(current) != _rv(obj):
                    events.append(("MODIFIED", obj))
                else:
                    continue
                self._put(key, obj)
            self._tombstones.clear()
            self.resource_version = resource_version
        self.synced.set()
        for event_type, obj in events:
            self._dispatch(event_type, obj)

    def _dispatch(self, event_type: str, obj: Obj) -> None:
        for handler in list(self._handlers):
            try:
                handler(event_type, obj)
            except Exception:
                log.exception("a handler of %s failed on %s %s", self.kind.resource, event_type, object_key(obj))

    def invalidate(self) -> None:
        """Make the next `run` list again (not resume) and count as unsynced until then.
        The cache stays: the list is compared with it, so what changed meanwhile, deletions
        included, is announced."""
        with self._lock:
            self.resource_version = None
            self.synced.clear()

    def relist(self) -> None:
        listed = self.registry.list(self.kind)
        self.relists += 1
        self.replace(listed["items"], str(listed["metadata"]["resourceVersion"]))

    async def run(self) -> None:
        """List (unless resuming), then watch for ever; list again whenever the history
        needed to resume is gone. Cancel the task to stop; the cache stays as it is."""
        while True:
            try:
                if self.resource_version is None:
                    self.relist()
                async for ev in self.registry.watch(self.kind, None, self.resource_version):
                    etype = ev["type"]
                    if etype == "ERROR":
                        code = (ev.get("object") or {}).get("code")
                        log.info("watch of %s ended (%s); listing again", self.kind.resource, code)
                        self.resource_version = None
                        break
                    if etype == "BOOKMARK":
                        continue
                    self.apply(etype, ev["object"])
            except asyncio.CancelledError:
                raise
            except StoreClosed:
                log.info("the store is closed; the informer of %s stops", self.kind.resource)
                return
            except ApiError as e:  # through the API: the master restarting, a request refused
                log.warning("the list or watch of %s failed (%s); listing again", self.kind.resource, e.message)
                self.resource_version = None
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("the informer of %s failed; listing again", self.kind.resource)
                self.resource_version = None
                await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(0)  # the watch ended (store closing, compaction): resume


class Informers:
    """One informer per kind, shared by the controllers of one runner."""

    def __init__(self, registry: ObjectAccess) -> None:
        self.registry = registry
        self._by_kind: dict[str, Informer] = {}

    def get(self, kind: Kind) -> Informer:
        informer = self._by_kind.get(kind.prefix())
        if informer is None:
            informer = self._by_kind[kind.prefix()] = Informer(self.registry, kind)
        return informer

    def __contains__(self, kind: Kind) -> bool:
        return kind.prefix() in self._by_kind

    def all(self) -> list[Informer]:
        return list(self._by_kind.values())
