"""Scheduler throughput on hollow nodes: pods bound per second, every binding persisted.

In one process: a real `SQLiteStore` + `Registry` in a temporary directory, N hollow Nodes
(Ready, 32 cpu / 128Gi / 110 pods; no agent behind them) and P pending pods owned by
~P/100 "ReplicaSets" (ownerReferences) with cpu/memory requests. Then the controller
runtime (`Runner`, the code path the master uses) is started with the `Scheduler` alone,
and the clock runs until every pod is bound; each binding is a `registry.bind` CAS write
in SQLite plus the Scheduled event, as in the master. At the end every pod is read back
from the store and checked to be bound to an existing node.

The baseline, in the same run, is the persistence ceiling: the same number of pods in a
second store, bound round-robin by plain `registry.bind` calls, no decisions, no events,
no watches. Prints pods/s for both, the ratio, and p50/p99 of the per-decision latency
(the in-memory node choice, without the write). Never asserts on timings.

Run: `python bench/scheduler.py [--nodes 1000] [--pods 10000]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.objects.kinds import by_kind  # noqa: E402
from orchestrator.reconcile.events import EventRecorder  # noqa: E402
from orchestrator.reconcile.runner import Runner  # noqa: E402
from orchestrator.registry import Registry  # noqa: E402
from orchestrator.scheduler.cache import PodInfo  # noqa: E402
from orchestrator.scheduler.core import ScheduleResult  # noqa: E402
from orchestrator.scheduler.loop import Scheduler  # noqa: E402
from orchestrator.store import SQLiteStore  # noqa: E402

POD = by_kind("v1", "Pod")
NODE = by_kind("v1", "Node")
PODS_PER_RS = 100
SIZES = [("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi"), ("50m", "64Mi")]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def hollow_node(i: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"hollow-{i:05}", "labels": {"kubernetes.io/hostname": f"hollow-{i:05}",
                                                         "zone": f"z{i % 3}"}},
        "spec": {},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def pending_pod(i: int) -> dict:
    rs = i // PODS_PER_RS
    cpu, mem = SIZES[rs % len(SIZES)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{rs:03}-{i:05}",
            "namespace": "default",
            "labels": {"app": f"web-{rs:03}"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"web-{rs:03}",
                                 "uid": f"rs-uid-{rs:03}", "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"containers": [{"name": "app", "image": "dockyard/busybox:1",
                                 "resources": {"requests": {"cpu": cpu, "memory": mem}}}]},
    }


def populate(registry: Registry, nodes: int, pods: int) -> None:
    registry.ensure_namespaces()
    for i in range(nodes):
        registry.create(NODE, None, hollow_node(i))
    for i in range(pods):
        registry.create(POD, "default", pending_pod(i))


class TimedScheduler(Scheduler):
    """The master's Scheduler, timing each decision."""

    def __init__(self, registry: Registry, recorder: EventRecorder) -> None:
        super().__init__(registry, recorder)
        self.decisions: list[float] = []

    def decide(self, info: PodInfo) -> ScheduleResult:
        t0 = time.perf_counter()
        result = super().decide(info)
        self.decisions.append(time.perf_counter() - t0)
        return result


def run_scheduler(registry: Registry, pods: int, timeout: float) -> tuple[float, TimedScheduler]:
    """Start the runner (its own thread and loop) with the scheduler alone; wait until all are bound."""
    scheduler = TimedScheduler(registry, EventRecorder(registry, "default-scheduler"))
    runner = Runner(registry, [scheduler])
    t0 = time.perf_counter()
    runner.start()
    try:
        while scheduler.bound < pods and time.perf_counter() - t0 < timeout:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
    finally:
        runner.stop()
    return elapsed, scheduler


def baseline(registry: Registry, nodes: int, pods: int) -> float:
    names = [p["metadata"]["name"] for p in registry.items(POD, "default")]
    t0 = time.perf_counter()
    for i, name in enumerate(names):
        registry.bind("default", name, f"hollow-{i % nodes:05}")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--timeout", type=float, default=45.0, help="give up on the scheduler run after this")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dockyard-bench-sched-") as tmp:
        t0 = time.perf_counter()
        store = SQLiteStore(str(Path(tmp) / "sched.db"))
        registry = Registry(store)
        populate(registry, args.nodes, args.pods)
        base_store = SQLiteStore(str(Path(tmp) / "base.db"))
        base_registry = Registry(base_store)
        populate(base_registry, args.nodes, args.pods)
        print(f"setup: {args.nodes} hollow nodes, {args.pods} pending pods from "
              f"{(args.pods + PODS_PER_RS - 1) // PODS_PER_RS} ReplicaSets, twice, in {time.perf_counter() - t0:.1f}s")

        base_s = baseline(base_registry, args.nodes, args.pods)
        elapsed, scheduler = run_scheduler(registry, args.pods, args.timeout)

        pods = registry.items(POD, "default")
        node_names = {n["metadata"]["name"] for n in registry.items(NODE)}
        bound = [p for p in pods if p["spec"].get("nodeName") in node_names]
        per_node = Counter(p["spec"]["nodeName"] for p in bound)
        store.close()
        base_store.close()

    rate = args.pods / elapsed if elapsed else float("nan")
    base_rate = args.pods / base_s if base_s else float("nan")
    d = [x * 1000 for x in scheduler.decisions]
    print(f"baseline (raw registry.bind, no decisions): {args.pods} in {base_s:.2f}s = {base_rate:,.0f} pods/s")
    print(f"scheduler (Runner + Scheduler, bind + event): {len(bound)}/{args.pods} bound in {elapsed:.2f}s "
          f"= {rate:,.0f} pods/s")
    print(f"decision latency: p50 {pct(d, 50):.3f} ms, p99 {pct(d, 99):.3f} ms over {len(d)} decisions")
    print(f"pods per node: min {min(per_node.values(), default=0)}, max {max(per_node.values(), default=0)}, "
          f"nodes used {len(per_node)}/{len(node_names)}")
    print(f"ratio scheduler/baseline: {rate / base_rate:.2f}")
    if len(bound) != args.pods:
        print(f"NOT ALL BOUND: {args.pods - len(bound)} pods have no node", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
