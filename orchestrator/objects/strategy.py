"""Strategies: how the registry treats the objects of one kind (Kubernetes'
`pkg/registry/<group>/<resource>/strategy.go`).

The registry (`orchestrator/registry/generic.py`) is generic: on every write it asks the
kind's `Strategy` what is particular about it. The base class is the behaviour of a plain
kind; a kind overrides only the hooks that differ:

* `name_error`: the format of `metadata.name` (DNS-1123 subdomain unless overridden);
* `defaults(obj)`: server-side defaults, in place, before validation;
* `validate(obj)` / `validate_update(new, old)`: the kind's own rules (metadata, schema and
  the identity fields are checked generically by `validation.validate`);
* `prepare_for_create(obj)`: the stored form of a validated new object (a Secret folds
  `stringData` into `data`); `prepare_for_update(new, old, has_status=)`: an update body
  before defaulting and validation — the main resource may not change `status` of a kind with
  a status subresource, and a Secret folds `stringData`;
* `prepare_for_status_update(new, old)`: what a write to `/status` may change (the status);
* `generation_payload(obj, has_status=)`: what `metadata.generation` tracks;
* deletion: `graceful_seconds` and `waits_for_node` (pods bound to a node are stopped by its
  agent first), `deleted_by_controller` and `prepare_for_delete` (a Namespace is only marked,
  its controller finishes it), `allowed_in_terminating_namespace` (Events);
* `categories`: the categories the kind belongs to in discovery (`all` for what
  `kubectl get all` and `dockyard get all` list). Short names live in the kinds table
  (`Kind.short_names`);
* `printer`: the kind's printer columns and cells (`objects/printers.Printer`), served as
  server-side Tables and printed by `dockyard get`; NAME and AGE unless overridden;
* `schema`: the kind's field types (`objects/schema.Struct`, the whole object), for strict
  field validation, integer widths and the OpenAPI documents; None for no schema.

Where a new kind goes: one module under `objects/resources/` holding its defaults, rules,
update rules, its `SCHEMA` and `PRINTER`, and a `Strategy` subclass naming them (exported as
`STRATEGY`), plus its row in `objects/kinds.py` naming that strategy. Nothing here imports
the kinds table, so the table can import every resource module.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import Obj
from .fielderrors import FieldError
from .names import dns1123_subdomain_error
from .printers import GENERIC as NAME_AND_AGE
from .printers import Printer
from .schema import Struct


class Strategy:
    """The generic behaviour; subclasses override the hooks their kind needs."""

    categories: tuple[str, ...] = ()
    # What `kubectl get` (server-side Tables) and `dockyard get` print for the kind.
    printer: Printer = NAME_AND_AGE
    # The kind's field types (the whole object), or None for a kind without a schema.
    schema: Struct | None = None
    # Deleting an object without finalizers removes it at once unless this is set: then it is
    # marked (deletionTimestamp) and a controller finishes the delete.
    deleted_by_controller: bool = False
    # Objects of this kind may be created in a namespace being terminated.
    allowed_in_terminating_namespace: bool = False

    def name_error(self, name: str) -> str | None:
        """Why `name` is not a valid `metadata.name` of this kind, or None."""
        return dns1123_subdomain_error(name)

    def defaults(self, obj: Obj) -> None:
        """Fill in server-side defaults, in place (idempotent, tolerant of any shape)."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """The kind's own rules on a defaulted object."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """The kind's update rules (immutable fields, allowed transitions)."""
        return []

    def prepare_for_create(self, obj: Obj) -> None:
        """Turn a validated new object into its stored form, in place."""

    def prepare_for_update(self, new: Obj, old: Obj, *, has_status: bool) -> None:
        """Prepare an update of the main resource before defaulting and validation, in place:
        with a status subresource, `status` is the stored one whatever the body says."""
        if has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        """The object a `/status` write stores: the stored object with the body's status."""
        merged = copy.deepcopy(old)
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        return merged

    def generation_payload(self, obj: Obj, *, has_status: bool) -> Any:
        """What `metadata.generation` tracks: the spec, or the whole payload of a kind with
        neither a spec nor a status subresource (ConfigMap data, Secret data, ...)."""
        if "spec" in obj or has_status:
            return obj.get("spec")
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    def graceful_seconds(self, obj: Obj, grace_period: int | None, node_exists: Callable[[str], bool]) -> int | None:
        """Seconds of graceful termination for a delete of `obj`, or None to delete at once."""
        return None

    def waits_for_node(self, obj: Obj) -> bool:
        """A marked object is finished by its node's agent rather than removed at once."""
        return False

    def prepare_for_delete(self, obj: Obj) -> None:
        """Mark `obj` (a copy, being marked for deletion) as terminating, in place."""


GENERIC = Strategy()
