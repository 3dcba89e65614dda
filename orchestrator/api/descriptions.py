"""Field descriptions for the OpenAPI documents (what `kubectl explain` prints).

The texts are Kubernetes' own API documentation, taken from its published OpenAPI
(`api/openapi-spec/swagger.json`) and kept in `descriptiondata.TABLE`, keyed the way that
document is: by definition name (`io.k8s.api.apps.v1.DeploymentSpec`) and field name. Each
entry is `(description, definition of the field's type or "")`; the entry under `""` is the
description of the definition itself. The definition names let a walk go down with the
object schemas, which inline their nested structs: `openapi.node_schema` starts at a kind's
definition (`kind_definition`) and follows `field_ref` at every struct it enters.

The table holds every definition reachable from the kinds Dockyard serves through the fields
it serves, with all of each definition's fields (so a field added to a schema finds its
text without regenerating), plus the whole graphs below `EXTRA_ROOTS` (kinds on their way,
and all of ObjectMeta) down to definitions already reached; a definition reached only
through fields Dockyard does not serve (most volume sources, say) is left out, which keeps
the table small. It is loaded on
first use (the OpenAPI documents are built once and cached). Regenerate it with
`python -m orchestrator.api.descriptions SWAGGER.json > orchestrator/api/descriptiondata.py`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from functools import cache
from typing import Any

from ..objects import schema
from ..objects.kinds import KINDS, Kind

Entry = tuple[str, str]
Table = dict[str, dict[str, Entry]]

# kinds whose definitions are in the table although no schema here serves them yet
EXTRA_ROOTS = (
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.policy.v1.Eviction",
    "io.k8s.api.policy.v1.PodDisruptionBudget",
    "io.k8s.api.batch.v1.Job",
    "io.k8s.api.batch.v1.CronJob",
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
)


def kind_definition(kind: Kind) -> str:
    """The Kubernetes definition name of a kind: `io.k8s.api.coordination.v1.Lease`."""
    group = kind.group.split(".", 1)[0] if kind.group else "core"
    return f"io.k8s.api.{group}.{kind.version}.{kind.kind}"


@cache
def table() -> Table:
    from .descriptiondata import TABLE

    return TABLE


def description(definition: str | None, field: str = "") -> str:
    """The description of `field` of `definition` ("" the definition's own), or ""."""
    if not definition:
        return ""
    return table().get(definition, {}).get(field, ("", ""))[0]


def field_ref(definition: str | None, field: str) -> str | None:
    """The definition of `field`'s type (of its items for lists and maps), or None."""
    if not definition:
        return None
    ref = table().get(definition, {}).get(field, ("", ""))[1]
    return ref or None


# -- building the table from Kubernetes' swagger.json --------------------------------------------


def _ref_of(prop: dict[str, Any]) -> str:
    for candidate in (prop, prop.get("items") or {}, prop.get("additionalProperties") or {},
                      *(prop.get("allOf") or [])):
        ref = candidate.get("$ref") if isinstance(candidate, dict) else None
        if ref:
            return str(ref).rsplit("/", 1)[-1]
    return ""


def _entries(definitions: dict[str, Any], name: str) -> dict[str, Entry]:
    d = definitions[name]
    out: dict[str, Entry] = {"": (str(d.get("description") or ""), "")}
    for field, prop in sorted((d.get("properties") or {}).items()):
        out[field] = (str(prop.get("description") or ""), _ref_of(prop))
    return out


def _struct_of(node: schema.Node) -> schema.Struct | None:
    while isinstance(node, schema.ListOf | schema.MapOf):
        node = node.item if isinstance(node, schema.ListOf) else node.value
    return node if isinstance(node, schema.Struct) else None


def build_table(definitions: dict[str, Any], kinds: Iterable[Kind] = KINDS,
                extra_roots: Iterable[str] = EXTRA_ROOTS) -> Table:
    """The definitions reached by walking each kind's schema along Kubernetes' definitions
    (every field of each), plus the whole graphs below `extra_roots`."""
    out: Table = {}

    def walk_served(node: schema.Struct, name: str) -> None:
        if name not in definitions:
            return
        if name not in out:
            out[name] = _entries(definitions, name)
        for field, child in node.fields.items():
            ref = out[name].get(field, ("", ""))[1]
            sub = _struct_of(child)
            if ref and sub is not None:
                walk_served(sub, ref)

    def walk_all(name: str, root: bool = False) -> None:
        """`name` and what it refers to, stopping at definitions already reached (a root
        already reached through served fields is still walked below)."""
        if name not in definitions or (name in out and not root):
            return
        out[name] = _entries(definitions, name)
        for _, ref in out[name].values():
            if ref:
                walk_all(ref)

    for kind in kinds:
        if kind.schema is not None:
            walk_served(kind.schema, kind_definition(kind))
    for extra in extra_roots:
        walk_all(extra, root=True)
    return {name: out[name] for name in sorted(out)}


def render(table_: Table, source: str) -> str:
    """The text of `descriptiondata.py`."""
    lines = [
        f'"""Kubernetes API field descriptions (generated from {source} by',
        "`python -m orchestrator.api.descriptions`; see orchestrator.api.descriptions).",
        '"""',
        "",
        "TABLE: dict[str, dict[str, tuple[str, str]]] = {",
    ]
    for name, entries in table_.items():
        lines.append(f"    {name!r}: {{")
        for field, (text, ref) in entries.items():
            lines.append(f"        {field!r}: ({text!r}, {ref!r}),")
        lines.append("    },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m orchestrator.api.descriptions SWAGGER.json > orchestrator/api/descriptiondata.py",
              file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        definitions = json.load(f)["definitions"]
    sys.stdout.write(render(build_table(definitions), "Kubernetes' api/openapi-spec/swagger.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
