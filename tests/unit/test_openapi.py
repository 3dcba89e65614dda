"""OpenAPI documents, field validation modes, dry run, deletecollection and server-side apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orchestrator.api import openapi
from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects.kinds import SERVED, resolve
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
H = {"Authorization": f"Bearer {ADMIN}"}


def doc(group: str, version: str) -> dict:
    raw = openapi.v3_document(group, version)
    assert raw is not None
    return json.loads(raw)


def test_index_points_at_every_group_version() -> None:
    paths = openapi.v3_index()["paths"]
    served = {f"apis/{k.group}/{k.version}" if k.group else f"api/{k.version}" for k in SERVED}
    assert set(paths) == served and {"api/v1", "apis/apps/v1"} <= served
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=") and url.endswith(openapi.v3_hash("apps", "v1"))
    assert openapi.v3_document("batch", "v1") is None


def test_every_kind_has_a_component_with_its_gvk() -> None:
    for kind in SERVED:  # in every version served
        comps = doc(kind.group, kind.version)["components"]["schemas"]
        c = comps[openapi.definition_name(kind)]
        assert c["x-kubernetes-group-version-kind"] == [{"group": kind.group, "version": kind.version,
                                                         "kind": kind.kind}]
        assert kind.schema is not None and set(c["properties"]) == set(kind.schema.fields)


def test_merge_keys_are_published_where_the_server_merges() -> None:
    dep = doc("apps", "v1")["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    pod_spec = dep["properties"]["spec"]["properties"]["template"]["properties"]["spec"]["properties"]
    containers = pod_spec["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    ports = containers["items"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert containers["items"]["properties"]["env"]["x-kubernetes-patch-merge-key"] == "name"
    args = containers["items"]["properties"]["args"]
    assert "x-kubernetes-patch-merge-key" not in args and args["x-kubernetes-list-type"] == "atomic"
    finalizers = dep["properties"]["metadata"]["properties"]["finalizers"]
    assert finalizers["x-kubernetes-patch-strategy"] == "merge" and "x-kubernetes-patch-merge-key" not in finalizers
    labels = dep["properties"]["metadata"]["properties"]["labels"]
    assert {k: v for k, v in labels.items() if k != "description"} == {
        "type": "object", "additionalProperties": {"type": "string"}}
    assert labels["description"].startswith("Map of string keys and values")  # Kubernetes' text


def test_patch_operations_declare_field_validation() -> None:
    """kubectl leaves validation to the server only if the PATCH of the GVK lists fieldValidation."""
    paths = doc("apps", "v1")["paths"]
    op = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert {"fieldValidation", "dryRun", "fieldManager"} <= {p["name"] for p in op["parameters"] if p["in"] == "query"}
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    for path in paths.values():
        if "patch" in path:
            assert "fieldValidation" in {p["name"] for p in path["patch"]["parameters"]}
    core = doc("", "v1")["paths"]
    assert "/api/v1/nodes/{name}" in core and "/api/v1/namespaces/{namespace}/pods/{name}/status" in core


def test_v2_document_uses_definitions() -> None:
    v2 = json.loads(openapi.v2_document())
    assert v2["swagger"] == "2.0" and "io.k8s.api.core.v1.Pod" in v2["definitions"]
    assert "#/components/" not in openapi.v2_document().decode()


def test_prune_unknown() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "foo": 1, "metadata": {"name": "p", "labels": {"x": "y"}},
           "spec": {"containers": [{"name": "c", "imagee": "x"}], "$setElementOrder/containers": [{"name": "c"}]}}
    removed = openapi.prune_unknown("Pod", obj)
    assert removed == ["foo", "spec.containers[0].imagee"]
    assert obj["spec"]["containers"] == [{"name": "c"}] and "$setElementOrder/containers" in obj["spec"]
    assert obj["metadata"]["labels"] == {"x": "y"}
    assert openapi.unknown_paths("Pod", {"spec": {"$retainKeys": [], "bogus": 1}}) == ["spec.bogus"]


# --- through the HTTP layer ------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", b"n" * 32), b"PEM",
                       lambda n: node_token(b"n" * 32, n))
    return TestClient(server.app)


CMS = "/api/v1/namespaces/default/configmaps"


def cm(name: str, **extra: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "x"}},
            "data": {"k": "v"}, **extra}


def test_openapi_endpoints(api: TestClient) -> None:
    assert api.get("/openapi/v3").status_code == 401
    index = api.get("/openapi/v3", headers=H).json()
    r = api.get(index["paths"]["api/v1"]["serverRelativeURL"], headers=H)
    assert r.status_code == 200 and "io.k8s.api.core.v1.Pod" in r.json()["components"]["schemas"]
    assert api.get("/openapi/v3/apis/batch/v1", headers=H).status_code == 404
    assert api.get("/openapi/v2", headers=H).json()["swagger"] == "2.0"
    pb = api.get("/openapi/v2", headers={**H, "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert pb.status_code == 200 and pb.content == openapi.V2_PROTOBUF


def test_field_validation_modes(api: TestClient) -> None:
    strict = api.post(f"{CMS}?fieldValidation=Strict", json=cm("a", foo="bar"), headers=H)
    assert strict.status_code == 400
    assert strict.json()["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                                        'strict decoding error: unknown field "foo"')
    default = api.post(f"{CMS}?dryRun=All", json=cm("a", foo="bar"), headers=H)  # Warn, as in Kubernetes
    assert default.status_code == 201 and default.headers["warning"] == '299 - "unknown field \\"foo\\""'
    warn = api.post(f"{CMS}?fieldValidation=Warn", json=cm("a", foo="bar"), headers=H)
    assert warn.status_code == 201 and warn.headers["warning"] == '299 - "unknown field \\"foo\\""'
    assert "foo" not in warn.json()
    ignore = api.patch(f"{CMS}/a?fieldValidation=Ignore", json={"bar": 1, "data": {"k": "w"}},
                       headers={**H, "Content-Type": "application/merge-patch+json"})
    assert ignore.status_code == 200 and ignore.json()["data"] == {"k": "w"} and "warning" not in ignore.headers
    assert api.post(f"{CMS}?fieldValidation=Loose", json=cm("b"), headers=H).status_code == 400


def test_dry_run_writes_nothing(api: TestClient) -> None:
    r = api.post(f"{CMS}?dryRun=All", json=cm("a"), headers=H)
    assert r.status_code == 201 and r.json()["metadata"]["uid"]
    assert api.get(f"{CMS}/a", headers=H).status_code == 404
    api.post(CMS, json=cm("a"), headers=H)
    assert api.post(f"{CMS}?dryRun=All", json=cm("a"), headers=H).status_code == 409
    before = api.get(f"{CMS}/a", headers=H).json()
    p = api.patch(f"{CMS}/a?dryRun=All", json={"data": {"k": "dry"}},
                  headers={**H, "Content-Type": "application/merge-patch+json"})
    assert p.status_code == 200 and p.json()["data"] == {"k": "dry"}
    u = api.put(f"{CMS}/a?dryRun=All", json={**before, "data": {"k": "put"}}, headers=H)
    assert u.status_code == 200 and u.json()["data"] == {"k": "put"}
    bad = api.patch(f"{CMS}/a?dryRun=All", json={"metadata": {"labels": {"bad": "not a label value"}}},
                    headers={**H, "Content-Type": "application/merge-patch+json"})
    assert bad.status_code == 422  # still validated
    assert api.delete(f"{CMS}/a?dryRun=All", headers=H).status_code == 200
    assert api.get(f"{CMS}/a", headers=H).json() == before
    assert api.post(f"{CMS}?dryRun=Some", json=cm("c"), headers=H).status_code == 400


def test_deletecollection(api: TestClient) -> None:
    for name in ("a", "b"):
        api.post(CMS, json=cm(name), headers=H)
    other = cm("c")
    other["metadata"]["labels"] = {"app": "y"}
    api.post(CMS, json=other, headers=H)
    r = api.delete(f"{CMS}?labelSelector=app%3Dx", headers=H)
    assert r.status_code == 200 and r.json()["kind"] == "ConfigMapList"
    assert sorted(i["metadata"]["name"] for i in r.json()["items"]) == ["a", "b"]
    left = api.get(CMS, headers=H).json()["items"]
    assert [i["metadata"]["name"] for i in left] == ["c"]


def test_server_side_apply_creates_then_merges(api: TestClient) -> None:
    ssa = {**H, "Content-Type": "application/apply-patch+yaml"}
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\ndata:\n  a: '1'\n"
    r = api.patch(f"{CMS}/s?fieldManager=test&force=true", content=body, headers=ssa)
    assert r.status_code == 201 and r.json()["data"] == {"a": "1"}
    api.patch(f"{CMS}/s", json={"metadata": {"labels": {"other": "owner"}}},
              headers={**H, "Content-Type": "application/merge-patch+json"})
    r = api.patch(f"{CMS}/s?fieldManager=test", content=body.replace("'1'", "'2'"), headers=ssa)
    assert r.status_code == 200
    assert r.json()["data"] == {"a": "2"} and r.json()["metadata"]["labels"] == {"other": "owner"}
    wrong = api.patch(f"{CMS}/t?fieldManager=test", content=body, headers=ssa)
    assert wrong.status_code == 400
    unnamed = api.patch(f"{CMS}/s", content=body, headers=ssa)
    assert unnamed.status_code == 422 and "fieldManager: Required value" in unnamed.json()["message"]


def test_an_empty_protobuf_envelope_is_a_readable_400(api: TestClient) -> None:
    r = api.post(CMS, content=b"k8s\x00", headers={**H, "Content-Type": "application/vnd.kubernetes.protobuf"})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    assert "names no kind" in r.json()["message"]


def test_strategic_merge_keeps_server_defaults(api: TestClient) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
           "spec": {"selector": {"matchLabels": {"app": "w"}}, "template": {
               "metadata": {"labels": {"app": "w"}, "creationTimestamp": None},
               "spec": {"containers": [{"name": "c", "image": "i:1", "env": [{"name": "A", "value": "1"}]}]}}}}
    base = "/apis/apps/v1/namespaces/default/deployments"
    created = api.post(base, json=dep, headers=H).json()
    assert "creationTimestamp" not in created["spec"]["template"]["metadata"]
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "c"}],
                                            "containers": [{"name": "c", "env": [{"name": "A", "value": "2"}]}]}}}}
    r = api.patch(f"{base}/w?fieldValidation=Strict", json=patch,
                  headers={**H, "Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200, r.text
    c = r.json()["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "i:1" and c["env"] == [{"name": "A", "value": "2"}]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert resolve("deploy").kind == "Deployment"


def test_integer_widths_are_published() -> None:
    from orchestrator.api import openapi
    from orchestrator.objects.kinds import schema_for

    deploy = openapi.node_schema(schema_for("Deployment"), "", {})["properties"]["spec"]["properties"]
    assert deploy["replicas"] == {"type": "integer", "format": "int32"}
    pod = openapi.node_schema(schema_for("Pod"), "", {})["properties"]["spec"]["properties"]
    assert pod["terminationGracePeriodSeconds"] == {"type": "integer", "format": "int64"}
