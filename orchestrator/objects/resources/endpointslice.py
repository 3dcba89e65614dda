"""EndpointSlice (discovery.k8s.io/v1): a Service's endpoints in slices of one address type.

Defaults, rules and columns are kube-apiserver's (`pkg/apis/discovery/validation`,
`pkg/printers/internalversion`):

* defaults: a port without `name` gets `""`, without `protocol` gets `TCP`;
* `addressType` is required, one of `IPv4`, `IPv6`, `FQDN`, and immutable;
* at most 1000 endpoints and 100 ports; each endpoint has 1 to 100 addresses, each of the
  slice's address type (an IPv4 or IPv6 address, or a DNS-1123 subdomain for FQDN), a
  DNS-1123 label `hostname` and a DNS-1123 subdomain `nodeName` when set;
* port names are DNS-1123 labels (or empty) and unique in the slice, protocols `TCP`,
  `UDP` or `SCTP`;
* columns NAME, ADDRESSTYPE, PORTS, ENDPOINTS (every address, ready or not, the first three
  then `+ N more...`; `<unset>` for none) and AGE.

The slices of a Service with a selector are kept by the EndpointSlice controller
(`controllers/endpointslices.py`); other slices are the user's.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, duplicate, invalid, not_supported, required
from ..jsonfields import dict_items, dict_of, dicts_of, list_of, set_default
from ..names import dns1123_label_error, dns1123_subdomain_error
from ..printers import AGE, NAME, Cell, Column, Printer, created, name_of
from ..schema import BOOLEAN, INT32, OBJECT_REFERENCE, STRING, TOP_LEVEL, ListOf, MapOf, struct
from ..strategy import Strategy

ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_ENDPOINTS = 1000
MAX_PORTS = 100
MAX_ADDRESSES = 100
TOO_MANY = "FieldValueTooMany"
UNSET = "<unset>"


def set_defaults(obj: dict[str, Any]) -> None:
    for port in dict_items(obj.get("ports")):
        set_default(port, "name", "")
        set_default(port, "protocol", "TCP")


def _too_many(field: str, count: int, limit: int) -> FieldError:
    return FieldError(field, TOO_MANY, f"Too many: {count}: must have at most {limit} items")


def _address_error(address_type: str, address: Any) -> str | None:
    if not isinstance(address, str):
        return "must be a string"
    if address_type == "FQDN":
        return dns1123_subdomain_error(address)
    version = 4 if address_type == "IPv4" else 6
    try:
        ok = ipaddress.ip_address(address).version == version
    except ValueError:
        ok = False
    return None if ok else f"must be a valid {address_type} address"


def _validate_endpoints(obj: dict[str, Any], address_type: Any) -> list[FieldError]:
    endpoints = list_of(obj.get("endpoints"))
    if len(endpoints) > MAX_ENDPOINTS:
        return [_too_many("endpoints", len(endpoints), MAX_ENDPOINTS)]
    errs: list[FieldError] = []
    for i, endpoint in enumerate(dicts_of(endpoints)):
        path = f"endpoints[{i}]"
        addresses = list_of(endpoint.get("addresses"))
        if not addresses:
            errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(_too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
        elif address_type in ADDRESS_TYPES:
            for j, address in enumerate(addresses):
                problem = _address_error(address_type, address)
                if problem:
                    errs.append(invalid(f"{path}.addresses[{j}]", address, problem))
        hostname = endpoint.get("hostname")
        if isinstance(hostname, str) and (problem := dns1123_label_error(hostname)):
            errs.append(invalid(f"{path}.hostname", hostname, problem))
        node = endpoint.get("nodeName")
        if isinstance(node, str) and (problem := dns1123_subdomain_error(node)):
            errs.append(invalid(f"{path}.nodeName", node, problem))
    return errs


def _validate_ports(obj: dict[str, Any]) -> list[FieldError]:
    ports = list_of(obj.get("ports"))
    if len(ports) > MAX_PORTS:
        return [_too_many("ports", len(ports), MAX_PORTS)]
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(dicts_of(ports)):
        path = f"ports[{i}]"
        name = port.get("name") or ""
        if not isinstance(name, str):
            continue  # a type problem, reported by the schema check
        if name and (problem := dns1123_label_error(name)):
            errs.append(invalid(f"{path}.name", name, problem))
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(f"{path}.protocol"))
        elif protocol not in PORT_PROTOCOLS:
            errs.append(not_supported(f"{path}.protocol", protocol, PORT_PROTOCOLS))
        number = port.get("port")
        if isinstance(number, int) and not 0 <= number <= 65535:
            errs.append(invalid(f"{path}.port", number, "must be between 0 and 65535, inclusive"))
    return errs


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    address_type = obj.get("addressType")
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        errs.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    return errs + _validate_endpoints(obj, address_type) + _validate_ports(obj)


def validate_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    if new.get("addressType") != old.get("addressType"):
        return [invalid("addressType", new.get("addressType"), "field is immutable")]
    return []


# --- schema ------------------------------------------------------------------------------------

ENDPOINT_CONDITIONS = struct(ready=BOOLEAN, serving=BOOLEAN, terminating=BOOLEAN)
FOR_ZONE = struct(name=STRING)
FOR_NODE = struct(name=STRING)
ENDPOINT_HINTS = struct(forZones=ListOf(FOR_ZONE), forNodes=ListOf(FOR_NODE))
SLICE_ENDPOINT = struct(
    addresses=ListOf(STRING),
    conditions=ENDPOINT_CONDITIONS,
    hostname=STRING,
    targetRef=OBJECT_REFERENCE,
    deprecatedTopology=MapOf(STRING),
    nodeName=STRING,
    zone=STRING,
    hints=ENDPOINT_HINTS,
)
SLICE_ENDPOINT_PORT = struct(name=STRING, protocol=STRING, port=INT32, appProtocol=STRING)

SCHEMA = TOP_LEVEL.extend(addressType=STRING, endpoints=ListOf(SLICE_ENDPOINT), ports=ListOf(SLICE_ENDPOINT_PORT))


# --- printer -----------------------------------------------------------------------------------


def _list_text(items: list[str], count: int, limit: int) -> str:
    """kube-apiserver's listWithMoreString: `a,b,c + 2 more...`, `<unset>` for none."""
    if count > limit:
        return ",".join(items[:limit]) + f" + {count - limit} more..."
    return ",".join(items) or UNSET


def ports_text(slice_: Obj, limit: int = 3) -> str:
    """`80,443` (a port without a number shows its name, `*` without either)."""
    items = []
    for port in dicts_of(slice_.get("ports")):
        number = port.get("port")
        items.append(str(number) if number is not None else str(port.get("name") or "*"))
    return _list_text(items, len(items), limit)


def endpoints_text(slice_: Obj, limit: int = 3) -> str:
    """Every address of every endpoint: `10.42.0.5,10.42.0.6 + 1 more...`."""
    items = [str(a) for e in dicts_of(slice_.get("endpoints")) for a in list_of(e.get("addresses"))]
    return _list_text(items, len(items), limit)


def _cells(slice_: Obj, now: datetime) -> list[Cell]:
    return [name_of(slice_), str(dict_of(slice_).get("addressType") or ""), ports_text(slice_),
            endpoints_text(slice_), created(slice_, now)]


PRINTER = Printer(
    (
        NAME,
        Column("AddressType", description="addressType specifies the type of address carried by this EndpointSlice."),
        Column("Ports", description="ports specifies the list of network ports exposed by each endpoint in this slice."),
        Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
        AGE,
    ),
    _cells,
)


class EndpointSliceStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_update(new, old)


STRATEGY = EndpointSliceStrategy()
