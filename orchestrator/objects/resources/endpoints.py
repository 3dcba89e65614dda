"""Endpoints (v1): IP addresses and ports of a service's subsets.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, invalid
from ..jsonfields import dicts_of
from ..printers import AGE, NAME, NONE, Cell, Column, Printer, created, name_of
from ..schema import INT32, OBJECT_REFERENCE, STRING, TOP_LEVEL, ListOf, struct
from ..strategy import Strategy


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in enumerate(dicts_of(obj.get("subsets"))):
        for group in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(dicts_of(subset.get(group))):
                try:
                    ipaddress.ip_address(addr.get("ip") or "")
                except ValueError:
                    errs.append(invalid(f"subsets[{i}].{group}[{j}].ip", addr.get("ip"), "must be a valid IP address"))
        for j, port in enumerate(dicts_of(subset.get("ports"))):
            number = port.get("port")
            if number is None or not 1 <= number <= 65535:
                errs.append(invalid(f"subsets[{i}].ports[{j}].port", number, "must be between 1 and 65535, inclusive"))
    return errs


# --- schema ------------------------------------------------------------------------------------

ENDPOINT_ADDRESS = struct(ip=STRING, hostname=STRING, nodeName=STRING, targetRef=OBJECT_REFERENCE)
ENDPOINT_PORT = struct(name=STRING, port=INT32, protocol=STRING, appProtocol=STRING)
ENDPOINT_SUBSET = struct(
    addresses=ListOf(ENDPOINT_ADDRESS), notReadyAddresses=ListOf(ENDPOINT_ADDRESS), ports=ListOf(ENDPOINT_PORT)
)

SCHEMA = TOP_LEVEL.extend(subsets=ListOf(ENDPOINT_SUBSET))


# --- printer -----------------------------------------------------------------------------------


def endpoints_text(ep: Obj, limit: int = 3) -> str:
    """`10.42.0.5:80,10.42.0.6:80 + 1 more...` (ready addresses only), `<none>` when empty."""
    items = []
    for subset in ep.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for addr in subset.get("addresses") or []:
            for port in ports:
                items.append(f"{addr.get('ip')}:{port}" if port else str(addr.get("ip")))
    if not items:
        return NONE
    text = ",".join(items[:limit])
    return text + (f" + {len(items) - limit} more..." if len(items) > limit else "")


def _endpoints_cells(ep: Obj, now: datetime) -> list[Cell]:
    return [name_of(ep), endpoints_text(ep), created(ep, now)]


PRINTER = Printer((NAME, Column("Endpoints", description="Endpoints of the service."), AGE), _endpoints_cells)


class EndpointsStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)


STRATEGY = EndpointsStrategy()
