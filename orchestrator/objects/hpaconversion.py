"""HorizontalPodAutoscalers between autoscaling/v1 and autoscaling/v2 (the stored version), as
Kubernetes converts them (`pkg/apis/autoscaling/v1/conversion.go`).

autoscaling/v1 knows one metric: `spec.targetCPUUtilizationPercentage` is v2's `cpu`
Resource metric with a Utilization target, `status.currentCPUUtilizationPercentage` that
metric's current `averageUtilization`. What v1 cannot hold travels in annotations of the v1
object, so that an object read as v1 and written back as v1 loses nothing:

* `autoscaling.alpha.kubernetes.io/metrics`: the metrics other than the CPU utilization one,
  in v1's metric shape (v2beta1's: `targetAverageUtilization`, `metricName`, `targetValue`, ...);
* `autoscaling.alpha.kubernetes.io/current-metrics`: all of `status.currentMetrics`, in v1's
  shape (`currentAverageUtilization`, `currentValue`, ...);
* `autoscaling.alpha.kubernetes.io/behavior`: `spec.behavior`, as Kubernetes writes it there
  (its internal type's JSON, Go field names: `{"ScaleUp":{"StabilizationWindowSeconds":0,...}}`);
  read back whatever the case of the names, as Go reads JSON;
* `autoscaling.alpha.kubernetes.io/conditions`: `status.conditions`.

To v1 (`v2_to_v1`), those annotations a stored object may carry are dropped and written anew
from its fields. To v2 (`v1_to_v2`), they are read back and removed; one that does not parse
is ignored (and removed), as Kubernetes does. The other metrics come first and the CPU one
last, as in Kubernetes; a v1 object with neither gets the CPU at 80%, Kubernetes' implicit v1
default.

Where Kubernetes' Go types force a value that v2 left unset (the required quantities of v1's
metric shapes: an Object metric's `targetValue`, a Resource status's `currentAverageValue`,
...), nothing is written here, where Kubernetes writes "0", so reading the annotation back
gives exactly the v2 fields; likewise an Object or External target is Value or AverageValue
by which of the two v1 carries, and only that one comes back. The top-level v1 status keeps
Go's shape (`currentReplicas` and `desiredReplicas` always present, 0 when unset): clients
generated from Kubernetes' OpenAPI require them.

Pure functions of JSON objects: the input is never changed, the output shares nothing with it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from . import Obj

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
ROUND_TRIP_ANNOTATIONS = (METRICS_ANNOTATION, CURRENT_METRICS_ANNOTATION, BEHAVIOR_ANNOTATION,
                          CONDITIONS_ANNOTATION)

DEFAULT_CPU_UTILIZATION = 80  # autoscaling.DefaultCPUUtilization


# -- small helpers ---------------------------------------------------------------------------------


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _put(out: Obj, key: str, value: Any) -> None:
    if value is not None:
        out[key] = copy.deepcopy(value)


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, `<`, `>` and `&` escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _parse_list(text: Any) -> list[Obj] | None:
    """An annotation holding a JSON array of objects; None when it does not parse as one."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return None
    return value


def _is_cpu_utilization(metric: Obj) -> bool:
    src = _dict(metric.get("resource"))
    return (metric.get("type") == "Resource" and src.get("name") == "cpu"
            and _dict(src.get("target")).get("averageUtilization") is not None)


