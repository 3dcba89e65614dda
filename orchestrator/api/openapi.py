"""OpenAPI documents generated from the object schemas, and schema-driven field pruning.

kubectl reads the server's OpenAPI before it writes anything:

* `kubectl apply` (default `--validate=strict`) looks in `/openapi/v3` for a PATCH operation
  of the object's group/version/kind (the `x-kubernetes-group-version-kind` extension of
  the operation) that declares a `fieldValidation` query parameter. When it finds one it
  leaves validation to the server and sends `fieldValidation=Strict`; otherwise it falls
  back to client-side validation against `/openapi/v2`, and fails if neither is served.
* client-side `kubectl apply` computes a three-way strategic merge patch from the schema of
  the kind (the component whose `x-kubernetes-group-version-kind` lists it): lists carrying
  `x-kubernetes-patch-merge-key`/`x-kubernetes-patch-strategy` are merged element by
  element, other lists are replaced whole. The extensions come from the same table the
  server merges with (`patch.MERGE_KEYS`), so client and server agree.
* `kubectl explain` walks `properties` of the same component and prints each field's
  `description`: Kubernetes' own texts (`api.descriptions`), attached along the walk from
  the kind's Kubernetes definition down through the definitions of its fields.

The documents are built from the kinds' schemas only (`Kind.schema`, each in its kind's
module under `objects/resources/`), so a field added there shows up here; a kind served in
several versions (`kinds.SERVED`: autoscaling/v1 and v2 HorizontalPodAutoscalers) is
documented in each, with that version's fields. Nested structs
are inlined (no `$ref`s below the kind): the merge-key extensions are then attached by
exact path, and every schema is self-contained. `/openapi/v3` is an index
of `serverRelativeURL`s carrying a content hash, which lets clients cache documents until
the schema changes; `/openapi/v2` is one Swagger document with the same definitions (as JSON; a
protobuf request gets an empty document, see `V2_PROTOBUF`).

`prune_unknown` is the other use of the schemas here: `fieldValidation=Ignore|Warn` drops
unknown fields from a request body (and reports them) instead of rejecting the request.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache, lru_cache
from typing import Any

from .. import __version__
from ..objects import patch, schema
from ..objects.kinds import SERVED, Kind, schema_for
from .descriptions import description, field_ref, kind_definition

Doc = dict[str, Any]

_SCALARS: dict[str, Doc] = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "format": "int64"},
    "boolean": {"type": "boolean"},
    "number": {"type": "number", "format": "double"},
    "integer or string": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "quantity": {"type": "string", "format": "quantity"},
    "any": {"x-kubernetes-preserve-unknown-fields": True},
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}

QUERY_PARAMS_WRITE = ("dryRun", "fieldManager", "fieldValidation", "pretty")
QUERY_PARAMS_LIST = (
    "labelSelector", "fieldSelector", "resourceVersion", "resourceVersionMatch", "timeoutSeconds",
    "watch", "allowWatchBookmarks", "limit", "continue", "sendInitialEvents", "pretty",
)


def definition_name(kind: Kind) -> str:
    """The definition name Kubernetes uses, e.g. `io.k8s.api.apps.v1.Deployment`,
    `io.k8s.api.discovery.v1.EndpointSlice` (the group's first word)."""
    return kind_definition(kind)


def gvk(kind: Kind) -> dict[str, str]:
    return {"group": kind.group, "version": kind.version, "kind": kind.kind}


def _list_extensions(strategy: str | None) -> Doc:
    if strategy is None:
        return {"x-kubernetes-list-type": "atomic"}
    if strategy == patch.SET:
        return {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}
    return {
        "x-kubernetes-patch-merge-key": strategy,
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": [strategy],
    }


def node_schema(node: schema.Node, path: str = "", merge_keys: dict[str, str] | None = None,
                definition: str | None = None) -> Doc:
    """The OpenAPI schema of one schema node; `path` is its dotted path without list indices,
    `definition` the Kubernetes definition of its struct (of the items' struct for lists and
    maps), whose field descriptions go on the properties."""
    keys = merge_keys or {}
    if isinstance(node, schema.Scalar):
        out = dict(_SCALARS[node.name])
        if node.name == "integer" and node.format:
            out["format"] = node.format  # int32 where Kubernetes has int32
        return out
    if isinstance(node, schema.ListOf):
        return {"type": "array", "items": node_schema(node.item, path, keys, definition),
                **_list_extensions(keys.get(path))}
    if isinstance(node, schema.MapOf):
        return {"type": "object", "additionalProperties": node_schema(node.value, path, keys, definition)}
    props: dict[str, Doc] = {}
    for name, child in node.fields.items():
        prop = node_schema(child, f"{path}.{name}" if path else name, keys, field_ref(definition, name))
        text = description(definition, name)
        props[name] = {"description": text, **prop} if text else prop
    return {"type": "object", "properties": props}


def kind_schema(kind: Kind) -> Doc:
    """The full schema of a kind, with its group/version/kind, merge-key extensions and
    Kubernetes' descriptions."""
    assert kind.schema is not None, kind.kind  # only kinds with a schema are documented
    definition = kind_definition(kind)
    doc = node_schema(kind.schema, "", patch.MERGE_KEYS.get(kind.kind, {}), definition)
    doc["description"] = description(definition) or f"{kind.kind} as served by Dockyard ({kind.api_version})."
    doc["x-kubernetes-group-version-kind"] = [gvk(kind)]
    return doc


def list_schema(kind: Kind, ref: str) -> Doc:
    return {
        "type": "object",
        "description": f"A list of {kind.kind} objects.",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "properties": {
                "resourceVersion": {"type": "string"}, "continue": {"type": "string"}}},
            "items": {"type": "array", "items": {"$ref": ref}},
        },
        "x-kubernetes-group-version-kind": [{**gvk(kind), "kind": kind.list_kind}],
    }


