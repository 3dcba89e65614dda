"""The scheduler cache: incremental accounting, assume/forget, and decisions equal to `schedule`.

`core.schedule` builds its `NodeInfo`s from scratch; the cache keeps the same views up to
date event by event. Both feed the same rules, so the randomised test replays a random
history of watch events (node variants, removals and re-adds, pods pending then assumed,
forgotten, confirmed, finished, stale events, pods and nodes that come and go) into a
cache and checks that it ends with exactly the from-scratch views and the same decision.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable

import pytest

from orchestrator.scheduler import core
from orchestrator.scheduler.cache import (
    SchedulerCache,
    cache_from,
    num_feasible_nodes_to_find,
    requests_of,
    schedule_with_cache,
)
from orchestrator.scheduler.core import schedule
from orchestrator.scheduler.nodeinfo import node_infos
from tests.unit.test_scheduler import CASES, node, pod

Step = Callable[[SchedulerCache], None]


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


def _interleave(rng: random.Random, sequences: list[list[Step]]) -> list[Step]:
    """One random order of all steps that keeps each sequence's own order."""
    queues = [list(seq) for seq in sequences if seq]
    out: list[Step] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def _node_steps(rng: random.Random, final: dict) -> list[Step]:
    name = final["metadata"]["name"]
    steps: list[Step] = []
    if rng.random() < 0.4:  # an earlier state of the node
        variant = copy.deepcopy(final)
        variant["status"]["allocatable"]["cpu"] = rng.choice(["1", "8"])
        variant["status"]["conditions"][0]["status"] = rng.choice(["True", "False"])
        variant["metadata"]["labels"] = {"zone": rng.choice("abc")}
        variant["spec"]["unschedulable"] = rng.random() < 0.3
        steps.append(lambda c: c.set_node(copy.deepcopy(variant)) and None)
    if rng.random() < 0.25:  # removed (pods bound there stay on a placeholder) and re-added
        steps.append(lambda c: c.remove_node(name))
    steps.append(lambda c: c.set_node(copy.deepcopy(final)) and None)
    if rng.random() < 0.3:  # a heartbeat: nothing the rules read changes
        steps.append(lambda c: _expect(c.set_node(copy.deepcopy(final)) is False))
    return steps


def _expect(ok: bool) -> None:
    assert ok


def _assume_and_forget(cache: SchedulerCache, uid: str, target: str) -> None:
    before = {n: i.accounting() for n, i in cache.nodes.items()}
    pending = cache.pods[uid]
    assumed = cache.assume(pending, target)
    assert assumed.holds and cache.nodes[target].pod_count > 0
    cache.forget(pending)
    assert {n: i.accounting() for n, i in cache.nodes.items()} == before
    assert cache.pods[uid] is pending


def _pod_steps(rng: random.Random, final: dict, node_names: list[str]) -> list[Step]:
    """Watch events (and assume/forget) that end in `final`, a pod of the snapshot."""
    versions: list[dict] = []
    steps: list[Step] = []
    node_name = final["spec"].get("nodeName")

    def deliver(obj: dict) -> Step:
        return lambda c: c.set_pod(copy.deepcopy(obj)) and None

    def version(**changes: object) -> dict:
        v = copy.deepcopy(final)
        v["spec"].pop("nodeName", None)
        v["status"]["phase"] = "Pending"
        for key, value in changes.items():
            if key == "nodeName":
                v["spec"]["nodeName"] = value
            else:
                v["status"]["phase"] = value
        v["metadata"]["resourceVersion"] = str(len(versions) + 1)
        versions.append(v)
        return v

    if rng.random() < 0.6:
        steps.append(deliver(version()))  # created, pending
        if node_name and rng.random() < 0.4:  # a bind that fails: the cache is as before
            target = rng.choice(node_names + ["elsewhere"])
            steps.append(lambda c: _assume_and_forget(c, final["metadata"]["uid"], target))
        if node_name and rng.random() < 0.5:  # the scheduler's own decision, confirmed below
            steps.append(lambda c: c.assume(c.pods[final["metadata"]["uid"]], node_name) and None)
    if node_name and final["status"]["phase"] != "Running" and rng.random() < 0.5:
        steps.append(deliver(version(nodeName=node_name, phase="Running")))
    last = copy.deepcopy(final)
    last["metadata"]["resourceVersion"] = str(len(versions) + 1)
    steps.append(deliver(last))
    if versions and rng.random() < 0.5:  # a late, older event changes nothing
        stale = rng.choice(versions)
        steps.append(lambda c: _expect(c.set_pod(copy.deepcopy(stale)) == (None, False)))
    return steps


