"""An HPA scales a Deployment up under CPU load and back down after its stabilization window.

The pods spin a shell loop while a file exists in a hostPath directory the test owns, so
one `touch`/`rm` turns the load of every replica on or off. Each pod requests 50m CPU and
is limited to 100m (the engine throttles it), so a loaded pod runs near 200% of its
request. With a target of 80% the algorithm wants ceil(1 x U / 80) = 3 replicas from one
pod, then more than the maximum (4). The test records the HPA's status after each rescale
(currentReplicas, desiredReplicas and the measured utilization U) and checks the counts
against the same formula, then the scale down to minReplicas once the load stops and the
short scale-down window (behavior.scaleDown.stabilizationWindowSeconds) has passed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for

NS = "default"
TARGET = 80
MAX = 4
BURN = "while :; do if [ -f /load/on ]; then :; else sleep 1; fi; done"


class AutoscaleCluster(Cluster):
    def env(self) -> dict[str, str]:
        env = super().env()
        env["DOCKYARD_HPA_SYNC_SECONDS"] = "2"
        return env


@pytest.fixture(scope="module")
def hpa_cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    with running(AutoscaleCluster(tmp_path_factory.mktemp("autoscale"), cluster_cidr="10.216.0.0/16")) as c:
        yield c


def deployment(name: str, image: str, load_dir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "burn", "image": image, "imagePullPolicy": "Never",
                        "command": ["sh", "-c", BURN],
                        "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}},
                        "volumeMounts": [{"name": "load", "mountPath": "/load"}],
                    }],
                    "volumes": [{"name": "load", "hostPath": {"path": str(load_dir), "type": "Directory"}}],
                },
            },
        },
    }


def autoscaler(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1, "maxReplicas": MAX,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": TARGET}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 6}},
        },
    }


def utilization(hpa: dict[str, Any]) -> int | None:
    for m in (hpa.get("status") or {}).get("currentMetrics") or []:
        if m.get("type") == "Resource":
            return m["resource"]["current"].get("averageUtilization")
    return None


def test_cpu_load_scales_up_then_down(hpa_cluster: Cluster, demo_image: str, tmp_path: Path) -> None:
    c = hpa_cluster.client
    load = tmp_path / "load"
    load.mkdir()
    c.create(deployment("burner", demo_image, load), NS)
    wait_for(lambda: (c.get(resolve("deployments"), "burner", NS).get("status") or {}).get("readyReplicas") == 1,
             90, what="the deployment ready")
    c.create(autoscaler("burner"), NS)
    time.sleep(12)  # one sample window after readiness, so the pod's CPU counts

    (load / "on").touch()
    rescales: list[tuple[int, int, int]] = []  # (current, desired, utilization) seen after each rescale
    seen_times: set[str] = set()
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        hpa = c.get(resolve("hpa"), "burner", NS)
        st = hpa.get("status") or {}
        if st.get("lastScaleTime") and st["lastScaleTime"] not in seen_times and utilization(hpa) is not None \
                and st.get("desiredReplicas", 0) > st.get("currentReplicas", 0):
            seen_times.add(st["lastScaleTime"])
            rescales.append((st["currentReplicas"], st["desiredReplicas"], utilization(hpa)))
        if c.get(resolve("deployments"), "burner", NS)["spec"]["replicas"] == MAX:
            break
        time.sleep(0.3)
    assert c.get(resolve("deployments"), "burner", NS)["spec"]["replicas"] == MAX, (rescales, hpa)
    assert rescales, hpa
    first_current, first_desired, u = rescales[0]
    assert first_current == 1
    # one ready pod, no missing samples: exactly Kubernetes' formula, capped at max and max(2x, 4)
    assert first_desired == min(MAX, 4, math.ceil(first_current * (u / TARGET))), rescales
    for current, desired, u in rescales:
        assert current < desired <= min(MAX, math.ceil(current * (u / TARGET))), rescales

    (load / "on").unlink()
    started = time.monotonic()
    wait_for(lambda: c.get(resolve("deployments"), "burner", NS)["spec"]["replicas"] == 1, 90, interval=0.5,
             what="the scale down to minReplicas")
    assert time.monotonic() - started >= 6 - 1  # not before the stabilization window
    events = [e for e in c.list(resolve("events"), NS)["items"]
              if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"
              and e["involvedObject"].get("name") == "burner" and e["reason"] == "SuccessfulRescale"]
    messages = [e["message"] for e in events]
    assert any(m.startswith(f"New size: {first_desired}; reason: cpu resource utilization (percentage of request) "
                            "above target") for m in messages), messages
    assert "New size: 1; reason: All metrics below target" in messages, messages
    table = hpa_cluster.cli("get", "hpa", "burner")
    assert table.returncode == 0 and "Deployment/burner" in table.stdout, table.stderr
