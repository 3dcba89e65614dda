"""Endpoints computation and Service address allocation (pure, table-driven)."""

from __future__ import annotations

import pytest

from orchestrator.controllers.endpoints import compute_endpoints, resolve_target_port
from orchestrator.controllers.services import (
    AllocationError,
    allocate_cluster_ip,
    allocate_node_ports,
    dns_service_ip,
    plan_allocation,
)
from orchestrator.objects.defaults import apply_defaults
from orchestrator.objects.validation import validate


def pod(name: str, ip: str | None, ready: bool = True, labels: dict | None = None, **extra: object) -> dict:
    p: dict = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "labels": {"app": "web"} if labels is None else labels},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    if ip:
        p["status"]["podIP"] = ip
    p["metadata"].update(extra)
    return p


def service(target: object = "http", **spec: object) -> dict:
    body = {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": target, "protocol": "TCP"}]}
    body.update(spec)
    return {"metadata": {"name": "web", "namespace": "default", "uid": "svc"}, "spec": body}


def ips(subsets: list, key: str = "addresses") -> list[str]:
    return [a["ip"] for s in subsets for a in s.get(key) or []]


@pytest.mark.parametrize(
    ("pods", "ready", "not_ready"),
    [
        ([pod("a", "10.0.0.2"), pod("b", "10.0.0.3")], ["10.0.0.2", "10.0.0.3"], []),
        ([pod("a", "10.0.0.2"), pod("b", "10.0.0.3", ready=False)], ["10.0.0.2"], ["10.0.0.3"]),
        ([pod("a", None), pod("b", "10.0.0.3", labels={"app": "other"})], [], []),
        ([pod("a", "10.0.0.2", deletionTimestamp="2024-01-01T00:00:00Z")], [], []),
    ],
)
def test_ready_and_not_ready_addresses(pods: list, ready: list, not_ready: list) -> None:
    subsets = compute_endpoints(service(), pods)
    assert ips(subsets) == ready
    assert ips(subsets, "notReadyAddresses") == not_ready


def test_address_carries_target_ref_node_and_resolved_port() -> None:
    [subset] = compute_endpoints(service(), [pod("a", "10.0.0.2")])
    addr = subset["addresses"][0]
    assert addr["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}
    assert addr["nodeName"] == "n1"
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]


def test_publish_not_ready_lists_everyone_as_ready() -> None:
    subsets = compute_endpoints(service(publishNotReadyAddresses=True), [pod("a", "10.0.0.2", ready=False)])
    assert ips(subsets) == ["10.0.0.2"]


@pytest.mark.parametrize(("target", "expected"), [(9090, 9090), ("9090", 9090), ("http", 8080), ("nope", None),
                                                  (None, 80)])
def test_resolve_target_port(target: object, expected: int | None) -> None:
    port = {"port": 80, "targetPort": target, "protocol": "TCP"}
    assert resolve_target_port(pod("a", "1.1.1.1"), port) == expected


def test_cluster_ip_allocation() -> None:
    cidr = "10.43.0.0/16"
    assert dns_service_ip(cidr) == "10.43.0.10"
    assert allocate_cluster_ip(cidr, set()) == "10.43.0.2"
    assert allocate_cluster_ip(cidr, {"10.43.0.2", "10.43.0.3"}) == "10.43.0.4"
    assert allocate_cluster_ip(cidr, {f"10.43.0.{i}" for i in range(2, 10)}) == "10.43.0.11"
    assert allocate_cluster_ip(cidr, set(), "10.43.1.1") == "10.43.1.1"
    for wanted, used in (("10.44.0.1", set()), ("10.43.0.5", {"10.43.0.5"}), ("10.43.0.10", set())):
        with pytest.raises(AllocationError):
            allocate_cluster_ip(cidr, used, wanted)
    with pytest.raises(AllocationError):
        allocate_cluster_ip("10.43.0.0/29", {"10.43.0.2", "10.43.0.3", "10.43.0.4", "10.43.0.5", "10.43.0.6"})


def test_node_port_allocation() -> None:
    ports = [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "nodePort": 30001},
             {"port": 53, "protocol": "UDP"}]
    allocate_node_ports(ports, {(30000, "TCP")})
    assert [p["nodePort"] for p in ports] == [30002, 30001, 30000]
    with pytest.raises(AllocationError):
        allocate_node_ports([{"port": 1, "nodePort": 30000}], {(30000, "TCP")})


def test_plan_allocation_headless_and_nodeport() -> None:
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
    plan_allocation(headless, [], "10.43.0.0/16")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    np = {"metadata": {"name": "n"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    plan_allocation(np, [{"spec": {"clusterIP": "10.43.0.2", "ports": [{"nodePort": 30000}]}}], "10.43.0.0/16")
    assert np["spec"]["clusterIP"] == "10.43.0.3" and np["spec"]["ports"][0]["nodePort"] == 30001


def _svc_obj(**spec: object) -> dict:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}
    apply_defaults("Service", obj)
    return obj


def test_service_defaults() -> None:
    spec = _svc_obj()["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "Bogus"}, "spec.type"),
        ({"ports": [{"port": 0}]}, "spec.ports[0].port"),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
        ({"ports": [{"port": 80, "nodePort": 30000}]}, "spec.ports[0].nodePort"),
        ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}, "spec.ports[0].nodePort"),
        ({"clusterIP": "banana"}, "spec.clusterIP"),
        ({"sessionAffinity": "Sticky"}, "spec.sessionAffinity"),
        ({"ports": [{"port": 80, "protocol": "SCTP"}]}, "spec.ports[0].protocol"),
    ],
)
def test_service_validation(spec: dict, field: str) -> None:
    errs = validate("Service", _svc_obj(**spec))
    assert field in [e.field for e in errs], errs


def test_service_name_must_be_dns1035_and_cluster_ip_immutable() -> None:
    obj = _svc_obj()
    obj["metadata"]["name"] = "1web"
    assert any(e.field == "metadata.name" for e in validate("Service", obj))
    old = _svc_obj(clusterIP="10.43.0.2")
    new = _svc_obj(clusterIP="10.43.0.3")
    assert any("immutable" in e.message for e in validate("Service", new, old))
    assert validate("Service", _svc_obj(clusterIP="10.43.0.2"), old) == []
