"""Flood: a Deployment scaled to 2147483647 replicas whose pods fit no node, on a real `dockyard up`.

The Deployment's pods have a nodeSelector no node matches, so every pod it gets stays
Pending, like on a node that fits few pods once it is full. It is created with 0 replicas
and scaled to the largest valid count through the `scale` subresource (what `dockyard
scale` and `kubectl scale` do). The ReplicaSet controller then creates pods in slow-start
batches (1, 2, 4, … up to the 500-pod burst of a pass) until the pending pods limit
(`DOCKYARD_MAX_PENDING_PODS`, `--limit`, default 1000 like the master's default) refuses
one: the pass stops there, records FailedCreate, and is retried with backoff.

Printed, against a baseline of the same cluster idle for `--idle` seconds:

* the batches of every pass (from the controller's log lines), pods created, the time
  from the scale call to the first FailedCreate event and to the last pod created;
* the `up` process's RSS (master and local agent; VmRSS from /proc): idle, peak during
  the flood, and at the end of `--settle` seconds after the flood stopped (the flood has
  stopped when the pod count stays the same for those seconds);
* the FailedCreate event's count and message (one refused attempt per retry);
* the scale back to 0: time until every pod is gone, and the RSS then.

With `--unlimited SECONDS`, a second cluster runs the same flood with the limit off
(`DOCKYARD_MAX_PENDING_PODS=0`) for that long: what the cluster does without the valve.
Pods and passes are counted from the controller's per-pass log records (a list of
thousands of pods would itself grow the master's memory). Never asserts. Run: `python bench/flood.py [--limit 1000] [--unlimited 30]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.client import Client  # noqa: E402
from orchestrator.objects.kinds import resolve  # noqa: E402
from tests.support.cluster import Cluster, running, wait_for  # noqa: E402

NS = "default"
NAME = "flood"
MAX_REPLICAS = 2147483647  # the largest valid spec.replicas (int32)
ENV_LIMIT = "DOCKYARD_MAX_PENDING_PODS"
PODS = resolve("pods")
EVENTS = resolve("events")
DEPLOYMENTS = resolve("deployments")
REPLICASETS = resolve("replicasets")


class FloodCluster(Cluster):
    """`dockyard up` with the pending pods limit set through the environment."""

    def __init__(self, base: Path, limit: int, cluster_cidr: str | None = None) -> None:
        base.mkdir(parents=True, exist_ok=True)
        super().__init__(base, cluster_cidr=cluster_cidr)
        self.limit = limit

    def env(self) -> dict[str, str]:
        env = super().env()
        env[ENV_LIMIT] = str(self.limit)
        return env

    def rss_mib(self) -> float:
        assert self.proc is not None
        return rss_mib(self.proc.pid)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def deployment(name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"dockyard.io/flood": "no-such-node"},  # fits no node: stays Pending
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "dockyard/busybox:1", "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"]}],
                },
            },
        },
    }


def slow_start_passes(log_path: Path, offset: int, prefix: str) -> list[dict[str, Any]]:
    """The controller's per-pass log records for ReplicaSets whose key starts with `prefix`."""
    out = []
    with open(log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if "batches" in rec and str(rec.get("replicaset", "")).startswith(prefix):
                out.append(rec)
    return out


def log_time(rec: dict[str, Any]) -> float:
    return datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def failed_create(client: Client) -> dict[str, Any] | None:
    items = client.list(EVENTS, NS, field_selector="reason=FailedCreate")["items"]
    items = [e for e in items if e["involvedObject"]["name"].startswith(f"{NAME}-")]
    return max(items, key=lambda e: int(e.get("count", 1))) if items else None


def flood_replicas(client: Client) -> int:
    """Pods the flood's ReplicaSets counted at their last pass (a GET per set, no pod list)."""
    return sum(int((rs.get("status") or {}).get("replicas") or 0) for rs in client.list(REPLICASETS, NS)["items"]
               if rs["metadata"]["name"].startswith(f"{NAME}-"))


def sample_rss(cluster: FloodCluster, seconds: float, every: float = 0.5) -> list[float]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(cluster.rss_mib())
        time.sleep(every)
    return out


def flood(cluster: FloodCluster, idle: float, settle: float, cap: float) -> dict[str, Any]:
    """Scale the flood Deployment up, wait until creation stopped for `settle` seconds (or
    `cap` passed), then back to 0. Progress is read from the controller's log records, so
    following the flood costs the master nothing."""
    c = cluster.client
    idle_rss = sample_rss(cluster, idle)
    offset = cluster.log_path.stat().st_size
    prefix = f"{NS}/{NAME}-"
    c.create(deployment())
    t0, wall0 = time.monotonic(), time.time()
    c.patch(DEPLOYMENTS, NAME, {"spec": {"replicas": MAX_REPLICAS}}, NS, sub="scale")
    peak = cluster.rss_mib()
    while True:
        time.sleep(0.5)
        peak = max(peak, cluster.rss_mib())
        passes = slow_start_passes(cluster.log_path, offset, prefix)
        creating = [p for p in passes if p.get("pods_created")]
        refused = any(p.get("error") for p in passes)
        last = log_time(creating[-1]) - wall0 if creating else 0.0
        if time.monotonic() - t0 > cap or (refused and time.time() - wall0 - last >= settle):
            break
    flood_rss = cluster.rss_mib()
    errors = [p for p in passes if p.get("error")]
    event = failed_create(c)

    t1 = time.monotonic()
    c.patch(DEPLOYMENTS, NAME, {"spec": {"replicas": 0}}, NS, sub="scale")
    wait_for(lambda: flood_replicas(c) == 0, 600, interval=0.5, what="the flood's ReplicaSet at 0 pods")
    wait_for(lambda: not c.list(PODS, NS, label_selector=f"app={NAME}")["items"], 120, what="every flood pod gone")
    drained = time.monotonic() - t1
    after_rss = sample_rss(cluster, 3)
    conditions = [cond["type"] for rs in c.list(REPLICASETS, NS)["items"] if rs["metadata"]["name"].startswith(f"{NAME}-")
                  for cond in (rs.get("status") or {}).get("conditions") or []]
    c.delete(DEPLOYMENTS, NAME, NS)
    return {
        "idle_rss": idle_rss, "peak_rss": peak, "flood_rss": flood_rss, "after_rss": after_rss[-1],
        "pods": sum(p["pods_created"] for p in passes), "first_failure": log_time(errors[0]) - wall0 if errors else None,
        "last_pod": last, "event": event, "passes": passes, "drained": drained, "conditions_after": conditions,
    }


def report(title: str, r: dict[str, Any]) -> None:
    idle = r["idle_rss"]
    print(f"\n== {title}")
    print(f"RSS idle (baseline)        {min(idle):7.1f} .. {max(idle):.1f} MiB over {len(idle) / 2:.0f}s")
    print(f"RSS peak during the flood  {r['peak_rss']:7.1f} MiB  (+{r['peak_rss'] - max(idle):.1f} over idle)")
    print(f"RSS once it stopped        {r['flood_rss']:7.1f} MiB")
    print(f"RSS after scale to 0       {r['after_rss']:7.1f} MiB")
    print(f"pods created               {r['pods']}")
    if r["first_failure"] is not None:
        print(f"first failed creation      {r['first_failure']:.1f}s after the scale call; "
              f"last pod created after {r['last_pod']:.1f}s")
    else:
        print(f"no failed creation; pods were still being created after {r['last_pod']:.1f}s")
    creating = [p for p in r["passes"] if p.get("pods_created")]
    refused = [p for p in r["passes"] if not p.get("pods_created")]
    print(f"passes that created pods   {len(creating)}; passes refused at their first pod: {len(refused)}")
    for p in creating[:12]:
        stop = f"  stopped: skipped {p['pods_skipped']}" if p.get("pods_skipped") else ""
        print(f"  batches {p['batches']} = {p['pods_created']}{stop}")
    if len(creating) > 12:
        print(f"  … {len(creating) - 12} more passes")
    if r["event"] is not None:
        print(f"FailedCreate event         count {r['event'].get('count')}: {r['event']['message']}")
    print(f"scale to 0: all pods gone  {r['drained']:.1f}s; ReplicaSet conditions then: {r['conditions_after'] or 'none'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=1000, help="pending pods limit (default 1000)")
    p.add_argument("--idle", type=float, default=15.0, help="seconds of idle baseline (default 15)")
    p.add_argument("--settle", type=float, default=15.0,
                   help="the flood has stopped once the pod count is unchanged this long (default 15)")
    p.add_argument("--cap", type=float, default=180.0, help="give up on the flood after this long (default 180)")
    p.add_argument("--unlimited", type=float, default=0.0,
                   help="also flood a cluster without the limit for this many seconds (default: skip)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dy-flood-") as tmp:
        base = Path(tmp)
        print(f"flood: Deployment scaled to {MAX_REPLICAS} replicas, pods fit no node; "
              f"{ENV_LIMIT}={args.limit}", flush=True)
        with running(FloodCluster(base / "limited", args.limit, cluster_cidr="10.217.0.0/16")) as cluster:
            report(f"pending pods limit {args.limit}", flood(cluster, args.idle, args.settle, args.cap))
        if args.unlimited > 0:
            with running(FloodCluster(base / "unlimited", 0, cluster_cidr="10.218.0.0/16")) as cluster:
                try:
                    r = flood(cluster, args.idle, args.unlimited, args.unlimited)
                except Exception as e:  # an overwhelmed master may stop answering
                    print(f"\nthe unlimited flood did not finish cleanly: {e}")
                    return 1
                report(f"no limit, stopped after {args.unlimited:.0f}s", r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
