"""Secret (v1): type Opaque by default, base64 data, the keys each type requires, at most
1 MiB, immutable when `immutable`; `stringData` is folded into `data` before it is stored.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from .. import Obj
from ..configdata import MAX_CONFIG_SIZE, validate_immutable_data_update, validate_keys
from ..fielderrors import TOO_LONG, FieldError, invalid, required
from ..jsonfields import dict_of
from ..printers import AGE, NAME, Cell, Column, Printer, created, name_of
from ..schema import BOOLEAN, STRING, TOP_LEVEL, MapOf
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def validate(obj: dict[str, Any]) -> list[FieldError]:
    data, string_data = dict_of(obj.get("data")), dict_of(obj.get("stringData"))
    errs = validate_keys(data, "data") + validate_keys(string_data, "stringData")
    size = 0
    for key, value in data.items():
        try:
            size += len(key) + len(base64.b64decode(value or "", validate=True))
        except (binascii.Error, ValueError):
            errs.append(invalid(f"data[{key}]", "<secret data>", "must be base64-encoded"))
    size += sum(len(k) + len((v or "").encode()) for k, v in string_data.items())
    if size > MAX_CONFIG_SIZE:
        errs.append(FieldError("data", TOO_LONG, f"Too long: must have at most {MAX_CONFIG_SIZE} bytes"))
    stype = obj.get("type")
    for key in _SECRET_REQUIRED_KEYS.get(stype or "", ()):
        if key not in data and key not in string_data:
            errs.append(required(f"data[{key}]", f"secrets of type {stype} must contain {key}"))
    return errs


def fold_string_data(secret: Obj) -> None:
    """Move `stringData` into `data`, base64-encoded (a write-only convenience)."""
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v if v is not None else "").encode()).decode()


# --- schema ------------------------------------------------------------------------------------

SCHEMA = TOP_LEVEL.extend(data=MapOf(STRING), stringData=MapOf(STRING), type=STRING, immutable=BOOLEAN)


# --- printer -----------------------------------------------------------------------------------


def _secret_cells(s: Obj, now: datetime) -> list[Cell]:
    count = len(s.get("data") or {}) + len(s.get("stringData") or {})
    return [name_of(s), str(s.get("type") or "Opaque"), count, created(s, now)]


PRINTER = Printer(
    (
        NAME,
        Column("Type", description="The type of the secret"),
        Column("Data", "integer", description="Number of keys in the secret."),
        AGE,
    ),
    _secret_cells,
)


class SecretStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_immutable_data_update(new, old)

    def prepare_for_create(self, obj: Obj) -> None:
        # after validation, which reports stringData's keys under stringData
        fold_string_data(obj)

    def prepare_for_update(self, new: Obj, old: Obj, *, has_status: bool) -> None:
        super().prepare_for_update(new, old, has_status=has_status)
        fold_string_data(new)


STRATEGY = SecretStrategy()
