"""Namespace (v1): a DNS-1123 label name, status.phase Active or Terminating; a delete
only marks it Terminating and the namespace controller finishes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, enum
from ..jsonfields import child, dict_of, set_default
from ..names import dns1123_label_error
from ..printers import AGE, NAME, Cell, Column, Printer, created, name_of, status_of
from ..schema import CONDITION, STRING, TOP_LEVEL, ListOf, struct
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    status = child(obj, "status")
    if status is not None:
        set_default(status, "phase", "Active")


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    enum(errs, dict_of(obj.get("status")), "phase", "status", ("Active", "Terminating"))
    return errs


# --- schema ------------------------------------------------------------------------------------

SCHEMA = TOP_LEVEL.extend(
    spec=struct(finalizers=ListOf(STRING)),
    status=struct(phase=STRING, conditions=ListOf(CONDITION)),
)


# --- printer -----------------------------------------------------------------------------------


def _namespace_cells(ns: Obj, now: datetime) -> list[Cell]:
    return [name_of(ns), str(status_of(ns).get("phase") or "Active"), created(ns, now)]


PRINTER = Printer((NAME, Column("Status", description="The status of the namespace"), AGE), _namespace_cells)


class NamespaceStrategy(Strategy):
    deleted_by_controller = True
    printer = PRINTER
    schema = SCHEMA

    def name_error(self, name: str) -> str | None:
        return dns1123_label_error(name)

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def prepare_for_delete(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


STRATEGY = NamespaceStrategy()
