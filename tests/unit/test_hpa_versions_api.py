"""HorizontalPodAutoscalers served as autoscaling/v1 and autoscaling/v2 from one stored object,
through the HTTP layer in-process (Starlette's test client, a real registry and store).

Every verb of `/apis/autoscaling/v1/...` takes and answers v1 (objects, lists, watch events,
Tables, delete answers, `/status`), while the object is stored once, as v2: what v1 cannot
say (other metrics, behavior) survives v1 writes through the round-trip annotations.
Discovery and OpenAPI describe both versions, v2 preferred.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from orchestrator.api import protobuf
from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects.hpaconversion import BEHAVIOR_ANNOTATION, METRICS_ANNOTATION
from orchestrator.objects.kinds import by_kind
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
H = {"Authorization": f"Bearer {ADMIN}"}
V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                       "averageValue": "100Mi"}}}


@pytest.fixture
def api(tmp_path: Path) -> tuple[Registry, TestClient]:
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", b"n" * 32), b"PEM",
                       lambda n: node_token(b"n" * 32, n))
    return reg, TestClient(server.app)


def hpa_v1(name: str = "web", cpu: int | None = 65, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                         "maxReplicas": 5, **spec}
    if cpu is not None:
        s["targetCPUUtilizationPercentage"] = cpu
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name}, "spec": s}


def create(client: TestClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = client.post(V1, json=body or hpa_v1(), headers=H)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def add_memory_metric(client: TestClient, name: str = "web") -> None:
    """A v2-only change: a second metric and a behavior."""
    r = client.patch(f"{V2}/{name}", json={"spec": {"metrics": [MEMORY, {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}},
        headers={**H, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


def test_one_object_read_in_both_versions(api: tuple[Registry, TestClient]) -> None:
    reg, client = api
    created = create(client)
    assert created["apiVersion"] == "autoscaling/v1" and created["spec"]["targetCPUUtilizationPercentage"] == 65
    assert created["spec"]["minReplicas"] == 1  # defaulted (on the stored form)
    as_v2 = client.get(f"{V2}/web", headers=H).json()
    assert as_v2["apiVersion"] == "autoscaling/v2"
    assert as_v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]
    as_v1 = client.get(f"{V1}/web", headers=H).json()
    assert as_v1 == created
    assert as_v1["metadata"]["resourceVersion"] == as_v2["metadata"]["resourceVersion"]
    stored = reg.get(by_kind("autoscaling/v2", "HorizontalPodAutoscaler"), "default", "web")
    assert stored["apiVersion"] == "autoscaling/v2" and "targetCPUUtilizationPercentage" not in stored["spec"]


def test_lists_tables_and_deletes_answer_v1(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    create(client)
    listed = client.get(V1, headers=H).json()
    assert (listed["apiVersion"], listed["kind"]) == ("autoscaling/v1", "HorizontalPodAutoscalerList")
    assert [i["apiVersion"] for i in listed["items"]] == ["autoscaling/v1"]
    everywhere = client.get("/apis/autoscaling/v1/horizontalpodautoscalers?limit=1", headers=H).json()
    assert everywhere["items"][0]["spec"]["targetCPUUtilizationPercentage"] == 65
    table = client.get(V1, headers={**H, "Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert table["rows"][0]["cells"][:3] == ["web", "Deployment/web", "cpu: <unknown>/65%"]
    full = client.get(f"{V1}?includeObject=Object", headers={**H, "Accept": TABLE}).json()
    assert full["rows"][0]["object"]["apiVersion"] == "autoscaling/v1"
    gone = client.delete(f"{V1}/web", headers=H)
    assert gone.status_code == 200 and gone.json()["spec"]["targetCPUUtilizationPercentage"] == 65
    assert client.get(f"{V2}/web", headers=H).status_code == 404


def test_watch_events_in_v1(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    rv = create(client)["metadata"]["resourceVersion"]
    add_memory_metric(client)
    with client.stream("GET", f"{V1}?watch=true&timeoutSeconds=1&resourceVersion={rv}", headers=H) as r:
        events = [json.loads(x) for x in r.iter_lines() if x.strip()]
    assert [e["type"] for e in events] == ["MODIFIED"]
    obj = events[0]["object"]
    assert obj["apiVersion"] == "autoscaling/v1" and obj["spec"]["targetCPUUtilizationPercentage"] == 65
    assert json.loads(obj["metadata"]["annotations"][METRICS_ANNOTATION])[0]["resource"]["name"] == "memory"


def test_v1_writes_keep_what_only_v2_can_say(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    create(client)
    add_memory_metric(client)
    current = client.get(f"{V1}/web", headers=H).json()
    assert set(current["metadata"]["annotations"]) == {METRICS_ANNOTATION, BEHAVIOR_ANNOTATION}
    # a PUT of what was read, a strategic merge patch, a JSON patch: the memory metric stays
    current["spec"]["maxReplicas"] = 7
    assert client.put(f"{V1}/web", json=current, headers=H).status_code == 200
    r = client.patch(f"{V1}/web", json={"spec": {"targetCPUUtilizationPercentage": 50}},
                     headers={**H, "Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200 and r.json()["spec"] == {**current["spec"], "targetCPUUtilizationPercentage": 50}
    r = client.patch(f"{V1}/web", json=[{"op": "replace", "path": "/spec/minReplicas", "value": 2}],
                     headers={**H, "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200, r.text
    spec = client.get(f"{V2}/web", headers=H).json()["spec"]
    assert spec["maxReplicas"] == 7 and spec["minReplicas"] == 2
    assert spec["metrics"] == [MEMORY, {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    # the round-trip annotations are never stored
    assert "annotations" not in client.get(f"{V2}/web", headers=H).json()["metadata"]


def test_stale_resource_version_is_a_conflict(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    old = create(client)
    add_memory_metric(client)
    r = client.put(f"{V1}/web", json=old, headers=H)
    assert r.status_code == 409, r.text
    r = client.patch(f"{V1}/web", json={"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]},
                                        "spec": {"maxReplicas": 3}},
                     headers={**H, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 409, r.text


def test_server_side_apply_in_v1(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    manifest = ("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: api}\n"
                "spec: {scaleTargetRef: {kind: Deployment, name: api}, maxReplicas: %d, "
                "targetCPUUtilizationPercentage: 70}\n")
    headers = {**H, "Content-Type": "application/apply-patch+yaml"}
    r = client.patch(f"{V1}/api?fieldManager=ops", content=manifest % 4, headers=headers)
    assert r.status_code == 201, r.text
    r = client.patch(f"{V1}/api?fieldManager=ops", content=manifest % 6, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["apiVersion"] == "autoscaling/v1" and r.json()["spec"]["maxReplicas"] == 6
    assert client.get(f"{V2}/api", headers=H).json()["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization", "averageUtilization": 70}


def test_status_through_v1(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    current = create(client)
    current["status"] = {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 40}
    r = client.put(f"{V1}/web/status", json=current, headers=H)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == current["status"]
    assert client.get(f"{V2}/web", headers=H).json()["status"]["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]
    r = client.patch(f"{V1}/web/status", json={"status": {"desiredReplicas": 4}},
                     headers={**H, "Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["status"]["desiredReplicas"] == 4
    assert r.json()["status"]["currentCPUUtilizationPercentage"] == 40


def test_bodies_are_checked_as_v1(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    # v2's fields are unknown in v1 (and v1's in v2), by each version's schema
    bad = hpa_v1(metrics=[MEMORY])
    r = client.post(f"{V1}?fieldValidation=Strict", json=bad, headers=H)
    assert r.status_code == 400 and 'unknown field "spec.metrics"' in r.json()["message"], r.text
    r = client.post(V1, json=bad, headers=H)
    assert r.status_code == 201 and r.headers["warning"] == '299 - "unknown field \\"spec.metrics\\""'
    as_v2 = {**hpa_v1("other"), "apiVersion": "autoscaling/v2"}
    r = client.post(f"{V2}?fieldValidation=Strict", json=as_v2, headers=H)
    assert r.status_code == 400 and "spec.targetCPUUtilizationPercentage" in r.json()["message"]
    # another apiVersion, a value of the wrong type, a rule of the stored form
    r = client.post(V1, json={**hpa_v1("x"), "apiVersion": "autoscaling/v2"}, headers=H)
    assert r.status_code == 400 and "(autoscaling/v1)" in r.json()["message"]
    r = client.post(V1, json=hpa_v1("x", cpu=None, maxReplicas="many"), headers=H)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.maxReplicas"
    r = client.post(V1, json=hpa_v1("x", cpu=0), headers=H)
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["field"] == "spec.metrics[0].resource.target.averageUtilization"


def test_kubectl_autoscale_protobuf_body_answered_in_protobuf(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    body = (Path(__file__).resolve().parent.parent / "fixtures" / "protobuf" / "autoscale.pb").read_bytes()
    proto = "application/vnd.kubernetes.protobuf"
    r = client.post(f"{V1}?fieldValidation=Strict", content=body,
                    headers={**H, "Content-Type": proto, "Accept": proto})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith(proto)
    got = protobuf.decode(r.content)
    assert got["apiVersion"] == "autoscaling/v1" and got["spec"]["targetCPUUtilizationPercentage"] == 80


def test_discovery_and_openapi_describe_both_versions(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    group = next(g for g in client.get("/apis", headers=H).json()["groups"] if g["name"] == "autoscaling")
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    resources = client.get("/apis/autoscaling/v1", headers=H).json()["resources"]
    assert [(r["name"], r["kind"]) for r in resources] == [
        ("horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        ("horizontalpodautoscalers/status", "HorizontalPodAutoscaler")]
    assert resources[0]["shortNames"] == ["hpa"] and resources[0]["categories"] == ["all"]
    index = client.get("/openapi/v3", headers=H).json()["paths"]
    doc = client.get(index["apis/autoscaling/v1"]["serverRelativeURL"], headers=H).json()
    schema = doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"]
    spec = schema["properties"]["spec"]["properties"]
    assert "targetCPUUtilizationPercentage" in spec and "metrics" not in spec
    assert spec["targetCPUUtilizationPercentage"]["description"].startswith("targetCPUUtilizationPercentage")
    patch = doc["paths"]["/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["version"] == "v1"
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    v2_doc = client.get("/openapi/v2", headers=H).json()["definitions"]
    assert {"io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"} <= set(v2_doc)
