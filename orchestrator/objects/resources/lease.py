"""Lease (coordination.k8s.io/v1): positive duration, non-negative transitions, RFC 3339 times.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, invalid
from ..jsonfields import dict_of
from ..printers import AGE, NAME, Cell, Column, Printer, created, name_of, spec_of
from ..schema import INT32, STRING, TOP_LEVEL, struct
from ..strategy import Strategy

_MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def validate(obj: dict[str, Any]) -> list[FieldError]:
    """coordination.k8s.io/v1 Lease: positive duration, non-negative transitions, RFC 3339 times."""
    spec = dict_of(obj.get("spec"))
    errs: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not _MICRO_TIME.match(str(value)):
            errs.append(invalid(f"spec.{key}", value, "must be an RFC 3339 time, e.g. 2006-01-02T15:04:05.000000Z"))
    return errs


# --- schema ------------------------------------------------------------------------------------

LEASE_SPEC = struct(
    holderIdentity=STRING,
    leaseDurationSeconds=INT32,
    acquireTime=STRING,
    renewTime=STRING,
    leaseTransitions=INT32,
    strategy=STRING,
    preferredHolder=STRING,
)

SCHEMA = TOP_LEVEL.extend(spec=LEASE_SPEC)


# --- printer -----------------------------------------------------------------------------------


def _lease_cells(lease: Obj, now: datetime) -> list[Cell]:
    return [name_of(lease), str(spec_of(lease).get("holderIdentity") or ""), created(lease, now)]


PRINTER = Printer((NAME, Column("Holder", description="The holder of the lease."), AGE), _lease_cells)


class LeaseStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)


STRATEGY = LeaseStrategy()
