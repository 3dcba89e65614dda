"""`dockyard explain TYPE[.FIELD.PATH] [--recursive]`: field documentation from the API's OpenAPI v3.

The kind is resolved as everywhere (`deploy`, `pods`, …); its group/version document is
found through the `/openapi/v3` index and the kind's schema through its
`x-kubernetes-group-version-kind`; the field path is walked through `properties`
(through `items` of lists, `additionalProperties` of maps, and `$ref`/`allOf` references).
The text follows kubectl 1.32's layout: GROUP/KIND/VERSION, `FIELD: name <type>`,
DESCRIPTION (wrapped at 80 columns) and FIELDS with each field's type, `-required-` and
description; `--recursive` prints the field tree instead. Type names are kubectl's
(`<string>`, `<integer>`, `<boolean>`, `<Object>`, `<[]Object>`, `<map[string]string>`,
`<IntOrString>`, `<Quantity>`). `explain_text` is pure and unit-tested.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from ..objects.kinds import Kind
from . import output
from .apply import resolve_kind
from .options import global_options

Doc = dict[str, Any]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("explain", parents=[global_options(suppress=True)],
                              help="document a kind or one of its fields (from the API's OpenAPI)",
                              description="explain TYPE[.FIELD.PATH], e.g. explain deploy.spec.replicas")
    p.add_argument("target", metavar="TYPE[.FIELD...]")
    p.add_argument("--recursive", action="store_true", help="print every field below, as a tree")
    p.add_argument("--api-version", metavar="GROUP/VERSION", help="the version of the kind to document")
    p.set_defaults(handler=cmd_explain)


def _resolve_ref(doc: Doc, schema: Doc) -> Doc:
    seen = 0
    while seen < 20:
        seen += 1
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            merged = dict((doc.get("components") or {}).get("schemas", {}).get(name) or {})
            merged.update({k: v for k, v in schema.items() if k != "$ref"})
            merged.setdefault("x-dockyard-type-name", name.rsplit(".", 1)[-1])
            schema = merged
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            inner = dict(schema["allOf"][0])
            schema = {**{k: v for k, v in schema.items() if k != "allOf"}, **inner}
        else:
            break
    return schema


def type_name(doc: Doc, schema: Doc) -> str:
    schema = _resolve_ref(doc, schema)
    if schema.get("x-kubernetes-int-or-string") or schema.get("format") == "int-or-string":
        return "IntOrString"
    if schema.get("format") == "quantity":
        return "Quantity"
    t = schema.get("type")
    if t == "array":
        return "[]" + type_name(doc, schema.get("items") or {})
    if t == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and "properties" not in schema:
            return "map[string]" + type_name(doc, extra)
        return str(schema.get("x-dockyard-type-name") or "Object")
    if isinstance(t, str):
        return t
    return "Object"


def _descend(doc: Doc, schema: Doc) -> Doc:
    """Through lists and maps to the schema that has the properties."""
    schema = _resolve_ref(doc, schema)
    for _ in range(10):
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            schema = _resolve_ref(doc, schema["items"])
        elif "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            schema = _resolve_ref(doc, schema["additionalProperties"])
        else:
            break
    return schema


def find_kind_schema(doc: Doc, kind: Kind) -> Doc | None:
    for schema in ((doc.get("components") or {}).get("schemas") or {}).values():
        for g in schema.get("x-kubernetes-group-version-kind") or []:
            if g.get("group", "") == kind.group and g.get("version") == kind.version and g.get("kind") == kind.kind:
                return dict(schema)
    return None


def _wrap(text: str, indent: int) -> str:
    pad = " " * indent
    paragraphs = text.strip().split("\n")
    lines: list[str] = []
    for para in paragraphs:
        wrapped = textwrap.wrap(para, width=80 - indent) or [""]
        lines.extend(pad + w for w in wrapped)
    return "\n".join(lines)


def explain_text(doc: Doc, kind: Kind, path: list[str], recursive: bool = False) -> str:
    schema = find_kind_schema(doc, kind)
    if schema is None:
        raise output.CliError(f"the API's OpenAPI document has no schema for {kind.kind} ({kind.api_version})")
    field_name, field_schema = "", schema
    for i, part in enumerate(path):
        container = _descend(doc, field_schema)
        props = container.get("properties") or {}
        if part not in props:
            raise output.CliError(f'field "{part}" does not exist'
                                  + (f" in {'.'.join([kind.resource, *path[:i]])}" if i else ""))
        field_name, field_schema = part, _resolve_ref(doc, props[part])
    out: list[str] = []
    if kind.group:
        out.append(f"GROUP:      {kind.group}")
    out.append(f"KIND:       {kind.kind}")
    out.append(f"VERSION:    {kind.version}")
    out.append("")
    if path:
        out.append(f"FIELD: {field_name} <{type_name(doc, field_schema)}>")
        out.append("")
    description = str(field_schema.get("description") or "").strip()
    out.append("DESCRIPTION:")
    out.append(_wrap(description or "<empty>", 4))
    out.append("    ")
    body = _descend(doc, field_schema)
    props = body.get("properties") or {}
    if props:
        out.append("FIELDS:")
        required = set(body.get("required") or [])
        if recursive:
            out.extend(_tree(doc, body, 2, 0))
        else:
            for name in sorted(props):
                prop = _resolve_ref(doc, props[name])
                flag = " -required-" if name in required else ""
                out.append(f"  {name}\t<{type_name(doc, prop)}>{flag}")
                text = str(prop.get("description") or "").strip()
                out.append(_wrap(text or "<no description>", 4))
                out.append("")
    return "\n".join(out).rstrip() + "\n"


def _tree(doc: Doc, schema: Doc, indent: int, depth: int) -> list[str]:
    lines: list[str] = []
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    for name in sorted(props):
        prop = _resolve_ref(doc, props[name])
        flag = " -required-" if name in required else ""
        lines.append(f"{' ' * indent}{name}\t<{type_name(doc, prop)}>{flag}")
        inner = _descend(doc, prop)
        if inner.get("properties") and depth < 15:
            lines.extend(_tree(doc, inner, indent + 2, depth + 1))
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
    type_text, *path = args.target.split(".")
    kind = resolve_kind(type_text)
    if args.api_version and args.api_version != kind.api_version:
        raise output.CliError(f"--api-version: {kind.kind} is served as {kind.api_version}, not {args.api_version}")
    gv = f"api/{kind.version}" if not kind.group else f"apis/{kind.group}/{kind.version}"
    with output.connect(args) as client:
        index = client.request("GET", "/openapi/v3")
        entry = ((index or {}).get("paths") or {}).get(gv)
        if not entry:
            raise output.CliError(f"the API publishes no OpenAPI v3 document for {kind.api_version}")
        doc = client.request("GET", entry.get("serverRelativeURL") or f"/openapi/v3/{gv}")
    if not isinstance(doc, dict):
        raise output.CliError(f"the OpenAPI v3 document for {kind.api_version} is not JSON")
    output.write(explain_text(doc, kind, [p for p in path if p], args.recursive))
    return 0
