"""Node lifecycle: pod CIDR allocation and heartbeat timeouts.

* Every new Node gets `spec.podCIDR` (and `podCIDRs`), the lowest free /24 of the cluster
  pod network (default 10.42.0.0/16), assigned as the Node is created so that two nodes
  can never get the same range.
* A Node whose agent has not renewed its Ready heartbeat for `grace` seconds gets
  Ready=Unknown (reason NodeStatusUnknown), so the scheduler stops placing pods on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from ..api.registry import Registry, parse_time, rfc3339
from ..objects.kinds import by_kind
from .events import EventRecorder
from .runner import Controller

NODE = by_kind("v1", "Node")


def allocate_pod_cidr(cluster_cidr: str, used: set[str], prefix: int = 24) -> str:
    net = ipaddress.ip_network(cluster_cidr)
    for sub in net.subnets(new_prefix=prefix):
        if str(sub) not in used:
            return str(sub)
    raise ValueError(f"the pod network {cluster_cidr} has no free /{prefix} left")


def pod_cidr_hook(registry: Registry, cluster_cidr: str) -> Callable[[dict[str, Any]], None]:
    def hook(node: dict[str, Any]) -> None:
        spec = node.setdefault("spec", {})
        if spec.get("podCIDR"):
            return
        used = {n.get("spec", {}).get("podCIDR") for n in registry.items(NODE)}
        cidr = allocate_pod_cidr(cluster_cidr, {u for u in used if u})
        spec["podCIDR"] = cidr
        spec["podCIDRs"] = [cidr]

    return hook


class NodeLifecycleController(Controller):
    name = "node-lifecycle"
    watches = (NODE,)
    resync_seconds = 2.0

    def __init__(self, registry: Registry, recorder: EventRecorder, grace_seconds: float = 40.0) -> None:
        super().__init__(registry)
        self.events = recorder
        self.grace = timedelta(seconds=grace_seconds)

    def all_keys(self) -> Iterable[str]:
        return [n["metadata"]["name"] for n in self.registry.items(NODE)]

    def sync(self, key: str) -> None:
        node = self.registry.try_get(NODE, None, key)
        if node is None:
            return
        now = self.registry.clock()
        for cond in node.get("status", {}).get("conditions") or []:
            if cond.get("type") != "Ready" or cond.get("status") == "Unknown":
                continue
            beat = cond.get("lastHeartbeatTime")
            if beat and now - parse_time(beat) > self.grace:
                cond["status"] = "Unknown"
                cond["reason"] = "NodeStatusUnknown"
                cond["message"] = "Dockyard agent stopped posting node status."
                cond["lastTransitionTime"] = rfc3339(now)
                self.registry.update(NODE, None, key, node, "status")
                self.events.record(node, "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")
            return