def _cpu_metric(utilization: Any) -> Obj:
    return {"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}}


def _reference(ref: Obj) -> Obj:
    """A CrossVersionObjectReference: kind, name, apiVersion (left out when empty)."""
    out: Obj = {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    if ref.get("apiVersion"):
        out["apiVersion"] = ref["apiVersion"]
    return out


def _identifier(name: Any, selector: Any) -> Obj:
    """A v2 MetricIdentifier."""
    out: Obj = {"name": name if name is not None else ""}
    _put(out, "selector", selector)
    return out


# -- metrics: v2 -> v1's shapes --------------------------------------------------------------------


def metric_spec_to_v1(metric: Obj) -> Obj:
    """One v2 MetricSpec in v1's (v2beta1's) shape."""
    out: Obj = {"type": metric.get("type", "")}
    obj, pods = _dict(metric.get("object")), _dict(metric.get("pods"))
    res, cres, ext = (_dict(metric.get(k)) for k in ("resource", "containerResource", "external"))
    if "object" in metric:
        target, ident = _dict(obj.get("target")), _dict(obj.get("metric"))
        o: Obj = {"target": _reference(_dict(obj.get("describedObject"))), "metricName": ident.get("name", "")}
        _put(o, "targetValue", target.get("value"))
        _put(o, "selector", ident.get("selector"))
        _put(o, "averageValue", target.get("averageValue"))
        out["object"] = o
    if "pods" in metric:
        target, ident = _dict(pods.get("target")), _dict(pods.get("metric"))
        p: Obj = {"metricName": ident.get("name", "")}
        _put(p, "targetAverageValue", target.get("averageValue"))
        _put(p, "selector", ident.get("selector"))
        out["pods"] = p
    for key, src in (("resource", res), ("containerResource", cres)):
        if key in metric:
            target = _dict(src.get("target"))
            r: Obj = {"name": src.get("name", "")}
            _put(r, "targetAverageUtilization", target.get("averageUtilization"))
            _put(r, "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if "external" in metric:
        target, ident = _dict(ext.get("target")), _dict(ext.get("metric"))
        e: Obj = {"metricName": ident.get("name", "")}
        _put(e, "metricSelector", ident.get("selector"))
        _put(e, "targetValue", target.get("value"))
        _put(e, "targetAverageValue", target.get("averageValue"))
        out["external"] = e
    return out


def metric_status_to_v1(metric: Obj) -> Obj:
    """One v2 MetricStatus in v1's (v2beta1's) shape."""
    out: Obj = {"type": metric.get("type", "")}
    if "object" in metric:
        src = _dict(metric["object"])
        cur, ident = _dict(src.get("current")), _dict(src.get("metric"))
        o: Obj = {"target": _reference(_dict(src.get("describedObject"))), "metricName": ident.get("name", "")}
        _put(o, "currentValue", cur.get("value"))
        _put(o, "selector", ident.get("selector"))
        _put(o, "averageValue", cur.get("averageValue"))
        out["object"] = o
    if "pods" in metric:
        src = _dict(metric["pods"])
        cur, ident = _dict(src.get("current")), _dict(src.get("metric"))
        p: Obj = {"metricName": ident.get("name", "")}
        _put(p, "currentAverageValue", cur.get("averageValue"))
        _put(p, "selector", ident.get("selector"))
        out["pods"] = p
    for key in ("resource", "containerResource"):
        if key in metric:
            src = _dict(metric[key])
            cur = _dict(src.get("current"))
            r: Obj = {"name": src.get("name", "")}
            _put(r, "currentAverageUtilization", cur.get("averageUtilization"))
            _put(r, "currentAverageValue", cur.get("averageValue"))
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if "external" in metric:
        src = _dict(metric["external"])
        cur, ident = _dict(src.get("current")), _dict(src.get("metric"))
        e: Obj = {"metricName": ident.get("name", "")}
        _put(e, "metricSelector", ident.get("selector"))
        _put(e, "currentValue", cur.get("value"))
        _put(e, "currentAverageValue", cur.get("averageValue"))
        out["external"] = e
    return out


# -- metrics: v1's shapes -> v2 --------------------------------------------------------------------


def _target(utilization: Any = None, value: Any = None, average: Any = None) -> Obj:
    """A v2 MetricTarget: Utilization when a utilization is given, else Value when a value
    is given, else AverageValue."""
    ttype = "Utilization" if utilization is not None else "Value" if value is not None else "AverageValue"
    out: Obj = {"type": ttype}
    if ttype == "Value":
        _put(out, "value", value)
    else:
        _put(out, "averageValue", average)
    _put(out, "averageUtilization", utilization)
    return out


def metric_spec_from_v1(metric: Obj) -> Obj:
    """One v1 (v2beta1-shaped) MetricSpec in v2's shape."""
    out: Obj = {"type": metric.get("type", "")}
    if "object" in metric:
        src = _dict(metric["object"])
        average = src.get("averageValue")
        out["object"] = {
            "describedObject": _reference(_dict(src.get("target"))),
            "target": _target(value=src.get("targetValue") if average is None else None, average=average),
            "metric": _identifier(src.get("metricName"), src.get("selector")),
        }
    if "pods" in metric:
        src = _dict(metric["pods"])
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "target": _target(average=src.get("targetAverageValue"))}
    for key in ("resource", "containerResource"):
        if key in metric:
            src = _dict(metric[key])
            r: Obj = {"name": src.get("name", ""),
                      "target": _target(src.get("targetAverageUtilization"), average=src.get("targetAverageValue"))}
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if "external" in metric:
        src = _dict(metric["external"])
        out["external"] = {"metric": _identifier(src.get("metricName"), src.get("metricSelector")),
                           "target": _target(value=src.get("targetValue"), average=src.get("targetAverageValue"))}
    return out


def _current(value: Any = None, average: Any = None, utilization: Any = None) -> Obj:
    out: Obj = {}
    _put(out, "value", value)
    _put(out, "averageValue", average)
    _put(out, "averageUtilization", utilization)
    return out


def metric_status_from_v1(metric: Obj) -> Obj:
    """One v1 (v2beta1-shaped) MetricStatus in v2's shape."""
    out: Obj = {"type": metric.get("type", "")}
    if "object" in metric:
        src = _dict(metric["object"])
        out["object"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                         "current": _current(src.get("currentValue"), src.get("averageValue")),
                         "describedObject": _reference(_dict(src.get("target")))}
    if "pods" in metric:
        src = _dict(metric["pods"])
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "current": _current(average=src.get("currentAverageValue"))}
    for key in ("resource", "containerResource"):
        if key in metric:
            src = _dict(metric[key])
            r: Obj = {"name": src.get("name", ""),
                      "current": _current(average=src.get("currentAverageValue"),
                                          utilization=src.get("currentAverageUtilization"))}
            if key == "containerResource":
                r["container"] = src.get("container", "")
            out[key] = r
    if "external" in metric:
        src = _dict(metric["external"])
        out["external"] = {"metric": _identifier(src.get("metricName"), src.get("metricSelector")),
                           "current": _current(src.get("currentValue"), src.get("currentAverageValue"))}
    return out


# -- behavior: v2 <-> the annotation's Go field names ----------------------------------------------

_RULES_FIELDS = (("stabilizationWindowSeconds", "StabilizationWindowSeconds"), ("selectPolicy", "SelectPolicy"))
_POLICY_FIELDS = (("type", "Type"), ("value", "Value"), ("periodSeconds", "PeriodSeconds"))


def behavior_to_annotation(behavior: Obj) -> str:
    """`spec.behavior` as Kubernetes writes it in the behavior annotation (Go names, null for unset)."""
    out: Obj = {}
    for key, go in (("scaleUp", "ScaleUp"), ("scaleDown", "ScaleDown")):
        rules = behavior.get(key)
        if not isinstance(rules, dict):
            out[go] = None
            continue
        r: Obj = {g: copy.deepcopy(rules.get(k)) for k, g in _RULES_FIELDS}
        policies = rules.get("policies")
        r["Policies"] = [{g: p.get(k) for k, g in _POLICY_FIELDS} for p in policies if isinstance(p, dict)] \
            if isinstance(policies, list) else None
        if rules.get("tolerance") is not None:
            r["Tolerance"] = rules["tolerance"]
        out[go] = r
    return _go_json(out)


def _field(obj: Obj, name: str) -> Any:
    """`obj[name]` matched as Go's JSON decoder matches names: exactly, else ignoring case."""
    if name in obj:
        return obj[name]
    lower = name.lower()
    return next((v for k, v in obj.items() if isinstance(k, str) and k.lower() == lower), None)


def behavior_from_annotation(text: Any) -> Obj | None:
    """`spec.behavior` from the behavior annotation; None when it does not parse or says nothing."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    out: Obj = {}
    for key in ("scaleUp", "scaleDown"):
        rules = _field(value, key)
        if not isinstance(rules, dict):
            continue
        r: Obj = {}
        for k, _ in _RULES_FIELDS:
            _put(r, k, _field(rules, k))
        policies = _field(rules, "policies")
        if isinstance(policies, list):
            r["policies"] = [{k: copy.deepcopy(_field(p, k)) for k, _ in _POLICY_FIELDS if _field(p, k) is not None}
                             for p in policies if isinstance(p, dict)]
        _put(r, "tolerance", _field(rules, "tolerance"))
        out[key] = r
    return out or None


# -- whole objects ---------------------------------------------------------------------------------


def _metadata_without_round_trip(meta: Any) -> Obj | None:
    if not isinstance(meta, dict):
        return None
    out = copy.deepcopy(meta)
    annotations = out.get("annotations")
    if isinstance(annotations, dict):
        kept = {k: v for k, v in annotations.items() if k not in ROUND_TRIP_ANNOTATIONS}
        if kept:
            out["annotations"] = kept
        else:
            del out["annotations"]
    return out


def v2_to_v1(obj: Obj) -> Obj:
    """An autoscaling/v2 HorizontalPodAutoscaler as autoscaling/v1."""
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    current = [m for m in status.get("currentMetrics") or [] if isinstance(m, dict)]

    v1_spec: Obj = {}
    for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
        _put(v1_spec, key, spec.get(key))
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    if cpu is not None:
        v1_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]

    v1_status: Obj = {}
    _put(v1_status, "observedGeneration", status.get("observedGeneration"))
    _put(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas") or 0
    v1_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    for m in current:  # the last CPU utilization, as Kubernetes' loop leaves it
        res = _dict(m.get("resource"))
        utilization = _dict(res.get("current")).get("averageUtilization")
        if m.get("type") == "Resource" and res.get("name") == "cpu" and utilization is not None:
            v1_status["currentCPUUtilizationPercentage"] = utilization

    generated: dict[str, str] = {}
    others = [metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        generated[METRICS_ANNOTATION] = _go_json(others)
    if current:
        generated[CURRENT_METRICS_ANNOTATION] = _go_json([metric_status_to_v1(m) for m in current])
    if isinstance(spec.get("behavior"), dict):
        generated[BEHAVIOR_ANNOTATION] = behavior_to_annotation(spec["behavior"])
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    if conditions:
        generated[CONDITIONS_ANNOTATION] = _go_json(conditions)

    out: Obj = {"apiVersion": V1, "kind": obj.get("kind", "HorizontalPodAutoscaler")}
    meta = _metadata_without_round_trip(obj.get("metadata"))
    if generated:
        meta = meta if meta is not None else {}
        meta["annotations"] = {**(meta.get("annotations") or {}), **generated}
    if meta is not None:
        out["metadata"] = meta
    out["spec"] = v1_spec
    out["status"] = v1_status
    for key, value in obj.items():  # anything else a stored object carries, as it is
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            out[key] = copy.deepcopy(value)
    return out


def v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HorizontalPodAutoscaler as autoscaling/v2 (annotations read back)."""
    meta = obj.get("metadata")
    annotations = _dict(_dict(meta).get("annotations"))
    spec, status = obj.get("spec"), obj.get("status")

    v2_spec: Obj | None = None
    if isinstance(spec, dict):
        v2_spec = {}
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            _put(v2_spec, key, spec.get(key))
        metrics = [metric_spec_from_v1(m) for m in _parse_list(annotations.get(METRICS_ANNOTATION)) or []]
        if spec.get("targetCPUUtilizationPercentage") is not None:
            metrics.append(_cpu_metric(spec["targetCPUUtilizationPercentage"]))
        v2_spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
        behavior = behavior_from_annotation(annotations.get(BEHAVIOR_ANNOTATION))
        if behavior is not None:
            v2_spec["behavior"] = behavior

    current = _parse_list(annotations.get(CURRENT_METRICS_ANNOTATION))
    conditions = _parse_list(annotations.get(CONDITIONS_ANNOTATION))
    v2_status: Obj | None = None
    if isinstance(status, dict) or current is not None or conditions is not None:
        status = _dict(status)
        v2_status = {}
        for key in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"):
            _put(v2_status, key, status.get(key))
        if current is not None:
            v2_status["currentMetrics"] = [metric_status_from_v1(m) for m in current]
        elif status.get("currentCPUUtilizationPercentage") is not None:
            v2_status["currentMetrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
        if conditions is not None:
            v2_status["conditions"] = copy.deepcopy(conditions)

    out: Obj = {"apiVersion": V2, "kind": obj.get("kind", "HorizontalPodAutoscaler")}
    v2_meta = _metadata_without_round_trip(meta)
    if v2_meta is not None:
        out["metadata"] = v2_meta
    elif "metadata" in obj:
        out["metadata"] = copy.deepcopy(meta)
    if v2_spec is not None:
        out["spec"] = v2_spec
    elif "spec" in obj:
        out["spec"] = copy.deepcopy(spec)
    if v2_status is not None:
        out["status"] = v2_status
    elif "status" in obj:
        out["status"] = copy.deepcopy(status)
    for key, value in obj.items():
        if key not in ("apiVersion", "kind", "metadata", "spec", "status"):
            out[key] = copy.deepcopy(value)
    return out
