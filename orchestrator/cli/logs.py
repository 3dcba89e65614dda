"""`dockyard logs POD [CONTAINER] [-c C] [-f] [--tail N] [--previous] [--timestamps]`.

Flags go before or after the pod name, in any order, as kubectl takes them.

Streams `GET /api/v1/namespaces/{ns}/pods/{pod}/log` to stdout as the bytes arrive (the
master relays them from the pod's node agent). With `-f` the stream stays open until the
container stops or the user interrupts; without it, the command ends after the output the
container has written so far. `POD` may also be written `pod/NAME`, or, as kubectl takes it,
`deploy/NAME`, `rs/NAME` or `svc/NAME` for one of the pods they select (a ready one first).

`-l SELECTOR` prints the logs of every matching pod (the last 10 lines of each unless
`--tail` says otherwise, as kubectl does), `--all-containers` of every container, and
`--prefix` starts each line with `[pod/NAME/CONTAINER]`. Following several streams runs them
concurrently (at most `--max-log-requests`), writing whole lines so they do not interleave
mid-line when prefixed.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import httpx

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects.kinds import UnknownKind, resolve
from . import output
from .options import global_options


def pod_name(target: str) -> str:
    kind, sep, name = target.partition("/")
    if not sep:
        return target
    if kind not in ("pod", "pods", "po"):
        raise output.CliError(f"only pods have logs here, not {kind!r}: use pod/NAME or NAME")
    return name


POD_OWNERS = ("deployments", "replicasets", "services")


def pod_for(client: Client, target: str) -> str:
    """The pod `target` names: `NAME`, `pod/NAME`, or (as kubectl) one pod of `deploy/NAME`,
    `rs/NAME` or `svc/NAME`: a running and ready one if there is one, else the oldest."""
    kind_name, sep, name = target.partition("/")
    if not sep or kind_name in ("pod", "pods", "po"):
        return pod_name(target)
    try:
        kind = resolve(kind_name)
    except UnknownKind as e:
        raise output.CliError(str(e)) from None
    if kind.resource not in POD_OWNERS or not name:
        raise output.CliError(f"cannot find a pod for {target!r}: use pod/NAME, deploy/NAME, rs/NAME or svc/NAME")
    obj = client.get(kind, name)
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    labels = selector if kind.resource == "services" else (selector.get("matchLabels") or {})
    if not labels:
        raise output.CliError(f"{target} selects no pods (it has no selector)")
    text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = client.list(resolve("pods"), label_selector=text).get("items") or []
    if not pods:
        raise output.CliError(f"no pods found for {target} (selector {text})")

    def rank(pod: dict[str, Any]) -> tuple[int, str, str]:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        meta = pod.get("metadata") or {}
        return (0 if status.get("phase") == "Running" and ready else 1, str(meta.get("creationTimestamp", "")),
                str(meta.get("name", "")))

    return str((min(pods, key=rank).get("metadata") or {}).get("name", ""))


DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def default_container(pod: dict[str, Any]) -> tuple[str | None, str | None]:
    """kubectl's choice when no container is named: (container, notice for stderr).

    One container: it, silently. Several: the one the `kubectl.kubernetes.io/default-container`
    annotation names, else the first, with kubectl's `Defaulted container "c" out of: …` line.
    """
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or []]
    init = [str(c.get("name")) for c in spec.get("initContainers") or []]
    if not names:
        return None, None
    if len(names) == 1 and not init:
        return names[0], None
    wanted = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if wanted in names:
        return str(wanted), None
    listing = ", ".join(names + [f"{n} (init)" for n in init])
    return names[0], f'Defaulted container "{names[0]}" out of: {listing}'


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("logs", parents=[global_options(suppress=True)],
                              help="print the logs of a container in a pod",
                              description="print the logs of a container in a pod (or of the pods -l selects)")
    p.add_argument("pod", nargs="?", metavar="POD", help="pod name (or pod/NAME, deploy/NAME, svc/NAME)")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER", help="container name (same as -c)")
    p.add_argument("-c", "--container", metavar="C", help="container name (default: the only one)")
    p.add_argument("-l", "--selector", metavar="SEL", help="the logs of every pod this label selector matches")
    p.add_argument("--all-containers", action="store_true", help="the logs of every container of the pod(s)")
    p.add_argument("--prefix", action="store_true", help="start each line with [pod/NAME/CONTAINER]")
    p.add_argument("--max-log-requests", type=int, default=5, metavar="N",
                   help="with -l and -f: at most this many streams at once (default 5)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new output")
    p.add_argument("--tail", type=int, default=None, metavar="N",
                   help="only the last N lines (default all; 10 with -l)")
    p.add_argument("-p", "--previous", action="store_true", help="the previous, terminated attempt")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its RFC 3339 time")
    p.set_defaults(handler=cmd_logs)


class _Out:
    """stdout shared by concurrent streams: whole lines, each optionally prefixed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()


