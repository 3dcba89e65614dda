"""The scheduler's effectful side: find pending pods, ask `schedule`, bind or explain.

Pods without `spec.nodeName` are queued on every change; node changes requeue all
pending pods. A pod that fits nowhere keeps `PodScheduled=False` (reason Unschedulable)
with the per-node explanation, and a FailedScheduling event; it is retried on the next
change or resync.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..api.registry import Registry, set_condition
from ..controllers.events import EventRecorder
from ..controllers.runner import Controller, split_key
from ..errors import ApiError
from ..objects.kinds import by_kind
from .core import schedule

POD = by_kind("v1", "Pod")
NODE = by_kind("v1", "Node")


def is_pending(pod: dict) -> bool:
    return (
        not pod.get("spec", {}).get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and pod.get("spec", {}).get("schedulerName", "default-scheduler") == "default-scheduler"
    )


class Scheduler(Controller):
    name = "scheduler"
    watches = (POD, NODE)
    resync_seconds = 3.0

    def __init__(self, registry: Registry, recorder: EventRecorder) -> None:
        super().__init__(registry)
        self.events = recorder

    def keys_for(self, kind, event_type, obj) -> Iterable[str]:  # type: ignore[override]
        if kind is POD:
            return super().keys_for(kind, event_type, obj) if is_pending(obj) and event_type != "DELETED" else []
        return self.all_keys()

    def all_keys(self) -> Iterable[str]:
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in self.registry.items(POD)
                if is_pending(p)]

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.registry.try_get(POD, ns, name)
        if pod is None or not is_pending(pod):
            return
        nodes = self.registry.items(NODE)
        pods = self.registry.items(POD)
        result = schedule(pod, nodes, pods)
        if result.node:
            try:
                self.registry.bind(ns or "default", name, result.node)
            except ApiError as e:
                if e.code == 404:
                    return
                raise
            self.events.record(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {result.node}")
            return
        if set_condition(pod, "PodScheduled", "False", "Unschedulable", result.reason, self.registry.clock()):
            try:
                self.registry.update(POD, ns, name, pod, "status")
            except ApiError as e:
                if e.code != 404:
                    raise
            self.events.record(pod, "Warning", "FailedScheduling", result.reason)
