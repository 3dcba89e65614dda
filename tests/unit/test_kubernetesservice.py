"""The in-cluster API Service `default/kubernetes`: its reserved address and its controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.controllermanager import (
    MASTER_ENDPOINT_ENV,
    build_runners,
    child_env,
    master_endpoint_setting,
)
from orchestrator.controllers.kubernetesservice import (
    ENDPOINTS,
    SERVICE,
    KubernetesServiceController,
    MasterEndpoint,
    desired_endpoints,
    endpoints_update,
    service_update,
)
from orchestrator.controllers.services import (
    AllocationError,
    allocate_cluster_ip,
    api_service_ip,
    plan_allocation,
    service_allocation_hook,
)
from orchestrator.errors import ApiError
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

CIDR = "10.43.0.0/16"
EP = MasterEndpoint("192.168.1.10", 6443)


def svc(name: str, ns: str = "default", **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": 80}], **spec}}


# -- the reserved address ------------------------------------------------------------------------


def test_first_address_is_only_for_the_api_service() -> None:
    assert api_service_ip(CIDR) == "10.43.0.1"
    assert allocate_cluster_ip(CIDR, set()) == "10.43.0.2"  # never handed out to others
    with pytest.raises(AllocationError, match="reserved"):
        allocate_cluster_ip(CIDR, set(), "10.43.0.1")
    assert allocate_cluster_ip(CIDR, set(), api_ip=True) == "10.43.0.1"
    assert allocate_cluster_ip(CIDR, set(), "10.43.0.1", api_ip=True) == "10.43.0.1"
    with pytest.raises(AllocationError, match="already allocated"):
        allocate_cluster_ip(CIDR, {"10.43.0.1"}, api_ip=True)


@pytest.mark.parametrize(("name", "ns", "wanted", "expected"), [
    ("kubernetes", "default", None, "10.43.0.1"),
    ("kubernetes", "default", "10.43.0.1", "10.43.0.1"),
    ("kubernetes", "team", None, "10.43.0.2"),  # only default/kubernetes is the API Service
    ("web", "default", None, "10.43.0.2"),
    ("kube-dns", "kube-system", "10.43.0.10", "10.43.0.10"),
])
def test_plan_allocation_reserves_per_service(name: str, ns: str, wanted: str | None, expected: str) -> None:
    s = svc(name, ns, **({"clusterIP": wanted} if wanted else {}))
    plan_allocation(s, [], CIDR)
    assert s["spec"]["clusterIP"] == expected


@pytest.mark.parametrize(("name", "ns"), [("web", "default"), ("kubernetes", "team"), ("kube-dns", "default")])
def test_others_cannot_ask_for_the_api_address(name: str, ns: str) -> None:
    with pytest.raises(AllocationError, match="reserved"):
        plan_allocation(svc(name, ns, clusterIP="10.43.0.1"), [], CIDR)


# -- pure reconcile ------------------------------------------------------------------------------


def test_master_endpoint_parsing_and_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MasterEndpoint.parse("10.0.0.1:6443") == MasterEndpoint("10.0.0.1", 6443)
    assert MasterEndpoint.parse("[fd00::1]:6443") == MasterEndpoint("fd00::1", 6443)
    assert str(MasterEndpoint("fd00::1", 6443)) == "[fd00::1]:6443"
    with pytest.raises(ValueError):
        MasterEndpoint.parse("10.0.0.1")
    env = child_env({"PATH": "/bin", MASTER_ENDPOINT_ENV: "stale:1"}, EP)
    assert env == {"PATH": "/bin", MASTER_ENDPOINT_ENV: "192.168.1.10:6443"}
    assert MASTER_ENDPOINT_ENV not in child_env({MASTER_ENDPOINT_ENV: "stale:1"}, None)

    class Args:
        master_endpoint = None

    monkeypatch.setenv(MASTER_ENDPOINT_ENV, "10.1.2.3:7443")
    assert master_endpoint_setting(Args()) == MasterEndpoint("10.1.2.3", 7443)
    monkeypatch.delenv(MASTER_ENDPOINT_ENV)
    assert master_endpoint_setting(Args()) is None


def test_service_update_puts_the_ports_back() -> None:
    good = {"spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "clusterIP": "10.43.0.1"}}
    assert service_update(good, EP) is None
    moved = service_update(good, MasterEndpoint("192.168.1.10", 7443))
    assert moved is not None and moved["spec"]["ports"][0]["targetPort"] == 7443
    assert moved["spec"]["clusterIP"] == "10.43.0.1" and good["spec"]["ports"][0]["targetPort"] == 6443


def test_endpoints_update() -> None:
    current = desired_endpoints(EP)
    assert endpoints_update(current, EP) is None
    moved = endpoints_update(current, MasterEndpoint("192.168.1.11", 6443))
    assert moved is not None and moved["subsets"][0]["addresses"] == [{"ip": "192.168.1.11"}]
    unlabelled = dict(current, metadata={"name": "kubernetes", "namespace": "default", "labels": {"x": "y"}})
    fixed = endpoints_update(unlabelled, EP)
    assert fixed is not None and fixed["metadata"]["labels"] == {
        "x": "y", "endpointslice.kubernetes.io/skip-mirror": "true"}


# -- the controller on a registry ---------------------------------------------------------------


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")))
    r.ensure_namespaces()
    r.create_hooks.setdefault("Service", []).append(service_allocation_hook(r, CIDR))
    return r


def test_controller_creates_recreates_and_repoints(reg: Registry) -> None:
    # a user's Service first: it cannot take the API address
    reg.create(SERVICE, "default", svc("web"))
    ctl = KubernetesServiceController(reg, EP)
    assert list(ctl.keys_for(SERVICE, "ADDED", svc("web"))) == []
    assert list(ctl.keys_for(ENDPOINTS, "DELETED", {"metadata": {"name": "kubernetes", "namespace": "default"}})) \
        == ["default/kubernetes"]
    ctl.sync("default/kubernetes")
    s = reg.get(SERVICE, "default", "kubernetes")
    assert s["spec"]["clusterIP"] == "10.43.0.1" and s["spec"]["type"] == "ClusterIP"
    assert s["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert "selector" not in s["spec"] and s["metadata"]["labels"] == {"component": "apiserver",
                                                                        "provider": "kubernetes"}
    ep = reg.get(ENDPOINTS, "default", "kubernetes")
    assert ep["subsets"] == [{"addresses": [{"ip": "192.168.1.10"}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    rv = (s["metadata"]["resourceVersion"], ep["metadata"]["resourceVersion"])
    ctl.sync("default/kubernetes")  # nothing to do: nothing written
    assert (reg.get(SERVICE, "default", "kubernetes")["metadata"]["resourceVersion"],
            reg.get(ENDPOINTS, "default", "kubernetes")["metadata"]["resourceVersion"]) == rv
    # deleted: created again, with the same address
    reg.delete(SERVICE, "default", "kubernetes")
    reg.delete(ENDPOINTS, "default", "kubernetes")
    ctl.sync("default/kubernetes")
    assert reg.get(SERVICE, "default", "kubernetes")["spec"]["clusterIP"] == "10.43.0.1"
    assert reg.get(ENDPOINTS, "default", "kubernetes")["subsets"][0]["addresses"] == [{"ip": "192.168.1.10"}]
    # the master moved: address and port follow
    KubernetesServiceController(reg, MasterEndpoint("192.168.1.20", 7443)).sync("default/kubernetes")
    assert reg.get(ENDPOINTS, "default", "kubernetes")["subsets"][0]["addresses"] == [{"ip": "192.168.1.20"}]
    assert reg.get(SERVICE, "default", "kubernetes")["spec"]["ports"][0]["targetPort"] == 7443
    # another Service still cannot take the address while the API Service holds it
    with pytest.raises(ApiError):
        reg.create(SERVICE, "default", svc("other", clusterIP="10.43.0.1"))


def test_build_runners_adds_the_controller_only_with_an_endpoint(reg: Registry) -> None:
    def names(endpoint: MasterEndpoint | None) -> list[str]:
        cm, _ = build_runners(reg, node_grace_seconds=8, eviction_timeout_seconds=5, hpa_sync_seconds=15,
                              prometheus_url=None, on_sync=None, master_endpoint=endpoint)
        return [c.name for c in cm.controllers]

    assert "kubernetes-service" in names(EP) and "kubernetes-service" not in names(None)


def test_master_config_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator import server

    monkeypatch.setattr(server, "primary_ip", lambda: "192.0.2.7")

    def endpoint(host: str, advertise: str | None) -> MasterEndpoint | None:
        return server.MasterConfig(tmp_path, host=host, port=7443, advertise_address=advertise).master_endpoint

    assert endpoint("0.0.0.0", "10.0.0.5") == MasterEndpoint("10.0.0.5", 7443)
    assert endpoint("10.0.0.6", None) == MasterEndpoint("10.0.0.6", 7443)
    # loopback and wildcard addresses stand for the machine's primary address
    assert endpoint("0.0.0.0", None) == MasterEndpoint("192.0.2.7", 7443)
    assert endpoint("0.0.0.0", "127.0.0.1") == MasterEndpoint("192.0.2.7", 7443)  # `dockyard up`
    assert endpoint("127.0.0.1", None) == MasterEndpoint("192.0.2.7", 7443)

    def resolve(name: str) -> str:
        if name == "master.example":
            return "10.0.0.9"
        raise OSError("unknown host")

    monkeypatch.setattr(server.socket, "gethostbyname", resolve)  # no lookup leaves the test
    assert endpoint("0.0.0.0", "master.example") == MasterEndpoint("10.0.0.9", 7443)
    assert endpoint("0.0.0.0", "nowhere.example") is None