def _stream(client: Client, pod: str, params: dict[str, str], out: _Out, prefix: bytes) -> None:
    path = f"/api/v1/namespaces/{client.namespace}/pods/{pod}/log"
    try:
        with client.http.stream("GET", path, params=params, timeout=httpx.Timeout(30.0, read=None)) as r:
            if r.status_code >= 400:
                r.read()
                client._decode(r)
            if not prefix:
                for chunk in r.iter_raw():
                    out.write(chunk)
                return
            pending = b""
            for chunk in r.iter_raw():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if lines:
                    out.write(b"".join(prefix + line + b"\n" for line in lines))
            if pending:
                out.write(prefix + pending + b"\n")
    except httpx.TransportError as e:
        raise ConnectionFailed(client.server, e) from None


def _containers(pod: dict[str, Any]) -> list[str]:
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


def cmd_logs(args: argparse.Namespace) -> int:
    if args.container_arg and args.container and args.container_arg != args.container:
        raise output.CliError(f"only one of -c or an inline [CONTAINER] arg is allowed "
                              f"(got {args.container!r} and {args.container_arg!r})")
    if args.selector and args.pod:
        raise output.CliError("only one of a selector (-l) or a pod name may be given")
    if not args.selector and not args.pod:
        raise output.CliError("a pod name or a selector (-l) is needed: logs POD | logs -l app=web")
    container = args.container or args.container_arg
    params: dict[str, str] = {}
    for flag in ("follow", "previous", "timestamps"):
        if getattr(args, flag):
            params[flag] = "true"
    tail = args.tail if args.tail is not None else (10 if args.selector else -1)
    if tail >= 0:
        params["tailLines"] = str(tail)
    out = _Out()
    with output.connect(args) as client:
        if args.selector:
            listed = client.list(resolve("pods"), label_selector=args.selector).get("items") or []
            pods = sorted(listed, key=lambda p: str((p.get("metadata") or {}).get("name", "")))
            if not pods:
                print(f"No resources found in {client.namespace} namespace.", file=sys.stderr)
                return 0
        else:
            name = pod_for(client, args.pod)
            needs_pod = args.all_containers or not container
            pods = [client.get(resolve("pods"), name)] if needs_pod else [{"metadata": {"name": name}}]
        streams: list[tuple[str, str | None]] = []
        for pod in pods:
            pod_name_ = str((pod.get("metadata") or {}).get("name", ""))
            if args.all_containers:
                streams.extend((pod_name_, c) for c in _containers(pod))
            elif container:
                streams.append((pod_name_, container))
            else:  # kubectl's default container (the annotation's, else the first), said on stderr
                chosen, notice = default_container(pod)
                if notice:
                    print(notice, file=sys.stderr)
                streams.append((pod_name_, chosen))
        if args.follow and len(streams) > args.max_log_requests:
            raise output.CliError(f"you are attempting to follow {len(streams)} log streams, but maximum allowed "
                                  f"concurrency is {args.max_log_requests}, use --max-log-requests to increase "
                                  "the limit")

        def run(pod: str, c: str | None) -> None:
            shown = c or "*"
            prefix = f"[pod/{pod}/{shown}] ".encode() if args.prefix else b""
            _stream(client, pod, {**params, **({"container": c} if c else {})}, out, prefix)

        if not args.follow or len(streams) == 1:
            failed = False
            for pod, c in streams:
                try:
                    run(pod, c)
                except ConnectionFailed:
                    raise
                except ApiError as e:
                    if len(streams) == 1:
                        raise
                    output.report(e)
                    failed = True
            return 1 if failed else 0
        errors: list[BaseException] = []

        def follow(pod: str, c: str | None) -> None:
            try:
                run(pod, c)
            except Exception as exc:  # reported once all streams have ended
                errors.append(exc)

        threads = [threading.Thread(target=follow, args=s, daemon=True, name=f"logs-{s[0]}") for s in streams]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)
        for problem in errors:
            output.report(problem)
        return 1 if errors else 0
