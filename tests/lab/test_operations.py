"""Fleet operations under load: agent restarts, upgrades, frozen hosts and cut links.

A Deployment "ops-web" of six busybox httpd pods (an httpGet readiness probe, a SIGTERM
trap that keeps serving for two seconds) sits behind the Service "ops-web", spread over the
three lab hosts. A load client pod on host 0 (`tests.lab.load.LoadClient`) fetches
`http://ops-web/` through the node's cluster DNS and Service rules about 20 times a second,
each request with a 1 s timeout, and logs every request with its start and end time on the
machine's uptime clock, so the test can line them up with what it saw through the API.

* Agent SIGTERM and restart on the client's own node: not one request fails, and no
  container on that node is restarted.
* `dockyard node upgrade` of all three nodes (in place: the pods need no change): not one
  request fails, no container is restarted.
* A host frozen (SIGSTOP of every process on it) and a host whose link is cut: requests
  that reach its pods fail until the Node turns NotReady; from 1 s after that, none does;
  and all six replicas are Ready on the other hosts within 20 s of the loss, with default
  settings.

Each test prints its counts and times. Traffic goes only to the lab's own pods and
service IPs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from orchestrator.objects.kinds import resolve
from orchestrator.objects.nodeinfo import agent_instance
from tests.lab.conftest import REPORTS, LabCluster
from tests.lab.lab import LabHost
from tests.lab.load import LoadClient, LoadResult, uptime
from tests.support.cluster import wait_for

pytestmark = pytest.mark.lab

POD = resolve("pods")
NODE = resolve("nodes")
DEPLOY = resolve("deployments")
SERVICE = resolve("services")
REPLICAS = 6
RECOVERY_LIMIT = 20.0  # s from the loss to every replica Ready on the other hosts
QUIET_AFTER = 1.0  # s after NotReady from which no request may fail

SERVE = (
    "mkdir -p /www && hostname > /www/index.html; "
    "httpd -f -p 8080 -h /www & pid=$!; "
    "trap 'sleep 2; kill $pid; exit 0' TERM; "
    "wait $pid"
)


def web(replicas: int = REPLICAS) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ops-web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "ops-web"}},
            "template": {
                "metadata": {"labels": {"app": "ops-web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "httpd",
                        "image": "dockyard/busybox:1",
                        "imagePullPolicy": "Never",
                        "command": ["sh", "-c", SERVE],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "ops-web", "namespace": "default"},
    "spec": {"selector": {"app": "ops-web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def is_ready(obj: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def node_status(lc: LabCluster, name: str) -> str:
    node = lc.client.get(NODE, name)
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def ready_web(lc: LabCluster) -> list[dict]:
    pods = lc.client.list(POD, "default", label_selector="app=ops-web")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p)]


def containers_on(lc: LabCluster, host: LabHost) -> set[str]:
    r = lc.lab.exec_in(host, "docker", "ps", "-q", "--no-trunc", "--filter", "label=dockyard.io/managed=true")
    return set(r.stdout.split())


def settle(lc: LabCluster) -> None:
    """Every node Ready and untainted, six web pods Ready on all three hosts."""
    for h in lc.lab.hosts:
        wait_for(lambda h=h: node_status(lc, h.name) == "True", 90, what=f"{h.name} Ready")
        wait_for(lambda h=h: not lc.client.get(NODE, h.name)["spec"].get("taints"), 60, what=f"{h.name} untainted")
    if {p["spec"]["nodeName"] for p in wait_for(lambda: _six(lc), 120, what="six ready web pods")} != {
            h.name for h in lc.lab.hosts}:
        # spread them again (after a failover they all run on the survivors)
        assert lc.cli("rollout", "restart", "deployment/ops-web").returncode == 0
        wait_for(lambda: _spread(lc), 180, 1, what="six ready web pods on all three hosts")


def _six(lc: LabCluster) -> list[dict] | None:
    pods = ready_web(lc)
    return pods if len(pods) == REPLICAS else None


def _spread(lc: LabCluster) -> bool:
    pods = lc.client.list(POD, "default", label_selector="app=ops-web")["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return (len(live) == REPLICAS and all(is_ready(p) for p in live)
            and {p["spec"]["nodeName"] for p in live} == {h.name for h in lc.lab.hosts})


@pytest.fixture(scope="module")
def service(lab_cluster: LabCluster) -> Iterator[LabCluster]:
    lc = lab_cluster
    r = lc.cli("cluster", "up", "-f", str(lc.inventory()), "--accept-new-host-keys", "-o", "json", timeout=600)
    assert r.returncode == 0, r.stderr
    try:
        lc.client.create(web(), "default")
        lc.client.create(dict(SVC), "default")
        settle(lc)
        yield lc
    finally:
        for kind, name in ((DEPLOY, "ops-web"), (SERVICE, "ops-web")):
            try:
                lc.client.delete(kind, name, "default")
            except Exception:
                pass


def load(lc: LabCluster, name: str) -> LoadClient:
    return LoadClient(lc, 0, "http://ops-web/", rate=20.0, timeout_s=1, max_requests=20000, seconds=400, name=name)


def report(what: str, result: LoadResult, **times: float) -> None:
    extra = " ".join(f"{k}={v:.2f}s" for k, v in times.items())
    line = f"{what}: {result.summary()} {extra}".rstrip()
    REPORTS.append(line)
    print("\n" + line)


def test_agent_restart_on_the_clients_node_drops_nothing(service: LabCluster) -> None:
    lc = service
    settle(lc)
    host = lc.lab.hosts[0]
    before = containers_on(lc, host)
    old = agent_instance(lc.client.get(NODE, host.name))
    with load(lc, "load-restart") as client:
        client.start()
        time.sleep(2)  # a steady state first
        t0 = uptime()
        lc.lab.exec_in(host, "sh", "-c", "kill -TERM $(cat /run/dockyard/agent.pid)")
        # the supervisor starts a new agent; it is up when the Node is Ready under a new instance
        wait_for(lambda: agent_instance(lc.client.get(NODE, host.name)) != old
                 and node_status(lc, host.name) == "True", 60, 0.2, what="the restarted agent")
        t_back = uptime()
        time.sleep(3)  # and a while after it took over
        result = client.finish()
    report("agent restart", result, back_after=t_back - t0)
    assert result.sent > 50 and result.failed == 0, result.failure_lines()
    assert containers_on(lc, host) == before  # adopted, not restarted


def test_node_upgrade_of_all_nodes_drops_nothing(service: LabCluster) -> None:
    lc = service
    settle(lc)
    before = {h.name: containers_on(lc, h) for h in lc.lab.hosts}
    with load(lc, "load-upgrade") as client:
        client.start()
        time.sleep(2)
        t0 = uptime()
        r = lc.cli("node", "upgrade", "-f", str(lc.base / "cluster.yaml"), "-o", "json", timeout=900)
        t1 = uptime()
        time.sleep(2)
        result = client.finish()
    report("node upgrade x3", result, upgrade=t1 - t0)
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["nodes"]
    assert [(s["result"], s["message"]) for s in steps] == [("ok", "upgraded in place")] * 3
    assert result.sent > 50 and result.failed == 0, result.failure_lines()
    assert {h.name: containers_on(lc, h) for h in lc.lab.hosts} == before


def _lose_a_host(lc: LabCluster, what: str, lose: Callable[[LabHost], None],
                 restore: Callable[[LabHost], None]) -> None:
    settle(lc)
    victim = lc.lab.hosts[2]
    with load(lc, f"load-{what}") as client:
        client.start()
        time.sleep(2)
        t_loss = uptime()
        lose(victim)
        try:
            t_not_ready: float | None = None
            t_recovered: float | None = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (t_not_ready is None or t_recovered is None):
                if t_not_ready is None and node_status(lc, victim.name) != "True":
                    t_not_ready = uptime()
                if t_recovered is None:
                    pods = ready_web(lc)
                    if len(pods) == REPLICAS and all(p["spec"]["nodeName"] != victim.name for p in pods):
                        t_recovered = uptime()
                time.sleep(0.1)
            time.sleep(2)
            result = client.finish()
        finally:
            restore(victim)
    assert t_not_ready is not None, f"{victim.name} never turned NotReady"
    assert t_recovered is not None, "the replicas did not all become Ready elsewhere within 60 s"
    late = result.failures_after(t_not_ready + QUIET_AFTER)
    report(f"host {what}", result, detection=t_not_ready - t_loss, recovery=t_recovered - t_loss,
           last_failure=max((r.start for r in result.requests if not r.ok), default=t_loss) - t_loss)
    assert result.sent > 100
    assert late == [], [f"{r.seq} {r.start - t_loss:.2f}s {r.detail}" for r in late]
    assert t_recovered - t_loss <= RECOVERY_LIMIT, f"recovery took {t_recovered - t_loss:.1f}s"
    # the host comes back; its agent removes the containers of the pods that moved away
    wait_for(lambda: node_status(lc, victim.name) == "True", 90, what=f"{victim.name} back Ready")
    wait_for(lambda: not lc.client.get(NODE, victim.name)["spec"].get("taints"), 60, what="taints removed")
    wait_for(lambda: not containers_on(lc, victim), 90, 1, what="the moved pods' containers removed")


def test_frozen_host_leaves_the_service_at_detection(service: LabCluster) -> None:
    _lose_a_host(service, "frozen", service.lab.freeze, service.lab.thaw)


def test_cut_host_leaves_the_service_at_detection(service: LabCluster) -> None:
    _lose_a_host(service, "cut", service.lab.cut, service.lab.heal)
