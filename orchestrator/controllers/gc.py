"""Garbage collection of dependents and namespace teardown.

An object's dependents are the objects whose `ownerReferences` name its uid. The garbage
collector deletes a dependent once none of its owners still stands:

* Background propagation (the default): the owner is gone, so are the dependents soon after.
* Foreground propagation: the owner is still there, marked for deletion with the
  `foregroundDeletion` finalizer ("waiting for its dependents"). Its dependents are deleted,
  themselves in the foreground when they have dependents of their own (a Deployment's
  ReplicaSets wait for their Pods), and once no dependent that blocks it
  (`blockOwnerDeletion: true`) is left, not even one still terminating, the finalizer is
  removed and the owner goes. Dependents that do not block it are deleted all the same,
  without being waited for.
* Orphan propagation never reaches here: the registry removes the references to the owner.

A dependent kept by another owner that still stands loses its references to owners
waiting for their dependents (else they would wait for it forever).

A dependent stands by an owner that exists and is not waiting for its dependents. It is
collected when it has no such owner; what the informers' caches say is checked against
the live objects first (one cache may lag another: a new owner not yet seen, its
dependent already), and so is a finalizer about to be removed (a blocking dependent just
created). The collector runs on every delete of an owner kind, on every change of an
object waiting for its dependents, and on a periodic full scan.

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
from ..registry.generic import FOREGROUND_FINALIZER

log = logging.getLogger("dockyard.gc")

NAMESPACE = by_kind("v1", "Namespace")
OWNER_KINDS = tuple(k for k in KINDS if k.kind in ("Deployment", "ReplicaSet", "Pod", "Node", "Service"))
# what may have owners: every kind but Events (they never carry ownerReferences here, expire
# after an hour, and are the most written kind: not worth a cache of their own)
DEPENDENT_KINDS = tuple(k for k in KINDS if k.kind != "Event")
SCAN = "scan"
MERGE_PATCH = "application/merge-patch+json"


def waiting_for_dependents(obj: dict[str, Any]) -> bool:
    """Marked for deletion in the foreground: it goes once its dependents are gone."""
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and FOREGROUND_FINALIZER in (meta.get("finalizers") or [])


def blocks(ref: dict[str, Any], owner_uid: str) -> bool:
    return ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion") is True


class GarbageCollector(Controller):
    """Reads every kind from the runner's informers (it watches them all)."""

    name = "garbage-collector"
    watches = DEPENDENT_KINDS
    resync_seconds = 15.0

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        if event_type == "DELETED" and kind in OWNER_KINDS:
            return [SCAN]
        if waiting_for_dependents(obj):
            return [SCAN]
        if event_type == "DELETED" and (obj.get("metadata") or {}).get("ownerReferences"):
            return [SCAN]  # perhaps the last dependent an owner waits for
        return []

    def all_keys(self) -> Iterable[str]:
        return [SCAN]

    def sync(self, key: str) -> None:
        objects: list[tuple[Kind, dict[str, Any]]] = []
        by_uid: dict[str, dict[str, Any]] = {}
        for kind in DEPENDENT_KINDS:
            for obj in self.lister(kind).list():
                objects.append((kind, obj))
                by_uid[obj["metadata"]["uid"]] = obj
        owners_of_dependents = {r.get("uid") for _, o in objects for r in o["metadata"].get("ownerReferences") or []}
        for kind, obj in objects:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs or meta.get("deletionTimestamp"):
                continue
            owners = [by_uid.get(str(r.get("uid"))) for r in refs]
            if any(o is not None and not waiting_for_dependents(o) for o in owners):
                # an owner stands: it stays, and no longer blocks the owners waiting for it
                waiting = {str(r.get("uid")) for r, o in zip(refs, owners, strict=True)
                           if o is not None and waiting_for_dependents(o)}
                if waiting:
                    self._drop_references(kind, obj, waiting)
                continue
            if self._an_owner_stands(kind, meta, refs):
                continue
            waited = any(o is not None for o in owners)
            # deleted in the foreground when an owner waits and it has dependents of its own
            policy = "Foreground" if waited and meta["uid"] in owners_of_dependents else "Background"
            log.info("deleting %s %s/%s (%s): its owners are %s", kind.kind, meta.get("namespace"), meta["name"],
                     policy, "being deleted in the foreground" if waited else "gone")
            try:
                self.registry.delete(kind, meta.get("namespace"), meta["name"], propagation=policy,
                                     precondition_uid=meta["uid"])
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
        for kind, obj in objects:
            if waiting_for_dependents(obj):
                self._finish_foreground(kind, obj, objects)

    def _an_owner_stands(self, kind: Kind, meta: dict[str, Any], refs: list[dict[str, Any]]) -> bool:
        """Whether one of the owners exists (with the uid referenced) and is not waiting for
        its dependents, read live."""
        for ref in refs:
            try:
                owner_kind = by_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
            except UnknownKind:
                continue
            ns = meta.get("namespace") if owner_kind.namespaced else None
            owner = self.registry.try_get(owner_kind, ns, str(ref.get("name") or ""))
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid") \
                    and not waiting_for_dependents(owner):
                return True
        return False

    def _drop_references(self, kind: Kind, obj: dict[str, Any], uids: set[str]) -> None:
        """Remove the references to owners waiting for their dependents from a dependent
        that another owner keeps (as Kubernetes' collector does: they would wait forever)."""
        meta = obj["metadata"]
        kept = [r for r in meta.get("ownerReferences") or [] if str(r.get("uid")) not in uids]
        log.info("%s %s/%s stays for another owner: dropping its references to owners being deleted",
                 kind.kind, meta.get("namespace"), meta["name"])
        try:
            self.registry.patch(kind, meta.get("namespace"), meta["name"], {"metadata": {
                "ownerReferences": kept, "resourceVersion": meta.get("resourceVersion")}}, MERGE_PATCH)
        except ApiError as e:
            if e.code != 404:
                raise  # a conflict (it changed meanwhile) is retried with the scan

    def _finish_foreground(self, kind: Kind, owner: dict[str, Any], objects: list[tuple[Kind, dict[str, Any]]]) -> None:
        """Remove the `foregroundDeletion` finalizer of an owner no dependent blocks any more
        (checked in the caches, then live), so that it goes."""
        meta = owner["metadata"]
        uid = meta["uid"]
        ns = meta.get("namespace")
        if any(blocks(r, uid) for _, o in objects for r in o["metadata"].get("ownerReferences") or []):
            return
        for dep_kind in DEPENDENT_KINDS:
            if kind.namespaced and dep_kind.namespaced:
                live = self.registry.items(dep_kind, ns)
            elif not kind.namespaced:
                live = self.registry.items(dep_kind)
            else:
                continue  # a namespaced owner has no cluster-scoped dependents
            if any(blocks(r, uid) for o in live for r in o["metadata"].get("ownerReferences") or []):
                return
        current = self.registry.try_get(kind, ns, meta["name"])
        if current is None or current["metadata"].get("uid") != uid or not waiting_for_dependents(current):
            return
        cmeta = current["metadata"]
        finalizers = [f for f in cmeta.get("finalizers") or [] if f != FOREGROUND_FINALIZER]
        log.info("%s %s/%s: no dependents left, removing the %s finalizer", kind.kind, ns, meta["name"],
                 FOREGROUND_FINALIZER)
        try:
            self.registry.patch(kind, ns, meta["name"], {"metadata": {
                "finalizers": finalizers or None, "resourceVersion": cmeta.get("resourceVersion")}}, MERGE_PATCH)
        except ApiError as e:
            if e.code != 404:
                raise  # a conflict (it changed meanwhile) is retried with the scan


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
