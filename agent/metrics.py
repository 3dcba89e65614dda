"""Prometheus metrics of one node: per-container CPU and memory, restarts, probes, node totals.

Nothing is sampled in the background. A scrape asks ``AgentMetrics.snapshot()``, which
reuses the last sample when it is younger than ``ttl`` seconds and otherwise lists the
node's containers (the runtime caches inspect results) and asks the engine for one-shot
stats of each running app container, a few at a time, so scraping a node with 20 pods
costs 20 cheap engine calls at most once per ``ttl``.

Exposed series (``namespace``, ``pod``, ``container`` labels where per container):

* ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``: the
  cAdvisor names and meanings, so dashboards and the autoscaler can use them unchanged;
* ``dockyard_pod_cpu_seconds_total``: the same CPU counter under Dockyard's name;
* ``dockyard_container_cpu_usage_cores``: CPU rate between the last two samples of the
  container (the first sample uses the average since the container started); this is
  what ``metrics.k8s.io`` and ``dockyard top`` show;
* ``dockyard_container_restarts_total``: the restart count the agent keeps in labels;
* ``dockyard_probe_results_total{probe_type,result}`` (plus the container's labels):
  counted by ``record_probe``, called by the prober;
* ``dockyard_node_allocatable{resource}``, ``dockyard_node_used{resource}`` (cpu in
  cores, memory in bytes, pods), ``dockyard_pods_running``.

Node usage comes from ``/proc/stat`` and ``/proc/meminfo`` (whole host, like the Kubelet's
node summary); the CPU rate is the delta between two samples, the containers' sum before
there is a previous sample.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .pods import SANDBOX_NAME, ObservedContainer
from .runtime import DockerRuntime, RuntimeFailure

CONTAINER_LABELS = ["namespace", "pod", "container"]
STATS_WORKERS = 8


# -- probe results (written by the prober, read at scrape time) -----------------------------


class ProbeCounter:
    """Thread-safe counts of probe outcomes per (namespace, pod, container, type, result)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, str, str], int] = {}

    def record(self, namespace: str, pod: str, container: str, probe_type: str, result: str) -> None:
        key = (namespace, pod, container, probe_type, result)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def forget_pod(self, namespace: str, pod: str) -> None:
        with self._lock:
            for key in [k for k in self._counts if k[0] == namespace and k[1] == pod]:
                del self._counts[key]

    def items(self) -> list[tuple[tuple[str, str, str, str, str], int]]:
        with self._lock:
            return list(self._counts.items())


PROBES = ProbeCounter()


def record_probe(namespace: str, pod: str, container: str, probe_type: str, result: str) -> None:
    """Count one probe outcome; `probe_type` liveness|readiness|startup, `result` e.g. success|failure."""
    PROBES.record(namespace, pod, container, probe_type, result)


# -- host readings ---------------------------------------------------------------------------


def parse_proc_stat(text: str) -> float | None:
    """Busy CPU seconds of the whole host from /proc/stat text (USER_HZ = 100)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            idle = f[3] + (f[4] if len(f) > 4 else 0)  # idle + iowait
            busy = sum(f[:8]) - idle  # guest time is already counted in user
            return busy / 100.0
    return None


def parse_mem_used(text: str) -> int | None:
    """MemTotal - MemAvailable in bytes from /proc/meminfo text."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            vals[key] = int(parts[0]) * 1024
    if "MemTotal" not in vals or "MemAvailable" not in vals:
        return None
    return vals["MemTotal"] - vals["MemAvailable"]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


# -- samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    pod_uid: str
    cpu_seconds: float
    cpu_cores: float
    memory_working_set_bytes: int
    restarts: int


@dataclass
class Snapshot:
    taken: float
    containers: list[ContainerSample] = field(default_factory=list)
    restarts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    pods_running: int = 0
    node_cpu_cores: float = 0.0
    node_memory_bytes: int = 0


def cpu_rate(prev: tuple[float, float] | None, cpu_seconds: float, now: float, started_at: float | None) -> float:
    """Cores used: delta over the previous sample, else the average since the start."""
    if prev is not None and now > prev[1] and cpu_seconds >= prev[0]:
        return (cpu_seconds - prev[0]) / (now - prev[1])
    if started_at and now > started_at:
        return cpu_seconds / (now - started_at)
    return 0.0


def parse_quantity_cores(q: Any) -> float:
    s = str(q)
    return float(s[:-1]) / 1000.0 if s.endswith("m") else float(s)


def parse_quantity_bytes(q: Any) -> float:
    from .runtime import parse_memory

    return float(parse_memory(q))


