"""Printer columns and cells: what `kubectl get` and `dockyard get` print, and the shared cell helpers.

One definition per kind serves both readers, so they cannot drift:

* the API's server-side `meta.k8s.io/v1 Table` (`api/tables.py`) sends every column as a
  `columnDefinition` and every cell of every row; kubectl prints the `priority` 0 columns by
  default and adds the priority 1 ones with `-o wide`;
* `dockyard get` (`cli/tables.py`) prints the same cells as text: the priority 0 columns, and
  with `-o wide` the priority 1 columns whose `get_wide` is set (a few of kubectl's wide
  columns, such as a pod's NOMINATED NODE, are left out of `dockyard get -o wide` to keep it
  narrow; kubectl still gets them).

Column names are written as Kubernetes declares them (`Up-to-date`, `Port(s)`); printed
headers are upper-cased (`Column.header`), as kubectl does. Cells are strings, or integers
for `type: integer` columns; the cell conventions are Kubernetes'
(pkg/printers/internalversion): pod READY `1/1`, STATUS the waiting/terminated reason or
phase, RESTARTS `2 (5m ago)`, AGE `3m12s`, `<none>` for an empty cell.

Layout: each kind's `Printer` (its columns and a pure cells function of the object and
"now") lives in the kind's module under `objects/resources/` as `PRINTER`, and its strategy
names it (`Strategy.printer`); readers take it from the kinds table (`Kind.printer`). A kind
without one gets `GENERIC` (NAME, AGE). This module holds only what several kinds or
readers share: the `Column`/`Printer` types, the NAME and AGE columns, ages and durations,
object accessors, selectors and label pairs as text, the pod cells (READY, STATUS,
RESTARTS, readiness gates) and the pod-template columns of workloads. Nothing here knows
the kinds table, so every resource module can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import Obj
from .timefmt import parse_time

Cell = str | int
CellsFn = Callable[[Obj, datetime], list[Cell]]
NONE = "<none>"


@dataclass(frozen=True)
class Column:
    """One printer column, as a `TableColumnDefinition` describes it."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0  # 0: default view; 1: `-o wide`
    get_wide: bool = True  # whether `dockyard get -o wide` shows this priority 1 column

    @property
    def header(self) -> str:
        return self.name.upper()

    def shown(self, wide: bool) -> bool:
        """Whether `dockyard get` (with `-o wide` when `wide`) prints this column."""
        return self.priority == 0 or (wide and self.get_wide)


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    cells: CellsFn


NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE = Column("Age", description="CreationTimestamp is the time the object was created, as a duration.")


# --- ages ------------------------------------------------------------------------------------


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
    """How long before `now` the timestamp was; `<unknown>` for a missing or malformed one."""
    t = parse_time(timestamp)
    if t is None:
        return "<unknown>"
    return format_duration((now - t).total_seconds())


# --- shared cell helpers -----------------------------------------------------------------------


def meta_of(obj: Obj) -> Obj:
    meta: Obj = obj.get("metadata") or {}
    return meta


def spec_of(obj: Obj) -> Obj:
    spec: Obj = obj.get("spec") or {}
    return spec


def status_of(obj: Obj) -> Obj:
    status: Obj = obj.get("status") or {}
    return status


def name_of(obj: Obj) -> str:
    return str(meta_of(obj).get("name", ""))


def created(obj: Obj, now: datetime) -> str:
    """The AGE cell: how long ago the object was created."""
    return age(meta_of(obj).get("creationTimestamp"), now)


def as_int(value: Any) -> int:
    """An integer cell from a field that may be missing or malformed (0 then)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def pairs_text(labels: Mapping[str, Any]) -> str:
    """`a=1,b=2`, `<none>` when empty."""
    return ",".join(f"{k}={v}" for k, v in labels.items()) or NONE


def selector_text(selector: Any) -> str:
    """A label selector as `kubectl` prints it: `app=web,tier in (a,b),!legacy`."""
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


# --- pod cells ----------------------------------------------------------------------------------


def pod_status(pod: Obj) -> str:
    """kubectl's STATUS: Terminating, a container's waiting/terminated reason, else phase."""
    status = status_of(pod)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_total = len(spec_of(pod).get("initContainers") or [])
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
    if meta_of(pod).get("deletionTimestamp"):
        return "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def pod_ready(pod: Obj) -> str:
    containers = spec_of(pod).get("containers") or []
    statuses = status_of(pod).get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    return f"{ready}/{len(containers) or len(statuses)}"


def pod_restarts(pod: Obj, now: datetime) -> str:
    """Restart count, with how long ago the last container restart was: `2 (5m ago)`."""
    statuses = status_of(pod).get("containerStatuses") or []
    count = sum(as_int(cs.get("restartCount")) for cs in statuses)
    last = None
    for cs in statuses:
        finished = parse_time(((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (last is None or finished > last):
            last = finished
    if count and last is not None:
        return f"{count} ({format_duration((now - last).total_seconds())} ago)"
    return str(count)


def readiness_gates(pod: Obj) -> str:
    gates = spec_of(pod).get("readinessGates") or []
    if not gates:
        return NONE
    conds = {c.get("type"): c.get("status") for c in status_of(pod).get("conditions") or []}
    ready = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
    return f"{ready}/{len(gates)}"


# --- workloads (the pod template columns of ReplicaSets, Deployments, ...) ----------------------


def desired_replicas(obj: Obj) -> int:
    """`spec.replicas`, 1 when unset."""
    spec = spec_of(obj)
    return as_int(spec["replicas"]) if spec.get("replicas") is not None else 1


def template_cells(obj: Obj) -> list[Cell]:
    """The CONTAINERS, IMAGES and SELECTOR cells of a workload with a pod template."""
    spec = spec_of(obj)
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        ",".join(str(c.get("name", "")) for c in containers) or NONE,
        ",".join(str(c.get("image", "")) for c in containers) or NONE,
        selector_text(spec.get("selector")),
    ]


TEMPLATE_COLUMNS = (
    Column("Containers", description="Names of each container in the template.", priority=1),
    Column("Images", description="Images referenced by each container in the template.", priority=1),
    Column("Selector", description="Label selector for pods.", priority=1),
)


# --- any kind without its own printer -----------------------------------------------------------


def _generic_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [name_of(obj), created(obj, now)]


GENERIC = Printer((NAME, AGE), _generic_cells)
