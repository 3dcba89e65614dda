"""Pod placement: filter nodes, score the survivors, pick the best. Pure logic.

`schedule(pod, nodes, pods)` looks at a snapshot (all nodes, all pods in the cluster) and
returns the chosen node name or, when no node fits, a Kubernetes-style PodScheduled=False
message such as ``0/3 nodes are available: 2 Insufficient memory, 1 node(s) were
unschedulable.``. Binding (writing ``spec.nodeName``) is the caller's job.

Filters are small functions ``(ctx, node) -> list[str]`` returning the reasons the node is
rejected (empty list = fits). They run in a fixed order and stop at the first filter that
rejects a node, like the Kubernetes framework; the resource filter may report several
reasons at once (``Insufficient cpu`` and ``Insufficient memory``), so reason counts in the
message can add up to more than the number of nodes, as in Kubernetes.

Filters: node Ready, spec.unschedulable (tolerable via the
``node.kubernetes.io/unschedulable`` taint key), nodeSelector and required node affinity,
NoSchedule/NoExecute taints vs. tolerations, host ports, and allocatable cpu/memory/pods.

Requests of a pod follow Kubernetes: per resource, max(sum of app containers, largest init
container); a container with a limit but no request requests its limit. Pods already on a
node count when they are bound (``spec.nodeName``) and not terminated (phase not
Succeeded/Failed); terminating pods still hold their resources.

Scores (higher is better), each 0..100:

* least-allocated (weight 1): average of free cpu% and free memory% after placing the pod;
  pods without requests count as 100m cpu / 200Mi memory here (Kubernetes' non-zero
  defaults) so that request-less pods still spread by load.
* spreading (weight 2): fewer pods of the same controller (ownerReferences controller uid,
  same namespace) on the node scores higher: ``100 * (max - count) / max`` over feasible
  nodes. Weighted above least-allocated so replicas of one workload end up evenly spread
  (6 replicas on 3 equal nodes → 2/2/2).

Ties are broken by node name, so the result is deterministic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.objects.pods import controller_ref, is_terminating, pod_phase
from orchestrator.objects.validation import parse_cpu_quantity, parse_memory_quantity

LEAST_ALLOCATED_WEIGHT = 1
SPREAD_WEIGHT = 2
DEFAULT_MAX_PODS = 110
NONZERO_CPU = 0.1  # cores
NONZERO_MEMORY = 200 * 1024 * 1024  # bytes
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

MSG_NOT_READY = "node(s) were not ready"
MSG_UNSCHEDULABLE = "node(s) were unschedulable"
MSG_SELECTOR = "node(s) didn't match Pod's node affinity/selector"
MSG_PORTS = "node(s) didn't have free ports for the requested pod ports"
MSG_CPU = "Insufficient cpu"
MSG_MEMORY = "Insufficient memory"
MSG_PODS = "Too many pods"


@dataclass
class ScheduleResult:
    node: str | None
    reason: str  # "" on success; otherwise the PodScheduled=False message
    scores: dict[str, float] = field(default_factory=dict)  # feasible node -> total score


# --- quantities --------------------------------------------------------------------------


def _cpu(q: object) -> float:
    """Cores; absent or unparsable quantities count as 0 (validation rejects bad input earlier)."""
    if q is None or q == "":
        return 0.0
    try:
        return parse_cpu_quantity(q)
    except ValueError:
        return 0.0


def _memory(q: object) -> int:
    if q is None or q == "":
        return 0
    try:
        return parse_memory_quantity(q)
    except ValueError:
        return 0


# --- requests ----------------------------------------------------------------------------


@dataclass
class Resources:
    cpu: float = 0.0  # cores
    memory: int = 0  # bytes
    pods: int = 0


def _container_requests(container: dict) -> tuple[float, int]:
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    cpu = requests.get("cpu", limits.get("cpu"))
    mem = requests.get("memory", limits.get("memory"))
    return _cpu(cpu), _memory(mem)


def aggregate_requests(pod: dict, per_container: Callable[[dict], tuple[Any, int]]) -> tuple[Any, int]:
    """Effective (cpu, memory) requests: per resource max(sum(app containers), max(init containers)).

    `per_container` says how one container's requests are read (cores as floats here,
    integer millicores in the scheduler cache).
    """
    spec = pod.get("spec") or {}
    cpu: Any = 0
    mem = 0
    for c in spec.get("containers") or []:
        c_cpu, c_mem = per_container(c)
        cpu += c_cpu
        mem += c_mem
    for c in spec.get("initContainers") or []:
        c_cpu, c_mem = per_container(c)
        cpu = max(cpu, c_cpu)
        mem = max(mem, c_mem)
    return cpu, mem


def pod_requests(pod: dict) -> Resources:
    """Effective requests of a pod (see `aggregate_requests`)."""
    cpu, mem = aggregate_requests(pod, _container_requests)
    return Resources(cpu=float(cpu), memory=mem, pods=1)


def _holds_resources(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName")) and pod_phase(pod) not in ("Succeeded", "Failed")


def _node_name(node: dict) -> str:
    return (node.get("metadata") or {}).get("name", "")


def _allocatable(node: dict) -> Resources:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    pods = alloc.get("pods")
    return Resources(
        cpu=_cpu(alloc.get("cpu")),
        memory=_memory(alloc.get("memory")),
        pods=int(_cpu(pods)) if pods not in (None, "") else DEFAULT_MAX_PODS,
    )


# --- snapshot ----------------------------------------------------------------------------


@dataclass
class NodeInfo:
    node: dict
    allocatable: Resources
    requested: Resources = field(default_factory=Resources)
    nonzero_cpu: float = 0.0
    nonzero_memory: int = 0
    host_ports: set[tuple[str, str, int]] = field(default_factory=set)
    owner_counts: Counter = field(default_factory=Counter)  # (namespace, controller uid) -> pods


@dataclass
class _Ctx:
    pod: dict
    requests: Resources
    nodes: dict[str, NodeInfo]


def _host_ports(pod: dict) -> set[tuple[str, str, int]]:
    ports: set[tuple[str, str, int]] = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return ports


def _owner_key(pod: dict) -> tuple[str, str] | None:
    ref = controller_ref(pod)
    if ref is None or not ref.get("uid"):
        return None
    return ((pod.get("metadata") or {}).get("namespace") or "default", ref["uid"])


def _same_pod(a: dict, b: dict) -> bool:
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    if ma.get("uid") and mb.get("uid"):
        return ma["uid"] == mb["uid"]
    return (ma.get("namespace"), ma.get("name")) == (mb.get("namespace"), mb.get("name"))


def build_snapshot(pod: dict, nodes: list[dict], pods: list[dict]) -> dict[str, NodeInfo]:
    infos = {_node_name(n): NodeInfo(node=n, allocatable=_allocatable(n)) for n in nodes}
    for other in pods:
        if not _holds_resources(other) or _same_pod(other, pod):
            continue
        info = infos.get(other["spec"]["nodeName"])
        if info is None:
            continue
        req = pod_requests(other)
        info.requested.cpu += req.cpu
        info.requested.memory += req.memory
        info.requested.pods += 1
        info.nonzero_cpu += req.cpu or NONZERO_CPU
        info.nonzero_memory += req.memory or NONZERO_MEMORY
        info.host_ports |= _host_ports(other)
        key = _owner_key(other)
        if key is not None and not is_terminating(other):
            info.owner_counts[key] += 1
    return infos


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
        return (toleration.get("value") or "") == (taint.get("value") or "")
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


def _match_node_term(term: dict, node: dict) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": _node_name(node)}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # an empty term matches nothing
    return all(_match_node_requirement(r, labels) for r in exprs) and all(
        _match_node_requirement(r, fields) for r in field_exprs
    )


# --- filters -----------------------------------------------------------------------------

Filter = Callable[[_Ctx, NodeInfo], list[str]]


def filter_ready(ctx: _Ctx, info: NodeInfo) -> list[str]:
    for cond in (info.node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return [] if cond.get("status") == "True" else [MSG_NOT_READY]
    return [MSG_NOT_READY]


def filter_unschedulable(ctx: _Ctx, info: NodeInfo) -> list[str]:
    if not (info.node.get("spec") or {}).get("unschedulable"):
        return []
    if _tolerated(ctx.pod, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
        return []
    return [MSG_UNSCHEDULABLE]


def filter_node_selector(ctx: _Ctx, info: NodeInfo) -> list[str]:
    spec = ctx.pod.get("spec") or {}
    labels = (info.node.get("metadata") or {}).get("labels") or {}
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
    if terms is not None and not any(_match_node_term(t, info.node) for t in terms):
        return [MSG_SELECTOR]
    return []


def filter_taints(ctx: _Ctx, info: NodeInfo) -> list[str]:
    for taint in (info.node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not _tolerated(ctx.pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"]
    return []


def filter_ports(ctx: _Ctx, info: NodeInfo) -> list[str]:
    for host_ip, proto, port in _host_ports(ctx.pod):
        for used_ip, used_proto, used_port in info.host_ports:
            if used_port != port or used_proto != proto:
                continue
            if "0.0.0.0" in (host_ip, used_ip) or host_ip == used_ip:
                return [MSG_PORTS]
    return []


def filter_resources(ctx: _Ctx, info: NodeInfo) -> list[str]:
    reasons = []
    req, used, alloc = ctx.requests, info.requested, info.allocatable
    if used.pods + 1 > alloc.pods:
        reasons.append(MSG_PODS)
    if req.cpu > 0 and used.cpu + req.cpu > alloc.cpu + 1e-9:
        reasons.append(MSG_CPU)
    if req.memory > 0 and used.memory + req.memory > alloc.memory:
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


# --- scores ------------------------------------------------------------------------------


def score_least_allocated(ctx: _Ctx, info: NodeInfo) -> float:
    cpu_req = info.nonzero_cpu + (ctx.requests.cpu or NONZERO_CPU)
    mem_req = info.nonzero_memory + (ctx.requests.memory or NONZERO_MEMORY)

    def free(requested: float, allocatable: float) -> float:
        if allocatable <= 0 or requested > allocatable:
            return 0.0
        return 100.0 * (allocatable - requested) / allocatable

    return (free(cpu_req, info.allocatable.cpu) + free(mem_req, info.allocatable.memory)) / 2


def score_spread(ctx: _Ctx, feasible: list[NodeInfo]) -> dict[str, float]:
    key = _owner_key(ctx.pod)
    if key is None:
        return {_node_name(i.node): 100.0 for i in feasible}
    counts = {_node_name(i.node): i.owner_counts.get(key, 0) for i in feasible}
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: 100.0 for name in counts}
    return {name: 100.0 * (most - c) / most for name, c in counts.items()}


# --- entry point -------------------------------------------------------------------------


def format_unschedulable(total: int, reasons: Counter) -> str:
    """``0/N nodes are available: <count> <reason>, ....`` (count desc, then text)."""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = [f"{n} {text}" for text, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"0/{total} nodes are available: " + ", ".join(parts) + "."


def schedule(pod: dict, nodes: list[dict], pods: list[dict]) -> ScheduleResult:
    infos = build_snapshot(pod, nodes, pods)
    ctx = _Ctx(pod=pod, requests=pod_requests(pod), nodes=infos)
    feasible: list[NodeInfo] = []
    reasons: Counter = Counter()
    for name in sorted(infos):
        info = infos[name]
        for flt in FILTERS:
            failed = flt(ctx, info)
            if failed:
                reasons.update(failed)
                break
        else:
            feasible.append(info)
    if not feasible:
        return ScheduleResult(node=None, reason=format_unschedulable(len(infos), reasons))
    spread = score_spread(ctx, feasible)
    scores = {
        _node_name(i.node): LEAST_ALLOCATED_WEIGHT * score_least_allocated(ctx, i)
        + SPREAD_WEIGHT * spread[_node_name(i.node)]
        for i in feasible
    }
    best = min(scores, key=lambda name: (-round(scores[name], 6), name))
    return ScheduleResult(node=best, reason="", scores=scores)
