"""Table-driven tests of the pure ReplicaSet planning logic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.controllers.replicaset import (
    DEFAULT_MAX_BURST,
    plan_replicaset,
    pod_from_template,
    slow_start_batches,
    with_replica_failure,
)
from orchestrator.controllers.workloads import ReplicaSetController
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import by_kind
from orchestrator.reconcile.events import EventRecorder
from orchestrator.registry import Registry
from orchestrator.registry.podadmission import PendingPodLimit
from orchestrator.store import SQLiteStore

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


# -- slow-start creation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "n,burst,batches",
    [
        (0, 500, []),
        (-3, 500, []),
        (1, 500, [1]),
        (2, 500, [1, 1]),
        (3, 500, [1, 2]),
        (7, 500, [1, 2, 4]),
        (10, 500, [1, 2, 4, 3]),
        (500, 500, [1, 2, 4, 8, 16, 32, 64, 128, 245]),
        (2147483647, 500, [1, 2, 4, 8, 16, 32, 64, 128, 245]),  # capped by the burst
        (2147483647, 20, [1, 2, 4, 8, 5]),
        (100, 0, []),
    ],
)
def test_slow_start_batches(n: int, burst: int, batches: list[int]) -> None:
    assert slow_start_batches(n, burst) == batches
    assert sum(batches) == max(0, min(n, burst))


def test_slow_start_batches_default_burst() -> None:
    assert DEFAULT_MAX_BURST == 500
    assert sum(slow_start_batches(10**12)) == 500
    assert slow_start_batches(40, initial=4) == [4, 8, 16, 12]


def test_plan_for_the_largest_valid_replicas_is_one_burst() -> None:
    plan = plan_replicaset(rs(2147483647), [pod(f"p{i}") for i in range(3)], NOW)
    assert plan.create == 500 and plan.delete == []


def test_with_replica_failure_sets_keeps_and_clears() -> None:
    base = {"replicas": 1, "conditions": [{"type": "Other", "status": "True"}]}
    failed = with_replica_failure(base, ("FailedCreate", "quota"), NOW)
    assert base == {"replicas": 1, "conditions": [{"type": "Other", "status": "True"}]}  # untouched
    cond = failed["conditions"][-1]
    assert cond == {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
                    "lastTransitionTime": "2026-01-01T12:00:00Z"}
    later = datetime(2026, 1, 1, 13, 0, 0, tzinfo=UTC)
    again = with_replica_failure(failed, ("FailedCreate", "other error"), later)
    assert again["conditions"][-1]["lastTransitionTime"] == "2026-01-01T12:00:00Z"  # still failing since then
    assert again["conditions"][-1]["message"] == "other error"
    cleared = with_replica_failure(again, None, later)
    assert cleared == base
    assert "conditions" not in with_replica_failure({"replicas": 0}, None, NOW)


POD_KIND = by_kind("v1", "Pod")
RS_KIND = by_kind("apps/v1", "ReplicaSet")
EVENT = by_kind("v1", "Event")


class Refuser:
    """A Pod create hook that admits `allow` pods, then refuses like an admission plugin."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.calls = 0

    def __call__(self, obj: dict) -> None:
        self.calls += 1
        if self.calls > self.allow:
            raise ApiError(403, "Forbidden", 'pods "web-abc-" is forbidden: no room')


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    store = SQLiteStore(str(tmp_path / "s.db"))
    r = Registry(store, clock=lambda: NOW)
    r.ensure_namespaces()
    yield r
    store.close()


def stored_rs(reg: Registry, replicas: int) -> dict:
    obj = rs(replicas)
    obj["metadata"] = {"name": "web-abc", "namespace": "default"}
    return reg.create(RS_KIND, "default", obj)


def events(reg: Registry, reason: str) -> list[dict]:
    return [e for e in reg.items(EVENT, "default") if e["reason"] == reason]


def failure_condition(reg: Registry) -> dict | None:
    obj = reg.get(RS_KIND, "default", "web-abc")
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "ReplicaFailure"),
                None)


