"""`dockyard get`: list or fetch objects and print them as tables, YAML, JSON or names.

What to get is given kubectl-style: `po`, `pods`, `deploy web api`, `deploy/web po/x`,
`deploy,rs,po` or `all` (the kinds in the `all` category, `Kind.categories`, in the order of
the kinds table: pods, deployments, replicasets). When several kinds are printed each gets its own table
(separated by a blank line) and names carry the kind (`deployment.apps/web`), so the
output says what every row is.

`-o custom-columns=HEADER:.path,…` prints a table of those JSONPaths; `--show-labels` and
`-L KEY` add label columns and `--sort-by=JSONPATH` orders the rows, as kubectl's do.
`-o jsonpath=TEMPLATE` renders kubectl's template syntax (`cli.jsonpath`) over the one named
object, or over a `v1 List` of the objects, with no newline added, as kubectl does.

Structured output follows kubectl: one named object prints as itself, anything else as a
`v1 List` with the items (typed, since list items come without apiVersion/kind), which
`apply -f` accepts back.

`--watch` prints the current table and then one row per change, watching from the list's
resourceVersion so nothing between the list and the watch is missed. When the server ends
the stream the watch resumes from the last seen resourceVersion; when that is too old
(410 Gone) it lists again. Ctrl-C ends it with exit code 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects import printers
from ..objects.kinds import KINDS, Kind
from . import jsonpath, output, tables
from .apply import resolve_kind
from .output import CliError, display_kind, display_name, with_type

ALL_KINDS = tuple(k for k in KINDS if "all" in k.categories)  # what `get all` lists
RECONNECT_PAUSE = 1.0  # seconds between watch reconnects after an empty stream


@dataclass
class Target:
    kind: Kind
    names: list[str] = field(default_factory=list)


def parse_get_targets(words: list[str]) -> tuple[list[Target], bool]:
    """What to get, and whether names should carry the kind (several kinds, or `all`)."""
    if not words:
        raise CliError("you must specify the type of resource to get (e.g. pods, deployments, nodes)")
    if "/" in words[0]:
        by_kind: dict[Kind, Target] = {}
        for w in words:
            kind_name, sep, name = w.partition("/")
            if not sep or not kind_name or not name:
                raise CliError(f'arguments in resource/name form must have a single resource and name (got "{w}")')
            kind = resolve_kind(kind_name)
            by_kind.setdefault(kind, Target(kind)).names.append(name)
        targets = list(by_kind.values())
        return targets, len(targets) > 1
    kinds: list[Kind] = []
    prefixed = False
    for part in words[0].split(","):
        if not part:
            continue
        if part.lower() == "all":
            prefixed = True
            resolved = list(ALL_KINDS)
        else:
            resolved = [resolve_kind(part)]
        for k in resolved:
            if k not in kinds:
                kinds.append(k)
    names = words[1:]
    for n in names:
        if "/" in n:
            raise CliError(f'there is no need to specify a resource type as a separate argument when '
                           f'passing arguments in resource/name form (got "{n}")')
    if names and len(kinds) > 1:
        raise CliError("names can only be given with a single resource type")
    return [Target(k, list(names)) for k in kinds], prefixed or len(kinds) > 1


def _empty_message(client: Client, targets: list[Target], all_namespaces: bool) -> str:
    if all_namespaces or not any(t.kind.namespaced for t in targets):
        return "No resources found"
    return f"No resources found in {client.namespace} namespace."


def _fetch(client: Client, target: Target, args: argparse.Namespace) -> tuple[list[dict[str, Any]], str, bool]:
    """(objects, list resourceVersion, any error reported)."""
    if not target.names:
        listed = client.list(
            target.kind,
            all_namespaces=args.all_namespaces,
            label_selector=args.selector,
            field_selector=args.field_selector,
        )
        rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        return [with_type(o, target.kind) for o in listed.get("items") or []], rv, False
    objs: list[dict[str, Any]] = []
    failed = False
    for name in target.names:
        try:
            objs.append(with_type(client.get(target.kind, name), target.kind))
        except ConnectionFailed:
            raise
        except ApiError as e:
            output.report(e)
            failed = True
    return objs, "", failed


def _table(
    kind: Kind, objs: list[dict[str, Any]], args: argparse.Namespace, prefixed: bool
) -> tuple[list[str], list[list[str]]]:
    wide = args.output == "wide"
    now = tables.now_utc()
    prefix = f"{display_kind(kind)}/" if prefixed else ""
    fmt = args.output or ""
    if fmt.startswith("custom-columns="):
        return custom_columns(fmt[len("custom-columns="):], objs)
    header = tables.headers(kind, wide, args.all_namespaces)
    rows = [tables.row(kind, o, now, wide, args.all_namespaces, prefix) for o in objs]
    keys = [k.strip() for spec in getattr(args, "label_columns", []) or [] for k in spec.split(",") if k.strip()]
    for key in keys:
        header.append(key.rsplit("/", 1)[-1].upper())
        for o, r in zip(objs, rows, strict=True):
            r.append(str(((o.get("metadata") or {}).get("labels") or {}).get(key, "")))
    if getattr(args, "show_labels", False):
        header.append("LABELS")
        for o, r in zip(objs, rows, strict=True):
            r.append(printers.pairs_text((o.get("metadata") or {}).get("labels") or {}))
    return header, rows


def sort_by(objs: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """`--sort-by=.status.startTime`: objects ordered by the JSONPath's value (numbers as numbers,
    objects without the field first, as kubectl sorts them)."""
    def key(o: dict[str, Any]) -> tuple[int, float, str]:
        try:
            found = jsonpath.find(o, path if path.startswith(("{", ".")) else "." + path)
        except jsonpath.JsonPathError as e:
            raise CliError(f"--sort-by: {e}") from None
        if not found:
            return (0, 0.0, "")
        value = found[0]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (1, float(value), "")
        return (2, 0.0, jsonpath.text(value))

    return sorted(objs, key=key)


def custom_columns(spec: str, objs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """`-o custom-columns=NAME:.metadata.name,IP:.status.podIP`: kubectl's columns; a missing
    value shows `<none>`, several are joined with commas."""
    columns: list[tuple[str, str]] = []
    for part in spec.split(","):
        head, sep, path = part.partition(":")
        if not sep or not head or not path:
            raise CliError(f'custom-columns: expected HEADER:.json.path, got "{part}"')
        columns.append((head, path if path.startswith(("{", ".")) else "." + path))
    rows: list[list[str]] = []
    for o in objs:
        row: list[str] = []
        for _, path in columns:
            try:
                values = jsonpath.find(o, path)
            except jsonpath.JsonPathError as e:
                raise CliError(f"custom-columns: {e}") from None
            row.append(",".join(jsonpath.text(v) for v in values) if values else "<none>")
        rows.append(row)
    return [h for h, _ in columns], rows


def _shown(objs: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The objects as `-o json|yaml` prints them: without `metadata.managedFields` unless
    `--show-managed-fields`, as kubectl."""
    if getattr(args, "show_managed_fields", False):
        return objs
    out = []
    for o in objs:
        meta = o.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            o = {**o, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        out.append(o)
    return out


def _print_structured(objs: list[dict[str, Any]], fmt: str, single: bool) -> None:
    doc: Any = objs[0] if single and len(objs) == 1 else output.as_list(objs)
    output.write(output.to_json(doc) if fmt == "json" else output.to_yaml(doc))


def _print_template(objs: list[dict[str, Any]], fmt: str, single: bool) -> None:
    doc: Any = objs[0] if single and len(objs) == 1 else output.as_list(objs)
    try:
        text = jsonpath.render(fmt[len("jsonpath="):], doc)
    except jsonpath.JsonPathError as e:
        raise CliError(f"error parsing jsonpath {fmt[len('jsonpath='):]}: {e}") from None
    sys.stdout.write(text)


def cmd_get(args: argparse.Namespace) -> int:
    targets, prefixed = parse_get_targets(args.targets)
    if args.watch:
        if len(targets) != 1:
            raise CliError("watch is only supported on a single resource type")
        with output.connect(args) as client:
            return watch(client, targets[0], args)
    fmt = args.output
    failed = False
    printed_any = False
    collected: list[dict[str, Any]] = []
    with output.connect(args) as client:
        for target in targets:
            objs, _, err = _fetch(client, target, args)
            if getattr(args, "sort_by", None):
                objs = sort_by(objs, args.sort_by)
            failed = failed or err
            if fmt in ("json", "yaml") or (fmt or "").startswith("jsonpath="):
                collected.extend(objs if fmt not in ("json", "yaml") else _shown(objs, args))
            elif fmt == "name":
                for o in objs:
                    print(display_name(target.kind, (o.get("metadata") or {}).get("name", "")))
            elif objs:
                header, rows = _table(target.kind, objs, args, prefixed)
                if printed_any:
                    print()
                output.write(tables.render(header, rows, show_header=not args.no_headers))
            printed_any = printed_any or bool(objs)
        if fmt in ("json", "yaml"):
            single = len(targets) == 1 and len(targets[0].names) == 1
            if collected or not single:
                _print_structured(collected, fmt, single)
        elif fmt and fmt.startswith("jsonpath="):
            single = len(targets) == 1 and len(targets[0].names) == 1
            if collected or not single:
                _print_template(collected, fmt, single)
        elif not printed_any and not failed:
            print(_empty_message(client, targets, args.all_namespaces), file=sys.stderr)
    sys.stdout.flush()
    return 1 if failed else 0


# -- watch -------------------------------------------------------------------------------


def _field_selector(target: Target, args: argparse.Namespace) -> str | None:
    parts = [args.field_selector] if args.field_selector else []
    if target.names:
        if len(target.names) > 1:
            raise CliError("watch is only supported on a single object name")
        parts.append(f"metadata.name={target.names[0]}")
    return ",".join(parts) or None


class _WatchPrinter:
    """Prints objects as they arrive, keeping table columns aligned with the first table."""

    def __init__(self, kind: Kind, args: argparse.Namespace) -> None:
        self.kind = kind
        self.args = args
        self.widths: list[int] | None = None

    def print_objects(self, objs: list[dict[str, Any]]) -> None:
        fmt = self.args.output
        if fmt in ("json", "yaml"):
            objs = _shown(objs, self.args)
        for o in objs:
            if fmt == "name":
                print(display_name(self.kind, (o.get("metadata") or {}).get("name", "")), flush=True)
            elif fmt == "json":
                output.write(output.to_json(o))
            elif fmt == "yaml":
                output.write("---\n" + output.to_yaml(o))
            elif fmt and fmt.startswith("jsonpath="):
                _print_template([o], fmt, True)
                sys.stdout.flush()
        if fmt in ("name", "json", "yaml") or (fmt or "").startswith("jsonpath=") or not objs:
            return
        header, rows = _table(self.kind, objs, self.args, False)
        show_header = self.widths is None and not self.args.no_headers
        widths = tables.column_widths(header, rows)
        if self.widths is not None:
            widths = [max(a, b) for a, b in zip(widths, self.widths, strict=False)]
        self.widths = widths
        output.write(tables.render(header, rows, show_header=show_header, min_widths=widths))


def _list_for_watch(client: Client, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    return client.list(
        target.kind,
        all_namespaces=args.all_namespaces,
        label_selector=args.selector,
        field_selector=_field_selector(target, args),
    )


def watch(client: Client, target: Target, args: argparse.Namespace) -> int:
    printer = _WatchPrinter(target.kind, args)
    field_selector = _field_selector(target, args)
    try:
        listed = _list_for_watch(client, target, args)
        rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        if not args.watch_only:
            printer.print_objects([with_type(o, target.kind) for o in listed.get("items") or []])
        while True:
            relist = False
            events = 0
            try:
                for event in client.watch(
                    target.kind,
                    all_namespaces=args.all_namespaces,
                    resource_version=rv or None,
                    label_selector=args.selector,
                    field_selector=field_selector,
                ):
                    events += 1
                    obj = event.get("object") or {}
                    etype = event.get("type")
                    if etype == "ERROR":
                        code = int(obj.get("code") or 0)
                        if code == 410:
                            relist = True
                            break
                        raise ApiError.from_status(obj, code or 500)
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if new_rv:
                        rv = str(new_rv)
                    if etype == "BOOKMARK":
                        continue
                    printer.print_objects([with_type(obj, target.kind)])
            except ApiError as e:
                if e.code != 410 or isinstance(e, ConnectionFailed):
                    raise
                relist = True
            if relist:
                # Too old to resume: list again and carry on from the fresh resourceVersion.
                listed = _list_for_watch(client, target, args)
                rv = str((listed.get("metadata") or {}).get("resourceVersion") or "")
            elif not events:
                time.sleep(RECONNECT_PAUSE)  # the server closed an idle stream; do not spin
    except KeyboardInterrupt:
        return 0
