"""Port-forward against a real `dockyard up`: kubectl, the Python client and `dockyard port-forward`.

One cluster for the module runs a Deployment of the demo web server (busybox httpd on
port 80, named ``http``) behind a Service (port 8080 → ``http``). Every client reaches it
through 127.0.0.1: kubectl 1.32 (SPDY inside a WebSocket, through the master's SPDY
session), the official Python client (`kubernetes.stream.portforward`, the channel
protocol relayed to the agent) and `dockyard port-forward` (the CLI's `main_port_forward`
on a parsed namespace, in a subprocess so that SIGTERM ends it as it would a user's).
A port nothing listens on gives kubelet's error through each client.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, free_port, running, wait_for
from tests.support.images import DEMO_IMAGE

pytestmark = pytest.mark.docker

POD = resolve("pods")
NS = "default"
HELLO = b"Hello from Dockyard"
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")

MANIFEST = {
    "deployment": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "web", "image": DEMO_IMAGE,
                                                       "ports": [{"name": "http", "containerPort": 80}]}]}}},
    },
    "service": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 8080, "targetPort": "http"}]},
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses."""
    with running(Cluster(tmp_path_factory.mktemp("portforward"), cluster_cidr="10.222.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> str:
    """The name of the Deployment's running pod."""
    cluster.client.create(MANIFEST["deployment"], NS)
    cluster.client.create(MANIFEST["service"], NS)

    def running_pod() -> str | None:
        for p in cluster.client.list(POD, NS, label_selector="app=web")["items"]:
            if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                return str(p["metadata"]["name"])
        return None

    return str(wait_for(running_pod, 90, what="the web pod running"))


# -- helpers --------------------------------------------------------------------------------------


def http_get(port: int, timeout: float = 15.0) -> bytes:
    """GET / through 127.0.0.1:port, read until the server closes (busybox httpd does)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class Lines:
    """A child's output lines, read in a thread, waited for with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} in {self.lines!r}")
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


class Child:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=str(ROOT))
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out, self.err = Lines(self.proc.stdout), Lines(self.proc.stderr)

    def forwarded(self, timeout: float = 30.0) -> tuple[int, int]:
        m = self.out.wait(FORWARDING, timeout)
        return int(m.group(1)), int(m.group(2))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def kubectl(cluster: Cluster, tmp: Path, *args: str) -> Child:
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    return Child(["kubectl", "--cache-dir", str(tmp / "kubectl-cache"), "-n", NS, *args], env)


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


# -- kubectl ---------------------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("target", ["pod", "deploy/web", "svc/web"])
def test_kubectl_port_forward_answers_http(cluster: Cluster, web: str, tmp_path: Path, target: str) -> None:
    local = free_port()
    remote = "8080" if target.startswith("svc/") else "80"
    child = kubectl(cluster, tmp_path, "port-forward", f"pod/{web}" if target == "pod" else target,
                    f"{local}:{remote}")
    try:
        assert child.forwarded() == (local, 80), child.err.text()  # a service port becomes the pod's
        for _ in range(3):  # one SPDY connection, a stream pair per local connection
            answer = http_get(local)
            assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n")[0], answer[:200]
            assert HELLO in answer and web.encode() in answer
        child.out.wait(f"Handling connection for {local}")
        assert child.proc.poll() is None, child.err.text()
    finally:
        assert child.stop() in (0, -signal.SIGTERM)
    assert "error" not in child.err.text().lower(), child.err.text()


@needs_kubectl
def test_kubectl_port_nobody_listens_on_gives_kubelets_error(cluster: Cluster, web: str, tmp_path: Path) -> None:
    local = free_port()
    child = kubectl(cluster, tmp_path, "port-forward", f"pod/{web}", f"{local}:9999")
    try:
        assert child.forwarded() == (local, 9999)
        with socket.create_connection(("127.0.0.1", local), timeout=15) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(1024) == b""  # closed without an answer
        m = child.err.wait(rf"an error occurred forwarding {local} -> 9999: (error forwarding port 9999 to pod "
                           r"\S+, uid : failed to connect to [\d.]+:9999 inside namespace \\?\"\w+\\?\", IPv4: "
                           r"dial tcp4 [\d.]+:9999: connect: connection refused)")
        assert m
        # kubectl 1.32 itself ends the session after an error stream speaks (client-go's
        # handleConnection closes the connection): "lost connection to pod", exit 1
        child.proc.wait(30)
        assert child.proc.returncode == 1
        assert "lost connection to pod" in child.err.text()
    finally:
        child.stop()
    # the master and the agent serve the next forward as before
    local = free_port()
    again = kubectl(cluster, tmp_path, "port-forward", f"pod/{web}", f"{local}:80")
    try:
        again.forwarded()
        assert HELLO in http_get(local)
    finally:
        again.stop()


# -- the Python client -------------------------------------------------------------------------------


def test_python_client_port_forward_over_websocket(cluster: Cluster, web: str) -> None:
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.stream import portforward

    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api = k8s.CoreV1Api(api_client)
    for _ in range(2):
        pf = portforward(api.connect_get_namespaced_pod_portforward, web, NS, ports="80")
        sock = pf.socket(80)
        sock.settimeout(15)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        sock.close()
        answer = b"".join(chunks)
        assert b" 200 " in answer.split(b"\r\n")[0] and HELLO in answer, answer[:200]
        assert pf.error(80) is None
        pf.close()

    # two ports on one WebSocket, one of them refused: its error channel says why
    pf = portforward(api.connect_get_namespaced_pod_portforward, web, NS, ports="9999,80")
    wait_for(lambda: pf.error(9999) is not None, 20, what="the error of port 9999")
    assert re.match(r"error forwarding port 9999 to pod \S+, uid : failed to connect to [\d.]+:9999 .*"
                    r"connection refused", pf.error(9999) or ""), pf.error(9999)
    sock = pf.socket(80)
    sock.settimeout(15)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert HELLO in answer
    pf.close()
    api_client.close()


# -- dockyard port-forward -----------------------------------------------------------------------------

CLI = """
import argparse, sys
from orchestrator.cli.options import global_options
from orchestrator.cli.portforward import add_arguments, main_port_forward
p = argparse.ArgumentParser(parents=[global_options(suppress=False)])
add_arguments(p)
sys.exit(main_port_forward(p.parse_args(sys.argv[1:])))
"""


def dockyard_port_forward(cluster: Cluster, *args: str) -> Child:
    return Child([sys.executable, "-c", CLI, "--kubeconfig", str(cluster.kubeconfig), *args], cluster.env())


def test_dockyard_port_forward(cluster: Cluster, web: str) -> None:
    good, bad = free_port(), free_port()
    child = dockyard_port_forward(cluster, "deploy/web", f"{good}:http", f"{bad}:9999", "--address", "127.0.0.1")
    try:
        child.out.wait(rf"^Forwarding from 127\.0\.0\.1:{good} -> 80$")
        child.out.wait(rf"^Forwarding from 127\.0\.0\.1:{bad} -> 9999$")
        assert HELLO in http_get(good)
        assert http_get(bad) == b""
        child.err.wait(rf"an error occurred forwarding {bad} -> 9999: error forwarding port 9999 to pod \S+, "
                       r"uid : failed to connect to .*connection refused")
        # the forward survives an error: both ports serve their next connections
        assert HELLO in http_get(good)
        assert http_get(bad) == b""
        child.out.wait(f"Handling connection for {good}")
        assert child.proc.poll() is None, child.err.text()
    finally:
        code = child.stop()
    assert code == 0, child.err.text()

    # a service port translated to its target, a free local port, and a half-closing client
    child = dockyard_port_forward(cluster, "svc/web", ":8080")
    try:
        local, remote = child.forwarded()
        assert remote == 80 and local != 8080
        with socket.create_connection(("127.0.0.1", local), timeout=15) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)  # the pod's server still answers after reading end-of-file
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert HELLO in answer
    finally:
        assert child.stop() == 0, child.err.text()


