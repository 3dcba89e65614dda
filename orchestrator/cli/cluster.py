"""Fleet commands: `cluster up|upgrade`, `node add|remove|upgrade`, `cordon`, `uncordon`, `drain`.

`register(subparsers)` adds them to the main parser. The fleet commands read an inventory
(`-f cluster.yaml`) and reach nodes over SSH through `orchestrator.bootstrap`; progress goes
to stderr as rich status lines, the summary to stdout (a table, or JSON with
`--output json`). Exit codes follow the CLI contract: 0 ok, 1 failed (one `error:` line per
problem on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import config_path
from .options import global_options, seconds


def _fleet_options(p: argparse.ArgumentParser, needs_file: bool = True) -> None:
    p.add_argument("-f", "--filename", required=needs_file, metavar="FILE", help="cluster inventory (cluster.yaml)")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust unknown SSH host keys on first use and record them in the known_hosts file")
    p.add_argument("--known-hosts", metavar="FILE", action="append", default=None,
                   help="known_hosts file (repeatable; default ~/.dockyard/known_hosts and ~/.ssh/known_hosts)")
    p.add_argument("--wheelhouse", metavar="DIR", help="prebuilt wheelhouse to install instead of building one")
    p.add_argument("--timeout", type=seconds, default=180.0, metavar="S",
                   help="how long to wait for each node to become Ready (default 180s)")
    p.add_argument("-o", "--output", choices=["json"], default=None, help="print a JSON summary")


def _upgrade_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--max-unavailable", type=int, default=1, metavar="N",
                   help="pods of one Deployment that may be unavailable during drains (default 1)")
    c.add_argument("--drain", action="store_true",
                   help="drain every node before its upgrade, even when the new agent would keep its pods as "
                        "they are")


def register(sub: Any) -> None:
    common = [global_options(suppress=True)]

    def add(parent: Any, name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=common, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = sub.add_parser("cluster", parents=common, help="bootstrap and upgrade a fleet from an inventory")
    cs = p.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)
    c = add(cs, "up", cmd_cluster_up, "install or update the agent on every node of the inventory")
    _fleet_options(c)
    c = add(cs, "upgrade", cmd_node_upgrade, "roll the agent upgrade over every node of the inventory")
    _fleet_options(c)
    _upgrade_options(c)
    c.set_defaults(names=[])

    p = sub.add_parser("node", parents=common, help="add, remove or upgrade nodes of the inventory")
    ns = p.add_subparsers(dest="node_command", metavar="SUBCOMMAND", required=True)
    c = add(ns, "add", cmd_node_add, "install the agent on the named nodes of the inventory")
    c.add_argument("names", nargs="+", metavar="NAME")
    _fleet_options(c)
    c = add(ns, "remove", cmd_node_remove, "drain, uninstall and delete nodes")
    c.add_argument("names", nargs="+", metavar="NAME")
    _fleet_options(c)
    c = add(ns, "upgrade", cmd_node_upgrade,
            "upgrade the agent node by node: in place when the pods need no change, else cordon, drain, "
            "upgrade, uncordon")
    c.add_argument("names", nargs="*", metavar="NAME", help="nodes to upgrade (default all of the inventory)")
    _fleet_options(c)
    _upgrade_options(c)

    c = add(sub, "cordon", cmd_cordon, "mark nodes unschedulable")
    c.add_argument("names", nargs="+", metavar="NODE")
    c = add(sub, "uncordon", cmd_uncordon, "mark nodes schedulable")
    c.add_argument("names", nargs="+", metavar="NODE")
    c = add(sub, "drain", cmd_drain, "cordon a node and evict its pods")
    c.add_argument("names", nargs="+", metavar="NODE")
    c.add_argument("--ignore-daemonsets", action="store_true", help="leave DaemonSet pods in place")
    c.add_argument("--force", action="store_true", help="also delete pods not managed by a controller")
    c.add_argument("--timeout", type=seconds, default=300.0, metavar="S", help="give up after S seconds")
    c.add_argument("--grace-period", type=int, default=None, metavar="N", help="seconds each pod gets to stop")


# -- helpers ------------------------------------------------------------------------------


class _Progress:
    """Status lines on stderr (rich when it is a terminal, plain lines otherwise)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)

    def __call__(self, msg: str) -> None:
        self.console.print(f"[dim]…[/dim] {msg}" if self.console.is_terminal else f"... {msg}",
                           markup=self.console.is_terminal)


def _fail(lines: list[str] | str) -> int:
    for line in [lines] if isinstance(lines, str) else lines:
        print(f"error: {line}", file=sys.stderr)
    return 1


def _kubeconfig(args: argparse.Namespace) -> Path:
    return config_path(getattr(args, "kubeconfig", None))


