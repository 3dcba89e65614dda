"""Node lifecycle: pod CIDR allocation, liveness from Leases, pods out of Services at
detection, NoExecute taints and eviction.

* Every new Node gets `spec.podCIDR` (and `podCIDRs`), the lowest free /24 of the cluster
  pod network (default 10.42.0.0/16), assigned as the Node is created so that two nodes
  can never get the same range.
* Liveness: every agent renews its Lease `kube-node-lease/<node>` every few seconds (a
  small write) and posts its full Node status much less often. A Node whose agent has
  renewed neither the Lease nor its Ready heartbeat for `grace` seconds (default 8 s) gets
  Ready=Unknown (reason NodeStatusUnknown), so the scheduler stops placing pods on it,
  and the taint `node.kubernetes.io/unreachable:NoExecute`. "Renewed" is judged on the
  master's clock, as Kubernetes' probe timestamps are: the controller notes when it *saw*
  the Lease's `renewTime` or the heartbeat's `lastHeartbeatTime` change
  (`observe_heartbeat`) and never compares the agent's own timestamps with its clock, so
  an agent whose clock is off is not declared dead. After a master restart every node gets
  a full grace from the first observation. A Node whose agent reports Ready=False (its
  container runtime is down) gets `node.kubernetes.io/not-ready:NoExecute`. When the
  agent reports Ready=True again both taints are removed.
* Pods out of Services at detection: as Kubernetes' node lifecycle controller does
  (`MarkPodsNotReady`), the pods of a node that is not Ready get their Ready condition set
  to False at once (an Event `NodeNotReady`, "Node is not ready", on each), so the
  Endpoints controller drops them at detection rather than at eviction. A node whose
  agent is back (fresh Lease) but has not posted Ready yet is left alone, so the agent's
  own pod status is not fought over.
* Pods bound to a node with a NoExecute taint are evicted once their toleration runs out:
  a pod that does not tolerate the taint at all gets the cluster-wide default toleration
  (`eviction_timeout`, default 5 s) for the not-ready/unreachable taints (what Kubernetes'
  DefaultTolerationSeconds admission adds, with 300 s there) and is evicted at once for any
  other NoExecute taint; a toleration with `tolerationSeconds` is honoured from the taint's
  `timeAdded`; a toleration without it keeps the pod forever. Eviction deletes the pod with
  grace 0: the agent is unreachable, so nobody would finish a graceful delete. The
  ReplicaSet then creates a replacement, and the scheduler places it on a Ready node. When
  the node returns, its agent removes the containers of pods it no longer knows (orphans).
* A deleted Node's password record (`orchestrator.registry.nodepasswords`) is deleted with it.

The decisions are pure functions of the Node, its Lease, its pods and an injected clock
(`observe_heartbeat`, `compute_node_health`, `compute_pods_not_ready`, `compute_taints`,
`compute_evictions`), so they are unit-tested table-driven; `NodeLifecycleController.sync`
only reads, calls them and writes.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import errors
from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..objects.timefmt import parse_rfc3339, rfc3339
from ..reconcile.events import EventRecorder
from ..reconcile.informer import Informers
from ..reconcile.runner import Controller
from ..registry import nodepasswords
from ..scheduler.core import toleration_tolerates
from .reservations import Reservations

log = logging.getLogger("dockyard.controllers.nodes")

NODE = by_kind("v1", "Node")
POD = by_kind("v1", "Pod")
LEASE = by_kind("coordination.k8s.io/v1", "Lease")
LEASE_NAMESPACE = "kube-node-lease"

TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
HEALTH_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)
DEFAULT_NODE_GRACE = 8.0
DEFAULT_EVICTION_TIMEOUT = 5.0


def allocate_pod_cidr(cluster_cidr: str, used: set[str], prefix: int = 24) -> str:
    net = ipaddress.ip_network(cluster_cidr)
    for sub in net.subnets(new_prefix=prefix):
        if str(sub) not in used:
            return str(sub)
    raise ValueError(f"the pod network {cluster_cidr} has no free /{prefix} left")


def pod_cidr_conflict(cidr: str, others: dict[str, str]) -> str | None:
    """The name of the node (in `others`: name -> podCIDR) whose range overlaps `cidr`."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None  # validation reports the malformed value
    for name, other in others.items():
        try:
            if net.overlaps(ipaddress.ip_network(other, strict=False)):
                return name
        except (ValueError, TypeError):
            continue
    return None


