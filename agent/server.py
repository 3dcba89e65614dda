"""The agent's HTTP endpoints: container logs and exec for the master, /metrics for Prometheus.

Two listeners, served by uvicorn on one event loop in a background thread (the agent's
own threads never wait on it):

* **kubelet port** (default 10250), HTTPS with client-certificate authentication:
  ``GET /containerLogs/{ns}/{pod}/{container}`` (``follow``, ``tailLines``,
  ``timestamps``, ``previous``, ``podUID``) streams a container's output;
  ``/exec/{ns}/{pod}/{container}`` (``command`` repeated, ``stdin``, ``tty``, ``podUID``)
  is a WebSocket speaking the Kubernetes channel protocol (``orchestrator.execproto``);
  ``/portForward/{ns}/{pod}`` (``port`` repeated or comma-separated, ``podUID``) is
  kubelet's WebSocket port-forward to the pod's address (``agent.portforward``).
  The TLS handshake requires a client certificate signed by the cluster CA (which the
  agent already holds, it verifies the master with it) and valid for client
  authentication. The CA signs exactly one such certificate, the master's proxy client
  certificate (see ``orchestrator.api.proxy``); the API serving certificate carries only
  the serverAuth usage and is refused. So only the master gets in, and the master does
  the per-user authorization (node identities may not read logs or exec). The serving
  certificate is the one the cluster CA signed for this node's name at join
  (``orchestrator.nodecerts``); the master checks both, as a Kubernetes API server with
  ``--kubelet-certificate-authority`` does. Without one (an agent driven by hand), a
  self-signed certificate is made at start, and the master will refuse to use it.
* **metrics port** (default 10249), plain HTTP: ``/metrics`` (``agent.metrics``) and
  ``/healthz``, without authentication, for Prometheus.

A port left at its default falls back to an ephemeral one when it is taken (several
agents or test clusters on one host); an explicitly chosen port that is taken is an
error. The real ports are published in the Node object (``status.daemonEndpoints.
kubeletEndpoint.Port`` and the ``dockyard.io/metrics-port`` annotation), which is where
the master looks them up.

Blocking engine calls (log reads, exec socket reads) run on dedicated threads; closing
the engine stream from the event loop ends them when a client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import shutil
import socket
import ssl
import struct
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from orchestrator import execproto
from orchestrator.errors import ApiError
from orchestrator.objects.files import write_private

from . import portforward
from .metrics import AgentMetrics
from .pods import SANDBOX_NAME
from .runtime import DockerRuntime, NotFound, RuntimeFailure

log = logging.getLogger("dockyard.agent.server")

DEFAULT_KUBELET_PORT = 10250
DEFAULT_METRICS_PORT = 10249
BLOCKING_WORKERS = 64
EXIT_CODE_WAIT = 5.0


# -- certificates ------------------------------------------------------------------------------


def self_signed_cert(name: str, addresses: list[str]) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) of a self-signed serving certificate for the agent, valid 1 year."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(name or "localhost"), x509.DNSName("localhost")]
    for a in addresses:
        with contextlib.suppress(ValueError):
            sans.append(x509.IPAddress(ipaddress.ip_address(a)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name or 'dockyard'}-agent")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def bind(host: str, port: int | None, default: int) -> socket.socket:
    """A listening socket on `port`; with port None the default, or any free port if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    want = default if port is None else port
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, want))
    except OSError:
        if port is not None:
            sock.close()
            raise
        log.warning("port %d is in use; listening on a free port instead", want)
        sock.bind((host, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


# -- handlers ------------------------------------------------------------------------------------


def _status(e: ApiError) -> Response:
    return Response(json.dumps(e.status()), status_code=e.code, media_type="application/json")


def _runtime_error(e: RuntimeFailure) -> ApiError:
    if isinstance(e, NotFound):
        return ApiError(404, "NotFound", e.message)
    return ApiError(500, "InternalError", e.message)


def read_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def demux(sock: socket.socket, emit: Callable[[int, bytes], None]) -> None:
    """Read the engine's multiplexed exec output (8-byte headers) until EOF."""
    while True:
        header = read_exactly(sock, 8)
        if header is None:
            return
        stream, size = header[0], struct.unpack(">I", header[4:8])[0]
        payload = read_exactly(sock, size) if size else b""
        if payload is None:
            return
        emit(execproto.STDERR if stream == 2 else execproto.STDOUT, payload)


class AgentServer:
    """The two listeners; `start()` binds and serves in a thread, `stop()` ends it."""

    def __init__(
        self,
        runtime: DockerRuntime,
        ca_pem: bytes,
        metrics: AgentMetrics | None = None,
        host: str = "0.0.0.0",
        kubelet_port: int | None = None,
        metrics_port: int | None = None,
        node_name: str = "",
        node_ip: str = "",
        serving_cert: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.runtime = runtime
        self.serving_cert = serving_cert
        self.ca_pem = ca_pem
        self.metrics = metrics or AgentMetrics(runtime)
        self.host = host
        self.node_name = node_name
        self.node_ip = node_ip
        self._want_kubelet = kubelet_port
        self._want_metrics = metrics_port
        self.kubelet_port = 0
        self.metrics_port = 0
        self._pool = ThreadPoolExecutor(max_workers=BLOCKING_WORKERS, thread_name_prefix="dockyard-agent-io")
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        self.secure_app = Starlette(routes=[
            Route("/containerLogs/{namespace}/{pod}/{container}", self.container_logs),
            WebSocketRoute("/exec/{namespace}/{pod}/{container}", self.exec_ws),
            WebSocketRoute("/portForward/{namespace}/{pod}", self.portforward_ws),
            Route("/healthz", self.healthz),
        ])
        self.metrics_app = Starlette(routes=[
            Route("/metrics", self.metrics_endpoint),
            Route("/healthz", self.healthz),
        ])

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="dockyard-agent-tls-"))
        self._dir.chmod(0o700)
        if self.serving_cert is not None:
            cert, key = self.serving_cert
        else:
            log.warning("no CA-signed serving certificate; the master will refuse to proxy logs/exec to this agent")
            cert, key = self_signed_cert(self.node_name, [a for a in (self.node_ip, "127.0.0.1") if a])
        for fname, data in (("agent.crt", cert), ("agent.key", key), ("ca.crt", self.ca_pem)):
            write_private(self._dir / fname, data)
        ksock = bind(self.host, self._want_kubelet, DEFAULT_KUBELET_PORT)
        try:
            msock = bind(self.host, self._want_metrics, DEFAULT_METRICS_PORT)
        except OSError:
            ksock.close()
            raise
        self.kubelet_port = int(ksock.getsockname()[1])
        self.metrics_port = int(msock.getsockname()[1])
        common: dict[str, Any] = {"log_config": None, "access_log": False, "lifespan": "off",
                                  "timeout_graceful_shutdown": 1, "ws_max_size": 16 * 2**20}
        secure = uvicorn.Config(
            self.secure_app,
            ssl_certfile=str(self._dir / "agent.crt"),
            ssl_keyfile=str(self._dir / "agent.key"),
            ssl_ca_certs=str(self._dir / "ca.crt"),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
            ws_ping_interval=None,
            **common,
        )
        plain = uvicorn.Config(self.metrics_app, **common)
        self._servers = [uvicorn.Server(secure), uvicorn.Server(plain)]
        started = threading.Event()

        async def serve() -> None:
            tasks = [
                asyncio.create_task(self._servers[0].serve(sockets=[ksock])),
                asyncio.create_task(self._servers[1].serve(sockets=[msock])),
            ]
            while not all(s.started for s in self._servers) and not any(t.done() for t in tasks):
                await asyncio.sleep(0.02)
            started.set()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), name="dockyard-agent-http", daemon=True)
        self._thread.start()
        if started.wait(10):
            # the TLS context holds the key now: no copy of it stays on disk (nor after a kill -9)
            shutil.rmtree(self._dir, ignore_errors=True)
        log.info("agent endpoints: https on port %d (logs, exec), http on port %d (metrics)",
                 self.kubelet_port, self.metrics_port)

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- plain endpoints ------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics_endpoint(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(self._pool, self.metrics.exposition)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- logs -----------------------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def container_logs(self, request: Request) -> Response:
        p, q = request.path_params, request.query_params
        try:
            tail = int(q["tailLines"]) if q.get("tailLines") else None
        except ValueError:
            return _status(ApiError(400, "BadRequest", f"invalid tailLines {q.get('tailLines')!r}"))
        follow = execproto.truthy(q.get("follow"))
        try:
            cid = await self._blocking(self.runtime.find_container, p["namespace"], p["pod"], p["container"],
                                       q.get("podUID") or None, execproto.truthy(q.get("previous")))
            stream = await self._blocking(self.runtime.log_stream, cid, follow, tail,
                                          execproto.truthy(q.get("timestamps")))
        except RuntimeFailure as e:
            return _status(_runtime_error(e))

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await self._blocking(next, stream, None)
                    if chunk is None:
                        return
                    yield chunk
            finally:
                with contextlib.suppress(Exception):
                    stream.close()

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8")

    # -- exec -----------------------------------------------------------------------------------

    async def exec_ws(self, ws: WebSocket) -> None:
        p, q = ws.path_params, ws.query_params
        proto = execproto.choose_subprotocol(ws.scope.get("subprotocols") or [])
        command = q.getlist("command")
        want_stdin, tty = execproto.truthy(q.get("stdin")), execproto.truthy(q.get("tty"))
        if proto is None:
            await ws.send_denial_response(_status(ApiError(
                400, "BadRequest", f"one of the subprotocols {', '.join(execproto.SUBPROTOCOLS)} is required")))
            return
        if not command:
            await ws.send_denial_response(_status(ApiError(400, "BadRequest", "you must specify at least 1 command")))
            return
        try:
            cid = await self._blocking(self.runtime.find_container, p["namespace"], p["pod"], p["container"],
                                       q.get("podUID") or None, False)
            exec_id, handle = await self._blocking(self.runtime.exec_start, cid, command, want_stdin, tty)
        except RuntimeFailure as e:
            await ws.send_denial_response(_status(_runtime_error(e)))
            return
        await ws.accept(subprotocol=proto)
        raw: socket.socket = getattr(handle, "_sock", handle)
        try:
            await self._exec_session(ws, proto, exec_id, raw, want_stdin, tty)
        except (WebSocketDisconnect, WebSocketDisconnected):
            log.debug("exec client of %s/%s went away before the command's status", p["namespace"], p["pod"])
        finally:
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(Exception):
                handle.close()

    async def _exec_session(
        self, ws: WebSocket, proto: str, exec_id: str, raw: socket.socket, want_stdin: bool, tty: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=256)
        finished = threading.Event()

        def emit(channel: int, data: bytes) -> None:
            fut = asyncio.run_coroutine_threadsafe(out.put((channel, data)), loop)
            while True:  # wait for room in the queue (back-pressure), unless the session is over
                try:
                    fut.result(timeout=0.5)
                    return
                except TimeoutError:
                    if finished.is_set():
                        fut.cancel()
                        raise RuntimeError("exec session ended") from None

        def pump() -> None:
            try:
                if tty:
                    while chunk := raw.recv(65536):
                        emit(execproto.STDOUT, chunk)
                else:
                    demux(raw, emit)
            except (OSError, RuntimeError):
                pass
            finally:
                with contextlib.suppress(RuntimeError):
                    asyncio.run_coroutine_threadsafe(out.put(None), loop)

        threading.Thread(target=pump, name="dockyard-exec-pump", daemon=True).start()

        async def from_client() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    raise ConnectionResetError("client went away")
                channel, payload = execproto.split(msg.get("bytes") or msg.get("text") or b"")
                if channel == execproto.STDIN and want_stdin and payload:
                    await self._blocking(raw.sendall, payload)
                elif channel == execproto.RESIZE and payload:
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        size = json.loads(payload)
                        await self._blocking(self.runtime.exec_resize, exec_id,
                                             int(size.get("Width", 0)), int(size.get("Height", 0)))
                elif channel == execproto.CLOSE and proto == execproto.V5 and payload[:1] == bytes([execproto.STDIN]):
                    with contextlib.suppress(OSError):
                        raw.shutdown(socket.SHUT_WR)

        reader = asyncio.create_task(from_client())
        try:
            while True:
                getter = asyncio.create_task(out.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return  # the client left: the finally of exec_ws closes the engine socket
                item = getter.result()
                if item is None:
                    break
                await ws.send_bytes(execproto.frame(*item))
            code = await self._exit_code(exec_id)
            status = (execproto.exit_status(code) if code is not None
                      else execproto.error_status("could not determine the exit code of the command"))
            await ws.send_bytes(execproto.encode_status(status))
            await ws.close(1000)
        finally:
            finished.set()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    # -- port-forward ---------------------------------------------------------------------------

    def _pod_target(self, namespace: str, pod: str, uid: str | None) -> portforward.PodTarget:
        """The pod's sandbox and its address (the node's loopback for hostNetwork pods)."""
        sandbox = self.runtime.find_container(namespace, pod, SANDBOX_NAME, uid, False)
        return portforward.PodTarget(sandbox, self.runtime.container_ip(sandbox) or "127.0.0.1")

    async def portforward_ws(self, ws: WebSocket) -> None:
        p, q = ws.path_params, ws.query_params
        proto = execproto.choose_portforward_subprotocol(ws.scope.get("subprotocols") or [])
        if proto is None:
            await ws.send_denial_response(_status(ApiError(
                400, "BadRequest",
                f"one of the subprotocols {', '.join(execproto.PORTFORWARD_SUBPROTOCOLS)} is required")))
            return
        try:
            ports = execproto.parse_ports(q.getlist(execproto.PORT_HEADER))
        except ValueError as e:
            await ws.send_denial_response(_status(ApiError(400, "BadRequest", str(e))))
            return
        try:
            target = await self._blocking(self._pod_target, p["namespace"], p["pod"], q.get("podUID") or None)
        except RuntimeFailure as e:
            await ws.send_denial_response(_status(_runtime_error(e)))
            return
        await ws.accept(subprotocol=proto or None)
        try:
            await portforward.serve(ws, proto, ports, target)
        except (WebSocketDisconnect, WebSocketDisconnected):
            log.debug("port-forward client of %s/%s went away", p["namespace"], p["pod"])

    async def _exit_code(self, exec_id: str) -> int | None:
        deadline = asyncio.get_running_loop().time() + EXIT_CODE_WAIT
        while True:
            try:
                code = await self._blocking(self.runtime.exec_exit_code, exec_id)
            except RuntimeFailure:
                return None
            if code is not None or asyncio.get_running_loop().time() > deadline:
                return code
            await asyncio.sleep(0.02)


def start_agent_server(agent: Any, stop: threading.Event) -> AgentServer:
    """Start the endpoints of a running `agent.main.Agent` and stop them when `stop` is set.

    Publishes the bound ports through the agent's NodeManager (registration comes next).
    """
    node = agent.node
    metrics = AgentMetrics(agent.runtime, allocatable=lambda: dict((node.last_status or {}).get("allocatable") or {}))
    server = AgentServer(
        agent.runtime,
        agent.client.ca_pem or b"",
        metrics,
        host=getattr(agent, "listen_address", "0.0.0.0"),
        kubelet_port=getattr(agent, "kubelet_port", None),
        metrics_port=getattr(agent, "metrics_port", None),
        node_name=agent.node_name,
        node_ip=agent.node_ip,
        serving_cert=getattr(agent, "serving_cert", None),
    )
    server.start()
    node.kubelet_port = server.kubelet_port
    node.metrics_port = server.metrics_port

    def stopper() -> None:
        stop.wait()
        server.stop()

    threading.Thread(target=stopper, name="dockyard-agent-http-stop", daemon=True).start()
    return server
