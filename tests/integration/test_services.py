"""Services on one real node (`dockyard up`): cluster IPs, DNS, readiness, headless, NodePort.

A Deployment of three busybox httpd pods, each serving its own hostname, sits behind a
ClusterIP Service, a headless Service and a NodePort Service. A client pod fetches
`http://web.default.svc.cluster.local/` and `http://web/` through the node's DNS and the
agent's iptables rules, and over repeated requests sees every backend; the NodePort Service
answers on the node's address and on 127.0.0.1 from the node itself. Flipping one pod's
readiness file makes its probe fail: it leaves the Endpoints within a probe period and
gets no more requests. All traffic stays on this host (the cluster's own bridge, pods
and service IPs). At the end, with master and agent stopped, the pods still reach the
Service by name (the agent's stop leaves the data plane in place), and `dockyard agent
--cleanup` removes the chains and the DNS server.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from agent.dns import addresses, query
from agent.serviceproxy import chain_prefix, parse_chains
from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, running, wait_for

pytestmark = pytest.mark.timeout(300)

BUSYBOX = "dockyard/busybox:1"
SERVE = (
    "mkdir -p /www && hostname > /www/index.html && echo ok > /www/ready && "
    "exec httpd -f -p 8080 -h /www"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("services"), cluster_cidr="10.217.0.0/16")) as c:
        yield c


def _apply(c: Cluster, obj: dict) -> dict:
    return c.client.create(obj, obj["metadata"].get("namespace", "default"))


def _deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "httpd",
                            "image": BUSYBOX,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", SERVE],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": "http"},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def _service(name: str, **spec: object) -> dict:
    body = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": body}


def _client_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "sh", "image": BUSYBOX, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "exec sleep 100000"]}],
        },
    }


def _container(c: Cluster, pod: str) -> str:
    ids = c.containers(f"label=dockyard.io/pod-name={pod}", "label=dockyard.io/container-name=" +
                       ("sh" if pod == "client" else "httpd"))
    assert ids, f"no running container for {pod}"
    return ids[0]


def _sh(container: str, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _fetch_many(client: str, url: str, n: int) -> list[str]:
    script = f"for i in $(seq {n}); do wget -O- {url} 2>/dev/null; done"
    r = _sh(client, script, timeout=60)
    return [line.strip() for line in r.stdout.splitlines() if line.strip()]


def _endpoints(c: Cluster, name: str) -> tuple[set[str], set[str]]:
    ep = c.client.get(resolve("endpoints"), name, "default")
    ready = {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    not_ready = {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []}
    return ready, not_ready


def _gateway(c: Cluster) -> str:
    from agent.runtime import DockerRuntime

    gateway, _ = DockerRuntime(network=f"dy-{c.node_name}").network_info()
    assert gateway
    return gateway


@pytest.fixture(scope="module")
def app(cluster: Cluster) -> dict:
    _apply(cluster, _deployment())
    svc = _apply(cluster, _service("web"))
    headless = _apply(cluster, _service("web-headless", clusterIP="None"))
    nodeport = _apply(cluster, _service("web-np", type="NodePort"))
    _apply(cluster, _client_pod())

    def three_ready() -> set[str] | None:
        ready, _ = _endpoints(cluster, "web")
        return ready if len(ready) == 3 else None

    pods = wait_for(three_ready, 90, what="three ready endpoints")

    def client_running() -> bool:
        pod = cluster.client.get(resolve("pods"), "client", "default")
        return pod.get("status", {}).get("phase") == "Running"

    wait_for(client_running, 60, what="the client pod")
    return {"svc": svc, "headless": headless, "nodeport": nodeport, "pods": pods}


def test_cluster_ip_allocated_and_immutable(cluster: Cluster, app: dict) -> None:
    ip = app["svc"]["spec"]["clusterIP"]
    assert ip.startswith("10.43.") and ip not in ("10.43.0.1", "10.43.0.10")
    assert app["headless"]["spec"]["clusterIP"] == "None"
    assert 30000 <= app["nodeport"]["spec"]["ports"][0]["nodePort"] <= 32767
    svc = cluster.client.get(resolve("services"), "web", "default")
    svc["spec"]["clusterIP"] = "10.43.9.9"
    r = cluster.cli("get", "svc")
    assert "web" in r.stdout and "CLUSTER-IP" in r.stdout
    with pytest.raises(Exception, match="immutable"):
        cluster.client.replace(svc)


def test_dns_name_reaches_all_backends(cluster: Cluster, app: dict) -> None:
    client = _container(cluster, "client")
    seen = wait_for(lambda: _fetch_many(client, "http://web.default.svc.cluster.local/", 1), 30,
                    what="an answer through the service name")
    assert seen[0] in app["pods"]
    answers = _fetch_many(client, "http://web.default.svc.cluster.local/", 30)
    assert len(answers) == 30
    assert set(answers) == app["pods"], collections.Counter(answers)
    short = _fetch_many(client, "http://web/", 3)
    assert short and set(short) <= app["pods"]


def test_headless_returns_all_pod_ips(cluster: Cluster, app: dict) -> None:
    gw = _gateway(cluster)
    pods = [cluster.client.get(resolve("pods"), n, "default") for n in app["pods"]]
    ips = {p["status"]["podIP"] for p in pods}
    got = set(addresses(query(gw, "web-headless.default.svc.cluster.local")))
    assert got == ips
    one = next(iter(ips))
    assert addresses(query(gw, f"{one.replace('.', '-')}.web-headless.default.svc.cluster.local")) == [one]
    assert query(gw, "nope.default.svc.cluster.local").header.rcode == 3  # NXDOMAIN
    # and from inside a pod, through the container's resolv.conf
    client = _container(cluster, "client")
    r = _sh(client, "nslookup web-headless.default.svc.cluster.local")
    for ip in ips:
        assert ip in r.stdout, r.stdout + r.stderr


def test_node_port_on_node_ip(cluster: Cluster, app: dict) -> None:
    node = cluster.client.get(resolve("nodes"), cluster.node_name)
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    port = app["nodeport"]["spec"]["ports"][0]["nodePort"]
    body = wait_for(
        lambda: urllib.request.urlopen(f"http://{node_ip}:{port}/", timeout=3).read().decode().strip(), 20,
        what="the node port to answer",
    )
    assert body in app["pods"]


def _get_local(url: str, attempts: int, timeout: float = 3.0, interval: float = 0.5) -> str:
    """GET `url` from this process, at most `attempts` times, each bounded by `timeout`."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.read().decode().strip()
        except OSError as e:
            last = e
            time.sleep(interval)
    raise AssertionError(f"{url} did not answer in {attempts} attempts (last: {last!r})")


