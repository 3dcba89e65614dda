"""A real single-node cluster for integration tests: `dockyard up` in a subprocess.

Each cluster gets its own data dir, port, node name and pod network, so it never touches
another cluster's containers on the same Docker engine. Helpers poll with deadlines.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.client import Client
from orchestrator.objects.kinds import resolve

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # keep polling through transient errors
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Cluster:
    def __init__(self, base: Path, cluster_cidr: str | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.kubeconfig = base / "kubeconfig"
        self.port = free_port()
        self.node_name = f"dy-test-{uuid.uuid4().hex[:6]}"
        # a pod network of its own, so clusters sharing one Docker engine never overlap
        self.cluster_cidr = cluster_cidr or f"10.{random.randint(150, 199)}.0.0/16"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "dockyard.log"
        self._client: Client | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKYARD_CONFIG"] = str(self.kubeconfig)
        env["PYTHONPATH"] = str(ROOT)
        return env

    def start(self, wait_node: bool = True) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "orchestrator", "up",
                "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}",
                "--node-name", self.node_name,
                "--write-kubeconfig", str(self.kubeconfig),
                "--cluster-cidr", self.cluster_cidr,
                "--heartbeat", "1",
                "--pod-network", f"dy-{self.node_name}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=str(ROOT),
            start_new_session=True,
        )
        self._client = None
        wait_for(self._api_up, 30, what="the API server to answer")
        if wait_node:
            wait_for(self.node_ready, 60, what=f"node {self.node_name} Ready")

    def _api_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockyard up exited with {self.proc.returncode}:\n{self.log_tail()}")
        if not self.kubeconfig.exists():
            return False
        self.client.request("GET", "/readyz")
        return True

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_kubeconfig(str(self.kubeconfig))
        return self._client

    def node_ready(self) -> bool:
        node = self.client.get(resolve("nodes"), self.node_name)
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def cli(self, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=str(ROOT),
            timeout=timeout,
        )

    def remove_containers(self, agent_data_dir: Path | None = None) -> None:
        """Remove every container, network, iptables chain and the DNS server this cluster's
        node created (an agent's stop leaves its data plane in place on purpose);
        `agent_data_dir` is that of a separately run agent (default: `up`'s own)."""
        from agent.dataplane import teardown

        # the host's other routes are not this single-node cluster's: leave them
        teardown(agent_data_dir or self.data_dir / "agent", f"dy-{self.node_name}", routes=False)
        out = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=dockyard.io/node={self.node_name}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()
        if out:
            subprocess.run(["docker", "rm", "-f", *out], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", f"dy-{self.node_name}"], capture_output=True, check=False)

    def containers(self, *filters: str) -> list[str]:
        args = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=dockyard.io/node={self.node_name}"]
        for f in filters:
            args += ["--filter", f]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """Start the cluster; stop it and remove its containers afterwards, whatever happened."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        cluster.remove_containers()
