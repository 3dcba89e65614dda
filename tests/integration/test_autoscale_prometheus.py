"""The autoscaler reads Pods and External metrics from a real Prometheus (master --prometheus-url).

The test picks Prometheus's port first, starts the cluster with ``--prometheus-url`` pointing
at it, then runs Debian's Prometheus with a copy of deploy/prometheus/prometheus.yml filled in
as its header says. The copy's one change is ``scrape_interval: 15s`` -> ``2s`` (global), so
new pods show up in a couple of seconds instead of up to fifteen; the HPA sync period is 2 s
(``DOCKYARD_HPA_SYNC_SECONDS``).

Metric values are chosen to be deterministic while still going through the agents' series
as Prometheus scraped them:

* Pods metric: a PromQL expression that splits a fixed total of 6 over the target's pods
  that Prometheus has seen (one ``container_memory_working_set_bytes`` series each), like
  a steady request rate spread over the replicas. With a target of 2 per pod, the
  algorithm wants ceil(6/1 / 2 * 1) = 3 replicas from one pod, then stays at 3 (2 per pod
  is on target).
* External metric with an ``AverageValue`` target of 1 and ``minReplicas: 0``: first
  ``count(up{job="dockyard-agents"} == 1) * 2`` (2: the one agent is up), then the HPA's
  metric expression is patched to ``vector(0)`` (scale to zero: ceil(0 / 1)) and to
  ``vector(3)`` (back up from zero: ceil(3 / 1)).
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, free_port, running, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
NS = "default"
SCRAPE_INTERVAL = "2s"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not PROMETHEUS.exists(), reason="Debian's prometheus is not installed"),
]

# 6 units in total, split evenly over the target's pods Prometheus has a series for
SPLIT = ('count by (pod) (container_memory_working_set_bytes{namespace="$namespace",pod=~"$pods"}) * 6 '
         '/ scalar(count(container_memory_working_set_bytes{namespace="$namespace",pod=~"$pods"}))')
AGENTS_UP = 'count(up{job="dockyard-agents"} == 1) * 2'


class PrometheusCluster(Cluster):
    def __init__(self, base: Path, prometheus_port: int) -> None:
        super().__init__(base, cluster_cidr="10.219.0.0/16",
                         extra_args=("--prometheus-url", f"http://127.0.0.1:{prometheus_port}"))

    def env(self) -> dict[str, str]:
        env = super().env()
        env["DOCKYARD_HPA_SYNC_SECONDS"] = "2"
        return env


def write_config(cluster: Cluster, workdir: Path) -> Path:
    """The shipped config for `cluster`, with the global scrape interval shortened."""
    shipped = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    assert "  scrape_interval: 15s\n" in shipped
    config = shipped.replace("DOCKYARD_MASTER", urlsplit(cluster.server).netloc)
    config = config.replace("  scrape_interval: 15s\n", f"  scrape_interval: {SCRAPE_INTERVAL}\n", 1)
    path = workdir / "prometheus.yml"
    path.write_text(config)
    shutil.copy(cluster.data_dir / "pki/ca.crt", workdir / "ca.crt")
    shutil.copy(cluster.data_dir / "prometheus-token", workdir / "prometheus-token")
    return path


@pytest.fixture(scope="module")
def prom_cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[tuple[Cluster, str]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(PrometheusCluster(tmp_path_factory.mktemp("autoscale-prom"), port)) as c:
        workdir = tmp_path_factory.mktemp("prometheus")
        config = write_config(c, workdir)
        log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 30, what="Prometheus ready")
            wait_for(lambda: query(url, AGENTS_UP) == [2.0], 30, interval=0.5, what="the agent up in Prometheus")
            yield c, url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            log.close()


def query(url: str, expr: str) -> list[float]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    return [float(r["value"][1]) for r in body["data"]["result"]]


def deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", "while :; do sleep 1; done"]}],
                },
            },
        },
    }


def autoscaler(name: str, lo: int, hi: int, metric: dict[str, Any],
               behavior: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": lo, "maxReplicas": hi, "metrics": [metric],
    }
    if behavior:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def replicas_of(cluster: Cluster, name: str) -> int:
    return int(cluster.client.get(resolve("deployments"), name, NS)["spec"]["replicas"])


def hpa_status(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.client.get(resolve("hpa"), name, NS).get("status") or {}


def wait_replicas(cluster: Cluster, name: str, want: int, timeout: float) -> None:
    try:
        wait_for(lambda: replicas_of(cluster, name) == want, timeout, interval=0.3, what=f"{name} scaled to {want}")
    except AssertionError as e:
        raise AssertionError(f"{e}; HPA status: {hpa_status(cluster, name)}") from None


def rescale_messages(cluster: Cluster, name: str) -> list[str]:
    return [e["message"] for e in cluster.client.list(resolve("events"), NS)["items"]
            if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"
            and e["involvedObject"].get("name") == name and e["reason"] == "SuccessfulRescale"]


def set_external(cluster: Cluster, name: str, expr: str) -> None:
    """Replace the HPA's External metric expression (a spec change: the HPA is evaluated at once)."""
    def replaced() -> bool:
        hpa = cluster.client.get(resolve("hpa"), name, NS)
        hpa["spec"]["metrics"][0]["external"]["metric"]["name"] = expr
        cluster.client.replace(hpa)  # a 409 from a concurrent status write is retried
        return True

    wait_for(replaced, 10, interval=0.2, what=f"the HPA's metric set to {expr}")


