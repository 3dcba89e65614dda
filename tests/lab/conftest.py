"""Fixtures of the lab suite: one 3-host lab and one master for the whole module.

The lab is torn down by a finalizer even when a test fails; the master started by
`cluster up` is stopped through the pid file it leaves in its data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.client import Client
from tests.lab.lab import Lab
from tests.support.cluster import ROOT

MASTER_PORT = 16443
REPORTS: list[str] = []  # figures the lab tests print, repeated in the terminal summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORTS:
        terminalreporter.section("lab figures")
        for line in REPORTS:
            terminalreporter.write_line(line)


def _cli_module() -> str:
    return "orchestrator"


class LabCluster:
    def __init__(self, lab: Lab, base: Path) -> None:
        self.lab = lab
        self.base = base
        self.kubeconfig = base / "kubeconfig"
        self.known_hosts = base / "known_hosts"
        self.data_dir = base / "master"
        self.module = _cli_module()
        self._client: Client | None = None

    def inventory(self, path: Path | None = None, extra: dict[str, dict[str, object]] | None = None,
                  hosts: list[int] | None = None) -> Path:
        path = path or self.base / "cluster.yaml"
        lines = [
            f"master: {{address: {self.lab.gateway}, port: {MASTER_PORT}, dataDir: {self.data_dir}}}",
            f"defaults: {{user: root, keyFile: {self.lab.key_file}}}",
            "nodes:",
        ]
        for h in self.lab.hosts:
            if hosts is not None and h.index not in hosts:
                continue
            more = "".join(f", {k}: {v}" for k, v in (extra or {}).get(h.name, {}).items())
            lines.append(f"  - {{name: {h.name}, address: {h.address}, labels: {{lab-host: h{h.index}}}{more}}}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli(self, *args: str, known_hosts: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKYARD_CONFIG=str(self.kubeconfig), PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", self.module, "--kubeconfig", str(self.kubeconfig), *args]
        if args and args[0] in ("cluster", "node"):
            cmd += ["--known-hosts", str(known_hosts or self.known_hosts)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=timeout)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_kubeconfig(str(self.kubeconfig))
        return self._client

    def stop_master(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            pid = int((self.data_dir / "master.pid").read_text())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture(scope="session")
def lab_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    base = tmp_path_factory.mktemp("lab")
    lab = Lab(base / "lab", 3, subnet=os.environ.get("DOCKYARD_LAB_SUBNET", "10.99.0"))
    lc = LabCluster(lab, base)
    try:
        lab.up()
        yield lc
    finally:
        lc.stop_master()
        lab.down()
