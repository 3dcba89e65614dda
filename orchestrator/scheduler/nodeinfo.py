"""What the scheduling rules read: `NodeInfo` (a node and what is placed on it) and `PodInfo`.

The filters and scores in `core` never look at the list of pods: they read one `PodInfo`
(the pod being placed) and one `NodeInfo` per node, as kube-scheduler's framework does.
Both are plain accounting, with no rule in them beyond "what counts":

* `PodInfo`: a pod parsed once: its effective requests in integer millicores and bytes
  (per resource max(sum of app containers, largest init container); a container with a
  limit but no request requests its limit), the "non-zero" requests least-allocated
  scoring uses (100m / 200Mi for a pod asking nothing), its host ports, its controller
  key (namespace, ownerReferences controller uid), whether it holds resources on a node
  (bound, phase not Succeeded/Failed; terminating pods still hold) and whether it counts
  for spreading (holds, has a controller, not terminating). `plain` says the pod has no
  node selector, required node affinity, tolerations or host ports.
* `NodeInfo`: a node's allocatable cpu (millicores), memory and pods, its Ready,
  unschedulable, labels and taints read once per node update, and the running totals of
  the pods it holds: requested and non-zero requested cpu/memory, pod count, host ports in
  use, pods per controller. `add(pod, +1/-1)` adds or subtracts exactly what a `PodInfo`
  accounts, so the same `NodeInfo` serves both ways of getting one:

  - from scratch: `node_infos(nodes, pods)` builds them from lists (tests, one-off
    decisions: `core.schedule`);
  - incrementally: `cache.SchedulerCache` keeps them up to date from watch events.

  `plain_ok` (Ready, not unschedulable, no NoSchedule/NoExecute taint) is what lets a
  `plain` pod skip every filter but the resource one; `free_cpu`/`free_memory` and
  `score_base` are derived totals kept so the hot loop is a few integer comparisons.

A `NodeInfo` whose `node` is None is a placeholder for pods bound to a node not (or no
longer) known; it holds their accounting and is never a candidate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ..objects.pods import controller_ref, is_terminating, pod_phase
from ..objects.quantity import parse_cpu_quantity, parse_memory_quantity

DEFAULT_MAX_PODS = 110
NONZERO_CPU = 0.1  # cores
NONZERO_MILLICPU = round(NONZERO_CPU * 1000)
NONZERO_MEMORY = 200 * 1024 * 1024  # bytes
BLOCKING_TAINT_EFFECTS = ("NoSchedule", "NoExecute")

HostPort = tuple[str, str, int]  # (hostIP, protocol, port)
OwnerKey = tuple[str, str]  # (namespace, controller uid)


# --- quantities --------------------------------------------------------------------------


def cpu_cores(q: object) -> float:
    """Cores; absent or unparsable quantities count as 0 (validation rejects bad input earlier)."""
    if q is None or q == "":
        return 0.0
    try:
        return parse_cpu_quantity(q)
    except ValueError:
        return 0.0


def memory_bytes(q: object) -> int:
    if q is None or q == "":
        return 0
    try:
        return parse_memory_quantity(q)
    except ValueError:
        return 0


def millicpu(q: object) -> int:
    """A cpu quantity in millicores, rounded up like resource.Quantity.MilliValue."""
    cores = cpu_cores(q)
    return math.ceil(cores * 1000 - 1e-6) if cores > 0 else 0


# --- requests ----------------------------------------------------------------------------


def aggregate_requests(pod: dict, per_container: Callable[[dict], tuple[Any, int]]) -> tuple[Any, int]:
    """Effective (cpu, memory) requests: per resource max(sum(app containers), max(init containers)).

    `per_container` says how one container's requests are read (integer millicores here,
    cores as floats in `core.pod_requests`).
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


def container_request_quantities(container: dict) -> tuple[object, object]:
    """A container's (cpu, memory) request quantities; a limit stands in for a missing request."""
    res = container.get("resources") or {}
    requests = res.get("requests") or {}
    limits = res.get("limits") or {}
    return requests.get("cpu", limits.get("cpu")), requests.get("memory", limits.get("memory"))


def _container_millis(container: dict) -> tuple[int, int]:
    cpu, mem = container_request_quantities(container)
    return millicpu(cpu), memory_bytes(mem)


def requests_of(pod: dict) -> tuple[int, int]:
    """(millicores, bytes): per resource max(sum of app containers, largest init container)."""
    cpu, mem = aggregate_requests(pod, _container_millis)
    return int(cpu), mem


def host_ports_of(pod: dict) -> tuple[HostPort, ...]:
    """The (hostIP, protocol, hostPort) triples the pod's containers ask for, sorted, unique."""
    ports: set[HostPort] = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.add((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(p["hostPort"])))
    return tuple(sorted(ports))


# --- pods --------------------------------------------------------------------------------


