"""Server-side defaults."""

from __future__ import annotations

import copy

import pytest

from orchestrator.objects.defaults import apply_defaults
from orchestrator.objects.podspec import default_image_pull_policy, qos_class


def pod(**spec: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec},
    }


@pytest.mark.parametrize(
    "image, policy",
    [
        ("busybox", "Always"),
        ("busybox:latest", "Always"),
        ("busybox:1.36", "IfNotPresent"),
        ("registry.local:5000/busybox", "Always"),
        ("registry.local:5000/busybox:1.2", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert default_image_pull_policy(image) == policy


def test_pod_spec_defaults() -> None:
    obj = pod(
        initContainers=[{"name": "i", "image": "init"}],
        volumes=[{"name": "cfg", "configMap": {"name": "c"}}],
    )
    c = obj["spec"]["containers"][0]
    c["ports"] = [{"containerPort": 80}]
    c["livenessProbe"] = {"httpGet": {"port": 80}}
    c["readinessProbe"] = {"tcpSocket": {"port": 80}, "periodSeconds": 5}
    c["lifecycle"] = {"preStop": {"httpGet": {"port": 80}}}
    apply_defaults("Pod", obj)
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"
    assert spec["initContainers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "initialDelaySeconds": 0,
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["lifecycle"]["preStop"]["httpGet"]["path"] == "/"
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 0o644
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_defaults_do_not_override_and_are_idempotent() -> None:
    obj = pod(restartPolicy="Never", dnsPolicy="Default", terminationGracePeriodSeconds=0)
    obj["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    obj["status"] = {"phase": "Running"}
    apply_defaults("Pod", obj)
    once = copy.deepcopy(obj)
    apply_defaults("Pod", obj)
    assert obj == once
    assert obj["spec"]["restartPolicy"] == "Never"
    assert obj["spec"]["terminationGracePeriodSeconds"] == 0
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert obj["status"]["phase"] == "Running"


@pytest.mark.parametrize(
    "resources, qos",
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
    ],
)
def test_requests_default_to_limits_and_qos(resources: dict, qos: str) -> None:
    obj = pod()
    obj["spec"]["containers"][0]["resources"] = copy.deepcopy(resources)
    apply_defaults("Pod", obj)
    res = obj["spec"]["containers"][0]["resources"]
    for name, value in resources.get("limits", {}).items():
        assert name in res["requests"]
        if name not in resources.get("requests", {}):
            assert res["requests"][name] == value
    assert obj["status"]["qosClass"] == qos
    assert qos_class(obj["spec"]) == qos


def workload(kind: str, **spec: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": "w"},
        "spec": {
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
            **spec,
        },
    }


def test_replicaset_defaults() -> None:
    rs = workload("ReplicaSet")
    apply_defaults("ReplicaSet", rs)
    assert rs["spec"]["replicas"] == 1
    assert "selector" not in rs["spec"]
    assert rs["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert rs["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert "status" not in rs


def test_deployment_defaults() -> None:
    d = workload("Deployment", replicas=0)
    apply_defaults("Deployment", d)
    spec = d["spec"]
    assert spec["replicas"] == 0
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert "minReadySeconds" not in spec
    assert "selector" not in spec
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_deployment_recreate_gets_no_rolling_update() -> None:
    d = workload("Deployment", strategy={"type": "Recreate"})
    apply_defaults("Deployment", d)
    assert d["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    "kind, obj, check",
    [
        ("Namespace", {"metadata": {"name": "n"}}, lambda o: o["status"]["phase"] == "Active"),
        ("Secret", {"metadata": {"name": "s"}}, lambda o: o["type"] == "Opaque"),
        (
            "Secret",
            {"metadata": {"name": "s"}, "type": "kubernetes.io/tls"},
            lambda o: o["type"] == "kubernetes.io/tls",
        ),
        ("ConfigMap", {"metadata": {"name": "c"}}, lambda o: o == {"metadata": {"name": "c"}}),
        ("Node", {"metadata": {"name": "n"}}, lambda o: o == {"metadata": {"name": "n"}}),
        ("Unknown", {"x": 1}, lambda o: o == {"x": 1}),
    ],
)
def test_other_kinds(kind: str, obj: dict, check) -> None:
    apply_defaults(kind, obj)
    assert check(obj)


def test_malformed_values_are_left_for_validation() -> None:
    obj = {"metadata": {"name": "p"}, "spec": {"containers": "nope"}}
    apply_defaults("Pod", obj)
    assert obj["spec"]["containers"] == "nope"
