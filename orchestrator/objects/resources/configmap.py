"""ConfigMap (v1): valid keys, base64 binaryData, at most 1 MiB, immutable when `immutable`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from .. import Obj
from ..configdata import MAX_CONFIG_SIZE, validate_immutable_data_update, validate_keys
from ..fielderrors import TOO_LONG, FieldError, invalid
from ..jsonfields import dict_of
from ..printers import AGE, NAME, Cell, Column, Printer, created, name_of
from ..schema import BOOLEAN, STRING, TOP_LEVEL, MapOf
from ..strategy import Strategy


def validate(obj: dict[str, Any]) -> list[FieldError]:
    data, binary = dict_of(obj.get("data")), dict_of(obj.get("binaryData"))
    errs = validate_keys(data, "data") + validate_keys(binary, "binaryData")
    size = sum(len(k) + len((v or "").encode()) for k, v in data.items())
    for key, value in binary.items():
        if key in data:
            errs.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        try:
            size += len(key) + len(base64.b64decode(value or "", validate=True))
        except (binascii.Error, ValueError):
            errs.append(invalid(f"binaryData[{key}]", "<binary data>", "must be base64-encoded"))
    if size > MAX_CONFIG_SIZE:
        errs.append(FieldError("", TOO_LONG, f"Too long: must have at most {MAX_CONFIG_SIZE} bytes"))
    return errs


# --- schema ------------------------------------------------------------------------------------

SCHEMA = TOP_LEVEL.extend(data=MapOf(STRING), binaryData=MapOf(STRING), immutable=BOOLEAN)


# --- printer -----------------------------------------------------------------------------------


def _configmap_cells(cm: Obj, now: datetime) -> list[Cell]:
    return [name_of(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), created(cm, now)]


PRINTER = Printer(
    (NAME, Column("Data", "integer", description="Number of keys in the config map."), AGE), _configmap_cells
)


class ConfigMapStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_immutable_data_update(new, old)


STRATEGY = ConfigMapStrategy()
