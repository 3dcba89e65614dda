"""Shared plumbing of the `dockyard` commands: errors, names, connecting, printing objects.

Every command reports failure the same way, so this module owns the two error shapes the
CLI contract fixes: `CliError` for local problems (printed as `error: <message>`) and the
server's `ApiError` (printed as `Error from server (<Reason>): <message>`). Commands that
process several objects print such a line per failure and keep going; they return exit
code 1 at the end.

`connect()` is the single place a command obtains an API client. Commands call it through
this module (`output.connect(args)`) so tests can substitute a client that talks to an
in-memory transport.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

import yaml

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects.kinds import Kind


class CliError(Exception):
    """A local problem (bad input, unknown kind, …): one `error: …` line, exit 1."""


def error_line(exc: BaseException) -> str:
    """The single stderr line for an exception the CLI reports."""
    if isinstance(exc, ConnectionFailed):
        return f"error: {exc.message}"
    if isinstance(exc, ApiError):
        return f"Error from server ({exc.reason}): {exc.message}"
    return f"error: {exc}"


def report(exc: BaseException, stream: IO[str] | None = None) -> None:
    print(error_line(exc), file=stream or sys.stderr)


def connect(args: argparse.Namespace) -> Client:
    """An API client for the global `--kubeconfig/--context/-n` options; its writes ask for
    strict field validation, as kubectl's do."""
    client = Client.from_kubeconfig(
        getattr(args, "kubeconfig", None),
        getattr(args, "context", None),
        getattr(args, "namespace", None),
    )
    client.field_validation = "Strict"
    return client


def display_kind(kind: Kind) -> str:
    """`pod`, `configmap`, `deployment.apps`: how kubectl names a kind in messages."""
    return f"{kind.singular_name}.{kind.group}" if kind.group else kind.singular_name


def display_name(kind: Kind, name: str) -> str:
    """`deployment.apps/web`."""
    return f"{display_kind(kind)}/{name}"


def with_type(obj: dict[str, Any], kind: Kind) -> dict[str, Any]:
    """List items come without apiVersion/kind; put them back (first, as kubectl shows them)."""
    if obj.get("apiVersion") and obj.get("kind"):
        return obj
    out: dict[str, Any] = {"apiVersion": kind.api_version, "kind": kind.kind}
    out.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    return out


def as_list(items: list[dict[str, Any]], resource_version: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": resource_version}, "items": items}


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, ensure_ascii=False)


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write(text: str, stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()


DRY_RUN_SUFFIX = {"client": " (dry run)", "server": " (server dry run)"}


def dry_run_params(mode: str) -> dict[str, str] | None:
    """The query parameters of a write in `--dry-run` mode (`server` asks the API for `dryRun=All`)."""
    return {"dryRun": "All"} if mode == "server" else None


def show(obj: dict[str, Any], kind: Kind, action: str, fmt: str | None, dry_run: str = "none") -> None:
    """What a write command prints for one object: `-o json|yaml|name`, or `kind/name action`."""
    name = str((obj.get("metadata") or {}).get("name") or "")
    if fmt == "json":
        write(to_json(with_type(obj, kind)))
    elif fmt == "yaml":
        write(to_yaml(with_type(obj, kind)))
    elif fmt == "name":
        write(display_name(kind, name))
    else:
        write(f"{display_name(kind, name)} {action}{DRY_RUN_SUFFIX.get(dry_run, '')}")
