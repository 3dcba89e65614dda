"""Table-driven tests of the pure scheduler (filters, scores, failure messages)."""

from __future__ import annotations

import pytest

from orchestrator.scheduler.core import pod_requests, schedule, toleration_tolerates


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", ready: bool = True,
         unschedulable: bool = False, labels: dict | None = None, taints: list | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(name: str, cpu: str | None = None, memory: str | None = None, node_name: str | None = None,
        owner: str | None = None, phase: str = "Pending", **spec_extra) -> dict:
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    meta: dict = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    spec: dict = {"containers": [{"name": "c", "image": "x", "resources": {"requests": requests}}], **spec_extra}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def test_requests_init_containers_max_vs_sum() -> None:
    p = pod("a", cpu="500m", memory="100Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "250m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}]
    req = pod_requests(p)
    assert req.cpu == pytest.approx(1.0)  # max(0.75 app, 1 init)
    assert req.memory == 100 * 1024 * 1024


CASES = [
    # (id, pod, nodes, existing pods, expected node, expected reason)
    ("fits", pod("p", cpu="1"), [node("n1")], [], "n1", ""),
    ("insufficient-cpu", pod("p", cpu="3"), [node("n1")], [pod("o", cpu="2", node_name="n1", phase="Running")],
     None, "0/1 nodes are available: 1 Insufficient cpu."),
    ("terminated-pods-free-resources", pod("p", cpu="3"), [node("n1")],
     [pod("o", cpu="2", node_name="n1", phase="Succeeded")], "n1", ""),
    ("insufficient-both", pod("p", cpu="5", memory="9Gi"), [node("n1"), node("n2")], [], None,
     "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory."),
    ("too-many-pods", pod("p"), [node("n1", pods="1")], [pod("o", node_name="n1", phase="Running")], None,
     "0/1 nodes are available: 1 Too many pods."),
    ("unschedulable", pod("p"), [node("n1", unschedulable=True)], [], None,
     "0/1 nodes are available: 1 node(s) were unschedulable."),
    ("not-ready", pod("p"), [node("n1", ready=False)], [], None,
     "0/1 nodes are available: 1 node(s) were not ready."),
    ("node-selector", pod("p", nodeSelector={"disk": "ssd"}),
     [node("n1", labels={"disk": "hdd"}), node("n2", labels={"disk": "ssd"})], [], "n2", ""),
    ("node-selector-none", pod("p", nodeSelector={"disk": "ssd"}), [node("n1")], [], None,
     "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
    ("taint-untolerated", pod("p"), [node("n1", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])],
     [], None, "0/1 nodes are available: 1 node(s) had untolerated taint {gpu: yes}."),
    ("taint-prefer-ignored", pod("p"),
     [node("n1", taints=[{"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"}])], [], "n1", ""),
    ("taint-tolerated-equal",
     pod("p", tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]),
     [node("n1", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])], [], "n1", ""),
    ("taint-tolerate-all", pod("p", tolerations=[{"operator": "Exists"}]),
     [node("n1", taints=[{"key": "a", "value": "b", "effect": "NoExecute"}])], [], "n1", ""),
    ("unschedulable-tolerated",
     pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
     [node("n1", unschedulable=True)], [], "n1", ""),
    ("aggregation", pod("p", cpu="3"),
     [node("a", unschedulable=True), node("b", cpu="2"), node("c", cpu="1"), node("d", ready=False)], [], None,
     "0/4 nodes are available: 2 Insufficient cpu, 1 node(s) were not ready, 1 node(s) were unschedulable."),
    ("least-allocated", pod("p", cpu="1"), [node("a"), node("b")],
     [pod("o", cpu="2", node_name="a", phase="Running")], "b", ""),
    ("no-nodes", pod("p"), [], [], None, "no nodes available to schedule pods"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_schedule(case: tuple) -> None:
    _, p, nodes, pods, want_node, want_reason = case
    result = schedule(p, nodes, pods)
    assert result.node == want_node
    assert result.reason == want_reason


@pytest.mark.parametrize(
    "toleration,taint,expected",
    [
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
        ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
        ({"operator": "Exists"}, {"key": "anything", "effect": "NoSchedule"}, True),
        ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_toleration_matching(toleration: dict, taint: dict, expected: bool) -> None:
    assert toleration_tolerates(toleration, taint) is expected


@pytest.mark.parametrize("with_requests", [True, False])
def test_spread_six_over_three(with_requests: bool) -> None:
    nodes = [node("n1"), node("n2"), node("n3")]
    placed: list[dict] = []
    for i in range(6):
        p = pod(f"web-{i}", cpu="100m" if with_requests else None, owner="rs-1")
        result = schedule(p, nodes, placed)
        assert result.node is not None
        p["spec"]["nodeName"] = result.node
        p["status"]["phase"] = "Running"
        placed.append(p)
    counts = {n: sum(1 for p in placed if p["spec"]["nodeName"] == n) for n in ("n1", "n2", "n3")}
    assert counts == {"n1": 2, "n2": 2, "n3": 2}


def test_spread_beats_load_of_other_workloads() -> None:
    nodes = [node("n1"), node("n2")]
    # n2 carries another workload; our two replicas should still not double up on n1
    pods = [pod("other", cpu="500m", node_name="n2", phase="Running", owner="rs-x")]
    first = pod("a", cpu="100m", owner="rs-1")
    first["spec"]["nodeName"] = schedule(first, nodes, pods).node
    pods.append(first)
    second = pod("b", cpu="100m", owner="rs-1")
    assert {first["spec"]["nodeName"], schedule(second, nodes, pods).node} == {"n1", "n2"}


def test_host_port_conflict() -> None:
    def with_port(p: dict) -> dict:
        p["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
        return p

    existing = with_port(pod("o", node_name="n1", phase="Running"))
    result = schedule(with_port(pod("p")), [node("n1")], [existing])
    assert result.reason == (
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    )


def test_required_node_affinity() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}
    nodes = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"})]
    assert schedule(pod("p", affinity=affinity), nodes, []).node == "n2"


def test_node_infos_from_scratch() -> None:
    from orchestrator.scheduler.nodeinfo import node_infos

    me = pod("me", cpu="1", node_name="n1", phase="Running")
    terminating = pod("t", cpu="500m", memory="1Gi", node_name="n1", phase="Running", owner="rs-1")
    terminating["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    pods = [
        me,  # the pod being placed is left out
        terminating,  # holds resources, does not count for spreading
        pod("a", cpu="250m", node_name="n1", phase="Running", owner="rs-1"),
        pod("done", cpu="2", node_name="n1", phase="Succeeded"),  # frees its resources
        pod("lost", cpu="2", node_name="gone", phase="Running"),  # a node not in the list
    ]
    infos = node_infos([node("n1"), node("n2")], pods, exclude=me)
    n1 = infos["n1"]
    assert sorted(infos) == ["n1", "n2"]
    assert (n1.requested_cpu, n1.requested_memory, n1.pod_count) == (750, 1024 ** 3, 2)
    assert n1.owners == {("default", "rs-1"): 1}
    assert (n1.free_cpu, infos["n2"].pod_count) == (3250, 0)
