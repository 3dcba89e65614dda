"""Service (v1): a DNS-1035 label name, type, ports and node ports, session affinity, an
immutable clusterIP; defaults as Kubernetes (ClusterIP, TCP, targetPort = port, ...).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, duplicate, enum, forbidden, invalid, nonnegative, required
from ..jsonfields import child, dict_items, dict_of, dicts_of, set_default
from ..names import dns1035_label_error, dns1123_label_error, dns1123_subdomain_error
from ..objectmeta import validate_labels
from ..podspec import validate_port_ref
from ..printers import (
    AGE,
    NAME,
    NONE,
    Cell,
    Column,
    Printer,
    created,
    name_of,
    pairs_text,
    spec_of,
    status_of,
)
from ..schema import ANY, BOOLEAN, CONDITION, INT32, INT_OR_STRING, STRING, TOP_LEVEL, ListOf, MapOf, struct
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_default(spec, "type", "ClusterIP")
    set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = child(spec, "sessionAffinityConfig")
        client_ip = child(config, "clientIP") if config is not None else None
        if client_ip is not None:
            set_default(client_ip, "timeoutSeconds", 10800)
    if spec["type"] in ("NodePort", "LoadBalancer"):
        set_default(spec, "externalTrafficPolicy", "Cluster")
    set_default(spec, "internalTrafficPolicy", "Cluster")
    for port in dict_items(spec.get("ports")):
        set_default(port, "protocol", "TCP")
        if port.get("targetPort") is None and port.get("port") is not None:
            port["targetPort"] = port["port"]


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SERVICE_PROTOCOLS = ("TCP", "UDP")
SESSION_AFFINITIES = ("None", "ClientIP")
NODE_PORT_RANGE = (30000, 32767)
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def validate(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    stype = spec.get("type") or "ClusterIP"
    enum(errs, spec, "type", "spec", SERVICE_TYPES)
    enum(errs, spec, "sessionAffinity", "spec", SESSION_AFFINITIES)
    timeout = dict_of(dict_of(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
    if timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
        errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                            f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"))
    nonnegative(errs, spec, "healthCheckNodePort", "spec")
    errs += validate_labels(dict_of(spec.get("selector")), "spec.selector")
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if cluster_ip and not headless:
        try:
            ipaddress.IPv4Address(cluster_ip)
        except ValueError:
            errs.append(invalid("spec.clusterIP", cluster_ip, 'must be a valid IPv4 address or "None"'))
    if stype == "ExternalName":
        if not spec.get("externalName"):
            errs.append(required("spec.externalName"))
        elif dns1123_subdomain_error(spec["externalName"].rstrip(".")):
            errs.append(invalid("spec.externalName", spec["externalName"], "must be a valid DNS name"))
    elif headless and stype != "ClusterIP":
        errs.append(invalid("spec.clusterIP", cluster_ip, 'may only be "None" for type ClusterIP'))
    ports = dicts_of(spec.get("ports"))
    if not ports and not headless and stype != "ExternalName":
        errs.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        name = port.get("name")
        if name:
            err = dns1123_label_error(name)
            if err:
                errs.append(invalid(f"{p}.name", name, err))
            if name in names:
                errs.append(duplicate(f"{p}.name", name))
            names.add(name)
        elif len(ports) > 1:
            errs.append(required(f"{p}.name", "when there is more than one port"))
        number = port.get("port")
        if number is None:
            errs.append(required(f"{p}.port"))
        elif not 1 <= number <= 65535:
            errs.append(invalid(f"{p}.port", number, "must be between 1 and 65535, inclusive"))
        enum(errs, port, "protocol", p, SERVICE_PROTOCOLS)
        key = (number, port.get("protocol") or "TCP")
        if number is not None and key in seen:
            errs.append(duplicate(p, {"port": number, "protocol": key[1]}))
        seen.add(key)
        if port.get("targetPort") is not None:
            errs += validate_port_ref(port["targetPort"], f"{p}.targetPort")
        node_port = port.get("nodePort")
        if node_port:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is '{stype}'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                errs.append(
                    invalid(f"{p}.nodePort", node_port, "provided port is not in the valid range. "
                            f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}")
                )
            elif (node_port, key[1]) in node_ports:
                errs.append(duplicate(f"{p}.nodePort", node_port))
            node_ports.add((node_port, key[1]))
    return errs


def validate_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    new_ip = dict_of(new.get("spec")).get("clusterIP")
    old_ip = dict_of(old.get("spec")).get("clusterIP")
    if old_ip and new_ip != old_ip:
        return [invalid("spec.clusterIP", new_ip or "", "field is immutable")]
    return []


# --- schema ------------------------------------------------------------------------------------

SERVICE_PORT = struct(
    name=STRING, protocol=STRING, appProtocol=STRING, port=INT32, targetPort=INT_OR_STRING, nodePort=INT32
)
SERVICE_SPEC = struct(
    type=STRING,
    selector=MapOf(STRING),
    ports=ListOf(SERVICE_PORT),
    clusterIP=STRING,
    clusterIPs=ListOf(STRING),
    externalIPs=ListOf(STRING),
    externalName=STRING,
    sessionAffinity=STRING,
    sessionAffinityConfig=struct(clientIP=struct(timeoutSeconds=INT32)),
    publishNotReadyAddresses=BOOLEAN,
    externalTrafficPolicy=STRING,
    internalTrafficPolicy=STRING,
    ipFamilies=ListOf(STRING),
    ipFamilyPolicy=STRING,
    loadBalancerIP=STRING,
    loadBalancerSourceRanges=ListOf(STRING),
    allocateLoadBalancerNodePorts=BOOLEAN,
    healthCheckNodePort=INT32,
)
SERVICE_STATUS = struct(
    loadBalancer=struct(ingress=ListOf(struct(ip=STRING, hostname=STRING, ports=ListOf(ANY)))),
    conditions=ListOf(CONDITION),
)

SCHEMA = TOP_LEVEL.extend(spec=SERVICE_SPEC, status=SERVICE_STATUS)


# --- printer -----------------------------------------------------------------------------------


def service_ports(svc: Obj) -> str:
    """`80/TCP`, `80:30080/TCP` for node ports, comma-separated; `<none>` when empty."""
    out = []
    for p in spec_of(svc).get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or NONE


def service_external_ip(svc: Obj) -> str:
    spec = spec_of(svc)
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or NONE)
    ips = list(spec.get("externalIPs") or [])
    ips += [i.get("ip") or i.get("hostname") for i in (status_of(svc).get("loadBalancer") or {}).get("ingress") or []]
    if ips:
        return ",".join(str(i) for i in ips if i)
    return "<pending>" if spec.get("type") == "LoadBalancer" else NONE


def _service_cells(svc: Obj, now: datetime) -> list[Cell]:
    spec = spec_of(svc)
    return [
        name_of(svc),
        str(spec.get("type") or "ClusterIP"),
        str(spec.get("clusterIP") or NONE),
        service_external_ip(svc),
        service_ports(svc),
        created(svc, now),
        pairs_text(spec.get("selector") or {}),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Type", description="The type of the service."),
        Column("Cluster-IP", description="The IP address of the service in the cluster."),
        Column("External-IP", description="External addresses of the service."),
        Column("Port(s)", description="The ports the service exposes."),
        AGE,
        Column("Selector", description="The pods the service routes traffic to.", priority=1),
    ),
    _service_cells,
)


class ServiceStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA
    categories = ("all",)

    def name_error(self, name: str) -> str | None:
        return dns1035_label_error(name)

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_update(new, old)


STRATEGY = ServiceStrategy()
