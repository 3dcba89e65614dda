"""`dockyard port-forward TYPE/NAME [LOCAL:]REMOTE ... [--address ADDR]`: local ports to a pod's ports.

Like kubectl: the target is ``pod/NAME`` (or ``NAME``), ``deploy/NAME`` (also ``rs/``,
``sts/``, ``ds/``, ``job/``) or ``svc/NAME``, resolved here, client side, to one running
pod of the object's selector (running and ready pods first, then the oldest). For a
Service, REMOTE is a *service* port (number or name) and is translated to the pod's
target port; for pods, REMOTE may name a container port. ``8080`` means ``8080:8080``,
``:80`` (or ``0:80``) picks a free local port. ``--address`` (repeatable or
comma-separated, default ``localhost`` = 127.0.0.1 and ::1) is where to listen.

Prints ``Forwarding from 127.0.0.1:LOCAL -> REMOTE`` per listener, ``Handling connection
for LOCAL`` per connection, and runs until Ctrl-C or SIGTERM (exit 0). Each local
connection is one WebSocket to ``pods/NAME/portforward?ports=REMOTE`` with subprotocol
``v4.channel.k8s.io`` (``orchestrator.execproto``), with the kubeconfig's token and CA;
the local end's half-close is passed on as ``[255, 0]``. An error for one connection
(nothing listens on the port in the pod) is printed like kubectl's, ``an error occurred
forwarding LOCAL -> REMOTE: error forwarding port ...``, and the forward goes on serving
the next connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .. import execproto
from ..objects.kinds import resolve
from ..objects.selectors import selector_to_string
from . import output
from .options import seconds

if TYPE_CHECKING:  # the API client is imported when the command runs, not when the parser is built
    from ..client import Client

CHUNK = 32 * 1024
POD_KINDS = ("pod", "pods", "po")
WORKLOAD_KINDS = {
    "deploy": "deployments", "deployment": "deployments", "deployments": "deployments",
    "rs": "replicasets", "replicaset": "replicasets", "replicasets": "replicasets",
    "sts": "statefulsets", "statefulset": "statefulsets", "statefulsets": "statefulsets",
    "ds": "daemonsets", "daemonset": "daemonsets", "daemonsets": "daemonsets",
    "job": "jobs", "jobs": "jobs",
}
SERVICE_KINDS = ("svc", "service", "services")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TYPE/NAME", help="pod/NAME (or NAME), deploy/NAME, svc/NAME, ...")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE",
                   help="local port (empty or 0: a free one) and the pod's (or service's) port, number or name")
    p.add_argument("--address", action="append", default=None, metavar="ADDR",
                   help="addresses to listen on, comma-separated or repeated (default localhost: 127.0.0.1 and ::1)")
    p.add_argument("--pod-running-timeout", type=seconds, default=60.0, metavar="S",
                   help="how long to wait for a running pod of the target (default 60s)")


# -- arguments ------------------------------------------------------------------------------------


def parse_port_specs(values: list[str]) -> list[tuple[str, str]]:
    """(local, remote) strings; local "" means "the same as remote" and "0" a free port."""
    specs = []
    for value in values:
        local, sep, remote = value.partition(":")
        if not sep:
            local, remote = "", value
        elif local == "":
            local = "0"
        if not remote:
            raise output.CliError(f"invalid port format {value!r}: remote port is missing")
        if local and (not local.isdigit() or int(local) > 65535):
            raise output.CliError(f"invalid local port {local!r} in {value!r}")
        if remote.isdigit() and not 0 < int(remote) < 65536:
            raise output.CliError(f"remote port must be > 0 and < 65536, got {remote!r}")
        specs.append((local, remote))
    return specs


def listen_addresses(values: list[str] | None) -> list[str]:
    addresses: list[str] = []
    for value in values or ["localhost"]:
        for a in value.split(","):
            a = a.strip()
            if a == "localhost":
                addresses += ["127.0.0.1", "::1"]
            elif a:
                addresses.append(a)
    return list(dict.fromkeys(addresses))


# -- the target pod -------------------------------------------------------------------------------


def _pod_sort_key(pod: dict[str, Any]) -> tuple[int, int, str]:
    status = pod.get("status") or {}
    running = status.get("phase") == "Running"
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return (0 if running else 1, 0 if ready else 1, str(pod["metadata"].get("creationTimestamp") or ""))


def first_pod(client: Client, namespace: str, selector: str, what: str, timeout: float) -> dict[str, Any]:
    """A pod of the selector, running ones first; waits up to `timeout` for one to exist."""
    deadline = time.monotonic() + timeout
    while True:
        pods = [p for p in client.list(resolve("pods"), namespace, label_selector=selector)["items"]
                if not p["metadata"].get("deletionTimestamp")]
        if pods:
            return sorted(pods, key=_pod_sort_key)[0]
        if time.monotonic() >= deadline:
            raise output.CliError(f"timed out waiting for a pod of {what}")
        time.sleep(1.0)


def container_port(pod: dict[str, Any], name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for port in c.get("ports") or []:
            if port.get("name") == name and port.get("containerPort"):
                return int(port["containerPort"])
    return None


def service_target_port(svc: dict[str, Any], pod: dict[str, Any], remote: str) -> int:
    """The pod port behind a service port (number or name), as kubectl translates it."""
    name = svc["metadata"]["name"]
    ports = (svc.get("spec") or {}).get("ports") or []
    if remote.isdigit():
        entry = next((p for p in ports if int(p.get("port") or 0) == int(remote)), None)
        if entry is None:
            raise output.CliError(f"Service {name} does not have a service port {remote}")
    else:
        entry = next((p for p in ports if p.get("name") == remote), None)
        if entry is None:
            raise output.CliError(f"Service '{name}' does not have a named port '{remote}'")
    target = entry.get("targetPort")
    if target is None or target == 0 or target == "":
        return int(entry["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    found = container_port(pod, str(target))
    if found is None:
        raise output.CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{target}'")
    return found


def resolve_forward(client: Client, namespace: str, target: str, specs: list[tuple[str, str]],
                    timeout: float) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """(pod, [(local, remote pod port)]) for the target, like kubectl resolves it."""
    kind, sep, name = target.partition("/")
    if not sep:
        kind, name = "pod", target
    kind = kind.lower()
    svc: dict[str, Any] | None = None
    if kind in POD_KINDS:
        pod = client.get(resolve("pods"), name, namespace)
    elif kind in WORKLOAD_KINDS or kind in SERVICE_KINDS:
        if kind in SERVICE_KINDS:
            svc = client.get(resolve("services"), name, namespace)
            selector = ",".join(f"{k}={v}" for k, v in sorted(((svc.get("spec") or {}).get("selector") or {}).items()))
            if not selector:
                raise output.CliError(f"cannot attach to *v1.Service: invalid service '{name}': Service is defined "
                                      "without a selector")
        else:
            obj = client.get(resolve(WORKLOAD_KINDS[kind]), name, namespace)
            selector = selector_to_string((obj.get("spec") or {}).get("selector"))
        pod = first_pod(client, namespace, selector, f"{kind}/{name}", timeout)
    else:
        raise output.CliError(f"cannot port-forward to {kind!r}: use pod/, deploy/ or svc/")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        raise output.CliError(f"unable to forward port because pod is not running. Current status={phase}")
    pairs: list[tuple[int, int]] = []
    for local, remote in specs:
        if svc is not None:
            port = service_target_port(svc, pod, remote)
            default_local = int(remote) if remote.isdigit() else port
        elif remote.isdigit():
            port = default_local = int(remote)
        else:
            found = container_port(pod, remote)
            if found is None:
                raise output.CliError(f"Pod '{pod['metadata']['name']}' does not have a named port '{remote}'")
            port = default_local = found
        pairs.append((int(local) if local else default_local, port))
    return pod, pairs


# -- forwarding -----------------------------------------------------------------------------------


class Forwarder:
    """The local listeners of one `dockyard port-forward`, and a WebSocket per connection."""

    def __init__(self, client: Client, namespace: str, pod: str) -> None:
        from ..client import ssl_context

        base = client.server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.base = f"{base}/api/v1/namespaces/{namespace}/pods/{pod}/portforward"
        self.ssl = ssl_context(client.ca_pem) if base.startswith("wss://") else None
        self.headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}

    async def listen(self, pairs: list[tuple[int, int]], addresses: list[str]) -> list[asyncio.Server]:
        servers: list[asyncio.Server] = []
        for local, remote in pairs:
            bound, problems = 0, []
            port = [local]  # a free port, once the first listener picked it

            def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter, port: list[int] = port,
                      remote: int = remote) -> Any:
                return self.connection(r, w, port[0], remote)

            for address in addresses:
                try:
                    server = await asyncio.start_server(serve, address, local)
                except OSError as e:
                    problems.append(f"unable to create listener: Error listen tcp{'6' if ':' in address else '4'} "
                                    f"{_hostport(address, local)}: {e.strerror or e}")
                    continue
                if local == 0:
                    local = port[0] = int(server.sockets[0].getsockname()[1])  # the same on every address
                servers.append(server)
                bound += 1
                print(f"Forwarding from {_hostport(address, local)} -> {remote}", flush=True)
            if not bound:
                for s in servers:
                    s.close()
                raise output.CliError(f"unable to listen on any of the requested ports: [{local}:{remote}] "
                                      f"({'; '.join(problems)})")
        return servers

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         local: int, remote: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        from websockets.typing import Subprotocol

        print(f"Handling connection for {local}", flush=True)
        url = f"{self.base}?{urlencode({execproto.PORTS_PARAM: str(remote)})}"
        try:
            ws = await connect(url, ssl=self.ssl, additional_headers=self.headers,
                               subprotocols=[Subprotocol(execproto.V4)], max_size=None, compression=None,
                               open_timeout=30, ping_interval=None, user_agent_header="dockyard")
        except InvalidStatus as e:
            _problem(local, remote, _status_text(e.response.body or b"", e.response.status_code))
            writer.close()
            return
        except (OSError, TimeoutError, WebSocketException) as e:
            _problem(local, remote, f"cannot reach the API server: {e}")
            writer.close()
            return

        async def upload() -> None:
            with contextlib.suppress(OSError, ConnectionClosed):
                while data := await reader.read(CHUNK):
                    await ws.send(execproto.frame(execproto.data_channel(0), data))
                await ws.send(bytes([execproto.CLOSE, execproto.data_channel(0)]))

        uploader = asyncio.create_task(upload())
        error = b""
        seen: set[int] = set()
        try:
            async for message in ws:
                channel, payload = execproto.split(message)
                if channel not in seen:  # each channel's first message is the port number
                    seen.add(channel)
                    continue
                if channel == execproto.data_channel(0):
                    writer.write(payload)
                    await writer.drain()
                elif channel == execproto.error_channel(0):
                    error += payload
        except (ConnectionClosed, OSError):
            pass
        finally:
            uploader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await uploader
            writer.close()
            with contextlib.suppress(Exception):
                await ws.close()
        if error:
            _problem(local, remote, error.decode(errors="replace"))


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _problem(local: int, remote: int, message: str) -> None:
    print(f"error: an error occurred forwarding {local} -> {remote}: {message}", file=sys.stderr, flush=True)


def _status_text(body: bytes | bytearray, code: int) -> str:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except ValueError:
        pass
    return body.decode(errors="replace").strip()[:200] or f"HTTP {code}"


async def forward(client: Client, namespace: str, pod: str, pairs: list[tuple[int, int]],
                  addresses: list[str], stop: asyncio.Event) -> None:
    """Listen and forward until `stop` is set."""
    servers = await Forwarder(client, namespace, pod).listen(pairs, addresses)
    try:
        await stop.wait()
    finally:
        for s in servers:
            s.close()


def main_port_forward(args: argparse.Namespace) -> int:
    specs = parse_port_specs(args.ports)
    addresses = listen_addresses(args.address)
    with output.connect(args) as client:
        pod, pairs = resolve_forward(client, client.namespace, args.target, specs, args.pod_running_timeout)

        async def run() -> None:
            stop = asyncio.Event()
            if threading.current_thread() is threading.main_thread():
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
            await forward(client, client.namespace, pod["metadata"]["name"], pairs, addresses, stop)

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            pass
    return 0


