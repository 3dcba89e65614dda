"""The master's proxy to node agents: pods/log, pods/exec and a metrics.k8s.io view.

Routes (added ahead of the API's catch-all by `routes(api, pki)`):

* ``GET /api/v1/namespaces/{ns}/pods/{name}/log`` (``container``, ``follow``,
  ``tailLines``, ``previous``, ``timestamps``): streams ``text/plain`` from the agent.
* ``/api/v1/namespaces/{ns}/pods/{name}/exec`` (``command`` repeated, ``container``,
  ``stdin``, ``stdout``, ``stderr``, ``tty``): a WebSocket with subprotocol
  ``v5.channel.k8s.io`` or ``v4.channel.k8s.io`` (``orchestrator.execproto``), as kubectl
  speaks it. The master opens the same kind of WebSocket to the agent and relays messages
  unchanged both ways, so the final channel-3 Status (the exit code) comes from the
  agent. ``dockyard exec`` uses this same protocol; there is no second one. A plain HTTP
  request (no upgrade) gets 400, like the SPDY-less Kubernetes answer.
* ``/api/v1/namespaces/{ns}/pods/{name}/portforward``: a WebSocket. With subprotocol
  ``v4.channel.k8s.io`` (or ``v4.base64.channel.k8s.io``, ``portforward.k8s.io``, none) and
  ``ports`` (the official Python client) it is relayed unchanged to the agent's port-forward
  (``agent.portforward``); with ``SPDY/3.1+portforward.k8s.io`` (kubectl) the master runs
  the SPDY session itself and opens one agent WebSocket per stream pair
  (``orchestrator.api.portforward``). A plain HTTP request (kubectl's fallback upgrade to
  ``SPDY/3.1``) gets 400 naming the WebSocket subprotocols.
* ``GET /apis/metrics.k8s.io/v1beta1/[namespaces/{ns}/]pods[/{name}]`` and
  ``/apis/metrics.k8s.io/v1beta1/nodes[/{name}]``: PodMetrics / NodeMetrics filled by
  scraping the agents' plain-HTTP ``/metrics`` (node InternalIP and the
  ``dockyard.io/metrics-port`` annotation) on each request. Nothing is stored.

Where a node is reached (`node_address`, `kubelet_port`, `metrics_port`) is
`orchestrator.objects.nodeaddr` and reading a scrape (`parse_scrape`) is
`orchestrator.objects.scrape`; the names remain importable from this module.

Authentication and authorization are the API's own (`api.authn`, `auth.authorize`):
``get pods/log``, ``create pods/exec`` and ``create pods/portforward``; node identities may
do none of them (see
`auth._node_allowed`).

Master → agent: HTTPS to ``InternalIP:status.daemonEndpoints.kubeletEndpoint.Port``
with a client certificate the master issues itself at start from the cluster CA
(`issue_proxy_client_cert`, written to ``pki/proxy-client.{crt,key}``): EKU clientAuth,
CN ``dockyard-master-proxy``, O ``system:masters``. Agents require a client certificate
signed by the cluster CA and valid for client authentication; no other such certificate is
ever issued, so that is how an agent knows the caller is the master. The master in turn
verifies the agent's serving certificate against the cluster CA with the *node name* as the
TLS server name (``orchestrator.nodecerts``; the equivalent of an API server's
``--kubelet-certificate-authority``): the address comes from node-written status, the name
from the pod's binding, so a node that publishes another host's address gets a failed
handshake, not the master's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import errors, execproto
from ..errors import ApiError
from ..objects.files import write_private
from ..objects.kinds import by_kind
from ..objects.nodeaddr import METRICS_PORT_ANNOTATION as METRICS_PORT_ANNOTATION
from ..objects.nodeaddr import kubelet_port, metrics_port, node_address
from ..objects.scrape import parse_scrape
from ..objects.timefmt import rfc3339
from ..registry import dumps
from . import auth
from .portforward import OpenFailed, SpdySession

if TYPE_CHECKING:
    from ..pki import ClusterPKI
    from .app import ApiServer

log = logging.getLogger("dockyard.api.proxy")

POD = by_kind("v1", "Pod")
NODE = by_kind("v1", "Node")
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = f"{METRICS_GROUP}/v1beta1"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
PROXY_CLIENT_CN = "dockyard-master-proxy"
SCRAPE_TIMEOUT = 5.0
METRICS_WINDOW = "10s"


# -- the master's client certificate -----------------------------------------------------------


def issue_proxy_client_cert(
    ca_cert_pem: bytes, ca_key_pem: bytes, validity: dt.timedelta = dt.timedelta(days=365)
) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM): the master's client certificate for agents, signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, auth.MASTERS),
            x509.NameAttribute(NameOID.COMMON_NAME, PROXY_CLIENT_CN),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_proxy_client_cert(pki_dir: Path, ca_cert_pem: bytes, ca_key_pem: bytes) -> tuple[Path, Path]:
    """Issue a fresh client certificate into `pki_dir` (mode 0600); returns (cert, key) paths."""
    cert_pem, key_pem = issue_proxy_client_cert(ca_cert_pem, ca_key_pem)
    paths = (pki_dir / "proxy-client.crt", pki_dir / "proxy-client.key")
    for path, data in zip(paths, (cert_pem, key_pem), strict=True):
        write_private(path, data)
    return paths


def agent_ssl_context(cert_path: Path, key_path: Path, ca_pem: bytes) -> ssl.SSLContext:
    """The master's TLS client side towards agents: its client certificate, and agents'
    serving certificates verified against the cluster CA for the expected node name (pass
    it as the server name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx


# -- pure helpers --------------------------------------------------------------------------------


def pick_container(pod: dict[str, Any], requested: str | None) -> str:
    """The container a log/exec request means; raises ApiError 400 like Kubernetes."""
    name = pod.get("metadata", {}).get("name", "")
    spec = pod.get("spec") or {}
    names = [c.get("name") for c in spec.get("containers") or []]
    init = [c.get("name") for c in spec.get("initContainers") or []]
    if requested:
        if requested in names or requested in init:
            return requested
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    default = (pod.get("metadata", {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if default in names:
        return str(default)
    if len(names) == 1:
        return str(names[0])
    choices = " ".join(str(n) for n in names)
    message = f"a container name must be specified for pod {name}, choose one of: [{choices}]"
    if init:
        message += " or one of the init containers: [" + " ".join(str(n) for n in init) + "]"
    raise errors.bad_request(message)


def check_exec_phase(pod: dict[str, Any]) -> None:
    """A completed pod has no process to exec into: kube-apiserver's 400, before any node is asked."""
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")


def format_cpu(cores: float) -> str:
    return f"{max(0, round(cores * 1e9))}n"


def format_memory(n: float) -> str:
    return f"{max(0, round(n / 1024))}Ki"


# -- the proxy -----------------------------------------------------------------------------------


class AgentProxy:
    def __init__(self, api: ApiServer, cert_path: Path, key_path: Path) -> None:
        self.api = api
        self.registry = api.registry
        self.ssl = agent_ssl_context(cert_path, key_path, api.ca_pem)
        self._http: httpx.AsyncClient | None = None
        self._plain: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(verify=self.ssl, timeout=httpx.Timeout(10.0, read=None))
        return self._http

    @property
    def plain(self) -> httpx.AsyncClient:
        if self._plain is None:
            self._plain = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT)
        return self._plain

    # -- shared steps -------------------------------------------------------------------------

    def _authorize(self, header: str | None, verb: str, resource: str, namespace: str | None,
                   name: str | None, sub: str = "", group: str = "") -> auth.User:
        user = self.api.authn.authenticate(header)
        if user is None:
            raise errors.unauthorized()
        req = auth.Request(verb=verb, group=group, resource=resource, namespace=namespace, name=name,
                           subresource=sub)
        if not self.api.authz.authorize(user, req):
            what = f"{resource}/{sub}" if sub else resource
            raise errors.forbidden(user.name, verb, what, name or "")
        return user

    def _target(self, namespace: str, name: str, container: str | None,
                pick: bool = True) -> tuple[dict[str, Any], str, str, str]:
        """(pod, container, agent host:port, node name) or ApiError; the container is "" when
        not `pick`ed (port-forward is to the pod)."""
        pod = self.registry.try_get(POD, namespace, name)
        if pod is None:
            raise errors.not_found("pods", name)
        chosen = pick_container(pod, container) if pick else ""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        node = self.registry.try_get(NODE, None, node_name)
        if node is None:
            raise ApiError(503, "ServiceUnavailable", f"node {node_name} of pod {name} is not registered")
        host, port = node_address(node), kubelet_port(node)
        if not host or not port:
            raise ApiError(503, "ServiceUnavailable",
                           f"node {node_name} publishes no agent endpoint (is its agent up to date?)")
        if ":" in host:
            host = f"[{host}]"
        return pod, chosen, f"{host}:{port}", str(node_name)

    # -- logs ---------------------------------------------------------------------------------

    async def logs(self, request: Request) -> Response:
        try:
            return await self._logs(request)
        except ApiError as e:
            return _status(e)

    async def _logs(self, request: Request) -> Response:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        q = request.query_params
        self._authorize(request.headers.get("authorization"), "get", "pods", ns, name, "log")
        pod, container, where, node_name = self._target(ns, name, q.get("container"))
        params: dict[str, str] = {"podUID": str(pod["metadata"].get("uid", ""))}
        for key in ("follow", "previous", "timestamps"):
            if execproto.truthy(q.get(key)):
                params[key] = "true"
        if q.get("tailLines"):
            try:
                params["tailLines"] = str(max(0, int(q["tailLines"])))
            except ValueError:
                raise errors.bad_request(f"invalid tailLines {q['tailLines']!r}") from None
        url = f"https://{where}/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
        try:
            req = self.http.build_request("GET", url, params=params, extensions={"sni_hostname": node_name})
            upstream = await self.http.send(req, stream=True)
        except httpx.HTTPError as e:
            raise ApiError(502, "ServiceUnavailable", f"cannot reach the agent of pod {name} at {where}: {e}") from None
        if upstream.status_code >= 400:
            body = await upstream.aread()
            await upstream.aclose()
            return _relay_error(body, upstream.status_code)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                pass
            finally:
                await upstream.aclose()

        return StreamingResponse(stream(), media_type="text/plain", headers={"Transfer-Encoding": "chunked"})

    # -- exec ---------------------------------------------------------------------------------

    async def exec_http(self, request: Request) -> Response:
        return self._upgrade_required(request, "exec", (execproto.V5, execproto.V4))

    def _upgrade_required(self, request: Request, subresource: str, protocols: tuple[str, str]) -> Response:
        """A plain HTTP request to a streaming subresource: 400 naming the WebSocket
        subprotocols to use, once the caller is known to be allowed at all."""
        try:
            self._authorize(request.headers.get("authorization"), "create", "pods",
                            request.path_params["namespace"], request.path_params["name"], subresource)
        except ApiError as e:
            return _status(e)
        return _status(ApiError(400, "BadRequest",
                                f"Upgrade request required: use a WebSocket with subprotocol {protocols[0]} "
                                f"or {protocols[1]}"))

    async def exec_ws(self, ws: WebSocket) -> None:
        from websockets.asyncio.client import connect

        ns, name = ws.path_params["namespace"], ws.path_params["name"]
        q = ws.query_params
        try:
            self._authorize(ws.headers.get("authorization"), "create", "pods", ns, name, "exec")
            proto = execproto.choose_subprotocol(ws.scope.get("subprotocols") or [])
            if proto is None:
                raise errors.bad_request(f"one of the subprotocols {', '.join(execproto.SUBPROTOCOLS)} is required")
            command = q.getlist("command")
            if not command:
                raise errors.bad_request("you must specify at least 1 command")
            pod, container, where, node_name = self._target(ns, name, q.get("container"))
            check_exec_phase(pod)
        except ApiError as e:
            await _deny(ws, e)
            return
        params: list[tuple[str, str]] = [("command", c) for c in command]
        params += [("podUID", str(pod["metadata"].get("uid", "")))]
        for key in ("stdin", "tty"):
            if execproto.truthy(q.get(key)):
                params.append((key, "true"))
        url = f"wss://{where}/exec/{quote(ns)}/{quote(name)}/{quote(container)}?{urlencode(params)}"
        upstream = await _open_upstream(ws, name, where, connect(
            url, ssl=self.ssl, server_hostname=node_name, subprotocols=[proto],  # type: ignore[list-item]
            open_timeout=10, max_size=None, compression=None, ping_interval=None))
        if upstream is None:
            return
        try:
            await ws.accept(subprotocol=upstream.subprotocol or proto)
            await _relay(ws, upstream)
        finally:
            await upstream.close()

    # -- port-forward -------------------------------------------------------------------------

    async def portforward_http(self, request: Request) -> Response:
        return self._upgrade_required(request, "portforward", (execproto.SPDY_TUNNEL, execproto.V4))

    async def portforward_ws(self, ws: WebSocket) -> None:
        from websockets.asyncio.client import connect

        ns, name = ws.path_params["namespace"], ws.path_params["name"]
        q = ws.query_params
        offered = list(ws.scope.get("subprotocols") or [])
        tunnel = execproto.SPDY_TUNNEL in offered
        try:
            self._authorize(ws.headers.get("authorization"), "create", "pods", ns, name, "portforward")
            proto = "" if tunnel else execproto.choose_portforward_subprotocol(offered)
            if proto is None:
                raise errors.bad_request("one of the subprotocols "
                                         f"{', '.join((execproto.SPDY_TUNNEL, *execproto.PORTFORWARD_SUBPROTOCOLS))}"
                                         " is required")
            ports: list[int] = []
            if not tunnel:
                try:
                    ports = execproto.parse_ports(q.getlist(execproto.PORTS_PARAM) or q.getlist(execproto.PORT_HEADER),
                                                  execproto.PORTS_PARAM)
                except ValueError as e:
                    raise errors.bad_request(str(e)) from None
            pod, _, where, node_name = self._target(ns, name, None, pick=False)
        except ApiError as e:
            await _deny(ws, e)
            return
        uid = str(pod["metadata"].get("uid", ""))
        base = f"wss://{where}/portForward/{quote(ns)}/{quote(name)}"

        async def open_agent(ports: list[int], subprotocol: str) -> Any:
            params = [("podUID", uid)] + [(execproto.PORT_HEADER, str(p)) for p in ports]
            return await connect(f"{base}?{urlencode(params)}", ssl=self.ssl, server_hostname=node_name,
                                 subprotocols=[subprotocol] if subprotocol else None,  # type: ignore[list-item]
                                 open_timeout=10, max_size=None, compression=None, ping_interval=None)

        if tunnel:
            await self._spdy_tunnel(ws, f" {ns}/{name}", where, open_agent)
            return
        upstream = await _open_upstream(ws, name, where, open_agent(ports, str(proto)))
        if upstream is None:
            return
        try:
            await ws.accept(subprotocol=upstream.subprotocol or proto or None)
            await _relay(ws, upstream)
        finally:
            await upstream.close()

    async def _spdy_tunnel(self, ws: WebSocket, what: str, where: str,
                           open_agent: Callable[[list[int], str], Awaitable[Any]]) -> None:
        """kubectl's SPDY inside WebSocket messages: the session runs here, one agent
        WebSocket per stream pair."""
        from websockets.exceptions import InvalidStatus, WebSocketException

        async def open_port(port: int) -> Any:
            try:
                return await open_agent([port], execproto.V4)
            except InvalidStatus as e:
                raise OpenFailed(_error_from(e.response.body or b"", e.response.status_code).message) from None
            except (TimeoutError, OSError, WebSocketException) as e:
                raise OpenFailed(f"cannot reach the agent of pod{what} at {where}: {e}") from None

        async def recv() -> bytes | None:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return None
            data = msg.get("bytes")
            return data if data is not None else (msg.get("text") or "").encode()

        await ws.accept(subprotocol=execproto.SPDY_TUNNEL)
        try:
            await SpdySession(ws.send_bytes, open_port, what).run(recv)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away while something was being sent to it
        finally:
            with contextlib.suppress(Exception):
                await ws.close(1000)

    # -- metrics.k8s.io -------------------------------------------------------------------------

    async def _scrape(self, nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        async def one(node: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
            nname = node["metadata"]["name"]
            host, port = node_address(node), metrics_port(node)
            if not host or not port:
                return nname, None
            if ":" in host:
                host = f"[{host}]"
            try:
                r = await self.plain.get(f"http://{host}:{port}/metrics")
                r.raise_for_status()
            except httpx.HTTPError as e:
                log.info("metrics of node %s unavailable: %s", nname, e)
                return nname, None
            return nname, parse_scrape(r.text)

        results = await asyncio.gather(*(one(n) for n in nodes))
        return {n: data for n, data in results if data is not None}

    async def pod_metrics(self, request: Request) -> Response:
        try:
            ns = request.path_params.get("namespace")
            name = request.path_params.get("name")
            self._authorize(request.headers.get("authorization"), "get" if name else "list", "pods", ns, name,
                            group=METRICS_GROUP)
            if name:
                pod = self.registry.try_get(POD, ns, name)
                pods = [pod] if pod is not None else []
            else:
                pods = self.registry.list(POD, ns, request.query_params.get("labelSelector"))["items"]
            wanted = {(p.get("spec") or {}).get("nodeName") for p in pods}
            nodes = [n for n in self.registry.list(NODE)["items"] if n["metadata"]["name"] in wanted]
            scraped = await self._scrape(nodes)
            now = rfc3339(time.time())
            items = []
            for p in pods:
                meta = p["metadata"]
                data = scraped.get((p.get("spec") or {}).get("nodeName") or "")
                if data is None:
                    continue
                containers = []
                for c in (p.get("spec") or {}).get("containers") or []:
                    usage = data["containers"].get((meta["namespace"], meta["name"], c.get("name")))
                    if usage is not None:
                        containers.append({"name": c.get("name"), "usage": {
                            "cpu": format_cpu(usage.get("cpu", 0.0)),
                            "memory": format_memory(usage.get("memory", 0.0)),
                        }})
                if not containers:
                    continue
                items.append({
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                 "creationTimestamp": now, "labels": meta.get("labels") or {}},
                    "timestamp": now,
                    "window": METRICS_WINDOW,
                    "containers": containers,
                })
            if name:
                if not items:
                    raise errors.not_found("pods", name, METRICS_GROUP)
                return _ok({"kind": "PodMetrics", "apiVersion": METRICS_VERSION, **items[0]})
            return _ok({"kind": "PodMetricsList", "apiVersion": METRICS_VERSION, "metadata": {}, "items": items})
        except ApiError as e:
            return _status(e)

    async def node_metrics(self, request: Request) -> Response:
        try:
            name = request.path_params.get("name")
            self._authorize(request.headers.get("authorization"), "get" if name else "list", "nodes", None, name,
                            group=METRICS_GROUP)
            nodes = self.registry.list(NODE, None, request.query_params.get("labelSelector"))["items"]
            if name:
                nodes = [n for n in nodes if n["metadata"]["name"] == name]
            scraped = await self._scrape(nodes)
            now = rfc3339(time.time())
            items = []
            for n in nodes:
                data = scraped.get(n["metadata"]["name"])
                if data is None:
                    continue
                items.append({
                    "metadata": {"name": n["metadata"]["name"], "creationTimestamp": now,
                                 "labels": n["metadata"].get("labels") or {}},
                    "timestamp": now,
                    "window": METRICS_WINDOW,
                    "usage": {"cpu": format_cpu(data["node"].get("cpu", 0.0)),
                              "memory": format_memory(data["node"].get("memory", 0.0))},
                })
            if name:
                if not items:
                    raise errors.not_found("nodes", name, METRICS_GROUP)
                return _ok({"kind": "NodeMetrics", "apiVersion": METRICS_VERSION, **items[0]})
            return _ok({"kind": "NodeMetricsList", "apiVersion": METRICS_VERSION, "metadata": {}, "items": items})
        except ApiError as e:
            return _status(e)


# -- relaying ------------------------------------------------------------------------------------


def _ok(obj: Any) -> Response:
    return Response(dumps(obj), media_type="application/json")


def _status(e: ApiError) -> Response:
    return Response(dumps(e.status()), status_code=e.code or 500, media_type="application/json")


def _error_from(body: bytes | bytearray, code: int) -> ApiError:
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("kind") == "Status":
            return ApiError.from_status(data, code)
    except ValueError:
        pass
    text = body.decode(errors="replace").strip()[:500] or f"HTTP {code}"
    return ApiError(code, "InternalError" if code >= 500 else "BadRequest", text)


def _relay_error(body: bytes, code: int) -> Response:
    return _status(_error_from(body, code))


async def _deny(ws: WebSocket, e: ApiError) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(_status(e))
    else:  # the server cannot send an HTTP answer: refuse the handshake (403 on the wire)
        await ws.close(1008, e.message[:120])


async def _relay(client: WebSocket, upstream: Any) -> None:
    """Copy messages both ways until the agent ends the session (or the client leaves)."""
    from websockets.exceptions import ConnectionClosed

    async def down() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for msg in upstream:
                if isinstance(msg, str):
                    await client.send_text(msg)
                else:
                    await client.send_bytes(msg)
        with contextlib.suppress(Exception):
            await client.close(1000)

    async def up() -> None:
        with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, RuntimeError):
            while True:
                msg = await client.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes")
                await upstream.send(data if data is not None else msg.get("text") or "")
        await upstream.close()

    down_task, up_task = asyncio.create_task(down()), asyncio.create_task(up())
    try:
        await asyncio.wait({down_task, up_task}, return_when=asyncio.FIRST_COMPLETED)
        if down_task.done():
            up_task.cancel()
        else:
            # The client left: give the agent a moment to wind down, then drop it.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(down_task), 2)
    finally:
        for t in (down_task, up_task):
            t.cancel()
        for t in (down_task, up_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


# -- wiring --------------------------------------------------------------------------------------


def routes(api: ApiServer, pki: ClusterPKI) -> list[BaseRoute]:
    """The proxy's routes for `api.add_routes`; issues the master's client certificate."""
    cert_path, key_path = write_proxy_client_cert(pki.pki_dir, pki.ca_cert_pem, pki.ca_key_pem)
    proxy = AgentProxy(api, cert_path, key_path)
    pods = "/api/v1/namespaces/{namespace}/pods/{name}"
    metrics = f"/apis/{METRICS_VERSION}"
    return [
        Route(f"{pods}/log", proxy.logs, methods=["GET"]),
        WebSocketRoute(f"{pods}/exec", proxy.exec_ws),
        Route(f"{pods}/exec", proxy.exec_http, methods=["GET", "POST"]),
        WebSocketRoute(f"{pods}/portforward", proxy.portforward_ws),
        Route(f"{pods}/portforward", proxy.portforward_http, methods=["GET", "POST"]),
        Route(f"{metrics}/pods", proxy.pod_metrics, methods=["GET"]),
        Route(metrics + "/namespaces/{namespace}/pods", proxy.pod_metrics, methods=["GET"]),
        Route(metrics + "/namespaces/{namespace}/pods/{name}", proxy.pod_metrics, methods=["GET"]),
        Route(f"{metrics}/nodes", proxy.node_metrics, methods=["GET"]),
        Route(metrics + "/nodes/{name}", proxy.node_metrics, methods=["GET"]),
    ]


async def _open_upstream(ws: WebSocket, name: str, where: str, opening: Awaitable[Any]) -> Any:
    """The agent's WebSocket that `opening` connects, or None once the client has been
    refused with the agent's own error, or a 502 when the agent cannot be reached."""
    from websockets.exceptions import InvalidStatus, WebSocketException

    try:
        return await opening
    except InvalidStatus as e:
        await _deny(ws, _error_from(e.response.body or b"", e.response.status_code))
    except (TimeoutError, OSError, WebSocketException) as e:
        await _deny(ws, ApiError(502, "ServiceUnavailable", f"cannot reach the agent of pod {name} at {where}: {e}"))
    return None
