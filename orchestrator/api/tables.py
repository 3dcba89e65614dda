"""Server-side printing: `meta.k8s.io/v1 Table` responses, as kubectl asks for them.

`kubectl get` does not know how to print most kinds itself; it sends
`Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json` and prints the
`columnDefinitions` and `rows` the server returns, upper-casing the column names. Columns
with `priority` 0 are the default view; priority 1 columns appear with `-o wide` (the
server always sends every cell). Each row carries the object it was made from: as a
`PartialObjectMetadata` by default, in full with `includeObject=Object`, or not at all
with `includeObject=None`.

This module is only the Table's shape and the content negotiation: the columns and cells
of each kind are its printer (`Kind.printer`, defined in the kind's module under
`objects/resources/` with the shared machinery of `objects/printers.py`), the same
definitions `dockyard get` prints, so `dockyard get` and `kubectl get` agree. Builders are pure functions of the
objects and "now", so they are table-tested.

`negotiate(accept)` reads an Accept header (media ranges in order of preference) and says
whether the client wants a Table, PartialObjectMetadata, or the plain object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..objects import Obj, printers
from ..objects.kinds import Kind

META_GROUP = "meta.k8s.io"


def column_definition(column: printers.Column) -> Obj:
    """A `TableColumnDefinition`."""
    return {
        "name": column.name,
        "type": column.type,
        "format": column.format,
        "description": column.description,
        "priority": column.priority,
    }


# --- tables ----------------------------------------------------------------------------------

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def partial_metadata(obj: Obj, version: str = "v1") -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": obj.get("metadata") or {},
    }


def table_row(kind: Kind, obj: Obj, now: datetime, include_object: str = "Metadata", version: str = "v1") -> Obj:
    row: Obj = {"cells": kind.printer.cells(obj, now)}
    if include_object == "Object":
        row["object"] = obj
    elif include_object == "Metadata":
        row["object"] = partial_metadata(obj, version)
    return row


def table(
    kind: Kind,
    objs: list[Obj],
    resource_version: str | None = None,
    include_object: str = "Metadata",
    now: datetime | None = None,
    version: str = "v1",
    column_definitions: bool = True,
) -> Obj:
    """A `Table` of `objs`, all of `kind`."""
    now = now or datetime.now(UTC)
    meta: Obj = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {
        "kind": "Table",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": meta,
        "columnDefinitions": [column_definition(c) for c in kind.printer.columns] if column_definitions else [],
        "rows": [table_row(kind, o, now, include_object, version) for o in objs],
    }


def partial_list(objs: list[Obj], resource_version: str | None = None, version: str = "v1") -> Obj:
    meta: Obj = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": meta,
        "items": [partial_metadata(o, version) for o in objs],
    }


# --- content negotiation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What the client asked for: `as_` is "" (the object), Table, PartialObjectMetadata(List)."""

    as_: str = ""
    version: str = "v1"

    @property
    def table(self) -> bool:
        return self.as_ == "Table"

    @property
    def partial(self) -> bool:
        return self.as_ in ("PartialObjectMetadata", "PartialObjectMetadataList")


_SERVED_MEDIA = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "*/*",
                 "application/*", "application/json;stream=watch")


def negotiate(accept: str | None) -> Wanted:
    """The first media range of `accept` this server can answer (always answered as JSON)."""
    if not accept:
        return Wanted()
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = {}
        for f in fields[1:]:
            if "=" in f:
                k, v = f.split("=", 1)
                params[k.strip().lower()] = v.strip()
        as_ = params.get("as")
        if as_ is None:
            if media in _SERVED_MEDIA or media.startswith("application/"):
                return Wanted()
            continue
        if params.get("g") != META_GROUP or params.get("v") not in ("v1", "v1beta1"):
            continue
        if as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return Wanted(as_, params["v"])
    return Wanted()
