"""The `dockyard` command line: argument parsing, dispatch and the exit-code contract.

All commands are declared here, in one argparse tree, so the whole CLI surface can be read
in one place. Handlers are named as `"module:function"` strings and imported only when
their command runs: `dockyard --help` or `dockyard apply` do not pay for the table
renderer, and `up`/`master`/`agent` (implemented by the server and agent packages) are
imported only when started, so the CLI works on a machine that has only the client side.

Global options (`--kubeconfig`, `--context`, `-n/--namespace`) are accepted before or after
the subcommand: they are declared on the root parser and again, with suppressed defaults,
on each subcommand, so a value given in either place wins and an absent one does not
overwrite the other. They and the option types live in `orchestrator.cli.options`, which
the command modules that `register` their own subcommands (logs, exec, top, cluster,
rollout) import too: no command module imports this one.

kubectl's everyday verbs (`create`, `label`, `patch`, `set`, `wait`, `diff`, `edit`, `expose`,
`run`, `events`, `explain`, `auth`, `cp`, …) each live in a module of their own that
`register`s its subcommand; `parse` gives them kubectl's command-line habits (flags anywhere
among the words, a command after `--`).

Exit codes: 0 success; 1 the operation failed, with exactly one line per failure on stderr
(`error: …` for local problems, `Error from server (Reason): …` for API errors); 2 usage
errors (argparse). Expected failures never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import ApiError
from ..objects.kinds import UnknownKind
from .options import (
    dry_run_option,
    get_output,
    global_options,
    host_port,
    non_negative_int,
    output_option,
    seconds,
)

DEFAULT_DATA_DIR = "/var/lib/dockyard"
DEFAULT_AGENT_DATA_DIR = "/var/lib/dockyard-agent"
DEFAULT_LISTEN = "0.0.0.0:6443"
DEFAULT_BACKOFF_BASE = 10.0
DEFAULT_BACKOFF_CAP = 300.0
DEFAULT_HEARTBEAT = 2.0
DEFAULT_NODE_STATUS_PERIOD = 60.0

Handler = Callable[[argparse.Namespace], int]


# -- parser ------------------------------------------------------------------------------


def _files(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("-f", "--filename", action="append", required=required, default=[], metavar="FILE",
                   help="manifest file, directory (*.yaml, *.yml, *.json) or - for stdin; repeatable")
    p.add_argument("-R", "--recursive", action="store_true", help="descend into subdirectories of -f DIR")


def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR",
                   help=f"state directory (default {DEFAULT_DATA_DIR})")
    p.add_argument("--listen", type=host_port, default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"API address (default {DEFAULT_LISTEN})")
    p.add_argument("--advertise-address", metavar="IP", help="address nodes and clients use to reach the API")
    p.add_argument("--write-kubeconfig", metavar="PATH",
                   help="where to write the admin kubeconfig (default the client config path)")
    p.add_argument("--cluster-cidr", metavar="CIDR", help="range node pod CIDRs are carved from (default 10.42.0.0/16)")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="take autoscaling metrics from this Prometheus (default: scrape the agents)")
    p.add_argument("--hpa-sync-period", type=seconds, metavar="S",
                   help="how often autoscalers are evaluated (default 15s)")
    p.add_argument("--service-cidr", metavar="CIDR", help="range Service cluster IPs come from (default 10.43.0.0/16)")
    p.add_argument("--node-grace", type=seconds, metavar="S",
                   help="how long a node's Lease may go unrenewed before the node is NotReady and its pods "
                        "leave their Services (default 8s)")
    p.add_argument("--max-pending-pods", type=int, metavar="N",
                   help="refuse new pods while N pods wait for a node (default $DOCKYARD_MAX_PENDING_PODS or "
                        "1000; 0 turns the limit off)")
    p.add_argument("--eviction-timeout", type=seconds, metavar="S",
                   help="how long pods stay on an unreachable node before they are evicted (default 5s)")
    p.add_argument("--controller-manager", choices=["process", "thread"], default="process",
                   help="run the controllers and the scheduler in a child process that uses the API (default), "
                        "or in threads of the master's process")


def _port_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubelet-port", type=int, default=None, metavar="PORT",
                   help="agent HTTPS port for logs and exec (default 10250)")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="agent plain-HTTP port for /metrics (default 10249)")


def _backoff_options(p: argparse.ArgumentParser) -> None:
    _port_options(p)
    p.add_argument("--backoff-base", type=seconds, default=DEFAULT_BACKOFF_BASE, metavar="S",
                   help=f"first container restart delay (default {DEFAULT_BACKOFF_BASE:g}s)")
    p.add_argument("--backoff-cap", type=seconds, default=DEFAULT_BACKOFF_CAP, metavar="S",
                   help=f"longest container restart delay (default {DEFAULT_BACKOFF_CAP:g}s)")
    p.add_argument("--heartbeat", type=seconds, default=DEFAULT_HEARTBEAT, metavar="S",
                   help=f"how often the agent renews its node Lease (default {DEFAULT_HEARTBEAT:g}s)")
    p.add_argument("--node-status-period", type=seconds, default=DEFAULT_NODE_STATUS_PERIOD, metavar="S",
                   help=f"how often the full Node status is posted (default {DEFAULT_NODE_STATUS_PERIOD:g}s; "
                        "at once when the container runtime's health changes)")
    p.add_argument("--cleanup-on-exit", action="store_true",
                   help="remove this node's service rules, pod routes and cluster DNS when the agent exits "
                        "(default: they stay, so pods keep their traffic while no agent runs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockyard",
        parents=[global_options(suppress=False)],
        description="Dockyard: a Kubernetes-shaped container orchestrator for Docker hosts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = [global_options(suppress=True)]

    def add(name: str, handler: str, help_text: str, parents: list[Any] | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=common if parents is None else parents, help=help_text,
                           description=help_text)
        p.set_defaults(handler=handler)
        return p

    # cluster processes
    p = add("up", "orchestrator.server:main_up", "run a master and a local agent in the foreground")
    _server_options(p)
    p.add_argument("--node-name", metavar="N", help="name of the local node (default the host name)")
    p.add_argument("--no-agent", action="store_true", help="do not run the local agent")
    p.add_argument("--pod-network", metavar="NAME", help="Docker network for the local node's pods")
    _backoff_options(p)

    p = add("master", "orchestrator.server:main_master", "run the master (API, controllers, scheduler)")
    _server_options(p)

    p = add("controller-manager", "orchestrator.controllermanager:main_controller_manager",
            "run the controllers and the scheduler against a master's API (the master starts one itself)")
    p.add_argument("--node-grace", type=seconds, metavar="S",
                   help="seconds without a heartbeat before a node is NotReady (default 8)")
    p.add_argument("--eviction-timeout", type=seconds, metavar="S",
                   help="seconds a node stays NotReady before its pods are evicted (default 5)")
    p.add_argument("--hpa-sync-period", type=seconds, metavar="S",
                   help="seconds between two evaluations of each HorizontalPodAutoscaler (default 15)")
    p.add_argument("--prometheus-url", metavar="URL", help="HPA metrics from this Prometheus instead of the agents")
    p.add_argument("--nice", type=int, default=0, metavar="N", help="niceness added to the controllers' threads")
    p.add_argument("--parent-pipe", action="store_true",
                   help="stop at end-of-file on stdin and answer metrics requests on stdout (used by the master)")
    p.add_argument("--master-endpoint", metavar="IP:PORT",
                   help="where pods reach the API: the default/kubernetes Service's endpoint "
                        "(default $DOCKYARD_MASTER_ENDPOINT, which the master sets)")

    p = add("agent", "agent.main:main_agent", "run a node agent that joins a master")
    p.add_argument("--server", metavar="URL", help="master URL, e.g. https://10.0.0.1:6443 (required unless --cleanup)")
    p.add_argument("--token", metavar="T",
                   help="node join token printed by the master (default $DOCKYARD_TOKEN, which keeps it out of "
                        "the process list)")
    p.add_argument("--name", metavar="N", help="node name (default the host name)")
    p.add_argument("--data-dir", default=DEFAULT_AGENT_DATA_DIR, metavar="D",
                   help=f"agent state directory (default {DEFAULT_AGENT_DATA_DIR})")
    p.add_argument("--node-ip", metavar="IP", help="address other nodes reach this one at")
    p.add_argument("--docker-url", metavar="URL", default=None,
                   help="Docker engine URL (default: from the environment)")
    p.add_argument("--pod-network", metavar="NAME", help="Docker network for this node's pods")
    p.add_argument("--cleanup", action="store_true",
                   help="remove this node's service rules, pod routes and cluster DNS server, then exit "
                        "(pods are left alone; needs no master)")
    _backoff_options(p)

    # objects
    p = add("apply", "orchestrator.cli.apply:cmd_apply", "create or update objects from manifests")
    _files(p, required=True)
    output_option(p)
    dry_run_option(p)
    p.add_argument("--server-side", action="store_true",
                   help="let the API merge the manifest and track field ownership (server-side apply)")
    p.add_argument("--force-conflicts", action="store_true",
                   help="with --server-side: take over fields other managers own instead of failing")
    p.add_argument("--field-manager", default=None, metavar="NAME",
                   help="the name ownership of fields is recorded under (default dockyard, or "
                        "dockyard-client-side-apply without --server-side)")

    p = add("get", "orchestrator.cli.get:cmd_get", "list objects")
    p.add_argument("targets", nargs="+", metavar="KIND [NAME...]",
                   help="po, deploy/web, deploy,rs,po or all, optionally followed by names")
    p.add_argument("-o", "--output", type=get_output, default=None, metavar="FORMAT",
                   help="wide, yaml, json, name, jsonpath=TEMPLATE (e.g. jsonpath='{.status.podIP}') or "
                        "custom-columns=NAME:.metadata.name,IP:.status.podIP")
    p.add_argument("--sort-by", metavar="JSONPATH", help="order by this field, e.g. .metadata.creationTimestamp")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("-L", "--label-columns", action="append", default=[], metavar="KEY[,KEY...]",
                   help="add a column with the value of these labels")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", metavar="SEL", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", metavar="SEL", help="field selector, e.g. spec.nodeName=n1")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, print changes as they happen")
    p.add_argument("--watch-only", action="store_true", help="print changes only, not the current list")
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--show-managed-fields", action="store_true",
                   help="keep metadata.managedFields in -o json|yaml output")

    p = add("describe", "orchestrator.cli.describe:cmd_describe", "show details of objects and their events")
    p.add_argument("targets", nargs="+", metavar="KIND [NAME...]")
    p.add_argument("-l", "--selector", metavar="SEL")
    p.add_argument("-A", "--all-namespaces", action="store_true")

    p = add("delete", "orchestrator.cli.apply:cmd_delete", "delete objects")
    _files(p, required=False)
    p.add_argument("targets", nargs="*", metavar="KIND [NAME...]")
    p.add_argument("-l", "--selector", metavar="SEL")
    p.add_argument("--all", action="store_true", help="delete all objects of the kind in the namespace")
    p.add_argument("--grace-period", type=int, default=None, metavar="N",
                   help="seconds a pod gets to stop (default the pod's own)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait until the objects are gone (default: wait)")
    p.add_argument("--timeout", type=seconds, default=0.0, metavar="S",
                   help="give up waiting after S seconds (default 0: no limit)")
    p.add_argument("--ignore-not-found", action="store_true", help="treat missing objects as deleted")
    dry_run_option(p)

    p = add("scale", "orchestrator.cli.apply:cmd_scale", "set the replica count of deployments or replicasets")
    p.add_argument("targets", nargs="+", metavar="KIND/NAME | KIND NAME")
    p.add_argument("--replicas", type=non_negative_int, required=True, metavar="N")

    # pods at work, and fleets
    from . import cluster, exec, logs, rollout, top

    for module in (logs, exec, top, cluster, rollout):
        module.register(sub)

    # kubectl's everyday verbs, each in a module of its own
    from . import (
        apiresources,
        auth,
        autoscale,
        cp,
        create,
        diff,
        edit,
        events,
        explain,
        expose,
        labels,
        patch,
        replace,
        run,
        setcmd,
        taint,
        wait,
    )

    for module in (create, replace, expose, run, autoscale, labels, taint, patch, setcmd, edit, diff, wait, events,
                   explain, apiresources, auth, cp):
        module.register(sub)

    from . import portforward

    p = add("port-forward", "orchestrator.cli.portforward:main_port_forward",
            "forward local ports to a pod, or to a pod of a deployment or service")
    portforward.add_arguments(p)
    p.set_defaults(intermixed="ports")

    # client config and version
    p = add("config", "", "read and switch contexts in the client config")
    cs = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    c = cs.add_parser("get-contexts", parents=common, help="list the contexts")
    c.add_argument("names", nargs="*", metavar="NAME")
    c.add_argument("-o", "--output", choices=["name"], default=None)
    c.add_argument("--no-headers", action="store_true")
    c.set_defaults(handler="orchestrator.cli.config:cmd_get_contexts")
    c = cs.add_parser("use-context", parents=common, help="set the current context")
    c.add_argument("name", metavar="NAME")
    c.set_defaults(handler="orchestrator.cli.config:cmd_use_context")
    c = cs.add_parser("current-context", parents=common, help="print the current context")
    c.set_defaults(handler="orchestrator.cli.config:cmd_current_context")
    c = cs.add_parser("set-context", help="create or change a context")
    c.add_argument("name", nargs="?", metavar="NAME")
    c.add_argument("--current", action="store_true", help="change the current context")
    c.add_argument("--cluster")
    c.add_argument("--user")
    c.add_argument("--namespace", dest="context_namespace", metavar="NS")
    c.add_argument("--kubeconfig", metavar="FILE", default=argparse.SUPPRESS)
    c.set_defaults(handler="orchestrator.cli.config:cmd_set_context")
    c = cs.add_parser("view", parents=common, help="print the config (secrets redacted)")
    c.add_argument("--raw", action="store_true", help="show secrets and certificate data")
    c.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    c.set_defaults(handler="orchestrator.cli.config:cmd_view")

    p = add("version", "orchestrator.cli.main:cmd_version", "print client and server versions")
    p.add_argument("--client", action="store_true", help="client version only")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default=None)
    return parser


def finish_args(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults that depend on other options or the environment."""
    for name in ("kubeconfig", "context", "namespace"):
        if not hasattr(args, name):
            setattr(args, name, None)
    if args.command in ("up", "master") and not args.write_kubeconfig:
        from ..client import config_path

        args.write_kubeconfig = str(config_path(args.kubeconfig))
    if args.command == "agent" and not hasattr(args, "docker_url"):
        args.docker_url = None
    return args


