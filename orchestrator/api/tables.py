"""Server-side printing: `meta.k8s.io/v1 Table` responses, as kubectl asks for them.

`kubectl get` does not know how to print most kinds itself; it sends
`Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json` and prints the
`columnDefinitions` and `rows` the server returns, upper-casing the column names. Columns
with `priority` 0 are the default view; priority 1 columns appear with `-o wide` (the
server always sends every cell). Each row carries the object it was made from: as a
`PartialObjectMetadata` by default, in full with `includeObject=Object`, or not at all
with `includeObject=None`.

The columns and cell conventions are Kubernetes' (pkg/printers/internalversion): pod READY
`1/1`, STATUS the waiting/terminated reason or phase, RESTARTS `2 (5m ago)`, AGE `3m12s`,
`<none>` for empty cells. Cell text reuses the pure helpers of the CLI's tables so
`dockyard get` and `kubectl get` agree. Builders are pure functions of the object and
"now", so they are table-tested.

`negotiate(accept)` reads an Accept header (media ranges in order of preference) and says
whether the client wants a Table, PartialObjectMetadata, or the plain object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..cli import tables as cli_tables
from ..objects.kinds import Kind

Obj = dict[str, Any]
NONE = "<none>"
META_GROUP = "meta.k8s.io"


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> Obj:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


CellsFn = Callable[[Obj, datetime], list[Any]]

NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE = Column("Age", description="CreationTimestamp is the time the object was created, as a duration.")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return cli_tables.age((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# --- pods ------------------------------------------------------------------------------------


def pod_restarts(pod: Obj, now: datetime) -> str:
    """Restart count, with how long ago the last container restart was: `2 (5m ago)`."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    count = sum(_int(cs.get("restartCount")) for cs in statuses)
    last = None
    for cs in statuses:
        finished = cli_tables.parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (last is None or finished > last):
            last = finished
    if count and last is not None:
        return f"{count} ({cli_tables.format_duration((now - last).total_seconds())} ago)"
    return str(count)


def readiness_gates(pod: Obj) -> str:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return NONE
    conds = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []}
    ready = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
    return f"{ready}/{len(gates)}"


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    status = pod.get("status") or {}
    return [
        _name(pod),
        cli_tables.pod_ready(pod),
        cli_tables.pod_status(pod),
        pod_restarts(pod, now),
        _age(pod, now),
        status.get("podIP") or NONE,
        (pod.get("spec") or {}).get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        readiness_gates(pod),
    ]


POD_COLUMNS = [
    NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="The number of times the containers in this pod have been restarted "
                                   "and when the last container in this pod has restarted."),
    AGE,
    Column("IP", description="IP address allocated to the pod.", priority=1),
    Column("Node", description="Name of the node the pod is assigned to.", priority=1),
    Column("Nominated Node", description="Name of the node the pod is nominated to.", priority=1),
    Column("Readiness Gates", description="Pod readiness gates.", priority=1),
]

# --- workloads -------------------------------------------------------------------------------


def _desired(obj: Obj) -> int:
    spec = obj.get("spec") or {}
    return _int(spec["replicas"]) if spec.get("replicas") is not None else 1


def _template_cells(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(str(c.get("name", "")) for c in containers) or NONE,
        ",".join(str(c.get("image", "")) for c in containers) or NONE,
        cli_tables.selector_text(spec.get("selector")),
    ]


TEMPLATE_COLUMNS = [
    Column("Containers", description="Names of each container in the template.", priority=1),
    Column("Images", description="Images referenced by each container in the template.", priority=1),
    Column("Selector", description="Label selector for pods.", priority=1),
]


def _deployment_cells(d: Obj, now: datetime) -> list[Any]:
    status = d.get("status") or {}
    return [
        _name(d),
        f"{_int(status.get('readyReplicas'))}/{_desired(d)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(d, now),
        *_template_cells(d),
    ]


DEPLOYMENT_COLUMNS = [
    NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", "integer", description="Total number of non-terminated pods targeted by this "
                                                "deployment that have the desired template spec."),
    Column("Available", "integer", description="Total number of available pods (ready for at least "
                                               "minReadySeconds) targeted by this deployment."),
    AGE,
    *TEMPLATE_COLUMNS,
]


def _replicaset_cells(rs: Obj, now: datetime) -> list[Any]:
    status = rs.get("status") or {}
    return [
        _name(rs),
        _desired(rs),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(rs, now),
        *_template_cells(rs),
    ]


REPLICASET_COLUMNS = [
    NAME,
    Column("Desired", "integer", description="Number of desired pods."),
    Column("Current", "integer", description="Number of actual replicas."),
    Column("Ready", "integer", description="The number of ready replicas for this replica set."),
    AGE,
    *TEMPLATE_COLUMNS,
]

# --- nodes and namespaces --------------------------------------------------------------------


