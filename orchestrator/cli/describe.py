"""`dockyard describe`: a human-oriented report of one object and what happened to it.

The layout follows `kubectl describe` (people read both): `Label:  value` lines aligned per
nesting level, small tables (conditions, events) with dashed underlines, and an `Events:`
section listing the Events whose `involvedObject.uid` is the object's. Events are listed
with the field selector `involvedObject.name=NAME` to keep the response small; a server
that does not support that selector (400) is asked for the namespace's events instead,
and the uid filter is applied here either way.

Rendering is split from fetching: `describe_object(obj, related)` is a pure function of the
object and already fetched related objects (events, pods, replicasets), so it is easy to
test; `cmd_describe` does the requests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects import Obj, printers
from ..objects.kinds import Kind, resolve
from ..objects.printers import NONE, age
from ..objects.resources.event import event_last_seen, event_object
from ..objects.resources.node import node_roles
from ..objects.timefmt import parse_time
from . import output, tables
from .apply import LAST_APPLIED, parse_targets
from .output import with_type

_IGNORED_ANNOTATIONS = (LAST_APPLIED,)


# -- a small aligned-text writer ---------------------------------------------------------


@dataclass
class Doc:
    """Lines of `describe` output; `Label:` cells are aligned per nesting level."""

    items: list[tuple[str, int, str, list[str]]] = field(default_factory=list)

    def kv(self, level: int, label: str, value: Any = None) -> None:
        """`Label:  value`; a list value continues on following lines under the first."""
        if value is None:
            values: list[str] = []
        elif isinstance(value, list):
            values = [str(v) for v in value] or [NONE]
        else:
            values = [str(value)]
        self.items.append(("kv", level, label, values))

    def text(self, level: int, text: str) -> None:
        self.items.append(("text", level, text, []))

    def table(self, level: int, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        underline = ["-" * len(h) for h in header]
        rendered = tables.render(header, [underline, *rows])
        for line in rendered.splitlines():
            self.text(level, line)

    def render(self) -> str:
        widths: dict[int, int] = {}
        for typ, level, label, values in self.items:
            if typ == "kv" and values:
                widths[level] = max(widths.get(level, 0), len(label) + 1)
        lines: list[str] = []
        for typ, level, label, values in self.items:
            indent = "  " * level
            if typ == "text":
                lines.append(indent + label)
                continue
            if not values:
                lines.append(f"{indent}{label}:")
                continue
            width = widths.get(level, 0) + 2
            lines.append(f"{indent}{(label + ':').ljust(width)}{values[0]}".rstrip())
            for more in values[1:]:
                lines.append(f"{indent}{' ' * width}{more}".rstrip())
        return "\n".join(lines)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def timestamp(value: Any) -> str:
    t = parse_time(value)
    return t.strftime("%a, %d %b %Y %H:%M:%S %z") if t else NONE


def _pairs(mapping: Any, skip: Sequence[str] = ()) -> list[str]:
    if not isinstance(mapping, dict):
        return []
    return [f"{k}={v}" for k, v in sorted(mapping.items()) if k not in skip]


def _annotations(obj: Obj) -> list[str]:
    anns = _meta(obj).get("annotations") or {}
    return [f"{k}: {v}" for k, v in sorted(anns.items()) if k not in _IGNORED_ANNOTATIONS]


def _header(d: Doc, obj: Obj, kind: Kind) -> None:
    meta = _meta(obj)
    d.kv(0, "Name", meta.get("name", ""))
    if kind.namespaced:
        d.kv(0, "Namespace", meta.get("namespace", ""))
    d.kv(0, "Labels", _pairs(meta.get("labels")))
    d.kv(0, "Annotations", _annotations(obj))
    d.kv(0, "CreationTimestamp", timestamp(meta.get("creationTimestamp")))


def _controlled_by(d: Doc, obj: Obj) -> None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            d.kv(0, "Controlled By", f"{ref.get('kind')}/{ref.get('name')}")


# -- containers and templates ------------------------------------------------------------


def _probe(p: Any) -> str:
    if not isinstance(p, dict):
        return ""
    if "httpGet" in p:
        h = p["httpGet"] or {}
        how = f"http-get {str(h.get('scheme') or 'HTTP').lower()}://{h.get('host', '')}:{h.get('port', '')}{h.get('path', '/')}"
    elif "tcpSocket" in p:
        how = f"tcp-socket :{(p['tcpSocket'] or {}).get('port', '')}"
    elif "exec" in p:
        how = "exec [" + " ".join(str(c) for c in (p["exec"] or {}).get("command") or []) + "]"
    else:
        how = "unknown"
    return (
        f"{how} delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
        f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
        f"#failure={p.get('failureThreshold', 3)}"
    )


def _state(d: Doc, level: int, label: str, state: Any) -> None:
    if not isinstance(state, dict) or not state:
        d.kv(level, label, "Waiting" if label == "State" else NONE)
        return
    if "running" in state:
        d.kv(level, label, "Running")
        d.kv(level + 1, "Started", timestamp((state["running"] or {}).get("startedAt")))
    elif "waiting" in state:
        w = state["waiting"] or {}
        d.kv(level, label, "Waiting")
        if w.get("reason"):
            d.kv(level + 1, "Reason", w["reason"])
        if w.get("message"):
            d.kv(level + 1, "Message", w["message"])
    elif "terminated" in state:
        t = state["terminated"] or {}
        d.kv(level, label, "Terminated")
        if t.get("reason"):
            d.kv(level + 1, "Reason", t["reason"])
        if t.get("message"):
            d.kv(level + 1, "Message", t["message"])
        d.kv(level + 1, "Exit Code", t.get("exitCode", 0))
        if t.get("signal"):
            d.kv(level + 1, "Signal", t["signal"])
        d.kv(level + 1, "Started", timestamp(t.get("startedAt")))
        d.kv(level + 1, "Finished", timestamp(t.get("finishedAt")))
    else:
        d.kv(level, label, NONE)


def _env(container: Obj) -> list[str]:
    out = []
    for e in container.get("env") or []:
        if "value" in e:
            out.append(f"{e.get('name')}: {e.get('value')}")
        else:
            src = e.get("valueFrom") or {}
            ref = next(iter(src), "valueFrom")
            out.append(f"{e.get('name')}: <set from {ref}>")
    return out


def _containers(d: Doc, level: int, containers: list[Obj], statuses: list[Obj] | None) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    for c in containers:
        d.kv(level, str(c.get("name", "")))
        lv = level + 1
        st = by_name.get(c.get("name"))
        if st is not None and st.get("containerID"):
            d.kv(lv, "Container ID", st["containerID"])
        d.kv(lv, "Image", c.get("image", ""))
        if st is not None and st.get("imageID"):
            d.kv(lv, "Image ID", st["imageID"])
        ports = [f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}" for p in c.get("ports") or []]
        d.kv(lv, "Port", ", ".join(ports) or NONE)
        if c.get("command"):
            d.kv(lv, "Command", [str(x) for x in c["command"]])
        if c.get("args"):
            d.kv(lv, "Args", [str(x) for x in c["args"]])
        if st is not None:
            _state(d, lv, "State", st.get("state"))
            if st.get("lastState"):
                _state(d, lv, "Last State", st.get("lastState"))
            d.kv(lv, "Ready", "True" if st.get("ready") else "False")
            d.kv(lv, "Restart Count", st.get("restartCount", 0))
        resources = c.get("resources") or {}
        for section in ("limits", "requests"):
            values = resources.get(section)
            if values:
                d.kv(lv, section.capitalize())
                for k, v in sorted(values.items()):
                    d.kv(lv + 1, k, v)
        for probe in ("liveness", "readiness", "startup"):
            text = _probe(c.get(f"{probe}Probe"))
            if text:
                d.kv(lv, probe.capitalize(), text)
        d.kv(lv, "Environment", _env(c))
        mounts = [
            f"{m.get('mountPath')} from {m.get('name')} ({'ro' if m.get('readOnly') else 'rw'})"
            for m in c.get("volumeMounts") or []
        ]
        d.kv(lv, "Mounts", mounts)


def _volumes(d: Doc, volumes: list[Obj]) -> None:
    if not volumes:
        d.kv(0, "Volumes", NONE)
        return
    d.kv(0, "Volumes")
    for v in volumes:
        d.kv(1, str(v.get("name", "")))
        source = next((k for k in v if k != "name"), "")
        d.kv(2, "Type", source or NONE)
        details = v.get(source) if source else None
        if isinstance(details, dict):
            for k, val in details.items():
                d.kv(2, k[:1].upper() + k[1:], val)


def _pod_template(d: Doc, template: Obj) -> None:
    d.kv(0, "Pod Template")
    d.kv(1, "Labels", _pairs(_meta(template).get("labels")))
    spec = _spec(template)
    d.kv(1, "Containers")
    _containers(d, 2, spec.get("containers") or [], None)
    if not spec.get("containers"):
        d.text(2, NONE)


def _conditions(d: Doc, conditions: list[Obj], columns: Sequence[str]) -> None:
    if not conditions:
        d.kv(0, "Conditions", NONE)
        return
    d.kv(0, "Conditions")
    header = [c[0] for c in _COND_COLUMNS if c[0] in columns]
    rows = []
    for cond in conditions:
        rows.append([fn(cond) for name, fn in _COND_COLUMNS if name in columns])
    d.table(1, header, rows)


_COND_COLUMNS: list[tuple[str, Callable[[Obj], str]]] = [
    ("Type", lambda c: str(c.get("type", ""))),
    ("Status", lambda c: str(c.get("status", ""))),
    ("LastHeartbeatTime", lambda c: timestamp(c.get("lastHeartbeatTime"))),
    ("LastTransitionTime", lambda c: timestamp(c.get("lastTransitionTime"))),
    ("Reason", lambda c: str(c.get("reason") or "")),
    ("Message", lambda c: str(c.get("message") or "")),
]


# -- per kind ----------------------------------------------------------------------------


def _describe_pod(d: Doc, pod: Obj, related: Related) -> None:
    meta, spec, status = _meta(pod), _spec(pod), _status(pod)
    d.kv(0, "Name", meta.get("name", ""))
    d.kv(0, "Namespace", meta.get("namespace", ""))
    node = spec.get("nodeName")
    d.kv(0, "Node", f"{node}/{status['hostIP']}" if node and status.get("hostIP") else node or NONE)
    if status.get("startTime"):
        d.kv(0, "Start Time", timestamp(status.get("startTime")))
    d.kv(0, "Labels", _pairs(meta.get("labels")))
    d.kv(0, "Annotations", _annotations(pod))
    phase = status.get("phase") or "Unknown"
    if meta.get("deletionTimestamp"):
        grace = meta.get("deletionGracePeriodSeconds")
        phase = f"Terminating (lasts {age(meta['deletionTimestamp'], tables.now_utc())})"
        if grace is not None:
            d.kv(0, "Termination Grace Period", f"{grace}s")
    d.kv(0, "Status", phase)
    if status.get("reason"):
        d.kv(0, "Reason", status["reason"])
    if status.get("message"):
        d.kv(0, "Message", status["message"])
    d.kv(0, "IP", status.get("podIP") or "")
    ips = [ip.get("ip") for ip in status.get("podIPs") or [] if ip.get("ip")]
    if ips:
        d.kv(0, "IPs")
        for ip in ips:
            d.kv(1, "IP", ip)
    _controlled_by(d, pod)
    if spec.get("initContainers"):
        d.kv(0, "Init Containers")
        _containers(d, 1, spec["initContainers"], status.get("initContainerStatuses"))
    d.kv(0, "Containers")
    _containers(d, 1, spec.get("containers") or [], status.get("containerStatuses") or [])
    _conditions(d, status.get("conditions") or [], ("Type", "Status"))
    _volumes(d, spec.get("volumes") or [])
    d.kv(0, "Node-Selectors", _pairs(spec.get("nodeSelector")))
    tolerations = [
        f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        + (f" for {t['tolerationSeconds']}s" if t.get("tolerationSeconds") is not None else "")
        for t in spec.get("tolerations") or []
    ]
    d.kv(0, "Tolerations", tolerations)


def _replicas_line(obj: Obj) -> str:
    spec, status = _spec(obj), _status(obj)
    desired = spec.get("replicas", 1)
    return (
        f"{desired} desired | {status.get('updatedReplicas', 0)} updated | "
        f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
        f"{status.get('unavailableReplicas', 0)} unavailable"
    )


def _describe_deployment(d: Doc, dep: Obj, related: Related) -> None:
    _header(d, dep, related.kind)
    spec = _spec(dep)
    d.kv(0, "Selector", printers.selector_text(spec.get("selector")))
    d.kv(0, "Replicas", _replicas_line(dep))
    strategy = spec.get("strategy") or {}
    stype = strategy.get("type") or "RollingUpdate"
    d.kv(0, "StrategyType", stype)
    d.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
    if stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        d.kv(
            0,
            "RollingUpdateStrategy",
            f"{ru.get('maxUnavailable', '25%')} max unavailable, {ru.get('maxSurge', '25%')} max surge",
        )
    _pod_template(d, spec.get("template") or {})
    _conditions(d, _status(dep).get("conditions") or [], ("Type", "Status", "Reason"))
    if related.replicasets is not None:
        uid = _meta(dep).get("uid")
        owned = [rs for rs in related.replicasets if _owned_by(rs, uid)]
        lines = [
            f"{_meta(rs).get('name')} ({_status(rs).get('replicas', 0)}/{_spec(rs).get('replicas', 0)} replicas created)"
            for rs in owned
        ]
        d.kv(0, "ReplicaSets", lines)


def _owned_by(obj: Obj, uid: Any) -> bool:
    return bool(uid) and any(ref.get("uid") == uid for ref in _meta(obj).get("ownerReferences") or [])


def _describe_replicaset(d: Doc, rs: Obj, related: Related) -> None:
    meta, spec, status = _meta(rs), _spec(rs), _status(rs)
    d.kv(0, "Name", meta.get("name", ""))
    d.kv(0, "Namespace", meta.get("namespace", ""))
    d.kv(0, "Selector", printers.selector_text(spec.get("selector")))
    d.kv(0, "Labels", _pairs(meta.get("labels")))
    d.kv(0, "Annotations", _annotations(rs))
    _controlled_by(d, rs)
    d.kv(0, "Replicas", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    if related.pods is not None:
        uid = meta.get("uid")
        pods = [p for p in related.pods if _owned_by(p, uid)]
        counts = {phase: 0 for phase in ("Running", "Pending", "Succeeded", "Failed")}
        for p in pods:
            phase = _status(p).get("phase") or "Pending"
            counts[phase] = counts.get(phase, 0) + 1
        d.kv(
            0,
            "Pods Status",
            f"{counts['Running']} Running / {counts['Pending']} Waiting / "
            f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed",
        )
    _pod_template(d, spec.get("template") or {})
    conditions = status.get("conditions") or []
    if conditions:
        _conditions(d, conditions, ("Type", "Status", "Reason"))


def _describe_node(d: Doc, node: Obj, related: Related) -> None:
    meta, spec, status = _meta(node), _spec(node), _status(node)
    d.kv(0, "Name", meta.get("name", ""))
    d.kv(0, "Roles", node_roles(node))
    d.kv(0, "Labels", _pairs(meta.get("labels")))
    d.kv(0, "Annotations", _annotations(node))
    d.kv(0, "CreationTimestamp", timestamp(meta.get("creationTimestamp")))
    taints = [
        f"{t.get('key', '')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect', '')}"
        for t in spec.get("taints") or []
    ]
    d.kv(0, "Taints", taints)
    d.kv(0, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    _conditions(
        d,
        status.get("conditions") or [],
        ("Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message"),
    )
    d.kv(0, "Addresses")
    for a in status.get("addresses") or []:
        d.kv(1, str(a.get("type", "")), a.get("address", ""))
    for section in ("capacity", "allocatable"):
        d.kv(0, section.capitalize())
        for k, v in sorted((status.get(section) or {}).items()):
            d.kv(1, k, v)
    info = status.get("nodeInfo") or {}
    if info:
        d.kv(0, "System Info")
        for key, label in (
            ("machineID", "Machine ID"),
            ("systemUUID", "System UUID"),
            ("bootID", "Boot ID"),
            ("kernelVersion", "Kernel Version"),
            ("osImage", "OS Image"),
            ("operatingSystem", "Operating System"),
            ("architecture", "Architecture"),
            ("containerRuntimeVersion", "Container Runtime Version"),
            ("kubeletVersion", "Kubelet Version"),
        ):
            if key in info:
                d.kv(1, label, info[key])
    if spec.get("podCIDR"):
        d.kv(0, "PodCIDR", spec["podCIDR"])
    if related.pods is not None:
        active = [p for p in related.pods if _status(p).get("phase") not in ("Succeeded", "Failed")]
        d.kv(0, "Non-terminated Pods", f"({len(active)} in total)")
        if active:
            now = tables.now_utc()
            rows = [[_meta(p).get("namespace", ""), _meta(p).get("name", ""), age(_meta(p).get("creationTimestamp"), now)]
                    for p in active]
            d.table(1, ["Namespace", "Name", "Age"], rows)


def _describe_namespace(d: Doc, ns: Obj, related: Related) -> None:
    meta = _meta(ns)
    d.kv(0, "Name", meta.get("name", ""))
    d.kv(0, "Labels", _pairs(meta.get("labels")))
    d.kv(0, "Annotations", _annotations(ns))
    d.kv(0, "Status", _status(ns).get("phase") or "Active")


def _describe_configmap(d: Doc, cm: Obj, related: Related) -> None:
    _header(d, cm, related.kind)
    d.text(0, "")
    d.text(0, "Data")
    d.text(0, "====")
    for k, v in sorted((cm.get("data") or {}).items()):
        d.text(0, f"{k}:")
        d.text(0, "----")
        d.text(0, str(v))
        d.text(0, "")
    binary = cm.get("binaryData") or {}
    d.text(0, "")
    d.text(0, "BinaryData")
    d.text(0, "====")
    for k, v in sorted(binary.items()):
        d.text(0, f"{k}: {len(str(v)) * 3 // 4} bytes")


def _describe_secret(d: Doc, s: Obj, related: Related) -> None:
    _header(d, s, related.kind)
    d.text(0, "")
    d.kv(0, "Type", s.get("type") or "Opaque")
    d.text(0, "")
    d.text(0, "Data")
    d.text(0, "====")
    for k, v in sorted((s.get("data") or {}).items()):
        size = len(str(v).rstrip("=")) * 3 // 4
        d.kv(0, k, f"{size} bytes")


def _describe_event(d: Doc, ev: Obj, related: Related) -> None:
    _header(d, ev, related.kind)
    d.kv(0, "Involved Object", event_object(ev))
    for key, label in (("type", "Type"), ("reason", "Reason"), ("message", "Message"), ("count", "Count")):
        if key in ev:
            d.kv(0, label, ev[key])
    d.kv(0, "First Timestamp", timestamp(ev.get("firstTimestamp")))
    d.kv(0, "Last Timestamp", timestamp(ev.get("lastTimestamp")))


def _describe_generic(d: Doc, obj: Obj, related: Related) -> None:
    _header(d, obj, related.kind)
    for section in ("spec", "status", "data"):
        if obj.get(section):
            d.kv(0, section.capitalize())
            for line in output.to_yaml(obj[section]).splitlines():
                d.text(1, line)


_DESCRIBERS: dict[str, Callable[[Doc, Obj, Related], None]] = {
    "pods": _describe_pod,
    "deployments": _describe_deployment,
    "replicasets": _describe_replicaset,
    "nodes": _describe_node,
    "namespaces": _describe_namespace,
    "configmaps": _describe_configmap,
    "secrets": _describe_secret,
    "events": _describe_event,
}


# -- events ------------------------------------------------------------------------------


def _event_age(ev: Obj, now: Any) -> str:
    last = age(event_last_seen(ev), now)
    count = int(ev.get("count") or (ev.get("series") or {}).get("count") or 1)
    if count > 1:
        first = age(ev.get("firstTimestamp") or ev.get("eventTime") or _meta(ev).get("creationTimestamp"), now)
        return f"{last} (x{count} over {first})"
    return last


def _event_source(ev: Obj) -> str:
    source = ev.get("source") or {}
    parts = [p for p in (source.get("component"), source.get("host")) if p]
    if parts:
        return ", ".join(parts)
    return str(ev.get("reportingComponent") or ev.get("reportingController") or "")


def events_for(obj: Obj, events: list[Obj]) -> list[Obj]:
    """The events about `obj` (matched by uid), oldest first."""
    meta = _meta(obj)
    uid = meta.get("uid")

    def matches(ev: Obj) -> bool:
        ref = ev.get("involvedObject") or ev.get("regarding") or {}
        if uid:
            return ref.get("uid") == uid
        return ref.get("name") == meta.get("name") and ref.get("kind") == obj.get("kind")

    chosen = [ev for ev in events if matches(ev)]
    return sorted(chosen, key=lambda ev: str(event_last_seen(ev) or ""))


def _events_section(d: Doc, events: list[Obj] | None) -> None:
    if events is None:
        return
    if not events:
        d.kv(0, "Events", NONE)
        return
    d.kv(0, "Events")
    now = tables.now_utc()
    rows = [
        [
            str(ev.get("type") or ""),
            str(ev.get("reason") or ""),
            _event_age(ev, now),
            _event_source(ev),
            " ".join(str(ev.get("message") or "").split()),
        ]
        for ev in events
    ]
    d.table(1, ["Type", "Reason", "Age", "From", "Message"], rows)


# -- entry points ------------------------------------------------------------------------


@dataclass
class Related:
    """What `describe` fetched besides the object itself (None: not fetched)."""

    kind: Kind
    events: list[Obj] | None = None
    pods: list[Obj] | None = None
    replicasets: list[Obj] | None = None


def describe_object(obj: Obj, related: Related) -> str:
    d = Doc()
    _DESCRIBERS.get(related.kind.resource, _describe_generic)(d, obj, related)
    if related.events is not None:
        _events_section(d, events_for(obj, related.events))
    return d.render()


def fetch_events(client: Client, kind: Kind, obj: Obj) -> list[Obj]:
    meta = _meta(obj)
    events_kind = resolve("events")
    ns = meta.get("namespace") if kind.namespaced else None
    selector = f"involvedObject.name={meta.get('name', '')}"
    try:
        listed = client.list(events_kind, namespace=ns, all_namespaces=ns is None, field_selector=selector)
    except ConnectionFailed:
        raise
    except ApiError as e:
        if e.code != 400:
            raise
        listed = client.list(events_kind, namespace=ns, all_namespaces=ns is None)
    return listed.get("items") or []


def _fetch_related(client: Client, kind: Kind, obj: Obj) -> Related:
    related = Related(kind, events=fetch_events(client, kind, obj))
    meta = _meta(obj)
    if kind.resource == "nodes":
        listed = client.list(resolve("pods"), all_namespaces=True, field_selector=f"spec.nodeName={meta.get('name')}")
        related.pods = listed.get("items") or []
    elif kind.resource == "replicasets":
        labels = ((_spec(obj).get("selector") or {}).get("matchLabels")) or {}
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) or None
        related.pods = client.list(resolve("pods"), namespace=meta.get("namespace"), label_selector=selector).get(
            "items"
        ) or []
    elif kind.resource == "deployments":
        related.replicasets = client.list(resolve("replicasets"), namespace=meta.get("namespace")).get("items") or []
    return related


def cmd_describe(args: argparse.Namespace) -> int:
    pairs = parse_targets(args.targets)
    failed = False
    blocks = 0
    with output.connect(args) as client:
        objects: list[tuple[Kind, Obj]] = []
        for kind, name in pairs:
            try:
                if name is None:
                    listed = client.list(kind, all_namespaces=args.all_namespaces, label_selector=args.selector)
                    objects.extend((kind, with_type(o, kind)) for o in listed.get("items") or [])
                else:
                    objects.append((kind, with_type(client.get(kind, name), kind)))
            except ConnectionFailed:
                raise
            except ApiError as e:
                output.report(e)
                failed = True
        if not objects and not failed:
            where = "" if args.all_namespaces else f" in {client.namespace} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
            return 0
        for kind, obj in objects:
            text = describe_object(obj, _fetch_related(client, kind, obj))
            if blocks:
                print("\n")
            output.write(text)
            blocks += 1
    return 1 if failed else 0