def test_pods_metric_from_prometheus(prom_cluster: tuple[Cluster, str], demo_image: str) -> None:
    cluster, url = prom_cluster
    c = cluster.client
    c.create(deployment("split", demo_image, 1), NS)
    wait_for(lambda: (c.get(resolve("deployments"), "split", NS).get("status") or {}).get("readyReplicas") == 1,
             60, what="the deployment ready")
    # what the controller will ask, with the pod substituted: 6 for the one pod
    pod = c.list(resolve("pods"), NS, label_selector="app=split")["items"][0]["metadata"]["name"]
    concrete = SPLIT.replace("$namespace", NS).replace("$pods", pod)
    wait_for(lambda: query(url, concrete) == [6.0], 30, interval=0.5, what="the pod's series in Prometheus")

    target = 2
    c.create(autoscaler("split", 1, 10, {"type": "Pods", "pods": {
        "metric": {"name": SPLIT}, "target": {"type": "AverageValue", "averageValue": str(target)}}}), NS)
    want = min(10, max(2 * 1, 4), math.ceil(6 / 1 / target * 1))
    assert want == 3
    wait_replicas(cluster, "split", want, 30)
    assert f"New size: {want}; reason: pods metric {SPLIT} above target" in rescale_messages(cluster, "split")

    # every new pod scraped: 6/3 = 2 per pod, on target; the HPA reports it and stays
    def on_target() -> dict[str, Any] | None:
        st = hpa_status(cluster, "split")
        metrics = st.get("currentMetrics") or []
        current = metrics[0]["pods"]["current"]["averageValue"] if metrics else None
        return st if current == str(target) and st.get("currentReplicas") == want else None

    st = wait_for(on_target, 40, interval=0.5, what="the HPA to measure 2 per pod over 3 pods")
    assert st["desiredReplicas"] == want
    active = next(cond for cond in st["conditions"] if cond["type"] == "ScalingActive")
    assert active["status"] == "True", st
    time.sleep(5)  # two more rounds: no change
    assert replicas_of(cluster, "split") == want
    c.delete(resolve("hpa"), "split", NS)
    c.delete(resolve("deployments"), "split", NS)


def test_external_metric_scales_to_zero_and_back(prom_cluster: tuple[Cluster, str], demo_image: str) -> None:
    cluster, _ = prom_cluster
    c = cluster.client
    c.create(deployment("queue", demo_image, 1), NS)
    metric = {"type": "External", "external": {
        "metric": {"name": AGENTS_UP}, "target": {"type": "AverageValue", "averageValue": "1"}}}
    c.create(autoscaler("queue", 0, 5, metric, {"scaleDown": {"stabilizationWindowSeconds": 0}}), NS)

    wait_replicas(cluster, "queue", 2, 30)  # one agent up: 2 / 1 per pod
    assert f"New size: 2; reason: external metric {AGENTS_UP} above target" in rescale_messages(cluster, "queue")

    set_external(cluster, "queue", "vector(0)")
    wait_replicas(cluster, "queue", 0, 30)
    wait_for(lambda: not c.list(resolve("pods"), NS, label_selector="app=queue")["items"], 30, interval=0.5,
             what="the queue pods gone")
    st = hpa_status(cluster, "queue")
    assert st["desiredReplicas"] == 0 and st["currentMetrics"][0]["external"]["current"]["averageValue"] == "0", st
    assert "New size: 0; reason: All metrics below target" in rescale_messages(cluster, "queue")

    set_external(cluster, "queue", "vector(3)")
    wait_replicas(cluster, "queue", 3, 30)
    wait_for(lambda: (c.get(resolve("deployments"), "queue", NS).get("status") or {}).get("readyReplicas") == 3,
             60, what="3 queue pods ready")
    assert "New size: 3; reason: external metric vector(3) above target" in rescale_messages(cluster, "queue")
