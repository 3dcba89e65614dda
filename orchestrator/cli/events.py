"""`dockyard events [--for TYPE/NAME] [--types=Warning] [-A] [-w] [-o json|yaml]`: as `kubectl events`.

Events of the namespace (or all with `-A`), oldest first by when they last happened
(`series.lastObservedTime`, `lastTimestamp`, `eventTime`, then creation), printed as
kubectl prints them: `LAST SEEN  TYPE  REASON  OBJECT  MESSAGE` (NAMESPACE first with
`-A`), LAST SEEN reading `3m (x4 over 10m)` for repeated events. `--for pod/web-1` keeps the
events about that object, `--types` those of the given types. `-w` prints the table and then
every event as it is recorded. `last_seen` and `sort_key` are pure and unit-tested.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from ..objects.kinds import resolve
from ..objects.printers import age, format_duration
from ..objects.timefmt import parse_time
from . import output, tables
from .apply import resolve_kind

EVENT_TYPES = ("Normal", "Warning")


def register(subparsers: Any) -> None:
    from .options import global_options

    p = subparsers.add_parser("events", parents=[global_options(suppress=True)], help="list events, oldest first",
                              description="list events sorted by when they last happened")
    p.add_argument("--for", dest="for_", metavar="TYPE/NAME", help="only events about this object")
    p.add_argument("--types", metavar="Normal,Warning", help="only events of these types")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print new events as they come")
    p.add_argument("-o", "--output", choices=["json", "yaml"], default=None)
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(handler=cmd_events)


def last_time(ev: dict[str, Any]) -> datetime | None:
    series = ev.get("series") or {}
    for value in (series.get("lastObservedTime"), ev.get("lastTimestamp"), ev.get("eventTime"),
                  ev.get("firstTimestamp"), (ev.get("metadata") or {}).get("creationTimestamp")):
        t = parse_time(value) if value else None
        if t is not None:
            return t
    return None


def sort_key(ev: dict[str, Any]) -> tuple[float, str]:
    t = last_time(ev)
    return (t.timestamp() if t else 0.0, str((ev.get("metadata") or {}).get("name", "")))


def last_seen(ev: dict[str, Any], now: datetime) -> str:
    t = last_time(ev)
    seen = format_duration((now - t).total_seconds()) if t else "<unknown>"
    series = ev.get("series") or {}
    count = int(series.get("count") or ev.get("count") or 1)
    if count > 1:
        first = ev.get("eventTime") if series else ev.get("firstTimestamp")
        return f"{seen} (x{count} over {age(first, now)})"
    return seen


def object_text(ev: dict[str, Any]) -> str:
    involved = ev.get("involvedObject") or ev.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def parse_for(text: str) -> tuple[str, str]:
    """`pod/web-1` → ("Pod", "web-1"); a plain name means a pod, as in kubectl."""
    kind_name, sep, name = text.partition("/")
    if not sep:
        return "Pod", text
    if not name:
        raise output.CliError(f'--for: expected TYPE/NAME, got "{text}"')
    return resolve_kind(kind_name).kind, name


def matches(ev: dict[str, Any], target: tuple[str, str] | None, types: set[str] | None) -> bool:
    if types and str(ev.get("type", "")).lower() not in types:
        return False
    if target is None:
        return True
    involved = ev.get("involvedObject") or ev.get("regarding") or {}
    return bool(involved.get("kind") == target[0] and involved.get("name") == target[1])


def _row(ev: dict[str, Any], now: datetime, all_namespaces: bool) -> list[str]:
    cells = [last_seen(ev, now), str(ev.get("type", "")), str(ev.get("reason", "")), object_text(ev),
             " ".join(str(ev.get("message", "")).split())]
    if all_namespaces:
        cells.insert(0, str((ev.get("metadata") or {}).get("namespace", "")))
    return cells


def cmd_events(args: argparse.Namespace) -> int:
    kind = resolve("events")
    target = parse_for(args.for_) if args.for_ else None
    types: set[str] | None = None
    if args.types:
        types = {t.strip().lower() for t in args.types.split(",") if t.strip()}
        bad = [t for t in types if t not in ("normal", "warning")]
        if bad:
            raise output.CliError(f"--types: valid types are Normal and Warning, got {bad[0]!r}")
    header = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    if args.all_namespaces:
        header.insert(0, "NAMESPACE")
    with output.connect(args) as client:
        listed = client.list(kind, all_namespaces=args.all_namespaces)
        items = sorted((e for e in listed.get("items") or [] if matches(e, target, types)), key=sort_key)
        if args.output:
            doc = output.as_list([output.with_type(e, kind) for e in items],
                                 str((listed.get("metadata") or {}).get("resourceVersion", "")))
            output.write(output.to_json(doc) if args.output == "json" else output.to_yaml(doc))
        elif items:
            now = tables.now_utc()
            output.write(tables.render(header, [_row(e, now, args.all_namespaces) for e in items],
                                       show_header=not args.no_headers))
        elif not args.watch:
            where = "any" if args.all_namespaces else f"{client.namespace}"
            print(f"No events found in {where} namespace.", file=sys.stderr)
        if not args.watch:
            return 0
        rv = str((listed.get("metadata") or {}).get("resourceVersion", ""))
        widths = tables.column_widths(header, [_row(e, tables.now_utc(), args.all_namespaces) for e in items])
        for event in client.watch(kind, all_namespaces=args.all_namespaces, resource_version=rv):
            obj = event.get("object") or {}
            if event.get("type") not in ("ADDED", "MODIFIED") or not matches(obj, target, types):
                continue
            if args.output:
                doc = output.with_type(obj, kind)
                output.write(output.to_json(doc) if args.output == "json" else output.to_yaml(doc))
                continue
            row = _row(obj, tables.now_utc(), args.all_namespaces)
            output.write(tables.render(header, [row], show_header=False, min_widths=widths))
    return 0
