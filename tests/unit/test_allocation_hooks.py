"""The allocating create hooks (Service addresses and node ports, node pod CIDRs) hand out
distinct values when creates come from several threads at once (the API's loop and the
controllers' runners), and a value handed to a create that never got stored comes back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.controllers.nodes import pod_cidr_hook
from orchestrator.controllers.reservations import Reservations
from orchestrator.controllers.services import service_allocation_hook
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import by_kind
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

SERVICE = by_kind("v1", "Service")
NODE = by_kind("v1", "Node")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")))
    r.ensure_namespaces()
    r.create_hooks.setdefault("Service", []).append(service_allocation_hook(r, "10.43.0.0/16"))
    r.create_hooks.setdefault("Node", []).append(pod_cidr_hook(r, "10.42.0.0/16"))
    return r


def in_threads(n: int, fn: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        start.wait()
        try:
            fn(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": name}, "ports": [{"port": 80}]}}


def test_concurrent_service_creates_get_distinct_addresses_and_ports(reg: Registry) -> None:
    def create(i: int) -> None:
        for j in range(10):
            reg.create(SERVICE, "default", svc(f"s{i}-{j}"))

    in_threads(8, create)
    services = reg.items(SERVICE, "default")
    assert len(services) == 80
    ips = [s["spec"]["clusterIP"] for s in services]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in services]
    assert len(set(ips)) == 80 and len(set(ports)) == 80


def test_concurrent_node_creates_get_distinct_pod_ranges(reg: Registry) -> None:
    def create(i: int) -> None:
        for j in range(5):
            reg.create(NODE, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}-{j}"}})

    in_threads(8, create)
    cidrs = [n["spec"]["podCIDR"] for n in reg.items(NODE)]
    assert len(cidrs) == 40 and len(set(cidrs)) == 40


def test_a_value_of_a_create_that_failed_comes_back(reg: Registry) -> None:
    bad = svc("bad")
    bad["spec"]["ports"][0]["port"] = 0  # refused by validation, after the hook ran
    with pytest.raises(ApiError):
        reg.create(SERVICE, "default", bad)
    held = reg.create(SERVICE, "default", svc("next"))["spec"]["clusterIP"]
    assert held == "10.43.0.3"  # .2 is still reserved for the failed create, for a few seconds
    now = [0.0]
    table = Reservations(ttl=5.0, clock=lambda: now[0])
    with table.lock:
        table.hold("default/bad", ["10.43.0.2"])
        assert table.in_flight(set()) == {"default/bad": ("10.43.0.2",)}
        assert table.in_flight({"default/bad"}) == {}  # stored: the store says it is used
        table.hold("default/bad", ["10.43.0.2"])
        now[0] = 6.0
        assert table.in_flight(set()) == {}  # expired: the create never made it