def _node_address(node: Obj, kind: str) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == kind and addr.get("address"):
            return str(addr["address"])
    return NONE


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [
        _name(node),
        cli_tables.node_status(node),
        cli_tables.node_roles(node),
        _age(node, now),
        str(info.get("kubeletVersion") or ""),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        str(info.get("osImage") or "<unknown>"),
        str(info.get("kernelVersion") or "<unknown>"),
        str(info.get("containerRuntimeVersion") or "<unknown>"),
    ]


NODE_COLUMNS = [
    NAME,
    Column("Status", description="The status of the node"),
    Column("Roles", description="The roles of the node"),
    AGE,
    Column("Version", description="Kubelet Version reported by the node."),
    Column("Internal-IP", description="List of internal IPs of the node.", priority=1),
    Column("External-IP", description="List of external IPs of the node.", priority=1),
    Column("OS-Image", description="OS Image reported by the node.", priority=1),
    Column("Kernel-Version", description="Kernel Version reported by the node.", priority=1),
    Column("Container-Runtime", description="Container Runtime Version reported by the node.", priority=1),
]


def _namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    return [_name(ns), str((ns.get("status") or {}).get("phase") or "Active"), _age(ns, now)]


NAMESPACE_COLUMNS = [NAME, Column("Status", description="The status of the namespace"), AGE]

# --- config and events -----------------------------------------------------------------------


def _lease_cells(lease: Obj, now: datetime) -> list[Any]:
    return [_name(lease), str((lease.get("spec") or {}).get("holderIdentity") or ""), _age(lease, now)]


LEASE_COLUMNS = [NAME, Column("Holder", description="The holder of the lease."), AGE]


def _configmap_cells(cm: Obj, now: datetime) -> list[Any]:
    return [_name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), _age(cm, now)]


CONFIGMAP_COLUMNS = [NAME, Column("Data", "integer", description="Number of keys in the config map."), AGE]


def _secret_cells(s: Obj, now: datetime) -> list[Any]:
    return [_name(s), str(s.get("type") or "Opaque"), len(s.get("data") or {}), _age(s, now)]


SECRET_COLUMNS = [
    NAME,
    Column("Type", description="The type of the secret"),
    Column("Data", "integer", description="Number of keys in the secret."),
    AGE,
]


def _event_source(ev: Obj) -> str:
    src = ev.get("source") or {}
    text = ", ".join(str(x) for x in (src.get("component"), src.get("host")) if x)
    return text or str(ev.get("reportingComponent") or "")


def _event_cells(ev: Obj, now: datetime) -> list[Any]:
    ref = ev.get("involvedObject") or {}
    first = ev.get("firstTimestamp") or ev.get("eventTime") or (ev.get("metadata") or {}).get("creationTimestamp")
    count = _int(ev.get("count")) or _int((ev.get("series") or {}).get("count")) or 1
    return [
        cli_tables.age(cli_tables.event_last_seen(ev), now),
        str(ev.get("type") or ""),
        str(ev.get("reason") or ""),
        cli_tables.event_object(ev),
        str(ref.get("fieldPath") or ""),
        _event_source(ev),
        " ".join(str(ev.get("message") or "").split()),
        cli_tables.age(first, now),
        count,
        _name(ev),
    ]


EVENT_COLUMNS = [
    Column("Last Seen", description="Time when the most recent occurrence of this event was recorded."),
    Column("Type", description="Type of this event (Normal, Warning)."),
    Column("Reason", description="The reason for the transition into the object's current status."),
    Column("Object", description="The object that this event is about."),
    Column("Subobject", description="The field of the object this event is about.", priority=1),
    Column("Source", description="The component reporting this event.", priority=1),
    Column("Message", description="A human-readable description of the status of this operation."),
    Column("First Seen", description="The time at which the event was first recorded.", priority=1),
    Column("Count", "integer", description="The number of times this event has occurred.", priority=1),
    Column("Name", format="name", description="The name of the event.", priority=1),
]


# --- services ---------------------------------------------------------------------------------


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec = svc.get("spec") or {}
    selector = spec.get("selector") or {}
    return [
        _name(svc),
        str(spec.get("type") or "ClusterIP"),
        str(spec.get("clusterIP") or NONE),
        cli_tables.service_external_ip(svc),
        cli_tables.service_ports(svc),
        _age(svc, now),
        ",".join(f"{k}={v}" for k, v in selector.items()) or NONE,
    ]


SERVICE_COLUMNS = [
    NAME,
    Column("Type", description="The type of the service."),
    Column("Cluster-IP", description="The IP address of the service in the cluster."),
    Column("External-IP", description="External addresses of the service."),
    Column("Port(s)", description="The ports the service exposes."),
    AGE,
    Column("Selector", description="The pods the service routes traffic to.", priority=1),
]


def _endpoints_cells(ep: Obj, now: datetime) -> list[Any]:
    return [_name(ep), cli_tables.endpoints_text(ep), _age(ep, now)]


