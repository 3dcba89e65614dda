"""The in-cluster API Service: `default/kubernetes`, its Endpoints and EndpointSlice, kept by the master.

What kube-apiserver's bootstrap controller and master endpoint reconciler do, for the one
master Dockyard has:

* the Service `default/kubernetes` (labels `component=apiserver`, `provider=kubernetes`):
  type ClusterIP, no selector, one port `https` 443/TCP whose `targetPort` is the port the
  master serves on. Its cluster IP is the first address of the service CIDR: the allocation
  hook (`controllers.services`) gives that address to this Service and to no other, so the
  controller needs not know the CIDR. A missing Service is created again; a Service whose
  ports differ (the master moved to another port) gets its ports back, other fields are left
  as they are (`clusterIP` is immutable, as in Kubernetes).
* the Endpoints `default/kubernetes`: the master's advertised address and port (port name
  `https`), labelled `endpointslice.kubernetes.io/skip-mirror=true` as Kubernetes labels
  them. Created again when deleted, rewritten when the address or port changed. The Service
  has no selector, so the Endpoints controller leaves them alone.
* the EndpointSlice `default/kubernetes`, as kube-apiserver's endpoints adapter writes it:
  labelled `kubernetes.io/service-name=kubernetes` only (no managed-by label, no owner),
  address type of the master's address, one endpoint `{addresses: [IP], conditions:
  {ready: true}}`, one port `https`. It is what the agents' service proxy programs for
  `10.43.0.1:443` and what `kubectl describe svc kubernetes` lists; the EndpointSlice
  controller, which keeps only slices labelled as its own, leaves it alone.

Pods find the API through them: the agents' service rules send `10.43.0.1:443` to the
master, and every container gets `KUBERNETES_SERVICE_HOST`/`_PORT` (`agent.serviceenv`).

The controller reacts to any event of those three objects (the runner's shared Service,
Endpoints and EndpointSlice informers; every other key is ignored) and checks again at each
resync. It reads the informer caches, so a check that finds everything right costs no
request, and the resync can be short (2 s): it is also what creates the objects in a new
cluster, where no event would. `desired_service`, `desired_endpoints`,
`desired_endpoint_slice` and the `*_update` functions are pure
and unit-tested. Without a master endpoint (a controller manager started by hand without
one) the controller is not built.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError
from ..objects import Obj
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..reconcile.runner import Controller

log = logging.getLogger("dockyard.controllers.kubernetes-service")

SERVICE = by_kind("v1", "Service")
ENDPOINTS = by_kind("v1", "Endpoints")
ENDPOINT_SLICE = by_kind("discovery.k8s.io/v1", "EndpointSlice")
NAMESPACE = "default"
NAME = "kubernetes"
KEY = f"{NAMESPACE}/{NAME}"
SERVICE_PORT = 443
PORT_NAME = "https"
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class MasterEndpoint:
    """Where pods reach the master: its advertised IP address and the port it serves on."""

    ip: str
    port: int

    @classmethod
    def parse(cls, text: str) -> MasterEndpoint:
        """`IP:PORT` (`[IPv6]:PORT` for IPv6)."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"a master endpoint is IP:PORT, got {text!r}")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def service_ports(endpoint: MasterEndpoint) -> list[Obj]:
    return [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP", "targetPort": endpoint.port}]


def desired_service(endpoint: MasterEndpoint) -> Obj:
    """The Service to create (its cluster IP comes from the allocation hook)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(SERVICE_LABELS)},
        "spec": {"type": "ClusterIP", "ports": service_ports(endpoint), "sessionAffinity": "None"},
    }


def desired_subsets(endpoint: MasterEndpoint) -> list[Obj]:
    return [{"addresses": [{"ip": endpoint.ip}],
             "ports": [{"name": PORT_NAME, "port": endpoint.port, "protocol": "TCP"}]}]


def desired_endpoints(endpoint: MasterEndpoint) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SKIP_MIRROR: "true"}},
        "subsets": desired_subsets(endpoint),
    }


def _address_type(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def desired_slice_fields(endpoint: MasterEndpoint) -> Obj:
    """addressType, endpoints and ports of the EndpointSlice default/kubernetes."""
    return {
        "addressType": _address_type(endpoint.ip),
        "endpoints": [{"addresses": [endpoint.ip], "conditions": {"ready": True}}],
        "ports": [{"name": PORT_NAME, "port": endpoint.port, "protocol": "TCP"}],
    }


def desired_endpoint_slice(endpoint: MasterEndpoint) -> Obj:
    return {
        "apiVersion": ENDPOINT_SLICE.api_version,
        "kind": ENDPOINT_SLICE.kind,
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {SERVICE_NAME_LABEL: NAME}},
        **desired_slice_fields(endpoint),
    }


def endpoint_slice_update(current: Obj, endpoint: MasterEndpoint) -> Obj | None:
    """The existing EndpointSlice pointing at `endpoint` (other labels kept), or None when it
    already does. None too when its address type is not the master's (the field is
    immutable): `replace_slice` tells the controller to delete it, to be created again."""
    want = desired_slice_fields(endpoint)
    labels = (current.get("metadata") or {}).get("labels") or {}
    if (all(current.get(k) == v for k, v in want.items()) and labels.get(SERVICE_NAME_LABEL) == NAME) \
            or replace_slice(current, endpoint):
        return None
    new = copy.deepcopy(current)
    new.update(want)
    new.setdefault("metadata", {})["labels"] = {**labels, SERVICE_NAME_LABEL: NAME}
    return new


def replace_slice(current: Obj, endpoint: MasterEndpoint) -> bool:
    """The slice has another address type than the master's address (immutable: delete it)."""
    return current.get("addressType") != _address_type(endpoint.ip)


