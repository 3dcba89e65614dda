"""Table-driven tests of the HPA replica algorithm (orchestrator.autoscaling.replicas)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.autoscaling.replicas import (
    History,
    MetricError,
    Outcome,
    PodMetric,
    ScaleEvent,
    Tunables,
    decide,
    evaluate,
    group_pods,
    limit_with_behavior,
    per_pod_replicas,
    plain_metric_replicas,
    resource_utilization_replicas,
    rules,
    store_scale_event,
    value_replicas,
)
from orchestrator.objects.resources.horizontalpodautoscaler import metric_target_text as target_text

NOW = 1_700_000_000.0


def ts(ago: float) -> str:
    return datetime.fromtimestamp(NOW - ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, cpu: str | None = "100m", phase: str = "Running", ready: bool | None = True,
        started_ago: float | None = 600, transition_ago: float = 590, deleting: bool = False,
        memory: str | None = None) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    status: dict[str, Any] = {"phase": phase}
    if started_ago is not None:
        status["startTime"] = ts(started_ago)
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ts(transition_ago)}]
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if deleting:
        meta["deletionTimestamp"] = ts(1)
    return {"metadata": meta, "spec": {"containers": [{"name": "app", "resources": {"requests": requests}}]},
            "status": status}


def sample(cores: float, at_ago: float = 0, window: float = 10) -> PodMetric:
    return PodMetric(cores, NOW - at_ago, window)


def cpu_metric(target: int) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                         "averageUtilization": target}}}


def external_metric(value: str, kind: str = "Value") -> dict[str, Any]:
    key = "value" if kind == "Value" else "averageValue"
    return {"type": "External", "external": {"metric": {"name": "queue_depth"}, "target": {"type": kind, key: value}}}


# -- resource utilization -----------------------------------------------------------------------

UTILIZATION_CASES = [
    # (id, current, target, pods, samples, expected replicas, expected utilization)
    ("within tolerance", 3, 50, [pod("a"), pod("b"), pod("c")],
     {"a": sample(0.052), "b": sample(0.052), "c": sample(0.052)}, 3, 52),
    ("scale up", 1, 50, [pod("a")], {"a": sample(0.2)}, 4, 200),
    ("scale down", 4, 50, [pod(n) for n in "abcd"], {n: sample(0.01) for n in "abcd"}, 1, 10),
    ("truncated utilization", 10, 100, [pod(str(i)) for i in range(10)],
     {str(i): sample(0.111) for i in range(10)}, 12, 111),
    ("missing pods count 100% on scale down", 4, 50, [pod(n) for n in "abcd"],
     {n: sample(0.01) for n in "abc"}, 3, 10),
    ("missing pods count 0% on scale up", 2, 50, [pod("a"), pod("b")], {"a": sample(0.2)}, 4, 200),
    ("missing pods that flip the direction keep the count", 2, 50, [pod("a"), pod("b")], {"a": sample(0.06)}, 2, 60),
    ("unready pods count 0% on scale up", 2, 50,
     [pod("a"), pod("b", phase="Pending", ready=False, started_ago=None)], {"a": sample(0.3)}, 6, 300),
    ("unready pods that flip the ratio keep the count", 3, 80,
     [pod("a"), pod("b", ready=False, started_ago=10, transition_ago=10),
      pod("c", ready=False, started_ago=10, transition_ago=10)],
     {"a": sample(0.2), "b": sample(0.2), "c": sample(0.2)}, 3, 200),
    ("unready pods are left out on scale down", 2, 50,
     [pod("a"), pod("b", ready=False, started_ago=10, transition_ago=10)],
     {"a": sample(0.01), "b": sample(0.5)}, 1, 10),
    ("deleting and failed pods are ignored", 3, 50,
     [pod("a"), pod("b", deleting=True), pod("c", phase="Failed")],
     {"a": sample(0.1), "b": sample(0.0), "c": sample(0.0)}, 2, 100),
]


@pytest.mark.parametrize("case", UTILIZATION_CASES, ids=[c[0] for c in UTILIZATION_CASES])
def test_resource_utilization(case: tuple[Any, ...]) -> None:
    _, current, target, pods, samples, replicas, utilization = case
    p = resource_utilization_replicas(current, target, "cpu", pods, samples, NOW)
    assert (p.replicas, p.utilization) == (replicas, utilization)


CPU_READINESS_CASES = [
    # (id, pod, sample, unready?)
    ("ready and sampled after readiness", pod("a", started_ago=60, transition_ago=50), sample(0.1, 0, 10), False),
    ("sample window began before readiness", pod("a", started_ago=60, transition_ago=5), sample(0.1, 0, 10), True),
    ("not ready within the initialization period", pod("a", ready=False, started_ago=60, transition_ago=50),
     sample(0.1), True),
    ("never ready after the initialization period",
     pod("a", ready=False, started_ago=600, transition_ago=590), sample(0.1), True),
    ("ready once, now failing readiness", pod("a", ready=False, started_ago=600, transition_ago=60), sample(0.1), False),
    ("no Ready condition", pod("a", ready=None), sample(0.1), True),
    ("no start time", pod("a", started_ago=None), sample(0.1), True),
]


@pytest.mark.parametrize("case", CPU_READINESS_CASES, ids=[c[0] for c in CPU_READINESS_CASES])
def test_cpu_readiness(case: tuple[Any, ...]) -> None:
    _, p, s, unready = case
    groups = group_pods([p], {"a": s}, "cpu", NOW)
    assert ("a" in groups.unready) is unready
    # other resources never treat running pods as unready
    assert "a" not in group_pods([p], {"a": s}, "memory", NOW).unready


def test_utilization_errors() -> None:
    with pytest.raises(MetricError, match="missing request for cpu in container app of Pod a"):
        resource_utilization_replicas(1, 50, "cpu", [pod("a", cpu=None)], {"a": sample(0.1)}, NOW)
    with pytest.raises(MetricError, match="did not receive metrics"):
        resource_utilization_replicas(1, 50, "cpu", [pod("a")], {}, NOW)
    with pytest.raises(MetricError, match="no pods"):
        resource_utilization_replicas(1, 50, "cpu", [], {}, NOW)


def test_cpu_initialization_period_is_tunable() -> None:
    p = pod("a", started_ago=60, transition_ago=5)
    assert "a" not in group_pods([p], {"a": sample(0.1)}, "cpu", NOW, Tunables(cpu_initialization_period=30)).unready


# -- average values, pods, object and external metrics ---------------------------------------------

PLAIN_CASES = [
    ("pods metric scale up", 2, 10_000, [pod("a"), pod("b")], {"a": sample(30), "b": sample(30)}, 6),
    ("pods metric within tolerance", 2, 10_000, [pod("a"), pod("b")], {"a": sample(10.5), "b": sample(10)}, 2),
    ("missing pods count as the target on scale down", 3, 10_000, [pod("a"), pod("b"), pod("c")],
     {"a": sample(1), "b": sample(1)}, 2),
    ("fractional values", 1, 500, [pod("a")], {"a": sample(1.25)}, 3),
]


@pytest.mark.parametrize("case", PLAIN_CASES, ids=[c[0] for c in PLAIN_CASES])
def test_plain_metric(case: tuple[Any, ...]) -> None:
    _, current, target_milli, pods, samples, replicas = case
    assert plain_metric_replicas(current, target_milli, pods, samples, NOW).replicas == replicas


@pytest.mark.parametrize("current,usage,target,pods,replicas", [
    (0, 25_000, 10_000, [], 3),  # from zero: ceil(ratio)
    (0, 0, 10_000, [], 0),
    (2, 10_500, 10_000, [pod("a"), pod("b")], 2),  # tolerance
    (2, 30_000, 10_000, [pod("a"), pod("b")], 6),
    (3, 30_000, 10_000, [pod("a"), pod("b"), pod("c", ready=False)], 6),  # ready pods only
    (2, 0, 10_000, [pod("a"), pod("b")], 0),
])
def test_value_targets(current: int, usage: int, target: int, pods: list[dict[str, Any]], replicas: int) -> None:
    assert value_replicas(current, usage, target, pods).replicas == replicas


@pytest.mark.parametrize("status_replicas,usage,target,replicas,per_pod", [
    (2, 30_000, 10_000, 3, 15_000),
    (2, 21_000, 10_000, 2, 10_500),
    (0, 25_000, 10_000, 3, 25_000),
])
def test_average_value_targets(status_replicas: int, usage: int, target: int, replicas: int, per_pod: int) -> None:
    p = per_pod_replicas(status_replicas, usage, target)
    assert (p.replicas, p.usage) == (replicas, per_pod)


def test_evaluate_status_entries() -> None:
    replicas, status = evaluate(cpu_metric(50), {"a": sample(0.2)}, 1, 1, [pod("a")], NOW)
    assert replicas == 4
    assert status == {"type": "Resource", "resource": {"name": "cpu", "current": {
        "averageValue": "200m", "averageUtilization": 200}}}
    assert target_text(cpu_metric(50), status) == "cpu: 200%/50%"
    assert target_text(cpu_metric(50), None) == "cpu: <unknown>/50%"
    replicas, status = evaluate(external_metric("10"), 25.0, 0, 0, [], NOW)
    assert replicas == 3 and status["external"]["current"] == {"value": "25"}


# -- normalization and the whole decision ---------------------------------------------------------

SPEC = {"minReplicas": 1, "maxReplicas": 10, "metrics": [cpu_metric(50)]}


def outcome(replicas: int, metric: dict[str, Any] | None = None) -> Outcome:
    return Outcome(metric or cpu_metric(50), replicas, {"type": "Resource"})


def failing(metric: dict[str, Any] | None = None) -> Outcome:
    return Outcome(metric or cpu_metric(50), error=MetricError("FailedGetResourceMetric", "boom"))


def history(*recs: tuple[float, int]) -> History:
    return History(recommendations=[(NOW - ago, r) for ago, r in recs])


DECIDE_CASES = [
    # (id, spec overrides, current, outcomes, history, expected desired, limited reason)
    ("scale up, no behavior, capped at max(2x, 4)", {}, 1, [outcome(9)], history(), 4, "ScaleUpLimit"),
    ("capped at maxReplicas", {"maxReplicas": 3}, 1, [outcome(9)], history(), 3, "TooManyReplicas"),
    ("clamped to minReplicas", {"minReplicas": 2}, 3, [outcome(1)], history((400, 3)), 2, "TooFewReplicas"),
    ("legacy downscale stabilization keeps the highest", {}, 5, [outcome(2)], history((100, 5)), 5,
     "DesiredWithinRange"),
    ("legacy stabilization forgets old recommendations", {}, 5, [outcome(2)], history((400, 5)), 2,
     "DesiredWithinRange"),
    ("short scale-down window from behavior", {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}},
     5, [outcome(2)], history((30, 5)), 2, "DesiredWithinRange"),
    ("within the scale-down window", {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
     5, [outcome(2)], history((30, 4)), 4, "DesiredWithinRange"),
    ("scale-up window takes the lowest", {"behavior": {"scaleUp": {"stabilizationWindowSeconds": 60}}},
     2, [outcome(6)], history((30, 3)), 3, "DesiredWithinRange"),
    ("Pods policy limits a scale up", {"behavior": {"scaleUp": {"policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 60}]}}}, 2, [outcome(6)], history(), 3, "ScaleUpLimit"),
    ("Percent policy limits a scale down", {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [
        {"type": "Percent", "value": 50, "periodSeconds": 60}]}}}, 10, [outcome(1)], history(), 5, "ScaleDownLimit"),
    ("selectPolicy Max picks the largest change", {"maxReplicas": 50, "behavior": {"scaleUp": {}}}, 10,
     [outcome(40)], history(), 20, "ScaleUpLimit"),
    ("selectPolicy Min picks the smallest change", {"maxReplicas": 50, "behavior": {"scaleUp": {
        "selectPolicy": "Min"}}}, 10, [outcome(40)], history(), 14, "ScaleUpLimit"),
    ("selectPolicy Disabled", {"behavior": {"scaleDown": {"selectPolicy": "Disabled",
                                                          "stabilizationWindowSeconds": 0}}},
     5, [outcome(1)], history(), 5, "ScaleDownLimit"),
    ("multiple metrics: the largest wins", {}, 2, [outcome(3), outcome(4), outcome(1)], history(), 4,
     "DesiredWithinRange"),
    ("a failed metric does not block a scale up", {}, 2, [failing(), outcome(4)], history(), 4, "DesiredWithinRange"),
    ("a fresh controller holds a scale down for the window", {}, 3, [outcome(1)], history(), 3,
     "DesiredWithinRange"),
    ("scale to zero with minReplicas 0", {"minReplicas": 0, "metrics": [external_metric("10")]}, 2,
     [outcome(0, external_metric("10"))], history((400, 2)), 0, "DesiredWithinRange"),
    ("scale from zero", {"minReplicas": 0, "metrics": [external_metric("10")]}, 0,
     [outcome(3, external_metric("10"))], history(), 3, "DesiredWithinRange"),
]


@pytest.mark.parametrize("case", DECIDE_CASES, ids=[c[0] for c in DECIDE_CASES])
def test_decide(case: tuple[Any, ...]) -> None:
    _, overrides, current, outcomes, hist, desired, limited = case
    d = decide({**SPEC, **overrides}, current, outcomes, hist, NOW)
    assert d.desired == desired
    assert d.rescale is (desired != current)
    assert d.conditions["ScalingLimited"][1] == limited
    assert d.conditions["ScalingActive"][0] == "True"


def test_rescale_event_and_reason() -> None:
    d = decide(SPEC, 1, [outcome(4)], History(), NOW)
    assert d.events == [("Normal", "SuccessfulRescale",
                         "New size: 4; reason: cpu resource utilization (percentage of request) above target")]
    assert d.conditions["AbleToScale"][1] == "SucceededRescale"
    down = decide({**SPEC, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}}, 4, [outcome(1)],
                  History(), NOW)
    assert down.events[0][2] == "New size: 1; reason: All metrics below target"


def test_failures() -> None:
    d = decide(SPEC, 3, [failing()], History(), NOW)
    assert d.failed and not d.rescale and d.desired == 3
    assert d.conditions["ScalingActive"] == ("False", "FailedGetResourceMetric",
                                             "the HPA was unable to compute the replica count: boom")
    # some metrics failed and the rest would scale down: no change
    assert decide(SPEC, 3, [failing(), outcome(1)], History(), NOW).failed


def test_out_of_range_and_disabled() -> None:
    d = decide(SPEC, 0, [], History(), NOW)
    assert not d.rescale and d.conditions["ScalingActive"][1] == "ScalingDisabled"
    d = decide(SPEC, 12, [], History(), NOW)
    assert d.desired == 10 and d.reason == "Current number of replicas above Spec.MaxReplicas"


def test_scale_events_replay_into_policies() -> None:
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}}
    hist = History()
    store_scale_event(hist, behavior, 2, 4, NOW - 30)
    up, down = rules(behavior, "scaleUp", Tunables()), rules(behavior, "scaleDown", Tunables())
    # 2 pods were added 30 s ago: the period started at 2, so 4 is the limit now
    assert limit_with_behavior(4, 9, 1, 10, up, down, hist, NOW)[0] == 4
    # once the period has passed, 2 more are allowed
    assert limit_with_behavior(4, 9, 1, 10, up, down, hist, NOW + 40)[0] == 6
    # an outdated slot is reused
    store_scale_event(hist, behavior, 4, 6, NOW + 100)
    assert hist.scale_up == [ScaleEvent(2, NOW + 100)]
