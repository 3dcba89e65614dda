"""Agent metrics, the exec protocol, the proxy's helpers and the agent endpoint's TLS rules.

No Docker: the runtime is a fake; the agent's HTTPS listener is started for real with a
cluster CA made in a temporary directory.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.metrics import (
    AgentMetrics,
    ProbeCounter,
    cpu_rate,
    parse_mem_used,
    parse_proc_stat,
)
from agent.node import node_status
from agent.pods import SANDBOX_NAME, ObservedContainer
from agent.server import AgentServer
from orchestrator import execproto, nodecerts
from orchestrator.api import proxy
from orchestrator.errors import ApiError
from orchestrator.pki import load_or_create_pki

# -- fakes -------------------------------------------------------------------------------------


def oc(cid: str, name: str, pod: str = "web", uid: str = "u1", state: str = "running", restarts: int = 0,
       started: float | None = 900.0) -> ObservedContainer:
    return ObservedContainer(id=cid, name=name, pod_uid=uid, pod_name=pod, pod_namespace="default",
                             restart_count=restarts, state=state, started_at=started, created_at=started or 0.0)


class FakeRuntime:
    def __init__(self, containers: list[ObservedContainer], cpu: dict[str, float]) -> None:
        self.containers = containers
        self.cpu = cpu
        self.stats_calls = 0

    def list_containers(self, uid: str | None = None) -> list[ObservedContainer]:
        return list(self.containers)

    def stats(self, cid: str) -> dict[str, Any]:
        self.stats_calls += 1
        return {"cpu_seconds": self.cpu[cid], "memory_working_set_bytes": 4 * 2**20}


PROC_STAT = "cpu  1000 0 500 8000 100 0 0 0 0 0\ncpu0 1000 0 500 8000 100 0 0 0 0 0\n"
MEMINFO = "MemTotal:       2000 kB\nMemFree:         500 kB\nMemAvailable:   1500 kB\n"


def make_metrics(clock: list[float], rt: FakeRuntime, probes: ProbeCounter | None = None) -> AgentMetrics:
    return AgentMetrics(rt, allocatable=lambda: {"cpu": "4", "memory": "2000Ki", "pods": "110"}, ttl=2.0,
                        probes=probes or ProbeCounter(), clock=lambda: clock[0],
                        proc_stat=lambda: PROC_STAT, meminfo=lambda: MEMINFO)


# -- metrics -------------------------------------------------------------------------------------


def test_proc_parsers() -> None:
    assert parse_proc_stat(PROC_STAT) == pytest.approx(15.0)  # (1000+500) ticks / 100
    assert parse_proc_stat("intr 1\n") is None
    assert parse_mem_used(MEMINFO) == 500 * 1024
    assert parse_mem_used("MemTotal: 1 kB\n") is None


@pytest.mark.parametrize("prev, cpu, now, started, want", [
    (None, 10.0, 1000.0, 900.0, 0.1),  # average since the start
    ((5.0, 990.0), 10.0, 1000.0, 900.0, 0.5),  # delta over the previous sample
    ((12.0, 990.0), 10.0, 1000.0, 900.0, 0.1),  # counter went back (new container): start average
    (None, 10.0, 1000.0, None, 0.0),
])
def test_cpu_rate(prev: tuple[float, float] | None, cpu: float, now: float, started: float | None,
                  want: float) -> None:
    assert cpu_rate(prev, cpu, now, started) == pytest.approx(want)


def test_exposition_has_cadvisor_and_dockyard_series() -> None:
    rt = FakeRuntime(
        [oc("s1", SANDBOX_NAME), oc("a0", "app", restarts=0, state="exited"), oc("a1", "app", restarts=2),
         oc("s2", SANDBOX_NAME, pod="idle", uid="u2"), oc("b1", "side", pod="idle", uid="u2", state="exited")],
        {"a1": 10.0},
    )
    probes = ProbeCounter()
    probes.record("default", "web", "app", "readiness", "success")
    probes.record("default", "web", "app", "readiness", "success")
    clock = [1000.0]
    m = make_metrics(clock, rt, probes)
    text = m.exposition().decode()
    lbl = 'container="app",namespace="default",pod="web"'
    assert f"container_cpu_usage_seconds_total{{{lbl}}} 10.0" in text
    assert f"dockyard_pod_cpu_seconds_total{{{lbl}}} 10.0" in text
    assert f"container_memory_working_set_bytes{{{lbl}}} 4.194304e+06" in text
    assert f"dockyard_container_cpu_usage_cores{{{lbl}}} 0.1" in text
    assert f"dockyard_container_restarts_total{{{lbl}}} 2.0" in text
    assert 'dockyard_container_restarts_total{container="side",namespace="default",pod="idle"} 0.0' in text
    assert ('dockyard_probe_results_total{container="app",namespace="default",pod="web",'
            'probe_type="readiness",result="success"} 2.0') in text
    assert 'dockyard_node_allocatable{resource="memory"} 2.048e+06' in text
    assert 'dockyard_node_allocatable{resource="cpu"} 4.0' in text
    assert 'dockyard_node_used{resource="memory"} 512000.0' in text
    assert 'dockyard_node_used{resource="pods"} 2.0' in text
    assert "dockyard_pods_running 2.0" in text
    assert rt.stats_calls == 1  # only the running app container is asked for stats

    # within the TTL a scrape reuses the sample; after it, the rate is a delta
    m.exposition()
    assert rt.stats_calls == 1
    clock[0] = 1010.0
    rt.cpu["a1"] = 15.0
    text = m.exposition().decode()
    assert rt.stats_calls == 2
    assert f"dockyard_container_cpu_usage_cores{{{lbl}}} 0.5" in text


def test_scrape_parser_reads_agent_exposition() -> None:
    rt = FakeRuntime([oc("s1", SANDBOX_NAME), oc("a1", "app")], {"a1": 10.0})
    text = make_metrics([1000.0], rt).exposition().decode()
    got = proxy.parse_scrape(text)
    assert got["containers"][("default", "web", "app")] == {"cpu": pytest.approx(0.1), "memory": 4 * 2**20}
    assert got["node"]["memory"] == 512000.0
    assert proxy.format_cpu(0.1) == "100000000n" and proxy.format_memory(4 * 2**20) == "4096Ki"


def test_node_status_publishes_kubelet_port() -> None:
    st = node_status({"NCPU": 2}, {}, 1024, "10.0.0.1", "h", [], kubelet_port=10250)
    assert st["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert "daemonEndpoints" not in node_status({"NCPU": 2}, {}, 1024, "10.0.0.1", "h", [])


# -- exec protocol -----------------------------------------------------------------------------


def test_exec_statuses_round_trip() -> None:
    assert execproto.status_exit_code(execproto.exit_status(0)) == 0
    st = execproto.exit_status(3)
    assert st["reason"] == "NonZeroExitCode" and st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert execproto.status_exit_code(st) == 3
    assert execproto.status_exit_code(execproto.error_status("boom")) is None
    assert execproto.split(execproto.frame(execproto.STDOUT, b"hi")) == (1, b"hi")
    assert execproto.choose_subprotocol(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == execproto.V5
    assert execproto.choose_subprotocol(["channel.k8s.io"]) is None


# -- proxy helpers -------------------------------------------------------------------------------


def pod(*names: str, init: tuple[str, ...] = (), default: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default"}
    if default:
        meta["annotations"] = {proxy.DEFAULT_CONTAINER_ANNOTATION: default}
    return {"metadata": meta, "spec": {"containers": [{"name": n} for n in names],
                                       "initContainers": [{"name": n} for n in init]}}


def test_pick_container() -> None:
    assert proxy.pick_container(pod("a"), None) == "a"
    assert proxy.pick_container(pod("a", "b"), "b") == "b"
    assert proxy.pick_container(pod("a", "b", default="b"), None) == "b"
    assert proxy.pick_container(pod("a", init=("i",)), "i") == "i"
    with pytest.raises(ApiError) as e:
        proxy.pick_container(pod("a", "b"), None)
    assert e.value.code == 400
    assert e.value.message == "a container name must be specified for pod p, choose one of: [a b]"
    with pytest.raises(ApiError) as e:
        proxy.pick_container(pod("a"), "zz")
    assert e.value.message == "container zz is not valid for pod p"


def test_node_endpoint_lookup() -> None:
    node = {"metadata": {"annotations": {proxy.METRICS_PORT_ANNOTATION: "10249"}},
            "status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": "10.0.0.2"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert proxy.node_address(node) == "10.0.0.2"
    assert proxy.kubelet_port(node) == 10250 and proxy.metrics_port(node) == 10249
    assert proxy.kubelet_port({}) is None and proxy.metrics_port({}) is None


def test_proxy_client_cert_is_a_ca_signed_client_cert(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    cert_path, key_path = proxy.write_proxy_client_cert(pki.pki_dir, pki.ca_cert_pem, pki.ca_key_pem)
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem)
    assert cert.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


# -- the agent endpoint's TLS rules -----------------------------------------------------------


def test_agent_https_requires_the_masters_client_cert(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    rt = FakeRuntime([], {})
    server = AgentServer(rt, pki.ca_cert_pem, make_metrics([1000.0], rt),  # type: ignore[arg-type]
                         host="127.0.0.1", kubelet_port=0, metrics_port=0, node_name="n1", node_ip="127.0.0.1",
                         serving_cert=nodecerts.issue(pki.ca_cert_pem, pki.ca_key_pem, "n1"))
    server.start()
    try:
        # /metrics: plain HTTP, no authentication
        r = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        assert r.status_code == 200 and "dockyard_pods_running 0.0" in r.text
        url = f"https://127.0.0.1:{server.kubelet_port}/healthz"

        def ctx(cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE
            if cert and key:
                c.load_cert_chain(str(cert), str(key))
            return c

        # no client certificate: the handshake (or the first read) fails
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=ctx(), timeout=5)
        # the API server's certificate is CA-signed but not for client auth: refused
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=ctx(pki.server_cert_path, pki.server_key_path), timeout=5)
        # a certificate from another CA: refused
        other = load_or_create_pki(tmp_path / "other", [], discover=False)
        oc_, ok_ = proxy.write_proxy_client_cert(other.pki_dir, other.ca_cert_pem, other.ca_key_pem)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=ctx(oc_, ok_), timeout=5)
        # the master's proxy client certificate: accepted, when the agent's certificate is
        # the CA's for the node the master means
        cert, key = proxy.write_proxy_client_cert(pki.pki_dir, pki.ca_cert_pem, pki.ca_key_pem)
        master = proxy.agent_ssl_context(cert, key, pki.ca_cert_pem)
        with httpx.Client(verify=master, timeout=5) as c:
            r = c.get(url, extensions={"sni_hostname": "n1"})
            assert r.status_code == 200 and r.text == "ok"
        # ... and refused for another node's name: the address was someone else's
        with httpx.Client(verify=master, timeout=5) as c, pytest.raises(httpx.ConnectError, match="certificate"):
            c.get(url, extensions={"sni_hostname": "n2"})
    finally:
        server.stop()


def test_master_refuses_an_agent_without_a_ca_signed_certificate(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    rt = FakeRuntime([], {})
    server = AgentServer(rt, pki.ca_cert_pem, make_metrics([1000.0], rt),  # type: ignore[arg-type]
                         host="127.0.0.1", kubelet_port=0, metrics_port=0, node_name="n1", node_ip="127.0.0.1")
    server.start()  # self-signed
    try:
        cert, key = proxy.write_proxy_client_cert(pki.pki_dir, pki.ca_cert_pem, pki.ca_key_pem)
        master = proxy.agent_ssl_context(cert, key, pki.ca_cert_pem)
        with httpx.Client(verify=master, timeout=5) as c, pytest.raises(httpx.ConnectError, match="certificate"):
            c.get(f"https://127.0.0.1:{server.kubelet_port}/healthz", extensions={"sni_hostname": "n1"})
    finally:
        server.stop()
