"""The effectful side of the ReplicaSet and Deployment controllers.

The decisions are pure (`plan_replicaset`, `plan_deployment`); these classes only read
the objects a decision needs, hand them to the planner and carry out the plan:
create/delete pods, create/update/delete ReplicaSets, write status, and record Events.

Reads: the object being reconciled comes fresh from the registry (it is changed and
written back); its ReplicaSets and pods come from the runner's informers, through their
indexes (a namespace's ReplicaSets, the pods of one owner uid), never from a list of
every pod of the namespace. Those cached objects are shared and read-only: the planners
copy what they change. Each write's result is noted in the cache (`Lister.note`), so the
next pass sees the controller's own creations and deletions even before the watch
delivers them (no duplicate pods from a pass that ran ahead of its events). Without a
runner (unit tests) the same reads go to the registry. An automatic rollback (`DeploymentPlan.rollback`) is written as an ordinary
update of the Deployment's spec.template, checked against the resourceVersion that was
read, so a concurrent user edit wins and the pass is simply retried.

The ReplicaSet controller creates a pass's pods in slow-start batches (1, 2, 4, …, at most
`max_burst` pods) and stops at the first failed creation: the rest is skipped for this
pass, a FailedCreate event is recorded (FailedDelete for deletions) and the ReplicaSet gets
the ReplicaFailure condition. The pass then ends normally rather than failing: the next
one comes with the resync (`resync_seconds`) or the next change to the set's pods, and
sees every pod created so far. (Failing the pass would add a runtime retry on top of
those triggers for every failed pass; a set refused for minutes would then be retried
many times a second.) A set scaled far beyond what the cluster admits (the pending pods
limit, `registry/podadmission.py`) therefore costs one refused creation per pass, not a burst
of them. The condition is removed by the next pass without errors.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..reconcile.events import EventRecorder
from ..reconcile.informer import BY_NAMESPACE, BY_OWNER, note_delete
from ..reconcile.runner import Controller, split_key
from .deployment import plan_deployment
from .replicaset import (
    DEFAULT_MAX_BURST,
    plan_replicaset,
    pod_from_template,
    slow_start_batches,
    with_replica_failure,
)

log = logging.getLogger("dockyard.controllers")

POD = by_kind("v1", "Pod")
RS = by_kind("apps/v1", "ReplicaSet")
DEPLOY = by_kind("apps/v1", "Deployment")


def controller_of(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return ref.get("name")
    return None


def owned(objs: list[dict[str, Any]], owner: dict[str, Any]) -> list[dict[str, Any]]:
    uid = owner["metadata"]["uid"]
    return [
        o for o in objs
        if any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences") or [])
    ]


class ReplicaSetController(Controller):
    name = "replicaset"
    watches = (RS, POD)
    resync_seconds = 10.0

    def __init__(self, registry: ObjectAccess, recorder: EventRecorder, max_burst: int = DEFAULT_MAX_BURST) -> None:
        super().__init__(registry)
        self.events = recorder
        self.max_burst = max_burst

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        if kind is RS:
            return super().keys_for(kind, event_type, obj)
        owner = controller_of(obj, "ReplicaSet")
        return [f"{obj['metadata']['namespace']}/{owner}"] if owner else []

    def all_keys(self) -> Iterable[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.lister(RS).list()]

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.registry.try_get(RS, ns, name)  # fresh, and ours to change
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = owned(self.lister(POD).by_index(BY_OWNER, rs["metadata"]["uid"]), rs)
        now = self.registry.clock()
        plan = plan_replicaset(rs, pods, now, self.max_burst)
        failure: tuple[str, ApiError] | None = None
        if plan.create:
            error = self._create_pods(key, rs, plan.create)
            if error is not None:
                failure = ("FailedCreate", error)
        error = self._delete_pods(rs, plan.delete)
        if error is not None and failure is None:
            failure = ("FailedDelete", error)
        for pod in plan.release:
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]]
            released = self.registry.patch(POD, ns, pod["metadata"]["name"],
                                           {"metadata": {"ownerReferences": refs or None}},
                                           "application/merge-patch+json")
            self.lister(POD).note(released)
        status = with_replica_failure(plan.status, (failure[0], failure[1].message) if failure else None, now)
        if status != rs.get("status"):
            rs["status"] = status
            self.registry.update(RS, ns, name, rs, "status")

    def _create_pods(self, key: str, rs: dict[str, Any], count: int) -> ApiError | None:
        """Create up to `count` pods in slow-start batches; the error that stopped them, if any."""
        ns = rs["metadata"]["namespace"]
        batches: list[int] = []  # pods created per batch (the last one short when it failed)
        pods = self.lister(POD)
        error: ApiError | None = None
        for size in slow_start_batches(count, self.max_burst):
            made = 0
            for _ in range(size):
                try:
                    created = self.registry.create(POD, ns, pod_from_template(rs))
                except ApiError as e:
                    error = e
                    break
                pods.note(created)  # the next pass counts it, even before the watch brings it
                made += 1
                self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
            batches.append(made)
            if error is not None:
                break
        done = sum(batches)
        fields = {"replicaset": key, "batches": batches, "pods_created": done, "pods_skipped": count - done}
        if error is None:
            log.info("created %d pods in slow-start batches %s", done, batches, extra=fields)
            return None
        self.events.record(rs, "Warning", "FailedCreate", f"Error creating: {error.message}")
        log.warning("created %d of %d pods in slow-start batches %s, skipped %d: %s", done, count, batches,
                    count - done, error.message, extra={**fields, "error": error.message})
        return error

    def _delete_pods(self, rs: dict[str, Any], pods: list[dict[str, Any]]) -> ApiError | None:
        """Delete the plan's pods (at most `max_burst`); the error that stopped them, if any."""
        ns = rs["metadata"]["namespace"]
        lister = self.lister(POD)
        for pod in pods:
            try:
                note_delete(lister, self.registry.delete(POD, ns, pod["metadata"]["name"]))
            except ApiError as e:
                if e.code != 404:
                    self.events.record(rs, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                    log.warning("deleting pods stopped at %s: %s", pod["metadata"]["name"], e.message,
                                extra={"replicaset": f"{ns}/{rs['metadata']['name']}", "error": e.message})
                    return e
            self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        return None


class DeploymentController(Controller):
    name = "deployment"
    watches = (DEPLOY, RS, POD)
    resync_seconds = 5.0

    def __init__(self, registry: ObjectAccess, recorder: EventRecorder) -> None:
        super().__init__(registry)
        self.events = recorder

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        ns = obj["metadata"].get("namespace")
        if kind is DEPLOY:
            return super().keys_for(kind, event_type, obj)
        if kind is RS:
            owner = controller_of(obj, "Deployment")
            return [f"{ns}/{owner}"] if owner else []
        rs_name = controller_of(obj, "ReplicaSet")
        if not rs_name:
            return []
        rs = self.lister(RS).get(ns, rs_name)
        owner = controller_of(rs, "Deployment") if rs else None
        return [f"{ns}/{owner}"] if owner else []

    def all_keys(self) -> Iterable[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.lister(DEPLOY).list()]

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        dep = self.registry.try_get(DEPLOY, ns, name)  # fresh, and ours to change
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        # read-only, shared with the other controllers: plan_deployment copies what it changes
        rs_lister = self.lister(RS)
        all_rss = rs_lister.by_index(BY_NAMESPACE, ns or "")
        pod_lister = self.lister(POD)
        pods: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rs in owned(all_rss, dep):
            for pod in pod_lister.by_index(BY_OWNER, rs["metadata"]["uid"]):
                if pod["metadata"]["uid"] not in seen:  # a pod may name several owners
                    seen.add(pod["metadata"]["uid"])
                    pods.append(pod)
        pods.sort(key=lambda p: p["metadata"]["name"])  # the store's order, as a list reads
        plan = plan_deployment(dep, all_rss, pods, self.registry.clock())
        if plan.rollback is not None:
            # A normal update of the Deployment (generation bumps), guarded by its
            # resourceVersion: if someone changed it meanwhile, the pass is retried.
            dep = copy.deepcopy(dep)
            dep["spec"]["template"] = plan.rollback.template
            annotations = dep["metadata"].setdefault("annotations", {})
            for key, value in (plan.deployment_annotations or {}).items():
                if value is None:
                    annotations.pop(key, None)
                else:
                    annotations[key] = value
            dep = self.registry.update(DEPLOY, ns, name, dep)
        elif plan.deployment_annotations:
            dep = self.registry.patch(DEPLOY, ns, name, {"metadata": {"annotations": plan.deployment_annotations}},
                                      "application/merge-patch+json")
        if plan.create_rs is not None:
            try:
                rs_lister.note(self.registry.create(RS, ns, plan.create_rs))
            except ApiError as e:
                if e.reason != "AlreadyExists":
                    self.events.record(dep, "Warning", "FailedCreate", f"Error creating replica set: {e.message}")
                    raise
        for rs in plan.update_rs:
            rs_lister.note(self.registry.update(RS, ns, rs["metadata"]["name"], rs))
        for rs in plan.delete_rs:
            try:
                note_delete(rs_lister, self.registry.delete(RS, ns, rs["metadata"]["name"]))
            except ApiError as e:
                if e.code != 404:
                    raise
        for etype, reason, message in plan.events:
            self.events.record(dep, etype, reason, message)
        if plan.status != dep.get("status"):
            dep["status"] = plan.status
            self.registry.update(DEPLOY, ns, name, dep, "status")
