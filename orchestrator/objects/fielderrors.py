"""Kubernetes-style field errors, and the small checks every kind's rules are made of.

A `FieldError` names a field path, a reason (`FieldValueRequired`, `FieldValueInvalid`, …)
and a message that reads like the API server's (`spec.replicas: Invalid value: -1: must be
greater than or equal to 0`); the registry turns a list of them into a 422 Invalid Status with
one `cause` each. The constructors (`required`, `invalid`, …) build them; the checks
(`nonnegative`, `positive`, `enum`) append one to a list when a field of a dict breaks the
rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
TYPE_INVALID = "FieldValueTypeInvalid"
FORBIDDEN = "FieldValueForbidden"
NOT_FOUND = "FieldValueNotFound"
TOO_LONG = "FieldValueTooLong"


@dataclass(frozen=True)
class FieldError:
    field: str
    type: str
    message: str

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def show(value: Any) -> str:
    """A value as a message shows it (JSON when it can be)."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, REQUIRED, f"Required value: {detail}" if detail else "Required value")


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, INVALID, f"Invalid value: {show(value)}: {detail}")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> FieldError:
    choices = ", ".join(f'"{s}"' for s in sorted(supported))
    return FieldError(field, NOT_SUPPORTED, f"Unsupported value: {show(value)}: supported values: {choices}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, DUPLICATE, f"Duplicate value: {show(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, FORBIDDEN, f"Forbidden: {detail}")


def not_found(field: str, value: Any) -> FieldError:
    return FieldError(field, NOT_FOUND, f"Not found: {show(value)}")


def too_long(field: str, limit: int) -> FieldError:
    return FieldError(field, TOO_LONG, f"Too long: must have at most {limit} bytes")


def at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --- checks ---------------------------------------------------------------------------------------


def nonnegative(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    value = obj.get(name)
    if value is not None and value < 0:
        errs.append(invalid(at(path, name), value, "must be greater than or equal to 0"))


def positive(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    value = obj.get(name)
    if value is not None and value <= 0:
        errs.append(invalid(at(path, name), value, "must be greater than 0"))


def enum(errs: list[FieldError], obj: dict[str, Any], name: str, path: str, allowed: Iterable[str]) -> None:
    value = obj.get(name)
    if value is not None and value not in allowed:
        errs.append(not_supported(at(path, name), value, allowed))
