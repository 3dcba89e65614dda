"""The HorizontalPodAutoscaler's replica algorithm, as the Kubernetes controller computes it.

Everything here is pure: the caller fetches the target's scale, its pods and the metric
values (`metrics.py`), and these functions turn them into a decision. Time is passed in
(`now`, epoch seconds), and the only state, the per-HPA `History` of recommendations and
scale events, is an explicit argument, so every rule is table-tested.

Per metric (`evaluate`), following pkg/controller/podautoscaler/replica_calculator.go:

* Values are handled in integer milli-units, like the Kubernetes metrics client, so ratios
  and truncations match it exactly (utilization is `int(total*100/requests)`, the usage
  ratio `utilization/target`, the proposal `ceil(ratio * readyPods)`).
* Pods are grouped first: deleting or Failed pods are ignored; Pending pods are unready;
  pods without a sample are missing. For CPU only, a pod is also unready when it has no
  Ready condition or start time, or, within the CPU initialization period (5 min) after its
  start, when it is not ready or its sample's window began before it became ready; after
  that period, when it is not ready and never was (its Ready condition changed within the
  initial readiness delay, 30 s, of its start).
* Within the tolerance (|1 - ratio| <= 0.1) nothing changes. Missing pods count as 100% of
  their request (or the target, when the target is higher) on a scale-down and 0% on a
  scale-up; unready pods count as 0% on a scale-up. If that rebalancing flips the
  direction or lands within the tolerance, the count stays; a proposal never moves against
  the direction of the new ratio.
* Object and External metrics with a `Value` target scale the ready pod count by the
  ratio, or go to `ceil(ratio)` from zero replicas (which is how a target scales back up
  from zero); `AverageValue` targets divide the total by the per-pod target.

Across metrics (`decide`, following horizontal.go's reconcileAutoscaler): the largest
proposal wins (the first on a tie); if every metric failed, or some failed and the others
would scale down, nothing is scaled and ScalingActive is False. A target at zero replicas
with `minReplicas` > 0 is left alone (scaling disabled); outside [min, max] it is first
brought inside. Then the proposal is normalized:

* without `spec.behavior`: the highest recommendation of the downscale stabilization
  window (5 min) is used, and a scale-up is capped at max(2 x current, 4);
* with `spec.behavior`: the recommendation is clamped between the lowest recommendation of
  the scale-up window and the highest of the scale-down window, then limited by the
  policies of that direction: each policy allows `Pods` (+/- value) or `Percent` change
  from the replica count at the start of its `periodSeconds` (replays the recorded scale
  events); `selectPolicy` Max takes the policy allowing the largest change, Min the
  smallest, Disabled forbids scaling in that direction.

The returned `Decision` carries the status conditions (AbleToScale, ScalingActive,
ScalingLimited with Kubernetes' reasons and messages), the `currentMetrics`, the rescale
reason and the Events (`SuccessfulRescale` "New size: N; reason: ..."). Once the new scale
is written, the caller records it with `store_scale_event` (the policies replay those).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..objects import Obj
from ..objects.pods import get_condition
from ..objects.timefmt import parse_time
from ..objects.validation import parse_quantity

DEFAULT_TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
DOWNSCALE_STABILIZATION = 300.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4

# Behavior defaults (autoscaling/v2): used when `spec.behavior` is given but a direction or
# a field of it is not.
DEFAULT_SCALE_UP: Obj = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                 {"type": "Percent", "value": 100, "periodSeconds": 15}],
}
DEFAULT_SCALE_DOWN: Obj = {
    "stabilizationWindowSeconds": int(DOWNSCALE_STABILIZATION),
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


class MetricError(Exception):
    """A metric could not be turned into a replica count; `reason` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Tunables:
    """The controller's flags (kube-controller-manager's --horizontal-pod-autoscaler-*)."""

    tolerance: float = DEFAULT_TOLERANCE
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY
    downscale_stabilization: float = DOWNSCALE_STABILIZATION


@dataclass(frozen=True)
class PodMetric:
    """One pod's sample: `value` in base units (cores, bytes, ...), over `window` seconds ending at `timestamp`."""

    value: float
    timestamp: float
    window: float = 0.0


def milli(value: float) -> int:
    """A value in base units as integer milli-units (the metrics client's resolution)."""
    return int(round(value * 1000))


