"""The scheduler's cache: `NodeInfo`s kept up to date incrementally, and fast decisions.

`core.schedule(pod, nodes, pods)` builds a `NodeInfo` per node from scratch for every pod,
which is O(pods + nodes) per decision. The scheduler controller instead keeps a
`SchedulerCache` fed by its pod and node watches (like kube-scheduler's cache), holding
the same views the rules read (`scheduler/nodeinfo.py`):

* per node, a `NodeInfo`: the node's allocatable and the filter inputs, parsed once per
  node update; the requested totals, pod count, host ports and per-controller counts of
  the pods bound there, adjusted by each pod event.
* per pod (`PodInfo`, keyed by uid): the parsed requests, memoised for the pod's lifetime
  (requests are immutable), its controller key and host ports, and what it is accounted as
  (node, holds resources, counts for spreading), so an update or delete subtracts exactly
  what was added. Events older than what the cache has seen (by resourceVersion) are
  ignored, so a delayed watch event cannot undo a newer state.
* `assume(pod, node)` accounts a pod on a node before the binding is confirmed by the
  watch, so the next decision already sees it; `forget` undoes it when the bind fails.
  Pods bound to a node the cache does not know yet are accounted on a placeholder that is
  not schedulable and becomes a real node when the node appears.

`SchedulerCache.schedule(info)` decides with the rules of `core` (`find_feasible`,
`explain`, `pick_best`), with two differences from `core.schedule` taken from
kube-scheduler: nodes are visited in a rotating order, and the search stops after
`num_feasible_nodes_to_find(n)` feasible nodes (50% - n/125 of the nodes, at least 5%
and at least 100 nodes), and only those are scored. When no node fits, every node has
been visited, so the message counts all of them; the reasons are only computed then, in
a second pass, so the search itself stays a few integer comparisons per node.
"""

from __future__ import annotations

from typing import Any

from . import core
from .core import ScheduleResult
from .nodeinfo import NodeInfo, PodInfo, millicpu, pod_uid, requests_of, resource_version, same_pod

__all__ = [
    "MIN_FEASIBLE_NODES_PERCENTAGE", "MIN_FEASIBLE_NODES_TO_FIND", "NodeInfo", "PodInfo",
    "SchedulerCache", "cache_from", "millicpu", "num_feasible_nodes_to_find", "pod_uid", "requests_of",
    "schedule_with_cache",
]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes to find before scoring (kube-scheduler's adaptive rule).

    `percentage` 0 means adaptive: 50% minus one point per 125 nodes, never under 5%.
    Clusters under 100 nodes are always searched completely.
    """
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    if percentage >= 100:
        return num_nodes
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


class SchedulerCache:
    """Nodes and the pods that hold resources on them; see the module docstring."""

    def __init__(self, percentage_of_nodes_to_score: int = 0) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pods: dict[str, PodInfo] = {}  # uid -> the info as accounted
        self.percentage = percentage_of_nodes_to_score
        self._order: list[NodeInfo] | None = None
        self._next_start = 0

    # -- nodes ----------------------------------------------------------------------------

    def set_node(self, node: dict) -> bool:
        """Add or update a node; True if the change may let a pending pod fit somewhere."""
        name = (node.get("metadata") or {}).get("name", "")
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeInfo(name)
        was_real = state.node is not None
        changed = state.set_node(node)
        if not was_real:
            self._order = None
        return changed or not was_real

    def remove_node(self, name: str) -> None:
        state = self.nodes.get(name)
        if state is None:
            return
        self._order = None
        if state.pod_count:
            state.set_node(None)  # keep accounting for pods still bound there
        else:
            del self.nodes[name]

    def order(self) -> list[NodeInfo]:
        """Schedulable (real) nodes by name; rebuilt only when the set of nodes changes."""
        if self._order is None:
            self._order = [self.nodes[n] for n in sorted(self.nodes) if self.nodes[n].node is not None]
        return self._order

    # -- pods -----------------------------------------------------------------------------

    def info(self, pod: dict) -> PodInfo:
        """A PodInfo for `pod`, reusing the memoised requests of a pod the cache already has."""
        return PodInfo(pod, self.pods.get(pod_uid(pod)))

    def set_pod(self, pod: dict) -> tuple[PodInfo | None, bool]:
        """Add or update a pod: (its info or None if the event is stale, resources freed?)."""
        uid = pod_uid(pod)
        old = self.pods.get(uid)
        rv = resource_version(pod)
        if old is not None and rv and rv < old.rv:
            return None, False
        info = PodInfo(pod, old)
        freed = self._account(old, info)
        return info, freed

    def remove_pod(self, pod: dict) -> bool:
        """Drop a deleted pod; True if it held resources on a node."""
        old = self.pods.get(pod_uid(pod))
        if old is None:
            return False
        return self._account(old, None)

    def assume(self, info: PodInfo, node: str) -> PodInfo:
        """Account `info` on `node` now, before the binding is seen on the watch."""
        pod = dict(info.pod)
        pod["spec"] = {**(pod.get("spec") or {}), "nodeName": node}
        assumed = PodInfo(pod, info)
        self._account(self.pods.get(info.uid), assumed)
        return assumed

    def forget(self, info: PodInfo) -> None:
        """Undo `assume` after a failed bind: back to the unbound `info`."""
        self._account(self.pods.get(info.uid), info)

    def _account(self, old: PodInfo | None, new: PodInfo | None) -> bool:
        freed = False
        if old is not None and old.holds:
            if new is not None and new.holds and new.node == old.node and new.counts_owner == old.counts_owner:
                self.pods[new.uid] = new  # same accounting; just a newer object
                return False
            self._node_info(old.node).add(old, -1)
            freed = True
            state = self.nodes.get(old.node)
            if state is not None and state.node is None and state.pod_count == 0:
                del self.nodes[old.node]
        if new is None:
            if old is not None:
                self.pods.pop(old.uid, None)
            return freed
        if new.holds:
            self._node_info(new.node).add(new, 1)
        self.pods[new.uid] = new
        return freed

    def _node_info(self, name: str) -> NodeInfo:
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeInfo(name)
        return state

    # -- decisions --------------------------------------------------------------------------

    def schedule(self, info: PodInfo, *, sample: bool = True, with_scores: bool = False) -> ScheduleResult:
        """Pick a node for the pending pod `info` (see the module docstring)."""
        order = self.order()
        total = len(order)
        if total == 0:
            return ScheduleResult(node=None, reason=core.explain(info, order))
        want = num_feasible_nodes_to_find(total, self.percentage) if sample else total
        start = self._next_start % total if sample else 0
        window = order[start:] + order[:start] if start else order
        feasible, visited = core.find_feasible(info, window, want)
        if sample:
            self._next_start = (start + visited) % total
        if not feasible:
            return ScheduleResult(node=None, reason=core.explain(info, order))
        return core.pick_best(info, feasible, with_scores)


def cache_from(nodes: list[dict], pods: list[dict]) -> SchedulerCache:
    """A cache holding a snapshot (tests and tools)."""
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.set_pod(p)
    return cache


def schedule_with_cache(pod: dict, nodes: list[dict], pods: list[dict], **kw: Any) -> ScheduleResult:
    """`core.schedule` computed through a cache filled from the snapshot (sampling and all)."""
    others = [p for p in pods if not same_pod(p, pod)]
    cache = cache_from(nodes, others)
    return cache.schedule(cache.info(pod), **kw)