def _bootstrapper(args: argparse.Namespace, progress: Callable[[str], None]) -> Any:
    from ..bootstrap.install import Bootstrapper, Options
    from ..bootstrap.inventory import load_inventory
    from ..bootstrap.ssh import DEFAULT_KNOWN_HOSTS

    inv = load_inventory(args.filename)
    sudo_password = None
    if any(n.sudo == "password" for n in inv.nodes):
        sudo_password = os.environ.get("DOCKYARD_SUDO_PASSWORD")
        if sudo_password is None:
            sudo_password = getpass.getpass("sudo password for the nodes: ")
    opts = Options(
        known_hosts=tuple(args.known_hosts) if args.known_hosts else DEFAULT_KNOWN_HOSTS,
        accept_new=bool(args.accept_new_host_keys),
        sudo_password=sudo_password,
        wheelhouse=Path(args.wheelhouse) if args.wheelhouse else None,
        ready_timeout=float(args.timeout),
    )
    return Bootstrapper(inv, opts, _kubeconfig(args), progress)


def _print_results(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if getattr(args, "output", None) == "json":
        print(json.dumps({"nodes": rows}, indent=2))
        return
    widths = [max(len(c), *(len(str(r.get(c.lower(), ""))) for r in rows)) for c in columns]
    print("   ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in rows:
        print("   ".join(str(r.get(c.lower(), "")).ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())


def _run(fn: Callable[[], int]) -> int:
    from ..bootstrap import BootstrapError
    from ..bootstrap.install import PrerequisiteError

    try:
        return fn()
    except PrerequisiteError as e:
        return _fail(e.problems)
    except BootstrapError as e:
        return _fail(str(e).splitlines()[0] if not hasattr(e, "problems") else list(e.problems))


# -- commands -----------------------------------------------------------------------------


def _install(args: argparse.Namespace, names: list[str] | None) -> int:
    def go() -> int:
        b = _bootstrapper(args, _Progress())
        results = b.up(names)
        rows = [dict(r.as_dict(), changes=",".join(r.changes) or "-") for r in results]
        _print_results(args, rows, ["NAME", "ADDRESS", "ACTION", "SERVICE", "VERSION", "CHANGES"])
        failed = [p for r in results for p in r.problems]
        return _fail(failed) if failed else 0

    return _run(go)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    return _install(args, None)


def cmd_node_add(args: argparse.Namespace) -> int:
    return _install(args, list(args.names))


def cmd_node_remove(args: argparse.Namespace) -> int:
    def go() -> int:
        b = _bootstrapper(args, _Progress())
        rows = []
        for name in args.names:
            r = b.remove(name)
            rows.append(dict(r.as_dict(), changes=",".join(r.changes)))
        _print_results(args, rows, ["NAME", "ADDRESS", "ACTION", "CHANGES"])
        return 0

    return _run(go)


def cmd_node_upgrade(args: argparse.Namespace) -> int:
    from ..bootstrap.install import NODE, wait_node_ready
    from ..bootstrap.upgrade import rolling_upgrade
    from ..objects.nodeinfo import keeps_pods

    def go() -> int:
        progress = _Progress()
        b = _bootstrapper(args, progress)
        b.opts.force = True
        names = list(args.names) or [n.name for n in b.inv.nodes]
        nodes = [b.inv.node(n) for n in names]
        checked = b.check_all(nodes)
        for conn, _ in checked.values():
            conn.close()
        b.wheelhouse()

        def upgrade_one(name: str) -> None:
            results = b.up([name])
            if results[0].problems:
                from ..bootstrap import BootstrapError

                raise BootstrapError("; ".join(results[0].problems))

        with b.client() as client:
            def in_place(name: str) -> bool:
                return not args.drain and keeps_pods(client.get(NODE, name))

            steps = rolling_upgrade(
                client, names, upgrade_one, lambda n: wait_node_ready(client, n, b.opts.ready_timeout),
                max_unavailable=args.max_unavailable, progress=progress, in_place=in_place,
            )
        rows = [{"name": s.node, "result": "ok" if s.ok else "failed", "seconds": f"{s.seconds:.1f}",
                 "message": s.message} for s in steps]
        _print_results(args, rows, ["NAME", "RESULT", "SECONDS", "MESSAGE"])
        failed = [f"{s.node}: {s.message}" for s in steps if not s.ok]
        if not failed and len(steps) < len(names):
            failed = ["the upgrade stopped early"]
        return _fail(failed) if failed else 0

    return _run(go)


def _client(args: argparse.Namespace) -> Any:
    from .output import connect

    return connect(args)


def cmd_cordon(args: argparse.Namespace) -> int:
    from ..bootstrap.upgrade import cordon

    with _client(args) as client:
        for name in args.names:
            changed = cordon(client, name)
            print(f"node/{name} {'cordoned' if changed else 'already cordoned'}")
    return 0


def cmd_uncordon(args: argparse.Namespace) -> int:
    from ..bootstrap.upgrade import uncordon

    with _client(args) as client:
        for name in args.names:
            changed = uncordon(client, name)
            print(f"node/{name} {'uncordoned' if changed else 'already uncordoned'}")
    return 0


def cmd_drain(args: argparse.Namespace) -> int:
    from ..bootstrap.upgrade import drain

    def go() -> int:
        with _client(args) as client:
            for name in args.names:
                print(f"node/{name} cordoned")
                for ident in drain(client, name, force=args.force, ignore_daemonsets=args.ignore_daemonsets,
                                   timeout=args.timeout, grace_period=args.grace_period):
                    print(f"pod/{ident.split('/', 1)[1]} evicted")
                print(f"node/{name} drained")
        return 0

    return _run(go)
