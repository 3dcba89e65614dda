"""pods/eviction (policy/v1 Eviction): what `kubectl drain` posts, through the API."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_api import h, make_api, node_obj

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, node: str | None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "i:1"}], "terminationGracePeriodSeconds": 30}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def eviction(name: str, **delete_options: object) -> dict:
    body: dict = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


def test_discovery_lists_the_eviction_subresource(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    resources = {r["name"]: r for r in api.get("/api/v1", headers=h()).json()["resources"]}
    ev = resources["pods/eviction"]
    assert (ev["group"], ev["version"], ev["kind"], ev["verbs"]) == ("policy", "v1", "Eviction", ["create"])


def test_an_eviction_deletes_the_pod_gracefully(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    assert api.post("/api/v1/nodes", json=node_obj("n1"), headers=h()).status_code == 201
    assert api.post(PODS, json=pod("web", "n1"), headers=h()).status_code == 201
    r = api.post(f"{PODS}/web/eviction", json=eviction("web"), headers=h())
    assert r.status_code == 201, r.text
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    # on a node: marked for deletion with its grace period, the agent finishes it
    meta = api.get(f"{PODS}/web", headers=h()).json()["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 30


def test_delete_options_of_an_eviction_apply(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    assert api.post(PODS, json=pod("a", None), headers=h()).status_code == 201
    r = api.post(f"{PODS}/a/eviction", json=eviction("a", dryRun=["All"]), headers=h())
    assert r.status_code == 201 and api.get(f"{PODS}/a", headers=h()).status_code == 200  # a dry run
    r = api.post(f"{PODS}/a/eviction", json=eviction("a", preconditions={"uid": "not-its-uid"}), headers=h())
    assert r.status_code == 409 and api.get(f"{PODS}/a", headers=h()).status_code == 200
    r = api.post(f"{PODS}/a/eviction", json=eviction("a", gracePeriodSeconds=0), headers=h())
    assert r.status_code == 201 and api.get(f"{PODS}/a", headers=h()).status_code == 404  # unbound: gone at once


def test_bad_evictions_are_refused_readably(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    assert api.post(PODS, json=pod("a", None), headers=h()).status_code == 201
    r = api.post(f"{PODS}/a/eviction", json=eviction("b"), headers=h())
    assert r.status_code == 400 and "does not match" in r.json()["message"]
    r = api.post(f"{PODS}/missing/eviction", json=eviction("missing"), headers=h())
    assert r.status_code == 404
    r = api.get(f"{PODS}/a/eviction", headers=h())
    assert r.status_code == 405
    r = api.post(f"{PODS}/a/eviction", json=eviction("a", gracePeriodSeconds="soon"), headers=h())
    assert r.status_code == 400 and "gracePeriodSeconds" in r.json()["message"]
