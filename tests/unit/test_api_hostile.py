"""Hostile requests against the API in-process: malformed bodies, wrong media types, huge or
deeply nested payloads, unparsable query parameters. Each answers a `Status` with the code
and reason Kubernetes gives, names the parameter or field at fault, and leaves the store
exactly as it was."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from orchestrator.api import requests as api_requests
from orchestrator.errors import ApiError
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from tests.unit.test_api import SECRET, h, make_api

NS = "/api/v1/namespaces/default"
CMS = f"{NS}/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
LIMIT = 3 * 1024 * 1024

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": POD["spec"]}}}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Registry, TestClient]]:
    reg, client = make_api(tmp_path)
    for path, obj in ((CMS, CM), (f"{NS}/pods", POD), (DEPLOY, WEB)):
        assert client.post(path, json=obj, headers=h()).status_code == 201
    yield reg, client


def snapshot(reg: Registry) -> tuple[int, list[Any]]:
    kv, rev = reg.store.list("")
    return rev, [(k.key, k.mod_revision, k.value) for k in kv]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def cm_with(value: str) -> str:
    """A ConfigMap in JSON with `value` (raw JSON) as a data value."""
    return '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n"},"data":{"a":' + value + "}}"


def token(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


@dataclass
class Case:
    id: str
    method: str
    path: str
    code: int
    reason: str
    names: tuple[str, ...]  # what the message must mention (the parameter, field or expectation)
    body: bytes | str | None = None
    ctype: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    # -- the top-level body must be what the request expects
    Case("create-array", "POST", CMS, 400, "BadRequest", ("JSON object", "ConfigMap", "an array"), "[]"),
    Case("create-string", "POST", CMS, 400, "BadRequest", ("JSON object", "a string"), '"c"'),
    Case("create-number", "POST", CMS, 400, "BadRequest", ("JSON object", "a number"), "7"),
    Case("create-null", "POST", CMS, 400, "BadRequest", ("JSON object",), "null"),
    Case("update-array", "PUT", f"{CMS}/c", 400, "BadRequest", ("JSON object", "ConfigMap"), "[1]"),
    Case("merge-patch-array", "PATCH", f"{CMS}/c", 400, "BadRequest", ("JSON object", MERGE), "[]", MERGE),
    Case("smp-string", "PATCH", f"{CMS}/c", 400, "BadRequest", ("JSON object", SMP), '"x"', SMP),
    Case("apply-list", "PATCH", f"{CMS}/c", 400, "BadRequest", ("JSON object", APPLY), "- a\n- b\n", APPLY),
    Case("json-patch-object", "PATCH", f"{CMS}/c", 400, "BadRequest", ("JSON array", "patch operations"),
         "{}", JSONPATCH),
    Case("json-patch-op-number", "PATCH", f"{CMS}/c", 400, "BadRequest", ("operation [0]",), "[1]", JSONPATCH),
    Case("delete-options-array", "DELETE", f"{CMS}/c", 400, "BadRequest", ("DeleteOptions",), "[]"),
    Case("delete-options-grace-string", "DELETE", f"{CMS}/c", 400, "BadRequest",
         ("DeleteOptions", "gracePeriodSeconds"), '{"gracePeriodSeconds":"5"}'),
    Case("delete-options-preconditions", "DELETE", f"{CMS}/c", 400, "BadRequest", ("preconditions",),
         '{"preconditions":[]}'),
    Case("delete-options-precondition-uid", "DELETE", f"{CMS}/c", 400, "BadRequest", ("preconditions.uid",),
         '{"preconditions":{"uid":5}}'),
    Case("delete-options-dry-run", "DELETE", f"{CMS}/c", 400, "BadRequest", ("dry run", "All"),
         '{"dryRun":["Some"]}'),
    Case("binding-array", "POST", f"{NS}/pods/p/binding", 400, "BadRequest", ("JSON object", "Binding"), "[]"),
    Case("binding-target-string", "POST", f"{NS}/pods/p/binding", 400, "BadRequest", ("target.name",),
         '{"target":"n1"}'),
    Case("binding-get", "GET", f"{NS}/pods/p/binding", 405, "MethodNotAllowed", ("binding",), None, None),
    Case("scale-string", "PUT", f"{DEPLOY}/web/scale", 400, "BadRequest", ("JSON object", "Scale"), '"x"'),
    Case("scale-spec-array", "PUT", f"{DEPLOY}/web/scale", 400, "BadRequest", ("Scale", "spec"), '{"spec":[]}'),
    Case("scale-patch-spec-array", "PATCH", f"{DEPLOY}/web/scale", 400, "BadRequest", ("Scale", "spec"),
         '{"spec":[3]}', MERGE),
    Case("scale-metadata-string", "PUT", f"{DEPLOY}/web/scale", 400, "BadRequest", ("Scale", "metadata"),
         '{"metadata":"x","spec":{"replicas":2}}'),
    Case("node-credentials-array", "POST", "/apis/dockyard.io/v1/nodecredentials", 400, "BadRequest",
         ("JSON object", "NodeCredential"), "[]"),
    # -- nesting, numbers and YAML features JSON cannot hold
    Case("json-deep-101", "POST", CMS, 400, "BadRequest", ("nested more than 100",), cm_with(nested(99))),
    Case("json-deep-100k", "POST", CMS, 400, "BadRequest", ("nested more than 100",), nested(100_000)),
    Case("yaml-deep-101", "POST", CMS, 400, "BadRequest", ("YAML", "nested more than 100"), nested(101),
         "application/yaml"),
    Case("yaml-deep-block", "POST", CMS, 400, "BadRequest", ("nested more than 100",),
         "".join("  " * i + "- \n" for i in range(150)), "application/yaml"),
    Case("apply-deep", "PATCH", f"{CMS}/c", 400, "BadRequest", ("nested more than 100",), nested(5000), APPLY),
    Case("yaml-large-deep", "POST", CMS, 400, "BadRequest", ("nested more than 100",),
         "# " + "padding " * 4096 + "\n" + nested(150), "application/yaml"),
    Case("yaml-billion-laughs", "POST", CMS, 400, "BadRequest", ("excessive aliasing",), BILLION_LAUGHS,
         "application/yaml"),
    Case("yaml-recursive-alias", "POST", CMS, 400, "BadRequest", ("alias to itself",), "a: &a {b: *a}\n",
         "application/yaml"),
    Case("yaml-binary", "POST", CMS, 400, "BadRequest", ("bytes",),
         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: n}\ndata: {a: !!binary aGk=}\n", "application/yaml"),
    Case("yaml-nan", "POST", CMS, 400, "BadRequest", ("nan",), "data: {a: .nan}\n", "application/yaml"),
    Case("yaml-two-documents", "POST", CMS, 400, "BadRequest", ("single document",), "a: 1\n---\nb: 2\n",
         "application/yaml"),
    Case("json-nan", "POST", CMS, 400, "BadRequest", ("NaN",), cm_with("NaN")),
    Case("json-infinity", "POST", CMS, 400, "BadRequest", ("Infinity",), cm_with("-Infinity")),
    Case("json-overflow", "POST", CMS, 400, "BadRequest", ("out of range",), cm_with("1e400")),
    Case("json-lone-surrogate", "POST", CMS, 400, "BadRequest", ("surrogate",), cm_with('"\\ud800"')),
    Case("json-not-utf8", "POST", CMS, 400, "BadRequest", ("not valid JSON",), b'{"a": "\xff"}'),
    Case("json-truncated", "POST", CMS, 400, "BadRequest", ("not valid JSON",), '{"apiVersion": "v1"'),
    # -- media types
    Case("create-png", "POST", CMS, 415, "UnsupportedMediaType", ("image/png", "application/json",
                                                                  "application/yaml"), json.dumps(CM), "image/png"),
    Case("create-text", "POST", CMS, 415, "UnsupportedMediaType", ("text/plain", "application/json"),
         json.dumps(CM), "text/plain"),
    # protobuf bodies are taken (issue 14); an empty envelope is a readable 400, a protobuf PATCH a 415
    Case("create-protobuf-empty-envelope", "POST", CMS, 400, "BadRequest", ("protobuf", "names no kind"),
         b"k8s\x00", "application/vnd.kubernetes.protobuf"),
    Case("patch-protobuf", "PATCH", f"{CMS}/c", 415, "UnsupportedMediaType", ("application/merge-patch+json",),
         b"k8s\x00", "application/vnd.kubernetes.protobuf"),
    Case("update-text", "PUT", f"{CMS}/c", 415, "UnsupportedMediaType", ("application/json",), json.dumps(CM),
         "text/plain"),
    Case("patch-json", "PATCH", f"{CMS}/c", 415, "UnsupportedMediaType", (MERGE, JSONPATCH, SMP, APPLY),
         '{"data":{"b":"2"}}', "application/json"),
    Case("patch-empty-body-png", "PATCH", f"{CMS}/c", 415, "UnsupportedMediaType", (MERGE,), None, "image/png"),
    Case("delete-body-text", "DELETE", f"{CMS}/c", 415, "UnsupportedMediaType", ("application/json",),
         '{"gracePeriodSeconds":0}', "text/plain"),
    # -- size
    Case("create-over-limit", "POST", CMS, 413, "RequestEntityTooLarge", (f"limit is {LIMIT}",),
         cm_with('"' + "x" * LIMIT + '"')),
    # -- query parameters: parse errors are 400 and name the parameter
    Case("limit-word", "GET", f"{CMS}?limit=abc", 400, "BadRequest", ("limit", "abc")),
    Case("limit-negative", "GET", f"{CMS}?limit=-1", 400, "BadRequest", ("limit", "greater than or equal to 0")),
    Case("limit-float", "GET", f"{CMS}?limit=1.5", 400, "BadRequest", ("limit",)),
    Case("limit-empty", "GET", f"{CMS}?limit=", 400, "BadRequest", ("limit",)),
    Case("limit-huge", "GET", f"{CMS}?limit={2**70}", 400, "BadRequest", ("limit", "64-bit")),
    Case("limit-underscore", "GET", f"{CMS}?limit=1_0", 400, "BadRequest", ("limit",)),
    Case("rv-word", "GET", f"{CMS}?resourceVersion=abc", 400, "BadRequest", ("resourceVersion", "abc")),
    Case("rv-negative", "GET", f"{CMS}?resourceVersion=-5", 400, "BadRequest", ("resourceVersion", "-5")),
    Case("rv-get", "GET", f"{CMS}/c?resourceVersion=1.0", 400, "BadRequest", ("resourceVersion",)),
    Case("rv-too-large", "GET", f"{CMS}?resourceVersion=999999", 504, "Timeout", ("Too large resource version",)),
    Case("rv-exact-old", "GET", f"{CMS}?resourceVersion=1&resourceVersionMatch=Exact", 410, "Expired",
         ("too old",)),
    Case("rv-legacy-exact-old", "GET", f"{CMS}?resourceVersion=1&limit=5", 410, "Expired", ("too old",)),
    Case("rv-match-without-rv", "GET", f"{CMS}?resourceVersionMatch=NotOlderThan", 422, "Invalid",
         ("resourceVersionMatch", "forbidden unless resourceVersion is provided")),
    Case("rv-match-unknown", "GET", f"{CMS}?resourceVersion=1&resourceVersionMatch=Newest", 422, "Invalid",
         ("resourceVersionMatch", "supported values", "Newest")),
    Case("rv-match-exact-zero", "GET", f"{CMS}?resourceVersion=0&resourceVersionMatch=Exact", 422, "Invalid",
         ("resourceVersionMatch", '"exact" is forbidden')),
    Case("send-initial-events-list", "GET", f"{CMS}?sendInitialEvents=true", 422, "Invalid",
         ("sendInitialEvents", "forbidden for list")),
    Case("timeout-word", "GET", f"{CMS}?timeoutSeconds=abc", 400, "BadRequest", ("timeoutSeconds",)),
    Case("timeout-negative-watch", "GET", f"{CMS}?watch=true&timeoutSeconds=-1", 400, "BadRequest",
         ("timeoutSeconds",)),
    Case("timeout-float-watch", "GET", f"{CMS}?watch=1&timeoutSeconds=0.5", 400, "BadRequest", ("timeoutSeconds",)),
    Case("continue-garbage", "GET", f"{CMS}?continue=not*base64", 400, "BadRequest",
         ("continue", "continue key is not valid")),
    Case("continue-not-json", "GET", f"{CMS}?continue=" + base64.urlsafe_b64encode(b"\x00\x01").decode(), 400,
         "BadRequest", ("continue key is not valid",)),
    Case("continue-other-version", "GET", f"{CMS}?continue=" + token({"v": "x/v9", "rv": 3, "start": "a"}), 400,
         "BadRequest", ("continue key is not valid", "encoded version")),
    Case("continue-rv-zero", "GET", f"{CMS}?continue=" + token({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}),
         400, "BadRequest", ("continue key is not valid", "resourceVersion")),
    Case("continue-empty-start", "GET", f"{CMS}?continue=" + token({"v": "meta.k8s.io/v1", "rv": 3, "start": ""}),
         400, "BadRequest", ("continue key is not valid", "start key empty")),
    Case("continue-traversal", "GET",
         f"{CMS}?continue=" + token({"v": "meta.k8s.io/v1", "rv": 3, "start": "a/../../secrets"}), 400,
         "BadRequest", ("continue key is not valid",)),
    Case("continue-with-rv", "GET",
         f"{CMS}?resourceVersion=3&continue=" + token({"v": "meta.k8s.io/v1", "rv": 3, "start": "a"}), 400,
         "BadRequest", ("resource version is not allowed when using continue",)),
    Case("continue-future-revision", "GET",
         f"{CMS}?continue=" + token({"v": "meta.k8s.io/v1", "rv": 10**9, "start": "a"}),
         504, "Timeout", ("Too large resource version",)),
    Case("continue-with-rv-match", "GET", f"{CMS}?resourceVersion=3&resourceVersionMatch=Exact&continue=x", 422,
         "Invalid", ("resourceVersionMatch", "continue")),
    Case("watch-yes", "GET", f"{CMS}?watch=yes", 400, "BadRequest", ("watch", "yes", "boolean")),
    Case("watch-empty", "GET", f"{CMS}?watch=", 400, "BadRequest", ("watch",)),
    Case("bookmarks-maybe", "GET", f"{CMS}?watch=true&allowWatchBookmarks=maybe", 400, "BadRequest",
         ("allowWatchBookmarks",)),
    Case("label-selector", "GET", f"{CMS}?labelSelector=a%20b", 400, "BadRequest", ("labelSelector", "a b")),
    Case("label-selector-set", "GET", f"{CMS}?labelSelector=a%20in%20(", 400, "BadRequest", ("labelSelector",)),
    Case("field-selector", "GET", f"{CMS}?fieldSelector=spec.bogus%3D1", 400, "BadRequest",
         ("fieldSelector", "spec.bogus")),
    Case("watch-label-selector", "GET", f"{CMS}?watch=true&labelSelector=%3D%3D", 400, "BadRequest",
         ("labelSelector",)),
    Case("watch-rv-negative", "GET", f"{CMS}?watch=true&resourceVersion=-5", 400, "BadRequest",
         ("resourceVersion", "-5")),
    Case("watch-rv-word", "GET", f"{CMS}?watch=true&resourceVersion=abc", 400, "BadRequest",
         ("resourceVersion", "abc")),
    Case("watch-send-initial-events", "GET", f"{CMS}?watch=true&sendInitialEvents=true", 422, "Invalid",
         ("sendInitialEvents",)),
    Case("watch-rv-match", "GET", f"{CMS}?watch=true&resourceVersion=1&resourceVersionMatch=Exact", 422, "Invalid",
         ("resourceVersionMatch",)),
    Case("grace-word", "DELETE", f"{CMS}/c?gracePeriodSeconds=soon", 400, "BadRequest", ("gracePeriodSeconds",),
         None, None),
    Case("grace-huge", "DELETE", f"{CMS}/c?gracePeriodSeconds={2**64}", 400, "BadRequest", ("gracePeriodSeconds",),
         None, None),
    Case("propagation-unknown", "DELETE", f"{CMS}/c?propagationPolicy=Later", 422, "Invalid",
         ("propagationPolicy", "Later", "Foreground"), None, None),
    Case("propagation-and-orphan", "DELETE", f"{CMS}/c?propagationPolicy=Background&orphanDependents=true", 422,
         "Invalid", ("orphanDependents",), None, None),
    Case("orphan-word", "DELETE", f"{CMS}/c?orphanDependents=sure", 400, "BadRequest", ("orphanDependents",),
         None, None),
    Case("dry-run-word", "DELETE", f"{CMS}/c?dryRun=Yes", 400, "BadRequest", ("dry run",), None, None),
    Case("deletecollection-selector", "DELETE", f"{CMS}?labelSelector=!!", 400, "BadRequest", ("labelSelector",),
         None, None),
    Case("deletecollection-limit", "DELETE", f"{CMS}?limit=x", 400, "BadRequest", ("limit",), None, None),
    Case("force-on-merge-patch", "PATCH", f"{CMS}/c?force=true", 422, "Invalid", ("force",), '{"data":{}}', MERGE),
    Case("force-word", "PATCH", f"{CMS}/c?force=please", 400, "BadRequest", ("force",), "data: {}\n", APPLY),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request_answers_a_status_and_changes_nothing(
        cluster: tuple[Registry, TestClient], case: Case) -> None:
    reg, client = cluster
    before = snapshot(reg)
    headers = {**h(), **case.headers}
    if case.ctype is not None:
        headers["Content-Type"] = case.ctype
    content = case.body.encode() if isinstance(case.body, str) else case.body
    r = client.request(case.method, case.path, content=content, headers=headers)
    assert r.status_code == case.code, r.text[:500]
    status = r.json()
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert (status["code"], status["reason"]) == (case.code, case.reason), status
    for name in case.names:
        assert name in status["message"], (name, status["message"])
    assert snapshot(reg) == before, "a rejected request changed the store"


@pytest.mark.parametrize("param", ["limit", "resourceVersion", "timeoutSeconds", "labelSelector", "fieldSelector",
                                   "watch", "allowWatchBookmarks"])
def test_bad_query_parameters_are_named_in_the_status_details(cluster: tuple[Registry, TestClient],
                                                              param: str) -> None:
    _, client = cluster
    value = {"labelSelector": "a b", "fieldSelector": "x=1=2=", "watch": "perhaps"}.get(param, "-x")
    extra = "&watch=true" if param == "allowWatchBookmarks" else ""
    r = client.get(f"{CMS}?{param}={value}{extra}", headers=h())
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{param}: Invalid value")
    assert [c["field"] for c in r.json()["details"]["causes"]] == [param]


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_watch_takes_go_booleans(cluster: tuple[Registry, TestClient], value: str) -> None:
    _, client = cluster
    with client.stream("GET", f"{CMS}?watch={value}&timeoutSeconds=1", headers=h()) as r:
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert r.status_code == 200 and [e["type"] for e in events] == ["ADDED"]


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_watch_false_is_a_list(cluster: tuple[Registry, TestClient], value: str) -> None:
    _, client = cluster
    r = client.get(f"{CMS}?watch={value}", headers=h())
    assert r.status_code == 200 and r.json()["kind"] == "ConfigMapList"


@pytest.mark.parametrize("query", [
    "limit=500", "limit=0", "resourceVersion=", "resourceVersion=0", "resourceVersionMatch=NotOlderThan&"
    "resourceVersion=0", "timeoutSeconds=30", "labelSelector=app%20in%20(a,b),!legacy", "fieldSelector=metadata.name%3Dc",
    "pretty=true", "allowWatchBookmarks=false",
])
def test_valid_list_parameters_still_list(cluster: tuple[Registry, TestClient], query: str) -> None:
    _, client = cluster
    r = client.get(f"{CMS}?{query}", headers=h())
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "ConfigMapList" and "continue" not in r.json()["metadata"]


def test_the_current_resource_version_lists_exactly(cluster: tuple[Registry, TestClient]) -> None:
    reg, client = cluster
    rv = client.get(CMS, headers=h()).json()["metadata"]["resourceVersion"]
    for query in (f"resourceVersion={rv}&resourceVersionMatch=Exact", f"resourceVersion={rv}&limit=10",
                  f"resourceVersion={rv}&resourceVersionMatch=NotOlderThan", "resourceVersion=1"):
        r = client.get(f"{CMS}?{query}", headers=h())
        assert r.status_code == 200 and [i["metadata"]["name"] for i in r.json()["items"]] == ["c"], (query, r.text)


def test_a_body_with_an_error_is_still_forbidden_first(cluster: tuple[Registry, TestClient]) -> None:
    reg, client = cluster
    before = snapshot(reg)
    r = client.post(CMS, content=b"[", headers={**h(node_token(SECRET, "n1")), "Content-Type": "application/json"})
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    assert snapshot(reg) == before


def test_413_closes_the_connection(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    r = client.post(CMS, content=b" " * (LIMIT + 1), headers={**h(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.headers["connection"] == "close"


def test_a_body_at_the_limit_is_read(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    body = json.dumps({**CM, "metadata": {"name": "big"}, "data": {"a": ""}})
    body = body.replace('"a": ""', '"a": "' + "x" * (LIMIT - len(body)) + '"')
    assert len(body) == LIMIT
    r = client.post(CMS, content=body, headers={**h(), "Content-Type": "application/json"})
    assert r.status_code != 413, r.text[:300]


def test_reading_stops_at_the_limit() -> None:
    """A 100 MB body is refused after the first chunks past the limit, not read whole."""
    chunk = b"x" * 65536
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < 1600}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}

    async def read() -> None:
        await api_requests.read_body(Request(scope, receive))

    with pytest.raises(ApiError) as e:
        asyncio.run(read())
    assert e.value.code == 413 and e.value.reason == "RequestEntityTooLarge"
    assert sent == LIMIT // len(chunk) + 1


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-length", str(100 * 1024 * 1024).encode())]}
    with pytest.raises(ApiError) as e:
        asyncio.run(api_requests.read_body(Request(scope, receive)))
    assert e.value.code == 413 and received == 0


@pytest.mark.parametrize(("ctype", "body"), [
    (None, json.dumps({**CM, "metadata": {"name": "plain"}})),  # no Content-Type: JSON, as in Kubernetes
    ("application/json; charset=utf-8", json.dumps({**CM, "metadata": {"name": "charset"}})),
    ("Application/JSON", json.dumps({**CM, "metadata": {"name": "upper"}})),
    ("application/yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n"
                         "data: {when: 2024-01-01, at: 2024-01-01T10:00:00Z, 8080: port}\n"),
])
def test_accepted_bodies_still_create(cluster: tuple[Registry, TestClient], ctype: str | None, body: str) -> None:
    _, client = cluster
    headers = {**h(), **({"Content-Type": ctype} if ctype else {})}
    r = client.post(CMS, content=body.encode(), headers=headers)
    assert r.status_code == 201, r.text
    if ctype == "application/yaml":  # YAML timestamps and numeric keys stay strings, as in YAML-to-JSON
        assert r.json()["data"] == {"when": "2024-01-01", "at": "2024-01-01T10:00:00Z", "8080": "port"}


def test_a_large_yaml_body_is_read(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    data = "".join(f"  k{i}: {'v' * 50}\n" for i in range(2000))
    body = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: large\ndata:\n{data}"
    assert len(body) > api_requests.YAML_INLINE_BYTES
    r = client.post(CMS, content=body, headers={**h(), "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text[:300]
    assert len(r.json()["data"]) == 2000


def test_yaml_anchors_in_moderation_are_fine(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchors, labels: &l {a: b}, annotations: *l}\n"
    r = client.post(CMS, content=body, headers={**h(), "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["annotations"] == {"a": "b"}


def test_requests_without_a_body_need_no_content_type(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    assert client.get(f"{CMS}/c", headers={**h(), "Content-Type": "image/png"}).status_code == 200
    assert client.delete(f"{CMS}/c", headers=h()).status_code == 200
    client.post(CMS, json=CM, headers=h())
    assert client.delete(f"{CMS}/c", headers={**h(), "Content-Type": "text/plain"}).status_code == 200


def test_patch_without_content_type_is_a_merge_patch(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    r = client.patch(f"{CMS}/c", content=b'{"data":{"b":"2"}}', headers=h())
    assert r.status_code == 200 and r.json()["data"] == {"a": "1", "b": "2"}


def test_delete_options_in_the_body_still_work(cluster: tuple[Registry, TestClient]) -> None:
    _, client = cluster
    opts = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Orphan",
            "dryRun": ["All"]}
    r = client.request("DELETE", f"{CMS}/c", json=opts, headers=h())
    assert r.status_code == 200
    assert client.get(f"{CMS}/c", headers=h()).status_code == 200  # dry run
    r = client.request("DELETE", f"{CMS}/c?gracePeriodSeconds=-1", json={"orphanDependents": False}, headers=h())
    assert r.status_code == 200 and client.get(f"{CMS}/c", headers=h()).status_code == 404


def test_watch_too_old_stays_a_410_event(cluster: tuple[Registry, TestClient]) -> None:
    reg, client = cluster
    client.put(f"{CMS}/c", json={**CM, "data": {"a": "2"}}, headers=h())
    reg.store.compact(reg.store.current_revision())
    with client.stream("GET", f"{CMS}?watch=true&resourceVersion=1&timeoutSeconds=1", headers=h()) as r:
        events = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert r.status_code == 200
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


class DiskFull:
    def __init__(self, store: Any, reason: str | None) -> None:
        self.store, self.reason = store, reason

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def health(self) -> str | None:
        return self.reason


def test_readyz_reports_the_stores_health(cluster: tuple[Registry, TestClient]) -> None:
    reg, client = cluster
    assert (client.get("/readyz").status_code, client.get("/readyz").text) == (200, "ok")  # no health(): fine
    store = reg.store
    reg.store = DiskFull(store, None)  # type: ignore[assignment]
    assert client.get("/readyz").status_code == 200
    reg.store = DiskFull(store, "the master's disk is full (/var/lib/dockyard)")  # type: ignore[assignment]
    r = client.get("/readyz")
    assert r.status_code == 500 and "the master's disk is full (/var/lib/dockyard)" in r.text
    assert client.get("/livez").status_code == 200  # alive: restarting it would not help
    reg.store = store