# --- paths ---------------------------------------------------------------------------------------


def _param(name: str, where: str = "query", required: bool = False) -> Doc:
    return {"name": name, "in": where, "required": required, "schema": {"type": "string"}, "uniqueItems": True}


def _response(ref: str, code: str = "200") -> Doc:
    return {code: {"description": "OK", "content": {
        "application/json": {"schema": {"$ref": ref}},
        "application/yaml": {"schema": {"$ref": ref}},
    }}}


def _op(action: str, op_id: str, target: Doc, ref: str, params: tuple[str, ...] = (), body: bool = False,
        body_types: tuple[str, ...] = ("application/json", "application/yaml")) -> Doc:
    op: Doc = {
        "operationId": op_id,
        "parameters": [_param(p) for p in params],
        "responses": _response(ref),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": target,
    }
    if body:
        op["requestBody"] = {"required": True, "content": {t: {"schema": {"$ref": ref}} for t in body_types}}
    return op


_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def _paths(kind: Kind, ref: str, list_ref: str, scale_ref: str | None) -> dict[str, Doc]:
    root = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    op = f"{kind.group.title()}{kind.version.title()}" if kind.group else f"Core{kind.version.title()}"
    scope = "Namespaced" if kind.namespaced else ""
    collection = f"{root}/namespaces/{{namespace}}/{kind.resource}" if kind.namespaced else f"{root}/{kind.resource}"
    item = f"{collection}/{{name}}"
    path_params = [_param("namespace", "path", True)] if kind.namespaced else []
    g = gvk(kind)
    out: dict[str, Doc] = {
        collection: {
            "parameters": path_params,
            "get": _op("list", f"list{op}{scope}{kind.kind}", g, list_ref, QUERY_PARAMS_LIST),
            "post": _op("post", f"create{op}{scope}{kind.kind}", g, ref, QUERY_PARAMS_WRITE, body=True),
            "delete": _op("deletecollection", f"deletecollection{op}{scope}{kind.kind}", g, list_ref,
                          ("labelSelector", "fieldSelector", "dryRun", "gracePeriodSeconds",
                           "propagationPolicy")),
        },
        item: {
            "parameters": [*path_params, _param("name", "path", True)],
            "get": _op("get", f"read{op}{scope}{kind.kind}", g, ref),
            "put": _op("put", f"replace{op}{scope}{kind.kind}", g, ref, QUERY_PARAMS_WRITE, body=True),
            "patch": _op("patch", f"patch{op}{scope}{kind.kind}", g, ref, (*QUERY_PARAMS_WRITE, "force"),
                         body=True, body_types=_PATCH_TYPES),
            "delete": _op("delete", f"delete{op}{scope}{kind.kind}", g, ref,
                          ("dryRun", "gracePeriodSeconds", "propagationPolicy")),
        },
    }
    if kind.namespaced:
        out[f"{root}/{kind.resource}"] = {
            "get": _op("list", f"list{op}{kind.kind}ForAllNamespaces", g, list_ref, QUERY_PARAMS_LIST),
        }
    for sub in kind.subresources:
        if sub == "status":
            sub_ref, sub_gvk, sub_name = ref, g, "Status"
        elif sub == "scale" and scale_ref is not None:
            sub_ref, sub_gvk, sub_name = scale_ref, {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "Scale"
        else:
            continue  # binding, log and exec are not described
        out[f"{item}/{sub}"] = {
            "parameters": [*path_params, _param("name", "path", True)],
            "get": _op("get", f"read{op}{scope}{kind.kind}{sub_name}", sub_gvk, sub_ref),
            "put": _op("put", f"replace{op}{scope}{kind.kind}{sub_name}", sub_gvk, sub_ref, QUERY_PARAMS_WRITE,
                       body=True),
            "patch": _op("patch", f"patch{op}{scope}{kind.kind}{sub_name}", sub_gvk, sub_ref,
                         (*QUERY_PARAMS_WRITE, "force"), body=True, body_types=_PATCH_TYPES),
        }
    return out


SCALE_NAME = "io.k8s.api.autoscaling.v1.Scale"


@cache
def scale_schema() -> Doc:
    """The body of the `scale` subresource (autoscaling/v1 Scale)."""
    scale = schema.struct(
        apiVersion=schema.STRING, kind=schema.STRING, metadata=schema.OBJECT_META,
        spec=schema.struct(replicas=schema.INT32),
        status=schema.struct(replicas=schema.INT32, selector=schema.STRING),
    )
    doc = node_schema(scale, "", {}, SCALE_NAME)
    doc["description"] = description(SCALE_NAME) or "Scale represents a scaling request for a resource."
    doc["x-kubernetes-group-version-kind"] = [{"group": "autoscaling", "version": "v1", "kind": "Scale"}]
    return doc


def group_versions() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for k in SERVED:
        if (k.group, k.version) not in seen:
            seen.append((k.group, k.version))
    return seen


def gv_path(group: str, version: str) -> str:
    """The key of a group/version in the v3 index: `api/v1`, `apis/apps/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


@cache
def _v3_document(group: str, version: str) -> bytes | None:
    kinds = [k for k in SERVED if k.group == group and k.version == version and k.schema is not None]
    if not kinds:
        return None
    schemas: dict[str, Doc] = {}
    paths: dict[str, Doc] = {}
    for k in kinds:
        name = definition_name(k)
        schemas[name] = kind_schema(k)
        schemas[f"{name}List"] = list_schema(k, f"#/components/schemas/{name}")
        scale_ref = None
        if "scale" in k.subresources:
            schemas[SCALE_NAME] = scale_schema()
            scale_ref = f"#/components/schemas/{SCALE_NAME}"
        paths.update(_paths(k, f"#/components/schemas/{name}", f"#/components/schemas/{name}List", scale_ref))
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Dockyard", "version": f"v1.32.0+dockyard-{__version__}"},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def v3_document(group: str, version: str) -> bytes | None:
    """The OpenAPI v3 document of one group/version, serialized, or None if not served."""
    return _v3_document(group, version)


def v3_hash(group: str, version: str) -> str:
    body = _v3_document(group, version) or b""
    return hashlib.sha512(body).hexdigest()[:32].upper()


def v3_index() -> Doc:
    """`/openapi/v3`: where each group/version document is, with a content hash for caching."""
    return {
        "paths": {
            gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}?hash={v3_hash(g, v)}"}
            for g, v in group_versions()
            if _v3_document(g, v) is not None
        }
    }


def _to_v2(doc: Any) -> Any:
    """Rewrite v3 component references to v2 definition references."""
    if isinstance(doc, dict):
        return {k: (v.replace("#/components/schemas/", "#/definitions/") if k == "$ref" else _to_v2(v))
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [_to_v2(x) for x in doc]
    return doc


@lru_cache(maxsize=1)
def v2_document() -> bytes:
    """`/openapi/v2`: a Swagger 2.0 document with every kind's definition (paths omitted)."""
    definitions: dict[str, Doc] = {}
    for g, v in group_versions():
        raw = _v3_document(g, v)
        if raw is not None:
            definitions.update(_to_v2(json.loads(raw)["components"]["schemas"]))
    doc = {
        "swagger": "2.0",
        "info": {"title": "Dockyard", "version": f"v1.32.0+dockyard-{__version__}"},
        "paths": {},
        "definitions": definitions,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


# kubectl asks for `/openapi/v2` as protobuf (gnostic's openapi_v2.Document) only when v3
# does not describe a kind, i.e. for kinds this server does not serve. It then validates
# against the definitions it finds there, and skips kinds without one, so the next error is
# the honest "resource mapping not found". Field 1 of the Document is `swagger`.
V2_PROTOBUF = b"\x0a\x032.0"
V2_PROTOBUF_MEDIA = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


# --- unknown fields ------------------------------------------------------------------------------


def _schema_of(kind: str | Kind) -> schema.Struct | None:
    """A served kind's schema (of the version it is served in), or a kind's by name."""
    return kind.schema if isinstance(kind, Kind) else schema_for(kind)


def prune_unknown(kind: str | Kind, obj: Any) -> list[str]:
    """Remove fields `kind` does not have from `obj` in place; return their dotted paths.

    Patch directives (`$patch`, `$setElementOrder/...`, ...) are kept, so a strategic merge
    patch can be pruned as well as a whole object. A Kind is checked by the fields of the
    version it is served in (autoscaling/v1's for a v1 HorizontalPodAutoscaler).
    """
    removed: list[str] = []
    node = _schema_of(kind)
    if node is not None:
        _prune(node, obj, "", removed)
    return removed


def unknown_paths(kind: str | Kind, obj: Any) -> list[str]:
    """Dotted paths of unknown fields (patch directives aside), without changing `obj`."""
    node = _schema_of(kind)
    if node is None or not isinstance(obj, dict):
        return []
    return [p.path for p in schema.check(node, obj) if p.problem == "unknown" and "$" not in p.path]


def _prune(node: schema.Node, value: Any, path: str, removed: list[str]) -> None:
    if isinstance(node, schema.Scalar) or value is None:
        return
    if isinstance(node, schema.ListOf):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _prune(node.item, item, f"{path}[{i}]", removed)
        return
    if not isinstance(value, dict):
        return
    if isinstance(node, schema.MapOf):
        for key, item in value.items():
            _prune(node.value, item, f"{path}[{key}]", removed)
        return
    for key in list(value):
        if str(key).startswith("$"):
            continue
        child = node.fields.get(key)
        sub = f"{path}.{key}" if path else str(key)
        if child is None:
            del value[key]
            removed.append(sub)
        else:
            _prune(child, value[key], sub, removed)
