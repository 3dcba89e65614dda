"""Logs, exec and metrics against a real `dockyard up`: CLI → master proxy → agent → Docker.

One cluster for the module; pods are created once and each test reads from them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from orchestrator import execproto
from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from orchestrator.pki import node_token
from tests.support.cluster import ROOT, Cluster, running, wait_for

pytestmark = pytest.mark.docker

POD = resolve("pods")
NODE = resolve("nodes")
IMAGE = "dockyard/busybox:1"

# Runs the CLI with the logs/exec/top commands registered even where the main parser does
# not list them (yet): the same parser and dispatch as `python -m orchestrator`.
CLI = """
import argparse, sys
from orchestrator.cli import main as m
from orchestrator.cli import exec as ex, logs, top
build = m.build_parser
def build_parser():
    p = build()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for mod, name in ((logs, "logs"), (ex, "exec"), (top, "top")):
        if name not in sub.choices:
            mod.register(sub)
    return p
m.build_parser = build_parser
sys.exit(m.main(sys.argv[1:]))
"""


def cli(cluster: Cluster, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=input, capture_output=True, text=True, env=cluster.env(), cwd=str(ROOT),
                          timeout=timeout)


def cli_popen(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CLI, "--kubeconfig", str(cluster.kubeconfig), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
                            cwd=str(ROOT))


def pod(name: str, script: str, containers: int = 1) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c" if i == 0 else f"c{i}", "image": IMAGE,
                                     "command": ["sh", "-c", script]} for i in range(containers)]}}


ECHO = "for i in 1 2 3 4 5; do echo line $i; done; sleep 3600"
WAITER = "echo start; while [ ! -f /go ]; do sleep 0.1; done; echo after-request; sleep 3600"
BUSY = "while :; do :; done"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses."""
    with running(Cluster(tmp_path_factory.mktemp("cluster"), cluster_cidr="10.213.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def pods(cluster: Cluster) -> Iterator[None]:
    for name, script, n in (("echo", ECHO, 1), ("waiter", WAITER, 1), ("busy", BUSY, 1), ("two", ECHO, 2)):
        cluster.client.create(pod(name, script, n), "default")
    for name in ("echo", "waiter", "busy", "two"):
        wait_for(lambda n=name: cluster.client.get(POD, n, "default").get("status", {}).get("phase") == "Running",
                 60, what=f"pod {name} running")
    yield
    for name in ("echo", "waiter", "busy", "two"):
        cluster.client.delete(POD, name, "default", grace_period=0)


def test_logs_of_a_pod(cluster: Cluster, pods: None) -> None:
    r = wait_for(lambda: (lambda r: r if "line 5" in r.stdout else None)(cli(cluster, "logs", "echo")), 20,
                 what="echo's output")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"line {i}" for i in range(1, 6)]
    r = cli(cluster, "logs", "pod/echo", "--tail", "2", "--timestamps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1].endswith("line 5")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", lines[0])
    # several containers and none named: kubectl's default container (the first), said on stderr
    r = cli(cluster, "logs", "two")
    assert r.returncode == 0, r.stderr
    assert 'Defaulted container "c" out of: c, c1' in r.stderr
    assert r.stdout == cli(cluster, "logs", "two", "-c", "c").stdout
    # the API itself still wants a container named, with Kubernetes' message
    with pytest.raises(ApiError) as e:
        cluster.client.request("GET", "/api/v1/namespaces/default/pods/two/log")
    assert "a container name must be specified for pod two, choose one of: [c c1]" in e.value.message
    assert "line 1" in cli(cluster, "logs", "two", "-c", "c1").stdout
    r = cli(cluster, "logs", "nothere")
    assert r.returncode == 1 and "NotFound" in r.stderr


def test_logs_follow_streams_new_lines_and_exec_exit_codes(cluster: Cluster, pods: None) -> None:
    follower = cli_popen(cluster, "logs", "-f", "waiter")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().strip() == "start"
        # the line below is written only after the follow request is running
        r = cli(cluster, "exec", "waiter", "--", "touch", "/go")
        assert r.returncode == 0, r.stderr
        assert follower.stdout.readline().strip() == "after-request"
    finally:
        follower.kill()
        follower.wait(10)


def test_exec_returns_exit_code_and_output(cluster: Cluster, pods: None) -> None:
    r = cli(cluster, "exec", "echo", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "hello\n" and r.stderr == "oops\n"
    r = cli(cluster, "exec", "echo", "--", "sh", "-c", "echo ok")
    assert r.returncode == 0 and r.stdout == "ok\n"
    r = cli(cluster, "exec", "-i", "echo", "--", "sh", "-c", "tr a-z A-Z")
    assert r.returncode == 0, r.stderr
    r = cli(cluster, "exec", "-i", "echo", "--", "tr", "a-z", "A-Z", input="piped input\n")
    assert r.returncode == 0 and r.stdout == "PIPED INPUT\n", r.stderr
    r = cli(cluster, "exec", "echo", "--", "/no/such/binary")
    assert r.returncode != 0
    r = cli(cluster, "exec", "nothere", "--", "true")
    assert r.returncode == 1 and "NotFound" in r.stderr


def test_metrics_endpoint_has_busy_pod_cpu(cluster: Cluster, pods: None) -> None:
    node = cluster.client.get(NODE, cluster.node_name)
    port = int(node["metadata"]["annotations"]["dockyard.io/metrics-port"])
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")

    def busy_cpu() -> float | None:
        text = httpx.get(f"http://{ip}:{port}/metrics", timeout=10).text
        m = re.search(r'^container_cpu_usage_seconds_total\{container="c",namespace="default",pod="busy"\} (\S+)$',
                      text, re.M)
        return float(m.group(1)) if m and float(m.group(1)) > 0.2 else None

    assert wait_for(busy_cpu, 30, interval=1, what="busy pod CPU") > 0.2
    text = httpx.get(f"http://{ip}:{port}/metrics", timeout=10).text
    assert 'container_memory_working_set_bytes{container="c",namespace="default",pod="echo"}' in text
    assert "dockyard_pods_running" in text and 'dockyard_node_allocatable{resource="cpu"}' in text


def test_top_pods_and_nodes(cluster: Cluster, pods: None) -> None:
    r = cli(cluster, "top", "pods")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert {"busy", "echo", "waiter", "two"} <= set(rows)
    assert int(rows["busy"][1].rstrip("m")) >= 100  # a spinning shell uses most of a core
    r = cli(cluster, "top", "nodes")
    assert r.returncode == 0 and cluster.node_name in r.stdout, r.stderr
    data = cluster.client.request("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/busy")
    assert data["kind"] == "PodMetrics" and data["containers"][0]["usage"]["cpu"].endswith("n")


def test_log_and_exec_need_authentication_and_admin_rights(cluster: Cluster, pods: None) -> None:
    anon = httpx.Client(base_url=cluster.server, verify=False)
    r = anon.get("/api/v1/namespaces/default/pods/echo/log")
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    url = f"wss://127.0.0.1:{cluster.port}/api/v1/namespaces/default/pods/echo/exec?command=true"
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with pytest.raises(InvalidStatus) as e:
        connect(url, ssl=ctx, subprotocols=[execproto.V5])  # type: ignore[list-item]
    assert e.value.response.status_code == 401

    # a node identity may read pods, but not their logs, and may not exec
    secret = bytes.fromhex(json.loads((Path(cluster.data_dir) / "pki/tokens.json").read_text())["node_secret"])
    node = Client(cluster.server, node_token(secret, cluster.node_name), cluster.client.ca_pem)
    assert node.get(POD, "echo", "default")["metadata"]["name"] == "echo"
    assert node.http.get("/api/v1/namespaces/default/pods/echo/log").status_code == 403
    with pytest.raises(InvalidStatus) as e:
        connect(url, ssl=ctx, subprotocols=[execproto.V5],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {node.token}"})
    assert e.value.response.status_code == 403
    # nor can anyone talk to the agent directly without the master's client certificate
    n = cluster.client.get(NODE, cluster.node_name)
    kport = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    ip = next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://{ip}:{kport}/containerLogs/default/echo/c", verify=False, timeout=5)
    time.sleep(0)
