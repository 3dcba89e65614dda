"""`dockyard run NAME --image=IMAGE [flags] [-- ARG...]`: start one Pod, as `kubectl run`.

The Pod is what kubectl builds: labelled `run=NAME` (or `--labels`), one container named
NAME with the image, `--port` as its container port, `--env K=V` variables, `--restart`
as the pod's restartPolicy (default Always), `dnsPolicy: ClusterFirst`. Words after `--`
are the container's `args`, or its `command` with `--command`. `--dry-run`/`-o` as for
`create`. `build_pod` is pure and unit-tested.

`--attach` (what CI jobs use `run -i --rm` for) waits for the pod to start, streams its
output until the container ends and exits with the container's exit code; `--rm` then
deletes the pod. Stdin cannot be attached (the API serves no `pods/attach`), so `-i`/`-t`
are refused with a line saying so rather than silently ignored.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import httpx

from ..client import Client
from ..objects.kinds import resolve
from . import output
from .expose import parse_map
from .options import dry_run_option, global_options, go_duration, output_option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", parents=[global_options(suppress=True)], help="start a pod running an image",
                              description="run NAME --image=IMAGE [--port P] [--env K=V] [--labels K=V,…] "
                                          "[--restart Always|OnFailure|Never] [--command] [-- ARG...]")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--image", required=True, metavar="IMAGE")
    p.add_argument("--port", type=int, default=None, metavar="PORT", help="the container's port")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="an environment variable; repeatable")
    p.add_argument("-l", "--labels", metavar="K=V,...", help="the pod's labels (default run=NAME)")
    p.add_argument("--restart", choices=["Always", "OnFailure", "Never"], default="Always")
    p.add_argument("--image-pull-policy", choices=["Always", "IfNotPresent", "Never"], default=None)
    p.add_argument("--command", dest="as_command", action="store_true",
                   help="the words after -- are the command, not its args")
    p.add_argument("--annotations", action="append", default=[], metavar="K=V")
    p.add_argument("--attach", action="store_true",
                   help="wait for the pod, print its output until it ends, exit with its container's code")
    p.add_argument("--rm", action="store_true", help="with --attach: delete the pod when it has ended")
    p.add_argument("-i", "--stdin", action="store_true", help="not available: the pods/attach subresource is not served")
    p.add_argument("-t", "--tty", action="store_true", help="not available (see -i)")
    p.add_argument("--pod-running-timeout", type=go_duration, default=60.0, metavar="DURATION",
                   help="with --attach: how long the pod may take to start (default 1m)")
    p.add_argument("cmd", nargs="*", metavar="-- ARG...")
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler=cmd_run, trailing="cmd", intermixed="cmd")


def build_pod(name: str, image: str, port: int | None = None, env: list[str] | None = None,
              labels: dict[str, str] | None = None, restart: str = "Always", command: bool = False,
              words: list[str] | None = None, pull_policy: str | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {}
    if words:
        container["command" if command else "args"] = list(words)
    elif command:
        raise output.CliError("--command needs the command after --: run NAME --image=I --command -- CMD [ARG...]")
    variables = []
    for e in env or []:
        key, sep, value = e.partition("=")
        if not sep or not key:
            raise output.CliError(f'--env: expected KEY=VALUE, got "{e}"')
        variables.append({"name": key, "value": value})
    if variables:
        container["env"] = variables
    container["image"] = image
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    container["name"] = name
    if port is not None:
        container["ports"] = [{"containerPort": port}]
    container["resources"] = {}
    meta: dict[str, Any] = {}
    if annotations:
        meta["annotations"] = annotations
    meta["labels"] = labels if labels is not None else {"run": name}
    meta["name"] = name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": restart},
            "status": {}}


def cmd_run(args: argparse.Namespace) -> int:
    if args.stdin or args.tty:
        raise output.CliError("run -i/-t needs the pods/attach subresource, which Dockyard does not serve: "
                              "use --attach (output only), or exec into a running pod")
    if args.rm and not args.attach:
        raise output.CliError("--rm should only be used for attached containers (add --attach)")
    if args.attach and args.dry_run != "none":
        raise output.CliError("--dry-run can't be used with attached containers options (--attach)")
    if (args.cmd and not getattr(args, "dashdash", False)) or getattr(args, "before_dash", None):
        raise output.CliError("the container's arguments go after --: run NAME --image=I -- ARG...")
    annotations: dict[str, str] = {}
    for a in args.annotations:
        annotations.update(parse_map(a, "--annotations"))
    pod = build_pod(args.name, args.image, args.port, args.env,
                    parse_map(args.labels, "--labels") if args.labels else None, args.restart, args.as_command,
                    args.cmd, args.image_pull_policy, annotations or None)
    kind = resolve("pods")
    if getattr(args, "namespace", None):
        pod["metadata"]["namespace"] = args.namespace
    if args.dry_run == "client":
        output.show(pod, kind, "created", args.output, args.dry_run)
        return 0
    with output.connect(args) as client:
        body = {k: v for k, v in pod.items() if k != "status"}
        created = client.request("POST", client.path(kind), body, params=output.dry_run_params(args.dry_run))
        if not args.attach:
            output.show(created, kind, "created", args.output, args.dry_run)
            return 0
        try:
            return attach(client, args.name, args.pod_running_timeout)
        finally:
            if args.rm:
                client.delete(kind, args.name, grace_period=0)
                print(f'pod "{args.name}" deleted', file=sys.stderr, flush=True)


def attach(client: Client, name: str, start_timeout: float) -> int:
    """Wait until the pod runs (or has ended), stream its output, then its container's exit code."""
    kind = resolve("pods")
    deadline = time.monotonic() + start_timeout
    while True:
        phase = str((client.get(kind, name).get("status") or {}).get("phase") or "Pending")
        if phase != "Pending":
            break
        if time.monotonic() >= deadline:
            raise output.CliError(f"timed out waiting for the condition: pod/{name} did not start within "
                                  f"{start_timeout:g}s (--pod-running-timeout)")
        time.sleep(0.3)
    path = f"/api/v1/namespaces/{client.namespace}/pods/{name}/log"
    with client.http.stream("GET", path, params={"follow": "true"}, timeout=httpx.Timeout(30.0, read=None)) as r:
        if r.status_code >= 400:
            r.read()
            client._decode(r)
        for chunk in r.iter_raw():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    while True:  # the stream ends when the container does; its status follows shortly
        status = client.get(kind, name).get("status") or {}
        for cs in status.get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if terminated is not None:
                return int(terminated.get("exitCode") or 0)
        if status.get("phase") in ("Succeeded", "Failed"):
            return 0 if status["phase"] == "Succeeded" else 1
        time.sleep(0.3)