def pod_uid(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def same_pod(a: dict, b: dict) -> bool:
    """Same pod: by uid when both have one, else by namespace and name."""
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    if ma.get("uid") and mb.get("uid"):
        return bool(ma["uid"] == mb["uid"])
    return (ma.get("namespace"), ma.get("name")) == (mb.get("namespace"), mb.get("name"))


def resource_version(obj: dict) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class PodInfo:
    """What the rules need of a pod, parsed once; see the module docstring."""

    __slots__ = ("uid", "pod", "rv", "cpu", "memory", "nz_cpu", "nz_memory", "owner", "host_ports",
                 "plain", "node", "holds", "counts_owner")

    uid: str
    pod: dict
    rv: int
    cpu: int  # millicores
    memory: int  # bytes
    nz_cpu: int
    nz_memory: int
    host_ports: tuple[HostPort, ...]
    owner: OwnerKey | None
    plain: bool
    node: str
    holds: bool
    counts_owner: bool

    def __init__(self, pod: dict, prev: PodInfo | None = None) -> None:
        self.uid = pod_uid(pod)
        spec = pod.get("spec") or {}
        if prev is not None:  # requests and ports of a pod never change: reuse the parse
            self.cpu, self.memory = prev.cpu, prev.memory
            self.host_ports = prev.host_ports
        else:
            self.cpu, self.memory = requests_of(pod)
            self.host_ports = host_ports_of(pod)
        self.nz_cpu = self.cpu or NONZERO_MILLICPU
        self.nz_memory = self.memory or NONZERO_MEMORY
        self._refresh(pod, spec)

    def _refresh(self, pod: dict, spec: dict) -> None:
        self.pod = pod
        self.rv = resource_version(pod)
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


# --- nodes -------------------------------------------------------------------------------


def node_name(node: dict) -> str:
    return str((node.get("metadata") or {}).get("name", ""))


def node_ready(node: dict) -> bool:
    """The node's Ready condition is "True" (a node without one is not ready)."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


class NodeInfo:
    """One node and the pods it holds; `node` is None for a placeholder (module docstring)."""

    __slots__ = ("name", "node", "alloc_cpu", "alloc_memory", "alloc_pods", "ready", "unschedulable",
                 "labels", "taints", "requested_cpu", "requested_memory", "nz_cpu", "nz_memory",
                 "pod_count", "owners", "host_ports", "plain_ok", "free_cpu", "free_memory",
                 "score_base", "signature")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict | None = None
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
        self.ready = self.unschedulable = False
        self.labels: dict[str, Any] = {}
        self.taints: list[dict] = []
        self.requested_cpu = self.requested_memory = 0
        self.nz_cpu = self.nz_memory = 0
        self.pod_count = 0
        self.owners: dict[OwnerKey, int] = {}
        self.host_ports: Counter[HostPort] = Counter()
        self.plain_ok = False
        self.free_cpu = self.free_memory = 0
        self.score_base: tuple[int, float, int, float] = (0, 0.0, 0, 0.0)
        self.signature: tuple[object, ...] = ()

    @classmethod
    def of(cls, node: dict) -> NodeInfo:
        info = cls(node_name(node))
        info.set_node(node)
        return info

    def set_node(self, node: dict | None) -> bool:
        """Take a node object; True if anything the filters or scores read changed."""
        self.node = node
        sig: tuple[object, ...]
        if node is None:
            self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
            self.ready = self.unschedulable = False
            self.labels, self.taints = {}, []
            self.plain_ok = False
            sig = ()
        else:
            status = node.get("status") or {}
            alloc = status.get("allocatable") or status.get("capacity") or {}
            pods = alloc.get("pods")
            self.alloc_cpu = millicpu(alloc.get("cpu"))
            self.alloc_memory = memory_bytes(alloc.get("memory"))
            self.alloc_pods = int(cpu_cores(pods)) if pods not in (None, "") else DEFAULT_MAX_PODS
            spec = node.get("spec") or {}
            self.ready = node_ready(node)
            self.unschedulable = bool(spec.get("unschedulable"))
            self.labels = (node.get("metadata") or {}).get("labels") or {}
            self.taints = spec.get("taints") or []
            blocking = any(t.get("effect") in BLOCKING_TAINT_EFFECTS for t in self.taints)
            self.plain_ok = self.ready and not self.unschedulable and not blocking
            sig = (self.alloc_cpu, self.alloc_memory, self.alloc_pods, self.ready, self.unschedulable,
                   repr(self.taints), repr(sorted(self.labels.items())))
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
        """Account (`sign` 1) or un-account (-1) a pod that holds resources here."""
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

    def accounting(self) -> tuple[object, ...]:
        """Everything this view holds, for comparing two ways of building it."""
        return (self.name, self.node, self.alloc_cpu, self.alloc_memory, self.alloc_pods, self.ready,
                self.unschedulable, self.labels, self.taints, self.requested_cpu, self.requested_memory,
                self.nz_cpu, self.nz_memory, self.pod_count, dict(self.owners), dict(self.host_ports),
                self.plain_ok, self.free_cpu, self.free_memory, self.score_base, self.signature)


def node_infos(nodes: Iterable[dict], pods: Iterable[dict], exclude: dict | None = None) -> dict[str, NodeInfo]:
    """A from-scratch `NodeInfo` per node (by name) with the pods in `pods` that hold resources
    there, leaving out `exclude` (the pod being placed). Pods bound to a node not in `nodes`
    are ignored."""
    infos = {}
    for n in nodes:
        info = NodeInfo.of(n)
        infos[info.name] = info
    for pod in pods:
        if exclude is not None and same_pod(pod, exclude):
            continue
        p = PodInfo(pod)
        if p.holds and p.node in infos:
            infos[p.node].add(p, 1)
    return infos
