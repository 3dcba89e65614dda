"""The informer (list+watch into an indexed cache, relist after 410 Gone) and the
workload controllers reading from it: no namespace-wide pod lists, shared objects left
untouched."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.controllers.workloads import DeploymentController, ReplicaSetController
from orchestrator.objects.kinds import Kind, by_kind
from orchestrator.reconcile.events import EventRecorder
from orchestrator.reconcile.informer import BY_NAMESPACE, BY_OWNER, Informer, Informers
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

CM = by_kind("v1", "ConfigMap")
POD = by_kind("v1", "Pod")
RS = by_kind("apps/v1", "ReplicaSet")
DEPLOY = by_kind("apps/v1", "Deployment")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")))
    r.ensure_namespaces()
    return r


def cm(name: str, ns: str = "default", owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": owner}]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


async def until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_list_then_watch_with_indexes(reg: Registry) -> None:
    reg.create(CM, "default", cm("a", owner="u1"))
    reg.create(CM, "kube-system", cm("b", "kube-system", owner="u1"))
    informer = Informer(reg, CM)
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda t, o: seen.append((t, o["metadata"]["name"])))

    async def main() -> None:
        task = asyncio.create_task(informer.run())
        await until(informer.synced.is_set)
        assert sorted(seen) == [("ADDED", "a"), ("ADDED", "b")]
        reg.create(CM, "default", cm("c", owner="u2"))
        body = reg.get(CM, "default", "a")
        body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u2"}]
        reg.update(CM, "default", "a", body)
        reg.delete(CM, "kube-system", "b")
        await until(lambda: len(seen) == 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert seen[2:] == [("ADDED", "c"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert names(informer.by_index(BY_OWNER, "u2")) == ["a", "c"]
    assert informer.by_index(BY_OWNER, "u1") == []
    assert names(informer.by_index(BY_NAMESPACE, "default")) == ["a", "c"]
    assert names(informer.list("kube-system")) == []
    got = informer.get("default", "a")
    assert got is not None and got["metadata"]["resourceVersion"] == reg.get(CM, "default", "a")["metadata"][
        "resourceVersion"]
    assert len(informer) == 2


def test_relist_after_410_announces_what_changed_meanwhile(reg: Registry) -> None:
    for n in ("keep", "gone", "changed"):
        reg.create(CM, "default", cm(n))
    informer = Informer(reg, CM)
    seen: list[tuple[str, str]] = []
    informer.add_handler(lambda t, o: seen.append((t, o["metadata"]["name"])))

    async def run_until(cond: Any) -> None:
        task = asyncio.create_task(informer.run())
        await until(cond)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_until(informer.synced.is_set))
    assert informer.relists == 1 and len(seen) == 3
    seen.clear()
    # while nobody watches: changes, then the history they are in is compacted away
    reg.delete(CM, "default", "gone")
    body = reg.get(CM, "default", "changed")
    body["data"] = {"k": "new"}
    reg.update(CM, "default", "changed", body)
    reg.create(CM, "default", cm("new"))
    reg.store.compact(reg.store.current_revision())
    resumed_from = informer.resource_version
    asyncio.run(run_until(lambda: informer.relists == 2 and len(seen) == 3))
    assert resumed_from is not None and int(resumed_from) < reg.store.compact_revision
    assert sorted(seen) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "changed")]
    assert names(informer.list()) == ["changed", "keep", "new"]
    changed = informer.get("default", "changed")
    assert changed is not None and changed["data"] == {"k": "new"}


def test_noted_writes_win_over_older_events(reg: Registry) -> None:
    informer = Informer(reg, CM)
    first = reg.create(CM, "default", cm("a"))
    body = copy.deepcopy(first)
    body["data"] = {"k": "2"}
    second = reg.update(CM, "default", "a", body)
    informer.note(second)
    informer.apply("ADDED", first)  # the watch catching up
    got = informer.get("default", "a")
    assert got is not None and got["data"] == {"k": "2"}
    informer.note_deleted(reg.delete(CM, "default", "a"))
    informer.apply("MODIFIED", second)  # an older event must not bring it back
    assert informer.get("default", "a") is None
    informer.apply("DELETED", second)
    assert informer.get("default", "a") is None


def test_one_informer_per_kind(reg: Registry) -> None:
    informers = Informers(reg)
    assert informers.get(POD) is informers.get(by_kind("v1", "Pod"))
    assert POD in informers and RS not in informers
    assert len(informers.all()) == 1


# -- the workload controllers on informers ----------------------------------------------------


def deployment(replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }


class CountingRegistry(Registry):
    """Counts the pod and ReplicaSet lists (whole namespace or cluster)."""

    def __init__(self, store: SQLiteStore) -> None:
        super().__init__(store)
        self.lists: list[str] = []

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> dict[str, Any]:
        if kind in (POD, RS):
            self.lists.append(kind.resource)
        return super().list(kind, namespace, label_selector, field_selector)


def primed(reg: Registry, *kinds: Kind) -> Informers:
    informers = Informers(reg)
    for kind in kinds:
        informers.get(kind).relist()
    return informers


def refresh(informers: Informers) -> None:
    for informer in informers.all():
        informer.relist()


def snapshot(informers: Informers) -> list[tuple[dict[str, Any], str]]:
    """Every object the caches hold now, with its content."""
    return [(o, json.dumps(o, sort_keys=True)) for i in informers.all() for o in i.list()]


def test_workload_controllers_read_pods_from_the_informer_and_leave_it_untouched(tmp_path: Path) -> None:
    reg = CountingRegistry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    for i in range(20):  # pods of someone else in the same namespace
        reg.create(POD, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"other-{i}"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    reg.create(DEPLOY, "default", deployment(3))
    recorder = EventRecorder(reg, "test")
    dc, rc = DeploymentController(reg, recorder), ReplicaSetController(reg, recorder)
    informers = primed(reg, DEPLOY, RS, POD)
    dc.use_informers(informers)
    rc.use_informers(informers)
    reg.lists.clear()
    dc.sync("default/web")  # creates the ReplicaSet, noted in the cache
    (rs,) = informers.get(RS).list()
    key = f"default/{rs['metadata']['name']}"
    rc.sync(key)  # creates 3 pods, noted in the cache
    rc.sync(key)  # sees its own creations before any watch event: creates nothing more
    assert len(informers.get(POD).by_index(BY_OWNER, rs["metadata"]["uid"])) == 3
    for _ in range(3):  # a few passes over what the store holds, the caches as a watch would fill them
        refresh(informers)
        reg.lists.clear()
        before = snapshot(informers)
        dc.sync("default/web")
        rc.sync(key)
        assert reg.lists == []  # no list of pods or ReplicaSets: the caches answer
        # objects handed out are shared: a write replaces a cache entry, never edits it
        assert [(o, text) for o, text in before if json.dumps(o, sort_keys=True) != text] == []
    assert len(reg.items(RS, "default")) == 1
    assert len([p for p in reg.items(POD, "default") if p["metadata"]["name"].startswith("web-")]) == 3
    dep = reg.get(DEPLOY, "default", "web")
    assert dep["status"]["replicas"] == 3
