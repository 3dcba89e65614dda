"""The HTTP layer in-process (Starlette's test client): paths, Status bodies, authn/z, watch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from orchestrator.api.app import ApiServer, parse_path
from orchestrator.api.auth import Authenticator
from orchestrator.controllers.nodes import NodeLifecycleController, pod_cidr_hook
from orchestrator.errors import ApiError
from orchestrator.pki import node_token
from orchestrator.reconcile.events import EventRecorder
from orchestrator.registry import Registry, nodepasswords
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
JOIN = "join-secret-0123456789"
SECRET = b"n" * 32


def make_api(tmp_path: Path, **registry_kw: Any) -> tuple[Registry, TestClient]:
    """A registry on a fresh store and the API in front of it (test client)."""
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")), **registry_kw)
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, JOIN, SECRET), b"PEM", lambda n: node_token(SECRET, n))
    return reg, TestClient(server.app)


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    return make_api(tmp_path)[1]


def h(token: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def node_obj(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("/api/v1/namespaces/default/pods", ("Pod", "default", None, "")),
        ("/api/v1/namespaces/default/pods/web/status", ("Pod", "default", "web", "status")),
        ("/api/v1/nodes/n1", ("Node", None, "n1", "")),
        ("/api/v1/namespaces/team", ("Namespace", None, "team", "")),
        ("/api/v1/namespaces/team/status", ("Namespace", None, "team", "status")),
        ("/apis/apps/v1/namespaces/x/deployments/web/scale", ("Deployment", "x", "web", "scale")),
        ("/apis/apps/v1/deployments", ("Deployment", None, None, "")),
    ],
)
def test_parse_path(path: str, expect: tuple) -> None:
    t = parse_path(path)
    assert (t.kind.kind, t.namespace, t.name, t.subresource) == expect


@pytest.mark.parametrize("path", ["/api/v1/widgets", "/apis/apps/v1/namespaces/x/deployments/web/bogus", "/foo"])
def test_parse_path_rejects(path: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_path(path)
    assert e.value.code == 404


def test_unauthenticated_is_401_status(api: TestClient) -> None:
    for headers in ({}, h("wrong")):
        r = api.get("/api/v1/namespaces/default/pods", headers=headers)
        assert r.status_code == 401
        assert r.json()["kind"] == "Status" and r.json()["reason"] == "Unauthorized"


def test_version_and_health_are_open(api: TestClient) -> None:
    assert api.get("/version").json()["minor"] == "32"
    assert api.get("/healthz").text == "ok"
    assert api.get("/cacerts").content == b"PEM"


def test_crud_and_typed_list(api: TestClient) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    r = api.post("/api/v1/namespaces/default/configmaps", json=cm, headers=h())
    assert r.status_code == 201, r.text
    r = api.get("/api/v1/namespaces/default/configmaps", headers=h())
    body = r.json()
    assert body["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in body["items"]] == ["c"]
    r = api.get("/api/v1/namespaces/default/configmaps/nope", headers=h())
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    r = api.post("/api/v1/namespaces/default/configmaps", json=cm, headers=h())
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"
    r = api.request("PATCH", "/api/v1/namespaces/default/configmaps/c", content=json.dumps({"data": {"b": "2"}}),
                    headers={**h(), "Content-Type": "application/merge-patch+json"})
    assert r.json()["data"] == {"a": "1", "b": "2"}
    assert api.delete("/api/v1/namespaces/default/configmaps/c", headers=h()).status_code == 200
    assert api.get("/api/v1/namespaces/default/configmaps/c", headers=h()).status_code == 404


def test_unknown_field_is_dropped_with_a_warning_by_default(api: TestClient) -> None:
    # Kubernetes' default fieldValidation is Warn; Strict (what kubectl sends) refuses it
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dataa": {"a": "1"}}
    r = api.post("/api/v1/namespaces/default/configmaps", json=cm, headers=h())
    assert r.status_code == 201 and "dataa" not in r.json()
    assert r.headers["warning"] == '299 - "unknown field \\"dataa\\""'
    r = api.post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict", json=cm, headers=h())
    assert r.status_code == 400 and 'unknown field "dataa"' in r.json()["message"]


def test_node_identity_may_only_write_itself(api: TestClient) -> None:
    n1 = node_token(SECRET, "n1")
    assert api.post("/api/v1/nodes", json=node_obj("n1"), headers=h(n1)).status_code == 201
    assert api.post("/api/v1/nodes", json=node_obj("n2"), headers=h(n1)).status_code == 403
    assert api.post("/api/v1/nodes", json=node_obj("n2"), headers=h()).status_code == 201
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    hdr = {"Content-Type": "application/merge-patch+json"}
    r = api.request("PATCH", "/api/v1/nodes/n2/status", content=json.dumps(patch), headers={**h(n1), **hdr})
    assert r.status_code == 403
    r = api.request("PATCH", "/api/v1/nodes/n1/status", content=json.dumps(patch), headers={**h(n1), **hdr})
    assert r.status_code == 200
    # pods: only the status of pods bound to this node
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "i:1"}]}}
    assert api.post("/api/v1/namespaces/default/pods", json=pod, headers=h()).status_code == 201
    r = api.request("PATCH", "/api/v1/namespaces/default/pods/p/status",
                    content=json.dumps({"status": {"phase": "Running"}}), headers={**h(n1), **hdr})
    assert r.status_code == 403
    assert api.post("/api/v1/namespaces/default/pods", json=pod, headers=h(n1)).status_code == 403


def credential_request(name: str, password: str | None = "p" * 32) -> dict:
    spec = {"nodeName": name} if password is None else {"nodeName": name, "password": password}
    return {"apiVersion": "dockyard.io/v1", "kind": "NodeCredential", "spec": spec}


def test_join_token_only_exchanges_for_a_node_credential(api: TestClient) -> None:
    assert api.get("/api/v1/nodes", headers=h(JOIN)).status_code == 403
    r = api.post("/apis/dockyard.io/v1/nodecredentials", json=credential_request("n9"), headers=h(JOIN))
    assert r.status_code == 201
    token = r.json()["status"]["token"]
    assert api.get("/api/v1/nodes", headers=h(token)).status_code == 200
    bad = credential_request("Bad:Name")
    assert api.post("/apis/dockyard.io/v1/nodecredentials", json=bad, headers=h(JOIN)).status_code == 422


def test_node_name_is_bound_to_the_first_node_password(tmp_path: Path) -> None:
    reg, api = make_api(tmp_path)
    url = "/apis/dockyard.io/v1/nodecredentials"
    r = api.post(url, json=credential_request("n7", None), headers=h(JOIN))
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.password"
    assert api.post(url, json=credential_request("n7", "short"), headers=h(JOIN)).status_code == 422
    assert api.post(url, json=credential_request("n7", "a" * 32), headers=h(JOIN)).status_code == 201
    assert api.post(url, json=credential_request("n7", "a" * 32), headers=h(JOIN)).status_code == 201  # same agent
    r = api.post(url, json=credential_request("n7", "b" * 32), headers=h(JOIN))  # someone else
    assert r.status_code == 403 and "already taken" in r.json()["message"] and "delete node n7" in r.json()["message"]
    stored = reg.get(nodepasswords.SECRET, "kube-system", "n7.node-password.dockyard")
    assert "a" * 32 not in json.dumps(stored)  # only a digest is kept
    # deleting the Node frees the name (the lifecycle controller removes the record)
    assert api.post("/api/v1/nodes", json=node_obj("n7"), headers=h()).status_code == 201
    controller = NodeLifecycleController(reg, EventRecorder(reg, "test"))
    controller.sync("n7")
    assert reg.try_get(nodepasswords.SECRET, "kube-system", "n7.node-password.dockyard") is not None
    assert api.delete("/api/v1/nodes/n7", headers=h()).status_code == 200
    controller.sync("n7")
    assert reg.try_get(nodepasswords.SECRET, "kube-system", "n7.node-password.dockyard") is None
    assert api.post(url, json=credential_request("n7", "b" * 32), headers=h(JOIN)).status_code == 201


def test_discovery(api: TestClient) -> None:
    res = api.get("/api/v1", headers=h()).json()
    pods = next(r for r in res["resources"] if r["name"] == "pods")
    assert pods["namespaced"] and "po" in pods["shortNames"]
    groups = api.get("/apis", headers=h()).json()
    assert "apps" in [g["name"] for g in groups["groups"]]
    apps = api.get("/apis/apps/v1", headers=h()).json()
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert scale["group"] == "autoscaling" and scale["kind"] == "Scale"


def test_watch_stream_with_timeout(api: TestClient) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}}
    api.post("/api/v1/namespaces/default/configmaps", json=cm, headers=h())
    with api.stream("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
                    headers=h()) as r:
        lines = [json.loads(x) for x in r.iter_lines() if x.strip()]
    assert lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "w"


def test_nodes_read_only_the_secrets_their_pods_use(api: TestClient) -> None:
    n1 = node_token(SECRET, "n1")
    for name in ("used", "other"):
        sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"k": "v"}}
        assert api.post("/api/v1/namespaces/default/secrets", json=sec, headers=h()).status_code == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i:1", "env": [
               {"name": "K", "valueFrom": {"secretKeyRef": {"name": "used", "key": "k"}}}]}]}}
    assert api.post("/api/v1/namespaces/default/pods", json=pod, headers=h()).status_code == 201
    assert api.get("/api/v1/namespaces/default/secrets/used", headers=h(n1)).status_code == 200
    assert api.get("/api/v1/namespaces/default/secrets/other", headers=h(n1)).status_code == 403
    assert api.get("/api/v1/namespaces/default/secrets", headers=h(n1)).status_code == 403
    assert api.get("/api/v1/secrets", headers=h(n1)).status_code == 403
    n2 = node_token(SECRET, "n2")
    assert api.get("/api/v1/namespaces/default/secrets/used", headers=h(n2)).status_code == 403


def test_client_never_sends_a_token_over_plain_http() -> None:
    from orchestrator.client import Client, ConfigError

    with pytest.raises(ConfigError, match="https only"):
        Client("http://127.0.0.1:6443", "secret-token")


def test_delete_with_a_uid_precondition_spares_a_new_incarnation(api: TestClient) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    old = api.post("/api/v1/namespaces/default/pods", json=pod, headers=h()).json()["metadata"]["uid"]
    assert api.delete("/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0", headers=h()).status_code == 200
    new = api.post("/api/v1/namespaces/default/pods", json=pod, headers=h()).json()["metadata"]["uid"]
    opts = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": old}}
    r = api.request("DELETE", "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0", json=opts, headers=h())
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert api.get("/api/v1/namespaces/default/pods/p", headers=h()).json()["metadata"]["uid"] == new
    opts["preconditions"]["uid"] = new
    r = api.request("DELETE", "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0", json=opts, headers=h())
    assert r.status_code == 200


def test_a_node_cannot_claim_another_nodes_pod_range(tmp_path: Path) -> None:
    reg, api = make_api(tmp_path)
    reg.create_hooks.setdefault("Node", []).append(pod_cidr_hook(reg, "10.42.0.0/16"))
    first = api.post("/api/v1/nodes", json=node_obj("n1"), headers=h(node_token(SECRET, "n1"))).json()
    assert first["spec"]["podCIDR"] == "10.42.0.0/24"
    claim = {**node_obj("n2"), "spec": {"podCIDR": "10.42.0.0/24"}}
    r = api.post("/api/v1/nodes", json=claim, headers=h(node_token(SECRET, "n2")))
    assert r.status_code == 422 and "overlaps node n1" in r.json()["message"]
    assert reg.try_get(NodeLifecycleController.watches[0], None, "n2") is None
    claim["spec"]["podCIDR"] = "10.42.7.0/24"
    assert api.post("/api/v1/nodes", json=claim, headers=h(node_token(SECRET, "n2"))).status_code == 201


def test_password_records_without_a_node_are_swept(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    reg, _ = make_api(tmp_path, clock=lambda: now[0])
    nodepasswords.bind(reg, "ghost", "g" * 32)  # joined, never registered
    nodepasswords.bind(reg, "n1", "a" * 32)
    reg.create(NodeLifecycleController.watches[0], None, node_obj("n1"))
    controller = NodeLifecycleController(reg, EventRecorder(reg, "test"))
    assert sorted(controller.all_keys()) == ["n1"]
    assert reg.try_get(nodepasswords.SECRET, "kube-system", "ghost.node-password.dockyard") is not None
    now[0] += timedelta(minutes=11)
    controller.all_keys()
    assert reg.try_get(nodepasswords.SECRET, "kube-system", "ghost.node-password.dockyard") is None
    assert reg.try_get(nodepasswords.SECRET, "kube-system", "n1.node-password.dockyard") is not None
