"""Environment resolution: envFrom, valueFrom, field/resource refs and $(VAR) expansion."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent.env import ConfigError, PodFacts, StaticConfigSource, expand, expand_command, resolve_env

SRC = StaticConfigSource(
    config_maps={("ns", "cm"): {"data": {"A": "1", "B": "2", "bad key": "x"}}},
    secrets={("ns", "sec"): {"data": {"PASS": base64.b64encode(b"pw").decode()}}},
)
FACTS = PodFacts(pod_ip="10.42.0.7", host_ip="192.0.2.1", node_cpu=4.0, node_memory=8 * 2**30)
POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}, "annotations": {"x": "y"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
}


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("plain", "plain"),
        ("$(A)", "1"),
        ("x-$(A)-$(B)", "x-1-2"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$A", "$A"),
        ("$(A", "$(A"),
        ("tail$", "tail$"),
        ("$()", "$()"),
    ],
)
def test_expand(s: str, expected: str) -> None:
    assert expand(s, {"A": "1", "B": "2"}.get) == expected


def _ref(kind: str, **ref: Any) -> dict[str, Any]:
    return {"valueFrom": {kind: ref}}


@pytest.mark.parametrize(
    ("what", "container", "expected"),
    [
        ("literal", {"env": [{"name": "X", "value": "v"}]}, [("X", "v")]),
        ("expansion uses earlier vars", {"env": [{"name": "X", "value": "a"}, {"name": "Y", "value": "$(X)b$(Z)"}]},
         [("X", "a"), ("Y", "ab$(Z)")]),
        ("configMapKeyRef", {"env": [{"name": "X", **_ref("configMapKeyRef", name="cm", key="A")}]}, [("X", "1")]),
        ("secretKeyRef", {"env": [{"name": "X", **_ref("secretKeyRef", name="sec", key="PASS")}]}, [("X", "pw")]),
        ("optional missing key", {"env": [{"name": "X", **_ref("configMapKeyRef", name="cm", key="Z", optional=True)}]}, []),
        ("optional missing object", {"env": [{"name": "X", **_ref("secretKeyRef", name="no", key="Z", optional=True)}]}, []),
        ("envFrom skips invalid keys", {"envFrom": [{"configMapRef": {"name": "cm"}}]}, [("A", "1"), ("B", "2")]),
        ("envFrom prefix + env override", {
            "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cm"}}, {"secretRef": {"name": "sec"}}],
            "env": [{"name": "P_A", "value": "override-$(PASS)"}],
        }, [("P_A", "override-pw"), ("P_B", "2"), ("PASS", "pw")]),
        ("optional envFrom", {"envFrom": [{"configMapRef": {"name": "none", "optional": True}}]}, []),
        ("fieldRefs", {"env": [
            {"name": "N", **_ref("fieldRef", fieldPath="metadata.name")},
            {"name": "NS", **_ref("fieldRef", fieldPath="metadata.namespace")},
            {"name": "U", **_ref("fieldRef", fieldPath="metadata.uid")},
            {"name": "L", **_ref("fieldRef", fieldPath="metadata.labels['app']")},
            {"name": "AN", **_ref("fieldRef", fieldPath="metadata.annotations['x']")},
            {"name": "NODE", **_ref("fieldRef", fieldPath="spec.nodeName")},
            {"name": "SA", **_ref("fieldRef", fieldPath="spec.serviceAccountName")},
            {"name": "IP", **_ref("fieldRef", fieldPath="status.podIP")},
            {"name": "HIP", **_ref("fieldRef", fieldPath="status.hostIP")},
        ]}, [("N", "p"), ("NS", "ns"), ("U", "u-1"), ("L", "web"), ("AN", "y"), ("NODE", "n1"), ("SA", "sa"),
             ("IP", "10.42.0.7"), ("HIP", "192.0.2.1")]),
        ("resource limits", {
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "env": [
                {"name": "CPU", **_ref("resourceFieldRef", resource="limits.cpu")},
                {"name": "MCPU", **_ref("resourceFieldRef", resource="limits.cpu", divisor="1m")},
                {"name": "MEM", **_ref("resourceFieldRef", resource="limits.memory")},
                {"name": "MEMMI", **_ref("resourceFieldRef", resource="limits.memory", divisor="1Mi")},
            ],
        }, [("CPU", "1"), ("MCPU", "500"), ("MEM", str(128 * 2**20)), ("MEMMI", "128")]),
        ("no limit → node capacity", {"env": [
            {"name": "CPU", **_ref("resourceFieldRef", resource="limits.cpu")},
            {"name": "MEM", **_ref("resourceFieldRef", resource="limits.memory", divisor="1Gi")},
        ]}, [("CPU", "4"), ("MEM", "8")]),
    ],
)
def test_resolve_env(what: str, container: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert resolve_env(POD, {"name": "c", **container}, SRC, FACTS) == expected


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"env": [{"name": "X", **_ref("configMapKeyRef", name="cm", key="NOPE")}]}, "couldn't find key NOPE in ConfigMap ns/cm"),
        ({"env": [{"name": "X", **_ref("secretKeyRef", name="sec", key="NOPE")}]}, "couldn't find key NOPE in Secret ns/sec"),
        ({"env": [{"name": "X", **_ref("configMapKeyRef", name="gone", key="A")}]}, 'configmap "gone" not found'),
        ({"envFrom": [{"secretRef": {"name": "gone"}}]}, 'secret "gone" not found'),
    ],
)
def test_missing_refs(container: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_env(POD, {"name": "c", **container}, SRC, FACTS)
    assert message in e.value.message
    assert e.value.reason == "CreateContainerConfigError"


def test_expand_command() -> None:
    spec = {"command": ["sh", "-c", "echo $(A) $$(A) $(NOPE)"], "args": ["$(B)"]}
    assert expand_command(spec, [("A", "1"), ("B", "2")]) == (["sh", "-c", "echo 1 $(A) $(NOPE)"], ["2"])
    assert expand_command({}, []) == (None, None)


def test_values_expand_service_variables_but_do_not_include_them() -> None:
    services = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "WEB_SERVICE_PORT": "80", "A": "from-service"}
    container = {"name": "c", "env": [
        {"name": "API", "value": "https://$(KUBERNETES_SERVICE_HOST):443"},
        {"name": "A", "value": "own"},
        {"name": "B", "value": "$(A)-$(WEB_SERVICE_PORT)-$(MISSING)"},
    ]}
    assert resolve_env(POD, container, SRC, FACTS, services) == [
        ("API", "https://10.43.0.1:443"), ("A", "own"), ("B", "own-80-$(MISSING)")]
    # without the Service variables, a reference to them stays as written
    assert resolve_env(POD, container, SRC, FACTS)[0] == ("API", "https://$(KUBERNETES_SERVICE_HOST):443")
