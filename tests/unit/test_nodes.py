"""Node health and eviction decisions: pure functions over a Node, its pods and a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.controllers.nodes import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    Heartbeat,
    NodeHealth,
    compute_evictions,
    compute_node_health,
    compute_pods_not_ready,
    compute_taints,
    observe_heartbeat,
    pod_cidr_conflict,
)
from orchestrator.objects.timefmt import rfc3339

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
GRACE = timedelta(seconds=20)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def node(status: str | None, beat: float = 0.0, taints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    conds = [] if status is None else [
        {"type": "Ready", "status": status, "lastHeartbeatTime": rfc3339(at(beat))}
    ]
    return {"metadata": {"name": "n1"}, "spec": {"taints": taints or []}, "status": {"conditions": conds}}


def taint(key: str, added: float, effect: str = "NoExecute") -> dict[str, Any]:
    return {"key": key, "effect": effect, "timeAdded": rfc3339(at(added))}


def pod(name: str, tolerations: list[dict[str, Any]] | None = None, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"nodeName": "n1", "tolerations": tolerations or []}}


@pytest.mark.parametrize(
    ("status", "beat", "now", "ready", "mark", "want"),
    [
        ("True", 0, 5, "True", False, None),  # fresh heartbeat
        ("True", 0, 20, "True", False, None),  # exactly at the grace: still fine
        ("True", 0, 20.5, "Unknown", True, TAINT_UNREACHABLE),  # missed heartbeats
        ("Unknown", 0, 100, "Unknown", False, TAINT_UNREACHABLE),  # already marked
        ("False", 0, 5, "False", False, TAINT_NOT_READY),  # agent says its runtime is down
        ("False", 0, 60, "Unknown", True, TAINT_UNREACHABLE),  # ... then went silent
        (None, 0, 60, "Unknown", False, None),  # never reported: nothing to do
    ],
)
def test_node_health(status: str | None, beat: float, now: float, ready: str, mark: bool, want: str | None) -> None:
    h = compute_node_health(node(status, beat), at(now), GRACE)
    assert (h.ready, h.mark_unknown, h.taint) == (ready, mark, want)


@pytest.mark.parametrize(
    ("agent_skew", "seen", "now", "ready", "mark"),
    [
        (-3600, 0, 5, "True", False),  # agent clock an hour behind: judged by arrival, fresh
        (-3600, 0, 20.5, "Unknown", True),  # ... and stale once nothing arrived for the grace
        (+3600, 0, 20.5, "Unknown", True),  # an agent clock ahead does not keep it alive
        (0, 30, 45, "True", False),  # a heartbeat seen at 30 is fresh at 45
    ],
)
def test_node_health_uses_the_masters_clock(agent_skew: float, seen: float, now: float, ready: str,
                                             mark: bool) -> None:
    n = node("True", seen + agent_skew)
    h = compute_node_health(n, at(now), GRACE, Heartbeat(rfc3339(at(seen + agent_skew)), at(seen)))
    assert (h.ready, h.mark_unknown) == (ready, mark)


def test_observe_heartbeat_notes_changes_only() -> None:
    first = observe_heartbeat(None, node("True", -500), at(0))
    assert first.seen_at == at(0)  # first sight (e.g. after a master restart): a full grace
    same = observe_heartbeat(first, node("True", -500), at(15))
    assert same is first  # no new heartbeat
    newer = observe_heartbeat(same, node("True", -490), at(16))
    assert newer.seen_at == at(16) and newer.value == rfc3339(at(-490))
    marked = node("Unknown", -490)  # the controller's own Unknown write keeps the time
    assert observe_heartbeat(newer, marked, at(40)) is newer
    assert observe_heartbeat(None, node(None), at(3)) == Heartbeat(None, at(3))


def test_taints_added_once_and_keep_time_added() -> None:
    new = compute_taints([], TAINT_UNREACHABLE, at(30))
    assert new == [taint(TAINT_UNREACHABLE, 30)]
    assert compute_taints(new, TAINT_UNREACHABLE, at(99)) is None


def test_taints_removed_when_ready_and_others_kept() -> None:
    user = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    assert compute_taints([user, taint(TAINT_UNREACHABLE, 30)], None, at(40)) == [user]
    assert compute_taints([user], None, at(40)) is None


def test_taints_switch_between_health_taints() -> None:
    assert compute_taints([taint(TAINT_NOT_READY, 1)], TAINT_UNREACHABLE, at(5)) == [taint(TAINT_UNREACHABLE, 5)]


EXISTS_UNREACHABLE = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("tolerations", "now", "evicted", "next_check"),
    [
        (None, 39.9, False, 40),  # default 10 s toleration from timeAdded=30
        (None, 40, True, None),
        ([dict(EXISTS_UNREACHABLE, tolerationSeconds=60)], 50, False, 90),
        ([dict(EXISTS_UNREACHABLE, tolerationSeconds=60)], 90, True, None),
        ([dict(EXISTS_UNREACHABLE, tolerationSeconds=0)], 30, True, None),
        ([EXISTS_UNREACHABLE], 10_000, False, None),  # tolerates forever
        ([{"operator": "Exists"}], 10_000, False, None),  # tolerates everything
        ([{"key": "other", "operator": "Exists"}], 40, True, None),  # does not match: default
    ],
)
def test_eviction_timing(
    tolerations: list[dict[str, Any]] | None, now: float, evicted: bool, next_check: float | None
) -> None:
    plan = compute_evictions([pod("p", tolerations)], [taint(TAINT_UNREACHABLE, 30)], at(now), 10)
    assert bool(plan.evict) is evicted
    assert plan.next_check == (at(next_check) if next_check is not None else None)


def test_user_noexecute_taint_evicts_at_once_and_noschedule_never() -> None:
    plan = compute_evictions([pod("p")], [taint("maintenance", 30)], at(30), 10)
    assert [p["metadata"]["name"] for p in plan.evict] == ["p"]
    plan = compute_evictions([pod("p")], [taint("maintenance", 30, "NoSchedule")], at(1000), 10)
    assert plan.evict == [] and plan.next_check is None


def test_force_deleted_pods_are_skipped_and_earliest_next_check() -> None:
    pods = [
        pod("gone", deletionTimestamp=rfc3339(at(1)), deletionGracePeriodSeconds=0),
        pod("slow", [dict(EXISTS_UNREACHABLE, tolerationSeconds=100)]),
        pod("fast", [dict(EXISTS_UNREACHABLE, tolerationSeconds=5)]),
    ]
    plan = compute_evictions(pods, [taint(TAINT_UNREACHABLE, 30)], at(31), 10)
    assert plan.evict == []
    assert plan.next_check == at(35)


@pytest.mark.parametrize(
    ("cidr", "owner"),
    [
        ("10.42.1.0/24", "a"),  # the same range
        ("10.42.0.0/16", "a"),  # a wider one covering it
        ("10.42.2.128/25", "b"),  # inside another's
        ("10.42.3.0/24", None),  # free
        ("not-a-cidr", None),  # left to validation
    ],
)
def test_pod_cidr_conflict(cidr: str, owner: str | None) -> None:
    assert pod_cidr_conflict(cidr, {"a": "10.42.1.0/24", "b": "10.42.2.0/24"}) == owner


def test_orphaned_node_password_records() -> None:
    from orchestrator.registry import nodepasswords as npw

    def rec(node: str, age_min: float, labelled: bool = True) -> dict[str, Any]:
        r = npw.record(node, "p" * 32)
        r["metadata"]["creationTimestamp"] = rfc3339(at(-age_min * 60))
        if not labelled:
            r["metadata"]["labels"] = {}
        return r

    records = [rec("live", 60), rec("gone", 60), rec("joining", 1), rec("user-made", 60, labelled=False)]
    assert npw.orphaned(records, {"live"}, at(0)) == ["gone"]


# -- Leases: heartbeat/Lease ages -> conditions -> pod readiness -> taints -> evictions ---------

LEASE_GRACE = timedelta(seconds=8)


def lease(renew: float | None) -> dict[str, Any] | None:
    if renew is None:
        return None
    return {"metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "renewTime": rfc3339(at(renew))}}


def ready_pod(name: str, ready: bool = True, node_name: str = "n1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "conditions": [
                {"type": "ContainersReady", "status": "True" if ready else "False"},
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def timeline(status: str, renewals: list[float], now: float, status_beat: float = -100.0,
             eviction_timeout: float = 5.0) -> tuple[NodeHealth, list[str], list[str], list[str]]:
    """Run the controller's decisions over a node whose agent renewed its Lease at
    `renewals` (master clock; the Lease's own timestamps are those instants) and posted its
    status long ago, observed once a second until `now`: (health, pods marked not ready,
    taint keys, evicted pods)."""
    n = node(status, status_beat)
    beat = None
    taints: list[dict[str, Any]] = []
    health = NodeHealth("True", False, None)
    pods = [ready_pod("a"), ready_pod("b"), ready_pod("c", ready=False), ready_pod("x", node_name="n2")]
    marked: list[str] = []
    evicted: list[str] = []
    t = min([0.0, *renewals])
    while t <= now:
        seen = [r for r in renewals if r <= t]
        cur = lease(max(seen)) if seen else None
        beat = observe_heartbeat(beat, n, at(t), cur)
        health = compute_node_health(n, at(t), LEASE_GRACE, beat, cur)
        if health.mark_unknown:
            n["status"]["conditions"][0]["status"] = "Unknown"
        for p in compute_pods_not_ready(pods, health, "n1"):
            marked.append(p["metadata"]["name"])
            pods = [p if q["metadata"]["name"] == p["metadata"]["name"] else q for q in pods]
        taints = compute_taints(taints, health.taint, at(t)) or taints if health.taint else []
        plan = compute_evictions([q for q in pods if q["spec"]["nodeName"] == "n1"], taints, at(t), eviction_timeout)
        for p in plan.evict:
            evicted.append(p["metadata"]["name"])
            pods = [q for q in pods if q["metadata"]["name"] != p["metadata"]["name"]]
        t += 1.0
    return health, marked, [tk["key"] for tk in taints], evicted


RENEWED_TO_10 = [float(i) for i in range(0, 11, 2)]  # every 2 s until 10 s, then silence


@pytest.mark.parametrize(
    ("case", "status", "renewals", "now", "ready", "marked", "taints", "evicted"),
    [
        ("renewing: healthy although the status post is old", "True", [float(i) for i in range(0, 31, 2)], 30,
         "True", [], [], []),
        ("silent for less than the grace", "True", RENEWED_TO_10, 18, "True", [], [], []),
        ("silent past the grace: Unknown, pods out at once, tainted", "True", RENEWED_TO_10, 19,
         "Unknown", ["a", "b"], [TAINT_UNREACHABLE], []),
        ("eviction timeout after detection", "True", RENEWED_TO_10, 23, "Unknown", ["a", "b"],
         [TAINT_UNREACHABLE], []),
        ("evicted once the default toleration ran out", "True", RENEWED_TO_10, 24, "Unknown", ["a", "b"],
         [TAINT_UNREACHABLE], ["a", "b", "c"]),
        ("agent reports its runtime down: not ready, pods out", "False", [float(i) for i in range(0, 11, 2)], 10,
         "False", ["a", "b"], [TAINT_NOT_READY], ["a", "b", "c"]),
        ("already Unknown but the Lease is fresh again: pods left to the agent", "Unknown", [0.0, 2.0], 3,
         "Unknown", [], [TAINT_UNREACHABLE], []),
        ("Unknown and silent (seen first after a master restart): the toleration runs from the taint",
         "Unknown", [0.0], 6, "Unknown", [], [TAINT_UNREACHABLE], ["a", "b", "c"]),
    ],
)
def test_lease_timeline(case: str, status: str, renewals: list[float], now: float, ready: str,
                        marked: list[str], taints: list[str], evicted: list[str]) -> None:
    health, got_marked, got_taints, got_evicted = timeline(status, renewals, now)
    assert (health.ready, got_marked, got_taints, sorted(got_evicted)) == (ready, marked, taints, evicted), case


def test_lease_renewals_are_judged_on_the_masters_clock() -> None:
    skewed = lease(-3600)  # the agent's clock is an hour behind
    beat = observe_heartbeat(None, node("True", -3600), at(0), skewed)
    assert compute_node_health(node("True", -3600), at(5), LEASE_GRACE, beat, skewed).ready == "True"
    renewed = lease(-3598)
    beat = observe_heartbeat(beat, node("True", -3600), at(6), renewed)
    assert beat.seen_at == at(6)
    assert compute_node_health(node("True", -3600), at(13), LEASE_GRACE, beat, renewed).ready == "True"
    assert compute_node_health(node("True", -3600), at(14.5), LEASE_GRACE, beat, renewed).ready == "Unknown"


def test_without_observations_the_newest_timestamp_counts() -> None:
    h = compute_node_health(node("True", 0), at(12), LEASE_GRACE, None, lease(10))
    assert h.ready == "True"
    h = compute_node_health(node("True", 0), at(19), LEASE_GRACE, None, lease(10))
    assert (h.ready, h.mark_unknown, h.pods_not_ready) == ("Unknown", True, True)


def test_pods_not_ready_touches_only_ready_pods_of_the_node() -> None:
    pods = [ready_pod("a"), ready_pod("b", ready=False), ready_pod("x", node_name="n2")]
    down = NodeHealth("Unknown", True, TAINT_UNREACHABLE, pods_not_ready=True)
    out = compute_pods_not_ready(pods, down, "n1")
    assert [p["metadata"]["name"] for p in out] == ["a"]
    ready = {c["type"]: c["status"] for c in out[0]["status"]["conditions"]}
    assert ready == {"ContainersReady": "True", "Ready": "False"}  # as MarkPodsNotReady: Ready only
    assert pods[0]["status"]["conditions"][1]["status"] == "True"  # the input is not modified
    assert compute_pods_not_ready(pods, NodeHealth("True", False, None), "n1") == []
