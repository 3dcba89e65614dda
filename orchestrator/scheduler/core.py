"""Pod placement rules: filter nodes, score the survivors, pick the best. Pure logic.

The rules read views, never lists: one `PodInfo` for the pod being placed and one
`NodeInfo` per node (`scheduler/nodeinfo.py`: the node, its allocatable, and the requests,
host ports, pod count and per-controller counts of the pods it holds). There is one
implementation of the rules and two ways of feeding it:

* `schedule(pod, nodes, pods)` builds the views from scratch from a snapshot (all nodes,
  all pods) and searches every node: tests, and anything deciding for one pod.
* `cache.SchedulerCache` (the scheduler controller) keeps the views up to date from its
  watches and calls `find_feasible`, `explain` and `pick_best` on a rotating window of
  its nodes, stopping after enough feasible nodes.

`schedule` returns the chosen node name or, when no node fits, a Kubernetes-style
PodScheduled=False message such as ``0/3 nodes are available: 2 Insufficient memory, 1
node(s) were unschedulable.``. Binding (writing ``spec.nodeName``) is the caller's job.

Filters are small functions ``(pod, node) -> list[str]`` returning the reasons the node is
rejected (empty list = fits). They run in a fixed order and stop at the first filter that
rejects a node, like the Kubernetes framework; the resource filter may report several
reasons at once (``Insufficient cpu`` and ``Insufficient memory``), so reason counts in the
message can add up to more than the number of nodes, as in Kubernetes.

Filters: node Ready, spec.unschedulable (tolerable via the
``node.kubernetes.io/unschedulable`` taint key), nodeSelector and required node affinity,
NoSchedule/NoExecute taints vs. tolerations, host ports, and allocatable cpu/memory/pods.
A `plain` pod (no selector, affinity, tolerations or host ports) on a `plain_ok` node
(Ready, schedulable, no blocking taint) passes all but the resource filter, so only that
one runs; `find_feasible` unrolls it into a few integer comparisons for such pods.

Requests of a pod follow Kubernetes: per resource, max(sum of app containers, largest init
container); a container with a limit but no request requests its limit; cpu is compared
in integer millicores (rounded up, like resource.Quantity.MilliValue). Pods already on a
node count when they are bound (``spec.nodeName``) and not terminated (phase not
Succeeded/Failed); terminating pods still hold their resources.

Scores (higher is better), each 0..100:

* least-allocated (weight 1): average of free cpu% and free memory% after placing the pod;
  pods without requests count as 100m cpu / 200Mi memory here (Kubernetes' non-zero
  defaults) so that request-less pods still spread by load.
* spreading (weight 2): fewer pods of the same controller (ownerReferences controller uid,
  same namespace, not terminating) on the node scores higher: ``100 * (max - count) / max``
  over feasible nodes. Weighted above least-allocated so replicas of one workload end up
  evenly spread (6 replicas on 3 equal nodes → 2/2/2).

Ties (scores equal to 6 decimals) are broken by node name, so the result is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .nodeinfo import (
    BLOCKING_TAINT_EFFECTS,
    DEFAULT_MAX_PODS,
    NONZERO_CPU,
    NONZERO_MEMORY,
    NodeInfo,
    PodInfo,
    aggregate_requests,
    container_request_quantities,
    cpu_cores,
    memory_bytes,
    node_infos,
)

__all__ = [
    "DEFAULT_MAX_PODS", "FILTERS", "LEAST_ALLOCATED_WEIGHT", "MSG_CPU", "MSG_MEMORY", "MSG_NOT_READY",
    "MSG_PODS", "MSG_PORTS", "MSG_SELECTOR", "MSG_UNSCHEDULABLE", "NONZERO_CPU", "NONZERO_MEMORY",
    "SPREAD_WEIGHT", "UNSCHEDULABLE_TAINT", "Filter", "NodeInfo", "PodInfo", "Resources", "ScheduleResult",
    "aggregate_requests", "explain", "filter_node_selector", "filter_ports", "filter_ready",
    "filter_resources", "filter_taints", "filter_unschedulable", "find_feasible", "format_unschedulable",
    "pick_best", "pod_requests", "reasons", "schedule", "toleration_tolerates",
]

LEAST_ALLOCATED_WEIGHT = 1
SPREAD_WEIGHT = 2
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

MSG_NOT_READY = "node(s) were not ready"
MSG_UNSCHEDULABLE = "node(s) were unschedulable"
MSG_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
MSG_PORTS = "node(s) didn't have free ports for the requested pod ports"
MSG_CPU = "Insufficient cpu"
MSG_MEMORY = "Insufficient memory"
MSG_PODS = "Too many pods"

_NEVER = -(1 << 62)  # a "request" that always fits: pods without a request skip that check


@dataclass
class ScheduleResult:
    node: str | None
    reason: str  # "" on success; otherwise the PodScheduled=False message
    scores: dict[str, float] = field(default_factory=dict)  # feasible node -> total score


# --- requests (in cores, for callers outside the scheduler) ------------------------------


@dataclass
class Resources:
    cpu: float = 0.0  # cores
    memory: int = 0  # bytes
    pods: int = 0


def _container_cores(container: dict) -> tuple[float, int]:
    cpu, mem = container_request_quantities(container)
    return cpu_cores(cpu), memory_bytes(mem)


def pod_requests(pod: dict) -> Resources:
    """Effective requests of a pod in cores and bytes (see `aggregate_requests`)."""
    cpu, mem = aggregate_requests(pod, _container_cores)
    return Resources(cpu=float(cpu), memory=mem, pods=1)


# --- tolerations -------------------------------------------------------------------------


def toleration_tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return bool((toleration.get("value") or "") == (taint.get("value") or ""))
    return False


def _tolerated(pod: dict, taint: dict) -> bool:
    return any(toleration_tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or [])


# --- node affinity -----------------------------------------------------------------------


def _match_node_requirement(req: dict, labels: dict) -> bool:
    key, op, values = req.get("key"), req.get("operator"), req.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def _match_node_term(term: dict, node: NodeInfo) -> bool:
    fields = {"metadata.name": node.name}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches nothing
    return all(_match_node_requirement(r, node.labels) for r in exprs) and all(
        _match_node_requirement(r, fields) for r in field_exprs
    )


# --- filters -----------------------------------------------------------------------------

Filter = Callable[[PodInfo, NodeInfo], list[str]]


def filter_ready(pod: PodInfo, node: NodeInfo) -> list[str]:
    return [] if node.ready else [MSG_NOT_READY]


def filter_unschedulable(pod: PodInfo, node: NodeInfo) -> list[str]:
    if not node.unschedulable:
        return []
    if _tolerated(pod.pod, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return []
    return [MSG_UNSCHEDULABLE]


def filter_node_selector(pod: PodInfo, node: NodeInfo) -> list[str]:
    spec = pod.pod.get("spec") or {}
    labels = node.labels
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return [MSG_SELECTOR]
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    )
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not any(_match_node_term(t, node) for t in terms):
        return [MSG_SELECTOR]
    return []


def filter_taints(pod: PodInfo, node: NodeInfo) -> list[str]:
    for taint in node.taints:
        if taint.get("effect") not in BLOCKING_TAINT_EFFECTS:
            continue
        if not _tolerated(pod.pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"]
    return []


def filter_ports(pod: PodInfo, node: NodeInfo) -> list[str]:
    for host_ip, proto, port in pod.host_ports:
        for used_ip, used_proto, used_port in node.host_ports:
            if used_port != port or used_proto != proto:
                continue
            if "0.0.0.0" in (host_ip, used_ip) or host_ip == used_ip:
                return [MSG_PORTS]
    return []


def filter_resources(pod: PodInfo, node: NodeInfo) -> list[str]:
    reasons = []
    if node.pod_count + 1 > node.alloc_pods:
        reasons.append(MSG_PODS)
    if pod.cpu > 0 and pod.cpu > node.free_cpu:
        reasons.append(MSG_CPU)
    if pod.memory > 0 and pod.memory > node.free_memory:
        reasons.append(MSG_MEMORY)
    return reasons


FILTERS: tuple[Filter, ...] = (
    filter_ready,
    filter_unschedulable,
    filter_node_selector,
    filter_taints,
    filter_ports,
    filter_resources,
)
_PLAIN_FILTERS: tuple[Filter, ...] = (filter_resources,)  # a plain pod on a plain_ok node


def reasons(pod: PodInfo, node: NodeInfo) -> list[str]:
    """Why `node` rejects `pod`: the reasons of the first filter that fails ([] = fits)."""
    for flt in _PLAIN_FILTERS if pod.plain and node.plain_ok else FILTERS:
        failed = flt(pod, node)
        if failed:
            return failed
    return []


def find_feasible(pod: PodInfo, nodes: Iterable[NodeInfo], want: int) -> tuple[list[NodeInfo], int]:
    """Visit `nodes` in order until `want` of them fit: (the feasible nodes, how many were visited)."""
    feasible: list[NodeInfo] = []
    visited = 0
    if pod.plain:
        # `not reasons(pod, node)`, unrolled: on a plain_ok node only filter_resources runs
        need_cpu = pod.cpu or _NEVER
        need_mem = pod.memory or _NEVER
        for node in nodes:
            visited += 1
            if (node.plain_ok and node.pod_count < node.alloc_pods and need_cpu <= node.free_cpu
                    and need_mem <= node.free_memory):
                feasible.append(node)
                if len(feasible) >= want:
                    break
    else:
        for node in nodes:
            visited += 1
            if not reasons(pod, node):
                feasible.append(node)
                if len(feasible) >= want:
                    break
    return feasible, visited


def format_unschedulable(total: int, reasons: Counter[str]) -> str:
    """``0/N nodes are available: <count> <reason>, ....`` (count desc, then text)."""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = [f"{n} {text}" for text, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"0/{total} nodes are available: " + ", ".join(parts) + "."


def explain(pod: PodInfo, nodes: Sequence[NodeInfo]) -> str:
    """The FailedScheduling message for a pod no node in `nodes` accepts (every node counted)."""
    counts: Counter[str] = Counter()
    for node in nodes:
        counts.update(reasons(pod, node))
    return format_unschedulable(len(nodes), counts)


# --- scores ------------------------------------------------------------------------------


def pick_best(pod: PodInfo, feasible: Sequence[NodeInfo], with_scores: bool = True) -> ScheduleResult:
    """Score `feasible` (least-allocated + spreading) and pick the best; ties by rounded score,
    then node name. `scores` is filled only `with_scores`."""
    nz_cpu, nz_mem = pod.nz_cpu, pod.nz_memory
    half = LEAST_ALLOCATED_WEIGHT / 2
    full = SPREAD_WEIGHT * 100.0
    owner = pod.owner
    # least-allocated: free% of a resource after placing the pod is (base - request) * scale,
    # 0 when it would not fit (see NodeInfo.score_base); spreading: full * (most - n) / most
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
    top = max(totals) - 1e-6  # only these can round to the best score
    best_i = -1
    best_key = (0.0, "")
    for i, t in enumerate(totals):
        if t >= top:
            key = (-round(t, 6), feasible[i].name)
            if best_i < 0 or key < best_key:
                best_i, best_key = i, key
    scores = {s.name: t for s, t in zip(feasible, totals, strict=True)} if with_scores else {}
    return ScheduleResult(node=feasible[best_i].name, reason="", scores=scores)


# --- from scratch ------------------------------------------------------------------------


def schedule(pod: dict, nodes: list[dict], pods: list[dict]) -> ScheduleResult:
    """Place `pod` given every node and every pod of the cluster (views built from scratch)."""
    infos = node_infos(nodes, pods, exclude=pod)
    order = [infos[name] for name in sorted(infos)]
    info = PodInfo(pod)
    feasible, _ = find_feasible(info, order, len(order))
    if not feasible:
        return ScheduleResult(node=None, reason=explain(info, order))
    return pick_best(info, feasible)
