"""A real Prometheus (Debian's) scrapes a running cluster using only the shipped config.

The test copies deploy/prometheus/prometheus.yml, fills in the cluster address, puts the
cluster CA and the scrape token next to it (as the file's header says), starts
/usr/bin/prometheus on a free loopback port and waits until /api/v1/targets reports every
agent and the master `up`. It also checks the master's /metrics series and its auth.
"""

from __future__ import annotations

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
from tests.support.cluster import ROOT, Cluster, free_port, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")

pytestmark = pytest.mark.skipif(not PROMETHEUS.exists(), reason="Debian's prometheus is not installed")


def start_prometheus(cluster: Cluster, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run Prometheus with the shipped config for `cluster`; returns (process, base URL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    master = urlsplit(cluster.server).netloc
    (workdir / "prometheus.yml").write_text(config.replace("DOCKYARD_MASTER", master))
    shutil.copy(cluster.data_dir / "pki/ca.crt", workdir / "ca.crt")
    shutil.copy(cluster.data_dir / "prometheus-token", workdir / "prometheus-token")
    port = free_port()
    log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={workdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop_prometheus(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_prometheus(cluster, tmp_path_factory.mktemp("prometheus"))
    try:
        wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 30, what="Prometheus ready")
        yield url
    finally:
        stop_prometheus(proc)


def active_targets(url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    return list(body["data"]["activeTargets"])


def test_every_agent_and_the_master_are_up(cluster: Cluster, prometheus: str) -> None:
    nodes = [n["metadata"]["name"] for n in cluster.client.list(resolve("nodes"))["items"]]

    def all_up() -> list[dict[str, Any]] | None:
        targets = active_targets(prometheus)
        agents = {t["labels"].get("node") for t in targets
                  if t["labels"]["job"] == "dockyard-agents" and t["health"] == "up"}
        master = [t for t in targets if t["labels"]["job"] == "dockyard-master" and t["health"] == "up"]
        return targets if agents >= set(nodes) and master else None

    targets = wait_for(all_up, 90, interval=1.0, what="every agent and the master up in Prometheus")
    master = next(t for t in targets if t["labels"]["job"] == "dockyard-master")
    assert master["scrapeUrl"].startswith(f"{cluster.server}/metrics")

    # the scraped series are queryable
    def queried() -> bool:
        r = httpx.get(f"{prometheus}/api/v1/query", params={"query": "dockyard_store_size_bytes"}, timeout=5).json()
        return bool(r["data"]["result"]) and float(r["data"]["result"][0]["value"][1]) > 0

    wait_for(queried, 30, interval=1.0, what="dockyard_store_size_bytes in Prometheus")


def test_master_metrics_need_a_token(cluster: Cluster) -> None:
    ca = str(cluster.data_dir / "pki/ca.crt")
    token = (cluster.data_dir / "prometheus-token").read_text().strip()
    assert httpx.get(f"{cluster.server}/metrics", verify=ca, timeout=5).status_code == 401
    assert httpx.get(f"{cluster.server}/metrics", verify=ca, timeout=5,
                     headers={"Authorization": "Bearer nope"}).status_code == 401
    cluster.client.list(resolve("pods"))  # at least one API request to measure
    time.sleep(0.1)
    body = httpx.get(f"{cluster.server}/metrics", verify=ca, timeout=5,
                     headers={"Authorization": f"Bearer {token}"}).text
    for series in ("dockyard_apiserver_request_duration_seconds_bucket", "dockyard_controller_queue_depth",
                   "dockyard_controller_sync_duration_seconds_count", "dockyard_store_size_bytes"):
        assert series in body
    assert 'verb="LIST",resource="pods"' in body or 'resource="pods",verb="LIST"' in body
    sd = httpx.get(f"{cluster.server}/prometheus/targets", verify=ca, timeout=5,
                   headers={"Authorization": f"Bearer {token}"}).json()
    roles = [g["labels"]["__meta_dockyard_role"] for g in sd]
    assert roles.count("master") == 1 and "agent" in roles
