"""Validation of objects, producing Kubernetes-style field errors: the entry point by kind name.

`validate(kind, obj, old=None)` returns a list of `FieldError`s (empty when the object is
valid); the registry turns a non-empty list into a 422 Invalid Status with one `cause` per
error (`FieldError.cause()`), so messages read like the API server's:
`spec.containers[0].image: Required value`.

Validation runs in three layers:

1. Schema (`schema.check` with the kind's schema, `kinds.schema_for`): unknown fields (`unknown field "spec.x"`, strict field
   validation) and mistyped values, integers wider than their field's int32 / int64 (a
   `FieldValueTypeInvalid` naming the field and the range) included. If any value has the
   wrong type the semantic layer is skipped, since its rules assume well-typed input;
   `type_errors` is that check alone, which writes run before defaulting.
2. Object metadata, common to all kinds (`objectmeta`): name/generateName in the format the
   kind's strategy names (`Strategy.name_error`: DNS-1123 label for Namespace, DNS-1035
   label for Service, subdomain for the others), namespace, labels, annotations, owner
   references, finalizers.
3. The kind's own rules, its strategy's `validate(obj)` (among them Kubernetes' minimums and
   ranges within the Go type, e.g. replicas >= 0, ports 1-65535, user and group ids
   0-MaxInt32) and, when `old` is given, `validate_update(new, old)`: immutable selectors, the
   pod spec update restriction, one-shot `spec.nodeName`, immutable ConfigMaps/Secrets, node
   pod CIDRs.

The rules and the schema of a kind live in its module under `objects/resources/` (a new kind
adds its module and its row in `kinds.KINDS`, nothing here); shared pieces have their own modules:
`fielderrors` (FieldError and its constructors), `names` (name formats), `objectmeta`,
`podspec` (pod specs and templates), `configdata`, `quantity`.

Validation expects defaulted objects (call `defaults.apply_defaults` first, on update too),
as the API server defaults every write before validating it; given anything else it reports
errors rather than raising.

The names other modules imported from here before the split (`FieldError`, `invalid`,
`parse_cpu_quantity`, `NODE_PORT_RANGE`, …) are re-exported; new code imports them from
their homes.
"""

from __future__ import annotations

from typing import Any

from . import schema
from .fielderrors import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TYPE_INVALID,
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_found,
    not_supported,
    required,
    show,
)
from .kinds import KINDS, schema_for, strategy_for
from .names import (
    config_key_error,
    dns1035_label_error,
    dns1123_label_error,
    dns1123_subdomain_error,
    port_name_error,
)
from .objectmeta import validate_labels, validate_object_meta, validate_object_meta_update
from .podspec import MAX_INT32, validate_pod_spec
from .quantity import QUANTITY_SYNTAX, parse_cpu_quantity, parse_memory_quantity, parse_quantity
from .resources.service import NODE_PORT_RANGE

__all__ = [
    "DUPLICATE",
    "FORBIDDEN",
    "INVALID",
    "MAX_INT32",
    "NODE_PORT_RANGE",
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "QUANTITY_SYNTAX",
    "REQUIRED",
    "TOO_LONG",
    "TYPE_INVALID",
    "FieldError",
    "config_key_error",
    "dns1035_label_error",
    "dns1123_label_error",
    "dns1123_subdomain_error",
    "duplicate",
    "forbidden",
    "invalid",
    "not_found",
    "not_supported",
    "parse_cpu_quantity",
    "parse_memory_quantity",
    "parse_quantity",
    "port_name_error",
    "required",
    "strategy_for",
    "type_errors",
    "validate",
    "validate_labels",
    "validate_pod_spec",
]

_NAMESPACED = {k.kind: k.namespaced for k in KINDS}


def _show_typed(value: Any) -> str:
    """A mistyped value in a message: scalars as they are, objects and arrays by their type
    (as the API server's schema errors do), so a large value is not echoed back."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return show(value)


def _schema_errors(kind_schema: schema.Struct, obj: dict[str, Any]) -> tuple[list[FieldError], bool]:
    """(errors, has_type_errors) from the kind's schema."""
    errs: list[FieldError] = []
    typed = False
    for p in schema.check(kind_schema, obj):
        if p.problem == "unknown":
            errs.append(FieldError(p.path, INVALID, f'unknown field "{p.path}"'))
            continue
        typed = True
        message = f"Invalid value: {_show_typed(p.value)}: {p.path} must be of type {p.expected}"
        if p.problem == "range":
            lo, hi = schema.INT32_RANGE if p.expected == "int32" else schema.INT64_RANGE
            message += f" (between {lo} and {hi}, inclusive)"
        errs.append(FieldError(p.path, TYPE_INVALID, message))
    return errs, typed


def type_errors(kind: str, obj: Any) -> list[FieldError]:
    """The schema errors of `obj` when any value has the wrong type or width, else [].

    Writes run this before defaulting: defaults and the semantic rules assume well-typed input.
    Unknown fields alone are not reported here (`validate` reports them with the other errors).
    """
    if not isinstance(obj, dict):
        return [FieldError("", TYPE_INVALID, f"Invalid value: {_show_typed(obj)}: a {kind} must be a JSON object")]
    kind_schema = schema_for(kind)
    if kind_schema is None:
        return []
    errs, typed = _schema_errors(kind_schema, obj)
    return errs if typed else []


def validate(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """All field errors of `obj` (a whole object of `kind`); `old` is the stored object on update."""
    if not isinstance(obj, dict):
        return [FieldError("", TYPE_INVALID, f"Invalid value: {show(obj)}: a {kind} must be a JSON object")]
    errs: list[FieldError] = []
    kind_schema = schema_for(kind)
    if kind_schema is not None:
        errs, typed = _schema_errors(kind_schema, obj)
        if typed:
            return errs
    strategy = strategy_for(kind)
    errs += validate_object_meta(obj, name_error=strategy.name_error, namespaced=_NAMESPACED.get(kind, True))
    errs += strategy.validate(obj)
    if old is not None:
        errs += validate_object_meta_update(obj, old)
        errs += strategy.validate_update(obj, old)
    return errs
