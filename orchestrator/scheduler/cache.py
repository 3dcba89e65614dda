"""The scheduler's cache: per-node accounting kept up to date incrementally, and fast decisions.

`core.schedule(pod, nodes, pods)` rebuilds a snapshot of the whole cluster for every pod,
which is O(pods + nodes) per decision. The scheduler controller instead keeps a
`SchedulerCache` fed by its pod and node watches (like kube-scheduler's cache):

* per node (`NodeState`): allocatable cpu (millicores), memory (bytes) and pods as ints,
  parsed once per node update; requested totals of the pods bound there (and the "non-zero"
  totals used by least-allocated scoring); the pod count; per-controller pod counts for
  spreading; host ports in use; Ready, unschedulable, labels and taints, folded into one
  `plain_ok` flag for pods without node selectors, affinity, tolerations or host ports.
* per pod (`PodInfo`, keyed by uid): the parsed requests, memoised for the pod's lifetime
  (requests are immutable), its controller key and host ports, and what it is accounted as
  (node, holds resources, counts for spreading), so an update or delete subtracts exactly
  what was added. Events older than what the cache has seen (by resourceVersion) are
  ignored, so a delayed watch event cannot undo a newer state.
* `assume(pod, node)` accounts a pod on a node before the binding is confirmed by the
  watch, so the next decision already sees it; `forget` undoes it when the bind fails.
  Pods bound to a node the cache does not know yet are accounted on a placeholder that is
  not schedulable and becomes a real node when the node appears.

`CacheScheduler.schedule(info)` decides with the same filters, scores, tie-break and
failure message as `core.schedule`, with two differences taken from kube-scheduler:
nodes are visited in a rotating order, and the search stops after
`num_feasible_nodes_to_find(n)` feasible nodes (50% - n/125 of the nodes, at least 5%
and at least 100 nodes), and only those are scored. When no node fits, every node has
been visited, so the message counts all of them; the reasons are only computed then,
in a second pass, to keep the hot loop to a few integer comparisons.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ..objects.pods import controller_ref, is_terminating, pod_phase
from . import core
from .core import (
    DEFAULT_MAX_PODS,
    LEAST_ALLOCATED_WEIGHT,
    MSG_CPU,
    MSG_MEMORY,
    MSG_PODS,
    MSG_PORTS,
    NONZERO_CPU,
    NONZERO_MEMORY,
    SPREAD_WEIGHT,
    ScheduleResult,
    format_unschedulable,
)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NONZERO_MILLICPU = round(NONZERO_CPU * 1000)
_NEVER = -(1 << 62)  # a "request" that always fits: pods without a request skip that check

HostPort = tuple[str, str, int]


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


def millicpu(q: object) -> int:
    """A cpu quantity in millicores, rounded up like resource.Quantity.MilliValue."""
    cores = core._cpu(q)
    return math.ceil(cores * 1000 - 1e-6) if cores > 0 else 0


def _container_requests(container: dict) -> tuple[int, int]:
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    return (
        millicpu(requests.get("cpu", limits.get("cpu"))),
        core._memory(requests.get("memory", limits.get("memory"))),
    )


def requests_of(pod: dict) -> tuple[int, int]:
    """(millicores, bytes): per resource max(sum of app containers, largest init container)."""
    cpu, mem = core.aggregate_requests(pod, _container_requests)
    return int(cpu), mem


def pod_uid(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _rv(obj: dict) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class PodInfo:
    """What the scheduler needs of a pod, parsed once; see the module docstring."""

    __slots__ = ("uid", "pod", "rv", "cpu", "memory", "nz_cpu", "nz_memory", "owner", "host_ports",
                 "plain", "node", "holds", "counts_owner")

    def __init__(self, pod: dict, prev: PodInfo | None = None) -> None:
        self.uid = pod_uid(pod)
        spec = pod.get("spec") or {}
        if prev is not None:  # requests and ports of a pod never change: reuse the parse
            self.cpu, self.memory = prev.cpu, prev.memory
            self.host_ports = prev.host_ports
        else:
            self.cpu, self.memory = requests_of(pod)
            self.host_ports = tuple(sorted(core._host_ports(pod)))
        self.nz_cpu = self.cpu or NONZERO_MILLICPU
        self.nz_memory = self.memory or NONZERO_MEMORY
        self._refresh(pod, spec)

    def _refresh(self, pod: dict, spec: dict) -> None:
        self.pod = pod
        self.rv = _rv(pod)
        ref = controller_ref(pod)
        self.owner = (
            ((pod.get("metadata") or {}).get("namespace") or "default", ref["uid"])
            if ref is not None and ref.get("uid") else None
        )
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        self.plain = not (spec.get("nodeSelector") or affinity or spec.get("tolerations") or self.host_ports)
        self.node = spec.get("nodeName") or ""
        self.holds = bool(self.node) and pod_phase(pod) not in ("Succeeded", "Failed")
        self.counts_owner = self.owner is not None and not is_terminating(pod)


class NodeState:
    """Per-node accounting; `node` is None for a placeholder holding pods of an unknown node."""

    __slots__ = ("name", "node", "alloc_cpu", "alloc_memory", "alloc_pods", "requested_cpu",
                 "requested_memory", "nz_cpu", "nz_memory", "pod_count", "owners", "host_ports",
                 "plain_ok", "free_cpu", "free_memory", "score_base", "signature")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict | None = None
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
        self.requested_cpu = self.requested_memory = 0
        self.nz_cpu = self.nz_memory = 0
        self.pod_count = 0
        self.owners: dict[tuple[str, str], int] = {}
        self.host_ports: Counter[HostPort] = Counter()
        self.plain_ok = False
        self.free_cpu = self.free_memory = 0
        self.score_base: tuple[int, float, int, float] = (0, 0.0, 0, 0.0)
        self.signature: tuple = ()

    def set_node(self, node: dict | None) -> bool:
        """Take a node object; True if anything the filters or scores read changed."""
        self.node = node
        if node is None:
            self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
            self.plain_ok = False
            sig: tuple = ()
        else:
            status = node.get("status") or {}
            alloc = status.get("allocatable") or status.get("capacity") or {}
            pods = alloc.get("pods")
            self.alloc_cpu = millicpu(alloc.get("cpu"))
            self.alloc_memory = core._memory(alloc.get("memory"))
            self.alloc_pods = int(core._cpu(pods)) if pods not in (None, "") else DEFAULT_MAX_PODS
            spec = node.get("spec") or {}
            ready = not core.filter_ready(None, self)  # type: ignore[arg-type]
            taints = spec.get("taints") or []
            blocking = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in taints)
            self.plain_ok = ready and not spec.get("unschedulable") and not blocking
            labels = (node.get("metadata") or {}).get("labels") or {}
            sig = (self.alloc_cpu, self.alloc_memory, self.alloc_pods, ready, bool(spec.get("unschedulable")),
                   repr(taints), repr(sorted(labels.items())))
        self._refresh_free()
        changed = sig != self.signature
        self.signature = sig
        return changed

    def _refresh_free(self) -> None:
        self.free_cpu = self.alloc_cpu - self.requested_cpu
        self.free_memory = self.alloc_memory - self.requested_memory
        # least-allocated: free% of a resource after placing a pod asking r is (base - r) * scale
        self.score_base = (
            self.alloc_cpu - self.nz_cpu, 100.0 / self.alloc_cpu if self.alloc_cpu > 0 else 0.0,
            self.alloc_memory - self.nz_memory, 100.0 / self.alloc_memory if self.alloc_memory > 0 else 0.0,
        )

    def add(self, info: PodInfo, sign: int) -> None:
        self.requested_cpu += sign * info.cpu
        self.requested_memory += sign * info.memory
        self.nz_cpu += sign * info.nz_cpu
        self.nz_memory += sign * info.nz_memory
        self.pod_count += sign
        for hp in info.host_ports:
            self.host_ports[hp] += sign
            if self.host_ports[hp] <= 0:
                del self.host_ports[hp]
        if info.counts_owner and info.owner is not None:
            n = self.owners.get(info.owner, 0) + sign
            if n > 0:
                self.owners[info.owner] = n
            else:
                self.owners.pop(info.owner, None)
        self._refresh_free()


class SchedulerCache:
    """Nodes and the pods that hold resources on them; see the module docstring."""

    def __init__(self, percentage_of_nodes_to_score: int = 0) -> None:
        self.nodes: dict[str, NodeState] = {}
        self.pods: dict[str, PodInfo] = {}  # uid -> the info as accounted
        self.percentage = percentage_of_nodes_to_score
        self._order: list[NodeState] | None = None
        self._next_start = 0

    # -- nodes ----------------------------------------------------------------------------

    def set_node(self, node: dict) -> bool:
        """Add or update a node; True if the change may let a pending pod fit somewhere."""
        name = (node.get("metadata") or {}).get("name", "")
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeState(name)
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

    def order(self) -> list[NodeState]:
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
        if old is not None and _rv(pod) and _rv(pod) < old.rv:
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
            self._node_state(old.node).add(old, -1)
            freed = True
            state = self.nodes.get(old.node)
            if state is not None and state.node is None and state.pod_count == 0:
                del self.nodes[old.node]
        if new is None:
            if old is not None:
                self.pods.pop(old.uid, None)
            return freed
        if new.holds:
            self._node_state(new.node).add(new, 1)
        self.pods[new.uid] = new
        return freed

    def _node_state(self, name: str) -> NodeState:
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeState(name)
        return state

    # -- decisions --------------------------------------------------------------------------

    def schedule(self, info: PodInfo, *, sample: bool = True, with_scores: bool = False) -> ScheduleResult:
        """Pick a node for the pending pod `info` (see the module docstring)."""
        order = self.order()
        total = len(order)
        if total == 0:
            return ScheduleResult(node=None, reason=format_unschedulable(0, Counter()))
        want = num_feasible_nodes_to_find(total, self.percentage) if sample else total
        start = self._next_start % total if sample else 0
        window = order[start:] + order[:start] if start else order
        feasible: list[NodeState] = []
        processed = 0
        if info.plain:
            need_cpu = info.cpu or _NEVER
            need_mem = info.memory or _NEVER
            for state in window:
                processed += 1
                if (state.plain_ok and state.pod_count < state.alloc_pods and need_cpu <= state.free_cpu
                        and need_mem <= state.free_memory):
                    feasible.append(state)
                    if len(feasible) >= want:
                        break
        else:
            for state in window:
                processed += 1
                if not self._reasons(info, state):
                    feasible.append(state)
                    if len(feasible) >= want:
                        break
        if sample:
            self._next_start = (start + processed) % total
        if not feasible:
            reasons: Counter = Counter()
            for state in order:
                reasons.update(self._reasons(info, state))
            return ScheduleResult(node=None, reason=format_unschedulable(total, reasons))
        return self._score(info, feasible, with_scores)

    def _reasons(self, info: PodInfo, state: NodeState) -> list[str]:
        """Why `state` rejects the pod, with the reference filters' order and messages."""
        if not info.plain or not state.plain_ok:
            ctx = core._Ctx(pod=info.pod, requests=core.Resources(), nodes={})
            for flt in (core.filter_ready, core.filter_unschedulable, core.filter_node_selector, core.filter_taints):
                failed = flt(ctx, state)  # type: ignore[arg-type]
                if failed:
                    return failed
            if info.host_ports and self._port_conflict(info, state):
                return [MSG_PORTS]
        reasons = []
        if state.pod_count + 1 > state.alloc_pods:
            reasons.append(MSG_PODS)
        if info.cpu > 0 and info.cpu > state.free_cpu:
            reasons.append(MSG_CPU)
        if info.memory > 0 and info.memory > state.free_memory:
            reasons.append(MSG_MEMORY)
        return reasons

    @staticmethod
    def _port_conflict(info: PodInfo, state: NodeState) -> bool:
        for host_ip, proto, port in info.host_ports:
            for used_ip, used_proto, used_port in state.host_ports:
                if used_port == port and used_proto == proto and (
                        "0.0.0.0" in (host_ip, used_ip) or host_ip == used_ip):
                    return True
        return False

    @staticmethod
    def _score(info: PodInfo, feasible: list[NodeState], with_scores: bool) -> ScheduleResult:
        """Least-allocated + spreading over `feasible`; ties by rounded score, then node name."""
        nz_cpu, nz_mem = info.nz_cpu, info.nz_memory
        half = LEAST_ALLOCATED_WEIGHT / 2
        full = SPREAD_WEIGHT * 100.0
        owner = info.owner
        counts = [s.owners.get(owner, 0) for s in feasible] if owner is not None else []
        most = max(counts) if counts else 0
        if most:
            step = full / most
            totals = [
                full + half * ((c - nz_cpu) * sc if c >= nz_cpu else 0.0)
                + half * ((m - nz_mem) * sm if m >= nz_mem else 0.0) - step * n
                for (c, sc, m, sm), n in zip([s.score_base for s in feasible], counts, strict=True)
            ]
        else:
            totals = [
                full + half * ((c - nz_cpu) * sc if c >= nz_cpu else 0.0)
                + half * ((m - nz_mem) * sm if m >= nz_mem else 0.0)
                for c, sc, m, sm in [s.score_base for s in feasible]
            ]
        top = max(totals) - 1e-6
        best_i = -1
        best_key = (0.0, "")
        for i, t in enumerate(totals):
            if t >= top:
                key = (-round(t, 6), feasible[i].name)
                if best_i < 0 or key < best_key:
                    best_i, best_key = i, key
        scores = {s.name: t for s, t in zip(feasible, totals, strict=True)} if with_scores else {}
        return ScheduleResult(node=feasible[best_i].name, reason="", scores=scores)


def cache_from(nodes: list[dict], pods: list[dict]) -> SchedulerCache:
    """A cache holding a snapshot (tests and tools)."""
    cache = SchedulerCache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.set_pod(p)
    return cache


def schedule_with_cache(pod: dict, nodes: list[dict], pods: list[dict], **kw: Any) -> ScheduleResult:
    """`core.schedule` computed through the cache (for comparing the two implementations)."""
    others = [p for p in pods if not core._same_pod(p, pod)]
    cache = cache_from(nodes, others)
    return cache.schedule(cache.info(pod), **kw)
