"""`dockyard label` and `dockyard annotate`: set or remove labels/annotations, kubectl's way.

    dockyard label pods web-1 tier=front env-            # set tier, remove env
    dockyard label deploy/web tier=back --overwrite      # change an existing value
    dockyard annotate pods -l app=web note='hello world' --all

Changes are `key=value` (set) and `key-` (remove); objects come first (`targets.split_pairs`).
Changing a key that already has a different value needs `--overwrite`, as in kubectl; a
label value must be a valid label value (63 characters of `[A-Za-z0-9._-]`, alphanumeric at
both ends), annotations take any text. The write is a JSON merge patch of
`metadata.labels`/`metadata.annotations` (null removes a key); when nothing would change no
request is sent and kubectl's `… not labeled`/`… not annotated` line is printed.

`parse_changes` and `apply_changes` are pure and unit-tested.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..client import ConnectionFailed
from ..errors import ApiError
from . import output, targets
from .options import dry_run_option, global_options, output_option

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
LABEL_VALUE_RE = re.compile(rf"^({_NAME})?$")


def parse_changes(pairs: list[str], what: str) -> tuple[dict[str, str], list[str]]:
    """`["a=1", "b-"]` → ({"a": "1"}, ["b"]); a bad key or label value is a CliError."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for pair in pairs:
        if "=" in pair:
            key, _, value = pair.partition("=")
            if what == "label" and not LABEL_VALUE_RE.match(value):
                raise output.CliError(f'invalid label value: "{pair}": a valid label value must be 63 characters '
                                      "or less and must be empty or begin and end with an alphanumeric character "
                                      "([a-z0-9A-Z]) with dashes (-), underscores (_), dots (.), and alphanumerics "
                                      "between")
        else:
            key, value = pair[:-1], ""
        if not KEY_RE.match(key) or len(key.rpartition("/")[2]) > 63:
            raise output.CliError(f'invalid {what} spec: "{pair}": the key must be NAME or PREFIX/NAME, '
                                  "NAME up to 63 characters of [A-Za-z0-9._-], alphanumeric at both ends")
        if "=" in pair:
            if key in sets or key in removes:
                raise output.CliError(f'{what} "{key}" is given more than once')
            sets[key] = value
        else:
            if key in sets:
                raise output.CliError(f'can not both modify and remove the {what} "{key}" in the same command')
            removes.append(key)
    return sets, removes


def apply_changes(current: dict[str, str], sets: dict[str, str], removes: list[str], overwrite: bool,
                  what: str) -> dict[str, Any]:
    """The merge patch of the map (empty: nothing changes); CliError when --overwrite is needed."""
    patch: dict[str, Any] = {}
    for key, value in sets.items():
        if key in current and current[key] != value and not overwrite:
            raise output.CliError(f"'{key}' already has a value ({current[key]}), and --overwrite is false")
        if current.get(key) != value:
            patch[key] = value
    for key in removes:
        if key in current:
            patch[key] = None
    return patch


def register(subparsers: Any) -> None:
    for verb, what, field in (("label", "label", "labels"), ("annotate", "annotation", "annotations")):
        p = subparsers.add_parser(verb, parents=[global_options(suppress=True)],
                                  help=f"add, change or remove {field} of objects",
                                  description=f"{verb} objects: TYPE NAME… | TYPE/NAME… then KEY=VALUE… KEY-…")
        p.add_argument("words", nargs="+", metavar="TYPE[/NAME] [NAME...] KEY=VAL... KEY-...")
        p.add_argument("--overwrite", action="store_true", help=f"allow changing existing {field}")
        p.add_argument("-l", "--selector", metavar="SEL", help="the objects matching this label selector")
        p.add_argument("--all", action="store_true", help="every object of the type in the namespace")
        p.add_argument("-A", "--all-namespaces", action="store_true", help="with -l/--all: in every namespace")
        p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                       help="the objects of these manifests")
        p.add_argument("--list", action="store_true", help=f"print the {field} of the objects")
        output_option(p)
        dry_run_option(p)
        p.set_defaults(handler=cmd_label, intermixed="words", what=what, field=field, verb_past="labeled" if verb == "label"
                       else "annotated")


def cmd_label(args: argparse.Namespace) -> int:
    objects, pairs = targets.split_pairs(args.words, args.what)
    if not pairs and not args.list:
        raise output.CliError(f"at least one {args.what} update is required")
    sets, removes = parse_changes(pairs, args.what)
    failed = False
    with output.connect(args) as client:
        refs = targets.resolve_refs(client, objects, args.selector, args.all, args.filename,
                                    all_namespaces=args.all_namespaces)
        if not refs:
            print("No resources found", flush=True)
            return 0
        for ref in refs:
            try:
                obj = targets.fetch(client, ref)
                meta = obj.setdefault("metadata", {})
                current = dict(meta.get(args.field) or {})
                if args.list:
                    for k, v in sorted(current.items()):
                        print(f"{k}={v}")
                    if not pairs:
                        continue
                patch = apply_changes(current, sets, removes, args.overwrite, args.what)
                for key in removes:
                    if key not in current:
                        print(f'{args.what} "{key}" not found.', flush=True)
                if not patch:
                    output.show(obj, ref.kind, f"not {args.verb_past}", args.output, args.dry_run)
                    continue
                if args.dry_run == "client":
                    merged = {k: v for k, v in {**current, **patch}.items() if v is not None}
                    meta[args.field] = merged
                    result = obj
                else:
                    result = client.request("PATCH", client.path(ref.kind, ref.namespace, ref.name),
                                            {"metadata": {args.field: patch}},
                                            params=output.dry_run_params(args.dry_run),
                                            content_type="application/merge-patch+json")
                past = "unlabeled" if args.what == "label" and removes and not sets else args.verb_past
                output.show(result, ref.kind, past, args.output, args.dry_run)
            except ConnectionFailed:
                raise
            except (ApiError, output.CliError) as e:
                output.report(e)
                failed = True
    return 1 if failed else 0
