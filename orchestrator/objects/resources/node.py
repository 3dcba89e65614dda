"""Node (v1): pod CIDRs, taints, capacity; pod CIDRs and providerID are set once.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, duplicate, enum, forbidden, invalid, required
from ..jsonfields import dict_of, dicts_of, list_of
from ..podspec import TAINT_EFFECTS
from ..printers import AGE, NAME, NONE, Cell, Column, Printer, created, meta_of, name_of, spec_of, status_of
from ..quantity import parse_quantity
from ..schema import (
    ANY,
    BOOLEAN,
    CONDITION,
    INT32,
    INT64,
    OPAQUE_OBJECT,
    RESOURCE_LIST,
    STRING,
    TOP_LEVEL,
    ListOf,
    struct,
)
from ..selectors import label_key_error, label_value_error
from ..strategy import Strategy


def _validate_cidr(value: Any, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR (e.g. 10.42.0.0/24)")]
    if "/" not in value:
        return [invalid(path, value, "must be a valid CIDR (e.g. 10.42.0.0/24)")]
    return []


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = dict_of(obj.get("spec"))
    if spec.get("podCIDR"):
        errs += _validate_cidr(spec["podCIDR"], "spec.podCIDR")
    cidrs = list_of(spec.get("podCIDRs"))
    for i, cidr in enumerate(cidrs):
        errs += _validate_cidr(cidr, f"spec.podCIDRs[{i}]")
    if len(cidrs) > 2:
        errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    if cidrs and spec.get("podCIDR") and cidrs[0] != spec["podCIDR"]:
        errs.append(invalid("spec.podCIDRs", cidrs, "the first element must match spec.podCIDR"))
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(dicts_of(spec.get("taints"))):
        p = f"spec.taints[{i}]"
        key = taint.get("key")
        if not key:
            errs.append(required(f"{p}.key"))
        else:
            err = label_key_error(key)
            if err:
                errs.append(invalid(f"{p}.key", key, err))
        err = label_value_error(taint.get("value") or "")
        if err:
            errs.append(invalid(f"{p}.value", taint.get("value"), err))
        effect = taint.get("effect")
        if not effect:
            errs.append(required(f"{p}.effect"))
        else:
            enum(errs, taint, "effect", p, TAINT_EFFECTS)
        ident = (key or "", effect or "")
        if ident in seen:
            errs.append(duplicate(p, f"{key}:{effect}"))
        seen.add(ident)
    status = dict_of(obj.get("status"))
    for section in ("capacity", "allocatable"):
        for name, quantity in dict_of(status.get(section)).items():
            try:
                if parse_quantity(quantity) < 0:
                    errs.append(
                        invalid(f"status.{section}[{name}]", quantity, "must be greater than or equal to 0")
                    )
            except ValueError as exc:
                errs.append(invalid(f"status.{section}[{name}]", quantity, str(exc)))
    return errs


def validate_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    ns, os_ = dict_of(new.get("spec")), dict_of(old.get("spec"))
    for fld in ("podCIDR", "providerID"):
        if os_.get(fld) and ns.get(fld) != os_.get(fld):
            errs.append(
                forbidden(f"spec.{fld}", f'node updates may not change {fld} except from "" to valid')
            )
    if os_.get("podCIDRs") and ns.get("podCIDRs") != os_.get("podCIDRs"):
        errs.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
    return errs


# --- schema ------------------------------------------------------------------------------------

TAINT = struct(key=STRING, value=STRING, effect=STRING, timeAdded=STRING)

NODE_SPEC = struct(
    podCIDR=STRING,
    podCIDRs=ListOf(STRING),
    providerID=STRING,
    unschedulable=BOOLEAN,
    taints=ListOf(TAINT),
    configSource=OPAQUE_OBJECT,
    externalID=STRING,
)
NODE_STATUS = struct(
    capacity=RESOURCE_LIST,
    allocatable=RESOURCE_LIST,
    phase=STRING,
    conditions=ListOf(CONDITION),
    addresses=ListOf(struct(type=STRING, address=STRING)),
    daemonEndpoints=struct(kubeletEndpoint=struct(Port=INT32)),
    nodeInfo=struct(
        machineID=STRING,
        systemUUID=STRING,
        bootID=STRING,
        kernelVersion=STRING,
        osImage=STRING,
        containerRuntimeVersion=STRING,
        kubeletVersion=STRING,
        kubeProxyVersion=STRING,
        operatingSystem=STRING,
        architecture=STRING,
        swap=OPAQUE_OBJECT,
    ),
    images=ListOf(struct(names=ListOf(STRING), sizeBytes=INT64)),
    volumesInUse=ListOf(STRING),
    volumesAttached=ListOf(struct(name=STRING, devicePath=STRING)),
    config=OPAQUE_OBJECT,
    runtimeHandlers=ListOf(ANY),
    features=OPAQUE_OBJECT,
)

SCHEMA = TOP_LEVEL.extend(spec=NODE_SPEC, status=NODE_STATUS)


# --- printer -----------------------------------------------------------------------------------


def node_status(node: Obj) -> str:
    conditions = status_of(node).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    text = "Ready" if ready is not None and ready.get("status") == "True" else "NotReady"
    if spec_of(node).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def node_roles(node: Obj) -> str:
    labels = meta_of(node).get("labels") or {}
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or NONE


def node_address_of_type(node: Obj, address_type: str) -> str:
    """The node's first non-empty address of `address_type` (InternalIP, ExternalIP), else `<none>`."""
    for addr in status_of(node).get("addresses") or []:
        if addr.get("type") == address_type and addr.get("address"):
            return str(addr["address"])
    return NONE


def _node_cells(node: Obj, now: datetime) -> list[Cell]:
    info = status_of(node).get("nodeInfo") or {}
    return [
        name_of(node),
        node_status(node),
        node_roles(node),
        created(node, now),
        str(info.get("kubeletVersion") or ""),
        node_address_of_type(node, "InternalIP"),
        node_address_of_type(node, "ExternalIP"),
        str(info.get("osImage") or "<unknown>"),
        str(info.get("kernelVersion") or "<unknown>"),
        str(info.get("containerRuntimeVersion") or "<unknown>"),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE,
        Column("Version", description="Kubelet Version reported by the node."),
        Column("Internal-IP", description="List of internal IPs of the node.", priority=1),
        Column("External-IP", description="List of external IPs of the node.", priority=1, get_wide=False),
        Column("OS-Image", description="OS Image reported by the node.", priority=1),
        Column("Kernel-Version", description="Kernel Version reported by the node.", priority=1, get_wide=False),
        Column("Container-Runtime", description="Container Runtime Version reported by the node.", priority=1),
    ),
    _node_cells,
)


class NodeStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_update(new, old)


STRATEGY = NodeStrategy()
