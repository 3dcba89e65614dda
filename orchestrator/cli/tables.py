"""Tables for `dockyard get`: one column set per kind, as kubectl prints them.

Column builders are pure functions of an object and "now", so they are table-tested
against fixture objects; `render` lays rows out with rich (no box, no wrapping, left
aligned, three spaces between columns) and strips trailing blanks, giving the same plain,
`awk`-friendly text whether or not stdout is a terminal. Styling is deliberately absent:
scripts parse this output.

Column names and cell conventions (`<none>`, `READY 1/2`, `AGE 3m12s`) follow kubectl so
habits and scripts carry over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..objects.kinds import Kind
from ..objects.timefmt import parse_time

NONE = "<none>"
Obj = dict[str, Any]
RowFn = Callable[[Obj, datetime], list[str]]


# -- ages --------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """A short human duration with kubectl's precision steps: 5s, 3m12s, 15m, 5h3m, 2d4h, 40d, 3y2d."""
    s = int(round(seconds))
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // (24 * 365)}y{days}d" if days else f"{hours // (24 * 365)}y"
    return f"{hours // (24 * 365)}y"


def age(timestamp: Any, now: datetime) -> str:
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return format_duration((now - t).total_seconds())


def now_utc() -> datetime:
    return datetime.now(UTC)


