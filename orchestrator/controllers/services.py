"""Service address allocation: cluster IPs from the service CIDR and NodePorts.

Allocation happens in a Registry create hook, i.e. inside the API request that creates the
Service, after defaulting and before validation, so the address is part of the first
stored version of the object and never changes afterwards (validation makes `clusterIP`
immutable on update). The store itself is the allocation table: the hook lists the
Services that exist and picks the lowest free address, so there is no separate bitmap to
repair after a crash. Creates may come from several threads (the API's loop, the
controllers' runners): the hook runs under a lock and an address or port handed to a
Service not yet stored counts as used (`Reservations`), so two concurrent creates cannot
pick the same one.

* `clusterIP` unset: the lowest free host address of the service CIDR, skipping the
  network address, the first address and the cluster DNS address (the 10th,
  `dns_service_ip`).
* The first address (`api_service_ip`, 10.43.0.1) belongs to `default/kubernetes`, the
  in-cluster API Service (`controllers.kubernetesservice`), as in Kubernetes: that Service
  gets it (unset or asked for), no other Service ever does. Likewise the DNS address goes
  only to `kube-system/kube-dns`.
* `clusterIP: None`: a headless Service, nothing allocated.
* `clusterIP` given: must lie in the CIDR and be free (else 422 Invalid).
* type NodePort/LoadBalancer: each port without `nodePort` gets the lowest free one of
  30000–32767 (per protocol); a requested one must be free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from .. import errors
from ..objects import Obj
from ..objects.kinds import by_kind
from ..objects.validation import NODE_PORT_RANGE, invalid
from ..registry import Registry
from .reservations import Reservations

SERVICE = by_kind("v1", "Service")
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"



class AllocationError(ValueError):
    """No address or port can be allocated (the message says which field and why)."""

    def __init__(self, field: str, value: Any, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.value = value
        self.detail = detail


def dns_service_ip(service_cidr: str) -> str:
    """The cluster DNS address: the 10th address of the service CIDR (10.43.0.10)."""
    return str(ipaddress.ip_network(service_cidr)[10])


def api_service_ip(service_cidr: str) -> str:
    """The in-cluster API address (`default/kubernetes`): the first address of the service
    CIDR (10.43.0.1), as kube-apiserver takes it."""
    return str(ipaddress.ip_network(service_cidr)[1])


API_SERVICE = ("default", "kubernetes")
DNS_SERVICE = ("kube-system", "kube-dns")


def reserved_ips(service_cidr: str) -> set[str]:
    net = ipaddress.ip_network(service_cidr)
    reserved = {str(net.network_address), str(net[1]), str(net.broadcast_address)}
    if net.num_addresses > 11:
        reserved.add(dns_service_ip(service_cidr))
    return reserved


def used_cluster_ips(services: Iterable[Obj]) -> set[str]:
    out = set()
    for svc in services:
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            out.add(ip)
    return out


def used_node_ports(services: Iterable[Obj]) -> set[tuple[int, str]]:
    out = set()
    for svc in services:
        for port in (svc.get("spec") or {}).get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                out.add((int(port["nodePort"]), port.get("protocol") or "TCP"))
    return out


def allocate_cluster_ip(service_cidr: str, used: set[str], wanted: str | None = None, dns_ip: bool = False,
                        api_ip: bool = False) -> str:
    """A free address of `service_cidr` (`wanted` when given and free).

    `dns_ip` / `api_ip`: the Service is the cluster DNS / the in-cluster API one, which may
    have its reserved address (`api_ip` gets it when nothing is asked for)."""
    net = ipaddress.ip_network(service_cidr)
    reserved = reserved_ips(service_cidr)
    if api_ip:
        reserved.discard(api_service_ip(service_cidr))
        wanted = wanted or api_service_ip(service_cidr)
    if wanted:
        try:
            addr = ipaddress.ip_address(wanted)
        except ValueError:
            raise AllocationError("spec.clusterIP", wanted, "must be a valid IP address") from None
        if addr not in net:
            raise AllocationError("spec.clusterIP", wanted, f"provided IP is not in the valid range {service_cidr}")
        if wanted in used:
            raise AllocationError("spec.clusterIP", wanted, "provided IP is already allocated")
        if wanted in reserved and not (dns_ip and net.num_addresses > 11 and wanted == dns_service_ip(service_cidr)):
            raise AllocationError("spec.clusterIP", wanted, "provided IP is reserved")
        return wanted
    for addr in net.hosts():
        ip = str(addr)
        if ip not in used and ip not in reserved:
            return ip
    raise AllocationError("spec.clusterIP", "", f"no free address left in the service range {service_cidr}")


def allocate_node_ports(ports: list[Obj], used: set[tuple[int, str]]) -> None:
    """Give each port without a nodePort the lowest free one (in place); check requested ones."""
    taken = set(used)
    for i, port in enumerate(ports):
        proto = port.get("protocol") or "TCP"
        wanted = port.get("nodePort")
        if wanted:
            if (wanted, proto) in taken:
                raise AllocationError(f"spec.ports[{i}].nodePort", wanted, "provided port is already allocated")
            taken.add((wanted, proto))
    for port in ports:
        if port.get("nodePort"):
            continue
        proto = port.get("protocol") or "TCP"
        for candidate in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1):
            if (candidate, proto) not in taken:
                port["nodePort"] = candidate
                taken.add((candidate, proto))
                break
        else:
            raise AllocationError("spec.ports", "", "no free node port left")


def plan_allocation(svc: Obj, existing: list[Obj], service_cidr: str) -> None:
    """Fill in `spec.clusterIP(s)` and node ports of a Service being created (in place)."""
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    stype = spec.get("type") or "ClusterIP"
    if stype == "ExternalName":
        return
    meta = svc.get("metadata") or {}
    key = (meta.get("namespace"), meta.get("name"))
    wanted = spec.get("clusterIP")
    if wanted != "None":
        spec["clusterIP"] = allocate_cluster_ip(service_cidr, used_cluster_ips(existing), wanted or None,
                                                dns_ip=key == DNS_SERVICE, api_ip=key == API_SERVICE)
    spec["clusterIPs"] = [spec["clusterIP"]]
    if stype in ("NodePort", "LoadBalancer"):
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        allocate_node_ports(ports, used_node_ports(existing))


def _service_key(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _allocated(svc: Obj) -> list[str]:
    """What a Service holds, as reservation values: its cluster IP and `port/protocol`s."""
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP")
    out = [ip] if ip and ip != "None" else []
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and port.get("nodePort"):
            out.append(f"{port['nodePort']}/{port.get('protocol') or 'TCP'}")
    return out


def _as_service(values: tuple[str, ...]) -> Obj:
    """A stand-in Service holding reserved values, for the allocation functions."""
    ports: list[Obj] = []
    ip = None
    for value in values:
        if "/" in value:
            port, proto = value.split("/", 1)
            ports.append({"nodePort": int(port), "protocol": proto})
        else:
            ip = value
    return {"spec": {"clusterIP": ip, "ports": ports}}


def service_allocation_hook(registry: Registry, service_cidr: str) -> Callable[[Obj], None]:
    reservations = Reservations()

    def hook(svc: Obj) -> None:
        key = _service_key(svc)
        with reservations.lock:
            existing = registry.items(SERVICE)
            in_flight = reservations.in_flight({_service_key(s) for s in existing})
            existing.extend(_as_service(values) for k, values in in_flight.items() if k != key)
            try:
                plan_allocation(svc, existing, service_cidr)
            except AllocationError as e:
                name = (svc.get("metadata") or {}).get("name") or ""
                raise errors.invalid("Service", name, [invalid(e.field, e.value, e.detail).cause()]) from None
            reservations.hold(key, _allocated(svc))

    return hook
