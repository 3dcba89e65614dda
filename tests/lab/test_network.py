"""The pod network and Services across three lab hosts.

One busybox httpd pod is pinned to each host (by the `lab-host` label the inventory gives
its node); each serves its own pod name and sits behind the ClusterIP Service "net-web".
From a pod on every host, the pods on the two other hosts answer by pod IP (host-gw routes
between the hosts' pod CIDRs), the Service answers by its DNS name (the node's DNS, the
node's iptables rules), and about thirty requests from one pod reach every backend on every
host.

The module shares the lab session with the other lab tests; it brings the fleet to three
nodes with `cluster up` (a no-op when they are all there) and removes what it created.
Traffic goes only to the lab's own pods and service IPs.
"""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Iterator

import pytest

from orchestrator.objects.kinds import resolve
from tests.lab.conftest import LabCluster
from tests.lab.lab import LabHost
from tests.support.cluster import wait_for

pytestmark = pytest.mark.lab

POD = resolve("pods")
SERVICE = resolve("services")
ENDPOINTS = resolve("endpoints")
NODE = resolve("nodes")
BUSYBOX = "dockyard/busybox:1"
# `/` names the pod; `/cgi-bin/ip` answers with the address the request came from
SERVE = (
    "mkdir -p /www/cgi-bin && hostname > /www/index.html"
    " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip"
    " && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www"
)


def backend(host: LabHost) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"net-web-h{host.index}", "namespace": "default", "labels": {"app": "net-web"}},
        "spec": {
            "nodeSelector": {"lab-host": f"h{host.index}"},
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", SERVE],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            }],
        },
    }


SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "net-web", "namespace": "default"},
    "spec": {"selector": {"app": "net-web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def node_ready(lc: LabCluster, name: str) -> bool:
    node = lc.client.get(NODE, name)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def ready_ips(lc: LabCluster) -> dict[str, str]:
    ep = lc.client.get(ENDPOINTS, "net-web", "default")
    return {a["targetRef"]["name"]: a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def pod_sh(lc: LabCluster, pod: dict, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `sh -c script` in the pod's container, on the lab host that runs it."""
    host = lc.lab.host(pod["spec"]["nodeName"])
    ids = lc.lab.exec_in(host, "docker", "ps", "-q", "--filter", f"label=dockyard.io/pod-name={pod['metadata']['name']}",
                         "--filter", "label=dockyard.io/container-name=httpd").stdout.split()
    assert ids, f"no container for {pod['metadata']['name']} on {host.name}"
    return lc.lab.exec_in(host, "docker", "exec", ids[0], "sh", "-c", script, check=False, timeout=timeout)


def fetch(lc: LabCluster, pod: dict, url: str, n: int = 1) -> list[str]:
    r = pod_sh(lc, pod, f"for i in $(seq {n}); do wget -O- {url} 2>/dev/null; done")
    return [line.strip() for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def backends(lab_cluster: LabCluster) -> Iterator[dict[str, dict]]:
    lc = lab_cluster
    r = lc.cli("cluster", "up", "-f", str(lc.inventory()), "--accept-new-host-keys", "-o", "json", timeout=600)
    assert r.returncode == 0, r.stderr
    for h in lc.lab.hosts:
        wait_for(lambda h=h: node_ready(lc, h.name), 60, what=f"{h.name} Ready")
        wait_for(lambda h=h: not lc.client.get(NODE, h.name)["spec"].get("taints"), 60, what=f"{h.name} untainted")
    names = [f"net-web-h{h.index}" for h in lc.lab.hosts]
    try:
        for h in lc.lab.hosts:
            lc.client.create(backend(h), "default")
        lc.client.create(dict(SVC), "default")
        wait_for(lambda: set(ready_ips(lc)) == set(names), 120, 0.5, what="three ready backends")
        pods = {n: lc.client.get(POD, n, "default") for n in names}
        yield pods
    finally:
        for n in names:
            try:
                lc.client.delete(POD, n, "default")
            except Exception:
                pass
        try:
            lc.client.delete(SERVICE, "net-web", "default")
        except Exception:
            pass


def test_pods_reach_each_other_across_hosts_by_pod_ip(lab_cluster: LabCluster, backends: dict[str, dict]) -> None:
    lc = lab_cluster
    hosts = {p["spec"]["nodeName"] for p in backends.values()}
    assert hosts == {h.name for h in lc.lab.hosts}
    for src in backends.values():
        for name, dst in backends.items():
            if dst["spec"]["nodeName"] == src["spec"]["nodeName"]:
                continue
            got = fetch(lc, src, f"http://{dst['status']['podIP']}:8080/")
            assert got == [name], (src["metadata"]["name"], src["spec"]["nodeName"], "->", name,
                                   dst["spec"]["nodeName"], dst["status"]["podIP"], got)
            # unmasqueraded: the peer sees the pod's own IP, not its node's
            seen_from = [a.strip("[]").removeprefix("::ffff:")  # httpd reports an IPv4-mapped address
                         for a in fetch(lc, src, f"http://{dst['status']['podIP']}:8080/cgi-bin/ip")]
            assert seen_from == [src["status"]["podIP"]], (src["metadata"]["name"], "->", name, seen_from)


def test_service_by_dns_name_from_every_host(lab_cluster: LabCluster, backends: dict[str, dict]) -> None:
    lc = lab_cluster
    for src in backends.values():
        got = wait_for(lambda src=src: fetch(lc, src, "http://net-web.default.svc.cluster.local/"), 20,
                       what=f"the service by name from {src['spec']['nodeName']}")
        assert got[0] in backends
        short = fetch(lc, src, "http://net-web/")
        assert short and short[0] in backends


def test_service_spreads_over_backends_on_all_hosts(lab_cluster: LabCluster, backends: dict[str, dict]) -> None:
    lc = lab_cluster
    client = backends[sorted(backends)[0]]
    answers = fetch(lc, client, "http://net-web.default.svc.cluster.local/", 30)
    assert len(answers) == 30
    seen = collections.Counter(answers)
    assert set(seen) == set(backends), seen