def _created(obj: Obj, now: datetime) -> str:
    return age((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


# -- pods --------------------------------------------------------------------------------


def pod_status(pod: Obj) -> str:
    """kubectl's STATUS: Terminating, a container's waiting/terminated reason, else phase."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_total = len((pod.get("spec") or {}).get("initContainers") or [])
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{init_total}"
        break
    else:
        for cs in status.get("containerStatuses") or []:
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            term = state.get("terminated") or {}
            if waiting.get("reason"):
                reason = waiting["reason"]
                break
            if state.get("terminated") is not None:
                if term.get("reason"):
                    reason = term["reason"]
                elif term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{term.get('exitCode', 0)}"
                break
    if meta.get("deletionTimestamp"):
        return "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def pod_ready(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    return f"{ready}/{len(containers) or len(statuses)}"


def pod_restarts(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return str(sum(int(cs.get("restartCount") or 0) for cs in statuses))


def _pod_row(pod: Obj, now: datetime) -> list[str]:
    return [_name(pod), pod_ready(pod), pod_status(pod), pod_restarts(pod), _created(pod, now)]


def _pod_wide(pod: Obj, now: datetime) -> list[str]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    return _pod_row(pod, now) + [status.get("podIP") or NONE, spec.get("nodeName") or NONE]


# -- workloads ---------------------------------------------------------------------------


def selector_text(selector: Any) -> str:
    if not isinstance(selector, dict):
        return NONE
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = str(expr.get("operator", ""))
        values = ",".join(str(v) for v in expr.get("values") or [])
        key = expr.get("key", "")
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or NONE


def _template_columns(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(str(c.get("name", "")) for c in containers) or NONE,
        ",".join(str(c.get("image", "")) for c in containers) or NONE,
        selector_text(spec.get("selector")),
    ]


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _desired(obj: Obj) -> int:
    spec = obj.get("spec") or {}
    return _int(spec["replicas"]) if spec.get("replicas") is not None else 1


def _deploy_row(d: Obj, now: datetime) -> list[str]:
    status = d.get("status") or {}
    return [
        _name(d),
        f"{_int(status.get('readyReplicas'))}/{_desired(d)}",
        str(_int(status.get("updatedReplicas"))),
        str(_int(status.get("availableReplicas"))),
        _created(d, now),
    ]


def _rs_row(rs: Obj, now: datetime) -> list[str]:
    status = rs.get("status") or {}
    return [
        _name(rs),
        str(_desired(rs)),
        str(_int(status.get("replicas"))),
        str(_int(status.get("readyReplicas"))),
        _created(rs, now),
    ]


# -- nodes -------------------------------------------------------------------------------


def node_status(node: Obj) -> str:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    text = "Ready" if ready is not None and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def node_roles(node: Obj) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.split("/", 1)[1]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or NONE


def node_internal_ip(node: Obj) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return str(addr.get("address") or NONE)
    return NONE


def _node_info(node: Obj) -> dict[str, Any]:
    return (node.get("status") or {}).get("nodeInfo") or {}


def _node_row(node: Obj, now: datetime) -> list[str]:
    return [
        _name(node),
        node_status(node),
        node_roles(node),
        _created(node, now),
        str(_node_info(node).get("kubeletVersion") or ""),
    ]


def _node_wide(node: Obj, now: datetime) -> list[str]:
    info = _node_info(node)
    return _node_row(node, now) + [
        node_internal_ip(node),
        str(info.get("osImage") or "<unknown>"),
        str(info.get("containerRuntimeVersion") or "<unknown>"),
    ]


# -- config and events -------------------------------------------------------------------


def _ns_row(ns: Obj, now: datetime) -> list[str]:
    return [_name(ns), str((ns.get("status") or {}).get("phase") or "Active"), _created(ns, now)]


def _cm_row(cm: Obj, now: datetime) -> list[str]:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [_name(cm), str(count), _created(cm, now)]


def _secret_row(s: Obj, now: datetime) -> list[str]:
    count = len(s.get("data") or {}) + len(s.get("stringData") or {})
    return [_name(s), str(s.get("type") or "Opaque"), str(count), _created(s, now)]


def event_last_seen(ev: Obj) -> Any:
    return (
        ev.get("lastTimestamp")
        or (ev.get("series") or {}).get("lastObservedTime")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or (ev.get("metadata") or {}).get("creationTimestamp")
    )


def event_object(ev: Obj) -> str:
    ref = ev.get("involvedObject") or ev.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_row(ev: Obj, now: datetime) -> list[str]:
    message = " ".join(str(ev.get("message") or "").split())
    return [
        age(event_last_seen(ev), now),
        str(ev.get("type") or ""),
        str(ev.get("reason") or ""),
        event_object(ev),
        message,
    ]


# -- services --------------------------------------------------------------------------


def service_ports(svc: Obj) -> str:
    """`80/TCP`, `80:30080/TCP` for node ports, comma-separated; `<none>` when empty."""
    out = []
    for p in (svc.get("spec") or {}).get("ports") or []:
        text = str(p.get("port"))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


def service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    ips = list(spec.get("externalIPs") or [])
    ips += [i.get("ip") or i.get("hostname") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    if ips:
        return ",".join(str(i) for i in ips if i)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def endpoints_text(ep: Obj, limit: int = 3) -> str:
    """`10.42.0.5:80,10.42.0.6:80 + 1 more...` (ready addresses only), `<none>` when empty."""
    items = []
    for subset in ep.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for addr in subset.get("addresses") or []:
            for port in ports:
                items.append(f"{addr.get('ip')}:{port}" if port else str(addr.get("ip")))
    if not items:
        return "<none>"
    text = ",".join(items[:limit])
    return text + (f" + {len(items) - limit} more..." if len(items) > limit else "")


def _svc_row(svc: Obj, now: datetime) -> list[str]:
    spec = svc.get("spec") or {}
    return [
        _name(svc), str(spec.get("type") or "ClusterIP"), str(spec.get("clusterIP") or "<none>"),
        service_external_ip(svc), service_ports(svc), _created(svc, now),
    ]


def _svc_wide(svc: Obj, now: datetime) -> list[str]:
    selector = (svc.get("spec") or {}).get("selector") or {}
    return _svc_row(svc, now) + [",".join(f"{k}={v}" for k, v in selector.items()) or "<none>"]


def _ep_row(ep: Obj, now: datetime) -> list[str]:
    return [_name(ep), endpoints_text(ep), _created(ep, now)]


def _lease_row(lease: Obj, now: datetime) -> list[str]:
    return [_name(lease), str((lease.get("spec") or {}).get("holderIdentity") or ""), _created(lease, now)]


def _generic_row(obj: Obj, now: datetime) -> list[str]:
    return [_name(obj), _created(obj, now)]


# -- autoscalers -------------------------------------------------------------------------


def hpa_reference(hpa: Obj) -> str:
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def hpa_targets(hpa: Obj) -> str:
    """`cpu: 45%/50%, 3/10` like kubectl; `<unknown>` for a metric without a current value."""
    from ..autoscaling.replicas import target_text  # pure; imported late to keep the CLI's start fast

    metrics = (hpa.get("spec") or {}).get("metrics") or []
    current = (hpa.get("status") or {}).get("currentMetrics") or []
    texts = []
    for metric in metrics:
        mtype = metric.get("type")
        match = next((c for c in current if c.get("type") == mtype and _same_metric(metric, c)), None)
        texts.append(target_text(metric, match))
    if len(texts) > 2:
        return ", ".join(texts[:2]) + f" + {len(texts) - 2} more..."
    return ", ".join(texts) or NONE


def _same_metric(spec: Obj, status: Obj) -> bool:
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(str(spec.get("type")), "")
    a, b = spec.get(key) or {}, status.get(key) or {}
    return a.get("name") == b.get("name") and (a.get("metric") or {}).get("name") == (b.get("metric") or {}).get(
        "name") and a.get("container") == b.get("container")


def _hpa_row(hpa: Obj, now: datetime) -> list[str]:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    lo = spec.get("minReplicas")
    return [
        _name(hpa),
        hpa_reference(hpa),
        hpa_targets(hpa),
        str(1 if lo is None else lo),
        str(spec.get("maxReplicas", "")),
        str(_int(status.get("currentReplicas"))),
        _created(hpa, now),
    ]


# -- the table per kind ------------------------------------------------------------------

# resource → (headers, row, wide extra headers, wide row)
_TABLES: dict[str, tuple[list[str], RowFn, list[str], RowFn]] = {
    "pods": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], _pod_row, ["IP", "NODE"], _pod_wide),
    "deployments": (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        _deploy_row,
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        lambda o, n: _deploy_row(o, n) + _template_columns(o),
    ),
    "replicasets": (
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        _rs_row,
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        lambda o, n: _rs_row(o, n) + _template_columns(o),
    ),
    "nodes": (
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        _node_row,
        ["INTERNAL-IP", "OS-IMAGE", "CONTAINER-RUNTIME"],
        _node_wide,
    ),
    "namespaces": (["NAME", "STATUS", "AGE"], _ns_row, [], _ns_row),
    "configmaps": (["NAME", "DATA", "AGE"], _cm_row, [], _cm_row),
    "secrets": (["NAME", "TYPE", "DATA", "AGE"], _secret_row, [], _secret_row),
    "events": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], _event_row, [], _event_row),
    "services": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], _svc_row, ["SELECTOR"], _svc_wide),
    "endpoints": (["NAME", "ENDPOINTS", "AGE"], _ep_row, [], _ep_row),
    "horizontalpodautoscalers": (
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], _hpa_row, [], _hpa_row,
    ),
    "leases": (["NAME", "HOLDER", "AGE"], _lease_row, [], _lease_row),
}
_GENERIC: tuple[list[str], RowFn, list[str], RowFn] = (["NAME", "AGE"], _generic_row, [], _generic_row)


def headers(kind: Kind, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    base, _, extra, _ = _TABLES.get(kind.resource, _GENERIC)
    cols = base + (extra if wide else [])
    return (["NAMESPACE"] + cols) if all_namespaces and kind.namespaced else list(cols)


def row(
    kind: Kind,
    obj: Obj,
    now: datetime,
    wide: bool = False,
    all_namespaces: bool = False,
    name_prefix: str = "",
) -> list[str]:
    """One table row; `name_prefix` (`pod/`) is put before the NAME cell (for `get all`)."""
    base, fn, _, wide_fn = _TABLES.get(kind.resource, _GENERIC)
    cells = (wide_fn if wide else fn)(obj, now)
    if name_prefix and "NAME" in base:
        i = base.index("NAME")
        cells[i] = name_prefix + cells[i]
    if all_namespaces and kind.namespaced:
        cells = [str((obj.get("metadata") or {}).get("namespace") or "")] + cells
    return cells


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    show_header: bool = True,
    min_widths: Sequence[int] | None = None,
) -> str:
    """Plain aligned text (no trailing newline); columns at least `min_widths` wide."""
    table = Table(
        box=None,
        show_header=show_header,
        show_edge=False,
        pad_edge=False,
        padding=(0, 3, 0, 0),
        header_style="",
        collapse_padding=False,
    )
    for i, h in enumerate(header):
        width = min_widths[i] if min_widths and i < len(min_widths) else None
        table.add_column(Text(h), no_wrap=True, overflow="ignore", justify="left", min_width=width)
    for r in rows:
        table.add_row(*(Text(str(c)) for c in r))
    console = Console(
        width=100_000, no_color=True, color_system=None, force_terminal=False, highlight=False, markup=False
    )
    with console.capture() as cap:
        console.print(table)
    return "\n".join(line.rstrip() for line in cap.get().splitlines())


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            if i < len(widths):
                widths[i] = max(widths[i], len(c))
    return widths
