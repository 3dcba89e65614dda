"""`dockyard diff -f FILE`: what `apply -f FILE` would change, as a unified diff.

As `kubectl diff`: for every object of the manifests, the live object and the object as
it would be after the apply ("merged") are written as YAML to two directories, `LIVE-…`
and `MERGED-…`, one file per object named `group.version.Kind.namespace.name`, and a diff
program compares them: `$DOCKYARD_EXTERNAL_DIFF` (or `$KUBECTL_EXTERNAL_DIFF`) when set,
else `diff -u -N`, else Python's difflib in the same format. The merged object comes
from the API itself: the apply's patch (or create) is sent with `dryRun=All`, so defaults,
validation and admission are the server's. `metadata.managedFields` is left out, and
Secret values are masked (`***`, or `*** (before)`/`*** (after)` when they differ).

Exit codes are kubectl's and `diff`'s: 0 no differences, 1 differences, >1 an error (bad
manifest, API error, diff program failure).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..client import Client, ConfigError
from ..errors import ApiError
from . import manifests, output
from .apply import plan_apply, with_last_applied
from .options import global_options

ERROR_EXIT = 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("diff", parents=[global_options(suppress=True)],
                              help="show what apply -f would change (exit 1 when something would)",
                              description="diff the live objects against what apply -f FILE would make of them; "
                                          "exit 0: no differences, 1: differences, >1: error")
    p.add_argument("-f", "--filename", action="append", required=True, default=[], metavar="FILE")
    p.add_argument("-R", "--recursive", action="store_true")
    p.set_defaults(handler=cmd_diff)


def file_name(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    group_version = api_version.replace("/", ".")
    meta = obj.get("metadata") or {}
    parts = [group_version, str(obj.get("kind", ""))]
    if meta.get("namespace"):
        parts.append(str(meta["namespace"]))
    parts.append(str(meta.get("name", "")))
    return ".".join(parts)


def _clean(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def mask_secrets(live: dict[str, Any] | None, merged: dict[str, Any] | None) -> None:
    """Replace Secret values in place, keeping whether they changed visible."""
    if (live or merged or {}).get("kind") != "Secret":
        return
    before = dict((live or {}).get("data") or {})
    after = dict((merged or {}).get("data") or {})
    for key in set(before) | set(after):
        same = before.get(key) == after.get(key)
        if live is not None and key in before:
            live["data"][key] = "***" if same else "*** (before)"
        if merged is not None and key in after:
            merged["data"][key] = "***" if same else "*** (after)"


def merged_object(client: Client, m: manifests.Manifest) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(live, merged) for one manifest; the merged object comes from a server dry run."""
    ns = (m.namespace or client.namespace) if m.kind.namespaced else None
    try:
        live: dict[str, Any] | None = client.get(m.kind, m.name, ns)
    except ApiError as e:
        if e.code != 404:
            raise
        live = None
    dry = {"dryRun": "All"}
    if live is None:
        merged = client.request("POST", client.path(m.kind, ns), with_last_applied(m.obj, ns), params=dry)
    else:
        patch = plan_apply(m.obj, live)
        merged = (client.request("PATCH", client.path(m.kind, ns, m.name), patch, params=dry,
                                 content_type="application/merge-patch+json") if patch else live)
    for o in (live, merged):
        if o is not None:
            o.setdefault("apiVersion", m.kind.api_version)
            o.setdefault("kind", m.kind.kind)
    return live, merged


def run_diff(live_dir: Path, merged_dir: Path) -> int:
    program = os.environ.get("DOCKYARD_EXTERNAL_DIFF") or os.environ.get("KUBECTL_EXTERNAL_DIFF")
    if program:
        cmd = [*shlex.split(program), str(live_dir), str(merged_dir)]
    elif shutil.which("diff"):
        cmd = ["diff", "-u", "-N", str(live_dir), str(merged_dir)]
    else:
        return python_diff(live_dir, merged_dir)
    try:
        return subprocess.run(cmd, check=False).returncode
    except OSError as e:
        raise output.CliError(f"cannot run the diff program {cmd[0]!r}: {e.strerror or e}") from None


def python_diff(live_dir: Path, merged_dir: Path) -> int:
    names = sorted({p.name for p in live_dir.iterdir()} | {p.name for p in merged_dir.iterdir()})
    changed = False
    for name in names:
        a, b = live_dir / name, merged_dir / name
        old = a.read_text().splitlines(keepends=True) if a.exists() else []
        new = b.read_text().splitlines(keepends=True) if b.exists() else []
        lines = list(difflib.unified_diff(old, new, str(a), str(b)))
        if lines:
            changed = True
            sys.stdout.write(f"diff -u -N {a} {b}\n")
            sys.stdout.writelines(lines)
    sys.stdout.flush()
    return 1 if changed else 0


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        docs = manifests.load(args.filename, recursive=args.recursive)
    except output.CliError as e:
        output.report(e)
        return ERROR_EXIT
    try:
        with output.connect(args) as client, tempfile.TemporaryDirectory(prefix="dockyard-diff-") as tmp:
            live_dir = Path(tempfile.mkdtemp(prefix="LIVE-", dir=tmp))
            merged_dir = Path(tempfile.mkdtemp(prefix="MERGED-", dir=tmp))
            for m in docs:
                live, merged = merged_object(client, m)
                live, merged_clean = _clean(live), _clean(merged)
                mask_secrets(live, merged_clean)
                name = file_name(merged_clean or {})
                if live is not None:
                    (live_dir / name).write_text(output.to_yaml(live))
                (merged_dir / name).write_text(output.to_yaml(merged_clean))
            code = run_diff(live_dir, merged_dir)
    except (ApiError, ConfigError, output.CliError, OSError) as e:
        output.report(e)
        return ERROR_EXIT
    if code > 1:
        output.report(output.CliError(f"the diff program exited with status {code}"))
    return code