def test_dockyard_port_forward_refuses_what_it_cannot_forward(cluster: Cluster, web: str) -> None:
    child = dockyard_port_forward(cluster, "svc/web", "9:1234")
    assert child.proc.wait(30) == 1
    assert "Service web does not have a service port 1234" in child.err.text()
    child = dockyard_port_forward(cluster, "pod/nothere", "80")
    assert child.proc.wait(30) == 1
    assert "NotFound" in child.err.text() or "not found" in child.err.text()


# -- the master is not the peer to break --------------------------------------------------------------


def test_malformed_spdy_gets_goaway_and_the_master_keeps_serving(cluster: Cluster, web: str) -> None:
    import websocket  # websocket-client, as lenient about subprotocol names as kubectl's Go library

    from orchestrator import spdy
    from orchestrator.client import ssl_context

    client = cluster.client
    url = client.server.replace("https://", "wss://") + f"/api/v1/namespaces/{NS}/pods/{web}/portforward"
    for garbage in (b"\x80\x02\x00\x01\x00\x00\x00\x04abcd",  # SPDY/2
                    b"\x80\x03\x00\x01\x00\x00\x00\x0c" + b"\x00\x00\x00\x01" * 3,  # a broken header block
                    b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x01"):  # a PING of 2 bytes
        ws = websocket.create_connection(url, sslopt={"context": ssl_context(client.ca_pem)}, timeout=15,
                                         header=[f"Authorization: Bearer {client.token}"],
                                         subprotocols=["SPDY/3.1+portforward.k8s.io"])
        try:
            assert ws.getsubprotocol() == "spdy/3.1+portforward.k8s.io"  # websocket-client lower-cases it
            ws.send_binary(garbage)
            reader = spdy.FrameReader()
            answer = ws.recv()
            reader.feed(answer if isinstance(answer, bytes) else answer.encode())
            frames = list(reader.frames())
            assert frames and isinstance(frames[0], spdy.GoAway), frames
            assert frames[0].status == spdy.GOAWAY_PROTOCOL_ERROR
        finally:
            ws.close()
    assert client.request("GET", "/readyz") is not None


def test_only_users_allowed_to_create_pods_portforward_get_in(cluster: Cluster, web: str) -> None:
    import json

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    from orchestrator.client import Client, ssl_context
    from orchestrator.pki import node_token

    url = (cluster.server.replace("https://", "wss://")
           + f"/api/v1/namespaces/{NS}/pods/{web}/portforward?ports=80")
    ctx = ssl_context(cluster.client.ca_pem)
    secret = bytes.fromhex(json.loads((Path(cluster.data_dir) / "pki/tokens.json").read_text())["node_secret"])
    node = Client(cluster.server, node_token(secret, cluster.node_name), cluster.client.ca_pem)
    for token, code in ((node.token, 403), ("not-a-token", 401)):
        with pytest.raises(InvalidStatus) as e:
            connect(url, ssl=ctx, subprotocols=[Subprotocol("v4.channel.k8s.io")],
                    additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=15)
        assert e.value.response.status_code == code
    assert node.http.post(f"/api/v1/namespaces/{NS}/pods/{web}/portforward").status_code == 403
    # without an upgrade, an allowed user is told what to speak; a missing pod is a 404
    r = cluster.client.http.post(f"/api/v1/namespaces/{NS}/pods/{web}/portforward")
    assert r.status_code == 400 and "SPDY/3.1+portforward.k8s.io" in r.json()["message"]
    with pytest.raises(InvalidStatus) as e:
        connect(url.replace(web, "nothere"), ssl=ctx, subprotocols=[Subprotocol("v4.channel.k8s.io")],
                additional_headers={"Authorization": f"Bearer {cluster.client.token}"}, open_timeout=15)
    assert e.value.response.status_code == 404
    node.close()
