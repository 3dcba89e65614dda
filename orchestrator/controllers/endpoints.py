"""The Endpoints controller: which pod addresses back each Service.

For every Service with a selector there is an Endpoints object of the same name listing
the pods the selector matches: Ready pods under `subsets[].addresses`, the others under
`subsets[].notReadyAddresses` (each with `ip`, `nodeName` and a `targetRef` to the pod).
Pods without an IP yet, finished pods (Succeeded/Failed) and terminating pods are left
out, as in Kubernetes; `publishNotReadyAddresses` lists every pod as ready (for headless
StatefulSet-style discovery).

Ports are resolved per pod: a numeric `targetPort` is used as is, a named one is looked up
in the pod's container ports (a pod that has no port of that name is not an endpoint for
that service port). Pods whose resolved port lists are equal are grouped in one subset,
so the usual case — every pod alike — gives exactly one subset.

`compute_endpoints(service, pods)` is pure and unit-tested; the controller reacts to
Service and Pod events at once (a pod's Ready condition flipping is a pod status event,
so a pod failing readiness leaves the Endpoints within the agent's probe period), plus a
periodic resync. Endpoints of a Service without a selector are the user's and are never
touched; the Endpoints of a deleted Service are deleted with it. Services and pods are
read from the runner's informer caches (read-only; the registry when run without a runner).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ApiError
from ..objects import Obj
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..objects.selectors import selector_from_spec
from ..reconcile.runner import Controller, split_key

log = logging.getLogger("dockyard.controllers.endpoints")

SERVICE = by_kind("v1", "Service")
ENDPOINTS = by_kind("v1", "Endpoints")
POD = by_kind("v1", "Pod")
MANAGED_BY = "endpoints.dockyard.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"



def pod_is_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def resolve_target_port(pod: Obj, port: Obj) -> int | None:
    """The pod's port number for a service port (None when a named port is not found)."""
    target = port.get("targetPort")
    if target is None or target == "":
        target = port.get("port")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = port.get("protocol") or "TCP"
    for c in (pod.get("spec") or {}).get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and (cp.get("protocol") or "TCP") == proto:
                return int(cp["containerPort"])
    return None


def _address(pod: Obj) -> Obj:
    meta = pod.get("metadata") or {}
    addr: Obj = {
        "ip": (pod.get("status") or {}).get("podIP"),
        "targetRef": {
            "kind": "Pod",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    hostname = (pod.get("spec") or {}).get("hostname")
    if hostname:
        addr["hostname"] = hostname
    return addr


def compute_endpoints(service: Obj, pods: list[Obj]) -> list[Obj]:
    """The `subsets` of the Endpoints of `service`, given the pods of its namespace."""
    spec = service.get("spec") or {}
    selector = selector_from_spec({"matchLabels": spec.get("selector") or {}})
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    svc_ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name") or ""):
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or not status.get("podIP"):
            continue
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        if not selector.matches(meta.get("labels") or {}):
            continue
        resolved = []
        for port in svc_ports:
            number = resolve_target_port(pod, port)
            if number is not None:
                resolved.append((port.get("name") or "", number, port.get("protocol") or "TCP"))
        if svc_ports and not resolved:
            continue
        group = groups.setdefault(tuple(resolved), {"addresses": [], "notReadyAddresses": []})
        ready = publish_not_ready or pod_is_ready(pod)
        group["addresses" if ready else "notReadyAddresses"].append(_address(pod))
    subsets = []
    for ports, group in groups.items():
        subset: Obj = {}
        for key in ("addresses", "notReadyAddresses"):
            if group[key]:
                subset[key] = sorted(group[key], key=lambda a: a["ip"])
        if ports:
            subset["ports"] = [
                {**({"name": name} if name else {}), "port": number, "protocol": proto}
                for name, number, proto in ports
            ]
        subsets.append(subset)
    return subsets


def endpoints_object(service: Obj, subsets: list[Obj]) -> Obj:
    meta = service["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}, **{MANAGED_BY: CONTROLLER_NAME}),
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "subsets": subsets,
    }


class EndpointsController(Controller):
    name = "endpoints"
    watches = (SERVICE, POD)
    resync_seconds = 10.0

    def __init__(self, registry: ObjectAccess) -> None:
        super().__init__(registry)

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        if kind is SERVICE:
            return super().keys_for(kind, event_type, obj)
        ns = (obj.get("metadata") or {}).get("namespace")
        # Any Service of the namespace may have listed the pod before a label change, so all
        # Services with a selector are looked at again; a sync that changes nothing is a read.
        return [
            f"{ns}/{s['metadata']['name']}"
            for s in self.lister(SERVICE).list(ns)
            if (s.get("spec") or {}).get("selector")
        ]

    def all_keys(self) -> Iterable[str]:
        keys = {f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self.registry.items(SERVICE)}
        for ep in self.registry.items(ENDPOINTS):
            if (ep["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME:
                keys.add(f"{ep['metadata']['namespace']}/{ep['metadata']['name']}")
        return sorted(keys)

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.registry.try_get(SERVICE, ns, name)
        current = self.registry.try_get(ENDPOINTS, ns, name)
        if svc is None or svc["metadata"].get("deletionTimestamp") or not (svc.get("spec") or {}).get("selector"):
            if current is not None and (current["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER_NAME:
                if svc is None or not (svc.get("spec") or {}).get("selector"):
                    try:
                        self.registry.delete(ENDPOINTS, ns, name)
                    except ApiError as e:
                        if e.code != 404:
                            raise
            return
        # the namespace's pods from the runner's cache (shared, read-only), not a store list
        desired = endpoints_object(svc, compute_endpoints(svc, self.lister(POD).list(ns)))
        if current is None:
            self.registry.create(ENDPOINTS, ns, desired)
            return
        if current.get("subsets") == desired["subsets"] and current["metadata"].get("labels") == desired[
            "metadata"
        ]["labels"] and current["metadata"].get("ownerReferences") == desired["metadata"]["ownerReferences"]:
            return
        current["subsets"] = desired["subsets"]
        current["metadata"]["labels"] = desired["metadata"]["labels"]
        current["metadata"]["ownerReferences"] = desired["metadata"]["ownerReferences"]
        self.registry.update(ENDPOINTS, ns, name, current)
