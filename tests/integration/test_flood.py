"""A Deployment scaled to 2147483647 replicas whose pods fit no node stops at the pending pods limit.

A real `dockyard up` with the pending pods limit at LIMIT (`DOCKYARD_MAX_PENDING_PODS`).
The Deployment's pods have a nodeSelector no node matches, so every pod stays Pending,
as on a node that fits few pods once it is full. Scaled to the largest valid count through
the `scale` subresource, the ReplicaSet controller creates pods in slow-start batches (1,
2, 4, …) until the pending pods limit refuses one; it stops there, records FailedCreate,
sets ReplicaFailure, and later passes are refused at their first pod. The master's RSS
(VmRSS of the `up` process: master and local agent) is read from /proc before and during
the flood and must stay within RSS_GROWTH_MIB of the idle baseline. Scaling back to 0
removes every pod and clears the condition.

Why RSS_GROWTH_MIB = 40: `bench/flood.py` measured the flood stopped at the default limit
of 1000 pending pods at +21 MiB over an idle cluster (78 → 99 MiB), and the same flood
without a limit at +254 MiB after 30 s (18,000 pods, still climbing); one 500-pod pass adds
about 10 MiB. The LIMIT pods here cost a few MiB; 40 MiB leaves room for the allocator's
and the garbage collector's noise while still failing if creation goes on for a few
passes past the limit.

The batches are read from the controller's per-pass log record (JSON lines: `replicaset`,
`batches`, `pods_created`, `pods_skipped`): pods of one pass are created back to back, so
neither their creation timestamps nor their events show where one batch ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.flood import FloodCluster, deployment
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for

NS = "default"
NAME = "flood"
LIMIT = 60
MAX_REPLICAS = 2147483647
RSS_GROWTH_MIB = 40.0
PODS = resolve("pods")
EVENTS = resolve("events")
DEPLOYMENTS = resolve("deployments")
REPLICASETS = resolve("replicasets")


@pytest.fixture(scope="module")
def flood_cluster(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[FloodCluster]:
    with running(FloodCluster(tmp_path_factory.mktemp("flood"), LIMIT, cluster_cidr="10.221.0.0/16")) as c:
        yield c


def flood_pods(c: Cluster) -> list[dict[str, Any]]:
    return list(c.client.list(PODS, NS, label_selector=f"app={NAME}")["items"])


def the_replicaset(c: Cluster) -> dict[str, Any]:
    [rs] = [r for r in c.client.list(REPLICASETS, NS)["items"] if r["metadata"]["name"].startswith(f"{NAME}-")]
    return rs


def failed_create(c: Cluster) -> dict[str, Any] | None:
    items = [e for e in c.client.list(EVENTS, NS, field_selector="reason=FailedCreate")["items"]
             if e["involvedObject"]["name"].startswith(f"{NAME}-")]
    return items[0] if items else None


def replica_failure(rs: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (rs.get("status") or {}).get("conditions") or [] if c["type"] == "ReplicaFailure"),
                None)


def passes(c: Cluster, offset: int, rs_name: str) -> list[dict[str, Any]]:
    """The controller's per-pass records for the ReplicaSet (every flood one if ""), from the log."""
    out = []
    with open(c.log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            key = str(rec.get("replicaset", ""))
            if "batches" in rec and (key == f"{NS}/{rs_name}" if rs_name else key.startswith(f"{NS}/{NAME}-")):
                out.append(rec)
    return out


def test_flood_stops_at_the_pending_pods_limit(flood_cluster: FloodCluster) -> None:
    c = flood_cluster
    idle = []
    for _ in range(10):
        idle.append(c.rss_mib())
        time.sleep(0.5)
    baseline = max(idle)
    offset = c.log_path.stat().st_size

    c.client.create(deployment())
    scale = c.client.patch(DEPLOYMENTS, NAME, {"spec": {"replicas": MAX_REPLICAS}}, NS, sub="scale")
    assert scale["spec"]["replicas"] == MAX_REPLICAS
    t0 = time.monotonic()
    peak = baseline

    def stopped() -> dict[str, Any] | None:
        nonlocal peak
        peak = max(peak, c.rss_mib())
        created = sum(p["pods_created"] for p in passes(c, offset, ""))
        if created > LIMIT + 500:  # a whole pass past the limit: nothing refuses pods
            return {"overflow": created}
        return failed_create(c)

    event = wait_for(stopped, 60, interval=0.25, what="a FailedCreate event for the flood")
    assert "overflow" not in event, (
        f"{event.get('overflow')} pods created for a pending pods limit of {LIMIT}: the limit is not enforced "
        "(the master registers orchestrator.registry.podadmission.pending_pods_hook as a Pod create hook)")
    took = time.monotonic() - t0
    rs = the_replicaset(c)
    rs_name = rs["metadata"]["name"]

    # the first pass: growing batches, cut short at the limit; every later pass refused at its first pod
    records = wait_for(lambda: passes(c, offset, rs_name), 10, what="the controller's slow-start records")
    first = records[0]
    batches = first["batches"]
    assert first["pods_created"] == LIMIT and sum(batches) == LIMIT, first
    assert batches[:-1] == [2 ** i for i in range(len(batches) - 1)], batches  # 1, 2, 4, 8, 16, …
    assert 0 < batches[-1] < 2 ** (len(batches) - 1), batches  # the batch the refusal cut short
    assert first["pods_skipped"] == 500 - LIMIT and "pending pods" in first["error"]

    # the pass stopped at the first refusal: one Warning event, the condition on the ReplicaSet
    assert event["type"] == "Warning"
    assert event["message"].startswith(f'Error creating: pods "{rs_name}-" is forbidden: ')
    assert f"limit of {LIMIT} pending pods" in event["message"] and "--max-pending-pods" in event["message"]
    cond = wait_for(lambda: replica_failure(the_replicaset(c)), 15, what="ReplicaFailure on the ReplicaSet")
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate" and "is forbidden" in cond["message"]

    # creation stays stopped: later passes (resync, pod changes) are refused at their first pod
    count_before = int(event.get("count", 1))
    wait_for(lambda: int((failed_create(c) or {}).get("count", 1)) > count_before, 30,
             what="a later pass refused as well")
    for _ in range(8):
        peak = max(peak, c.rss_mib())
        time.sleep(0.5)
    pods = flood_pods(c)
    later = passes(c, offset, rs_name)[1:]
    assert later and all(p["batches"] == [0] and p["pods_created"] == 0 for p in later), later
    assert LIMIT <= len(pods) <= LIMIT + batches[-1], f"{len(pods)} pods for a limit of {LIMIT}"
    assert all(not p["spec"].get("nodeName") for p in pods)

    # a user's pod is refused the same way, over the wire
    with pytest.raises(ApiError) as refused:
        c.client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one-more", "namespace": NS},
                         "spec": {"containers": [{"name": "c", "image": "dockyard/busybox:1"}]}})
    assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
    assert refused.value.message.startswith('pods "one-more" is forbidden: ')

    flood_rss = c.rss_mib()
    print(f"\nflood: {len(pods)} pods (limit {LIMIT}), first pass batches {batches}, FailedCreate after {took:.1f}s, "
          f"{len(later)} later passes refused; RSS idle {min(idle):.1f}..{baseline:.1f} MiB, "
          f"peak {peak:.1f} MiB, now {flood_rss:.1f} MiB (bound: idle + {RSS_GROWTH_MIB:.0f} MiB)")
    assert peak <= baseline + RSS_GROWTH_MIB, f"RSS {peak:.1f} MiB, idle {baseline:.1f} MiB"

    # back to 0: every pod goes and the condition is cleared
    c.client.patch(DEPLOYMENTS, NAME, {"spec": {"replicas": 0}}, NS, sub="scale")
    wait_for(lambda: not flood_pods(c), 60, what="every flood pod gone")

    def settled() -> bool:
        rs = the_replicaset(c)
        return (rs.get("status") or {}).get("replicas", 0) == 0 and replica_failure(rs) is None

    wait_for(settled, 30, what="the ReplicaSet at 0 replicas without ReplicaFailure")
    c.client.delete(DEPLOYMENTS, NAME, NS)
    wait_for(lambda: not [r for r in c.client.list(REPLICASETS, NS)["items"]
                          if r["metadata"]["name"].startswith(f"{NAME}-")], 30, what="the ReplicaSet gone")
    print(f"flood: after scale to 0, RSS {c.rss_mib():.1f} MiB")