def pod_cidr_hook(registry: ObjectAccess, cluster_cidr: str) -> Callable[[dict[str, Any]], None]:
    """On Node creation: allocate `spec.podCIDR`, or check that a supplied one overlaps no
    other node's range (a node claiming another's range would receive its pods' traffic).

    Thread-safe: allocations are serialized, and a range handed to a Node not yet stored
    counts as used (`Reservations`)."""
    reservations = Reservations()

    def hook(node: dict[str, Any]) -> None:
        with reservations.lock:
            allocate(node)

    def allocate(node: dict[str, Any]) -> None:
        spec = node.setdefault("spec", {})
        name = (node.get("metadata") or {}).get("name", "")
        nodes = registry.items(NODE)
        used = {n["metadata"]["name"]: n.get("spec", {}).get("podCIDR") for n in nodes
                if n.get("spec", {}).get("podCIDR") and n["metadata"]["name"] != name}
        for other, cidrs in reservations.in_flight({n["metadata"]["name"] for n in nodes}).items():
            if other != name and cidrs:
                used.setdefault(other, cidrs[0])
        if spec.get("podCIDR"):
            owner = pod_cidr_conflict(str(spec["podCIDR"]), used)
            if owner is not None:
                raise errors.invalid("Node", name, [{
                    "field": "spec.podCIDR", "reason": "FieldValueInvalid",
                    "message": f"{spec['podCIDR']} overlaps node {owner}'s pod range {used[owner]}; "
                               "leave it empty to have one allocated"}])
            reservations.hold(name, [str(spec["podCIDR"])])
            return
        try:
            cidr = allocate_pod_cidr(cluster_cidr, set(used.values()))
        except ValueError as e:
            raise errors.invalid("Node", name, [{"field": "spec.podCIDR", "reason": "FieldValueInvalid",
                                                  "message": f"{e}; remove unused nodes or widen --cluster-cidr"}]) from None
        spec["podCIDR"] = cidr
        spec["podCIDRs"] = [cidr]
        reservations.hold(name, [cidr])

    return hook


# -- pure decisions -----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeHealth:
    """What the controller concludes about one Node at one instant."""

    ready: str  # "True" | "False" | "Unknown" after this decision
    mark_unknown: bool  # the Ready condition must be rewritten to Unknown now
    taint: str | None  # the health taint key the node should carry, or None
    pods_not_ready: bool = False  # the node's pods must not be Ready (out of their Services)


