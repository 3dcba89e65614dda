"""A master and a separate `dockyard agent` process: the agent joins with the join token,
and after `kill -9` and a restart it re-adopts its containers instead of duplicating them;
a pod that was Ready stays Ready while its agent restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, free_port, wait_for

pytestmark = pytest.mark.docker

POD = resolve("pods")
DEPLOY = resolve("deployments")
NODE = resolve("nodes")


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
        c.remove_containers(agent.data_dir)


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


def ready_condition(pod: dict[str, Any]) -> str | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


def container_ids(pod: dict[str, Any]) -> list[str]:
    return [str(s.get("containerID", "")) for s in pod.get("status", {}).get("containerStatuses") or []]


def _time(value: Any) -> float:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() if value else 0.0


def last_heartbeat(c: Cluster) -> float:
    """The node's latest sign of life: its Lease's renewTime or its Ready condition's
    lastHeartbeatTime (whole seconds), whichever is later."""
    latest = 0.0
    node = c.client.get(NODE, c.node_name)
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            latest = max(latest, _time(cond.get("lastHeartbeatTime")))
    with contextlib.suppress(ApiError, KeyError):
        lease = c.client.get(resolve("leases"), c.node_name, "kube-node-lease")
        latest = max(latest, _time(lease.get("spec", {}).get("renewTime")))
    return latest


WINDOW_CLOSED = "test.dockyard.io/window-closed"


class PodWatch(threading.Thread):
    """Every version of one pod the API serves from a resourceVersion on, up to the first
    that carries the WINDOW_CLOSED annotation (the test writes it to end the watch)."""

    def __init__(self, kubeconfig: Path, name: str, resource_version: str) -> None:
        super().__init__(daemon=True)
        self.client = Client.from_kubeconfig(str(kubeconfig))
        self.name, self.resource_version = name, resource_version
        self.seen: list[dict[str, Any]] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            for ev in self.client.watch(POD, "default", resource_version=self.resource_version,
                                        field_selector=f"metadata.name={self.name}", timeout_seconds=120):
                obj = ev["object"]
                if WINDOW_CLOSED in (obj.get("metadata", {}).get("annotations") or {}):
                    return
                self.seen.append(obj)
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.client.close()


def test_agent_restart_keeps_ready_pods_ready(split: tuple[Cluster, Agent], demo_image: str) -> None:
    c, agent = split
    name = "ready-across-restart"
    c.client.create({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{
            "name": "web",
            "image": demo_image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 80, "name": "http"}],
            # a long period: a readiness that restarted from "not ready" would show for a while
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        }]},
    }, "default")
    try:
        def ready() -> dict[str, Any] | None:
            p = c.client.get(POD, name, "default")
            return p if ready_condition(p) == "True" else None

        pod = wait_for(ready, 60, what="the pod Ready")
        ids = container_ids(pod)
        assert len(ids) == 1 and ids[0].startswith("docker://"), ids
        watch = PodWatch(c.kubeconfig, name, pod["metadata"]["resourceVersion"])
        watch.start()

        agent.stop()  # SIGTERM (and waits for the exit); the pod's containers keep running
        started_at = time.time()
        agent.start()
        # Watched for 10 s, and at least 5 s after the new agent's first heartbeat (a Lease
        # renewal or Node status stamped after it started, so not the old agent's last one):
        # its first sync of the pod and the readiness probe it runs at once fall inside.
        renewed = False
        deadline = time.monotonic() + 60
        window_end = time.monotonic() + 10
        polls = 0
        while time.monotonic() < deadline and not (renewed and time.monotonic() >= window_end):
            now = c.client.get(POD, name, "default")
            polls += 1
            assert ready_condition(now) == "True", now.get("status")
            assert container_ids(now) == ids, now.get("status")
            if not renewed and last_heartbeat(c) > started_at:
                renewed = True
                window_end = max(window_end, time.monotonic() + 5)
            time.sleep(0.15)
        assert renewed, f"the restarted agent never renewed its heartbeat:\n{agent.log.read_text()[-2000:]}"
        assert polls >= 20

        # every version of the pod written meanwhile (the watch misses none the polls might)
        c.client.patch(POD, name, {"metadata": {"annotations": {WINDOW_CLOSED: "true"}}}, "default")
        watch.join(timeout=20)
        assert not watch.is_alive() and watch.error is None, watch.error
        for version in watch.seen:
            assert ready_condition(version) == "True", version.get("status")
            assert container_ids(version) == ids, version.get("status")
    finally:
        c.client.delete(POD, name, "default")
        wait_for(lambda: not [p for p in c.client.list(POD, "default")["items"] if p["metadata"]["name"] == name],
                 60, what="the pod deleted")
