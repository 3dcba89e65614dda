"""The scheduler cache: incremental accounting, assume/forget, and decisions equal to `schedule`."""

from __future__ import annotations

import random

import pytest

from orchestrator.scheduler.cache import (
    SchedulerCache,
    cache_from,
    num_feasible_nodes_to_find,
    requests_of,
    schedule_with_cache,
)
from orchestrator.scheduler.core import schedule
from tests.unit.test_scheduler import CASES, node, pod


def running(p: dict, node_name: str, rv: int = 10) -> dict:
    p["spec"]["nodeName"] = node_name
    p["status"]["phase"] = "Running"
    p["metadata"]["resourceVersion"] = str(rv)
    return p


def test_requests_init_containers_millicores() -> None:
    p = pod("a", cpu="500m", memory="100Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "250m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}]
    assert requests_of(p) == (1000, 100 * 1024 * 1024)
    p["spec"]["initContainers"][0]["resources"]["requests"] = {"cpu": "200m", "memory": "1Gi"}
    assert requests_of(p) == (750, 1024 ** 3)


def test_incremental_updates_and_removal() -> None:
    cache = cache_from([node("n1", cpu="4", memory="8Gi")], [])
    a = running(pod("a", cpu="1", memory="1Gi", owner="rs"), "n1")
    cache.set_pod(a)
    n1 = cache.nodes["n1"]
    assert (n1.requested_cpu, n1.requested_memory, n1.pod_count) == (1000, 1024 ** 3, 1)
    assert n1.owners == {("default", "rs"): 1}
    assert (n1.free_cpu, n1.free_memory) == (3000, 7 * 1024 ** 3)
    # a stale event does not undo a newer state
    older = running(pod("a", cpu="1", memory="1Gi", owner="rs"), "n1", rv=5)
    older["status"]["phase"] = "Succeeded"
    assert cache.set_pod(older) == (None, False)
    assert n1.pod_count == 1
    # a finished pod frees its resources; the spread count follows
    done = running(pod("a", cpu="1", memory="1Gi", owner="rs"), "n1", rv=11)
    done["status"]["phase"] = "Succeeded"
    info, freed = cache.set_pod(done)
    assert info is not None and freed
    assert (n1.requested_cpu, n1.pod_count, n1.owners) == (0, 0, {})
    # terminating pods hold resources but do not count for spreading
    b = running(pod("b", cpu="2", owner="rs"), "n1", rv=12)
    b["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cache.set_pod(b)
    assert (n1.requested_cpu, n1.owners) == (2000, {})
    assert cache.remove_pod(b) is True
    assert (n1.requested_cpu, n1.pod_count) == (0, 0)


def test_node_update_and_removal_keep_pod_accounting() -> None:
    cache = cache_from([node("n1"), node("n2")], [])
    cache.set_pod(running(pod("a", cpu="1"), "n1"))
    assert [s.name for s in cache.order()] == ["n1", "n2"]
    assert cache.set_node(node("n1")) is False  # a heartbeat-like update changes nothing
    assert cache.set_node(node("n1", cpu="8")) is True
    assert cache.nodes["n1"].free_cpu == 7000
    cache.remove_node("n1")
    assert [s.name for s in cache.order()] == ["n2"]
    assert cache.nodes["n1"].pod_count == 1  # placeholder keeps the bound pod
    cache.set_node(node("n1"))
    assert cache.nodes["n1"].requested_cpu == 1000 and len(cache.order()) == 2
    cache.remove_node("n2")
    assert "n2" not in cache.nodes
    # a pod bound to a node the cache has not seen yet is kept on a placeholder
    cache.set_pod(running(pod("x", cpu="1"), "n9"))
    assert "n9" in cache.nodes and [s.name for s in cache.order()] == ["n1"]


def test_assume_then_confirm_or_forget() -> None:
    cache = cache_from([node("n1", cpu="2"), node("n2", cpu="2")], [])
    p = pod("p", cpu="2")
    p["metadata"]["resourceVersion"] = "3"
    info, _ = cache.set_pod(p)
    assert info is not None
    cache.assume(info, "n1")
    assert cache.nodes["n1"].requested_cpu == 2000
    q, _ = cache.set_pod(pod("q", cpu="2"))
    assert q is not None and cache.schedule(q).node == "n2"  # the next decision sees the assumption
    cache.forget(info)
    assert cache.nodes["n1"].requested_cpu == 0
    cache.assume(info, "n1")
    confirmed = running(pod("p", cpu="2"), "n1", rv=4)
    cache.set_pod(confirmed)
    assert cache.nodes["n1"].requested_cpu == 2000 and cache.nodes["n1"].pod_count == 1
    cache.set_pod(p)  # the pending object's older event arriving late changes nothing
    assert cache.nodes["n1"].pod_count == 1


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cache_matches_reference_cases(case: tuple) -> None:
    _, p, nodes, pods, want_node, want_reason = case
    result = schedule_with_cache(p, nodes, pods)
    assert (result.node, result.reason) == (want_node, want_reason)


def test_cache_spread_six_over_three() -> None:
    cache = cache_from([node("n1"), node("n2"), node("n3")], [])
    for i in range(6):
        info, _ = cache.set_pod(pod(f"web-{i}", cpu="100m", owner="rs-1"))
        assert info is not None
        chosen = cache.schedule(info).node
        assert chosen is not None
        cache.assume(info, chosen)
    assert [cache.nodes[n].pod_count for n in ("n1", "n2", "n3")] == [2, 2, 2]


def test_insufficient_message_counts_every_node() -> None:
    nodes = [node(f"n{i:03}", cpu="1") for i in range(300)]
    cache = cache_from(nodes, [])
    info, _ = cache.set_pod(pod("big", cpu="2"))
    assert info is not None
    assert cache.schedule(info).reason == "0/300 nodes are available: 300 Insufficient cpu."


def test_num_feasible_nodes_to_find() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(100) == 100
    assert num_feasible_nodes_to_find(1000) == 420
    assert num_feasible_nodes_to_find(5000) == 500  # 10%
    assert num_feasible_nodes_to_find(10000) == 500  # floor of 5%
    assert num_feasible_nodes_to_find(150) == 100


def test_sampling_rotates_and_stops_early() -> None:
    cache = SchedulerCache()
    for i in range(1000):
        cache.set_node(node(f"n{i:04}"))
    info, _ = cache.set_pod(pod("p", cpu="100m"))
    assert info is not None
    r1 = cache.schedule(info, with_scores=True)
    assert len(r1.scores) == 420
    r2 = cache.schedule(info, with_scores=True)
    assert len(r2.scores) == 420 and not set(r1.scores) & set(r2.scores)  # the next window


def test_randomised_equivalence_with_reference() -> None:
    rng = random.Random(7)
    for _ in range(150):
        nodes = []
        for i in range(rng.randint(0, 6)):
            taints = [{"key": "t", "value": "v", "effect": rng.choice(["NoSchedule", "PreferNoSchedule"])}] \
                if rng.random() < 0.2 else []
            nodes.append(node(f"n{i}", cpu=rng.choice(["1", "2", "4"]), memory=rng.choice(["1Gi", "4Gi"]),
                              pods=rng.choice(["2", "4", "110"]), ready=rng.random() > 0.1,
                              unschedulable=rng.random() < 0.1, labels={"zone": rng.choice("ab")}, taints=taints))
        pods = []
        for j in range(rng.randint(0, 10)):
            o = pod(f"o{j}", cpu=rng.choice([None, "100m", "500m", "1"]), memory=rng.choice([None, "256Mi"]),
                    owner=rng.choice([None, "rs-1", "rs-2"]), phase=rng.choice(["Running", "Running", "Succeeded"]))
            if nodes:
                o["spec"]["nodeName"] = rng.choice(nodes)["metadata"]["name"]
            pods.append(o)
        extra: dict = {}
        if rng.random() < 0.3:
            extra["nodeSelector"] = {"zone": "a"}
        if rng.random() < 0.3:
            extra["tolerations"] = [{"key": "t", "operator": "Exists"}]
        p = pod("p", cpu=rng.choice([None, "100m", "1", "3"]), memory=rng.choice([None, "512Mi", "2Gi"]),
                owner=rng.choice([None, "rs-1"]), **extra)
        want = schedule(p, nodes, pods)
        got = schedule_with_cache(p, nodes, pods, with_scores=True)
        assert (got.node, got.reason) == (want.node, want.reason)
        assert got.scores == pytest.approx(want.scores)


def test_scheduler_controller_binds_from_cache_and_parks(tmp_path) -> None:  # noqa: ANN001
    from orchestrator.reconcile.events import EventRecorder
    from orchestrator.registry import Registry
    from orchestrator.scheduler.loop import NODE, POD, Scheduler
    from orchestrator.store import SQLiteStore

    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    now = [0.0]
    sched = Scheduler(reg, EventRecorder(reg, "default-scheduler"), monotonic=lambda: now[0])
    n1 = reg.create(NODE, None, {"apiVersion": "v1", "kind": "Node", **node("n1", cpu="1")})
    assert list(sched.keys_for(NODE, "ADDED", n1)) == []
    small = reg.create(POD, "default", {"apiVersion": "v1", "kind": "Pod", **pod("small", cpu="500m")})
    big = reg.create(POD, "default", {"apiVersion": "v1", "kind": "Pod", **pod("big", cpu="2")})
    assert list(sched.keys_for(POD, "ADDED", small)) == ["default/small"]
    assert list(sched.keys_for(POD, "ADDED", big)) == ["default/big"]
    sched.sync("default/small")
    assert reg.get(POD, "default", "small")["spec"]["nodeName"] == "n1"
    assert sched.cache.nodes["n1"].requested_cpu == 500
    sched.sync("default/big")
    stored = reg.get(POD, "default", "big")
    cond = [c for c in stored["status"]["conditions"] if c["type"] == "PodScheduled"][0]
    assert cond["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    # our own status write comes back on the watch: the parked pod is not requeued
    assert list(sched.keys_for(POD, "MODIFIED", stored)) == []
    # a heartbeat does not help; a bigger node does, once the backoff has passed
    assert list(sched.keys_for(NODE, "MODIFIED", n1)) == []
    n2 = reg.create(NODE, None, {"apiVersion": "v1", "kind": "Node", **node("n2", cpu="4")})
    assert list(sched.keys_for(NODE, "ADDED", n2)) == []  # still backing off
    now[0] = 5.0
    assert "default/big" in list(sched.all_keys())
    sched.sync("default/big")
    assert reg.get(POD, "default", "big")["spec"]["nodeName"] == "n2"
    assert sched.pending == {} and sched.parked == {}
