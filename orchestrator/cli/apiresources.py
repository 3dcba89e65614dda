"""`dockyard api-resources` and `dockyard api-versions`: what the API serves, from its discovery.

Read from the server (`/api`, `/api/v1`, `/apis`, `/apis/GROUP/VERSION`), not from the
client's own kinds table, so the answer is the cluster's even when client and server
versions differ. `api-resources` prints kubectl's columns (NAME, SHORTNAMES, APIVERSION,
NAMESPACED, KIND; VERBS and CATEGORIES with `-o wide`; names only with `-o name`), core
first, then groups alphabetically, resources by name; subresources are left out.
`--namespaced=true|false` and `--api-group` filter. `api-versions` prints every
group/version, sorted.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client import Client
from . import output, tables
from .options import global_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("api-resources", parents=[global_options(suppress=True)],
                              help="list the resource types the API serves")
    p.add_argument("--namespaced", choices=["true", "false"], default=None, help="only (non-)namespaced types")
    p.add_argument("--api-group", default=None, metavar="GROUP", help='only this group ("" for core)')
    p.add_argument("-o", "--output", choices=["wide", "name"], default=None)
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(handler=cmd_api_resources)
    p = subparsers.add_parser("api-versions", parents=[global_options(suppress=True)],
                              help="list the group/versions the API serves")
    p.set_defaults(handler=cmd_api_versions)


def group_versions(client: Client) -> list[tuple[str, str]]:
    """(group, "group/version" or "v1") for every served version, core first, each group's
    preferred version before its others."""
    out: list[tuple[str, str]] = []
    core = client.request("GET", "/api") or {}
    out += [("", v) for v in core.get("versions") or []]
    groups = client.request("GET", "/apis") or {}
    for g in sorted(groups.get("groups") or [], key=lambda g: str(g.get("name", ""))):
        preferred = str((g.get("preferredVersion") or {}).get("groupVersion", ""))
        versions = [str(v.get("groupVersion", "")) for v in g.get("versions") or []]
        out += [(str(g.get("name", "")), gv) for gv in sorted(versions, key=lambda gv: gv != preferred)]
    return out


def rows_for(gv: str, resources: list[dict[str, Any]], wide: bool) -> list[list[str]]:
    rows = []
    for r in sorted(resources, key=lambda r: str(r.get("name", ""))):
        if "/" in str(r.get("name", "")):
            continue
        row = [str(r.get("name", "")), ",".join(r.get("shortNames") or []), gv,
               "true" if r.get("namespaced") else "false", str(r.get("kind", ""))]
        if wide:
            row += [f"[{' '.join(r.get('verbs') or [])}]", ",".join(r.get("categories") or [])]
        rows.append(row)
    return rows


def cmd_api_resources(args: argparse.Namespace) -> int:
    wide = args.output == "wide"
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] + (["VERBS", "CATEGORIES"] if wide else [])
    rows: list[list[str]] = []
    names: list[str] = []
    seen: set[tuple[str, str]] = set()
    with output.connect(args) as client:
        for group, gv in group_versions(client):
            if args.api_group is not None and group != args.api_group:
                continue
            path = f"/api/{gv}" if not group else f"/apis/{gv}"
            listed = (client.request("GET", path) or {}).get("resources") or []
            for row in rows_for(gv, listed, wide):
                # as kubectl: a resource once, in its group's preferred version (another
                # version lists only what the preferred one lacks)
                if (group, row[0]) in seen:
                    continue
                seen.add((group, row[0]))
                if args.namespaced is not None and row[3] != args.namespaced:
                    continue
                rows.append(row)
                names.append(f"{row[0]}.{group}" if group else row[0])
    if args.output == "name":
        output.write("\n".join(names))
    else:
        output.write(tables.render(header, rows, show_header=not args.no_headers))
    return 0


def cmd_api_versions(args: argparse.Namespace) -> int:
    with output.connect(args) as client:
        output.write("\n".join(sorted(gv for _, gv in group_versions(client))))
    return 0
