"""Paged lists (`limit`, `continue`): one snapshot across pages, tokens, selectors, Tables, 410."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from orchestrator.registry import Registry
from orchestrator.registry.generic import CONTINUE_EXPIRED, decode_continue, encode_continue
from tests.unit.test_api import h, make_api

CM = resolve("configmaps")
CMS = "/api/v1/namespaces/default/configmaps"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {}}


@pytest.fixture
def api(tmp_path: Path) -> tuple[Registry, TestClient]:
    reg, client = make_api(tmp_path)
    for i in range(5):
        reg.create(CM, "default", cm(f"c{i}", parity="even" if i % 2 == 0 else "odd"))
    return reg, client


def names(body: dict[str, Any]) -> list[str]:
    return [o["metadata"]["name"] for o in body["items"]]


def all_pages(client: TestClient, query: str, token: str = "") -> list[dict[str, Any]]:
    pages = []
    for _ in range(20):
        r = client.get(f"{CMS}?{query}" + (f"&continue={token}" if token else ""), headers=h())
        assert r.status_code == 200, r.text
        pages.append(r.json())
        token = r.json()["metadata"].get("continue", "")
        if not token:
            return pages
    raise AssertionError("the pages never end")


def test_the_token_is_kubernetes_encoding() -> None:
    token = encode_continue(42, "c1\x00")
    assert "=" not in token
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert data == {"v": "meta.k8s.io/v1", "rv": 42, "start": "c1\x00"}
    assert decode_continue(token, "/registry/configmaps/default/") == (42, "/registry/configmaps/default/c1\x00")
    inconsistent = base64.urlsafe_b64encode(b'{"v":"meta.k8s.io/v1","rv":-1,"start":"c1\\u0000"}').decode()
    assert decode_continue(inconsistent.rstrip("="), "/p/")[0] == 0  # now


@pytest.mark.parametrize("data", [
    {"v": "meta.k8s.io/v2", "rv": 3, "start": "a"},
    {"v": "meta.k8s.io/v1", "rv": 0, "start": "a"},
    {"v": "meta.k8s.io/v1", "rv": 3, "start": ""},
    {"v": "meta.k8s.io/v1", "rv": 3, "start": "a/../../secrets/"},
    [1],
])
def test_malformed_tokens_are_400(data: Any) -> None:
    token = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(ApiError) as e:
        decode_continue(token, "/registry/configmaps/default/")
    assert e.value.code == 400 and "continue key is not valid" in e.value.message


@pytest.mark.parametrize(("query", "sizes", "remaining"), [
    ("limit=2", [2, 2, 1], [3, 1, None]),
    ("limit=5", [5], [None]),
    ("limit=4", [4, 1], [1, None]),
    ("limit=1", [1, 1, 1, 1, 1], [4, 3, 2, 1, None]),
    ("limit=2&labelSelector=parity%3Deven", [2, 1], [None, None]),  # no count with selectors
    # as in Kubernetes: a full page says more may follow, even if nothing else matches
    ("limit=1&fieldSelector=metadata.name%3Dc3", [1, 0], [None, None]),
    ("limit=2&labelSelector=parity%3Dnone", [0], [None]),
])
def test_pages_cover_the_list_once(api: tuple[Registry, TestClient], query: str, sizes: list[int],
                                   remaining: list[int | None]) -> None:
    _, client = api
    pages = all_pages(client, query)
    assert [len(p["items"]) for p in pages] == sizes
    assert [p["metadata"].get("remainingItemCount") for p in pages] == remaining
    whole = client.get(CMS + "?" + query.split("&", 1)[1] if "&" in query else CMS, headers=h()).json()
    assert [n for p in pages for n in names(p)] == names(whole)


def test_pages_are_one_snapshot(api: tuple[Registry, TestClient]) -> None:
    reg, client = api
    first = client.get(f"{CMS}?limit=2", headers=h()).json()
    rv = first["metadata"]["resourceVersion"]
    reg.delete(CM, "default", "c3")
    reg.create(CM, "default", cm("c2a"))
    reg.patch(CM, "default", "c4", {"data": {"k": "v"}}, "application/merge-patch+json")
    rest = all_pages(client, "limit=2", first["metadata"]["continue"])
    assert all(p["metadata"]["resourceVersion"] == rv for p in rest)
    assert [n for p in rest for n in names(p)] == ["c2", "c3", "c4"]
    assert next(o for p in rest for o in p["items"] if o["metadata"]["name"] == "c4")["data"] == {}
    # a new list sees the writes
    assert names(client.get(CMS, headers=h()).json()) == ["c0", "c1", "c2", "c2a", "c4"]


def test_a_compacted_token_is_410_expired(api: tuple[Registry, TestClient]) -> None:
    reg, client = api
    first = client.get(f"{CMS}?limit=2", headers=h()).json()
    reg.patch(CM, "default", "c4", {"data": {"k": "v"}}, "application/merge-patch+json")
    reg.store.compact(reg.store.current_revision())
    r = client.get(f"{CMS}?limit=2&continue={first['metadata']['continue']}", headers=h())
    assert r.status_code == 410
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": CONTINUE_EXPIRED, "reason": "Expired", "code": 410}


def test_tables_and_metadata_lists_carry_the_paging_fields(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    table = client.get(f"{CMS}?limit=3", headers={**h(), "Accept": TABLE}).json()
    assert table["kind"] == "Table" and len(table["rows"]) == 3
    assert table["metadata"]["remainingItemCount"] == 2 and table["metadata"]["continue"]
    rest = client.get(f"{CMS}?limit=3&continue={table['metadata']['continue']}",
                      headers={**h(), "Accept": TABLE}).json()
    assert [r["cells"][0] for r in rest["rows"]] == ["c3", "c4"] and "continue" not in rest["metadata"]
    partial = client.get(f"{CMS}?limit=4", headers={
        **h(), "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}).json()
    assert partial["kind"] == "PartialObjectMetadataList" and partial["metadata"]["remainingItemCount"] == 1


def test_continue_with_other_options(api: tuple[Registry, TestClient]) -> None:
    _, client = api
    token = client.get(f"{CMS}?limit=1", headers=h()).json()["metadata"]["continue"]
    r = client.get(f"{CMS}?limit=1&resourceVersion=5&continue={token}", headers=h())
    assert r.status_code == 400 and "resource version is not allowed when using continue" in r.json()["message"]
    r = client.get(f"{CMS}?continue={token}", headers=h())  # the rest at once
    assert r.status_code == 200 and names(r.json()) == ["c1", "c2", "c3", "c4"]
    other_ns = client.get(f"/api/v1/namespaces/kube-system/configmaps?limit=1&continue={token}", headers=h())
    assert other_ns.status_code == 200 and other_ns.json()["items"] == []  # a token never leaves its prefix


def test_cluster_wide_pages(api: tuple[Registry, TestClient]) -> None:
    reg, client = api
    reg.create(CM, "kube-system", cm("k0"))
    pages = []
    token = ""
    while True:
        body = client.get("/api/v1/configmaps?limit=4" + (f"&continue={token}" if token else ""), headers=h()).json()
        pages.append([(o["metadata"]["namespace"], o["metadata"]["name"]) for o in body["items"]])
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert [len(p) for p in pages] == [4, 2]
    assert sorted(x for p in pages for x in p) == sorted([("default", f"c{i}") for i in range(5)]
                                                         + [("kube-system", "k0")])