def _ready_condition(node: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond
    return None


def lease_renew_time(lease: dict[str, Any] | None) -> str | None:
    return ((lease or {}).get("spec") or {}).get("renewTime")


@dataclass(frozen=True)
class Heartbeat:
    """The last heartbeat values seen for a Node (its Ready `lastHeartbeatTime` and its
    Lease's `renewTime`) and when (master clock) either was last seen changing."""

    value: str | None
    seen_at: datetime
    renew: str | None = None


def observe_heartbeat(prev: Heartbeat | None, node: dict[str, Any], now: datetime,
                      lease: dict[str, Any] | None = None) -> Heartbeat:
    """A changed (or first seen) `lastHeartbeatTime` or Lease `renewTime` counts as a
    heartbeat received `now`."""
    cond = _ready_condition(node)
    value = cond.get("lastHeartbeatTime") if cond is not None else None
    renew = lease_renew_time(lease)
    if prev is not None and prev.value == value and prev.renew == renew:
        return prev
    return Heartbeat(value, now, renew)


def _latest(*stamps: str | None) -> datetime | None:
    times = []
    for s in stamps:
        if s:
            try:
                times.append(parse_rfc3339(s))
            except ValueError:
                continue
    return max(times) if times else None


def compute_node_health(node: dict[str, Any], now: datetime, grace: timedelta,
                        heartbeat: Heartbeat | None = None, lease: dict[str, Any] | None = None) -> NodeHealth:
    """Health of `node` at `now`; `heartbeat` says when its last heartbeat (status or Lease)
    arrived (absent: the newest of the agent's own timestamps is trusted)."""
    cond = _ready_condition(node)
    if cond is None:
        # Registered but never reported: not schedulable, but nothing to evict from yet.
        return NodeHealth("Unknown", False, None)
    status = cond.get("status") or "Unknown"
    beat = cond.get("lastHeartbeatTime")
    if heartbeat is not None:
        arrived: datetime | None = heartbeat.seen_at
    else:
        arrived = _latest(beat, lease_renew_time(lease))
    stale = arrived is not None and now - arrived > grace
    if status == "Unknown":
        # marked earlier; a fresh Lease means the agent is back and about to post Ready
        return NodeHealth("Unknown", False, TAINT_UNREACHABLE, pods_not_ready=stale or arrived is None)
    if stale:
        return NodeHealth("Unknown", True, TAINT_UNREACHABLE, pods_not_ready=True)
    if status == "False":
        return NodeHealth("False", False, TAINT_NOT_READY, pods_not_ready=True)
    return NodeHealth("True", False, None)


def pod_is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def compute_pods_not_ready(pods: Iterable[dict[str, Any]], health: NodeHealth, node_name: str) -> list[dict[str, Any]]:
    """The pods of `node_name` whose Ready condition must be set to False now (a copy each,
    ready to write through /status), as Kubernetes' MarkPodsNotReady does."""
    if not health.pods_not_ready:
        return []
    out = []
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name or not pod_is_ready(pod):
            continue
        new = copy.deepcopy(pod)
        for cond in new["status"]["conditions"]:
            if cond.get("type") == "Ready":
                cond["status"] = "False"
        out.append(new)
    return out


def compute_taints(taints: list[dict[str, Any]], want: str | None, now: datetime) -> list[dict[str, Any]] | None:
    """The node's new taint list for the wanted health taint, or None when nothing changes.

    Other taints are kept as they are; an existing wanted taint keeps its `timeAdded`.
    """
    kept = [t for t in taints if t.get("key") not in HEALTH_TAINTS or t.get("effect") != "NoExecute"]
    present = [t for t in taints if t.get("key") == want and t.get("effect") == "NoExecute"]
    others_health = [t for t in taints if t.get("key") in HEALTH_TAINTS and t.get("key") != want
                     and t.get("effect") == "NoExecute"]
    if want is None and not others_health:
        return None
    if want is not None and present and not others_health:
        return None
    new = list(kept)
    if want is not None:
        new.append(present[0] if present else {"key": want, "effect": "NoExecute", "timeAdded": rfc3339(now)})
    return new


@dataclass
class EvictionPlan:
    evict: list[dict[str, Any]] = field(default_factory=list)  # pods to delete now
    next_check: datetime | None = None  # earliest future instant another pod becomes due


def eviction_deadline(
    pod: dict[str, Any], taint: dict[str, Any], default_seconds: float, fallback_added: datetime
) -> datetime | None:
    """When `taint` evicts `pod` (None: never)."""
    added = parse_rfc3339(taint["timeAdded"]) if taint.get("timeAdded") else fallback_added
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or []
                   if toleration_tolerates(t, taint)]
    if not tolerations:
        if taint.get("key") in HEALTH_TAINTS:
            return added + timedelta(seconds=default_seconds)
        return added
    limits = [t.get("tolerationSeconds") for t in tolerations]
    if any(s is None for s in limits):
        return None
    return added + timedelta(seconds=max(0, min(int(s) for s in limits if s is not None)))


def compute_evictions(
    pods: Iterable[dict[str, Any]],
    taints: list[dict[str, Any]],
    now: datetime,
    default_seconds: float = DEFAULT_EVICTION_TIMEOUT,
) -> EvictionPlan:
    """Which pods on a node with these taints are due for eviction at `now`."""
    plan = EvictionPlan()
    no_execute = [t for t in taints if t.get("effect") == "NoExecute"]
    if not no_execute:
        return plan
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp") and (pod.get("metadata") or {}).get(
            "deletionGracePeriodSeconds"
        ) == 0:
            continue
        deadlines = [eviction_deadline(pod, t, default_seconds, now) for t in no_execute]
        due = [d for d in deadlines if d is not None]
        if not due:
            continue
        first = min(due)
        if first <= now:
            plan.evict.append(pod)
        elif plan.next_check is None or first < plan.next_check:
            plan.next_check = first
    return plan


# -- the controller -------------------------------------------------------------------------


BY_NODE = "node"  # the pod informer's index by spec.nodeName


def node_name_index(pod: dict[str, Any]) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


