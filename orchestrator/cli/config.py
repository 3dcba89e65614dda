"""`dockyard config`: read and switch contexts in the kubeconfig-format client config.

The file is the one `dockyard up` writes (default `~/.dockyard/config`, or `DOCKYARD_CONFIG`,
or `--kubeconfig`), and kubectl can use it as well, so only standard kubeconfig fields are
read or written. Rewrites are atomic (temporary file + rename) and keep the file's mode,
since the file holds credentials. `view` redacts secrets unless `--raw` is given.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml

from ..client import config_path, load_kubeconfig
from ..objects.files import write_private
from . import output, tables
from .output import CliError

REDACTED = "REDACTED"
OMITTED = "DATA+OMITTED"
_SECRET_USER_FIELDS = ("token", "password", "client-key-data")
_OMITTED_FIELDS = ("certificate-authority-data", "client-certificate-data")


def _path(args: argparse.Namespace) -> Path:
    return config_path(getattr(args, "kubeconfig", None))


def save_kubeconfig(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, keeping the existing file's permissions (0600 for a new one)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False).encode(), mode)


def context_rows(cfg: dict[str, Any]) -> list[list[str]]:
    current = cfg.get("current-context")
    rows = []
    for item in cfg.get("contexts") or []:
        ctx = item.get("context") or {}
        rows.append(
            [
                "*" if item.get("name") == current else "",
                str(item.get("name", "")),
                str(ctx.get("cluster", "")),
                str(ctx.get("user", "")),
                str(ctx.get("namespace", "") or ""),
            ]
        )
    return rows


def redact(cfg: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    for item in out.get("users") or []:
        user = item.get("user") or {}
        for key in _SECRET_USER_FIELDS:
            if user.get(key):
                user[key] = REDACTED
        for key in _OMITTED_FIELDS:
            if user.get(key):
                user[key] = OMITTED
    for item in out.get("clusters") or []:
        cluster = item.get("cluster") or {}
        for key in _OMITTED_FIELDS:
            if cluster.get(key):
                cluster[key] = OMITTED
    return out


def _context_names(cfg: dict[str, Any]) -> list[str]:
    return [str(c.get("name")) for c in cfg.get("contexts") or [] if c.get("name")]


def cmd_get_contexts(args: argparse.Namespace) -> int:
    cfg = load_kubeconfig(_path(args))
    rows = context_rows(cfg)
    if args.names:
        wanted = set(args.names)
        missing = wanted - {r[1] for r in rows}
        if missing:
            raise CliError(f"context {sorted(missing)[0]} not found")
        rows = [r for r in rows if r[1] in wanted]
    if args.output == "name":
        for r in rows:
            print(r[1])
        return 0
    header = ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    output.write(tables.render(header, rows, show_header=not args.no_headers))
    return 0


def cmd_use_context(args: argparse.Namespace) -> int:
    path = _path(args)
    cfg = load_kubeconfig(path)
    if args.name not in _context_names(cfg):
        raise CliError(f'no context exists with the name: "{args.name}" in {path}')
    cfg["current-context"] = args.name
    save_kubeconfig(path, cfg)
    print(f'Switched to context "{args.name}".')
    return 0


def cmd_current_context(args: argparse.Namespace) -> int:
    cfg = load_kubeconfig(_path(args))
    current = cfg.get("current-context")
    if not current:
        raise CliError("current-context is not set")
    print(current)
    return 0


def cmd_set_context(args: argparse.Namespace) -> int:
    path = _path(args)
    cfg = load_kubeconfig(path)
    name = args.name
    if args.current:
        if name:
            raise CliError("you cannot specify both a context name and --current")
        name = cfg.get("current-context")
        if not name:
            raise CliError("no current context is set")
    if not name:
        raise CliError("give a context NAME or --current")
    contexts = cfg.setdefault("contexts", []) or []
    cfg["contexts"] = contexts
    entry = next((c for c in contexts if c.get("name") == name), None)
    created = entry is None
    if entry is None:
        entry = {"name": name, "context": {}}
        contexts.append(entry)
    ctx = entry.setdefault("context", {}) or {}
    entry["context"] = ctx
    for key, value in (("cluster", args.cluster), ("user", args.user), ("namespace", args.context_namespace)):
        if value is not None:
            ctx[key] = value
    save_kubeconfig(path, cfg)
    print(f'Context "{name}" {"created" if created else "modified"}.')
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    cfg = load_kubeconfig(_path(args))
    shown = cfg if args.raw else redact(cfg)
    if args.output == "json":
        output.write(output.to_json(shown))
    else:
        output.write(output.to_yaml(shown))
    return 0