def format_milli(m: int) -> str:
    """A quantity string for a milli-value: `250m`, `2`, `52428800`."""
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def quantity_milli(q: Any) -> int:
    return int((parse_quantity(q) * 1000).to_integral_value(rounding="ROUND_CEILING"))


# -- pods ---------------------------------------------------------------------------------------


def _ts(value: Any) -> float | None:
    t = parse_time(value)
    return t.timestamp() if t is not None else None


def _name(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("name") or "")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


@dataclass(frozen=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


def group_pods(pods: Sequence[Obj], metrics: Mapping[str, PodMetric], resource: str, now: float,
               tun: Tunables = Tunables()) -> PodGroups:
    """Split pods into ready-with-a-sample (counted), unready, missing a sample and ignored."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = _name(pod)
        if (pod.get("metadata") or {}).get("deletionTimestamp") or _phase(pod) == "Failed":
            ignored.add(name)
            continue
        if _phase(pod) == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = get_condition(pod, "Ready")
            start = _ts((pod.get("status") or {}).get("startTime"))
            if cond is None or start is None:
                is_unready = True
            else:
                transition = _ts(cond.get("lastTransitionTime")) or start
                if start + tun.cpu_initialization_period > now:
                    is_unready = cond.get("status") == "False" or metric.timestamp < transition + metric.window
                else:
                    is_unready = cond.get("status") == "False" and start + tun.initial_readiness_delay > transition
            if is_unready:
                unready.add(name)
                continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def pod_requests(pods: Sequence[Obj], resource: str, container: str | None = None) -> dict[str, int]:
    """Each pod's request of `resource` in milli-units (one container's, or the sum of all)."""
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        found = False
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            found = True
            q = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if q is None:
                raise MetricError("FailedGetResourceMetric",
                                  f"missing request for {resource} in container {c.get('name')} of Pod {_name(pod)}")
            total += quantity_milli(q)
        if container and not found:
            raise MetricError("FailedGetContainerResourceMetric",
                              f"container {container} not present in pod {_name(pod)}")
        out[_name(pod)] = total
    return out


def ready_pod_count(pods: Sequence[Obj]) -> int:
    """Running pods whose Ready condition is True (for Object/External Value targets)."""
    if not pods:
        raise MetricError("FailedGetExternalMetric", "no pods returned by selector while calculating replica count")
    return sum(1 for p in pods if _phase(p) == "Running" and (get_condition(p, "Ready") or {}).get("status") == "True")


# -- one metric ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None = None  # percent of request (Utilization targets)
    usage: int = 0  # milli-units: per-pod average, or the value for Value targets


def _utilization(metrics: Mapping[str, int], requests: Mapping[str, int]) -> tuple[int, int]:
    """(utilization percent, average milli-usage) of the pods that have a request."""
    total = req = n = 0
    for pod, value in metrics.items():
        if pod not in requests:
            continue
        total += value
        req += requests[pod]
        n += 1
    if req == 0:
        raise MetricError("FailedGetResourceMetric", "no metrics returned matched known pods")
    return (total * 100) // req, total // n


def _within(ratio: float, tun: Tunables) -> bool:
    return abs(1.0 - ratio) <= tun.tolerance


def resource_utilization_replicas(current: int, target_utilization: int, resource: str, pods: Sequence[Obj],
                                  samples: Mapping[str, PodMetric], now: float, tun: Tunables = Tunables(),
                                  container: str | None = None) -> Proposal:
    """Replicas for a Resource/ContainerResource metric with a Utilization target."""
    if not pods:
        raise MetricError("FailedGetResourceMetric", "no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, tun)
    requests = pod_requests(pods, resource, container)
    metrics = {p: milli(m.value) for p, m in samples.items()
               if p not in groups.ignored and p not in groups.unready and p in requests}
    if not metrics:
        raise MetricError("FailedGetResourceMetric", "did not receive metrics for targeted pods (pods might be unready)")
    utilization, raw = _utilization(metrics, requests)
    ratio = utilization / target_utilization
    scale_up_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_unready and not groups.missing:
        if _within(ratio, tun):
            return Proposal(current, utilization, raw)
        return Proposal(math.ceil(ratio * groups.ready_count), utilization, raw)
    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for pod in groups.missing:
                metrics[pod] = requests[pod] * fallback // 100
        elif ratio > 1.0:
            for pod in groups.missing:
                metrics[pod] = 0
    if scale_up_unready:
        for pod in groups.unready:
            metrics[pod] = 0
    new_utilization, _ = _utilization(metrics, requests)
    new_ratio = new_utilization / target_utilization
    if _within(new_ratio, tun) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Proposal(current, utilization, raw)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, utilization, raw)
    return Proposal(replicas, utilization, raw)


def _average(metrics: Mapping[str, int]) -> int:
    return sum(metrics.values()) // len(metrics)


def plain_metric_replicas(current: int, target_milli: int, pods: Sequence[Obj], samples: Mapping[str, PodMetric],
                          now: float, tun: Tunables = Tunables(), resource: str = "",
                          reason: str = "FailedGetPodsMetric") -> Proposal:
    """Replicas for an AverageValue target over per-pod samples (Pods metrics, Resource AverageValue)."""
    if not pods:
        raise MetricError(reason, "no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, tun)
    names = {_name(p) for p in pods}
    metrics = {p: milli(m.value) for p, m in samples.items()
               if p in names and p not in groups.ignored and p not in groups.unready}
    if not metrics:
        raise MetricError(reason, "did not receive metrics for targeted pods (pods might be unready)")
    usage = _average(metrics)
    ratio = usage / target_milli
    scale_up_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_unready and not groups.missing:
        if _within(ratio, tun):
            return Proposal(current, None, usage)
        return Proposal(math.ceil(ratio * groups.ready_count), None, usage)
    if groups.missing:
        for pod in groups.missing:
            metrics[pod] = target_milli if ratio < 1.0 else 0
    if scale_up_unready:
        for pod in groups.unready:
            metrics[pod] = 0
    new_ratio = _average(metrics) / target_milli
    if _within(new_ratio, tun) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Proposal(current, None, usage)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, None, usage)
    return Proposal(replicas, None, usage)


def value_replicas(current: int, usage_milli: int, target_milli: int, pods: Sequence[Obj],
                   tun: Tunables = Tunables()) -> Proposal:
    """Replicas for an Object/External metric with a Value target (scales from zero too)."""
    ratio = usage_milli / target_milli
    if current != 0:
        if _within(ratio, tun):
            return Proposal(current, None, usage_milli)
        return Proposal(math.ceil(ratio * ready_pod_count(pods)), None, usage_milli)
    return Proposal(math.ceil(ratio), None, usage_milli)


def per_pod_replicas(status_replicas: int, usage_milli: int, target_per_pod_milli: int,
                     tun: Tunables = Tunables()) -> Proposal:
    """Replicas for an Object/External metric with an AverageValue target."""
    replicas = status_replicas
    ratio = usage_milli / (target_per_pod_milli * status_replicas) if status_replicas else math.inf
    if abs(1.0 - ratio) > tun.tolerance:
        replicas = math.ceil(usage_milli / target_per_pod_milli)
    per_pod = math.ceil(usage_milli / status_replicas) if status_replicas else usage_milli
    return Proposal(replicas, None, per_pod)


# -- metric specs -------------------------------------------------------------------------------

_FAIL_REASON = {
    "Resource": "FailedGetResourceMetric",
    "ContainerResource": "FailedGetContainerResourceMetric",
    "Pods": "FailedGetPodsMetric",
    "Object": "FailedGetObjectMetric",
    "External": "FailedGetExternalMetric",
}


def failure_reason(metric: Obj) -> str:
    return _FAIL_REASON.get(str(metric.get("type")), "FailedGetResourceMetric")


def _source(metric: Obj) -> Obj:
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}.get(str(metric.get("type")), "")
    return metric.get(key) or {}


def metric_name(metric: Obj) -> str:
    """How a metric is named in reasons and Events (Kubernetes' wording)."""
    src = _source(metric)
    mtype = metric.get("type")
    target = src.get("target") or {}
    if mtype in ("Resource", "ContainerResource"):
        what = "resource" if mtype == "Resource" else "container resource"
        if target.get("type") == "Utilization":
            return f"{src.get('name')} {what} utilization (percentage of request)"
        return f"{src.get('name')} {what}"
    name = (src.get("metric") or {}).get("name", "")
    if mtype == "Pods":
        return f"pods metric {name}"
    if mtype == "Object":
        return f"{(src.get('describedObject') or {}).get('kind', '')} metric {name}"
    return f"external metric {name}"


def evaluate(metric: Obj, data: Any, spec_replicas: int, status_replicas: int, pods: Sequence[Obj], now: float,
             tun: Tunables = Tunables()) -> tuple[int, Obj]:
    """(proposed replicas, currentMetrics entry) of one metric spec given its fetched `data`.

    `data` is a mapping pod name -> `PodMetric` for Resource, ContainerResource and Pods
    metrics, and a number (the metric's total, base units) for Object and External ones.
    """
    mtype = str(metric.get("type"))
    src = _source(metric)
    target = src.get("target") or {}
    ttype = target.get("type")
    reason = failure_reason(metric)
    if mtype in ("Resource", "ContainerResource"):
        resource = str(src.get("name"))
        container = src.get("container") if mtype == "ContainerResource" else None
        key = "resource" if mtype == "Resource" else "containerResource"
        ident: Obj = {"name": resource} | ({"container": container} if container else {})
        if ttype == "Utilization":
            p = resource_utilization_replicas(spec_replicas, int(target["averageUtilization"]), resource, pods, data,
                                              now, tun, container)
            current: Obj = {"averageValue": format_milli(p.usage), "averageUtilization": p.utilization}
        else:
            p = plain_metric_replicas(spec_replicas, quantity_milli(target["averageValue"]), pods, data, now, tun,
                                      resource, reason)
            current = {"averageValue": format_milli(p.usage)}
        return p.replicas, {"type": mtype, key: {**ident, "current": current}}
    if mtype == "Pods":
        p = plain_metric_replicas(spec_replicas, quantity_milli(target["averageValue"]), pods, data, now, tun)
        return p.replicas, {"type": "Pods", "pods": {"metric": src.get("metric"),
                                                     "current": {"averageValue": format_milli(p.usage)}}}
    if mtype in ("Object", "External"):
        usage = milli(float(data))
        if ttype == "AverageValue":
            p = per_pod_replicas(status_replicas, usage, quantity_milli(target["averageValue"]), tun)
            current = {"averageValue": format_milli(p.usage)}
        else:
            try:
                p = value_replicas(spec_replicas, usage, quantity_milli(target["value"]), pods, tun)
            except MetricError as e:
                raise MetricError(reason, e.message) from None
            current = {"value": format_milli(p.usage)}
        key = "object" if mtype == "Object" else "external"
        entry: Obj = {"metric": src.get("metric"), "current": current}
        if mtype == "Object":
            entry = {"describedObject": src.get("describedObject"), **entry}
        return p.replicas, {"type": mtype, key: entry}
    raise MetricError(reason, f"unknown metric source type {mtype!r}")


# -- normalization state ------------------------------------------------------------------------


@dataclass
class ScaleEvent:
    change: int
    timestamp: float
    outdated: bool = False


@dataclass
class History:
    """Per-HPA memory of the controller: recent recommendations and scale events."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)  # (time, replicas)
    scale_up: list[ScaleEvent] = field(default_factory=list)
    scale_down: list[ScaleEvent] = field(default_factory=list)


def _record(history: History, replicas: int, now: float, cutoff: float) -> None:
    """Remember a recommendation, reusing the slot of one older than `cutoff`."""
    for i, (ts, _) in enumerate(history.recommendations):
        if ts < cutoff:
            history.recommendations[i] = (now, replicas)
            return
    history.recommendations.append((now, replicas))


def stabilize(history: History, desired: int, now: float, window: float) -> int:
    """Without behavior: the highest recommendation of the downscale window (records `desired`)."""
    cutoff = now - window
    best = desired
    for ts, rec in history.recommendations:
        if ts >= cutoff and rec > best:
            best = rec
    _record(history, desired, now, cutoff)
    return best


def rules(behavior: Obj | None, direction: str, tun: Tunables) -> Obj:
    """The scaling rules of one direction with defaults filled in."""
    base = DEFAULT_SCALE_UP if direction == "scaleUp" else DEFAULT_SCALE_DOWN
    given = (behavior or {}).get(direction) or {}
    out = {k: (given.get(k) if given.get(k) is not None else v) for k, v in base.items()}
    if direction == "scaleDown" and given.get("stabilizationWindowSeconds") is None:
        out["stabilizationWindowSeconds"] = tun.downscale_stabilization
    return out


def stabilize_with_behavior(history: History, current: int, desired: int, up_window: float, down_window: float,
                            now: float) -> tuple[int, str, str]:
    up_cutoff, down_cutoff = now - up_window, now - down_window
    up_rec = down_rec = desired
    for ts, rec in history.recommendations:
        if ts > up_cutoff:
            up_rec = min(rec, up_rec)
        if ts > down_cutoff:
            down_rec = max(rec, down_rec)
    recommendation = max(current, up_rec)
    recommendation = min(recommendation, down_rec)
    _record(history, desired, now, min(up_cutoff, down_cutoff))
    if desired >= current:
        return (recommendation, "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation")
    return (recommendation, "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation")


def _change_in_period(period: float, events: list[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.timestamp > cutoff)


def _policy_limit(current: int, history: History, scaling: Obj, now: float, up: bool) -> int:
    """The furthest the policies of one direction let the replica count go from `current`.

    Each policy starts from the count at the beginning of its period (current minus the
    scale-ups, plus the scale-downs inside it); selectPolicy Max picks the policy allowing
    the biggest change, Min the smallest, Disabled allows none.
    """
    select = scaling.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    biggest_change = max if up else min
    pick = biggest_change if select == "Max" else (min if up else max)
    result: int | None = None
    for policy in scaling.get("policies") or []:
        period = float(policy.get("periodSeconds") or 15)
        start = current - _change_in_period(period, history.scale_up, now) \
            + _change_in_period(period, history.scale_down, now)
        value = int(policy["value"])
        if policy.get("type") == "Pods":
            proposed = start + value if up else start - value
        elif up:
            proposed = math.ceil(start * (1 + value / 100))
        else:
            proposed = int(start * (1 - value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_up_limit(current: int, history: History, scaling: Obj, now: float) -> int:
    return _policy_limit(current, history, scaling, now, up=True)


def scale_down_limit(current: int, history: History, scaling: Obj, now: float) -> int:
    return _policy_limit(current, history, scaling, now, up=False)


def limit_with_rules(current: int, desired: int, min_r: int, max_r: int) -> tuple[int, str, str]:
    """Without behavior: stay in [min, max] and grow at most to max(2 x current, 4)."""
    up_limit = max(int(SCALE_UP_LIMIT_FACTOR * current), SCALE_UP_LIMIT_MINIMUM)
    if max_r > up_limit:
        maximum, reason, message = up_limit, "ScaleUpLimit", \
            "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum, reason, message = max_r, "TooManyReplicas", \
            "the desired replica count is more than the maximum replica count"
    if desired < min_r:
        return min_r, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > maximum:
        return maximum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def limit_with_behavior(current: int, desired: int, min_r: int, max_r: int, up: Obj, down: Obj,
                        history: History, now: float) -> tuple[int, str, str]:
    if desired > current:
        limit = max(scale_up_limit(current, history, up, now), current)
        if max_r > limit:
            maximum, reason, message = limit, "ScaleUpLimit", \
                "the desired replica count is increasing faster than the maximum scale rate"
        else:
            maximum, reason, message = max_r, "TooManyReplicas", \
                "the desired replica count is more than the maximum replica count"
        if desired > maximum:
            return maximum, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, history, down, now), current)
        if min_r < limit:
            minimum, reason, message = limit, "ScaleDownLimit", \
                "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            minimum, reason, message = min_r, "TooFewReplicas", \
                "the desired replica count is less than the minimum replica count"
        if desired < minimum:
            return minimum, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def store_scale_event(history: History, behavior: Obj | None, previous: int, new: int, now: float,
                      tun: Tunables = Tunables()) -> None:
    """Remember a rescale (only with behavior: the policies replay these)."""
    if behavior is None or new == previous:
        return
    direction = "scaleUp" if new > previous else "scaleDown"
    events = history.scale_up if new > previous else history.scale_down
    longest = max((float(p.get("periodSeconds") or 15) for p in rules(behavior, direction, tun)["policies"]),
                  default=0.0)
    for e in events:
        if e.timestamp < now - longest:
            e.outdated = True
    change = abs(new - previous)
    for i, e in enumerate(events):
        if e.outdated:
            events[i] = ScaleEvent(change, now)
            return
    events.append(ScaleEvent(change, now))


# -- the whole decision -------------------------------------------------------------------------


@dataclass
class Outcome:
    """One metric's result: a proposal and its status entry, or an error."""

    metric: Obj
    replicas: int | None = None
    status: Obj | None = None
    error: MetricError | None = None


@dataclass
class Decision:
    desired: int
    rescale: bool
    reason: str = ""
    conditions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # type -> (status, reason, msg)
    current_metrics: list[Obj] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    failed: bool = False  # no usable metric: status only


def min_replicas(spec: Obj) -> int:
    value = spec.get("minReplicas")
    return 1 if value is None else int(value)


def needs_metrics(spec: Obj, spec_replicas: int) -> bool:
    """Whether `decide` will look at metrics (the target is enabled and inside [min, max])."""
    lo = min_replicas(spec)
    if spec_replicas == 0 and lo != 0:
        return False
    return lo <= spec_replicas <= int(spec.get("maxReplicas") or 0)


def decide(spec: Obj, spec_replicas: int, outcomes: Sequence[Outcome], history: History, now: float,
           tun: Tunables = Tunables()) -> Decision:
    """What the controller does this round: horizontal.go's reconcileAutoscaler."""
    if not history.recommendations:
        history.recommendations.append((now, spec_replicas))
    lo, hi = min_replicas(spec), int(spec.get("maxReplicas") or 0)
    behavior = spec.get("behavior")
    d = Decision(spec_replicas, False)
    d.conditions["AbleToScale"] = ("True", "SucceededGetScale",
                                   "the HPA controller was able to get the target's current scale")
    if spec_replicas == 0 and lo != 0:
        d.conditions["ScalingActive"] = ("False", "ScalingDisabled",
                                         "scaling is disabled since the replica count of the target is zero")
        return d
    if spec_replicas > hi:
        d.desired, d.reason = hi, "Current number of replicas above Spec.MaxReplicas"
    elif spec_replicas < lo:
        d.desired, d.reason = lo, "Current number of replicas below Spec.MinReplicas"
    else:
        best, best_name = -1, ""
        invalid = 0
        first_error: Outcome | None = None
        for o in outcomes:
            if o.error is not None or o.replicas is None:
                invalid += 1
                first_error = first_error or o
                continue
            if o.status is not None:
                d.current_metrics.append(o.status)
            if o.replicas > best:
                best, best_name = o.replicas, metric_name(o.metric)
        if first_error is not None and first_error.error is not None and (
            invalid >= len(outcomes) or best < spec_replicas
        ):
            err = first_error.error
            d.conditions["ScalingActive"] = ("False", err.reason,
                                             f"the HPA was unable to compute the replica count: {err.message}")
            d.events.append(("Warning", err.reason, err.message))
            d.events.append(("Warning", "FailedComputeMetricsReplicas",
                             f"invalid metrics ({invalid} invalid out of {len(outcomes)}), "
                             f"first error is: {err.message}"))
            d.failed = True
            return d
        if first_error is not None and first_error.error is not None:
            d.events.append(("Warning", first_error.error.reason, first_error.error.message))
        if not outcomes:
            return d
        d.conditions["ScalingActive"] = ("True", "ValidMetricFound",
                                         f"the HPA was able to successfully calculate a replica count from "
                                         f"{best_name}")
        desired = max(best, 0)
        if desired > spec_replicas:
            d.reason = f"{best_name} above target"
        elif desired < spec_replicas:
            d.reason = "All metrics below target"
        if behavior is None:
            stabilized = stabilize(history, desired, now, tun.downscale_stabilization)
            if stabilized != desired:
                d.conditions["AbleToScale"] = ("True", "ScaleDownStabilized",
                                               "recent recommendations were higher than current one, "
                                               "applying the highest recent recommendation")
            else:
                d.conditions["AbleToScale"] = ("True", "ReadyForNewScale", "recommended size matches current size")
            final, reason, message = limit_with_rules(spec_replicas, stabilized, lo, hi)
        else:
            up, down = rules(behavior, "scaleUp", tun), rules(behavior, "scaleDown", tun)
            stabilized, s_reason, s_message = stabilize_with_behavior(
                history, spec_replicas, desired, float(up["stabilizationWindowSeconds"]),
                float(down["stabilizationWindowSeconds"]), now)
            if stabilized != desired:
                d.conditions["AbleToScale"] = ("True", s_reason, s_message)
            else:
                d.conditions["AbleToScale"] = ("True", "ReadyForNewScale", "recommended size matches current size")
            final, reason, message = limit_with_behavior(spec_replicas, stabilized, lo, hi, up, down, history, now)
        d.conditions["ScalingLimited"] = ("False" if final == stabilized else "True", reason, message)
        d.desired = final
    d.rescale = d.desired != spec_replicas
    if d.rescale:
        d.conditions["AbleToScale"] = ("True", "SucceededRescale",
                                       f"the HPA controller was able to update the target scale to {d.desired}")
        d.events.append(("Normal", "SuccessfulRescale", f"New size: {d.desired}; reason: {d.reason}"))
    return d