ENDPOINTS_COLUMNS = [NAME, Column("Endpoints", description="Endpoints of the service."), AGE]


def _generic_cells(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _age(obj, now)]


GENERIC_COLUMNS = [NAME, AGE]

# --- autoscalers ------------------------------------------------------------------------------


def _hpa_cells(hpa: Obj, now: datetime) -> list[Any]:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    lo = spec.get("minReplicas")
    return [
        _name(hpa),
        cli_tables.hpa_reference(hpa),
        cli_tables.hpa_targets(hpa),
        1 if lo is None else _int(lo),
        _int(spec.get("maxReplicas")),
        _int(status.get("currentReplicas")),
        _age(hpa, now),
    ]


HPA_COLUMNS = [
    NAME,
    Column("Reference", description="The scale target of the autoscaler."),
    Column("Targets", description="The current and target values of the metrics."),
    Column("MinPods", "integer", description="The lower limit for the number of pods."),
    Column("MaxPods", "integer", description="The upper limit for the number of pods."),
    Column("Replicas", "integer", description="Current number of replicas of the scale target."),
    AGE,
]

PRINTERS: dict[str, tuple[list[Column], CellsFn]] = {
    "pods": (POD_COLUMNS, _pod_cells),
    "deployments": (DEPLOYMENT_COLUMNS, _deployment_cells),
    "replicasets": (REPLICASET_COLUMNS, _replicaset_cells),
    "nodes": (NODE_COLUMNS, _node_cells),
    "namespaces": (NAMESPACE_COLUMNS, _namespace_cells),
    "configmaps": (CONFIGMAP_COLUMNS, _configmap_cells),
    "secrets": (SECRET_COLUMNS, _secret_cells),
    "events": (EVENT_COLUMNS, _event_cells),
    "services": (SERVICE_COLUMNS, _service_cells),
    "endpoints": (ENDPOINTS_COLUMNS, _endpoints_cells),
    "horizontalpodautoscalers": (HPA_COLUMNS, _hpa_cells),
    "leases": (LEASE_COLUMNS, _lease_cells),
}


def columns(kind: Kind) -> list[Column]:
    return PRINTERS.get(kind.resource, (GENERIC_COLUMNS, _generic_cells))[0]


def cells(kind: Kind, obj: Obj, now: datetime) -> list[Any]:
    return PRINTERS.get(kind.resource, (GENERIC_COLUMNS, _generic_cells))[1](obj, now)


# --- tables ----------------------------------------------------------------------------------

INCLUDE_OBJECT = ("None", "Metadata", "Object")


def partial_metadata(obj: Obj, version: str = "v1") -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": obj.get("metadata") or {},
    }


def table_row(kind: Kind, obj: Obj, now: datetime, include_object: str = "Metadata", version: str = "v1") -> Obj:
    row: Obj = {"cells": cells(kind, obj, now)}
    if include_object == "Object":
        row["object"] = obj
    elif include_object == "Metadata":
        row["object"] = partial_metadata(obj, version)
    return row


def table(
    kind: Kind,
    objs: list[Obj],
    resource_version: str | None = None,
    include_object: str = "Metadata",
    now: datetime | None = None,
    version: str = "v1",
    column_definitions: bool = True,
) -> Obj:
    """A `Table` of `objs`, all of `kind`."""
    now = now or datetime.now(UTC)
    meta: Obj = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {
        "kind": "Table",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": meta,
        "columnDefinitions": [c.definition() for c in columns(kind)] if column_definitions else [],
        "rows": [table_row(kind, o, now, include_object, version) for o in objs],
    }


def partial_list(objs: list[Obj], resource_version: str | None = None, version: str = "v1") -> Obj:
    meta: Obj = {"resourceVersion": resource_version} if resource_version else {}
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"{META_GROUP}/{version}",
        "metadata": meta,
        "items": [partial_metadata(o, version) for o in objs],
    }


# --- content negotiation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """What the client asked for: `as_` is "" (the object), Table, PartialObjectMetadata(List)."""

    as_: str = ""
    version: str = "v1"

    @property
    def table(self) -> bool:
        return self.as_ == "Table"

    @property
    def partial(self) -> bool:
        return self.as_ in ("PartialObjectMetadata", "PartialObjectMetadataList")


_SERVED_MEDIA = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "*/*",
                 "application/*", "application/json;stream=watch")


def negotiate(accept: str | None) -> Wanted:
    """The first media range of `accept` this server can answer (always answered as JSON)."""
    if not accept:
        return Wanted()
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = {}
        for f in fields[1:]:
            if "=" in f:
                k, v = f.split("=", 1)
                params[k.strip().lower()] = v.strip()
        as_ = params.get("as")
        if as_ is None:
            if media in _SERVED_MEDIA or media.startswith("application/"):
                return Wanted()
            continue
        if params.get("g") != META_GROUP or params.get("v") not in ("v1", "v1beta1"):
            continue
        if as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return Wanted(as_, params["v"])
    return Wanted()
