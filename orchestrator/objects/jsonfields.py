"""Lenient access to the fields of JSON objects, for rules and defaults that must not raise.

Validation and defaulting run on whatever a client sent (after the schema check, but a value
may still be absent or null), so they read and write fields through these:

* readers: `list_of`, `dict_of` (the value when it has that type, else empty), `dicts_of` (the
  items of a list, non-dict items read as {} so that indexes in field paths stay right);
* writers, for defaulting: `child` (a nested dict, created when absent), `dict_items` (the
  dict items of a list, others skipped), `set_default` (set when absent or null).
"""

from __future__ import annotations

from typing import Any


def list_of(value: Any) -> list[Any]:
    """`value` when it is a list, else []."""
    return value if isinstance(value, list) else []


def dict_of(value: Any) -> dict[str, Any]:
    """`value` when it is a dict, else {}."""
    return value if isinstance(value, dict) else {}


def dicts_of(value: Any) -> list[dict[str, Any]]:
    """The items of a list, non-dict items read as {}."""
    return [v if isinstance(v, dict) else {} for v in list_of(value)]


def child(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """parent[key] as a dict, created when absent; None when it holds a non-dict."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def dict_items(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list field (tolerates absent and malformed values)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    """obj[key] = value unless obj[key] holds something other than None."""
    if obj.get(key) is None:
        obj[key] = value