def _transient_steps(rng: random.Random, i: int, node_names: list[str]) -> tuple[list[Step], list[Step]]:
    """A node that comes and goes, and a pod that is bound somewhere and then deleted."""
    gone = node(f"gone-{i}", cpu="2")
    node_steps: list[Step] = [lambda c: c.set_node(copy.deepcopy(gone)) and None,
                              lambda c: c.remove_node(f"gone-{i}")]
    p = pod(f"t{i}", cpu=rng.choice([None, "500m"]), owner=rng.choice([None, "rs-1"]))
    p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}] if rng.random() < 0.3 else []
    p["spec"]["nodeName"] = rng.choice(node_names + [f"gone-{i}", "nowhere"])
    p["status"]["phase"] = "Running"
    p["metadata"]["resourceVersion"] = "1"
    pod_steps: list[Step] = [lambda c: c.set_pod(copy.deepcopy(p)) and None]
    if rng.random() < 0.5:
        ending = copy.deepcopy(p)
        ending["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        ending["metadata"]["resourceVersion"] = "2"
        pod_steps.append(lambda c: c.set_pod(copy.deepcopy(ending)) and None)
    pod_steps.append(lambda c: _expect(c.remove_pod(copy.deepcopy(p)) is True))
    return node_steps, pod_steps


def replayed_cache(rng: random.Random, nodes: list[dict], pods: list[dict]) -> SchedulerCache:
    """A cache that reached the snapshot (`nodes`, `pods`) through a random history of events."""
    names = [n["metadata"]["name"] for n in nodes]
    sequences = [_node_steps(rng, n) for n in nodes]
    sequences += [_pod_steps(rng, p, names) for p in pods]
    for i in range(rng.randint(0, 2)):
        sequences.extend(_transient_steps(rng, i, names))
    probe = pod("probe", cpu="100m")  # decisions that only move the rotating start
    sequences += [[lambda c: c.schedule(c.info(probe)) and None] for _ in range(rng.randint(0, 3))]
    cache = SchedulerCache()
    for step in _interleave(rng, sequences):
        step(cache)
    return cache


def test_randomised_equivalence_with_reference() -> None:
    rng = random.Random(7)
    history = random.Random(11)
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
        # a cache loaded with the snapshot, and one that got there event by event
        got = schedule_with_cache(p, nodes, pods, with_scores=True)
        assert (got.node, got.reason) == (want.node, want.reason)
        assert got.scores == pytest.approx(want.scores)
        cache = replayed_cache(history, nodes, pods)
        scratch = node_infos(nodes, pods)
        assert set(cache.nodes) == set(scratch)  # no placeholder left behind
        assert {n: i.accounting() for n, i in cache.nodes.items()} == {n: i.accounting() for n, i in scratch.items()}
        assert set(cache.pods) == {o["metadata"]["uid"] for o in pods}
        info, _ = cache.set_pod(copy.deepcopy(p))
        assert info is not None
        got = cache.schedule(info, with_scores=True)
        assert (got.node, got.reason) == (want.node, want.reason)
        assert got.scores == pytest.approx(want.scores)
        for n in cache.order():  # the unrolled search agrees with the filters, node by node
            assert bool(core.find_feasible(info, [n], 1)[0]) is (core.reasons(info, n) == [])


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
