"""Failover on the lab: how fast a lost host is detected, what traffic it costs, how fast its
pods run elsewhere, and what the node heartbeats cost the master.

`sudo .venv/bin/python -m bench.failover [--runs 2] [--tuned-grace 4 --tuned-eviction 2]`
builds a 3-host lab, bootstraps it with `dockyard cluster up` over SSH, runs a 6-replica
Deployment behind a Service with a load client pod on host 0 (about 20 requests/s through
the Service, each with a 1 s timeout, see `tests.lab.load`), then loses a host (cut: its
link dropped like a pulled cable; freeze: SIGSTOP of every process on it) and prints, per
run, measured from the loss:

* detection: the Node turns NotReady (Ready=Unknown; the Lease grace, default 8 s);
* quiet:     the last failed request started (the dead pods left the Service);
* recovery:  every replica is Ready on the surviving hosts (detection + eviction timeout
             + rescheduling and start);
* failed:    requests that failed during the loss, of those sent.

It does so with the default settings, then restarts the master with tuned ones. Anchors,
for the same "replicas back elsewhere" figure: Kubernetes' defaults ~5m50s (40-50 s
NotReady + 300 s toleration), Docker Swarm ~15 s, Nomad ~20-30 s.

Last, the write load of liveness: the store's revision counter over an idle window (all
writes the cluster makes, per node per second) and the bytes of what each agent writes: a
Lease renewal every `--heartbeat` (2 s) and the full Node status every 60 s, against the
former scheme of a full Node status every 5 s.

This is a benchmark: it prints figures and asserts nothing. Traffic goes only to the lab.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.objects.kinds import resolve
from tests.lab.conftest import LabCluster
from tests.lab.lab import Lab, LabHost
from tests.lab.load import LoadClient, uptime
from tests.lab.test_operations import REPLICAS, SVC, node_status, ready_web, settle, web

NODE = resolve("nodes")
LEASE = resolve("leases")
NAMESPACE = resolve("namespaces")
HEARTBEAT = 2.0  # the agents' default Lease renewal period
STATUS_PERIOD = 60.0  # their default full status period
FORMER_STATUS_PERIOD = 5.0  # the full status period before Leases


def lose_host(lc: LabCluster, kind: str, victim: LabHost) -> dict[str, float]:
    lose: Callable[[LabHost], None] = lc.lab.cut if kind == "cut" else lc.lab.freeze
    restore: Callable[[LabHost], None] = lc.lab.heal if kind == "cut" else lc.lab.thaw
    marks: dict[str, float] = {}
    with LoadClient(lc, 0, "http://ops-web/", rate=20.0, timeout_s=1, max_requests=20000, seconds=300,
                    name=f"bench-{kind}-{int(time.time())}") as client:
        client.start()
        time.sleep(2)
        t0 = uptime()
        lose(victim)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "recovery" not in marks:
                now = uptime() - t0
                if "detection" not in marks and node_status(lc, victim.name) != "True":
                    marks["detection"] = now
                pods = ready_web(lc)
                if len(pods) == REPLICAS and all(p["spec"]["nodeName"] != victim.name for p in pods):
                    marks["recovery"] = now
                time.sleep(0.1)
            time.sleep(2)
            result = client.finish()
        finally:
            restore(victim)
    failed = [r for r in result.requests if not r.ok]
    during = [r for r in result.requests if r.start >= t0]
    marks["quiet"] = max((r.start for r in failed), default=t0) - t0
    marks["failed"] = float(len(failed))
    marks["sent"] = float(len(during))
    return marks


def write_load(lc: LabCluster, window: float) -> None:
    nodes = lc.client.list(NODE)["items"]

    def revision() -> int:
        return int(lc.client.list(NAMESPACE)["metadata"]["resourceVersion"])

    r0, t0 = revision(), time.monotonic()
    time.sleep(window)
    r1, t1 = revision(), time.monotonic()
    writes = (r1 - r0) / (t1 - t0) / max(1, len(nodes))
    lease_bytes = statistics.mean(len(json.dumps(lc.client.get(LEASE, n["metadata"]["name"], "kube-node-lease")))
                                  for n in nodes)
    node_bytes = statistics.mean(len(json.dumps(n)) for n in nodes)
    now_bps = lease_bytes / HEARTBEAT + node_bytes / STATUS_PERIOD
    before_bps = node_bytes / FORMER_STATUS_PERIOD
    print(f"\nliveness write load, {len(nodes)} nodes, idle window {window:.0f}s:")
    print(f"  all store writes: {writes:.2f}/s per node (Lease renewals every {HEARTBEAT:g}s, "
          f"Node status every {STATUS_PERIOD:g}s, plus the rest of the cluster)")
    print(f"  per node: Lease {lease_bytes:.0f} B x {1 / HEARTBEAT:.2f}/s + Node status {node_bytes:.0f} B x "
          f"{1 / STATUS_PERIOD:.3f}/s = {now_bps:.0f} B/s; before (status every {FORMER_STATUS_PERIOD:g}s): "
          f"{before_bps:.0f} B/s ({now_bps / before_bps:.2f}x)")
    n = len(nodes)  # every agent watches all Nodes (routes); none watches Leases
    print(f"  Node watch events fanned out to the {n} agents: {n / STATUS_PERIOD:.3f}/s per node, before "
          f"{n / FORMER_STATUS_PERIOD:.2f}/s ({FORMER_STATUS_PERIOD / STATUS_PERIOD:.3f}x); a fleet of N nodes: "
          f"N^2 x {1 / STATUS_PERIOD:.3f} instead of N^2 x {1 / FORMER_STATUS_PERIOD:.2f} events/s")


def tuned_inventory(lc: LabCluster, grace: float, eviction: float) -> Path:
    path = lc.inventory(lc.base / "tuned.yaml")
    text = path.read_text().replace(f"dataDir: {lc.data_dir}}}",
                                    f"dataDir: {lc.data_dir}, nodeGrace: {grace:g}, evictionTimeout: {eviction:g}}}")
    path.write_text(text)
    return path


def run(runs: int, kinds: list[str], grace: float, eviction: float, window: float) -> int:
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
            lc.client.create(web(), "default")
            lc.client.create(dict(SVC), "default")
            settle(lc)
            write_load(lc, window)
            rows = []
            for label, inv in (("default (grace 8s, eviction 5s)", None),
                               (f"tuned (grace {grace:g}s, eviction {eviction:g}s)",
                                tuned_inventory(lc, grace, eviction))):
                if inv is not None:
                    lc.stop_master()
                    r = lc.cli("cluster", "up", "-f", str(inv))
                    if r.returncode != 0:
                        print(r.stderr, file=sys.stderr)
                        return 1
                for i in range(runs):
                    for kind in kinds:
                        settle(lc)
                        victim = lab.hosts[1 + i % 2]  # never the load client's host
                        m = lose_host(lc, kind, victim)
                        rows.append((label, kind, m))
                        print(f"{label:<32} {kind:<6} detection {m.get('detection', float('nan')):5.1f}s  "
                              f"quiet {m['quiet']:5.1f}s  recovery {m.get('recovery', float('nan')):5.1f}s  "
                              f"failed {int(m['failed'])}/{int(m['sent'])}", flush=True)
            print("\nanchors (replicas back elsewhere): Kubernetes defaults ~350s, Swarm ~15s, Nomad ~20-30s")
            for label in dict.fromkeys(r[0] for r in rows):
                rec = [m.get("recovery", float("nan")) for lab_, _, m in rows if lab_ == label]
                det = [m.get("detection", float("nan")) for lab_, _, m in rows if lab_ == label]
                print(f"{label:<32} mean detection {statistics.mean(det):5.1f}s, mean recovery "
                      f"{statistics.mean(rec):5.1f}s = {350 / statistics.mean(rec):.0f}x faster than Kubernetes' "
                      f"defaults, {15 / statistics.mean(rec):.2f}x Swarm's")
        finally:
            lc.stop_master()
            lab.down()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="losses per kind and setting (default 1)")
    p.add_argument("--kinds", default="cut,freeze", help="cut, freeze or both (default cut,freeze)")
    p.add_argument("--tuned-grace", type=float, default=4.0, help="node grace of the tuned run (default 4s)")
    p.add_argument("--tuned-eviction", type=float, default=2.0, help="eviction timeout of the tuned run (default 2s)")
    p.add_argument("--window", type=float, default=20.0, help="idle window for the write load (default 20s)")
    a = p.parse_args()
    return run(a.runs, [k for k in a.kinds.split(",") if k], a.tuned_grace, a.tuned_eviction, a.window)


if __name__ == "__main__":
    sys.exit(main())