def _port_key(port: Any) -> tuple[Any, ...]:
    p = port if isinstance(port, dict) else {}
    return (p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("targetPort"))


def service_update(current: Obj, endpoint: MasterEndpoint) -> Obj | None:
    """The existing Service with its ports put back, or None when they are right."""
    spec = current.get("spec") or {}
    want = service_ports(endpoint)
    if [_port_key(p) for p in spec.get("ports") or []] == [_port_key(p) for p in want]:
        return None
    new = copy.deepcopy(current)
    new.setdefault("spec", {})["ports"] = want
    return new


def _subset_key(subsets: Any) -> list[tuple[Any, ...]]:
    out = []
    for s in subsets or []:
        if not isinstance(s, dict):
            continue
        ips = tuple(sorted(str(a.get("ip")) for a in s.get("addresses") or [] if isinstance(a, dict)))
        not_ready = tuple(sorted(str(a.get("ip")) for a in s.get("notReadyAddresses") or [] if isinstance(a, dict)))
        ports = tuple(sorted((str(p.get("name") or ""), p.get("port"), p.get("protocol") or "TCP")
                             for p in s.get("ports") or [] if isinstance(p, dict)))
        out.append((ips, not_ready, ports))
    return out


def endpoints_update(current: Obj, endpoint: MasterEndpoint) -> Obj | None:
    """The existing Endpoints pointing at `endpoint` (labels kept, skip-mirror added), or
    None when they already do."""
    want = desired_subsets(endpoint)
    labels = (current.get("metadata") or {}).get("labels") or {}
    if _subset_key(current.get("subsets")) == _subset_key(want) and labels.get(SKIP_MIRROR) == "true":
        return None
    new = copy.deepcopy(current)
    new["subsets"] = want
    new.setdefault("metadata", {})["labels"] = {**labels, SKIP_MIRROR: "true"}
    return new


class KubernetesServiceController(Controller):
    name = "kubernetes-service"
    watches = (SERVICE, ENDPOINTS, ENDPOINT_SLICE)
    resync_seconds = 2.0

    def __init__(self, registry: ObjectAccess, endpoint: MasterEndpoint) -> None:
        super().__init__(registry)
        self.endpoint = endpoint

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        meta = obj.get("metadata") or {}
        return [KEY] if (meta.get("namespace"), meta.get("name")) == (NAMESPACE, NAME) else []

    def all_keys(self) -> Iterable[str]:
        return [KEY]

    def sync(self, key: str) -> None:
        if key != KEY:
            return
        self._sync_service()
        self._sync_endpoints()
        self._sync_endpoint_slice()

    def _sync_service(self) -> None:
        cache = self.lister(SERVICE)
        current = cache.get(NAMESPACE, NAME)
        if current is None:
            log.info("creating the in-cluster API Service default/kubernetes")
            try:
                cache.note(self.registry.create(SERVICE, NAMESPACE, desired_service(self.endpoint)))
            except ApiError as e:
                if e.reason != "AlreadyExists":
                    raise
            return
        if (current.get("metadata") or {}).get("deletionTimestamp"):
            return  # created again once it is gone
        new = service_update(current, self.endpoint)
        if new is not None:
            log.info("setting the ports of the Service default/kubernetes (target port %d)", self.endpoint.port)
            cache.note(self.registry.update(SERVICE, NAMESPACE, NAME, new))

    def _sync_endpoints(self) -> None:
        cache = self.lister(ENDPOINTS)
        current = cache.get(NAMESPACE, NAME)
        if current is None:
            log.info("creating the Endpoints default/kubernetes (%s)", self.endpoint)
            try:
                cache.note(self.registry.create(ENDPOINTS, NAMESPACE, desired_endpoints(self.endpoint)))
            except ApiError as e:
                if e.reason != "AlreadyExists":
                    raise
            return
        new = endpoints_update(current, self.endpoint)
        if new is not None:
            log.info("pointing the Endpoints default/kubernetes at %s", self.endpoint)
            cache.note(self.registry.update(ENDPOINTS, NAMESPACE, NAME, new))

    def _sync_endpoint_slice(self) -> None:
        cache = self.lister(ENDPOINT_SLICE)
        current = cache.get(NAMESPACE, NAME)
        if current is not None and replace_slice(current, self.endpoint):
            log.info("replacing the EndpointSlice default/kubernetes (the master's address type changed)")
            try:
                cache.note_deleted(self.registry.delete(ENDPOINT_SLICE, NAMESPACE, NAME))
            except ApiError as e:
                if e.code != 404:
                    raise
            current = None
        if current is None:
            log.info("creating the EndpointSlice default/kubernetes (%s)", self.endpoint)
            try:
                cache.note(self.registry.create(ENDPOINT_SLICE, NAMESPACE, desired_endpoint_slice(self.endpoint)))
            except ApiError as e:
                if e.reason != "AlreadyExists":
                    raise
            return
        new = endpoint_slice_update(current, self.endpoint)
        if new is not None:
            log.info("pointing the EndpointSlice default/kubernetes at %s", self.endpoint)
            cache.note(self.registry.update(ENDPOINT_SLICE, NAMESPACE, NAME, new))
