"""`metav1.Status` bodies, byte for byte as kube-apiserver writes them.

The expected bodies are ones kube-apiserver answered (quoted in Kubernetes' own changelog and
in public bug reports of its clients): the field order of Go's struct (kind, apiVersion,
metadata, status, message, reason, details, code), empty fields left out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import errors
from orchestrator.errors import ApiError
from orchestrator.registry import dumps
from tests.unit.test_api import h, make_api

APISERVER_BODIES = [
    # `kubectl get pods abc` (Kubernetes 1.11 changelog): the core group is not written
    (errors.not_found("pods", "abc"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"abc\\" not found",'
     b'"reason":"NotFound","details":{"name":"abc","kind":"pods"},"code":404}'),
    (errors.invalid("PersistentVolumeClaim", "wx-inference-proxy-cos-rev2", [{
        "field": "spec.resources.requests.storage", "reason": "FieldValueForbidden",
        "message": "Forbidden: field can not be less than status.capacity"}]),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"PersistentVolumeClaim '
     b'\\"wx-inference-proxy-cos-rev2\\" is invalid: spec.resources.requests.storage: Forbidden: field can not be '
     b'less than status.capacity","reason":"Invalid","details":{"name":"wx-inference-proxy-cos-rev2",'
     b'"kind":"PersistentVolumeClaim","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: field can '
     b'not be less than status.capacity","field":"spec.resources.requests.storage"}]},"code":422}'),
    # a named group is written; causes in the order reason, message, field
    (ApiError(422, "Invalid", "StatefulSet.apps \"zk\" is invalid: spec: Forbidden: updates to statefulset spec "
              "for fields other than 'replicas', 'template', and 'updateStrategy' are forbidden.",
              {"kind": "StatefulSet", "name": "zk", "group": "apps", "causes": [{
                  "field": "spec", "message": "Forbidden: updates to statefulset spec for fields other than "
                  "'replicas', 'template', and 'updateStrategy' are forbidden.", "reason": "FieldValueForbidden"}]}),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"StatefulSet.apps \\"zk\\" '
     b"is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'template', and "
     b"'updateStrategy' are forbidden.\",\"reason\":\"Invalid\",\"details\":{\"name\":\"zk\",\"group\":\"apps\","
     b'"kind":"StatefulSet","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: updates to '
     b"statefulset spec for fields other than 'replicas', 'template', and 'updateStrategy' are forbidden.\","
     b'"field":"spec"}]},"code":422}'),
    # no details at all: none written
    (errors.bad_request("the server rejected our request for an unknown reason"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server rejected our '
     b'request for an unknown reason","reason":"BadRequest","code":400}'),
    (errors.unauthorized(),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized",'
     b'"reason":"Unauthorized","code":401}'),
    (errors.already_exists("deployments", "web", "apps"),
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \\"web\\" '
     b'already exists","reason":"AlreadyExists","details":{"name":"web","group":"apps","kind":"deployments"},'
     b'"code":409}'),
]


@pytest.mark.parametrize(("error", "body"), APISERVER_BODIES, ids=lambda v: getattr(v, "reason", ""))
def test_status_bodies_are_kube_apiservers(error: ApiError, body: bytes) -> None:
    assert dumps(error.status()) == body


@pytest.mark.parametrize(("details", "shown"), [
    ({}, None),
    ({"name": "", "group": "", "kind": ""}, None),
    ({"group": "", "kind": "widgets"}, {"kind": "widgets"}),
    ({"causes": [{"field": "", "reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
      "retryAfterSeconds": 1},
     {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
      "retryAfterSeconds": 1}),
    ({"retryAfterSeconds": 0, "uid": "u", "kind": "pods"}, {"kind": "pods", "uid": "u"}),
])
def test_details_leave_out_empty_fields(details: dict, shown: dict | None) -> None:
    body = ApiError(400, "BadRequest", "m", details).status()
    assert body.get("details") == shown
    if shown:
        assert list(body["details"]) == list(shown)
    assert list(body) == ["kind", "apiVersion", "metadata", "status", "message", "reason",
                          *(["details"] if shown else []), "code"]


def test_status_body_of_a_success() -> None:
    assert dumps(errors.status_body("Success", "", "", {"name": "x", "kind": "namespaces"}, 0)) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
        b'"details":{"name":"x","kind":"namespaces"}}')


def test_the_api_answers_with_these_bodies(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    r = api.get("/api/v1/namespaces/default/pods/abc", headers=h())
    assert r.status_code == 404 and r.content == APISERVER_BODIES[0][1]
    r = api.get("/apis/apps/v1/namespaces/default/deployments/web", headers=h())
    assert r.content == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
                         b'"deployments.apps \\"web\\" not found","reason":"NotFound","details":{"name":"web",'
                         b'"group":"apps","kind":"deployments"},"code":404}')


@pytest.mark.parametrize(("path", "details"), [
    ("/api/v1/namespaces/default/widgets", {"kind": "widgets"}),
    ("/api/v1/namespaces/default/widgets/w", {"kind": "widgets"}),
    ("/api/v1/widgets", {"kind": "widgets"}),
    ("/apis/batch/v1/namespaces/default/jobs", {"group": "batch", "kind": "jobs"}),
    ("/apis/batch/v1/jobs", {"group": "batch", "kind": "jobs"}),
    ("/apis/apps/v1/namespaces/default/statefulsets/s", {"group": "apps", "kind": "statefulsets"}),
    ("/api/v1/namespaces/default/pods/p/attach", {"kind": "pods/attach"}),
])
def test_unserved_resources_are_named(tmp_path: Path, path: str, details: dict) -> None:
    _, api = make_api(tmp_path)
    r = api.get(path, headers=h())
    assert r.status_code == 404
    body = r.json()
    assert body["message"] == "the server could not find the requested resource"
    assert body["details"] == details and "namespaces" not in r.text


def test_namespace_subresources_still_route(tmp_path: Path) -> None:
    _, api = make_api(tmp_path)
    assert api.get("/api/v1/namespaces/default/status", headers=h()).json()["kind"] == "Namespace"
    assert api.get("/api/v1/namespaces/default", headers=h()).json()["kind"] == "Namespace"
    r = api.get("/api/v1/namespaces/default/configmaps", headers=h())
    assert r.status_code == 200 and r.json()["kind"] == "ConfigMapList"
