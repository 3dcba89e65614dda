"""Node prerequisites as `cluster up` reports them: facts from the node's shell → problems."""

from __future__ import annotations

import subprocess

import pytest

from orchestrator.bootstrap.install import compute_prereq_problems, parse_facts, prereq_script
from orchestrator.bootstrap.inventory import NodeSpec

NODE = NodeSpec(name="n1", address="192.0.2.1", node_ip="192.0.2.1")
NOW = 1_800_000_000.0
GOOD = {"os": "Linux", "docker": "ok:24.0.5", "python": "ok:3.11.2", "disk_kb": "2097152",
        "clock": str(int(NOW)), "init": "systemd", "tools_missing": ""}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, []),
        ({"docker": "fail:Cannot connect to the Docker daemon"},
         ["docker: the Docker engine does not answer `docker info` (Cannot connect to the Docker daemon)"]),
        ({"python": "ok:3.9.2"}, ["python3: version 3.9.2 found, 3.11 or newer required"]),
        ({"python": "fail:missing:sh: python3: not found"}, ["python3: not found (sh: python3: not found)"]),
        ({"disk_kb": "1024"}, ["disk: 1 MB free under /opt, 512 MB required"]),
        ({"clock": str(int(NOW) + 120)}, ["clock: 120 s apart from this machine (must be < 30 s; use NTP)"]),
        ({"tools_missing": "ip nsenter"}, ["tools: ip, nsenter not found (install iproute2, util-linux)"]),
        ({"tools_missing": "iptables-save iptables"}, ["tools: iptables-save, iptables not found (install iptables)"]),
        ({"os": "Darwin", "tools_missing": "ip"},
         ["os: Linux required, found Darwin", "tools: ip not found (install iproute2)"]),
    ],
)
def test_problems_table(change: dict[str, str], expected: list[str]) -> None:
    assert compute_prereq_problems({**GOOD, **change}, NODE, NOW) == expected


def test_script_reports_missing_tools_by_name() -> None:
    """The shell snippet itself, run here with a PATH that has no `ip`/`nsenter`."""
    out = subprocess.run(["/bin/sh", "-c", prereq_script("python3")], capture_output=True, text=True, check=False,
                         env={"PATH": "/nonexistent"}).stdout
    facts = parse_facts(out)
    assert set(facts["tools_missing"].split()) == {"ip", "nsenter", "iptables", "iptables-save", "iptables-restore"}