def test_controller_creates_in_batches_and_stops_at_the_first_failure(reg: Registry) -> None:
    refuser = Refuser(allow=11)  # batches 1, 2, 4 pass; the 5th pod of the batch of 8 fails
    reg.create_hooks["Pod"] = [refuser]
    stored_rs(reg, 2147483647)
    ctl = ReplicaSetController(reg, EventRecorder(reg, "test"))
    ctl.sync("default/web-abc")  # the pass ends normally: the next one retries (resync, pod changes)
    assert refuser.calls == 12  # nothing attempted after the first refusal
    assert len(reg.items(POD_KIND, "default")) == 11
    assert len(events(reg, "SuccessfulCreate")) == 11
    [failed] = events(reg, "FailedCreate")
    assert failed["type"] == "Warning"
    assert failed["message"] == 'Error creating: pods "web-abc-" is forbidden: no room'
    cond = failure_condition(reg)
    assert cond is not None and cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert cond["message"] == 'pods "web-abc-" is forbidden: no room'

    # the next pass starts again at a batch of one: a refusal costs one attempt
    ctl.sync("default/web-abc")
    assert refuser.calls == 13
    [failed] = events(reg, "FailedCreate")  # folded into one event
    assert failed["count"] == 2

    # room again: creations succeed (1, 2, 4, … up to the burst) and the condition goes
    refuser.allow = 10**9
    ctl.sync("default/web-abc")
    assert len(reg.items(POD_KIND, "default")) == 11 + DEFAULT_MAX_BURST
    assert failure_condition(reg) is None


def test_controller_with_the_pending_pods_limit(reg: Registry) -> None:
    limit = PendingPodLimit(reg.store, 40)
    reg.create_hooks["Pod"] = [limit]
    stored_rs(reg, 2147483647)
    ctl = ReplicaSetController(reg, EventRecorder(reg, "test"), max_burst=25)
    ctl.sync("default/web-abc")  # 1 + 2 + 4 + 8 + 10: the burst, no failure
    assert len(reg.items(POD_KIND, "default")) == 25
    ctl.sync("default/web-abc")  # 1 + 2 + 4 + 8 = 15 reach the limit, the 16th is refused
    assert len(reg.items(POD_KIND, "default")) == 40
    [failed] = events(reg, "FailedCreate")
    assert failed["message"].startswith('Error creating: pods "web-abc-" is forbidden: ')
    assert "limit of 40 pending pods" in failed["message"]
    cond = failure_condition(reg)
    assert cond is not None and cond["reason"] == "FailedCreate" and "limit of 40" in cond["message"]
    limit.close()


class DeleteRefusingRegistry(Registry):
    def delete(self, kind, namespace, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kind is POD_KIND:
            raise ApiError(500, "InternalError", "the store is read-only")
        return super().delete(kind, namespace, name, *args, **kwargs)


def test_controller_records_failed_deletions(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "d.db"))
    reg = Registry(store, clock=lambda: NOW)
    reg.ensure_namespaces()
    stored_rs(reg, 3)
    ReplicaSetController(reg, EventRecorder(reg, "test")).sync("default/web-abc")
    obj = reg.get(RS_KIND, "default", "web-abc")
    obj["spec"]["replicas"] = 1
    reg.update(RS_KIND, "default", "web-abc", obj)
    refusing = DeleteRefusingRegistry(store, clock=lambda: NOW)
    ReplicaSetController(refusing, EventRecorder(refusing, "test")).sync("default/web-abc")
    assert len(reg.items(POD_KIND, "default")) == 3
    [failed] = events(reg, "FailedDelete")
    assert failed["message"] == "Error deleting: the store is read-only"
    cond = failure_condition(reg)
    assert cond is not None and cond["reason"] == "FailedDelete"
    ReplicaSetController(reg, EventRecorder(reg, "test")).sync("default/web-abc")
    assert len(reg.items(POD_KIND, "default")) == 1
    assert failure_condition(reg) is None
    store.close()


def test_controller_caps_deletions_per_pass(reg: Registry) -> None:
    stored_rs(reg, 30)
    ctl = ReplicaSetController(reg, EventRecorder(reg, "test"), max_burst=12)
    for _ in range(3):
        ctl.sync("default/web-abc")
    assert len(reg.items(POD_KIND, "default")) == 30
    obj = reg.get(RS_KIND, "default", "web-abc")
    obj["spec"]["replicas"] = 0
    reg.update(RS_KIND, "default", "web-abc", obj)
    ctl.sync("default/web-abc")
    assert len(reg.items(POD_KIND, "default")) == 18
    ctl.sync("default/web-abc")
    ctl.sync("default/web-abc")
    assert reg.items(POD_KIND, "default") == []
