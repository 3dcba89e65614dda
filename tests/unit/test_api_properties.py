"""Property-based runs against the API in-process: whatever a client sends, no 5xx, every
4xx is a `Status`, and a rejected request changes nothing.

Hypothesis builds hostile requests from valid ones: a valid object of each served kind with
one value anywhere inside it replaced by arbitrary JSON (deep, huge integers, wrong types),
whole bodies of arbitrary JSON, every patch type with arbitrary patches against a stored
object, the `/status` and `/scale` subresources, list and watch queries with arbitrary
parameter values, and arbitrary content types. The runs are derandomized and bounded
(a fixed number of examples), so CI sees the same cases every time.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from orchestrator.registry import Registry
from tests.unit.test_api import ADMIN, make_api

HEADERS = {"Authorization": f"Bearer {ADMIN}"}
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

POD_SPEC = {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
VALID: dict[str, tuple[str, dict[str, Any]]] = {
    "configmaps": ("/api/v1/namespaces/default/configmaps",
                   {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "b"}}),
    "secrets": ("/api/v1/namespaces/default/secrets",
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "p"}, "stringData": {"a": "b"}}),
    "pods": ("/api/v1/namespaces/default/pods",
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": POD_SPEC}),
    "services": ("/api/v1/namespaces/default/services",
                 {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "p"},
                  "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    "endpoints": ("/api/v1/namespaces/default/endpoints",
                  {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "p"},
                   "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
    "events": ("/api/v1/namespaces/default/events",
               {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R",
                "message": "m", "type": "Normal"}),
    "namespaces": ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}}),
    "nodes": ("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "p"}}),
    "deployments": ("/apis/apps/v1/namespaces/default/deployments",
                    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "p"},
                     "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}}),
    "replicasets": ("/apis/apps/v1/namespaces/default/replicasets",
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "p"},
                     "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}}, "template": TEMPLATE}}),
    "horizontalpodautoscalers": (
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "p"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"},
                  "minReplicas": 1, "maxReplicas": 3}}),
    "leases": ("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
               {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "p"},
                "spec": {"holderIdentity": "p", "leaseDurationSeconds": 40}}),
}
RESOURCES = sorted(VALID)
PATCH_TYPES = ["application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml"]
CONTENT_TYPES = ["application/json", "application/yaml", "text/plain", "image/png", "", "application/json; charset=utf-8"]
QUERY = ["limit", "continue", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "labelSelector",
         "fieldSelector", "fieldValidation", "dryRun", "gracePeriodSeconds",
         "propagationPolicy", "pretty"]

scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**31, 2**31 - 1, -1, 0, 2**63, -(2**63) - 1]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
deep = st.integers(min_value=50, max_value=800).map(lambda n: json.loads("[" * n + "]" * n))
# nesting far past what a Python parser can recurse into, as raw bytes
deep_raw = st.integers(min_value=900, max_value=100_000).flatmap(lambda n: st.sampled_from([
    ("[" * n + "]" * n).encode(), ('{"a":' * n + "1" + "}" * n).encode(),
    ('{"metadata":' * n + "{}" + "}" * n).encode()]))


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, (*prefix, i))


def replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(obj)
    cur = out
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """(collection path, a valid object with one value replaced by arbitrary JSON)."""
    resource = draw(st.sampled_from(RESOURCES))
    base, obj = VALID[resource]
    where = draw(st.sampled_from(list(paths(obj))))
    return base, replaced(obj, where, draw(st.one_of(json_values, deep)))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TestClient]]:
    reg, client = make_api(tmp_path_factory.mktemp("props"))
    for _, (base, obj) in VALID.items():  # one stored object of each kind to update and patch
        client.post(base, json=obj, headers=HEADERS)
    yield reg, client


def check(reg: Registry, client: TestClient, method: str, url: str, revision: int, **kw: Any) -> None:
    r = client.request(method, url, headers={**HEADERS, **kw.pop("headers", {})}, **kw)
    assert r.status_code < 500, (method, url, r.status_code, r.text[:500])
    if r.status_code >= 400:
        body = r.json()
        assert body.get("kind") == "Status" and body.get("code") == r.status_code, (method, url, r.text[:300])
        assert reg.store.current_revision() == revision, ("a rejected request changed the store", method, url)


@SETTINGS
@given(mutated())
def test_creates_never_fail_with_5xx(api: tuple[Registry, TestClient], case: tuple[str, Any]) -> None:
    reg, client = api
    base, body = case
    rev = reg.store.current_revision()
    check(reg, client, "POST", base, rev, content=json.dumps(body), headers={"Content-Type": "application/json"})
    # whatever was created goes again, so the next example starts from the same store
    name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) and isinstance(
        body.get("metadata"), dict) else None
    if isinstance(name, str) and name != "p":
        client.delete(f"{base}/{name}", headers=HEADERS)


@SETTINGS
@given(mutated(), st.booleans())
def test_updates_never_fail_with_5xx(api: tuple[Registry, TestClient], case: tuple[str, Any], status: bool) -> None:
    reg, client = api
    base, body = case
    if isinstance(body, dict):
        current = client.get(f"{base}/p", headers=HEADERS).json()
        body = {**body, "metadata": body.get("metadata")} if not isinstance(body.get("metadata"), dict) else {
            **body, "metadata": {**body["metadata"],
                                 "resourceVersion": (current.get("metadata") or {}).get("resourceVersion")}}
    rev = reg.store.current_revision()
    check(reg, client, "PUT", f"{base}/p{'/status' if status else ''}", rev, content=json.dumps(body),
          headers={"Content-Type": "application/json"})


@SETTINGS
@given(st.sampled_from(RESOURCES), st.sampled_from(PATCH_TYPES), st.one_of(json_values, deep),
       st.sampled_from(["", "/status", "/scale"]))
def test_patches_never_fail_with_5xx(api: tuple[Registry, TestClient], resource: str, ptype: str, patch: Any,
                                     sub: str) -> None:
    reg, client = api
    base, _ = VALID[resource]
    rev = reg.store.current_revision()
    check(reg, client, "PATCH", f"{base}/p{sub}", rev, content=json.dumps(patch), headers={"Content-Type": ptype})


@SETTINGS
@given(st.sampled_from(RESOURCES), st.dictionaries(st.sampled_from(QUERY), st.text(max_size=12), max_size=4))
def test_queries_never_fail_with_5xx(api: tuple[Registry, TestClient], resource: str, params: dict[str, str]) -> None:
    reg, client = api
    base, _ = VALID[resource]
    rev = reg.store.current_revision()
    check(reg, client, "GET", base, rev, params=params)


@SETTINGS
@given(st.sampled_from(RESOURCES), st.sampled_from(CONTENT_TYPES), st.binary(max_size=200) | json_values.map(
    lambda v: json.dumps(v).encode()) | deep_raw)
def test_bodies_of_any_type_never_fail_with_5xx(api: tuple[Registry, TestClient], resource: str, ctype: str,
                                                raw: bytes) -> None:
    reg, client = api
    base, _ = VALID[resource]
    rev = reg.store.current_revision()
    headers = {"Content-Type": ctype} if ctype else {}
    check(reg, client, "POST", base, rev, content=raw, headers=headers)
