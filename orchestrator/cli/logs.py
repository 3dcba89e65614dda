"""`dockyard logs POD [-c C] [-f] [--tail N] [--previous] [--timestamps]`.

Streams `GET /api/v1/namespaces/{ns}/pods/{pod}/log` to stdout as the bytes arrive (the
master relays them from the pod's node agent). With `-f` the stream stays open until the
container stops or the user interrupts; without it, the command ends after the output the
container has written so far. `POD` may also be written `pod/NAME`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx

from ..client import ConnectionFailed
from . import output
from .options import global_options


def pod_name(target: str) -> str:
    kind, sep, name = target.partition("/")
    if not sep:
        return target
    if kind not in ("pod", "pods", "po"):
        raise output.CliError(f"only pods have logs here, not {kind!r}: use pod/NAME or NAME")
    return name


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", parents=[global_options(suppress=True)],
                              help="print the logs of a container in a pod",
                              description="print the logs of a container in a pod")
    p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
    p.add_argument("-c", "--container", metavar="C", help="container name (default: the only one)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new output")
    p.add_argument("--tail", type=int, default=-1, metavar="N", help="only the last N lines (default all)")
    p.add_argument("-p", "--previous", action="store_true", help="the previous, terminated attempt")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its RFC 3339 time")
    p.set_defaults(handler=cmd_logs)


def cmd_logs(args: argparse.Namespace) -> int:
    name = pod_name(args.pod)
    params: dict[str, str] = {}
    if args.container:
        params["container"] = args.container
    for flag in ("follow", "previous", "timestamps"):
        if getattr(args, flag):
            params[flag] = "true"
    if args.tail is not None and args.tail >= 0:
        params["tailLines"] = str(args.tail)
    out = sys.stdout.buffer
    with output.connect(args) as client:
        path = f"/api/v1/namespaces/{client.namespace}/pods/{name}/log"
        try:
            with client.http.stream("GET", path, params=params, timeout=httpx.Timeout(30.0, read=None)) as r:
                if r.status_code >= 400:
                    r.read()
                    client._decode(r)
                for chunk in r.iter_raw():
                    out.write(chunk)
                    out.flush()
        except httpx.TransportError as e:
            raise ConnectionFailed(client.server, e) from None
    return 0