def test_node_port_on_localhost(cluster: Cluster, app: dict) -> None:
    # 127.0.0.1 → DNAT to a pod on the bridge: the reply can only come back if the request
    # left loopback (route_localnet) and was masqueraded to the bridge address
    port = app["nodeport"]["spec"]["ports"][0]["nodePort"]
    url = f"http://127.0.0.1:{port}/"
    assert _get_local(url, attempts=20) in app["pods"]
    answers = [_get_local(url, attempts=1) for _ in range(12)]
    assert set(answers) <= app["pods"], collections.Counter(answers)
    with open("/proc/sys/net/ipv4/conf/all/route_localnet") as f:
        assert f.read().strip() == "1"
    # and the guard against outside packets to 127.0.0.0/8 is in place (CVE-2020-8558)
    prefix = chain_prefix(f"dy-{cluster.node_name}")
    flt = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True).stdout
    assert any(line.startswith("-A INPUT ") and line.endswith(f"-j {prefix}-FIREWALL") for line in flt.splitlines())
    guard = [line for line in flt.splitlines() if line.startswith(f"-A {prefix}-FIREWALL ")]
    assert len(guard) == 1 and "! -s 127.0.0.0/8 -d 127.0.0.0/8" in guard[0] and guard[0].endswith("-j DROP")


def test_unready_pod_leaves_endpoints_and_gets_no_traffic(cluster: Cluster, app: dict) -> None:
    victim = sorted(app["pods"])[0]
    _sh(_container(cluster, victim), "rm /www/ready")
    start = time.monotonic()

    def gone() -> bool:
        ready, not_ready = _endpoints(cluster, "web")
        return victim not in ready and victim in not_ready

    wait_for(gone, 10, interval=0.1, what=f"{victim} to leave the ready endpoints")
    assert time.monotonic() - start < 4.0  # period 1s, failureThreshold 1, plus propagation
    time.sleep(0.5)  # the agent applies the new rules at once; allow the write to land
    answers = _fetch_many(_container(cluster, "client"), "http://web/", 24)
    assert len(answers) == 24
    assert victim not in answers
    assert set(answers) == app["pods"] - {victim}
    # readiness back: the pod returns
    _sh(_container(cluster, victim), "echo ok > /www/ready")
    wait_for(lambda: victim in _endpoints(cluster, "web")[0], 10, what=f"{victim} to be ready again")


def test_agent_stop_leaves_the_data_plane_and_cleanup_removes_it(cluster: Cluster, app: dict) -> None:
    prefix = chain_prefix(f"dy-{cluster.node_name}")
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    assert f"{prefix}-SERVICES" in parse_chains(nat)
    client = _container(cluster, "client")
    cluster.stop()  # master and agent gone: the pods, their Service rules and DNS stay
    answers = _fetch_many(client, "http://web.default.svc.cluster.local/", 12)
    assert len(answers) == 12 and set(answers) <= app["pods"], answers
    assert addresses(query(_gateway(cluster), "web.default.svc.cluster.local"))
    r = subprocess.run(
        [sys.executable, "-m", "orchestrator", "agent", "--cleanup", "--data-dir", str(cluster.data_dir / "agent"),
         "--pod-network", f"dy-{cluster.node_name}"],
        capture_output=True, text=True, env=cluster.env(), cwd=str(ROOT), timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "service and pod network rules" in r.stdout and "cluster DNS server" in r.stdout, r.stdout
    for table in ("nat", "filter"):
        out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=True).stdout
        assert not [c for c in parse_chains(out) if c.startswith(prefix + "-")], out
        assert f"-j {prefix}-" not in out
    with pytest.raises(Exception):  # noqa: B017 - no answer at all: timeout or refused
        query(_gateway(cluster), "web.default.svc.cluster.local", timeout=1.0)
