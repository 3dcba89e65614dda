"""A master and a separate `dockyard agent` process: the agent joins with the join token,
and after `kill -9` and a restart it re-adopts its containers instead of duplicating them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, free_port, wait_for

pytestmark = pytest.mark.docker

POD = resolve("pods")
DEPLOY = resolve("deployments")


class Agent:
    def __init__(self, cluster: Cluster, base: Path) -> None:
        self.cluster = cluster
        self.data_dir = base / "agent"
        self.log = base / "agent.log"
        self.ports = (free_port(), free_port())
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        token = (self.cluster.data_dir / "join-token").read_text().strip()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "agent", "--server", self.cluster.server,
                 "--token", token, "--name", self.cluster.node_name, "--data-dir", str(self.data_dir),
                 "--pod-network", f"dy-{self.cluster.node_name}", "--heartbeat", "1",
                 "--kubelet-port", str(self.ports[0]), "--metrics-port", str(self.ports[1])],
                stdout=log, stderr=subprocess.STDOUT, env=self.cluster.env(), cwd=str(ROOT),
                start_new_session=True,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[tuple[Cluster, Agent]]:
    base = tmp_path_factory.mktemp("split")
    c = Cluster(base, extra_args=("--no-agent",))
    c.start(wait_node=False)
    agent = Agent(c, base)
    try:
        agent.start()
        wait_for(c.node_ready, 60, what="the joined node Ready")
        yield c, agent
    finally:
        agent.stop()
        c.stop()
        c.remove_containers()


def test_agent_joins_with_the_token_and_has_its_own_identity(split: tuple[Cluster, Agent]) -> None:
    c, agent = split
    saved = (agent.data_dir / "node-token").read_text().strip()
    assert saved.startswith(f"node:{c.node_name}:")
    assert (agent.data_dir / "node-token").stat().st_mode & 0o077 == 0
    # the node identity may not create pods
    from orchestrator.client import Client

    ca = (agent.data_dir / "ca.crt").read_bytes()
    with Client(c.server, saved, ca) as node_client, pytest.raises(Exception) as e:
        node_client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                            "spec": {"containers": [{"name": "c", "image": "i:1"}]}}, "default")
    assert getattr(e.value, "code", None) == 403
    # the CA signed its serving certificate for its node name at join; the master checks it
    from orchestrator import nodecerts

    assert (agent.data_dir / "serving.key").stat().st_mode & 0o077 == 0
    assert not nodecerts.needs_renewal((agent.data_dir / "serving.crt").read_bytes(), c.node_name, ca)
    assert len((agent.data_dir / "node-password").read_text().strip()) >= 32


def test_agent_kill9_readopts_without_duplicates(split: tuple[Cluster, Agent]) -> None:
    c, agent = split
    r = c.cli("apply", "-f", str(ROOT / "deploy/examples/web.yaml"))
    assert r.returncode == 0, r.stderr

    def ready() -> bool:
        d = c.client.get(DEPLOY, "web", "default")
        return d.get("status", {}).get("readyReplicas", 0) == 3

    wait_for(ready, 90, what="3 ready pods")
    # logs and exec reach this agent through the master, over the verified certificate
    pod = c.client.list(POD, "default")["items"][0]["metadata"]["name"]
    r = c.cli("exec", pod, "--", "echo", "through-the-proxy")
    assert r.returncode == 0 and "through-the-proxy" in r.stdout, r.stderr
    r = c.cli("logs", pod)
    assert r.returncode == 0, r.stderr
    before = sorted(c.containers())
    assert len(before) == 6  # 3 sandboxes + 3 app containers
    statuses = {p["metadata"]["name"]: [s["restartCount"] for s in p["status"]["containerStatuses"]]
                for p in c.client.list(POD, "default")["items"]}

    agent.kill9()
    assert sorted(c.containers()) == before  # pods keep running without their agent
    agent.start()
    wait_for(c.node_ready, 30, what="the node Ready again")
    # give the restarted agent several resyncs to do something wrong
    import time

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert sorted(c.containers()) == before
        time.sleep(0.5)
    after = {p["metadata"]["name"]: [s["restartCount"] for s in p["status"]["containerStatuses"]]
             for p in c.client.list(POD, "default")["items"]}
    assert after == statuses
    all_containers = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=dockyard.io/node={c.node_name}"],
        capture_output=True, text=True, check=True).stdout.split()
    assert len(all_containers) == 6
