"""Event (v1): an involved object in the event's namespace, type Normal or Warning; events
may still be recorded in a namespace being terminated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, enum, invalid, nonnegative, required
from ..jsonfields import dict_of
from ..printers import Cell, Column, Printer, age, as_int, meta_of, name_of
from ..schema import INT32, OBJECT_REFERENCE, STRING, TOP_LEVEL, struct
from ..strategy import Strategy


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    involved = obj.get("involvedObject")
    if not involved:
        return [required("involvedObject")]
    ns = dict_of(obj.get("metadata")).get("namespace")
    ref_ns = involved.get("namespace")
    if ref_ns and ns and ref_ns != ns:
        errs.append(invalid("involvedObject.namespace", ref_ns, "does not match event.namespace"))
    enum(errs, obj, "type", "", ("Normal", "Warning"))
    nonnegative(errs, obj, "count", "")
    return errs


# --- schema ------------------------------------------------------------------------------------

SCHEMA = TOP_LEVEL.extend(
    involvedObject=OBJECT_REFERENCE,
    reason=STRING,
    message=STRING,
    source=struct(component=STRING, host=STRING),
    firstTimestamp=STRING,
    lastTimestamp=STRING,
    count=INT32,
    type=STRING,
    eventTime=STRING,
    series=struct(count=INT32, lastObservedTime=STRING),
    action=STRING,
    related=OBJECT_REFERENCE,
    reportingComponent=STRING,
    reportingInstance=STRING,
)


# --- printer -----------------------------------------------------------------------------------


def event_last_seen(ev: Obj) -> Any:
    """The timestamp of an event's latest occurrence, whichever field carries it."""
    return (
        ev.get("lastTimestamp")
        or (ev.get("series") or {}).get("lastObservedTime")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or meta_of(ev).get("creationTimestamp")
    )


def event_object(ev: Obj) -> str:
    ref = ev.get("involvedObject") or ev.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_source(ev: Obj) -> str:
    src = ev.get("source") or {}
    text = ", ".join(str(x) for x in (src.get("component"), src.get("host")) if x)
    return text or str(ev.get("reportingComponent") or "")


def _event_cells(ev: Obj, now: datetime) -> list[Cell]:
    ref = ev.get("involvedObject") or {}
    first = ev.get("firstTimestamp") or ev.get("eventTime") or meta_of(ev).get("creationTimestamp")
    count = as_int(ev.get("count")) or as_int((ev.get("series") or {}).get("count")) or 1
    return [
        age(event_last_seen(ev), now),
        str(ev.get("type") or ""),
        str(ev.get("reason") or ""),
        event_object(ev),
        str(ref.get("fieldPath") or ""),
        _event_source(ev),
        " ".join(str(ev.get("message") or "").split()),
        age(first, now),
        count,
        name_of(ev),
    ]


PRINTER = Printer(
    (
        Column("Last Seen", description="Time when the most recent occurrence of this event was recorded."),
        Column("Type", description="Type of this event (Normal, Warning)."),
        Column("Reason", description="The reason for the transition into the object's current status."),
        Column("Object", description="The object that this event is about."),
        Column("Subobject", description="The field of the object this event is about.", priority=1,
               get_wide=False),
        Column("Source", description="The component reporting this event.", priority=1, get_wide=False),
        Column("Message", description="A human-readable description of the status of this operation."),
        Column("First Seen", description="The time at which the event was first recorded.", priority=1,
               get_wide=False),
        Column("Count", "integer", description="The number of times this event has occurred.", priority=1,
               get_wide=False),
        Column("Name", format="name", description="The name of the event.", priority=1, get_wide=False),
    ),
    _event_cells,
)


class EventStrategy(Strategy):
    allowed_in_terminating_namespace = True
    printer = PRINTER
    schema = SCHEMA

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)


STRATEGY = EventStrategy()
