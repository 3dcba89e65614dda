"""`dockyard replace -f FILE`: write whole objects back (PUT), as `kubectl replace`.

Every manifest is sent as the object's new state; without `metadata.resourceVersion` the
update is unconditional, with one it is refused (409) when the object changed since. A
missing object is NotFound (replace never creates); `--force` deletes and re-creates
instead, waiting for the old object to be gone. Lines are kubectl's:
`deployment.apps/web replaced`; `-o json|yaml|name` and `--dry-run` as for `create`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..client import ConnectionFailed
from ..errors import ApiError
from . import manifests, output
from .options import dry_run_option, global_options, output_option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("replace", parents=[global_options(suppress=True)],
                              help="replace objects by the manifests' content (PUT)")
    p.add_argument("-f", "--filename", action="append", required=True, default=[], metavar="FILE")
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("--force", action="store_true", help="delete and re-create the objects")
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler=cmd_replace)


def cmd_replace(args: argparse.Namespace) -> int:
    docs = manifests.load(args.filename, recursive=args.recursive)
    failed = False
    with output.connect(args) as client:
        for m in docs:
            ns = (m.namespace or client.namespace) if m.kind.namespaced else None
            try:
                if args.dry_run == "client":
                    output.show(m.obj, m.kind, "replaced", args.output, args.dry_run)
                    continue
                params = output.dry_run_params(args.dry_run)
                if args.force and args.dry_run == "none":
                    try:
                        client.delete(m.kind, m.name, ns)
                        print(f'{output.display_kind(m.kind)} "{m.name}" deleted', flush=True)
                        while True:
                            client.get(m.kind, m.name, ns)
                            time.sleep(0.3)
                    except ApiError as e:
                        if e.code != 404 or isinstance(e, ConnectionFailed):
                            raise
                    body = dict(m.obj)
                    body["metadata"] = {k: v for k, v in m.obj["metadata"].items()
                                        if k not in ("resourceVersion", "uid")}
                    result = client.request("POST", client.path(m.kind, ns), body)
                else:
                    result = client.request("PUT", client.path(m.kind, ns, m.name), m.obj, params=params)
                output.show(result, m.kind, "replaced", args.output, args.dry_run)
            except ConnectionFailed:
                raise
            except ApiError as e:
                output.report(e)
                failed = True
    return 1 if failed else 0
