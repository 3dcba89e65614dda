"""EndpointSlices: the kind (rules, printer, API surface), the controller's pure computation
(table-driven), the controller against a real registry (with the garbage collector), and the
`default/kubernetes` slice."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api import auth, discovery, openapi, protobuf
from orchestrator.controllers.endpointslices import (
    CONTROLLER_NAME,
    ENDPOINT_SLICE,
    MANAGED_BY_LABEL,
    SERVICE,
    SERVICE_NAME_LABEL,
    EndpointSliceController,
    SlicePlan,
    compute_endpoint_slices,
)
from orchestrator.controllers.gc import GarbageCollector
from orchestrator.controllers.kubernetesservice import (
    KubernetesServiceController,
    MasterEndpoint,
    desired_endpoint_slice,
    endpoint_slice_update,
)
from orchestrator.controllers.services import service_allocation_hook
from orchestrator.errors import ApiError
from orchestrator.objects import patch
from orchestrator.objects.defaults import apply_defaults
from orchestrator.objects.kinds import resolve
from orchestrator.objects.validation import validate
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

POD = resolve("pods")
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TERMINATING = "2025-01-01T11:59:00Z"


def pod(name: str, ip: str | None = "10.42.0.2", ready: bool = True, labels: dict | None = None,
        phase: str = "Running", node: str = "n1", deleting: bool = False, port_name: str = "http",
        container_port: int = 8080, **spec: Any) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = TERMINATING
    status: dict[str, Any] = {"phase": phase,
                              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta,
            "spec": {"nodeName": node, **spec, "containers": [
                {"name": "c", "ports": [{"name": port_name, "containerPort": container_port}]}]},
            "status": status}


def service(name: str = "web", uid: str = "svc-uid", labels: dict | None = None, **spec: Any) -> dict:
    body: dict[str, Any] = {"selector": {"app": "web"}, "clusterIP": "10.43.0.9",
                            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    body.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": uid}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}


def endpoint(name: str, ip: str, ready: bool = True, serving: bool | None = None, terminating: bool = False,
             node: str = "n1") -> dict:
    return {"addresses": [ip],
            "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                           "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": f"uid-{name}"},
            "nodeName": node}


WEB_PORTS = [{"name": "web", "port": 8080, "protocol": "TCP"}]
LABELS = {SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME}
OWNER = [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid", "controller": True,
          "blockOwnerDeletion": True}]


def stored(name: str, endpoints: list, ports: list | None = None, uid: str = "svc-uid",
           address_type: str = "IPv4") -> dict:
    """A slice as the controller stored it."""
    owner = [{**OWNER[0], "uid": uid}]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": dict(LABELS), "ownerReferences": owner,
                         "resourceVersion": "5"},
            "addressType": address_type, "endpoints": endpoints,
            "ports": WEB_PORTS if ports is None else ports}


def summary(plan: SlicePlan) -> tuple[list, list, list]:
    """(created: [(addressType, ports, [(pod, ip, ready, serving, terminating)])], updated: [(name, same)], deleted)."""
    def eps(s: dict) -> list:
        return [(e["targetRef"]["name"], e["addresses"][0], e["conditions"]["ready"], e["conditions"]["serving"],
                 e["conditions"]["terminating"]) for e in s["endpoints"]]

    def ports(s: dict) -> list:
        return [(p["name"], p["port"], p["protocol"]) for p in s["ports"]]

    return ([(s["addressType"], ports(s), eps(s)) for s in plan.create],
            [(s["metadata"]["name"], ports(s), eps(s)) for s in plan.update], plan.delete)


WEB = [("web", 8080, "TCP")]


# --- what the pods call for (nothing stored yet) -------------------------------------------------


@pytest.mark.parametrize(
    ("svc", "pods", "created"),
    [
        # ready, not ready, terminating (serving while it drains), not ready and terminating
        (service(), [pod("a", "10.42.0.2"), pod("b", "10.42.0.3", ready=False),
                     pod("c", "10.42.0.4", deleting=True), pod("d", "10.42.0.5", ready=False, deleting=True)],
         [("IPv4", WEB, [("a", "10.42.0.2", True, True, False), ("b", "10.42.0.3", False, False, False),
                         ("c", "10.42.0.4", False, True, True), ("d", "10.42.0.5", False, False, True)])]),
        # publishNotReadyAddresses: every pod ready, terminating ones too
        (service(publishNotReadyAddresses=True), [pod("b", "10.42.0.3", ready=False),
                                                  pod("c", "10.42.0.4", deleting=True)],
         [("IPv4", WEB, [("b", "10.42.0.3", True, False, False), ("c", "10.42.0.4", True, True, True)])]),
        # no IP yet, finished, other labels: no endpoint; a placeholder slice stands for none
        (service(), [pod("a", None), pod("b", "10.42.0.3", phase="Succeeded"), pod("c", "10.42.0.4", phase="Failed"),
                     pod("d", "10.42.0.5", labels={"app": "other"})],
         [("IPv4", [], [])]),
        (service(), [], [("IPv4", [], [])]),
        # a numeric target port as is; a named one resolved per pod: pods that differ get their own slice
        (service(ports=[{"name": "", "port": 80, "targetPort": 9000, "protocol": "TCP"}]), [pod("a")],
         [("IPv4", [("", 9000, "TCP")], [("a", "10.42.0.2", True, True, False)])]),
        (service(), [pod("a", "10.42.0.2"), pod("b", "10.42.0.3", container_port=9090)],
         [("IPv4", WEB, [("a", "10.42.0.2", True, True, False)]),
          ("IPv4", [("web", 9090, "TCP")], [("b", "10.42.0.3", True, True, False)])]),
        # a pod without the named port still is an endpoint, with no ports
        (service(), [pod("a", "10.42.0.2", port_name="other")], [("IPv4", [], [("a", "10.42.0.2", True, True, False)])]),
        # headless, no ports
        (service(clusterIP="None", ports=[]), [pod("a")], [("IPv4", [], [("a", "10.42.0.2", True, True, False)])]),
        # the address type follows ipFamilies: an IPv4 pod has no IPv6 endpoint (IPv6 placeholder)
        (service(ipFamilies=["IPv6"], clusterIP="fd00::9"), [pod("a")], [("IPv6", [], [])]),
    ],
)
def test_desired_slices(svc: dict, pods: list, created: list) -> None:
    plan = compute_endpoint_slices(svc, pods, [])
    assert summary(plan) == (created, [], [])


def test_a_new_slice_carries_labels_owner_target_node_zone_and_hostname() -> None:
    svc = service(labels={"team": "a", SERVICE_NAME_LABEL: "spoofed"}, clusterIP="None")
    p = pod("a", hostname="a", subdomain="web")
    [new] = compute_endpoint_slices(svc, [p], [], zones={"n1": "zone-1"}).create
    assert new["apiVersion"] == "discovery.k8s.io/v1" and new["kind"] == "EndpointSlice"
    assert new["metadata"] == {
        "generateName": "web-", "namespace": "default",
        "labels": {"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME,
                   "service.kubernetes.io/headless": ""},
        "ownerReferences": OWNER,
    }
    assert new["endpoints"] == [{
        "addresses": ["10.42.0.2"], "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
        "hostname": "a", "nodeName": "n1", "zone": "zone-1"}]
    assert new["ports"] == WEB_PORTS
    # the hostname only when the pod's subdomain names this Service
    [other] = compute_endpoint_slices(svc, [pod("a", hostname="a", subdomain="db")], []).create
    assert "hostname" not in other["endpoints"][0] and "zone" not in other["endpoints"][0]


def test_app_protocol_is_carried() -> None:
    svc = service(ports=[{"name": "web", "port": 80, "targetPort": 8080, "protocol": "TCP", "appProtocol": "http"}])
    [new] = compute_endpoint_slices(svc, [pod("a")], []).create
    assert new["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]


def test_at_most_100_endpoints_a_slice() -> None:
    pods = [pod(f"p{i:03}", f"10.42.{i // 200}.{i % 200 + 2}") for i in range(250)]
    plan = compute_endpoint_slices(service(), pods, [])
    assert [len(s["endpoints"]) for s in plan.create] == [100, 100, 50]
    names = [e["targetRef"]["name"] for s in plan.create for e in s["endpoints"]]
    assert names == sorted(names) and len(set(names)) == 250
    assert compute_endpoint_slices(service(), pods[:7], [], limit=3).create[-1]["endpoints"][0]["targetRef"][
        "name"] == "p006"


# --- against what is stored -----------------------------------------------------------------------


A = endpoint("a", "10.42.0.2")
B = endpoint("b", "10.42.0.3")
C = endpoint("c", "10.42.0.4")


@pytest.mark.parametrize(
    ("svc", "pods", "existing", "expected"),
    [
        # already right: nothing to write
        (service(), [pod("a")], [stored("web-aaaaa", [A])], ([], [], [])),
        # a pod's readiness flips: updated in place
        (service(), [pod("a", ready=False)], [stored("web-aaaaa", [A])],
         ([], [("web-aaaaa", WEB, [("a", "10.42.0.2", False, False, False)])], [])),
        # a pod replaced (rolling update): the same slice, rewritten
        (service(), [pod("b", "10.42.0.3")], [stored("web-aaaaa", [A])],
         ([], [("web-aaaaa", WEB, [("b", "10.42.0.3", True, True, False)])], [])),
        # endpoints stay where they are, new ones fill slices with room, full slices are left alone
        (service(), [pod("a"), pod("b", "10.42.0.3"), pod("c", "10.42.0.4")],
         [stored("web-aaaaa", [A]), stored("web-bbbbb", [B])],
         ([], [("web-aaaaa", WEB, [("a", "10.42.0.2", True, True, False), ("c", "10.42.0.4", True, True, False)])],
          [])),
        # the placeholder takes the first endpoints
        (service(), [pod("a")], [stored("web-aaaaa", [], ports=[])],
         ([], [("web-aaaaa", WEB, [("a", "10.42.0.2", True, True, False)])], [])),
        # every pod gone: the slice becomes the placeholder; a second one goes
        (service(), [], [stored("web-aaaaa", [A]), stored("web-bbbbb", [B])],
         ([], [("web-aaaaa", [], [])], ["web-bbbbb"])),
        # the placeholder stays as it is
        (service(), [], [stored("web-aaaaa", [], ports=[])], ([], [], [])),
        # the target port changed: the slice is reused with the new ports
        (service(ports=[{"name": "web", "port": 80, "targetPort": 9000, "protocol": "TCP"}]), [pod("a")],
         [stored("web-aaaaa", [A])], ([], [("web-aaaaa", [("web", 9000, "TCP")], [("a", "10.42.0.2", True, True,
                                                                                    False)])], [])),
        # slices of an older Service of the same name are deleted, never reused
        (service(), [pod("a")], [stored("web-aaaaa", [A], uid="old-uid")],
         ([("IPv4", WEB, [("a", "10.42.0.2", True, True, False)])], [], ["web-aaaaa"])),
        # the Service lost its selector: this controller's slices go
        (service(selector=None), [pod("a")], [stored("web-aaaaa", [A])], ([], [], ["web-aaaaa"])),
        # an address type the Service no longer has (immutable field): deleted, the new type created
        (service(), [pod("a")], [stored("web-aaaaa", [A], address_type="IPv6")],
         ([("IPv4", WEB, [("a", "10.42.0.2", True, True, False)])], [], ["web-aaaaa"])),
    ],
)
def test_reconcile_with_stored_slices(svc: dict, pods: list, existing: list, expected: tuple) -> None:
    assert summary(compute_endpoint_slices(svc, pods, existing)) == expected


def test_a_full_slice_is_left_alone_and_a_new_one_takes_the_rest() -> None:
    full = stored("web-aaaaa", [endpoint(f"p{i}", f"10.42.0.{i + 2}") for i in range(3)])
    pods = [pod(f"p{i}", f"10.42.0.{i + 2}") for i in range(4)]
    plan = compute_endpoint_slices(service(), pods, [full], limit=3)
    assert summary(plan) == ([("IPv4", WEB, [("p3", "10.42.0.5", True, True, False)])], [], [])


def test_label_changes_of_the_service_reach_its_slices() -> None:
    plan = compute_endpoint_slices(service(labels={"tier": "web"}), [pod("a")], [stored("web-aaaaa", [A])])
    [updated] = plan.update
    assert updated["metadata"]["labels"] == {"tier": "web", **LABELS}
    assert updated["metadata"]["resourceVersion"] == "5"  # an update of the stored object


# --- the kind -------------------------------------------------------------------------------------


def body(**fields: Any) -> dict:
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "web-abcde", "namespace": "default"},
           "addressType": "IPv4", "endpoints": [{"addresses": ["10.42.0.2"]}],
           "ports": [{"port": 80}]}
    obj.update(fields)
    return obj


def errors(obj: dict) -> list[str]:
    apply_defaults("EndpointSlice", obj)
    return [e.field for e in validate("EndpointSlice", obj)]


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({}, []),
        ({"addressType": None}, ["addressType"]),
        ({"addressType": "IP"}, ["addressType"]),
        ({"endpoints": [{"addresses": []}]}, ["endpoints[0].addresses"]),
        ({"endpoints": [{"addresses": [f"10.0.0.{i}" for i in range(101)]}]}, ["endpoints[0].addresses"]),
        ({"endpoints": [{"addresses": ["10.0.0.1"]}] * 1001}, ["endpoints"]),
        ({"endpoints": [{"addresses": ["fd00::1"]}]}, ["endpoints[0].addresses[0]"]),
        ({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]}, []),
        ({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com"]}]}, []),
        ({"addressType": "FQDN", "endpoints": [{"addresses": ["DB_1"]}]}, ["endpoints[0].addresses[0]"]),
        ({"endpoints": [{"addresses": ["10.0.0.1"], "hostname": "a.b", "nodeName": "N1"}]},
         ["endpoints[0].hostname", "endpoints[0].nodeName"]),
        ({"ports": [{"name": "Web", "port": 80}]}, ["ports[0].name"]),
        ({"ports": [{"name": "web", "port": 80}, {"name": "web", "port": 81}]}, ["ports[1].name"]),
        ({"ports": [{"port": 80}, {"port": 81}]}, ["ports[1].name"]),  # two unnamed: both ""
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, ["ports[0].protocol"]),
        ({"ports": [{"port": 80 + i, "name": f"p{i}"} for i in range(101)]}, ["ports"]),
        ({"ports": [], "endpoints": []}, []),
    ],
)
def test_validation(fields: dict, bad: list) -> None:
    assert errors(body(**fields)) == bad


def test_defaults_and_messages() -> None:
    obj = body()
    apply_defaults("EndpointSlice", obj)
    assert obj["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    assert [str(e) for e in validate("EndpointSlice", {**obj, "addressType": "IP"})] == [
        'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"']
    assert [str(e) for e in validate("EndpointSlice", {**obj, "endpoints": [{"addresses": ["10.0.0.1"]}] * 1001})] \
        == ["endpoints: Too many: 1001: must have at most 1000 items"]


def test_address_type_is_immutable() -> None:
    old = body()
    apply_defaults("EndpointSlice", old)
    six = body(addressType="IPv6", endpoints=[{"addresses": ["fd00::1"]}])
    apply_defaults("EndpointSlice", six)
    assert [str(e) for e in validate("EndpointSlice", six, old)] == [
        'addressType: Invalid value: "IPv6": field is immutable']
    assert validate("EndpointSlice", {**old, "endpoints": []}, old) == []


@pytest.mark.parametrize(
    ("fields", "cells"),
    [
        ({}, ["web-abcde", "IPv4", "80", "10.42.0.2"]),
        ({"ports": [], "endpoints": []}, ["web-abcde", "IPv4", "<unset>", "<unset>"]),
        ({"ports": [{"port": p} for p in (80, 81, 82, 83)], "endpoints": [
            {"addresses": [f"10.42.0.{i}"], "conditions": {"ready": i % 2 == 0}} for i in range(2, 7)]},
         ["web-abcde", "IPv4", "80,81,82 + 1 more...", "10.42.0.2,10.42.0.3,10.42.0.4 + 2 more..."]),
        ({"ports": [{"name": "dns"}]}, ["web-abcde", "IPv4", "dns", "10.42.0.2"]),
    ],
)
def test_printer_as_kube_apiserver(fields: dict, cells: list) -> None:
    kind = resolve("endpointslices")
    obj = body(**fields)
    obj["metadata"]["creationTimestamp"] = "2025-01-01T11:58:00Z"
    assert [c.header for c in kind.printer.columns] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert kind.printer.cells(obj, NOW) == [*cells, "2m"]


def test_served_like_the_other_kinds() -> None:
    kind = resolve("endpointslices")
    assert resolve("endpointslice") is kind and resolve("EndpointSlice") is kind
    assert resolve("endpointslices.discovery.k8s.io") is kind
    assert kind.base_path("default") == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    assert kind.short_names == () and kind.categories == ()  # as in Kubernetes
    resources = discovery.resource_list("discovery.k8s.io", "v1")
    assert resources is not None
    [entry] = resources["resources"]
    assert entry["name"] == "endpointslices" and entry["kind"] == "EndpointSlice" and entry["namespaced"]
    assert "discovery.k8s.io" in [g["name"] for g in discovery.api_group_list()["groups"]]
    doc = openapi.v3_document("discovery.k8s.io", "v1")
    assert doc is not None and b'"kind":"EndpointSlice","version":"v1"' in doc
    assert "endpoints" not in patch.MERGE_KEYS["EndpointSlice"]  # atomic lists, as in Kubernetes


def test_protobuf_round_trip() -> None:
    obj = stored("web-aaaaa", [A, endpoint("b", "10.42.0.3", ready=False, terminating=True)])
    obj["metadata"].pop("resourceVersion")
    decoded = protobuf.decode(protobuf.encode(obj))
    assert decoded["metadata"].pop("creationTimestamp") is None  # Go's zero time, as Kubernetes sends it
    assert decoded == obj


def test_nodes_may_read_but_not_write_endpoint_slices() -> None:
    node = auth.node_user("n1")

    def allowed(verb: str) -> bool:
        req = auth.Request(verb=verb, group="discovery.k8s.io", resource="endpointslices", namespace=None,
                           name=None, subresource="")
        return auth.authorize(node, req)

    assert allowed("list") and allowed("watch") and allowed("get")
    assert not allowed("create") and not allowed("update") and not allowed("delete")


# --- the controller and the garbage collector, on a real registry -----------------------------------


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")))
    r.ensure_namespaces()
    r.create_hooks.setdefault("Service", []).append(service_allocation_hook(r, "10.43.0.0/16"))
    return r


def _running_pod(reg: Registry, name: str, ip: str) -> None:
    reg.create(POD, "default", {"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "labels": {"app": "web"}},
                                "spec": {"nodeName": "n1", "containers": [
                                    {"name": "c", "image": "busybox", "ports": [
                                        {"name": "http", "containerPort": 8080}]}]}})
    current = reg.get(POD, "default", name)
    current["status"] = {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    reg.update(POD, "default", name, current, subresource="status")


def _slices(reg: Registry) -> list[dict]:
    return sorted(reg.items(ENDPOINT_SLICE, "default"), key=lambda s: s["metadata"]["name"])


def _service_body() -> dict:
    svc = service()
    svc["metadata"].pop("uid")
    svc["spec"].pop("clusterIP")
    return svc


def test_controller_keeps_the_slices_and_the_collector_removes_them(reg: Registry) -> None:
    reg.create(SERVICE, "default", _service_body())
    _running_pod(reg, "a", "10.42.0.2")
    ctl = EndpointSliceController(reg)
    assert list(ctl.keys_for(POD, "MODIFIED", reg.get(POD, "default", "a"))) == ["default/web"]
    ctl.sync("default/web")
    [s] = _slices(reg)
    assert re.fullmatch(r"web-[a-z0-9]{5}", s["metadata"]["name"])
    assert s["metadata"]["labels"] == LABELS
    assert s["metadata"]["ownerReferences"][0]["uid"] == reg.get(SERVICE, "default", "web")["metadata"]["uid"]
    assert [(e["addresses"], e["conditions"]) for e in s["endpoints"]] == [
        (["10.42.0.2"], {"ready": True, "serving": True, "terminating": False})]
    assert s["ports"] == WEB_PORTS
    assert list(ctl.keys_for(ENDPOINT_SLICE, "MODIFIED", s)) == ["default/web"]
    # nothing changed: nothing written
    ctl.sync("default/web")
    assert _slices(reg) == [s]
    # a second pod joins the same slice
    _running_pod(reg, "b", "10.42.0.3")
    ctl.sync("default/web")
    [s2] = _slices(reg)
    assert s2["metadata"]["name"] == s["metadata"]["name"]
    assert [e["addresses"][0] for e in s2["endpoints"]] == ["10.42.0.2", "10.42.0.3"]
    # a user's slice of a Service without a selector is never touched
    reg.create(SERVICE, "default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                                    "spec": {"ports": [{"port": 80}]}})
    user = reg.create(ENDPOINT_SLICE, "default", body(metadata={"name": "ext-1", "labels": {
        SERVICE_NAME_LABEL: "ext"}}))
    ctl.sync("default/ext")
    assert reg.get(ENDPOINT_SLICE, "default", "ext-1") == user
    # the Service goes: the garbage collector removes its slices (they are owned by it)
    reg.delete(SERVICE, "default", "web")
    GarbageCollector(reg).sync("scan")
    assert [x["metadata"]["name"] for x in _slices(reg)] == ["ext-1"]


def test_controller_deletes_the_slices_of_a_service_that_is_gone(reg: Registry) -> None:
    reg.create(SERVICE, "default", _service_body())
    ctl = EndpointSliceController(reg)
    ctl.sync("default/web")
    [placeholder] = _slices(reg)
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    assert "default/web" in ctl.all_keys()
    reg.delete(SERVICE, "default", "web")
    ctl.sync("default/web")
    assert _slices(reg) == []


def test_a_conflicting_write_fails_the_sync_for_a_retry(reg: Registry) -> None:
    reg.create(SERVICE, "default", _service_body())
    ctl = EndpointSliceController(reg)
    ctl.sync("default/web")
    [s] = _slices(reg)
    stale = copy.deepcopy(s)
    reg.update(ENDPOINT_SLICE, "default", s["metadata"]["name"], {**s, "metadata": {
        **s["metadata"], "annotations": {"x": "y"}}})

    class StaleLister:
        """A cache behind the store: it still has the slice before the annotation."""

        def list(self, namespace: str | None = None) -> list[dict]:
            return [stale]

        def note(self, obj: dict) -> None:
            pass

        def note_deleted(self, obj: dict) -> None:
            pass

    _running_pod(reg, "a", "10.42.0.2")
    real = ctl.lister

    def lister(kind: Any) -> Any:
        return StaleLister() if kind is ENDPOINT_SLICE else real(kind)

    ctl.lister = lister  # type: ignore[method-assign]
    with pytest.raises(ApiError) as e:
        ctl.sync("default/web")
    assert e.value.code == 409
    assert [x["metadata"]["name"] for x in _slices(reg)] == [s["metadata"]["name"]]  # no second slice


# --- default/kubernetes ----------------------------------------------------------------------------


def test_the_api_service_slice_as_kube_apiserver_writes_it(reg: Registry) -> None:
    ep = MasterEndpoint("192.168.1.10", 6443)
    assert desired_endpoint_slice(ep) == {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.168.1.10"], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
    }
    ctl = KubernetesServiceController(reg, ep)
    assert list(ctl.keys_for(ENDPOINT_SLICE, "DELETED", {"metadata": {"name": "kubernetes",
                                                                     "namespace": "default"}})) == [
        "default/kubernetes"]
    ctl.sync("default/kubernetes")
    s = reg.get(ENDPOINT_SLICE, "default", "kubernetes")
    assert endpoint_slice_update(s, ep) is None
    rv = s["metadata"]["resourceVersion"]
    ctl.sync("default/kubernetes")
    assert reg.get(ENDPOINT_SLICE, "default", "kubernetes")["metadata"]["resourceVersion"] == rv
    # the EndpointSlice controller leaves it alone (not its own, and the Service has no selector)
    EndpointSliceController(reg).sync("default/kubernetes")
    assert reg.get(ENDPOINT_SLICE, "default", "kubernetes")["metadata"]["resourceVersion"] == rv
    # the master moves: address and port follow; deleted: created again
    KubernetesServiceController(reg, MasterEndpoint("192.168.1.20", 7443)).sync("default/kubernetes")
    moved = reg.get(ENDPOINT_SLICE, "default", "kubernetes")
    assert moved["endpoints"][0]["addresses"] == ["192.168.1.20"] and moved["ports"][0]["port"] == 7443
    reg.delete(ENDPOINT_SLICE, "default", "kubernetes")
    ctl.sync("default/kubernetes")
    assert reg.get(ENDPOINT_SLICE, "default", "kubernetes")["endpoints"][0]["addresses"] == ["192.168.1.10"]
    # an IPv6 master: the address type is immutable, so the slice is replaced
    KubernetesServiceController(reg, MasterEndpoint("fd00::10", 6443)).sync("default/kubernetes")
    six = reg.get(ENDPOINT_SLICE, "default", "kubernetes")
    assert six["addressType"] == "IPv6" and six["endpoints"][0]["addresses"] == ["fd00::10"]
