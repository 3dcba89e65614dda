"""The registry for kinds served in a version other than the one they are stored in.

kube-apiserver keeps one stored object per resource and converts at its edge: a request body
in any served version becomes the stored version before anything else sees it, and every
object answered is converted to the version the client asked for. `ConvertingRegistry` does
that around the `Registry` for the rows of `kinds.CONVERTED` (autoscaling/v1
HorizontalPodAutoscalers, stored as autoscaling/v2): it offers the registry's reads and
writes taking the *served* Kind, calls the registry with `kind.stored`, and converts with the
row's `Conversion`; anything else it is asked passes to the registry as it is. The API picks
it for a request whose kind has a conversion, so a kind needs no code of its own in the
handlers (its row and its pure conversion functions are all).

* writes: the body is checked as the served version (its apiVersion and kind, 400; what JSON
  cannot carry, 400; every value of the wrong type or width by the served schema, 422) and
  then converted; the registry checks, defaults and validates the stored form, so semantic
  errors name the stored version's fields, as Kubernetes' do (it validates the internal form);
* patches of every type apply to the object *as served* (the stored object converted), as
  Kubernetes applies them to the versioned object; the result is converted back and written
  as an update that names the resourceVersion the patch was applied to, again from the new
  object after a conflict with a concurrent write, unless the patch named a resourceVersion;
* reads: objects, lists (apiVersion and list kind of the served version), delete answers
  and watch events (bookmarks included) are converted; Status bodies pass as they are.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import errors
from ..errors import ApiError
from ..objects import Obj, schema
from ..objects.fielderrors import TYPE_INVALID, FieldError, show
from ..objects.kinds import Conversion, Kind
from .generic import Registry, apply_patch, dumps, json_problem, json_type

MAX_ATTEMPTS = 8  # patches retried on conflicts, as `Registry.patch`


def _conversion(kind: Kind) -> Conversion:
    if kind.conversion is None:
        raise ValueError(f"{kind.api_version} {kind.kind} is stored as it is served: it needs no conversion")
    return kind.conversion


def _out(kind: Kind, obj: Obj) -> Obj:
    """A stored object as the served version."""
    return _conversion(kind).from_stored(obj)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return show(value)


def check_shape(kind: Kind, obj: Obj, name: str = "") -> None:
    """422 Invalid naming every field of `obj` whose value has the wrong type or width for the
    served version's schema (the registry's own check, by the served version's fields)."""
    errs: list[FieldError] = []
    for p in schema.check(kind.schema, obj):
        if p.problem == "unknown":
            continue  # the API's field validation has dealt with them, by the same schema
        message = f"Invalid value: {_shown(p.value)}: {p.path} must be of type {p.expected}"
        if p.problem == "range":
            lo, hi = schema.INT32_RANGE if p.expected == "int32" else schema.INT64_RANGE
            message += f" (between {lo} and {hi}, inclusive)"
        errs.append(FieldError(p.path, TYPE_INVALID, message))
    if errs:
        meta = obj.get("metadata")
        name = name or (meta.get("name", "") if isinstance(meta, dict) else "")
        raise errors.invalid(kind.kind, str(name or ""), [e.cause() for e in errs], kind.group)


def to_stored(kind: Kind, body: Any, name: str = "") -> Obj:
    """A request body (a whole object of the served version), checked and converted."""
    Registry._check_type(kind, body)
    Registry._check_json(kind, body)
    check_shape(kind, body, name)
    return _conversion(kind).to_stored(body)


def _stored_options(conversion: Conversion, options: dict[str, Any]) -> dict[str, Any]:
    """The write's options for the registry: a server-side apply's configuration (the field
    manager's `config`, which says what the applier owns) in the stored version, like the object."""
    manager = options.get("manager")
    config = getattr(manager, "config", None)
    if isinstance(config, dict) and dataclasses.is_dataclass(manager) and not isinstance(manager, type):
        stored = conversion.to_stored(copy.deepcopy(config))
        return {**options, "manager": dataclasses.replace(manager, config=stored)}
    return options


