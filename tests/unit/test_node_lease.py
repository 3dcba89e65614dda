"""The agent's node Lease: created once, then renewed with one PUT each time; conflicts and a
deleted Lease cost one more request; the Lease is owned by the Node."""

from __future__ import annotations

import copy
from typing import Any

from agent.node import LEASE_NAMESPACE, NodeManager, lease_object, micro_time
from orchestrator.errors import ApiError


class FakeLeases:
    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.rv = 0
        self.calls: list[str] = []
        self.conflict_next = False

    def _save(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.stored = copy.deepcopy(obj)
        self.stored["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.stored)

    def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append("get")
        if self.stored is None:
            raise ApiError(404, "NotFound", "not found")
        return copy.deepcopy(self.stored)

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.calls.append("create")
        if self.stored is not None:
            raise ApiError(409, "AlreadyExists", "exists")
        return self._save(obj)

    def replace(self, obj: dict[str, Any], sub: str = "") -> dict[str, Any]:
        self.calls.append("put")
        if self.stored is None:
            raise ApiError(404, "NotFound", "not found")
        if self.conflict_next or obj["metadata"].get("resourceVersion") != self.stored["metadata"]["resourceVersion"]:
            self.conflict_next = False
            raise ApiError(409, "Conflict", "the object has been modified")
        return self._save(obj)


def manager(api: FakeLeases, clock: list[float]) -> NodeManager:
    m = NodeManager(api, "n1", "10.0.0.1", lambda: ({}, {}), clock=lambda: clock[0])  # type: ignore[arg-type]
    m.node_uid = "node-uid"
    return m


def test_created_once_then_one_put_per_renewal() -> None:
    api, clock = FakeLeases(), [1000.0]
    m = manager(api, clock)
    m.renew_lease()
    assert api.calls == ["get", "create"]
    assert api.stored is not None and api.stored["metadata"]["namespace"] == LEASE_NAMESPACE
    assert api.stored["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                                                           "uid": "node-uid"}]
    for _ in range(3):
        clock[0] += 2
        m.renew_lease()
    assert api.calls == ["get", "create", "put", "put", "put"]
    assert api.stored["spec"]["renewTime"] == micro_time(1006.0)
    assert m.lease_renewals == 4


def test_conflict_and_deletion_cost_one_more_request() -> None:
    api, clock = FakeLeases(), [1000.0]
    m = manager(api, clock)
    m.renew_lease()
    api.conflict_next = True
    m.renew_lease()
    assert api.calls[2:] == ["put", "get", "put"]
    api.stored = None  # someone deleted it
    api.calls.clear()
    m.renew_lease()
    assert api.calls == ["put", "get", "create"]


def test_lease_object_shape() -> None:
    lease = lease_object("n1", None, 0.5)
    assert lease["spec"] == {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                             "renewTime": "1970-01-01T00:00:00.500000Z"}
    assert "ownerReferences" not in lease["metadata"]
