"""HorizontalPodAutoscalers in autoscaling/v1 and autoscaling/v2, with the real kubectl (v1.32)
and the official Python client, against a real `dockyard up`.

Users' older manifests say autoscaling/v1, `kubectl autoscale` (1.32) posts an autoscaling/v1
object as protobuf, and clients read whichever version they were written for: one stored
object answers in both, and what only v2 can say survives v1 reads and writes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE
from tests.support.kubectl import Kubectl, python_client

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
# resource.version.group names a version; kubectl 1.32 drops the version of a short name
# (`hpa.v1.autoscaling` reads the preferred v2, from kube-apiserver too), so the full name
HPA_V1 = "horizontalpodautoscalers.v1.autoscaling"
HPA_V2 = "horizontalpodautoscalers.v2.autoscaling"

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
        - name: web
          image: {DEMO_IMAGE}
          imagePullPolicy: IfNotPresent
          resources:
            requests: {{cpu: 10m}}
"""

MANIFEST_V1 = """\
# an autoscaling/v1 manifest, as older docs and charts write them
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: web-hpa
  labels: {app: web}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 1
  maxReplicas: %(max)d
  targetCPUUtilizationPercentage: 65
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses (they may run at once)."""
    with running(Cluster(tmp_path_factory.mktemp("hpaversions"), cluster_cidr="10.243.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))
    k("apply", "-f", "-", input=DEPLOYMENT)
    return k


def get(kubectl: Kubectl, resource: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(kubectl("get", resource, name, "-o", "json").stdout)
    return out


def cpu(utilization: int) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                     "averageUtilization": utilization}}}


def test_discovery_lists_both_versions_v2_preferred(kubectl: Kubectl) -> None:
    versions = kubectl("api-versions").stdout.split()
    assert {"autoscaling/v1", "autoscaling/v2"} <= set(versions)
    rows = [r.split() for r in kubectl("api-resources", "--api-group=autoscaling").stdout.splitlines()[1:]]
    assert rows == [["horizontalpodautoscalers", "hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"]]


def test_a_v1_manifest_applies_and_reads_in_both_versions(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "hpa.yaml"
    manifest.write_text(MANIFEST_V1 % {"max": 4})
    r = kubectl("apply", "-f", str(manifest), "-v=6")
    assert r.stdout.strip() == "horizontalpodautoscaler.autoscaling/web-hpa created"
    assert "fieldValidation=Strict" in r.stderr  # kubectl found autoscaling/v1 in /openapi/v3
    as_v2 = get(kubectl, HPA_V2, "web-hpa")
    assert as_v2["apiVersion"] == "autoscaling/v2"
    assert as_v2["spec"]["metrics"] == [cpu(65)] and as_v2["spec"]["maxReplicas"] == 4
    as_v1 = get(kubectl, HPA_V1, "web-hpa")
    assert as_v1["apiVersion"] == "autoscaling/v1"
    assert as_v1["spec"]["targetCPUUtilizationPercentage"] == 65 and "metrics" not in as_v1["spec"]
    assert as_v1["metadata"]["uid"] == as_v2["metadata"]["uid"]
    out = kubectl("get", HPA_V1, "web-hpa").stdout.splitlines()
    assert out[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert out[1].split()[:2] == ["web-hpa", "Deployment/web"] and "/65%" in out[1]


def test_v2_only_fields_survive_v1_applies(kubectl: Kubectl, tmp_path: Path) -> None:
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                           "averageValue": "64Mi"}}}
    patch = {"spec": {"metrics": [memory, cpu(65)], "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}}}
    kubectl("patch", HPA_V2, "web-hpa", "--type=merge", "-p", json.dumps(patch))
    as_v1 = get(kubectl, HPA_V1, "web-hpa")
    assert json.loads(as_v1["metadata"]["annotations"][METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "64Mi"}}]
    manifest = tmp_path / "hpa.yaml"
    manifest.write_text(MANIFEST_V1 % {"max": 6})
    assert kubectl("apply", "-f", str(manifest)).stdout.strip() == \
        "horizontalpodautoscaler.autoscaling/web-hpa configured"
    spec = get(kubectl, HPA_V2, "web-hpa")["spec"]
    assert spec["maxReplicas"] == 6 and spec["metrics"] == [memory, cpu(65)]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30


def test_explain_each_version(kubectl: Kubectl) -> None:
    out = kubectl("explain", "hpa.spec", "--api-version=autoscaling/v1").stdout
    assert "VERSION:    v1" in out and "targetCPUUtilizationPercentage\t<integer>" in out
    assert "metrics\t<" not in out
    out = kubectl("explain", "hpa.spec").stdout
    assert "VERSION:    v2" in out and "metrics\t<[]Object>" in out


def test_kubectl_autoscale(kubectl: Kubectl) -> None:
    r = kubectl("autoscale", "deployment", "web", "--name=web-auto", "--min=1", "--max=3", "--cpu-percent=70",
                "-v=8")
    assert r.stdout.strip() == "horizontalpodautoscaler.autoscaling/web-auto autoscaled"
    assert "Content-Type: application/vnd.kubernetes.protobuf" in r.stderr  # its v1 body, as protobuf
    spec = get(kubectl, HPA_V2, "web-auto")["spec"]
    assert spec["metrics"] == [cpu(70)] and (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    # the controller works on it as on any autoscaler: its status shows through v1 too
    status = wait_for(lambda: get(kubectl, HPA_V1, "web-auto")["status"].get("lastScaleTime") or
                      get(kubectl, HPA_V1, "web-auto")["status"].get("currentReplicas"),
                      60, what="the autoscaler's status")
    assert status
    conditions = "autoscaling.alpha.kubernetes.io/conditions"
    annotations = wait_for(lambda: get(kubectl, HPA_V1, "web-auto")["metadata"].get("annotations"),
                           60, what="the conditions annotation")
    assert conditions in annotations and {c["type"] for c in json.loads(annotations[conditions])} >= {"AbleToScale"}
    kubectl("delete", HPA_V1, "web-auto")
    r = kubectl("get", "hpa", "web-auto", check=False)
    assert r.returncode == 1 and "not found" in r.stderr


def test_python_client_autoscaling_v1_api(cluster: Cluster) -> None:
    from kubernetes import client

    with python_client(cluster) as api_client:
        v1 = client.AutoscalingV1Api(api_client)
        body = client.V1HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="py-hpa"),
            spec=client.V1HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V1CrossVersionObjectReference(api_version="apps/v1", kind="Deployment",
                                                                      name="web"),
                min_replicas=1, max_replicas=3, target_cpu_utilization_percentage=55))
        created = v1.create_namespaced_horizontal_pod_autoscaler("default", body)
        assert created.api_version == "autoscaling/v1" and created.spec.target_cpu_utilization_percentage == 55
        read = v1.read_namespaced_horizontal_pod_autoscaler("py-hpa", "default")
        assert read.metadata.uid == created.metadata.uid and read.spec.max_replicas == 3
        names = [h.metadata.name for h in v1.list_namespaced_horizontal_pod_autoscaler("default").items]
        assert "py-hpa" in names
        everywhere = v1.list_horizontal_pod_autoscaler_for_all_namespaces()
        assert all(h.api_version in (None, "autoscaling/v1") for h in everywhere.items)
        v2 = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler("py-hpa", "default")
        assert v2.spec.metrics[0].resource.target.average_utilization == 55
        v1.delete_namespaced_horizontal_pod_autoscaler("py-hpa", "default")