class ConvertingRegistry:
    """The registry's reads and writes, taking Kinds that carry a `Conversion`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)  # what is not converted: as the registry does it

    # -- reads ------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return _out(kind, self.registry.get(kind.stored, namespace, name))

    def get_json(self, kind: Kind, namespace: str | None, name: str) -> bytes:
        return dumps(self.get(kind, namespace, name))

    def try_get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        obj = self.registry.try_get(kind.stored, namespace, name)
        return None if obj is None else _out(kind, obj)

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None, **options: Any) -> Obj:
        listed = self.registry.list(kind.stored, namespace, label_selector, field_selector, **options)
        return {**listed, "apiVersion": kind.api_version, "kind": kind.list_kind,
                "items": [_out(kind, o) for o in listed["items"]]}

    def items(self, kind: Kind, namespace: str | None = None) -> builtins.list[Obj]:
        items: builtins.list[Obj] = self.list(kind, namespace)["items"]
        return items

    async def watch(self, kind: Kind, *args: Any, **kwargs: Any) -> AsyncIterator[Obj]:
        async for ev in self.registry.watch(kind.stored, *args, **kwargs):
            obj = ev.get("object")
            if ev.get("type") in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                yield {**ev, "object": _out(kind, obj)}
            elif ev.get("type") == "BOOKMARK" and isinstance(obj, dict):
                yield {**ev, "object": {**obj, "apiVersion": kind.api_version}}
            else:
                yield ev

    # -- writes -----------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str | None, body: Obj, **options: Any) -> Obj:
        stored = to_stored(kind, body)
        return _out(kind, self.registry.create(kind.stored, namespace, stored,
                                               **_stored_options(_conversion(kind), options)))

    def update(self, kind: Kind, namespace: str | None, name: str, body: Obj, subresource: str = "",
               **options: Any) -> Obj:
        stored = to_stored(kind, body, name)
        return _out(kind, self.registry.update(kind.stored, namespace, name, stored, subresource,
                                               **_stored_options(_conversion(kind), options)))

    def patch(self, kind: Kind, namespace: str | None, name: str, body: Any, content_type: str,
              subresource: str = "", *, check_fields: Callable[[Obj], None] | None = None, **options: Any) -> Obj:
        """Apply a patch to the object as served, write it back converted (see the module)."""
        conversion = _conversion(kind)
        problem = json_problem(body)
        if problem:
            raise errors.bad_request(f"the patch is not valid JSON: {problem}")
        options = _stored_options(conversion, options)
        for _attempt in range(MAX_ATTEMPTS):
            current = self.registry.get(kind.stored, namespace, name)
            patched = apply_patch(kind, conversion.from_stored(current), body, content_type)
            if not isinstance(patched, dict):
                raise errors.bad_request(
                    f"the patch did not produce an object: the patched {kind.kind} is a JSON {json_type(patched)}")
            Registry._check_type(kind, patched)
            Registry._check_json(kind, patched)
            if check_fields is not None:
                check_fields(patched)
            check_shape(kind, patched, name)
            meta = patched.get("metadata")
            rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            new = conversion.to_stored(patched)
            new_meta = new.get("metadata")
            if rv in (None, "") and isinstance(new_meta, dict):
                new_meta["resourceVersion"] = current["metadata"]["resourceVersion"]  # what it was applied to
            try:
                return _out(kind, self.registry.update(kind.stored, namespace, name, new, subresource, **options))
            except ApiError as e:
                if e.reason == "Conflict" and rv in (None, ""):
                    continue
                raise
        raise errors.conflict(kind.resource, name, kind.group)

    def delete(self, kind: Kind, namespace: str | None, name: str, *args: Any, **options: Any) -> Obj:
        out = self.registry.delete(kind.stored, namespace, name, *args, **options)
        stored = kind.stored
        if out.get("apiVersion") == stored.api_version and out.get("kind") == stored.kind:
            return _out(kind, out)
        return out  # a Status
