"""HorizontalPodAutoscalers between autoscaling/v1 and autoscaling/v2
(orchestrator.objects.hpaconversion), table-driven.

The expectations are Kubernetes' (pkg/apis/autoscaling/v1/conversion.go): the CPU
utilization metric is v1's `targetCPUUtilizationPercentage`, everything else travels in the
`autoscaling.alpha.kubernetes.io/*` annotations of the v1 object, in v1's metric shapes, and
comes back from them, so a v2 object read as v1 and written back as v1 is the same object.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from orchestrator.objects.hpaconversion import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    v1_to_v2,
    v2_to_v1,
)

REF = {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}
META = {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
        "labels": {"app": "web"}, "annotations": {"team": "platform"}}


def cpu(utilization: int) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                     "averageUtilization": utilization}}}


def v2(spec: dict[str, Any], status: dict[str, Any] | None = None, meta: dict[str, Any] | None = None
       ) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                           "metadata": copy.deepcopy(meta or META),
                           "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec}}
    if status is not None:
        obj["status"] = status
    return obj


def v1(spec: dict[str, Any], status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None
       ) -> dict[str, Any]:
    meta = copy.deepcopy(META)
    meta["annotations"] = {**meta["annotations"], **(annotations or {})}
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": meta,
            "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec},
            "status": status if status is not None else {"currentReplicas": 0, "desiredReplicas": 0}}


MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                       "averageValue": "100Mi"}}}
CPU_VALUE = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue",
                                                                       "averageValue": "500m"}}}
PODS = {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                 "target": {"type": "AverageValue", "averageValue": "10"}}}
OBJECT_VALUE = {"type": "Object", "object": {
    "describedObject": {"kind": "Service", "name": "front", "apiVersion": "v1"},
    "target": {"type": "Value", "value": "2k"},
    "metric": {"name": "hits", "selector": {"matchLabels": {"path": "/"}}}}}
OBJECT_AVERAGE = {"type": "Object", "object": {
    "describedObject": {"kind": "Ingress", "name": "main"},
    "target": {"type": "AverageValue", "averageValue": "30"},
    "metric": {"name": "latency"}}}
EXTERNAL_VALUE = {"type": "External", "external": {
    "metric": {"name": "queue_depth", "selector": {"matchLabels": {"queue": "jobs"}}},
    "target": {"type": "Value", "value": "100"}}}
EXTERNAL_AVERAGE = {"type": "External", "external": {
    "metric": {"name": "queue_depth"}, "target": {"type": "AverageValue", "averageValue": "20"}}}
CONTAINER = {"type": "ContainerResource", "containerResource": {
    "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 70}}}
BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min",
                  "policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}]},
}
CONDITIONS = [
    {"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-01-02T03:04:05Z",
     "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
    {"type": "ScalingActive", "status": "False", "lastTransitionTime": "2026-01-02T03:04:05Z",
     "reason": "FailedGetResourceMetric", "message": "no metrics <yet> & none soon"},
]
CURRENT = [
    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "120m", "averageUtilization": 40}}},
    {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "90Mi"}}},
    {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"}, "current": {"averageValue": "7"}}},
    {"type": "Object", "object": {"metric": {"name": "hits"}, "current": {"value": "1500"},
                                  "describedObject": {"kind": "Service", "name": "front", "apiVersion": "v1"}}},
    {"type": "External", "external": {"metric": {"name": "queue_depth"},
                                      "current": {"value": "80", "averageValue": "16"}}},
    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                                                        "current": {"averageUtilization": 55}}},
]


# -- v1 -> v2 ---------------------------------------------------------------------------------------

V1_TO_V2: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("targetCPUUtilizationPercentage is the CPU Resource metric",
     v1({"targetCPUUtilizationPercentage": 65}),
     {"metrics": [cpu(65)]}),
    ("no target: the CPU at 80%, v1's implicit default",
     v1({}),
     {"metrics": [cpu(80)]}),
    ("other metrics from the annotation first, the CPU one last",
     v1({"targetCPUUtilizationPercentage": 50}, annotations={METRICS_ANNOTATION: json.dumps([
         {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}])}),
     {"metrics": [MEMORY, cpu(50)]}),
    ("only other metrics: no CPU default",
     v1({}, annotations={METRICS_ANNOTATION: json.dumps([
         {"type": "Pods", "pods": {"metricName": "requests_per_second", "targetAverageValue": "10"}}])}),
     {"metrics": [PODS]}),
    ("an Object metric as Kubernetes writes it (Go's zero targetValue next to averageValue)",
     v1({}, annotations={METRICS_ANNOTATION: json.dumps([{"type": "Object", "object": {
         "target": {"kind": "Ingress", "name": "main"}, "metricName": "latency", "targetValue": "0",
         "averageValue": "30"}}])}),
     {"metrics": [OBJECT_AVERAGE]}),
    ("the behavior annotation, Go's field names",
     v1({"targetCPUUtilizationPercentage": 50}, annotations={BEHAVIOR_ANNOTATION: json.dumps({
         "ScaleUp": None,
         "ScaleDown": {"StabilizationWindowSeconds": 60, "SelectPolicy": "Min",
                       "Policies": [{"Type": "Percent", "Value": 50, "PeriodSeconds": 30}]}})}),
     {"metrics": [cpu(50)], "behavior": {"scaleDown": BEHAVIOR["scaleDown"]}}),
    ("the behavior annotation in any case, as Go reads JSON",
     v1({"targetCPUUtilizationPercentage": 50}, annotations={BEHAVIOR_ANNOTATION: json.dumps({
         "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min",
                       "policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}]}})}),
     {"metrics": [cpu(50)], "behavior": {"scaleDown": BEHAVIOR["scaleDown"]}}),
    ("an empty behavior is no behavior",
     v1({"targetCPUUtilizationPercentage": 50}, annotations={BEHAVIOR_ANNOTATION: '{"ScaleUp":null}'}),
     {"metrics": [cpu(50)]}),
    ("annotations that do not parse are ignored",
     v1({"targetCPUUtilizationPercentage": 50}, annotations={
         METRICS_ANNOTATION: "[{", BEHAVIOR_ANNOTATION: "[]", CURRENT_METRICS_ANNOTATION: '{"a":1}',
         CONDITIONS_ANNOTATION: "[1]"}),
     {"metrics": [cpu(50)]}),
]


@pytest.mark.parametrize(("case", "obj", "spec"), V1_TO_V2, ids=[c[0] for c in V1_TO_V2])
def test_v1_to_v2_spec(case: str, obj: dict[str, Any], spec: dict[str, Any]) -> None:
    out = v1_to_v2(obj)
    assert out["apiVersion"] == "autoscaling/v2" and out["kind"] == "HorizontalPodAutoscaler"
    assert out["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec}
    assert out["metadata"] == META  # the round-trip annotations are gone, the others kept


V1_STATUS: list[tuple[str, dict[str, Any], dict[str, str], dict[str, Any]]] = [
    ("currentCPUUtilizationPercentage is the CPU's current utilization",
     {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 40}, {},
     {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
         {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40}}}]}),
    ("the current-metrics annotation has more and wins",
     {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 40},
     {CURRENT_METRICS_ANNOTATION: json.dumps([
         {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                                           "currentAverageValue": "120m"}},
         {"type": "External", "external": {"metricName": "queue_depth", "currentValue": "80"}}])},
     {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
         {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "120m",
                                                                     "averageUtilization": 40}}},
         {"type": "External", "external": {"metric": {"name": "queue_depth"}, "current": {"value": "80"}}}]}),
    ("conditions from their annotation",
     {"currentReplicas": 1, "desiredReplicas": 1, "lastScaleTime": "2026-01-02T03:04:05Z", "observedGeneration": 4},
     {CONDITIONS_ANNOTATION: json.dumps(CONDITIONS)},
     {"observedGeneration": 4, "lastScaleTime": "2026-01-02T03:04:05Z", "currentReplicas": 1,
      "desiredReplicas": 1, "conditions": CONDITIONS}),
]


@pytest.mark.parametrize(("case", "status", "annotations", "want"), V1_STATUS, ids=[c[0] for c in V1_STATUS])
def test_v1_to_v2_status(case: str, status: dict[str, Any], annotations: dict[str, str],
                         want: dict[str, Any]) -> None:
    out = v1_to_v2(v1({"targetCPUUtilizationPercentage": 50}, status, annotations))
    assert out["status"] == want


# -- v2 -> v1 ---------------------------------------------------------------------------------------

V2_TO_V1: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]] = [
    ("the CPU utilization metric is targetCPUUtilizationPercentage, nothing else to carry",
     v2({"metrics": [cpu(65)]}), {"targetCPUUtilizationPercentage": 65}, {}),
    ("other metrics in v1's shape in the metrics annotation",
     v2({"metrics": [cpu(65), MEMORY, CPU_VALUE]}), {"targetCPUUtilizationPercentage": 65},
     {METRICS_ANNOTATION: '[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}},'
                          '{"type":"Resource","resource":{"name":"cpu","targetAverageValue":"500m"}}]'}),
    ("every metric source",
     v2({"metrics": [PODS, OBJECT_VALUE, OBJECT_AVERAGE, EXTERNAL_VALUE, EXTERNAL_AVERAGE, CONTAINER]}), {},
     {METRICS_ANNOTATION: json.dumps([
         {"type": "Pods", "pods": {"metricName": "requests_per_second", "targetAverageValue": "10"}},
         {"type": "Object", "object": {"target": {"kind": "Service", "name": "front", "apiVersion": "v1"},
                                       "metricName": "hits", "targetValue": "2k",
                                       "selector": {"matchLabels": {"path": "/"}}}},
         {"type": "Object", "object": {"target": {"kind": "Ingress", "name": "main"}, "metricName": "latency",
                                       "averageValue": "30"}},
         {"type": "External", "external": {"metricName": "queue_depth",
                                           "metricSelector": {"matchLabels": {"queue": "jobs"}},
                                           "targetValue": "100"}},
         {"type": "External", "external": {"metricName": "queue_depth", "targetAverageValue": "20"}},
         {"type": "ContainerResource", "containerResource": {"name": "cpu", "targetAverageUtilization": 70,
                                                             "container": "app"}},
     ], separators=(",", ":"))}),
    ("behavior as Kubernetes writes it: Go field names, null for a direction not set",
     v2({"metrics": [cpu(65)], "behavior": {"scaleDown": BEHAVIOR["scaleDown"]}}),
     {"targetCPUUtilizationPercentage": 65},
     {BEHAVIOR_ANNOTATION: '{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Min",'
                           '"Policies":[{"Type":"Percent","Value":50,"PeriodSeconds":30}]}}'}),
]


@pytest.mark.parametrize(("case", "obj", "spec", "annotations"), V2_TO_V1, ids=[c[0] for c in V2_TO_V1])
def test_v2_to_v1(case: str, obj: dict[str, Any], spec: dict[str, Any], annotations: dict[str, str]) -> None:
    out = v2_to_v1(obj)
    assert list(out) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert out["apiVersion"] == "autoscaling/v1"
    assert out["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5, **spec}
    assert out["metadata"]["annotations"] == {"team": "platform", **annotations}
    assert out["status"] == {"currentReplicas": 0, "desiredReplicas": 0}  # Go's shape: both always there


def test_v2_status_to_v1() -> None:
    out = v2_to_v1(v2({"metrics": [cpu(50)]}, {"observedGeneration": 3, "lastScaleTime": "2026-01-02T03:04:05Z",
                                               "currentReplicas": 2, "desiredReplicas": 4,
                                               "currentMetrics": CURRENT, "conditions": CONDITIONS}))
    assert out["status"] == {"observedGeneration": 3, "lastScaleTime": "2026-01-02T03:04:05Z", "currentReplicas": 2,
                             "desiredReplicas": 4, "currentCPUUtilizationPercentage": 40}
    annotations = out["metadata"]["annotations"]
    assert json.loads(annotations[CURRENT_METRICS_ANNOTATION])[:2] == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                                          "currentAverageValue": "120m"}},
        {"type": "Resource", "resource": {"name": "memory", "currentAverageValue": "90Mi"}},
    ]
    # Go's encoder escapes <, > and & in the JSON it writes
    assert "\\u003cyet\\u003e \\u0026 none" in annotations[CONDITIONS_ANNOTATION]
    assert json.loads(annotations[CONDITIONS_ANNOTATION]) == CONDITIONS


def test_stale_round_trip_annotations_of_a_v2_object_are_written_anew() -> None:
    meta = {**META, "annotations": {"team": "platform", METRICS_ANNOTATION: "[]", BEHAVIOR_ANNOTATION: "{}",
                                    CONDITIONS_ANNOTATION: "[]", CURRENT_METRICS_ANNOTATION: "[]"}}
    out = v2_to_v1(v2({"metrics": [cpu(50), MEMORY]}, meta=meta))
    assert set(out["metadata"]["annotations"]) == {"team", METRICS_ANNOTATION}
    assert json.loads(out["metadata"]["annotations"][METRICS_ANNOTATION])[0]["resource"]["name"] == "memory"


# -- round trips ------------------------------------------------------------------------------------

ROUND_TRIPS: list[tuple[str, dict[str, Any]]] = [
    ("CPU only", v2({"metrics": [cpu(65)]})),
    ("every metric source, the CPU one last",
     v2({"metrics": [MEMORY, CPU_VALUE, PODS, OBJECT_VALUE, OBJECT_AVERAGE, EXTERNAL_VALUE, EXTERNAL_AVERAGE,
                     CONTAINER, cpu(65)]})),
    ("behavior, both directions", v2({"metrics": [cpu(65)], "behavior": BEHAVIOR})),
    ("behavior with a tolerance", v2({"metrics": [cpu(65)], "behavior": {
        "scaleUp": {**BEHAVIOR["scaleUp"], "tolerance": "50m"}}})),
    ("a full status", v2({"metrics": [MEMORY, cpu(65)]}, {
        "observedGeneration": 3, "lastScaleTime": "2026-01-02T03:04:05Z", "currentReplicas": 2,
        "desiredReplicas": 4, "currentMetrics": CURRENT, "conditions": CONDITIONS})),
    ("no annotations of its own", v2({"metrics": [MEMORY, cpu(65)]}, meta={"name": "web", "namespace": "default"})),
]


@pytest.mark.parametrize(("case", "obj"), ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS])
def test_a_v1_round_trip_loses_nothing(case: str, obj: dict[str, Any]) -> None:
    kept = copy.deepcopy(obj)
    back = v1_to_v2(v2_to_v1(obj))
    assert obj == kept  # the input is not changed
    want = copy.deepcopy(obj)
    want.setdefault("status", {})
    want["status"] = {"currentReplicas": 0, "desiredReplicas": 0, **want["status"]}  # Go's zeros, as v1 has them
    assert back == want
    # and v1 -> v2 -> v1 is the identity on what v1 shows
    assert v2_to_v1(back) == v2_to_v1(obj)


def test_outputs_share_nothing_with_inputs() -> None:
    obj = v2({"metrics": [cpu(65), MEMORY], "behavior": BEHAVIOR}, {"conditions": CONDITIONS})
    out = v2_to_v1(obj)
    out["spec"]["scaleTargetRef"]["name"] = "changed"
    out["metadata"]["labels"]["app"] = "changed"
    assert obj["spec"]["scaleTargetRef"]["name"] == "web" and obj["metadata"]["labels"]["app"] == "web"
    back = v1_to_v2(out)
    back["spec"]["behavior"]["scaleUp"]["policies"][0]["value"] = 99
    assert json.loads(out["metadata"]["annotations"][BEHAVIOR_ANNOTATION])["ScaleUp"]["Policies"][0]["Value"] == 4
