"""Failover timing on the lab: how fast a lost host is detected and its pods run elsewhere.

`sudo python -m bench.failover [--replicas 6] [--runs 1]` builds a 3-host lab, bootstraps it
with `dockyard cluster up` over SSH, runs a Deployment, cuts one host off the network (iptables
DROP inside its namespace, like a pulled cable) and prints, per run:

* detection: cut → the Node is Ready=Unknown (the heartbeat grace, default 20 s);
* tainted:   cut → `node.kubernetes.io/unreachable:NoExecute` is on the Node;
* recovery:  cut → every replica is Ready on the surviving hosts (grace + toleration + restart).

For comparison: Kubernetes defaults recover after ~5m50s, Swarm ~15 s, Nomad ~20-30 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.objects.kinds import resolve
from tests.lab.conftest import LabCluster
from tests.lab.lab import Lab
from tests.lab.test_lab import WEB, node_ready, ready_pods
from tests.support.cluster import wait_for

NODE = resolve("nodes")


def run(replicas: int, runs: int) -> int:
    with tempfile.TemporaryDirectory(prefix="dockyard-failover-") as tmp:
        base = Path(tmp)
        lab = Lab(base / "lab", 3)
        lc = LabCluster(lab, base)
        try:
            lab.up()
            r = lc.cli("cluster", "up", "-f", str(lc.inventory()), "--accept-new-host-keys")
            if r.returncode != 0:
                print(r.stderr, file=sys.stderr)
                return 1
            (base / "web.yaml").write_text(WEB % replicas)
            lc.cli("apply", "-f", str(base / "web.yaml"))
            wait_for(lambda: len(ready_pods(lc)) == replicas, 120, what="replicas ready")
            print(f"{'run':>3} {'detection':>10} {'tainted':>8} {'recovery':>9}")
            for i in range(runs):
                victim = lab.hosts[i % len(lab.hosts)]
                t0 = time.monotonic()
                lab.cut(victim)
                marks: dict[str, float] = {}
                try:
                    while "recovery" not in marks and time.monotonic() - t0 < 180:
                        node = lc.client.get(NODE, victim.name)
                        cond = next((c for c in node["status"].get("conditions", []) if c["type"] == "Ready"), {})
                        now = time.monotonic() - t0
                        if "detection" not in marks and cond.get("status") == "Unknown":
                            marks["detection"] = now
                        if "tainted" not in marks and node["spec"].get("taints"):
                            marks["tainted"] = now
                        pods = ready_pods(lc)
                        if len(pods) == replicas and all(p["spec"]["nodeName"] != victim.name for p in pods):
                            marks["recovery"] = now
                        time.sleep(0.2)
                finally:
                    lab.heal(victim)
                print(f"{i + 1:>3} " + " ".join(f"{marks.get(k, float('nan')):>{w}.1f}s"
                                                  for k, w in (("detection", 9), ("tainted", 7), ("recovery", 8))))
                wait_for(lambda v=victim: node_ready(lc, v.name), 90, what="host back")
                wait_for(lambda v=victim: not lc.client.get(NODE, v.name)["spec"].get("taints"), 30, what="untainted")
        finally:
            lc.stop_master()
            lab.down()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=6)
    p.add_argument("--runs", type=int, default=1)
    a = p.parse_args()
    return run(a.replicas, a.runs)


if __name__ == "__main__":
    sys.exit(main())
