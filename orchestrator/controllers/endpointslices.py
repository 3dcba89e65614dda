"""The EndpointSlice controller: a Service's pod endpoints as `discovery.k8s.io/v1` EndpointSlices.

What kube-controller-manager's EndpointSlice controller does, for every Service with a
selector (its slices are what `kubectl describe svc` lists under Endpoints and what the
agents' service proxy programs):

* an endpoint per matching pod of the Service's namespace that has an IP and is not
  finished (Succeeded/Failed): `addresses: [podIP]` (of the slice's address type),
  `conditions` (`serving` = the pod is Ready, `terminating` = it is being deleted,
  `ready` = serving and not terminating, or always with `publishNotReadyAddresses`),
  `targetRef` to the pod, `nodeName`, `zone` (the node's `topology.kubernetes.io/zone`
  label) and `hostname` when the pod's `hostname` and `subdomain` name this Service;
* the ports are the Service's, each `name`, `port` = the target port resolved on the pod
  (a named `targetPort` is looked up in its container ports, and a port a pod does not
  have is left out of its ports), `protocol` and `appProtocol`. Pods with the same
  resolved ports share slices, so the usual case is one slice per address type (from
  `spec.ipFamilies`, else the cluster IP's family, else IPv4);
* at most `MAX_ENDPOINTS_PER_SLICE` (100, kube-controller-manager's default) endpoints per
  slice; a Service without endpoints keeps one empty placeholder slice per address type;
* each slice is named by `generateName: <service>-` (a random suffix of 5), labelled
  `kubernetes.io/service-name: <service>` and `endpointslice.kubernetes.io/managed-by:
  endpointslice-controller.k8s.io` (plus the Service's own labels, and
  `service.kubernetes.io/headless` for a headless Service), and owned by the Service
  (`controller` and `blockOwnerDeletion` set), so the garbage collector removes them with it.

Reconciling keeps churn low, as Kubernetes' reconciler does: endpoints stay in the slice
that has them (updated in place when their conditions change), new ones fill slices with
room before a slice is created, emptied slices are deleted, and a slice about to be
deleted is reused (renamed creates become updates) when one of the same address type is
to be created. Slices of this controller that the Service does not own (an older Service
of the same name) are deleted.

`compute_endpoint_slices(service, pods, existing, zones)` is pure and unit-tested; the
controller reads Services, Pods, Nodes and EndpointSlices from the runner's informer
caches, notes its own writes there (a sync right after a create sees the new slice), and
reacts to Service and Pod events and to changes of its slices, with a periodic resync.
Slices of a Service without a selector are the user's and never touched; this
controller's slices of a Service that is gone or lost its selector are deleted.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ApiError
from ..objects import Obj
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..objects.selectors import selector_from_spec
from ..reconcile.informer import note_delete
from ..reconcile.runner import Controller, split_key
from .endpoints import pod_is_ready, resolve_target_port

log = logging.getLogger("dockyard.controllers.endpointslices")

SERVICE = by_kind("v1", "Service")
POD = by_kind("v1", "Pod")
NODE = by_kind("v1", "Node")
ENDPOINT_SLICE = by_kind("discovery.k8s.io/v1", "EndpointSlice")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

PortsKey = tuple[tuple[str, int, str, str], ...]


@dataclass
class SlicePlan:
    """What to write: new slices (bodies with generateName), updated slices (whole
    objects, from the existing ones) and the names of slices to delete."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


# --- pure computation ----------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(obj: Obj) -> Obj:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def _family(ip: Any) -> str | None:
    try:
        return "IPv6" if ipaddress.ip_address(str(ip)).version == 6 else "IPv4"
    except ValueError:
        return None


def address_types(service: Obj) -> list[str]:
    """The address types of a Service's slices: `spec.ipFamilies`, else the family of its
    cluster IP, else IPv4."""
    spec = _spec(service)
    families = [f for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return list(dict.fromkeys(families))
    family = _family(spec.get("clusterIP"))
    return [family] if family else ["IPv4"]


def pod_address(pod: Obj, address_type: str) -> str | None:
    """The pod's IP of `address_type` (`status.podIPs`, else `status.podIP`)."""
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)] or [status.get("podIP")]
    for ip in ips:
        if ip and _family(ip) == address_type:
            return str(ip)
    return None


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The Service's ports with their target ports resolved on `pod` (unresolved ones left out)."""
    out = []
    for port in _spec(service).get("ports") or []:
        if not isinstance(port, dict):
            continue
        number = resolve_target_port(pod, port)
        if number is None:
            continue
        p: Obj = {"name": port.get("name") or "", "port": number, "protocol": port.get("protocol") or "TCP"}
        if port.get("appProtocol"):
            p["appProtocol"] = port["appProtocol"]
        out.append(p)
    return out


