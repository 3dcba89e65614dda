"""A real fleet in the lab: SSH bootstrap, host-key checks, prerequisites, failover, upgrade, removal.

The tests share one 3-host lab and run in order, like an operator's day: bring the fleet up
(twice: the second run changes nothing), see bad host keys and a missing prerequisite
refused, roll a draining upgrade, remove a node. Losing a host under load, agent restarts
and in-place upgrades are in test_operations.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.objects.kinds import resolve
from tests.lab.conftest import LabCluster
from tests.support.cluster import wait_for

pytestmark = pytest.mark.lab

POD = resolve("pods")
DEPLOY = resolve("deployments")
NODE = resolve("nodes")

WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: dockyard/busybox:1
          command: ["httpd", "-f", "-p", "8080"]
"""


def fingerprint_of(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def ready_pods(lc: LabCluster) -> list[dict]:
    items = lc.client.list(POD, "default", label_selector="app=web")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", []))]


def exactly(lc: LabCluster, n: int) -> list[dict] | None:
    pods = ready_pods(lc)
    return pods if len(pods) == n else None


def node_ready(lc: LabCluster, name: str) -> bool:
    node = lc.client.get(NODE, name)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def test_cluster_up_bootstraps_three_nodes_and_spreads_pods(lab_cluster: LabCluster) -> None:
    lc = lab_cluster
    inv = lc.inventory()
    r = lc.cli("cluster", "up", "-f", str(inv), "--accept-new-host-keys", "-o", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["nodes"]
    assert [n["action"] for n in summary] == ["installed"] * 3
    assert {n["service"] for n in summary} == {"supervisor"}  # no systemd in the lab
    for h in lc.lab.hosts:
        assert node_ready(lc, h.name)
        assert lc.client.get(NODE, h.name)["metadata"]["labels"]["lab-host"] == f"h{h.index}"

    manifest = lc.base / "web.yaml"
    manifest.write_text(WEB % 6)
    r = lc.cli("apply", "-f", str(manifest))
    assert r.returncode == 0, r.stderr
    pods = wait_for(lambda: exactly(lc, 6), 120, what="6 ready web pods")
    per_node = Counter(p["spec"]["nodeName"] for p in pods)
    assert set(per_node) == {h.name for h in lc.lab.hosts}, per_node

    t0 = time.monotonic()
    r = lc.cli("cluster", "up", "-f", str(inv), "-o", "json")
    assert r.returncode == 0, r.stderr
    assert [n["action"] for n in json.loads(r.stdout)["nodes"]] == ["unchanged"] * 3
    assert time.monotonic() - t0 < 30


def test_unknown_host_key_is_refused_with_its_fingerprint(lab_cluster: LabCluster, tmp_path: Path) -> None:
    lc = lab_cluster
    h = lc.lab.hosts[0]
    r = lc.cli("cluster", "up", "-f", str(lc.inventory(tmp_path / "inv.yaml", hosts=[0])),
               known_hosts=tmp_path / "empty_known_hosts")
    assert r.returncode == 1
    assert "unknown host key" in r.stderr
    assert fingerprint_of(h.host_key_pub) in r.stderr
    assert "--accept-new-host-keys" in r.stderr


def test_changed_host_key_is_refused_loudly(lab_cluster: LabCluster, tmp_path: Path) -> None:
    lc = lab_cluster
    h0, h1 = lc.lab.hosts[0], lc.lab.hosts[1]
    wrong = tmp_path / "known_hosts"
    # h0's address recorded with h1's key: what a man in the middle would look like
    parts = h1.host_key_pub.read_text().split()
    wrong.write_text(f"{h0.address} {parts[0]} {parts[1]}\n")
    r = lc.cli("cluster", "up", "-f", str(lc.inventory(tmp_path / "inv.yaml", hosts=[0])), "--accept-new-host-keys",
               known_hosts=wrong)
    assert r.returncode == 1
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
    assert h0.address in r.stderr
    assert fingerprint_of(h0.host_key_pub) in r.stderr and fingerprint_of(h1.host_key_pub) in r.stderr
    assert wrong.read_text().count("\n") == 1  # nothing was accepted


def test_missing_prerequisite_is_reported_by_name(lab_cluster: LabCluster, tmp_path: Path) -> None:
    lc = lab_cluster
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named ensurepip' >&2\n"
                    "case \"$*\" in *ensurepip*) exit 1;; *) echo 3.9.2;; esac\n")
    fake.chmod(0o755)
    inv = lc.inventory(tmp_path / "inv.yaml", extra={lc.lab.hosts[1].name: {"python": str(fake)},
                                                     lc.lab.hosts[2].name: {"minDiskMB": 10**9}})
    r = lc.cli("cluster", "up", "-f", str(inv))
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert any(lc.lab.hosts[1].name in line and str(fake) in line and "3.9.2" in line for line in lines), r.stderr
    assert any(lc.lab.hosts[2].name in line and "disk:" in line for line in lines), r.stderr


def test_rolling_upgrade_keeps_the_deployment_available(lab_cluster: LabCluster) -> None:
    lc = lab_cluster
    r = lc.cli("scale", "deployment/web", "--replicas", "3")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len(ready_pods(lc)) == 3, 60, what="3 ready pods")
    # spread them over the three hosts again by recreating the deployment
    lc.cli("delete", "deployment", "web")
    wait_for(lambda: not lc.client.list(POD, "default", label_selector="app=web")["items"], 60, what="pods gone")
    (lc.base / "web.yaml").write_text(WEB % 3)
    assert lc.cli("apply", "-f", str(lc.base / "web.yaml")).returncode == 0
    pods = wait_for(lambda: exactly(lc, 3), 90, what="3 ready pods")
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    # the Deployment's status reports them too (two controller hops after the pods) before sampling starts
    wait_for(lambda: int(lc.client.get(DEPLOY, "web", "default").get("status", {}).get("readyReplicas") or 0) == 3,
             30, what="the Deployment reporting 3 ready replicas")

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                dep = lc.client.get(DEPLOY, "web", "default")
                samples.append(int(dep.get("status", {}).get("readyReplicas") or 0))
            except Exception:
                pass
            stop.wait(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        # --drain: the path a pod runtime change takes (same revision upgrades in place, see
        # test_operations.py)
        r = lc.cli("node", "upgrade", "-f", str(lc.base / "cluster.yaml"), "--max-unavailable", "1", "--drain",
                   "-o", "json", timeout=600)
    finally:
        stop.set()
        t.join(5)
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["nodes"]
    assert [s["result"] for s in steps] == ["ok"] * 3
    assert samples and min(samples) >= 3, f"readyReplicas dipped to {min(samples)}"  # replaced before removed
    for h in lc.lab.hosts:
        assert not lc.client.get(NODE, h.name)["spec"].get("unschedulable")


def test_node_remove_leaves_nothing_behind(lab_cluster: LabCluster) -> None:
    lc = lab_cluster
    victim = lc.lab.hosts[2]
    r = lc.cli("node", "remove", "-f", str(lc.base / "cluster.yaml"), victim.name)
    assert r.returncode == 0, r.stderr
    from orchestrator.errors import ApiError

    with pytest.raises(ApiError):
        lc.client.get(NODE, victim.name)
    check = (
        "test -e /opt/dockyard && echo opt; test -e /etc/dockyard/agent.env && echo config; "
        "test -e /etc/systemd/system/dockyard-agent.service && echo unit; "
        "ls -A /var/lib/dockyard-agent | grep -q . && echo agent-data; "
        "docker ps -aq --filter label=dockyard.io/managed=true | grep -q . && echo containers; true"
    )
    leftovers = lc.lab.exec_in(victim, "sh", "-c", check).stdout.split()
    assert leftovers == []
    procs = [p for p in lc.lab.netns_pids(victim)
             if "dockyard" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
    assert procs == []
    wait_for(lambda: len(ready_pods(lc)) == 3, 90, what="the deployment whole again on the other hosts")
