"""Hostile writes: integers outside their Kubernetes width or minimum, patches and updates that
would change what an object is, bodies of the wrong shape, values JSON cannot carry.

Every write goes through the registry (create, update, the four patch types, `/status` and
`/scale`), so the tables drive it directly, for every served kind; a few cases also go through
the HTTP layer. Each refused write must answer a `Status` with the right code and reason,
name the offending field, and leave the store exactly as it was (same revision, same objects).
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ApiError
from orchestrator.objects import defaults, validation
from orchestrator.objects.kinds import Kind, resolve
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore
from tests.unit.test_api import ADMIN, make_api

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

CONTAINER = {
    "name": "c",
    "image": "busybox:1",
    "ports": [{"containerPort": 80}],
    "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
    "securityContext": {"runAsUser": 1000},
}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [CONTAINER]}}

# one stored object of every served kind
OBJECTS: dict[str, dict[str, Any]] = {
    "deployments": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "minReadySeconds": 0, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                 "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
    },
    "replicasets": {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 1, "minReadySeconds": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": TEMPLATE},
    },
    "pods": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"},
        "spec": {"containers": [CONTAINER], "securityContext": {"fsGroup": 1000}, "activeDeadlineSeconds": 600,
                 "priority": 0},
    },
    "services": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}],
                 "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 100}}},
    },
    "configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}},
    "secrets": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"a": "Yg=="}},
    "nodes": {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node1"}, "spec": {"podCIDR": "10.42.0.0/24"},
        "status": {"capacity": {"cpu": "2"}, "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                   "images": [{"names": ["busybox:1"], "sizeBytes": 1000}]},
    },
    "horizontalpodautoscalers": {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "hpa"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
                 "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}}},
    },
    "leases": {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lease"},
        "spec": {"holderIdentity": "node1", "leaseDurationSeconds": 40, "leaseTransitions": 0},
    },
    "namespaces": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}},
    "endpoints": {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 8080}]}],
    },
    "events": {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"},
        "involvedObject": {"kind": "Pod", "name": "pod", "namespace": "default"}, "reason": "R", "message": "m",
        "type": "Normal", "count": 1, "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:00.000000Z"},
    },
}
RESOURCES = sorted(OBJECTS)
# the payload field of each kind that must be an object (an array there is a shape error)
PAYLOAD = {r: "spec" for r in RESOURCES} | {
    "configmaps": "data", "secrets": "data", "events": "involvedObject", "endpoints": "subsets"}


def ns_of(kind: Kind) -> str | None:
    return "default" if kind.namespaced else None


def name_of(resource: str) -> str:
    return OBJECTS[resource]["metadata"]["name"]


def new_registry(path: Path) -> Registry:
    reg = Registry(SQLiteStore(str(path / "s.db")))
    reg.ensure_namespaces()
    for resource, obj in OBJECTS.items():
        kind = resolve(resource)
        reg.create(kind, ns_of(kind), copy.deepcopy(obj))
    return reg


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Shared by the refusal tables: a refused write changes nothing (each test checks it)."""
    return new_registry(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def fresh(tmp_path: Path) -> Registry:
    """For writes that succeed."""
    return new_registry(tmp_path)


def snapshot(reg: Registry) -> tuple[int, dict[str, tuple[int, Any]]]:
    items, _ = reg.store.list("/registry/")
    return reg.store.current_revision(), {kv.key: (kv.mod_revision, kv.value) for kv in items}


def refused(reg: Registry, write: Callable[[], Any], code: int, reason: str, field: str | None = None,
            text: str = "") -> ApiError:
    """Run `write`, expect the ApiError (naming `field` among its causes), and an unchanged store."""
    before = snapshot(reg)
    with pytest.raises(ApiError) as info:
        write()
    e = info.value
    assert (e.code, e.reason) == (code, reason), e.message
    assert text in e.message
    if field is not None:
        assert field in [c["field"] for c in e.details.get("causes", [])], e.message
        assert f"{field}: " in e.message
    status = e.status()
    assert status["kind"] == "Status" and status["code"] == code
    assert snapshot(reg) == before, "a refused write changed the store"
    return e


def field_of(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def set_at(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `obj` with `value` at `path` (missing objects on the way are created)."""
    out = copy.deepcopy(obj)
    cur = out
    for key in path[:-1]:
        if isinstance(cur, dict) and cur.get(key) is None:
            cur[key] = {}
        cur = cur[key]
    cur[path[-1]] = value
    return out


def json_patch_op(current: Any, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """An `add` at the longest existing prefix of `path`, carrying the rest as nested objects."""
    cur, depth = current, 0
    for key in path[:-1]:
        if isinstance(cur, dict) and key in cur or isinstance(cur, list) and isinstance(key, int) and key < len(cur):
            cur, depth = cur[key], depth + 1
        else:
            break
    for key in reversed(path[depth + 1:]):
        value = {key: value}
    return {"op": "add", "path": "/" + "/".join(str(p) for p in path[: depth + 1]), "value": value}


WRITES = ["create", "update", "merge", "json", "strategic", "apply"]


def write_at(reg: Registry, how: str, resource: str, path: tuple[Any, ...], value: Any) -> Callable[[], Any]:
    """One way of writing `value` at `path` of the stored object of `resource` (status paths
    through the status subresource)."""
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    sub = "status" if path[0] == "status" else ""
    if how == "create":
        body = set_at(OBJECTS[resource], path, value)
        body["metadata"]["name"] = f"{name}-new"
        return lambda: reg.create(kind, ns, body)
    current = reg.get(kind, ns, name)
    if how == "update":
        return lambda: reg.update(kind, ns, name, set_at(current, path, value), sub)
    if how == "json":
        return lambda: reg.patch(kind, ns, name, [json_patch_op(current, path, value)], JSON_PATCH, sub)
    top = path[0]
    body = {top: set_at(current, path, value)[top]}
    if how == "apply":
        body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name}, **body}
    ctype = {"merge": MERGE, "strategic": STRATEGIC, "apply": APPLY}[how]
    return lambda: reg.patch(kind, ns, name, body, ctype, sub)


def merged_field(resource: str, how: str, path: tuple[Any, ...], field: str) -> str:
    """Where a changed merge key ends up: a strategic merge appends the port it does not know."""
    merge_key = path[-1] == "containerPort" or (resource == "services" and path[-2:] == (0, "port"))
    if how in ("strategic", "apply") and merge_key:
        return field.replace("ports[0]", "ports[1]")
    return field


# --- integers: Kubernetes widths ------------------------------------------------------------

RESTARTS = {"name": "c", "ready": False, "image": "busybox:1", "imageID": ""}

# (resource, path, value, field named in the Status, expected type in the message)
WIDTHS: list[tuple[str, tuple[Any, ...], Any, str | None, str]] = [
    ("deployments", ("spec", "replicas"), 2**63, None, "int32"),
    ("deployments", ("spec", "replicas"), 2**31, None, "int32"),
    ("deployments", ("spec", "replicas"), 1e12, None, "int32"),
    ("deployments", ("spec", "replicas"), -(2**31) - 1, None, "int32"),
    ("deployments", ("spec", "replicas"), True, None, "integer"),
    ("deployments", ("spec", "replicas"), "3", None, "integer"),
    ("deployments", ("spec", "replicas"), 2.5, None, "integer"),
    ("deployments", ("spec", "minReadySeconds"), 2**31, None, "int32"),
    ("deployments", ("spec", "revisionHistoryLimit"), 2**31, None, "int32"),
    ("deployments", ("spec", "progressDeadlineSeconds"), 2**31, None, "int32"),
    ("deployments", ("spec", "strategy", "rollingUpdate", "maxSurge"), 2**31, None, "int32"),
    ("deployments", ("spec", "template", "spec", "terminationGracePeriodSeconds"), 2**63, None, "int64"),
    ("deployments", ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), 2**31, None, "int32"),
    ("deployments", ("status", "replicas"), 2**31, None, "int32"),
    ("replicasets", ("spec", "replicas"), 2**31, None, "int32"),
    ("replicasets", ("spec", "replicas"), False, None, "integer"),
    ("replicasets", ("spec", "template", "spec", "containers", 0, "readinessProbe", "periodSeconds"), 2**31, None,
     "int32"),
    ("replicasets", ("status", "readyReplicas"), -(2**31) - 1, None, "int32"),
    ("pods", ("spec", "containers", 0, "readinessProbe", "httpGet", "port"), 2**31, None, "int32"),
    ("pods", ("spec", "containers", 0, "securityContext", "runAsUser"), 2**63, None, "int64"),
    ("pods", ("spec", "activeDeadlineSeconds"), 2**63, None, "int64"),
    ("pods", ("spec", "priority"), 2**31, None, "int32"),
    ("pods", ("status", "containerStatuses"), [{**RESTARTS, "restartCount": 2**31}],
     "status.containerStatuses[0].restartCount", "int32"),
    ("services", ("spec", "ports", 0, "port"), 2**31, None, "int32"),
    ("services", ("spec", "ports", 0, "targetPort"), 2**31, None, "int32"),
    ("services", ("spec", "ports", 0, "nodePort"), 2**31, None, "int32"),
    ("services", ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"), 2**31, None, "int32"),
    ("endpoints", ("subsets", 0, "ports", 0, "port"), 2**31, None, "int32"),
    ("events", ("count",), 2**31, None, "int32"),
    ("events", ("series", "count"), 2**31, None, "int32"),
    ("nodes", ("status", "daemonEndpoints"), {"kubeletEndpoint": {"Port": 2**31}},
     "status.daemonEndpoints.kubeletEndpoint.Port", "int32"),
    ("nodes", ("status", "images"), [{"names": ["busybox:1"], "sizeBytes": 2**63}], "status.images[0].sizeBytes",
     "int64"),
    ("horizontalpodautoscalers", ("spec", "minReplicas"), 2**31, None, "int32"),
    ("horizontalpodautoscalers", ("spec", "maxReplicas"), 2**31, None, "int32"),
    ("horizontalpodautoscalers", ("spec", "behavior", "scaleUp", "policies", 0, "value"), 2**31, None, "int32"),
    ("horizontalpodautoscalers", ("spec", "metrics", 0, "resource", "target", "averageUtilization"), 2**31, None,
     "int32"),
    ("horizontalpodautoscalers", ("status",), {"currentReplicas": 2**31, "desiredReplicas": 0},
     "status.currentReplicas", "int32"),
    ("leases", ("spec", "leaseDurationSeconds"), 2**31, None, "int32"),
    ("leases", ("spec", "leaseTransitions"), 2**31, None, "int32"),
    ("configmaps", ("metadata", "generation"), 2**63, None, "int64"),
    ("secrets", ("metadata", "deletionGracePeriodSeconds"), 2**63, None, "int64"),
    ("namespaces", ("metadata", "generation"), 2**63, None, "int64"),
]


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(("resource", "path", "value", "field", "expected"), WIDTHS,
                         ids=[f"{r}-{field_of(p)}={v!r}" for r, p, v, _, _ in WIDTHS])
def test_integers_outside_their_kubernetes_type_are_refused(
    reg: Registry, how: str, resource: str, path: tuple[Any, ...], value: Any, field: str | None, expected: str
) -> None:
    field = merged_field(resource, how, path, field or field_of(path))
    e = refused(reg, write_at(reg, how, resource, path, value), 422, "Invalid", field,
                f"{field} must be of type {expected}")
    cause = next(c for c in e.details["causes"] if c["field"] == field)
    assert cause["reason"] == "FieldValueTypeInvalid"
    if expected == "int32":
        assert "between -2147483648 and 2147483647, inclusive" in cause["message"]


# (resource, path, value, field named in the Status, Kubernetes' message)
MINIMUMS: list[tuple[str, tuple[Any, ...], Any, str | None, str]] = [
    ("deployments", ("spec", "replicas"), -1, None, "must be greater than or equal to 0"),
    ("deployments", ("spec", "minReadySeconds"), -1, None, "must be greater than or equal to 0"),
    ("deployments", ("spec", "revisionHistoryLimit"), -1, None, "must be greater than or equal to 0"),
    ("deployments", ("spec", "progressDeadlineSeconds"), 0, None, "must be greater than 0"),
    ("deployments", ("spec", "strategy", "rollingUpdate", "maxSurge"), -1, None, "must be greater than or equal to 0"),
    ("replicasets", ("spec", "replicas"), -5, None, "must be greater than or equal to 0"),
    ("replicasets", ("status", "replicas"), -1, None, "must be greater than or equal to 0"),
    ("pods", ("spec", "containers", 0, "ports", 0, "containerPort"), 65536, None,
     "must be between 1 and 65535, inclusive"),
    ("pods", ("spec", "containers", 0, "readinessProbe", "periodSeconds"), 0, None, "must be greater than 0"),
    ("pods", ("spec", "activeDeadlineSeconds"), 2**31, None, "must be between 1 and 2147483647, inclusive"),
    ("pods", ("spec", "containers", 0, "securityContext", "runAsUser"), 2**31, None,
     "must be between 0 and 2147483647, inclusive"),
    ("pods", ("spec", "securityContext", "fsGroup"), -1, None, "must be between 0 and 2147483647, inclusive"),
    ("pods", ("status", "containerStatuses"), [{**RESTARTS, "restartCount": -1}],
     "status.containerStatuses[0].restartCount", "must be greater than or equal to 0"),
    ("services", ("spec", "ports", 0, "port"), 0, None, "must be between 1 and 65535, inclusive"),
    ("services", ("spec", "ports", 0, "nodePort"), 80, None, "provided port is not in the valid range"),
    ("services", ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"), 86401, None,
     "must be greater than 0 and less than 86400"),
    ("endpoints", ("subsets", 0, "ports", 0, "port"), 0, None, "must be between 1 and 65535, inclusive"),
    ("events", ("count",), -1, None, "must be greater than or equal to 0"),
    ("horizontalpodautoscalers", ("spec", "minReplicas"), -1, None, "must be greater than or equal to 0"),
    ("horizontalpodautoscalers", ("spec", "maxReplicas"), 0, None, "must be greater than 0"),
    ("horizontalpodautoscalers", ("spec", "behavior", "scaleUp", "policies", 0, "periodSeconds"), 1801, None,
     "less than or equal to 1800"),
    ("horizontalpodautoscalers", ("status",), {"currentReplicas": -1, "desiredReplicas": 0},
     "status.currentReplicas", "must be greater than or equal to 0"),
    ("leases", ("spec", "leaseDurationSeconds"), 0, None, "must be greater than 0"),
    ("leases", ("spec", "leaseTransitions"), -1, None, "must be greater than or equal to 0"),
]


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(("resource", "path", "value", "field", "message"), MINIMUMS,
                         ids=[f"{r}-{field_of(p)}={v!r}" for r, p, v, _, _ in MINIMUMS])
def test_integers_below_their_kubernetes_minimum_are_refused(
    reg: Registry, how: str, resource: str, path: tuple[Any, ...], value: Any, field: str | None, message: str
) -> None:
    field = merged_field(resource, how, path, field or field_of(path))
    refused(reg, write_at(reg, how, resource, path, value), 422, "Invalid", field, message)


def test_integer_bounds_themselves_are_accepted(fresh: Registry) -> None:
    deploy, pod = resolve("deployments"), resolve("pods")
    out = fresh.patch(deploy, "default", "web", {"spec": {"replicas": INT32_MAX}}, MERGE)
    assert out["spec"]["replicas"] == INT32_MAX
    body = set_at(OBJECTS["pods"], ("spec", "terminationGracePeriodSeconds"), INT64_MAX)
    body["metadata"]["name"] = "long"
    assert fresh.create(pod, "default", body)["spec"]["terminationGracePeriodSeconds"] == INT64_MAX


def test_integral_floats_are_stored_as_integers(fresh: Registry) -> None:
    deploy = resolve("deployments")
    out = fresh.patch(deploy, "default", "web", {"spec": {"replicas": 3.0, "strategy": {
        "rollingUpdate": {"maxSurge": 2.0}}}}, MERGE)
    stored = fresh.get(deploy, "default", "web")
    for obj in (out, stored):
        assert type(obj["spec"]["replicas"]) is int and obj["spec"]["replicas"] == 3
        assert type(obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"]) is int


# --- the scale subresource ------------------------------------------------------------------

# (Scale body, code, reason, field, text)
SCALES: list[tuple[Any, int, str, str | None, str]] = [
    ({"spec": {"replicas": 1000000000000}}, 422, "Invalid", "spec.replicas", "must be of type int32"),
    ({"spec": {"replicas": 2**31}}, 422, "Invalid", "spec.replicas", "must be of type int32"),
    ({"spec": {"replicas": 2**63}}, 422, "Invalid", "spec.replicas", "must be of type int32"),
    ({"spec": {"replicas": -1}}, 422, "Invalid", "spec.replicas", "must be greater than or equal to 0"),
    ({"spec": {"replicas": True}}, 422, "Invalid", "spec.replicas", "must be of type integer"),
    ({"spec": {"replicas": "3"}}, 422, "Invalid", "spec.replicas", "must be of type integer"),
    ({"spec": {"replicas": 1.5}}, 422, "Invalid", "spec.replicas", "must be of type integer"),
    ({"spec": {}}, 422, "Invalid", "spec.replicas", "Required value"),
    ({"spec": []}, 422, "Invalid", "spec", "must be of type object"),
    ({"metadata": "x", "spec": {"replicas": 1}}, 422, "Invalid", "metadata", "must be of type object"),
    ({"metadata": {"name": "other"}, "spec": {"replicas": 1}}, 400, "BadRequest", None,
     "does not match the name on the URL"),
    ({"metadata": {"namespace": "kube-system"}, "spec": {"replicas": 1}}, 400, "BadRequest", None,
     "does not match the namespace"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1}}, 400, "BadRequest", None,
     "the API version in the data (apps/v1) does not match the expected API version (autoscaling/v1)"),
    ({"kind": "Deployment", "spec": {"replicas": 1}}, 400, "BadRequest", None, "cannot be handled as a Scale"),
    ({"spec": {"replicas": float("nan")}}, 400, "BadRequest", None, "NaN is not a JSON number"),
    ([], 400, "BadRequest", None, "must be of type Scale"),
    ("x", 400, "BadRequest", None, "must be of type Scale"),
]


@pytest.mark.parametrize("resource", ["deployments", "replicasets"])
@pytest.mark.parametrize(("scale", "code", "reason", "field", "text"), SCALES, ids=[repr(s[0])[:60] for s in SCALES])
def test_scale_subresource_refuses_what_a_scale_cannot_carry(
    reg: Registry, resource: str, scale: Any, code: int, reason: str, field: str | None, text: str
) -> None:
    kind = resolve(resource)
    refused(reg, lambda: reg.update_scale(kind, "default", name_of(resource), copy.deepcopy(scale)), code, reason,
            field, text)


def test_a_dry_run_scale_is_checked_and_not_stored(reg: Registry) -> None:
    deploy = resolve("deployments")
    refused(reg, lambda: reg.update_scale(deploy, "default", "web", {"spec": {"replicas": 10**12}}, dry_run=True),
            422, "Invalid", "spec.replicas", "must be of type int32")
    before = snapshot(reg)
    assert reg.update_scale(deploy, "default", "web", {"spec": {"replicas": 7}}, dry_run=True)["spec"]["replicas"] == 7
    assert snapshot(reg) == before


def test_scale_accepts_the_int32_maximum(fresh: Registry) -> None:
    deploy = resolve("deployments")
    assert fresh.update_scale(deploy, "default", "web", {"spec": {"replicas": INT32_MAX}})["spec"]["replicas"] == (
        INT32_MAX)
    assert fresh.update_scale(deploy, "default", "web", {"spec": {"replicas": 4.0}})["spec"]["replicas"] == 4


# --- what an object is: apiVersion, kind, name, namespace, uid --------------------------------


def other_identity(kind: Kind) -> tuple[str, str]:
    """Another apiVersion, and another kind, than those of `kind`."""
    if not kind.group:
        return "apps/v1", "Secret" if kind.kind != "Secret" else "ConfigMap"
    return "v1", "Deployment" if kind.kind != "Deployment" else "ReplicaSet"


def identity_writes(reg: Registry, resource: str) -> list[tuple[str, Callable[[], Any], int, str, str | None, str]]:
    """(label, write, code, reason, field, text) for every way of changing what the object is."""
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    current = reg.get(kind, ns, name)
    uid = current["metadata"]["uid"]
    other_version, other = other_identity(kind)
    version_text = f"the API version in the data ({other_version}) does not match the expected API version " \
                   f"({kind.api_version})"
    kind_text = f'{other} in version "{kind.version}" cannot be handled as a {kind.kind}'
    name_text = f"does not match the name on the URL ({name})"

    def patch(body: Any, ctype: str) -> Callable[[], Any]:
        return lambda: reg.patch(kind, ns, name, body, ctype)

    def put(changes: dict[str, Any]) -> Callable[[], Any]:
        body = copy.deepcopy(current)
        for path, value in changes.items():
            body = set_at(body, tuple(path.split(".")), value)
        return lambda: reg.update(kind, ns, name, body)

    cases: list[tuple[str, Callable[[], Any], int, str, str | None, str]] = [
        ("merge apiVersion+kind", patch({"apiVersion": other_version, "kind": other}, MERGE), 400, "BadRequest",
         None, version_text),
        ("merge kind", patch({"kind": other}, MERGE), 400, "BadRequest", None, kind_text),
        ("json kind", patch([{"op": "replace", "path": "/kind", "value": other}], JSON_PATCH), 400,
         "BadRequest", None, kind_text),
        ("strategic apiVersion", patch({"apiVersion": other_version}, STRATEGIC), 400, "BadRequest", None,
         version_text),
        ("apply apiVersion+kind", patch({"apiVersion": other_version, "kind": other, "metadata": {"name": name}},
                                        APPLY), 400, "BadRequest", None, version_text),
        ("json name", patch([{"op": "replace", "path": "/metadata/name", "value": "other"}], JSON_PATCH), 400,
         "BadRequest", None, f"the name of the object (other) {name_text}"),
        ("json name removed", patch([{"op": "remove", "path": "/metadata/name"}], JSON_PATCH), 400, "BadRequest",
         None, f"the name of the object () {name_text}"),
        ("merge name", patch({"metadata": {"name": "other"}}, MERGE), 400, "BadRequest", None, name_text),
        ("strategic name", patch({"metadata": {"name": "other"}}, STRATEGIC), 400, "BadRequest", None, name_text),
        ("strategic delete all", patch({"$patch": "delete"}, STRATEGIC), 400, "BadRequest", None, name_text),
        ("json uid", patch([{"op": "replace", "path": "/metadata/uid", "value": "other-uid"}], JSON_PATCH), 422,
         "Invalid", "metadata.uid", "field is immutable"),
        ("merge uid", patch({"metadata": {"uid": "other-uid"}}, MERGE), 422, "Invalid", "metadata.uid",
         "field is immutable"),
        ("strategic uid", patch({"metadata": {"uid": "other-uid"}}, STRATEGIC), 422, "Invalid", "metadata.uid",
         "field is immutable"),
        ("put apiVersion", put({"apiVersion": other_version}), 400, "BadRequest", None, version_text),
        ("put kind", put({"kind": other}), 400, "BadRequest", None, kind_text),
        ("put name", put({"metadata.name": "other"}), 400, "BadRequest", None,
         f"the name of the object (other) {name_text}"),
        ("put uid", put({"metadata.uid": "other-uid"}), 409, "Conflict", None,
         f"Precondition failed: UID in precondition: other-uid, UID in object meta: {uid}"),
    ]
    if kind.namespaced:
        cases += [
            ("strategic namespace", patch({"metadata": {"namespace": "kube-system"}}, STRATEGIC), 400, "BadRequest",
             None, "the namespace of the provided object (kube-system) does not match the namespace sent on the "
                   "request (default)"),
            ("json namespace", patch([{"op": "replace", "path": "/metadata/namespace", "value": "kube-system"}],
                                     JSON_PATCH), 400, "BadRequest", None, "does not match the namespace"),
            ("put namespace", put({"metadata.namespace": "kube-system"}), 400, "BadRequest", None,
             "the namespace of the object (kube-system) does not match the namespace on the request (default)"),
        ]
    return cases


IDENTITY_LABELS = [
    "merge apiVersion+kind", "merge kind", "json kind", "strategic apiVersion", "apply apiVersion+kind", "json name",
    "json name removed", "merge name", "strategic name", "strategic delete all", "json uid", "merge uid",
    "strategic uid", "put apiVersion", "put kind", "put name", "put uid", "strategic namespace", "json namespace",
    "put namespace",
]


IDENTITY_CASES = [(r, label) for r in RESOURCES for label in IDENTITY_LABELS
                  if resolve(r).namespaced or "namespace" not in label]


@pytest.mark.parametrize(("resource", "label"), IDENTITY_CASES)
def test_writes_cannot_change_what_an_object_is(reg: Registry, resource: str, label: str) -> None:
    write, code, reason, field, text = {c[0]: c[1:] for c in identity_writes(reg, resource)}[label]
    refused(reg, write, code, reason, field, text)
    kind = resolve(resource)
    stored = reg.get(kind, ns_of(kind), name_of(resource))
    assert (stored["apiVersion"], stored["kind"]) == (kind.api_version, kind.kind)


@pytest.mark.parametrize("resource", RESOURCES)
def test_the_same_identity_given_back_is_fine(fresh: Registry, resource: str) -> None:
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    before = fresh.get(kind, ns, name)
    meta = {k: before["metadata"][k] for k in ("name", "uid", "creationTimestamp") if k in before["metadata"]}
    if kind.namespaced:
        meta["namespace"] = ns
    for ctype in (MERGE, STRATEGIC, APPLY):
        fresh.patch(kind, ns, name, {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta}, ctype)
    fresh.patch(kind, ns, name, [{"op": "replace", "path": "/metadata/name", "value": name},
                                 {"op": "replace", "path": "/kind", "value": kind.kind}], JSON_PATCH)
    fresh.update(kind, ns, name, fresh.get(kind, ns, name))
    after = fresh.get(kind, ns, name)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert (after["apiVersion"], after["kind"]) == (kind.api_version, kind.kind)


@pytest.mark.parametrize("resource", RESOURCES)
def test_patches_without_apiversion_and_kind_keep_them(fresh: Registry, resource: str) -> None:
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    fresh.patch(kind, ns, name, {"apiVersion": None, "kind": None}, MERGE)
    fresh.patch(kind, ns, name, [{"op": "remove", "path": "/kind"}], JSON_PATCH)
    stored = fresh.get(kind, ns, name)
    assert (stored["apiVersion"], stored["kind"]) == (kind.api_version, kind.kind)


@pytest.mark.parametrize("resource", RESOURCES)
def test_creation_timestamp_changes_are_ignored_as_in_kubernetes(fresh: Registry, resource: str) -> None:
    # the API server's BeforeUpdate keeps the stored creationTimestamp ("ignore changes to timestamp")
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    created = fresh.get(kind, ns, name)["metadata"]["creationTimestamp"]
    fresh.patch(kind, ns, name, {"metadata": {"creationTimestamp": "2000-01-01T00:00:00Z"}}, MERGE)
    body = set_at(fresh.get(kind, ns, name), ("metadata", "creationTimestamp"), "1999-01-01T00:00:00Z")
    fresh.update(kind, ns, name, body)
    assert fresh.get(kind, ns, name)["metadata"]["creationTimestamp"] == created


@pytest.mark.parametrize("resource", ["nodes", "namespaces"])
def test_a_namespace_on_a_cluster_scoped_object_is_dropped(fresh: Registry, resource: str) -> None:
    kind = resolve(resource)
    name = name_of(resource)
    fresh.patch(kind, None, name, {"metadata": {"namespace": "default"}}, STRATEGIC)
    assert "namespace" not in fresh.get(kind, None, name)["metadata"]


# --- shapes -----------------------------------------------------------------------------------

SHAPE_WRITES = ["create", "update", "merge", "json", "strategic", "apply"]


def shape_cases() -> list[tuple[str, str, Any, str, str]]:
    """(resource, field, value, field named, expected type) for every kind."""
    out = []
    for resource in RESOURCES:
        out.append((resource, "metadata", "x", "metadata", "object"))
        out.append((resource, "metadata", ["x"], "metadata", "object"))
        payload = PAYLOAD[resource]
        expected = "array" if resource == "endpoints" else "object"
        out.append((resource, payload, {} if expected == "array" else [1, 2], payload, expected))
        out.append((resource, payload, "x", payload, expected))
    return out


SHAPES = shape_cases()


@pytest.mark.parametrize("how", SHAPE_WRITES)
@pytest.mark.parametrize(("resource", "top", "value", "field", "expected"), SHAPES,
                         ids=[f"{r}-{t}={v!r}" for r, t, v, _, _ in SHAPES])
def test_fields_of_the_wrong_shape_are_refused(
    reg: Registry, how: str, resource: str, top: str, value: Any, field: str, expected: str
) -> None:
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    if how == "create":
        write = lambda: reg.create(kind, ns, {**copy.deepcopy(OBJECTS[resource]), top: value})  # noqa: E731
    elif how == "update":
        write = lambda: reg.update(kind, ns, name, {**reg.get(kind, ns, name), top: value})  # noqa: E731
    elif how == "json":
        write = lambda: reg.patch(kind, ns, name, [{"op": "add", "path": f"/{top}", "value": value}],  # noqa: E731
                                  JSON_PATCH)
    else:
        ctype = {"merge": MERGE, "strategic": STRATEGIC, "apply": APPLY}[how]
        write = lambda: reg.patch(kind, ns, name, {top: value}, ctype)  # noqa: E731
    e = refused(reg, write, 422, "Invalid", field, f"{field} must be of type {expected}")
    if how != "create":
        assert e.details["name"] == name


NON_OBJECTS = [[], [{"kind": "Pod"}], "x", 1, True, None]


@pytest.mark.parametrize("body", NON_OBJECTS, ids=repr)
@pytest.mark.parametrize("resource", RESOURCES)
def test_bodies_that_are_not_objects_are_bad_requests(reg: Registry, resource: str, body: Any) -> None:
    kind = resolve(resource)
    ns, name = ns_of(kind), name_of(resource)
    text = f"must be of type {kind.kind}"
    refused(reg, lambda: reg.create(kind, ns, copy.deepcopy(body)), 400, "BadRequest", None, text)
    refused(reg, lambda: reg.update(kind, ns, name, copy.deepcopy(body)), 400, "BadRequest", None, text)
    if kind.has_status:
        refused(reg, lambda: reg.update(kind, ns, name, copy.deepcopy(body), "status"), 400, "BadRequest", None, text)
    # a merge patch that is not an object replaces the whole object
    refused(reg, lambda: reg.patch(kind, ns, name, copy.deepcopy(body), MERGE), 400, "BadRequest", None,
            "the patch did not produce an object")
    refused(reg, lambda: reg.patch(kind, ns, name, [{"op": "replace", "path": "", "value": body}], JSON_PATCH),
            400, "BadRequest", None, "the patch did not produce an object")
    with pytest.raises(ApiError) as e:
        reg.patch(kind, ns, name, copy.deepcopy(body), STRATEGIC)
    assert e.value.code in (400, 422)


# --- values JSON cannot carry -----------------------------------------------------------------


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


JSON_VALUES: list[tuple[str, Callable[[Registry], Callable[[], Any]], str]] = [
    ("NaN annotation on create", lambda r: lambda: r.create(resolve("configmaps"), "default", {
        "metadata": {"name": "n", "annotations": {"a": float("nan")}}}), "NaN is not a JSON number"),
    ("Infinity replicas on create", lambda r: lambda: r.create(resolve("deployments"), "default", set_at(
        {**OBJECTS["deployments"], "metadata": {"name": "inf"}}, ("spec", "replicas"), float("inf"))),
     "Infinity is not a JSON number"),
    ("NaN inside an opaque affinity on update", lambda r: lambda: r.update(resolve("pods"), "default", "pod", set_at(
        r.get(resolve("pods"), "default", "pod"), ("spec", "affinity"), {"x": [float("nan")]})),
     "NaN is not a JSON number"),
    ("NaN in a merge patch", lambda r: lambda: r.patch(resolve("leases"), "default", "lease", {
        "spec": {"leaseDurationSeconds": float("nan")}}, MERGE), "NaN is not a JSON number"),
    ("a YAML date in an apply patch", lambda r: lambda: r.patch(resolve("configmaps"), "default", "cm", {
        "data": {"day": datetime.date(2026, 1, 1)}}, APPLY), "a value of type date is not a JSON value"),
    ("a YAML date on create", lambda r: lambda: r.create(resolve("configmaps"), "default", {
        "metadata": {"name": "d"}, "data": {"day": datetime.date(2026, 1, 1)}}),
     "a value of type date is not a JSON value"),
    ("a patch nested 150 levels deep", lambda r: lambda: r.patch(resolve("configmaps"), "default", "cm", {
        "metadata": {"annotations": deep(150)}}, STRATEGIC), "exceeded max depth of 100"),
    ("an object nested 150 levels deep", lambda r: lambda: r.create(resolve("pods"), "default", set_at(
        {**OBJECTS["pods"], "metadata": {"name": "deep"}}, ("spec", "affinity"), deep(150))),
     "exceeded max depth of 100"),
]


@pytest.mark.parametrize(("label", "make", "text"), JSON_VALUES, ids=[c[0] for c in JSON_VALUES])
def test_values_json_cannot_carry_are_bad_requests(
    reg: Registry, label: str, make: Callable[[Registry], Callable[[], Any]], text: str
) -> None:
    refused(reg, make(reg), 400, "BadRequest", None, text)


# --- defaults and validation assume nothing ---------------------------------------------------

MALFORMED = [
    {"spec": []}, {"spec": "x"}, {"spec": {"template": []}}, {"spec": {"template": {"spec": []}}},
    {"spec": {"containers": "x"}}, {"spec": {"containers": [1, None, "x", []]}},
    {"spec": {"template": {"spec": {"containers": [{"ports": "x", "livenessProbe": [], "resources": []}]}}}},
    {"spec": {"ports": [None, 1, "x"], "sessionAffinity": "ClientIP", "sessionAffinityConfig": []}},
    {"spec": {"strategy": [], "behavior": []}}, {"spec": {"strategy": {"rollingUpdate": "x"}}},
    {"spec": {"behavior": {"scaleUp": [], "scaleDown": "x"}}, "status": []}, {"metadata": "x", "status": "x"},
    {"data": [], "stringData": "x", "type": []}, {"subsets": {}, "involvedObject": []},
]
KINDS = sorted({resolve(r).kind for r in RESOURCES})


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: json.dumps(b)[:50])
@pytest.mark.parametrize("kind", KINDS)
def test_defaults_and_validation_tolerate_any_shape(kind: str, body: dict[str, Any]) -> None:
    obj = copy.deepcopy(body)
    defaults.apply_defaults(kind, obj)  # must not raise
    defaults.apply_defaults(kind, [])  # type: ignore[arg-type]
    assert validation.validate(kind, obj)  # reported, not raised (there is no metadata.name at least)
    assert isinstance(validation.type_errors(kind, copy.deepcopy(body)), list)


# --- through the HTTP layer -------------------------------------------------------------------

H = {"Authorization": f"Bearer {ADMIN}"}


def test_http_answers_statuses_for_hostile_writes(tmp_path: Path) -> None:
    reg, api = make_api(tmp_path)
    deploy = {**OBJECTS["deployments"], "metadata": {"name": "web"}}
    assert api.post("/apis/apps/v1/namespaces/default/deployments", json=deploy, headers=H).status_code == 201
    cm = OBJECTS["configmaps"]
    assert api.post("/api/v1/namespaces/default/configmaps", json=cm, headers=H).status_code == 201
    rev = reg.store.current_revision()

    def status(r: Any, code: int, reason: str, field: str | None = None) -> dict[str, Any]:
        assert r.status_code == code, r.text
        body = r.json()
        assert (body["kind"], body["code"], body["reason"]) == ("Status", code, reason)
        if field:
            assert field in [c["field"] for c in body["details"]["causes"]]
        assert reg.store.current_revision() == rev
        return body

    huge = {**deploy, "metadata": {"name": "huge"}, "spec": {**deploy["spec"], "replicas": 2**63}}
    status(api.post("/apis/apps/v1/namespaces/default/deployments", json=huge, headers=H), 422, "Invalid",
           "spec.replicas")
    scale = "/apis/apps/v1/namespaces/default/deployments/web/scale"
    status(api.patch(scale, json={"spec": {"replicas": 1000000000000}},
                     headers={**H, "Content-Type": MERGE}), 422, "Invalid", "spec.replicas")
    status(api.put(scale, json={"spec": {"replicas": -1}}, headers=H), 422, "Invalid", "spec.replicas")
    cm_url = "/api/v1/namespaces/default/configmaps/cm"
    body = status(api.patch(cm_url, json={"kind": "Secret", "apiVersion": "apps/v1"},
                            headers={**H, "Content-Type": MERGE}), 400, "BadRequest")
    assert body["message"] == "the API version in the data (apps/v1) does not match the expected API version (v1)"
    status(api.patch(cm_url, json=[{"op": "replace", "path": "/metadata/name", "value": "x"}],
                     headers={**H, "Content-Type": JSON_PATCH}), 400, "BadRequest")
    status(api.patch(cm_url, json={"metadata": {"namespace": "kube-system"}},
                     headers={**H, "Content-Type": STRATEGIC}), 400, "BadRequest")
    status(api.patch(cm_url, json=[{"op": "replace", "path": "/metadata/uid", "value": "x"}],
                     headers={**H, "Content-Type": JSON_PATCH}), 422, "Invalid", "metadata.uid")
    status(api.put(cm_url, json={**cm, "metadata": "x"}, headers=H), 422, "Invalid", "metadata")
    status(api.post("/apis/apps/v1/namespaces/default/deployments", json=[deploy], headers=H), 400, "BadRequest")
    stored = api.get(cm_url, headers=H).json()
    assert (stored["apiVersion"], stored["kind"], stored["metadata"]["name"]) == ("v1", "ConfigMap", "cm")
    assert api.get(scale, headers=H).json()["spec"]["replicas"] == 2


def test_an_int64_grace_period_saturates_the_deletion_timestamp(tmp_path: Path) -> None:
    r = Registry(SQLiteStore(str(tmp_path / "g.db")))
    r.ensure_namespaces()
    pods = resolve("pods")
    r.create(resolve("nodes"), None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    r.create(pods, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "g"},
                               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}})
    out = r.delete(pods, "default", "g", grace_period=2**62)
    assert out["metadata"]["deletionGracePeriodSeconds"] == 2**62
    assert out["metadata"]["deletionTimestamp"] > "2100"