class NodeLifecycleController(Controller):
    """Reads Nodes, Leases and Pods from the runner's informers (a check of every node each
    second costs no store read); only Node changes and the resync enqueue work."""

    name = "node-lifecycle"
    watches = (NODE, LEASE, POD)
    resync_seconds = 1.0

    def __init__(
        self,
        registry: ObjectAccess,
        recorder: EventRecorder,
        grace_seconds: float = DEFAULT_NODE_GRACE,
        eviction_timeout: float = DEFAULT_EVICTION_TIMEOUT,
    ) -> None:
        super().__init__(registry)
        self.events = recorder
        self.grace = timedelta(seconds=grace_seconds)
        self.eviction_timeout = eviction_timeout
        self._heartbeats: dict[str, Heartbeat] = {}  # node name -> last heartbeat seen (master clock)
        self._next_sweep: datetime | None = None  # of orphaned node password records

    def use_informers(self, informers: Informers) -> None:
        super().use_informers(informers)
        informers.get(POD).add_index(BY_NODE, node_name_index)

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        if kind is not NODE:
            return []  # read from the caches at the next check; only Node changes enqueue
        return super().keys_for(kind, event_type, obj)

    def _pods_of(self, node: str) -> list[dict[str, Any]]:
        if self.informers is not None:
            return self.lister(POD).by_index(BY_NODE, node)
        return [p for p in self.registry.items(POD) if (p.get("spec") or {}).get("nodeName") == node]

    def all_keys(self) -> Iterable[str]:
        names = [n["metadata"]["name"] for n in self.lister(NODE).list()]
        for gone in set(self._heartbeats) - set(names):
            self._heartbeats.pop(gone, None)
        now = self.registry.clock()
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + timedelta(seconds=60)
            records = self.registry.items(nodepasswords.SECRET, nodepasswords.NAMESPACE)
            for node in nodepasswords.orphaned(records, set(names), now):
                if nodepasswords.forget(self.registry, node):
                    log.info("node password record of %s removed: no such Node for %s", node,
                             nodepasswords.ORPHAN_AFTER)
        return names

    def sync(self, key: str) -> None:
        node = self.lister(NODE).get(None, key)
        if node is None:
            self._heartbeats.pop(key, None)
            if nodepasswords.forget(self.registry, key):
                log.info("node %s deleted; its node password record is removed, the name may be reused", key)
            return
        now = self.registry.clock()
        lease = self.lister(LEASE).get(LEASE_NAMESPACE, key)
        beat = observe_heartbeat(self._heartbeats.get(key), node, now, lease)
        self._heartbeats[key] = beat
        health = compute_node_health(node, now, self.grace, beat, lease)
        if health.mark_unknown:
            node = copy.deepcopy(node)
            cond = _ready_condition(node)
            assert cond is not None
            cond["status"] = "Unknown"
            cond["reason"] = "NodeStatusUnknown"
            cond["message"] = "Dockyard agent stopped posting node status."
            cond["lastTransitionTime"] = rfc3339(now)
            node = self.registry.update(NODE, None, key, node, "status")
            self.lister(NODE).note(node)
            self.events.record(node, "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        taints = list((node.get("spec") or {}).get("taints") or [])
        new_taints = compute_taints(taints, health.taint, now)
        if new_taints is not None:
            node = copy.deepcopy(node)
            node.setdefault("spec", {})["taints"] = new_taints
            node = self.registry.update(NODE, None, key, node)
            self.lister(NODE).note(node)
            taints = new_taints
            if health.taint is None:
                self.events.record(node, "Normal", "NodeReady", f"Node {key} is Ready again; taints removed")
            else:
                self.events.record(node, "Warning", "NodeTainted", f"Node {key} tainted {health.taint}:NoExecute")
        if not health.pods_not_ready and not any(t.get("effect") == "NoExecute" for t in taints):
            return
        pods = self._pods_of(key)
        for pod in compute_pods_not_ready(pods, health, key):
            self._mark_not_ready(pod, now)
        plan = compute_evictions(pods, taints, now, self.eviction_timeout)
        for pod in plan.evict:
            meta = pod["metadata"]
            try:
                self.registry.delete(POD, meta.get("namespace"), meta["name"], grace_period=0,
                                     precondition_uid=meta.get("uid"))
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                continue
            log.info("evicted pod %s/%s from node %s", meta.get("namespace"), meta["name"], key)
            self.events.record(pod, "Normal", "TaintManagerEviction",
                               f"Marking for deletion Pod {meta.get('namespace')}/{meta['name']}")

    def _mark_not_ready(self, pod: dict[str, Any], now: datetime) -> None:
        meta = pod["metadata"]
        for cond in pod["status"]["conditions"]:
            if cond.get("type") == "Ready":
                cond["lastTransitionTime"] = rfc3339(now)
        try:
            self.registry.update(POD, meta.get("namespace"), meta["name"], pod, "status")
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            return  # gone, or changed meanwhile: the next sync looks again
        log.info("pod %s/%s on a node that is not ready: Ready=False", meta.get("namespace"), meta["name"])
        self.events.record(pod, "Warning", "NodeNotReady", "Node is not ready")
