"""Deletion propagation (Foreground, Background, Orphan) through the registry and the
garbage collector, on a real store: Deployment -> ReplicaSet -> Pods chains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.controllers.gc import GarbageCollector
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from orchestrator.registry import Registry
from orchestrator.registry.generic import FOREGROUND_FINALIZER
from orchestrator.store import SQLiteStore

POD = resolve("pods")
NODE = resolve("nodes")
DEPLOY = resolve("deployments")
RS = resolve("replicasets")
CM = resolve("configmaps")
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    r.ensure_namespaces()
    r.create(NODE, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    return r


def ref(owner: dict[str, Any], block: bool | None = True) -> dict[str, Any]:
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True}
    if block is not None:
        out["blockOwnerDeletion"] = block
    return out


@dataclass
class Chain:
    deployment: dict[str, Any]
    replicaset: dict[str, Any]
    pods: list[dict[str, Any]]


def chain(reg: Registry, *, bound: bool = False, block: bool | None = True, pods: int = 2) -> Chain:
    dep = reg.create(DEPLOY, "default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    rs = reg.create(RS, "default", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "ownerReferences": [ref(dep)]},
        "spec": {"replicas": pods, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}})
    made = []
    for i in range(pods):
        spec: dict[str, Any] = {**TEMPLATE["spec"], **({"nodeName": "n1"} if bound else {})}
        made.append(reg.create(POD, "default", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-1-{i}", "labels": {"app": "web"}, "ownerReferences": [ref(rs, block)]},
            "spec": spec}))
    return Chain(dep, rs, made)


def names(reg: Registry) -> dict[str, list[str]]:
    return {k.resource: [o["metadata"]["name"] for o in reg.items(k, "default")] for k in (DEPLOY, RS, POD)}


def collect(reg: Registry, rounds: int = 10, kubelet: bool = False) -> list[dict[str, list[str]]]:
    """Scan until nothing changes; `kubelet` finishes the deletes of terminating pods (as the
    node agent does) between scans. Returns what existed after each scan."""
    gc = GarbageCollector(reg)
    seen = [names(reg)]
    for _ in range(rounds):
        revision = reg.store.current_revision()
        gc.sync("scan")
        if kubelet:
            for p in reg.items(POD, "default"):
                if p["metadata"].get("deletionTimestamp"):
                    reg.delete(POD, "default", p["metadata"]["name"], grace_period=0)
        seen.append(names(reg))
        if reg.store.current_revision() == revision:  # nothing was written: settled
            return seen
    raise AssertionError(f"the collector never settled: {seen}")


def owners_outlive_dependents(history: list[dict[str, list[str]]]) -> bool:
    """In every state, a Deployment stands while its ReplicaSet does, and that one while pods do."""
    return all((not h["replicasets"] or h["deployments"]) and (not h["pods"] or h["replicasets"]) for h in history)


def test_foreground_marks_the_owner_with_the_finalizer(reg: Registry) -> None:
    c = chain(reg)
    out = reg.delete(DEPLOY, "default", "web", propagation="Foreground")
    meta = out["metadata"]
    assert meta["finalizers"] == [FOREGROUND_FINALIZER]
    assert meta["deletionTimestamp"] == "2026-01-01T00:00:00Z" and meta["deletionGracePeriodSeconds"] == 0
    assert reg.get(DEPLOY, "default", "web")["metadata"]["uid"] == c.deployment["metadata"]["uid"]
    # deleting again changes nothing; an orphan finalizer asked for before gives way
    assert reg.delete(DEPLOY, "default", "web", propagation="Foreground")["metadata"]["finalizers"] == [
        FOREGROUND_FINALIZER]


@pytest.mark.parametrize(("bound", "kubelet"), [(False, False), (True, True)])
def test_foreground_deletes_the_chain_leaves_first(reg: Registry, bound: bool, kubelet: bool) -> None:
    chain(reg, bound=bound)
    reg.delete(DEPLOY, "default", "web", propagation="Foreground")
    history = collect(reg, kubelet=kubelet)
    assert history[-1] == {"deployments": [], "replicasets": [], "pods": []}
    assert owners_outlive_dependents(history), history
    assert any(h["deployments"] and not h["pods"] for h in history)  # the Deployment waited for the pods


def test_the_replicaset_is_deleted_in_the_foreground_too(reg: Registry) -> None:
    chain(reg, bound=True)
    reg.delete(DEPLOY, "default", "web", propagation="Foreground")
    gc = GarbageCollector(reg)
    gc.sync("scan")
    rs = reg.get(RS, "default", "web-1")["metadata"]
    assert rs["deletionTimestamp"] and rs["finalizers"] == [FOREGROUND_FINALIZER]
    gc.sync("scan")
    pods = reg.items(POD, "default")
    assert len(pods) == 2 and all(p["metadata"]["deletionTimestamp"] for p in pods)  # terminating on the node
    assert all(FOREGROUND_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods)  # leaves: Background
    for _ in range(3):
        gc.sync("scan")
    assert reg.try_get(RS, "default", "web-1") is not None  # waits for the terminating pods
    assert reg.try_get(DEPLOY, "default", "web") is not None
    for p in pods:
        reg.delete(POD, "default", p["metadata"]["name"], grace_period=0)  # the agent is done
    collect(reg)
    assert names(reg) == {"deployments": [], "replicasets": [], "pods": []}


@pytest.mark.parametrize("block", [False, None])
def test_only_blocking_dependents_are_waited_for(reg: Registry, block: bool | None) -> None:
    c = chain(reg, bound=True, block=block, pods=1)
    reg.delete(RS, "default", "web-1", propagation="Foreground")
    gc = GarbageCollector(reg)
    for _ in range(3):
        gc.sync("scan")
    assert reg.try_get(RS, "default", "web-1") is None  # gone without waiting for the pod ...
    pod = reg.get(POD, "default", c.pods[0]["metadata"]["name"])
    assert pod["metadata"]["deletionTimestamp"]  # ... which is deleted all the same


def test_a_dependent_with_another_standing_owner_stays(reg: Registry) -> None:
    c = chain(reg, pods=1)
    other = reg.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper"}})
    name = c.pods[0]["metadata"]["name"]
    reg.patch(POD, "default", name, {"metadata": {"ownerReferences": [ref(c.replicaset), {
        "apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": other["metadata"]["uid"]}]}},
        "application/merge-patch+json")
    reg.delete(RS, "default", "web-1", propagation="Foreground")
    collect(reg)
    assert reg.try_get(RS, "default", "web-1") is None
    kept = reg.get(POD, "default", name)["metadata"]
    assert not kept.get("deletionTimestamp")
    assert [r["name"] for r in kept["ownerReferences"]] == ["keeper"]  # no longer blocks the ReplicaSet


def test_an_owner_without_dependents_goes_at_the_next_scan(reg: Registry) -> None:
    reg.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "alone"}})
    reg.delete(CM, "default", "alone", propagation="Foreground")
    assert reg.get(CM, "default", "alone")["metadata"]["finalizers"] == [FOREGROUND_FINALIZER]
    GarbageCollector(reg).sync("scan")
    assert reg.try_get(CM, "default", "alone") is None


def test_other_finalizers_still_hold_the_owner(reg: Registry) -> None:
    reg.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    reg.delete(CM, "default", "held", propagation="Foreground")
    GarbageCollector(reg).sync("scan")
    assert reg.get(CM, "default", "held")["metadata"]["finalizers"] == ["example.com/hold"]
    reg.patch(CM, "default", "held", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert reg.try_get(CM, "default", "held") is None


@pytest.mark.parametrize(("policy", "after_delete", "settled"), [
    ("Background", {"deployments": [], "replicasets": ["web-1"], "pods": ["web-1-0", "web-1-1"]},
     {"deployments": [], "replicasets": [], "pods": []}),
    ("Orphan", {"deployments": [], "replicasets": ["web-1"], "pods": ["web-1-0", "web-1-1"]},
     {"deployments": [], "replicasets": ["web-1"], "pods": ["web-1-0", "web-1-1"]}),
    ("Foreground", {"deployments": ["web"], "replicasets": ["web-1"], "pods": ["web-1-0", "web-1-1"]},
     {"deployments": [], "replicasets": [], "pods": []}),
])
def test_propagation_policies(reg: Registry, policy: str, after_delete: dict[str, list[str]],
                              settled: dict[str, list[str]]) -> None:
    chain(reg)
    reg.delete(DEPLOY, "default", "web", propagation=policy)
    assert names(reg) == after_delete
    assert collect(reg)[-1] == settled
    if policy == "Orphan":
        assert not reg.get(RS, "default", "web-1")["metadata"].get("ownerReferences")


def test_foreground_dry_run_changes_nothing(reg: Registry) -> None:
    chain(reg, pods=1)
    before = reg.get(DEPLOY, "default", "web")
    reg.delete(DEPLOY, "default", "web", propagation="Foreground", dry_run=True)
    assert reg.get(DEPLOY, "default", "web") == before


def test_foreground_on_an_object_already_terminating(reg: Registry) -> None:
    c = chain(reg, bound=True, pods=1)
    name = c.pods[0]["metadata"]["name"]
    reg.delete(POD, "default", name)  # graceful, on the node
    out = reg.delete(POD, "default", name, propagation="Foreground")
    assert out["metadata"]["finalizers"] == [FOREGROUND_FINALIZER]
    GarbageCollector(reg).sync("scan")  # no dependents: the finalizer goes, the agent finishes
    assert not reg.get(POD, "default", name)["metadata"].get("finalizers")
    reg.delete(POD, "default", name, grace_period=0)
    assert reg.try_get(POD, "default", name) is None


def test_the_registry_refuses_a_stale_finalizer_removal(reg: Registry) -> None:
    reg.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    marked = reg.delete(CM, "default", "x", propagation="Foreground")
    reg.patch(CM, "default", "x", {"metadata": {"labels": {"a": "b"}}}, "application/merge-patch+json")
    with pytest.raises(ApiError) as e:
        reg.patch(CM, "default", "x", {"metadata": {"finalizers": None, "resourceVersion": marked["metadata"][
            "resourceVersion"]}}, "application/merge-patch+json")
    assert e.value.code == 409


def test_the_agents_final_delete_before_the_finalizer_goes(reg: Registry) -> None:
    c = chain(reg, bound=True, pods=1)
    name = c.pods[0]["metadata"]["name"]
    marked = reg.delete(POD, "default", name, propagation="Foreground")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30  # terminating on the node
    out = reg.delete(POD, "default", name, grace_period=0)  # the agent stopped the containers: done
    assert out["metadata"]["deletionGracePeriodSeconds"] == 0 and out["metadata"]["finalizers"]
    GarbageCollector(reg).sync("scan")  # no dependents: the finalizer goes, and so does the pod
    assert reg.try_get(POD, "default", name) is None


def test_namespaces_are_emptied_by_their_controller_not_the_finalizer(reg: Registry) -> None:
    ns = resolve("namespaces")
    reg.create(ns, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    out = reg.delete(ns, None, "team", propagation="Foreground")
    assert out["metadata"]["deletionTimestamp"] and FOREGROUND_FINALIZER not in (out["metadata"].get("finalizers")
                                                                                  or [])
