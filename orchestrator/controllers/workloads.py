"""The effectful side of the ReplicaSet and Deployment controllers.

The decisions are pure (`plan_replicaset`, `plan_deployment`); these classes only read
the objects a decision needs from the registry, hand them to the planner and carry out
the plan: create/delete pods, create/update/delete ReplicaSets, write status, and
record Events. An automatic rollback (`DeploymentPlan.rollback`) is written as an ordinary
update of the Deployment's spec.template, checked against the resourceVersion that was
read, so a concurrent user edit wins and the pass is simply retried.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from ..api.registry import Registry
from ..errors import ApiError
from ..objects.kinds import by_kind
from .deployment import plan_deployment
from .events import EventRecorder
from .replicaset import plan_replicaset, pod_from_template
from .runner import Controller, split_key

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

    def __init__(self, registry: Registry, recorder: EventRecorder) -> None:
        super().__init__(registry)
        self.events = recorder

    def keys_for(self, kind, event_type, obj) -> Iterable[str]:  # type: ignore[override]
        if kind is RS:
            return super().keys_for(kind, event_type, obj)
        owner = controller_of(obj, "ReplicaSet")
        return [f"{obj['metadata']['namespace']}/{owner}"] if owner else []

    def all_keys(self) -> Iterable[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.registry.items(RS)]

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.registry.try_get(RS, ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = owned(self.registry.items(POD, ns), rs)
        plan = plan_replicaset(rs, pods, self.registry.clock())
        for _ in range(plan.create):
            pod = pod_from_template(rs)
            try:
                created = self.registry.create(POD, ns, pod)
            except ApiError as e:
                self.events.record(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.events.record(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        for pod in plan.delete:
            try:
                self.registry.delete(POD, ns, pod["metadata"]["name"])
            except ApiError as e:
                if e.code != 404:
                    raise
            self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        for pod in plan.release:
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != rs["metadata"]["uid"]]
            self.registry.patch(POD, ns, pod["metadata"]["name"], {"metadata": {"ownerReferences": refs or None}},
                                "application/merge-patch+json")
        if plan.status != rs.get("status"):
            rs["status"] = plan.status
            self.registry.update(RS, ns, name, rs, "status")


class DeploymentController(Controller):
    name = "deployment"
    watches = (DEPLOY, RS, POD)
    resync_seconds = 5.0

    def __init__(self, registry: Registry, recorder: EventRecorder) -> None:
        super().__init__(registry)
        self.events = recorder

    def keys_for(self, kind, event_type, obj) -> Iterable[str]:  # type: ignore[override]
        ns = obj["metadata"].get("namespace")
        if kind is DEPLOY:
            return super().keys_for(kind, event_type, obj)
        if kind is RS:
            owner = controller_of(obj, "Deployment")
            return [f"{ns}/{owner}"] if owner else []
        rs_name = controller_of(obj, "ReplicaSet")
        if not rs_name:
            return []
        rs = self.registry.try_get(RS, ns, rs_name)
        owner = controller_of(rs, "Deployment") if rs else None
        return [f"{ns}/{owner}"] if owner else []

    def all_keys(self) -> Iterable[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.registry.items(DEPLOY)]

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        dep = self.registry.try_get(DEPLOY, ns, name)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        all_rss = self.registry.items(RS, ns)
        rs_uids = {rs["metadata"]["uid"] for rs in owned(all_rss, dep)}
        pods = [
            p for p in self.registry.items(POD, ns)
            if any(r.get("uid") in rs_uids for r in p["metadata"].get("ownerReferences") or [])
        ]
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
                self.registry.create(RS, ns, plan.create_rs)
            except ApiError as e:
                if e.reason != "AlreadyExists":
                    self.events.record(dep, "Warning", "FailedCreate", f"Error creating replica set: {e.message}")
                    raise
        for rs in plan.update_rs:
            self.registry.update(RS, ns, rs["metadata"]["name"], rs)
        for rs in plan.delete_rs:
            try:
                self.registry.delete(RS, ns, rs["metadata"]["name"])
            except ApiError as e:
                if e.code != 404:
                    raise
        for etype, reason, message in plan.events:
            self.events.record(dep, etype, reason, message)
        if plan.status != dep.get("status"):
            dep["status"] = plan.status
            self.registry.update(DEPLOY, ns, name, dep, "status")