class AgentMetrics(Collector):
    """The node's collector; `registry` holds only it, `exposition()` renders it."""

    def __init__(
        self,
        runtime: DockerRuntime,
        allocatable: Callable[[], dict[str, str]] = dict,
        ttl: float = 2.0,
        probes: ProbeCounter = PROBES,
        clock: Callable[[], float] = time.time,
        proc_stat: Callable[[], str] = lambda: _read("/proc/stat"),
        meminfo: Callable[[], str] = lambda: _read("/proc/meminfo"),
    ) -> None:
        self.runtime = runtime
        self.allocatable = allocatable
        self.ttl = ttl
        self.probes = probes
        self.clock = clock
        self.proc_stat = proc_stat
        self.meminfo = meminfo
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._cpu_prev: dict[str, tuple[float, float]] = {}  # container id -> (cpu s, time)
        self._node_prev: tuple[float, float] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- sampling ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = self.clock()
            if self._snapshot is not None and now - self._snapshot.taken < self.ttl:
                return self._snapshot
            self._snapshot = self._take(now)
            return self._snapshot

    def _take(self, now: float) -> Snapshot:
        snap = Snapshot(taken=now)
        try:
            observed = self.runtime.list_containers()
        except RuntimeFailure:
            return snap
        latest: dict[tuple[str, str], ObservedContainer] = {}
        running_pods: set[str] = set()
        for c in observed:
            if c.name == SANDBOX_NAME:
                if c.running:
                    running_pods.add(c.pod_uid)
                continue
            key = (c.pod_uid, c.name)
            best = latest.get(key)
            if best is None or (c.restart_count, c.created_at) > (best.restart_count, best.created_at):
                latest[key] = c
        snap.pods_running = len(running_pods)
        for c in latest.values():
            snap.restarts[(c.pod_namespace, c.pod_name, c.name)] = c.restart_count
        running = [c for c in latest.values() if c.running]

        def one(c: ObservedContainer) -> tuple[ObservedContainer, dict[str, Any] | None]:
            try:
                return c, self.runtime.stats(c.id)
            except RuntimeFailure:
                return c, None

        if running:
            with ThreadPoolExecutor(max_workers=min(STATS_WORKERS, len(running))) as pool:
                results = list(pool.map(one, running))
        else:
            results = []
        seen: set[str] = set()
        for c, st in results:
            if st is None:
                continue
            seen.add(c.id)
            cpu = float(st["cpu_seconds"])
            rate = cpu_rate(self._cpu_prev.get(c.id), cpu, now, c.started_at)
            self._cpu_prev[c.id] = (cpu, now)
            snap.containers.append(ContainerSample(
                c.pod_namespace, c.pod_name, c.name, c.pod_uid, cpu, rate,
                int(st["memory_working_set_bytes"]), c.restart_count,
            ))
        for cid in [k for k in self._cpu_prev if k not in seen]:
            del self._cpu_prev[cid]
        self._sample_node(snap, now)
        return snap

    def _sample_node(self, snap: Snapshot, now: float) -> None:
        busy = parse_proc_stat(self.proc_stat())
        if busy is not None and self._node_prev is not None and now > self._node_prev[1]:
            snap.node_cpu_cores = max(0.0, (busy - self._node_prev[0]) / (now - self._node_prev[1]))
        else:
            snap.node_cpu_cores = sum(c.cpu_cores for c in snap.containers)
        if busy is not None:
            self._node_prev = (busy, now)
        used = parse_mem_used(self.meminfo())
        snap.node_memory_bytes = used if used is not None else sum(c.memory_working_set_bytes for c in snap.containers)

    # -- prometheus ---------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        cpu_k8s = CounterMetricFamily(
            "container_cpu_usage_seconds", "Cumulative CPU time consumed by the container in seconds",
            labels=CONTAINER_LABELS)
        cpu_dy = CounterMetricFamily(
            "dockyard_pod_cpu_seconds", "Cumulative CPU time of a pod's container in seconds",
            labels=CONTAINER_LABELS)
        cores = GaugeMetricFamily(
            "dockyard_container_cpu_usage_cores", "Recent CPU usage of the container in cores",
            labels=CONTAINER_LABELS)
        mem = GaugeMetricFamily(
            "container_memory_working_set_bytes", "Current working set of the container in bytes",
            labels=CONTAINER_LABELS)
        for c in snap.containers:
            labels = [c.namespace, c.pod, c.container]
            cpu_k8s.add_metric(labels, c.cpu_seconds)
            cpu_dy.add_metric(labels, c.cpu_seconds)
            cores.add_metric(labels, c.cpu_cores)
            mem.add_metric(labels, c.memory_working_set_bytes)
        yield from (cpu_k8s, cpu_dy, cores, mem)

        restarts = CounterMetricFamily(
            "dockyard_container_restarts", "Times the agent restarted the container", labels=CONTAINER_LABELS)
        for (ns, pod, name), n in sorted(snap.restarts.items()):
            restarts.add_metric([ns, pod, name], n)
        yield restarts

        probes = CounterMetricFamily(
            "dockyard_probe_results", "Probe outcomes by probe type and result",
            labels=[*CONTAINER_LABELS, "probe_type", "result"])
        for key, n in sorted(self.probes.items()):
            probes.add_metric(list(key), n)
        yield probes

        alloc = GaugeMetricFamily(
            "dockyard_node_allocatable", "Allocatable resources of the node (cpu in cores, memory in bytes)",
            labels=["resource"])
        for res, q in sorted((self.allocatable() or {}).items()):
            try:
                value = parse_quantity_bytes(q) if res == "memory" else parse_quantity_cores(q)
            except ValueError:
                continue
            alloc.add_metric([res], value)
        yield alloc

        used = GaugeMetricFamily(
            "dockyard_node_used", "Resources in use on the node (cpu in cores, memory in bytes)",
            labels=["resource"])
        used.add_metric(["cpu"], snap.node_cpu_cores)
        used.add_metric(["memory"], snap.node_memory_bytes)
        used.add_metric(["pods"], snap.pods_running)
        yield used

        running = GaugeMetricFamily("dockyard_pods_running", "Pods with a running sandbox on this node")
        running.add_metric([], snap.pods_running)
        yield running