def ports_key(ports: Any) -> PortsKey:
    """Ports compared as a set (order and defaults aside)."""
    return tuple(sorted(
        (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
         str(p.get("appProtocol") or ""))
        for p in ports or [] if isinstance(p, dict)
    ))


def should_be_endpoint(pod: Obj) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints (terminating pods included): an IP, not finished."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return bool(status.get("podIP") or status.get("podIPs"))


def pod_endpoint(service: Obj, pod: Obj, address: str, zones: Mapping[str, str]) -> Obj:
    meta = _meta(pod)
    spec = _spec(pod)
    serving = pod_is_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    ready = bool(_spec(service).get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": [address],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta.get("name"),
                      "uid": meta.get("uid")},
    }
    svc_meta = _meta(service)
    if spec.get("hostname") and spec.get("subdomain") == svc_meta.get("name") \
            and meta.get("namespace") == svc_meta.get("namespace"):
        endpoint["hostname"] = spec["hostname"]
    node = spec.get("nodeName")
    if node:
        endpoint["nodeName"] = node
        if zones.get(node):
            endpoint["zone"] = zones[node]
    return endpoint


def desired_endpoints(service: Obj, pods: Iterable[Obj], zones: Mapping[str, str] | None = None
                      ) -> dict[tuple[str, PortsKey], tuple[list[Obj], list[Obj]]]:
    """(address type, ports) -> (ports, endpoints sorted by pod name) for the pods the
    Service selects; every address type of the Service has an entry once it has endpoints."""
    zones = zones or {}
    selector = selector_from_spec({"matchLabels": _spec(service).get("selector") or {}})
    namespace = _meta(service).get("namespace")
    groups: dict[tuple[str, PortsKey], tuple[list[Obj], list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: str(_meta(p).get("name") or "")):
        meta = _meta(pod)
        if meta.get("namespace", namespace) != namespace or not selector.matches(meta.get("labels") or {}):
            continue
        if not should_be_endpoint(pod):
            continue
        ports = endpoint_ports(service, pod)
        for address_type in address_types(service):
            address = pod_address(pod, address_type)
            if address is None:
                continue
            group = groups.setdefault((address_type, ports_key(ports)), (ports, []))
            group[1].append(pod_endpoint(service, pod, address, zones))
    return groups


def slice_labels(service: Obj) -> dict[str, str]:
    """The Service's labels, the service-name and managed-by labels, and headless if so."""
    labels = {k: v for k, v in (_meta(service).get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = str(_meta(service).get("name"))
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if _spec(service).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def owner_reference(service: Obj) -> Obj:
    meta = _meta(service)
    return {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def owned_by(slice_: Obj, service: Obj) -> bool:
    uid = _meta(service).get("uid")
    return any(isinstance(r, dict) and r.get("uid") == uid and r.get("kind") == "Service"
               for r in _meta(slice_).get("ownerReferences") or [])


def managed_slices_of(service_name: str, slices: Iterable[Obj]) -> list[Obj]:
    """The slices this controller keeps for the Service named `service_name`."""
    out = []
    for s in slices:
        labels = _meta(s).get("labels") or {}
        if labels.get(SERVICE_NAME_LABEL) == service_name and labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME:
            out.append(s)
    return out


def _endpoint_id(endpoint: Obj) -> tuple[Any, ...]:
    ref = endpoint.get("targetRef") or {}
    return (tuple(endpoint.get("addresses") or ()), ref.get("name") or "")


def _sorted_endpoints(endpoints: Iterable[Obj]) -> list[Obj]:
    return sorted(endpoints, key=lambda e: (str(_endpoint_id(e)[1]), _endpoint_id(e)[0]))


def new_slice(service: Obj, address_type: str, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    meta = _meta(service)
    return {
        "apiVersion": ENDPOINT_SLICE.api_version,
        "kind": ENDPOINT_SLICE.kind,
        "metadata": {
            "generateName": f"{meta.get('name')}-",
            "namespace": meta.get("namespace"),
            "labels": slice_labels(service),
            "ownerReferences": [owner_reference(service)],
        },
        "addressType": address_type,
        "endpoints": _sorted_endpoints(endpoints),
        "ports": copy.deepcopy(ports),
    }


def _with(existing: Obj, service: Obj, ports: list[Obj], endpoints: list[Obj]) -> Obj | None:
    """`existing` rewritten with these ports and endpoints, right labels and owner; None
    when it already is so."""
    meta = _meta(existing)
    want_labels = slice_labels(service)
    want_owners = [owner_reference(service)]
    want_endpoints = _sorted_endpoints(endpoints)
    if (_sorted_endpoints(existing.get("endpoints") or []) == want_endpoints
            and ports_key(existing.get("ports")) == ports_key(ports)
            and (meta.get("labels") or {}) == want_labels and meta.get("ownerReferences") == want_owners):
        return None
    new = copy.deepcopy(existing)
    new["metadata"]["labels"] = want_labels
    new["metadata"]["ownerReferences"] = want_owners
    new["endpoints"] = want_endpoints
    new["ports"] = copy.deepcopy(ports)
    return new


def _reconcile_group(service: Obj, address_type: str, ports: list[Obj], endpoints: list[Obj],
                     slices: list[Obj], limit: int, plan: SlicePlan) -> None:
    """One (address type, ports) group against the existing slices of that group."""
    wanted = {_endpoint_id(e): e for e in endpoints}
    placed: dict[str, list[Obj]] = {}  # slice name -> endpoints it keeps
    by_name = {str(_meta(s).get("name")): s for s in slices}
    for name in sorted(by_name):
        keep = [wanted.pop(_endpoint_id(e)) for e in by_name[name].get("endpoints") or []
                if isinstance(e, dict) and _endpoint_id(e) in wanted]
        placed[name] = keep[:limit]
        for e in keep[limit:]:
            wanted[_endpoint_id(e)] = e
    remaining = _sorted_endpoints(wanted.values())
    # new endpoints first fill the slices that keep some, fullest first, then the others
    for name in sorted(placed, key=lambda n: (-len(placed[n]), n)):
        if not remaining:
            break
        if not placed[name]:
            continue
        room = limit - len(placed[name])
        placed[name] += remaining[:room]
        remaining = remaining[room:]
    for name in sorted(placed):
        if not placed[name]:
            plan.delete.append(name)
            continue
        updated = _with(by_name[name], service, ports, placed[name])
        if updated is not None:
            plan.update.append(updated)
    for i in range(0, len(remaining), limit):
        plan.create.append(new_slice(service, address_type, ports, remaining[i:i + limit]))


def compute_endpoint_slices(service: Obj, pods: Iterable[Obj], existing: Iterable[Obj],
                            zones: Mapping[str, str] | None = None,
                            limit: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """The writes that make the Service's slices (`existing`: this controller's slices of a
    Service of that name) equal to what its pods call for."""
    plan = SlicePlan()
    existing = list(existing)
    if not _spec(service).get("selector"):
        plan.delete = sorted(str(_meta(s).get("name")) for s in existing)
        return plan
    owned = [s for s in existing if owned_by(s, service)]
    stale = [str(_meta(s).get("name")) for s in existing if not owned_by(s, service)]
    groups = desired_endpoints(service, pods, zones)
    types = address_types(service)
    for address_type in types:
        of_type = [s for s in owned if s.get("addressType") == address_type]
        for (group_type, key), (ports, endpoints) in groups.items():
            if group_type != address_type:
                continue
            matching = [s for s in of_type if ports_key(s.get("ports")) == key]
            _reconcile_group(service, address_type, ports, endpoints, matching, limit, plan)
        group_keys = {key for (t, key) in groups if t == address_type}
        left = [s for s in of_type if ports_key(s.get("ports")) not in group_keys]
        has_slices = any(t == address_type for (t, _) in groups)
        if not has_slices:
            # a placeholder: one empty slice of the type (kept when it already is one)
            placeholder = next((s for s in sorted(left, key=lambda s: str(_meta(s).get("name")))
                                if not s.get("endpoints") and not s.get("ports")), None)
            if placeholder is not None:
                left.remove(placeholder)
                updated = _with(placeholder, service, [], [])
                if updated is not None:
                    plan.update.append(updated)
            else:
                plan.create.append(new_slice(service, address_type, [], []))
        plan.delete += [str(_meta(s).get("name")) for s in left]
    # slices of address types the Service no longer has
    plan.delete += [str(_meta(s).get("name")) for s in owned if s.get("addressType") not in types]
    _reuse_deleted(plan, {str(_meta(s).get("name")): s for s in owned})
    plan.delete = sorted(set(plan.delete) | set(stale))
    return plan


def _reuse_deleted(plan: SlicePlan, owned: dict[str, Obj]) -> None:
    """Turn creates into updates of slices about to be deleted (same address type), as
    Kubernetes' reconciler does: fewer writes, stable names."""
    for name in sorted(plan.delete):
        old = owned.get(name)
        if old is None:
            continue
        match = next((c for c in plan.create if c["addressType"] == old.get("addressType")), None)
        if match is None:
            continue
        plan.create.remove(match)
        plan.delete.remove(name)
        reused = copy.deepcopy(old)
        reused["metadata"]["labels"] = match["metadata"]["labels"]
        reused["metadata"]["ownerReferences"] = match["metadata"]["ownerReferences"]
        reused["endpoints"] = match["endpoints"]
        reused["ports"] = match["ports"]
        plan.update.append(reused)


# --- the controller --------------------------------------------------------------------------


class EndpointSliceController(Controller):
    name = "endpointslices"
    watches = (SERVICE, POD, ENDPOINT_SLICE, NODE)
    resync_seconds = 10.0

    def __init__(self, registry: ObjectAccess, limit: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__(registry)
        self.limit = limit

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace")
        if kind is SERVICE:
            return [f"{ns}/{meta['name']}"]
        if kind is ENDPOINT_SLICE:
            labels = meta.get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
                return [f"{ns}/{labels[SERVICE_NAME_LABEL]}"]
            return []
        if kind is POD:
            # the pod may have been selected before a label change: every Service with a selector
            return [f"{ns}/{s['metadata']['name']}" for s in self.lister(SERVICE).list(ns)
                    if (s.get("spec") or {}).get("selector")]
        return []  # nodes: zones are read at each sync, and the resync picks up their changes

    def all_keys(self) -> Iterable[str]:
        keys = {f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in self.lister(SERVICE).list()}
        for s in managed_slices_of_any(self.lister(ENDPOINT_SLICE).list()):
            keys.add(f"{s['metadata']['namespace']}/{s['metadata']['labels'][SERVICE_NAME_LABEL]}")
        return sorted(keys)

    def _zones(self) -> dict[str, str]:
        return {n["metadata"]["name"]: str((n["metadata"].get("labels") or {}).get(ZONE_LABEL) or "")
                for n in self.lister(NODE).list()}

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        cache = self.lister(ENDPOINT_SLICE)
        existing = managed_slices_of(name, cache.list(ns))
        svc = self.lister(SERVICE).get(ns, name)
        if svc is None:
            plan = SlicePlan(delete=sorted(str(s["metadata"]["name"]) for s in existing))
        elif (svc.get("metadata") or {}).get("deletionTimestamp"):
            return  # the garbage collector takes the slices with the Service
        else:
            plan = compute_endpoint_slices(svc, self.lister(POD).list(ns), existing, self._zones(), self.limit)
        if plan.empty:
            return
        for slice_name in plan.delete:
            try:
                note_delete(cache, self.registry.delete(ENDPOINT_SLICE, ns, slice_name))
            except ApiError as e:
                if e.code != 404:
                    raise
        for body in plan.update:
            # a conflict (the cache is behind) fails the sync: it is retried once the
            # watch has brought the slice's newer version
            cache.note(self.registry.update(ENDPOINT_SLICE, ns, body["metadata"]["name"], body))
        for body in plan.create:
            created = self.registry.create(ENDPOINT_SLICE, ns, body)
            cache.note(created)
            log.debug("created EndpointSlice %s/%s for Service %s", ns, created["metadata"]["name"], name)


def managed_slices_of_any(slices: Iterable[Obj]) -> list[Obj]:
    """Every slice this controller keeps, whatever its Service."""
    return [s for s in slices if ((_meta(s).get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME
                                  and (_meta(s).get("labels") or {}).get(SERVICE_NAME_LABEL))]
