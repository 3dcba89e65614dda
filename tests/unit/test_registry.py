"""Registry semantics on a real SQLite store: metadata, concurrency, subresources, deletion, watch."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

POD = resolve("pods")
NODE = resolve("nodes")
DEPLOY = resolve("deployments")
CM = resolve("configmaps")
NS = resolve("namespaces")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    r.ensure_namespaces()
    return r


def pod(name: str = "p", node: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def deployment(name: str = "web", replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}},
        },
    }


def test_create_sets_metadata_and_defaults(reg: Registry) -> None:
    out = reg.create(POD, "default", pod())
    m = out["metadata"]
    assert m["namespace"] == "default" and m["uid"] and m["generation"] == 1
    assert m["creationTimestamp"] == "2026-01-01T00:00:00Z"
    assert int(m["resourceVersion"]) > 0
    assert out["spec"]["restartPolicy"] == "Always"
    assert out["status"]["phase"] == "Pending"


def test_create_twice_is_already_exists(reg: Registry) -> None:
    reg.create(POD, "default", pod())
    with pytest.raises(ApiError) as e:
        reg.create(POD, "default", pod())
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")


def test_create_in_missing_namespace_is_not_found(reg: Registry) -> None:
    with pytest.raises(ApiError) as e:
        reg.create(POD, "nope", pod())
    assert e.value.code == 404 and "nope" in e.value.message


def test_invalid_object_is_422_naming_the_field(reg: Registry) -> None:
    bad = pod()
    del bad["spec"]["containers"][0]["image"]
    with pytest.raises(ApiError) as e:
        reg.create(POD, "default", bad)
    assert e.value.code == 422
    assert any(c["field"] == "spec.containers[0].image" for c in e.value.details["causes"])
    assert reg.try_get(POD, "default", "p") is None


def test_generate_name(reg: Registry) -> None:
    p = pod()
    p["metadata"] = {"generateName": "web-"}
    out = reg.create(POD, "default", p)
    assert out["metadata"]["name"].startswith("web-") and len(out["metadata"]["name"]) == 9


def test_stale_resource_version_conflicts(reg: Registry) -> None:
    d = reg.create(DEPLOY, "default", deployment())
    first = copy.deepcopy(d)
    d["spec"]["replicas"] = 3
    reg.update(DEPLOY, "default", "web", d)
    first["spec"]["replicas"] = 5
    with pytest.raises(ApiError) as e:
        reg.update(DEPLOY, "default", "web", first)
    assert (e.value.code, e.value.reason) == (409, "Conflict")
    assert reg.get(DEPLOY, "default", "web")["spec"]["replicas"] == 3


def test_generation_bumps_only_on_spec_change(reg: Registry) -> None:
    d = reg.create(DEPLOY, "default", deployment())
    d["metadata"]["labels"] = {"x": "y"}
    d = reg.update(DEPLOY, "default", "web", d)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 4
    d = reg.update(DEPLOY, "default", "web", d)
    assert d["metadata"]["generation"] == 2


def test_status_only_through_subresource(reg: Registry) -> None:
    d = reg.create(DEPLOY, "default", deployment())
    d["status"] = {"replicas": 9}
    d = reg.update(DEPLOY, "default", "web", d)
    assert d.get("status", {}).get("replicas") != 9
    d["status"] = {"replicas": 2}
    d["spec"]["replicas"] = 7
    d = reg.update(DEPLOY, "default", "web", d, "status")
    assert d["status"]["replicas"] == 2 and d["spec"]["replicas"] == 2


def test_merge_patch_and_json_patch(reg: Registry) -> None:
    reg.create(DEPLOY, "default", deployment())
    out = reg.patch(DEPLOY, "default", "web", {"spec": {"replicas": 5}}, "application/merge-patch+json")
    assert out["spec"]["replicas"] == 5
    out = reg.patch(DEPLOY, "default", "web", [{"op": "replace", "path": "/spec/replicas", "value": 1}],
                    "application/json-patch+json")
    assert out["spec"]["replicas"] == 1
    with pytest.raises(ApiError) as e:
        reg.patch(DEPLOY, "default", "web", {"spec": {"replicas": -1}}, "application/merge-patch+json")
    assert e.value.code == 422
    assert reg.get(DEPLOY, "default", "web")["spec"]["replicas"] == 1


def test_scale_subresource(reg: Registry) -> None:
    reg.create(DEPLOY, "default", deployment())
    s = reg.get_scale(DEPLOY, "default", "web")
    assert s["kind"] == "Scale" and s["spec"]["replicas"] == 2 and s["status"]["selector"] == "app=web"
    reg.update_scale(DEPLOY, "default", "web", {"spec": {"replicas": 6}})
    assert reg.get(DEPLOY, "default", "web")["spec"]["replicas"] == 6


def test_label_and_field_selectors(reg: Registry) -> None:
    a = pod("a", node="n1")
    a["metadata"]["labels"] = {"app": "x"}
    reg.create(POD, "default", a)
    reg.create(POD, "default", pod("b", node="n2"))
    names = lambda lst: sorted(o["metadata"]["name"] for o in lst["items"])  # noqa: E731
    assert names(reg.list(POD, "default", label_selector="app=x")) == ["a"]
    assert names(reg.list(POD, None, field_selector="spec.nodeName=n2")) == ["b"]
    with pytest.raises(ApiError) as e:
        reg.list(POD, None, field_selector="spec.bogus=1")
    assert e.value.code == 400


def test_pod_on_live_node_is_deleted_gracefully(reg: Registry) -> None:
    reg.create(NODE, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    reg.create(POD, "default", pod("a", node="n1"))
    out = reg.delete(POD, "default", "a")
    assert out["metadata"]["deletionTimestamp"] and out["metadata"]["deletionGracePeriodSeconds"] == 30
    assert reg.try_get(POD, "default", "a") is not None
    reg.delete(POD, "default", "a", grace_period=0)
    assert reg.try_get(POD, "default", "a") is None


def test_unbound_pod_is_deleted_at_once(reg: Registry) -> None:
    reg.create(POD, "default", pod("a"))
    reg.delete(POD, "default", "a")
    assert reg.try_get(POD, "default", "a") is None


def test_finalizers_hold_deletion(reg: Registry) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["x/y"]}, "data": {}}
    reg.create(CM, "default", cm)
    reg.delete(CM, "default", "c")
    cur = reg.get(CM, "default", "c")
    assert cur["metadata"]["deletionTimestamp"]
    cur["metadata"]["finalizers"] = []
    reg.update(CM, "default", "c", cur)
    assert reg.try_get(CM, "default", "c") is None


def test_node_gets_bound_and_binding_is_once(reg: Registry) -> None:
    reg.create(POD, "default", pod("a"))
    out = reg.bind("default", "a", "n1")
    assert out["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in out["status"]["conditions"])
    with pytest.raises(ApiError) as e:
        reg.bind("default", "a", "n2")
    assert e.value.code == 409


def test_watch_replays_from_revision_and_maps_selectors(reg: Registry) -> None:
    first = reg.create(POD, "default", pod("a"))
    rv = first["metadata"]["resourceVersion"]

    async def collect() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        gen = reg.watch(POD, "default", rv, label_selector="app=x", timeout=1.0)
        async for ev in gen:
            seen.append((ev["type"], ev["object"]["metadata"]["name"]))
        return seen

    b = pod("b")
    b["metadata"]["labels"] = {"app": "x"}
    reg.create(POD, "default", b)
    reg.patch(POD, "default", "b", {"metadata": {"labels": {"app": "y"}}}, "application/merge-patch+json")
    reg.patch(POD, "default", "a", {"metadata": {"labels": {"app": "x"}}}, "application/merge-patch+json")
    reg.delete(POD, "default", "a")
    assert asyncio.run(collect()) == [("ADDED", "b"), ("DELETED", "b"), ("ADDED", "a"), ("DELETED", "a")]


def test_watch_too_old_is_410(reg: Registry) -> None:
    for i in range(5):
        reg.create(CM, "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
        reg.delete(CM, "default", f"c{i}")
    reg.store.compact(reg.store.current_revision())

    async def first() -> dict:
        async for ev in reg.watch(CM, "default", "3", timeout=1.0):
            return ev
        return {}

    ev = asyncio.run(first())
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410


def test_namespace_delete_marks_terminating(reg: Registry) -> None:
    reg.create(NS, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    out = reg.delete(NS, None, "team")
    assert out["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as e:
        reg.create(POD, "team", pod())
    assert e.value.code == 403


def test_bind_refuses_a_pod_recreated_under_the_same_name(reg: Registry) -> None:
    old_uid = reg.create(POD, "default", pod("a"))["metadata"]["uid"]
    reg.delete(POD, "default", "a")
    reg.create(POD, "default", pod("a"))
    with pytest.raises(ApiError) as e:
        reg.bind("default", "a", "n1", old_uid)
    assert e.value.code == 409
    assert not reg.get(POD, "default", "a")["spec"].get("nodeName")
