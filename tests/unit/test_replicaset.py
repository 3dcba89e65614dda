"""Table-driven tests of the pure ReplicaSet planning logic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.controllers.replicaset import plan_replicaset, pod_from_template

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def rs(replicas: int = 3, min_ready: int = 0, generation: int = 4) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "prod", "uid": "rs-uid", "generation": generation},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "web:1"}]},
            },
        },
    }


def pod(name: str, *, phase: str = "Running", ready: bool = True, node: str | None = "n1", restarts: int = 0,
        created: str = "2026-01-01T10:00:00Z", ready_at: str = "2026-01-01T11:00:00Z", owner: str = "rs-uid",
        terminating: bool = False, labels: dict | None = None) -> dict:
    meta: dict = {
        "name": name,
        "namespace": "prod",
        "uid": f"uid-{name}",
        "creationTimestamp": created,
        "labels": {"app": "web", "tier": "fe"} if labels is None else labels,
        "ownerReferences": [{"kind": "ReplicaSet", "uid": owner, "controller": True}],
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    spec = {"nodeName": node} if node else {}
    status = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}],
        "containerStatuses": [{"name": "c", "restartCount": restarts}],
    }
    return {"metadata": meta, "spec": spec, "status": status}


@pytest.mark.parametrize(
    "replicas,pods,create,deleted",
    [
        (3, [], 3, 0),
        (3, [pod("a")], 2, 0),
        (1, [pod("a"), pod("b"), pod("c")], 0, 2),
        (2, [pod("a"), pod("b")], 0, 0),
        (2, [pod("a"), pod("b", terminating=True)], 1, 0),
        (2, [pod("a"), pod("b", phase="Failed"), pod("c", phase="Succeeded")], 1, 0),
        (2, [pod("a"), pod("x", owner="someone-else")], 1, 0),
        (0, [pod("a"), pod("b", terminating=True)], 0, 1),
    ],
)
def test_scale(replicas: int, pods: list, create: int, deleted: int) -> None:
    plan = plan_replicaset(rs(replicas), pods, NOW)
    assert plan.create == create
    assert len(plan.delete) == deleted
    assert all(not p["metadata"].get("deletionTimestamp") for p in plan.delete)


def test_burst_limit() -> None:
    assert plan_replicaset(rs(1000), [], NOW, max_burst=500).create == 500
    many = [pod(f"p{i}") for i in range(20)]
    assert len(plan_replicaset(rs(0), many, NOW, max_burst=5).delete) == 5


@pytest.mark.parametrize(
    "first,second",
    [
        (pod("a", node=None, phase="Pending", ready=False), pod("b")),  # unscheduled first
        (pod("a", phase="Pending", ready=False), pod("b", phase="Unknown", ready=False)),
        (pod("a", phase="Unknown", ready=False), pod("b", phase="Running", ready=False)),
        (pod("a", ready=False), pod("b")),  # not ready first
        (pod("a", ready_at="2026-01-01T11:30:00Z"), pod("b", ready_at="2026-01-01T11:00:00Z")),  # ready shorter
        (pod("a", restarts=5), pod("b", restarts=1)),  # more restarts first
        (pod("a", created="2026-01-01T10:05:00Z"), pod("b", created="2026-01-01T10:00:00Z")),  # newer first
    ],
)
def test_deletion_order(first: dict, second: dict) -> None:
    for pods in ([first, second], [second, first]):
        plan = plan_replicaset(rs(1), pods, NOW)
        assert [p["metadata"]["name"] for p in plan.delete] == [first["metadata"]["name"]]


def test_deletion_prefers_doubled_up_nodes() -> None:
    pods = [pod("a", node="n1"), pod("b", node="n1"), pod("c", node="n2")]
    plan = plan_replicaset(rs(2), pods, NOW)
    assert plan.delete[0]["spec"]["nodeName"] == "n1"


def test_status_counts() -> None:
    pods = [
        pod("ready-old"),
        pod("ready-new", ready_at="2026-01-01T11:59:50Z"),  # ready 10s, minReadySeconds 30
        pod("not-ready", ready=False),
        pod("mislabeled", labels={"app": "web"}),
        pod("gone", terminating=True),
        pod("done", phase="Succeeded", ready=False),
    ]
    plan = plan_replicaset(rs(4, min_ready=30, generation=7), pods, NOW)
    assert plan.status == {
        "replicas": 4,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 2,
        "observedGeneration": 7,
    }
    assert plan.create == 0 and plan.delete == []


def test_terminating_replicaset_does_nothing() -> None:
    r = rs(3)
    r["metadata"]["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    plan = plan_replicaset(r, [], NOW)
    assert plan.create == 0 and plan.delete == []


def test_pod_from_template() -> None:
    r = rs()
    p = pod_from_template(r)
    assert p["apiVersion"] == "v1" and p["kind"] == "Pod"
    assert p["metadata"]["generateName"] == "web-abc-"
    assert p["metadata"]["namespace"] == "prod"
    assert p["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert p["metadata"]["annotations"] == {"a": "b"}
    assert p["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "rs-uid",
         "controller": True, "blockOwnerDeletion": True}
    ]
    p["spec"]["containers"][0]["image"] = "changed"
    assert r["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"


def test_relabelled_pod_is_released_and_replaced() -> None:
    pods = [pod("a"), pod("b"), pod("debug", labels={"app": "debugging"})]
    plan = plan_replicaset(rs(3), pods, NOW)
    assert [p["metadata"]["name"] for p in plan.release] == ["debug"]
    assert plan.create == 1 and plan.status["replicas"] == 2


def unschedulable(name: str) -> dict:
    p = pod(name, phase="Pending", ready=False, node=None)
    p["status"]["conditions"].append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    return p


def leaving(name: str, **kw: object) -> dict:
    p = pod(name, node="drained", **kw)  # type: ignore[arg-type]
    p["metadata"]["annotations"] = {"dockyard.io/evacuate": "2026-01-01T12:00:00Z"}
    return p


@pytest.mark.parametrize(
    "case,replicas,pods,create,deleted",
    [
        ("evacuation starts: a replacement first, the leaving pod stays", 3,
         [pod("a"), pod("b"), leaving("c")], 1, []),
        ("the replacement exists but is not Ready yet: still nothing deleted", 3,
         [pod("a"), pod("b"), pod("d", ready=False), leaving("c")], 0, []),
        ("the replacement is Ready: the leaving pod goes", 3,
         [pod("a"), pod("b"), pod("d"), leaving("c")], 0, ["c"]),
        ("an unready leaving pod goes at once", 3,
         [pod("a"), pod("b"), leaving("c", ready=False)], 1, ["c"]),
        ("two leaving, one replacement Ready: one goes", 3,
         [pod("a"), pod("d"), pod("e", ready=False), leaving("b"), leaving("c")], 0, ["b"]),
        ("a set below its Ready count keeps its leaving pods", 3,
         [pod("a", ready=False), pod("b"), pod("d"), leaving("c")], 0, []),
        ("the replacement cannot be placed anywhere: the leaving pod goes all the same", 3,
         [pod("a"), pod("b"), unschedulable("d"), leaving("c")], 0, ["c"]),
        ("scaled down meanwhile: the extra staying pod and the leaving one go", 1,
         [pod("a"), pod("b"), leaving("c")], 0, ["a", "c"]),
    ],
)
def test_evacuation_surges_before_it_deletes(case: str, replicas: int, pods: list, create: int,
                                             deleted: list[str]) -> None:
    plan = plan_replicaset(rs(replicas), pods, NOW)
    assert (plan.create, sorted(p["metadata"]["name"] for p in plan.delete)) == (create, deleted), case
    assert plan.status["replicas"] == len([p for p in pods if "terminating" not in p["metadata"]])
