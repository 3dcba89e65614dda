"""Garbage collection of dependents and namespace teardown.

Background propagation: when an owner is deleted its dependents (objects whose
`ownerReferences` all point to objects that no longer exist) are deleted by this
controller, which runs on every delete of an owner kind and on a periodic full scan.
Namespace deletion marks the Namespace `Terminating`; the namespace controller deletes
everything in it and removes the Namespace once it is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ApiError
from ..objects.kinds import KINDS, Kind, by_kind
from ..reconcile.runner import Controller

log = logging.getLogger("dockyard.gc")

NAMESPACE = by_kind("v1", "Namespace")
OWNER_KINDS = tuple(k for k in KINDS if k.kind in ("Deployment", "ReplicaSet", "Pod", "Node"))
SCAN = "scan"


class GarbageCollector(Controller):
    name = "garbage-collector"
    watches = OWNER_KINDS
    resync_seconds = 15.0

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        return [SCAN] if event_type == "DELETED" else []

    def all_keys(self) -> Iterable[str]:
        return [SCAN]

    def sync(self, key: str) -> None:
        objects: list[tuple[Any, dict[str, Any]]] = []
        uids: set[str] = set()
        for kind in KINDS:
            for obj in self.registry.items(kind):
                objects.append((kind, obj))
                uids.add(obj["metadata"]["uid"])
        for kind, obj in objects:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs or meta.get("deletionTimestamp"):
                continue
            if all(r.get("uid") not in uids for r in refs):
                log.info("deleting %s %s/%s: its owners are gone", kind.kind, meta.get("namespace"), meta["name"])
                try:
                    self.registry.delete(kind, meta.get("namespace"), meta["name"], precondition_uid=meta["uid"])
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise


class NamespaceController(Controller):
    name = "namespace"
    watches = (NAMESPACE,)
    resync_seconds = 5.0

    def all_keys(self) -> Iterable[str]:
        return [ns["metadata"]["name"] for ns in self.registry.items(NAMESPACE)
                if ns["metadata"].get("deletionTimestamp")]

    def sync(self, key: str) -> None:
        ns = self.registry.try_get(NAMESPACE, None, key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for kind in KINDS:
            if not kind.namespaced:
                continue
            for obj in self.registry.items(kind, key):
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.registry.delete(kind, key, obj["metadata"]["name"])
                except ApiError as e:
                    if e.code != 404:
                        raise
        if remaining:
            raise ApiError(409, "Conflict", f"namespace {key} still has {remaining} objects")  # retried
        kv = self.registry.store.get(NAMESPACE.key(None, key))
        if kv is not None:
            self.registry.store.delete(kv.key, expected_mod_revision=kv.mod_revision)
