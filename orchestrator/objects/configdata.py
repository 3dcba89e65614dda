"""The keyed data of ConfigMaps and Secrets: key format, the 1 MiB limit, and the update rules
of immutable data (`immutable: true` freezes data and binaryData; `type` never changes).
"""

from __future__ import annotations

from typing import Any

from .fielderrors import FieldError, forbidden, invalid
from .names import config_key_error

MAX_CONFIG_SIZE = 1024 * 1024


def validate_keys(data: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key in data:
        err = config_key_error(key)
        if err:
            errs.append(invalid(path, key, err))
    return errs


def validate_immutable_data_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    if old.get("immutable"):
        if not new.get("immutable"):
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        for fld in ("data", "binaryData"):
            if (new.get(fld) or {}) != (old.get(fld) or {}):
                errs.append(forbidden(fld, "field is immutable when `immutable` is set"))
        if new.get("stringData"):
            errs.append(forbidden("stringData", "field is immutable when `immutable` is set"))
    if old.get("type") and new.get("type") and old["type"] != new["type"]:
        errs.append(invalid("type", new["type"], "field is immutable"))
    return errs