# -- dispatch ----------------------------------------------------------------------------


class _Unavailable(Exception):
    pass


def load_handler(spec: str | Handler) -> Handler:
    if callable(spec):
        return spec
    module_name, _, func_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise _Unavailable(f"this command is not available in this installation ({module_name} is missing)") from None
        raise _Unavailable(f"cannot load {module_name}: {e}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise _Unavailable(f"this command is not available in this installation ({spec} is missing)")
    return func


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv` with kubectl's habits: flags anywhere among the words.

    * Commands that run a command (`exec`, `run`, `create deployment`, …) declare
      `set_defaults(trailing=DEST)`: everything after the first `--` is that command, kept out
      of argparse (so `exec POD -c C -- sh -c X` never reads the command's own `-c` as ours)
      and stored in `DEST`. Any other command gets its `--` back and argparse treats it as usual.
    * Commands whose words continue after a flag (`label pods -l app=web tier=front`)
      declare `set_defaults(intermixed=DEST)`: words argparse leaves over are appended to
      `DEST` in order. A left-over flag stays a usage error.
    """
    head, tail = argv, None
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut + 1:]
    args, extra = parser.parse_known_args(head)
    if tail is not None and not getattr(args, "trailing", None):
        head, tail = argv, None
        args, extra = parser.parse_known_args(head)
    if extra:
        dest = getattr(args, "intermixed", None)
        if not dest:
            parser.parse_args(head)  # exits with argparse's usage error
            raise SystemExit(2)
        flags = [e for e in extra if e.startswith("-") and e != "-"]
        if flags:
            parser.error(f"{args.command}: unrecognized arguments: {' '.join(flags)}")
        setattr(args, dest, [*getattr(args, dest), *extra])
    if tail is not None:
        args.before_dash = list(getattr(args, args.trailing) or [])  # words the command must refuse
        setattr(args, args.trailing, tail)
        args.dashdash = True
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # usage errors (2) and --help (0)
        return _exit_code(e.code)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    args = finish_args(args)
    if args.command == "agent" and not args.cleanup and not args.server:
        print("dockyard agent: error: the master is required: --server URL", file=sys.stderr)
        return 2
    if args.command == "agent" and not args.cleanup and not args.token:
        args.token = os.environ.get("DOCKYARD_TOKEN") or None
        if not args.token:
            print("dockyard agent: error: a join token is required: --token T or $DOCKYARD_TOKEN", file=sys.stderr)
            return 2
    try:
        return int(load_handler(args.handler)(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`dockyard get po | head`); say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as e:
        if _expected(e):
            from .output import report

            report(e)
            return 1
        raise


def _expected(e: Exception) -> bool:
    from ..client import ConfigError
    from .output import CliError

    return isinstance(e, (ApiError, ConfigError, CliError, UnknownKind, _Unavailable, OSError))


# -- version -----------------------------------------------------------------------------


def client_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return "v" + version("dockyard")
    except PackageNotFoundError:
        return "v0.0.0-dev"


def cmd_version(args: argparse.Namespace) -> int:
    from ..client import ConfigError
    from . import output

    info: dict[str, Any] = {"clientVersion": {"gitVersion": client_version()}}
    problem = ""
    if not args.client:
        try:
            with output.connect(args) as client:
                server = client.request("GET", "/version")
            if isinstance(server, dict):
                info["serverVersion"] = server
        except (ApiError, ConfigError) as e:
            problem = str(e)
    if args.output == "json":
        output.write(output.to_json(info))
    elif args.output == "yaml":
        output.write(output.to_yaml(info))
    else:
        print(f"Client Version: {info['clientVersion']['gitVersion']}")
        if "serverVersion" in info:
            print(f"Server Version: {info['serverVersion'].get('gitVersion', '<unknown>')}")
    if problem:
        print(f"Server Version: unavailable ({problem})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
