"""`dockyard patch TYPE NAME -p PATCH [--type strategic|merge|json]`: change fields in place.

As `kubectl patch`: the patch is JSON or YAML, given inline (`-p`) or in a file
(`--patch-file`); the default type is `strategic` (Kubernetes' strategic merge: containers
merged by name, …), `merge` is RFC 7386 and `json` RFC 6902. The object is read first, so
the line says `patched (no change)` when the patch changed nothing, as kubectl does.
`--subresource status|scale` patches a subresource. `--dry-run=client` applies the patch
locally with the same functions the server uses (`objects.patch`) and sends nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from ..client import PATCH_TYPES, ConnectionFailed
from ..errors import ApiError
from ..objects import patch as patching
from . import output, targets
from .options import dry_run_option, global_options, output_option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("patch", parents=[global_options(suppress=True)],
                              help="update fields of an object with a strategic merge, JSON merge or JSON patch",
                              description="patch TYPE NAME | TYPE/NAME | -f FILE  -p PATCH | --patch-file FILE")
    p.add_argument("words", nargs="*", metavar="TYPE[/NAME] [NAME]")
    p.add_argument("-p", "--patch", metavar="PATCH", help="the patch, JSON or YAML")
    p.add_argument("--patch-file", metavar="FILE", help="a file holding the patch")
    p.add_argument("--type", choices=["strategic", "merge", "json"], default="strategic",
                   help="the patch format (default strategic)")
    p.add_argument("--subresource", choices=["status", "scale"], default=None, help="patch this subresource")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                   help="the object(s) named in these manifests")
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler=cmd_patch, intermixed="words")


def read_patch(inline: str | None, path: str | None, patch_type: str) -> Any:
    """The patch as data; a CliError naming the flag when missing or not JSON/YAML."""
    if inline is not None and path:
        raise output.CliError("-p and --patch-file cannot be given together")
    if path:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise output.CliError(f"--patch-file: cannot read {path}: {e}") from None
        flag = "--patch-file"
    elif inline is not None:
        text, flag = inline, "-p"
    else:
        raise output.CliError("must specify -p PATCH or --patch-file FILE to patch")
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise output.CliError(f"{flag}: the patch is neither JSON nor YAML: {' '.join(str(e).split())}") from None
    if patch_type == "json":
        if not isinstance(data, list):
            raise output.CliError(f"{flag}: a json patch must be a list of operations ([{{\"op\": …}}])")
    elif not isinstance(data, dict):
        raise output.CliError(f"{flag}: a {patch_type} patch must be an object ({{…}})")
    return data


def apply_locally(obj: dict[str, Any], patch: Any, patch_type: str) -> dict[str, Any]:
    try:
        if patch_type == "json":
            result = patching.json_patch(obj, patch)
        elif patch_type == "merge":
            result = patching.json_merge_patch(obj, patch)
        else:
            result = patching.strategic_merge_patch(obj, patch, str(obj.get("kind", "")))
    except patching.PatchError as e:
        raise output.CliError(f"the patch cannot be applied: {e}") from None
    return result if isinstance(result, dict) else obj


def cmd_patch(args: argparse.Namespace) -> int:
    patch = read_patch(args.patch, args.patch_file, args.type)
    failed = False
    with output.connect(args) as client:
        words = args.words
        if not args.filename and len(words) == 1 and "/" not in words[0]:
            raise output.CliError(f'a name is needed: patch {words[0]} NAME -p PATCH')
        refs = targets.resolve_refs(client, words, filenames=args.filename)
        for ref in refs:
            try:
                before = targets.fetch(client, ref)
                if args.dry_run == "client":
                    after = apply_locally(before, patch, args.type)
                else:
                    path = client.path(ref.kind, ref.namespace, ref.name, args.subresource or "")
                    after = client.request("PATCH", path, patch, params=output.dry_run_params(args.dry_run),
                                           content_type=PATCH_TYPES[args.type])
                    if args.subresource == "scale":
                        after = targets.fetch(client, ref) if args.dry_run == "none" else before
                unchanged = _same(before, after)
                output.show(after, ref.kind, "patched (no change)" if unchanged else "patched", args.output,
                            args.dry_run)
            except ConnectionFailed:
                raise
            except (ApiError, output.CliError) as e:
                output.report(e)
                failed = True
    return 1 if failed else 0


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        out = dict(o)
        meta = dict(out.get("metadata") or {})
        for k in ("resourceVersion", "managedFields", "generation"):
            meta.pop(k, None)
        out["metadata"] = meta
        out.setdefault("apiVersion", before.get("apiVersion"))
        out.setdefault("kind", before.get("kind"))
        return out

    return strip(before) == strip(after)
