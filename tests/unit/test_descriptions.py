"""Field descriptions: the table taken from Kubernetes' OpenAPI and where they show up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.api import openapi
from orchestrator.api.descriptions import build_table, description, field_ref, kind_definition, render, table
from orchestrator.objects import schema
from orchestrator.objects.kinds import KINDS, resolve


@pytest.mark.parametrize(("resource", "definition"), [
    ("deployments", "io.k8s.api.apps.v1.Deployment"),
    ("pods", "io.k8s.api.core.v1.Pod"),
    ("leases", "io.k8s.api.coordination.v1.Lease"),
    ("horizontalpodautoscalers", "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"),
])
def test_kind_definition(resource: str, definition: str) -> None:
    assert kind_definition(resolve(resource)) == definition


@pytest.mark.parametrize(("definition", "field", "starts", "ref"), [
    ("io.k8s.api.apps.v1.Deployment", "", "Deployment enables declarative updates", None),
    ("io.k8s.api.apps.v1.Deployment", "spec", "Specification of the desired behavior", "io.k8s.api.apps.v1.DeploymentSpec"),
    ("io.k8s.api.apps.v1.DeploymentSpec", "replicas", "Number of desired pods.", None),
    ("io.k8s.api.core.v1.PodSpec", "containers", "List of containers belonging to the pod.",
     "io.k8s.api.core.v1.Container"),  # a list: the items' definition
    ("io.k8s.api.core.v1.Container", "image", "Container image name.", None),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels", "Map of string keys and values", None),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "managedFields", "ManagedFields maps workflow-id",
     "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"),
    ("io.k8s.api.discovery.v1.EndpointSlice", "", "EndpointSlice represents a set of service endpoints.", None),
])
def test_lookup(definition: str, field: str, starts: str, ref: str | None) -> None:
    assert description(definition, field).startswith(starts)
    assert field_ref(definition, field) == ref


def test_lookup_of_the_unknown_is_empty() -> None:
    assert description("io.k8s.api.apps.v1.DeploymentSpec", "bogus") == ""
    assert description("io.example.Nothing") == "" and description(None, "x") == ""
    assert field_ref("io.k8s.api.apps.v1.DeploymentSpec", "bogus") is None and field_ref(None, "x") is None


SWAGGER: dict[str, Any] = {
    "io.k8s.api.x.v1.Thing": {"description": "A thing.", "properties": {
        "metadata": {"$ref": "#/definitions/io.k8s.api.x.v1.Meta", "description": "Its metadata."},
        "spec": {"allOf": [{"$ref": "#/definitions/io.k8s.api.x.v1.Spec"}], "description": "What it wants."},
        "unserved": {"$ref": "#/definitions/io.k8s.api.x.v1.Hidden", "description": "Not here."}}},
    "io.k8s.api.x.v1.Meta": {"description": "Meta.", "properties": {"name": {"type": "string", "description": "N."}}},
    "io.k8s.api.x.v1.Spec": {"description": "Spec.", "properties": {
        "parts": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.x.v1.Part"}, "description": "P."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "L."}}},
    "io.k8s.api.x.v1.Part": {"description": "Part.", "properties": {"size": {"type": "integer", "description": "S."}}},
    "io.k8s.api.x.v1.Hidden": {"description": "Hidden.", "properties": {}},
}


class _Kind:
    group, version, kind = "x", "v1", "Thing"
    schema = schema.struct(metadata=schema.struct(name=schema.STRING),
                           spec=schema.struct(parts=schema.ListOf(schema.struct(size=schema.INT32)),
                                              labels=schema.MapOf(schema.STRING)))


def test_build_table_follows_the_served_fields() -> None:
    built = build_table(SWAGGER, [_Kind()], [])  # type: ignore[list-item]
    assert sorted(built) == ["io.k8s.api.x.v1.Meta", "io.k8s.api.x.v1.Part", "io.k8s.api.x.v1.Spec",
                             "io.k8s.api.x.v1.Thing"]  # Hidden is reached through an unserved field only
    assert built["io.k8s.api.x.v1.Thing"]["spec"] == ("What it wants.", "io.k8s.api.x.v1.Spec")  # allOf
    assert built["io.k8s.api.x.v1.Thing"]["unserved"] == ("Not here.", "io.k8s.api.x.v1.Hidden")  # every field
    assert built["io.k8s.api.x.v1.Spec"]["parts"] == ("P.", "io.k8s.api.x.v1.Part")
    assert built["io.k8s.api.x.v1.Thing"][""] == ("A thing.", "")
    assert "io.k8s.api.x.v1.Hidden" in build_table(SWAGGER, [], ["io.k8s.api.x.v1.Thing"])
    namespace: dict[str, Any] = {}
    exec(render(built, "a test"), namespace)  # the generated module reads back as the table
    assert namespace["TABLE"] == built


def test_table_is_generated_shape() -> None:
    t = table()
    assert all(isinstance(v, tuple) and len(v) == 2 for entries in t.values() for v in entries.values())
    assert all(entries.get("", ("", ""))[1] == "" for entries in t.values())  # a definition's own entry


def _props(doc: dict[str, Any], path: str, out: dict[str, dict[str, Any]]) -> None:
    for name, prop in (doc.get("properties") or {}).items():
        out[f"{path}.{name}"] = prop
        sub = prop
        while isinstance(sub, dict) and (sub.get("type") == "array" or "additionalProperties" in sub):
            sub = sub.get("items") or sub.get("additionalProperties")
        if isinstance(sub, dict):
            _props(sub, f"{path}.{name}", out)


def test_openapi_documents_carry_the_descriptions() -> None:
    apps = json.loads(openapi.v3_document("apps", "v1") or b"")["components"]["schemas"]
    dep = apps["io.k8s.api.apps.v1.Deployment"]
    assert dep["description"].startswith("Deployment enables declarative updates")
    spec = dep["properties"]["spec"]
    assert spec["description"] == "Specification of the desired behavior of the Deployment."
    assert spec["properties"]["replicas"]["description"].startswith("Number of desired pods.")
    containers = spec["properties"]["template"]["properties"]["spec"]["properties"]["containers"]
    assert containers["description"].startswith("List of containers belonging to the pod.")
    assert containers["items"]["properties"]["image"]["description"].startswith("Container image name.")
    assert containers["x-kubernetes-patch-merge-key"] == "name"  # extensions stay
    scale = apps[openapi.SCALE_NAME]
    assert scale["properties"]["spec"]["properties"]["replicas"]["description"].startswith("replicas is the desired")
    v2 = json.loads(openapi.v2_document())["definitions"]
    assert v2["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["description"].startswith("Specification of the desired")


def test_nearly_every_served_field_is_described() -> None:
    """The table covers the schemas: only Dockyard's own fields may lack a text (a field
    whose definition is missing means: regenerate `descriptiondata`)."""
    props: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        raw = openapi.v3_document(kind.group, kind.version)
        doc = json.loads(raw or b"{}").get("components", {}).get("schemas", {}).get(openapi.definition_name(kind))
        if doc is None or kind_definition(kind) not in table():
            continue
        assert doc["description"] == description(kind_definition(kind))
        _props(doc, kind.kind, props)
    missing = [p for p, prop in props.items() if not prop.get("description")]
    assert len(props) > 500 and len(missing) <= len(props) // 20, missing
