"""HorizontalPodAutoscaler (autoscaling/v2): scale target, metrics and their targets, replica
bounds, scaling behavior; defaults as autoscaling/v2 (minReplicas 1, CPU at 80%, ...).

The kind is stored as autoscaling/v2 and also served as autoscaling/v1, converted at the API's
edge (`objects/hpaconversion.py`, and the kinds table's `Conversion`). `V1_STRATEGY` describes the v1
form only: its field types (`V1_SCHEMA`, for field validation and OpenAPI) and its printer
(the v2 columns, cells of the object converted to v2); the registry never sees v1 objects,
so its defaults and rules are never asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, enum, forbidden, invalid, nonnegative, not_supported, required
from ..hpaconversion import v1_to_v2
from ..jsonfields import child, dict_of, dicts_of, set_default
from ..printers import AGE, NAME, NONE, Cell, Column, Printer, as_int, created, name_of, spec_of, status_of
from ..quantity import parse_quantity
from ..schema import CONDITION, INT32, INT64, LABEL_SELECTOR, QUANTITY, STRING, TOP_LEVEL, ListOf, struct
from ..strategy import Strategy


def _hpa_rules(behavior: dict[str, Any], direction: str, window: int, policies: list[dict[str, Any]]) -> None:
    scaling = child(behavior, direction)
    if scaling is None:
        return
    set_default(scaling, "stabilizationWindowSeconds", window)
    set_default(scaling, "selectPolicy", "Max")
    set_default(scaling, "policies", policies)


def set_defaults(obj: dict[str, Any]) -> None:
    """autoscaling/v2 defaults: minReplicas 1, CPU at 80% when no metric is given, and when a
    `behavior` is given, its missing parts (scale up: no window, +4 pods or +100% per 15 s;
    scale down: 300 s window, -100% per 15 s; selectPolicy Max)."""
    spec = child(obj, "spec")
    if spec is None:
        return
    set_default(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        _hpa_rules(behavior, "scaleUp", 0, [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                            {"type": "Percent", "value": 100, "periodSeconds": 15}])
        _hpa_rules(behavior, "scaleDown", 300, [{"type": "Percent", "value": 100, "periodSeconds": 15}])


HPA_METRIC_SOURCES = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}


_HPA_TARGET_TYPES = {
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "Pods": ("AverageValue",),
    "Object": ("Value", "AverageValue"),
    "External": ("Value", "AverageValue"),
}


_HPA_TARGET_FIELD = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}


def _validate_metric_target(target: Any, mtype: str, path: str) -> list[FieldError]:
    if not isinstance(target, dict) or not target.get("type"):
        return [required(f"{path}.type")]
    ttype = target["type"]
    allowed = _HPA_TARGET_TYPES[mtype]
    if ttype not in allowed:
        return [not_supported(f"{path}.type", ttype, allowed)]
    errs: list[FieldError] = []
    want = _HPA_TARGET_FIELD[ttype]
    for fld in _HPA_TARGET_FIELD.values():
        if fld != want and target.get(fld) is not None:
            errs.append(forbidden(f"{path}.{fld}", f"may not be set when the target type is {ttype}"))
    value = target.get(want)
    if value is None:
        errs.append(required(f"{path}.{want}", f"must be set for a {ttype} target"))
    elif want == "averageUtilization":
        if value <= 0:
            errs.append(invalid(f"{path}.{want}", value, "must be greater than 0"))
    else:
        try:
            if parse_quantity(value) <= 0:
                errs.append(invalid(f"{path}.{want}", value, "must be positive"))
        except ValueError as exc:
            errs.append(invalid(f"{path}.{want}", value, str(exc)))
    return errs


def _validate_hpa_metric(metric: dict[str, Any], path: str) -> list[FieldError]:
    mtype = metric.get("type")
    if not mtype:
        return [required(f"{path}.type")]
    if mtype not in HPA_METRIC_SOURCES:
        return [not_supported(f"{path}.type", mtype, tuple(HPA_METRIC_SOURCES))]
    key = HPA_METRIC_SOURCES[mtype]
    errs: list[FieldError] = []
    for other in HPA_METRIC_SOURCES.values():
        if other != key and metric.get(other) is not None:
            errs.append(forbidden(f"{path}.{other}", f"must populate the given metric source only ({mtype})"))
    src = metric.get(key)
    if not isinstance(src, dict):
        return errs + [required(f"{path}.{key}", "must populate information for the given metric source")]
    sp = f"{path}.{key}"
    if mtype in ("Resource", "ContainerResource"):
        if not src.get("name"):
            errs.append(required(f"{sp}.name"))
        if mtype == "ContainerResource" and not src.get("container"):
            errs.append(required(f"{sp}.container"))
    else:
        if not dict_of(src.get("metric")).get("name"):
            errs.append(required(f"{sp}.metric.name"))
        if mtype == "Object":
            described = dict_of(src.get("describedObject"))
            for fld in ("kind", "name"):
                if not described.get(fld):
                    errs.append(required(f"{sp}.describedObject.{fld}"))
    return errs + _validate_metric_target(src.get("target"), mtype, f"{sp}.target")


def _validate_scaling_rules(rules: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and not 0 <= window <= 3600:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be between 0 and 3600"))
    enum(errs, rules, "selectPolicy", path, ("Max", "Min", "Disabled"))
    policies = dicts_of(rules.get("policies"))
    if rules.get("policies") is not None and not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        pp = f"{path}.policies[{i}]"
        if not policy.get("type"):
            errs.append(required(f"{pp}.type"))
        else:
            enum(errs, policy, "type", pp, ("Pods", "Percent"))
        value = policy.get("value")
        if value is None or value <= 0:
            errs.append(invalid(f"{pp}.value", value, "must be greater than zero"))
        period = policy.get("periodSeconds")
        if period is None or not 0 < period <= 1800:
            errs.append(invalid(f"{pp}.periodSeconds", period, "must be greater than zero and less than or "
                                                               "equal to 1800"))
    return errs


def validate(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    ref = dict_of(spec.get("scaleTargetRef"))
    for fld in ("kind", "name"):
        if not ref.get(fld):
            errs.append(required(f"spec.scaleTargetRef.{fld}"))
    metrics = dicts_of(spec.get("metrics"))
    for i, metric in enumerate(metrics):
        errs += _validate_hpa_metric(metric, f"spec.metrics[{i}]")
    lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
    if lo is not None and lo < 0:
        errs.append(invalid("spec.minReplicas", lo, "must be greater than or equal to 0"))
    elif lo == 0 and not any(m.get("type") in ("Pods", "Object", "External") for m in metrics):
        errs.append(invalid("spec.minReplicas", lo, "must be greater than or equal to 1 (0 needs at least one "
                                                    "Pods, Object or External metric to scale to zero)"))
    if hi is None:
        errs.append(required("spec.maxReplicas"))
    elif hi < 1:
        errs.append(invalid("spec.maxReplicas", hi, "must be greater than 0"))
    elif lo is not None and hi < lo:
        errs.append(invalid("spec.maxReplicas", hi, "must be greater than or equal to `minReplicas`"))
    behavior = dict_of(spec.get("behavior"))
    for direction in ("scaleUp", "scaleDown"):
        if isinstance(behavior.get(direction), dict):
            errs += _validate_scaling_rules(behavior[direction], f"spec.behavior.{direction}")
    status = dict_of(obj.get("status"))
    for fld in ("currentReplicas", "desiredReplicas"):
        nonnegative(errs, status, fld, "status")
    return errs


# --- schema ------------------------------------------------------------------------------------

METRIC_IDENTIFIER = struct(name=STRING, selector=LABEL_SELECTOR)
METRIC_TARGET = struct(type=STRING, value=QUANTITY, averageValue=QUANTITY, averageUtilization=INT32)
METRIC_VALUE_STATUS = struct(value=QUANTITY, averageValue=QUANTITY, averageUtilization=INT32)
CROSS_VERSION_OBJECT_REFERENCE = struct(apiVersion=STRING, kind=STRING, name=STRING)
HPA_SCALING_RULES = struct(
    stabilizationWindowSeconds=INT32,
    selectPolicy=STRING,
    policies=ListOf(struct(type=STRING, value=INT32, periodSeconds=INT32)),
    tolerance=QUANTITY,
)
HPA_SPEC = struct(
    scaleTargetRef=CROSS_VERSION_OBJECT_REFERENCE,
    minReplicas=INT32,
    maxReplicas=INT32,
    metrics=ListOf(
        struct(
            type=STRING,
            resource=struct(name=STRING, target=METRIC_TARGET),
            containerResource=struct(name=STRING, container=STRING, target=METRIC_TARGET),
            pods=struct(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
            object=struct(describedObject=CROSS_VERSION_OBJECT_REFERENCE, metric=METRIC_IDENTIFIER,
                          target=METRIC_TARGET),
            external=struct(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
        )
    ),
    behavior=struct(scaleUp=HPA_SCALING_RULES, scaleDown=HPA_SCALING_RULES),
)
HPA_STATUS = struct(
    observedGeneration=INT64,
    lastScaleTime=STRING,
    currentReplicas=INT32,
    desiredReplicas=INT32,
    currentMetrics=ListOf(
        struct(
            type=STRING,
            resource=struct(name=STRING, current=METRIC_VALUE_STATUS),
            containerResource=struct(name=STRING, container=STRING, current=METRIC_VALUE_STATUS),
            pods=struct(metric=METRIC_IDENTIFIER, current=METRIC_VALUE_STATUS),
            object=struct(describedObject=CROSS_VERSION_OBJECT_REFERENCE, metric=METRIC_IDENTIFIER,
                          current=METRIC_VALUE_STATUS),
            external=struct(metric=METRIC_IDENTIFIER, current=METRIC_VALUE_STATUS),
        )
    ),
    conditions=ListOf(CONDITION),
)

SCHEMA = TOP_LEVEL.extend(spec=HPA_SPEC, status=HPA_STATUS)


# --- printer -----------------------------------------------------------------------------------


_METRIC_SOURCE_KEYS = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
                       "Object": "object", "External": "external"}


def _metric_source(metric: Obj) -> Obj:
    source: Obj = metric.get(_METRIC_SOURCE_KEYS.get(str(metric.get("type")), "")) or {}
    return source


def metric_target_text(metric: Obj, status: Obj | None) -> str:
    """`current/target` of one metric as `kubectl get hpa` prints it (`cpu: 45%/50%`, `<unknown>/500m`)."""
    src = _metric_source(metric)
    target = src.get("target") or {}
    cur = (_metric_source(status) if status else {}).get("current") or {}
    if target.get("type") == "Utilization":
        now = f"{cur['averageUtilization']}%" if cur.get("averageUtilization") is not None else "<unknown>"
        text = f"{now}/{target.get('averageUtilization')}%"
    elif target.get("type") == "AverageValue":
        text = f"{cur.get('averageValue', '<unknown>')}/{target.get('averageValue')} (avg)" \
            if metric.get("type") in ("Object", "External") else \
            f"{cur.get('averageValue', '<unknown>')}/{target.get('averageValue')}"
    else:
        text = f"{cur.get('value', '<unknown>')}/{target.get('value')}"
    if metric.get("type") in ("Resource", "ContainerResource"):
        return f"{src.get('name')}: {text}"
    return text


def _same_metric(spec: Obj, status: Obj) -> bool:
    a, b = _metric_source(spec), _metric_source(status)
    return (a.get("name") == b.get("name")
            and (a.get("metric") or {}).get("name") == (b.get("metric") or {}).get("name")
            and a.get("container") == b.get("container"))


def hpa_reference(hpa: Obj) -> str:
    ref = spec_of(hpa).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def hpa_targets(hpa: Obj) -> str:
    """`cpu: 45%/50%, 3/10` like kubectl; `<unknown>` for a metric without a current value."""
    metrics = spec_of(hpa).get("metrics") or []
    current = status_of(hpa).get("currentMetrics") or []
    texts = []
    for metric in metrics:
        mtype = metric.get("type")
        match = next((c for c in current if c.get("type") == mtype and _same_metric(metric, c)), None)
        texts.append(metric_target_text(metric, match))
    if len(texts) > 2:
        return ", ".join(texts[:2]) + f" + {len(texts) - 2} more..."
    return ", ".join(texts) or NONE


def _hpa_cells(hpa: Obj, now: datetime) -> list[Cell]:
    spec, status = spec_of(hpa), status_of(hpa)
    lo = spec.get("minReplicas")
    return [
        name_of(hpa),
        hpa_reference(hpa),
        hpa_targets(hpa),
        1 if lo is None else as_int(lo),
        as_int(spec.get("maxReplicas")),
        as_int(status.get("currentReplicas")),
        created(hpa, now),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Reference", description="The scale target of the autoscaler."),
        Column("Targets", description="The current and target values of the metrics."),
        Column("MinPods", "integer", description="The lower limit for the number of pods."),
        Column("MaxPods", "integer", description="The upper limit for the number of pods."),
        Column("Replicas", "integer", description="Current number of replicas of the scale target."),
        AGE,
    ),
    _hpa_cells,
)


class HorizontalPodAutoscalerStrategy(Strategy):
    printer = PRINTER
    schema = SCHEMA
    categories = ("all",)

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)


STRATEGY = HorizontalPodAutoscalerStrategy()


# --- autoscaling/v1 ----------------------------------------------------------------------------

V1_SCHEMA = TOP_LEVEL.extend(
    spec=struct(
        scaleTargetRef=CROSS_VERSION_OBJECT_REFERENCE,
        minReplicas=INT32,
        maxReplicas=INT32,
        targetCPUUtilizationPercentage=INT32,
    ),
    status=struct(
        observedGeneration=INT64,
        lastScaleTime=STRING,
        currentReplicas=INT32,
        desiredReplicas=INT32,
        currentCPUUtilizationPercentage=INT32,
    ),
)

V1_PRINTER = Printer(PRINTER.columns, lambda hpa, now: _hpa_cells(v1_to_v2(hpa), now))


class HorizontalPodAutoscalerV1Strategy(HorizontalPodAutoscalerStrategy):
    """The autoscaling/v1 form: its fields and its table (Kubernetes prints every version alike)."""

    printer = V1_PRINTER
    schema = V1_SCHEMA


V1_STRATEGY = HorizontalPodAutoscalerV1Strategy()
