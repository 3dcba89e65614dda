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
from ..objects.kinds import KINDS, Kind, UnknownKind, by_kind
from ..reconcile.runner import Controller

log = logging.getLogger("dockyard.gc")

NAMESPACE = by_kind("v1", "Namespace")
OWNER_KINDS = tuple(k for k in KINDS if k.kind in ("Deployment", "ReplicaSet", "Pod", "Node"))
# what may have owners: every kind but Events (they never carry ownerReferences here, expire
# after an hour, and are the most written kind: not worth a cache of their own)
DEPENDENT_KINDS = tuple(k for k in KINDS if k.kind != "Event")
SCAN = "scan"


class GarbageCollector(Controller):
    """Reads every kind from the runner's informers (it watches them all); an object whose
    owners all look gone in those caches is checked against the live objects before it is
    deleted, since one cache may lag another (a new owner not yet seen, its dependent already)."""

    name = "garbage-collector"
    watches = DEPENDENT_KINDS
    resync_seconds = 15.0

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        return [SCAN] if event_type == "DELETED" and kind in OWNER_KINDS else []

    def all_keys(self) -> Iterable[str]:
        return [SCAN]

    def sync(self, key: str) -> None:
        objects: list[tuple[Any, dict[str, Any]]] = []
        uids: set[str] = set()
        for kind in DEPENDENT_KINDS:
            for obj in self.lister(kind).list():
                objects.append((kind, obj))
                uids.add(obj["metadata"]["uid"])
        for kind, obj in objects:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs or meta.get("deletionTimestamp"):
                continue
            if all(r.get("uid") not in uids for r in refs) and not self._an_owner_lives(kind, meta, refs):
                log.info("deleting %s %s/%s: its owners are gone", kind.kind, meta.get("namespace"), meta["name"])
                try:
                    self.registry.delete(kind, meta.get("namespace"), meta["name"], precondition_uid=meta["uid"])
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise

    def _an_owner_lives(self, kind: Kind, meta: dict[str, Any], refs: list[dict[str, Any]]) -> bool:
        for ref in refs:
            try:
                owner_kind = by_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
            except UnknownKind:
                continue
            ns = meta.get("namespace") if owner_kind.namespaced else None
            owner = self.registry.try_get(owner_kind, ns, str(ref.get("name") or ""))
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                return True
        return False


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
        try:
            self.registry.finalize_namespace(key)
        except ApiError as e:
            if e.code != 404:
                raise
