"""Server-side Tables: columns and cells per kind (the printers), includeObject, Accept negotiation, HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orchestrator.api import tables
from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects import printers
from orchestrator.objects.kinds import resolve
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
ADMIN = "admin-token-0123456789"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def pod(name: str = "web-1", **status: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2025-01-01T11:55:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "demo:1"}]},
        "status": {"phase": "Running", "podIP": "10.42.0.5", **status},
    }


def names(kind: str) -> list[str]:
    return [c.name for c in resolve(kind).printer.columns]


def test_pod_columns_and_cells() -> None:
    assert names("pods") == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
                             "Readiness Gates"]
    assert [c.priority for c in resolve("pods").printer.columns] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    p = pod(containerStatuses=[{"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}}])
    assert resolve("pods").printer.cells(p, NOW) == ["web-1", "1/1", "Running", "0", "5m", "10.42.0.5", "n1",
                                                     "<none>", "<none>"]


def test_pod_restarts_say_when() -> None:
    p = pod(containerStatuses=[{
        "name": "web", "ready": False, "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T11:58:00Z"}},
    }])
    cells = resolve("pods").printer.cells(p, NOW)
    assert cells[1:4] == ["0/1", "CrashLoopBackOff", "2 (2m ago)"]


def test_pod_readiness_gates() -> None:
    p = pod(conditions=[{"type": "example.com/lb", "status": "True"}])
    p["spec"]["readinessGates"] = [{"conditionType": "example.com/lb"}, {"conditionType": "other"}]
    assert resolve("pods").printer.cells(p, NOW)[-1] == "1/2"


def test_deployment_cells() -> None:
    d = {
        "metadata": {"name": "web", "creationTimestamp": "2025-01-01T10:00:00Z"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "demo:1"},
                                                      {"name": "log", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert names("deployments") == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images",
                                    "Selector"]
    assert resolve("deployments").printer.cells(d, NOW) == ["web", "2/3", 3, 2, "120m", "web,log",
                                                            "demo:1,busybox", "app=web"]


@pytest.mark.parametrize(
    ("kind", "obj", "expect"),
    [
        ("replicasets", {"metadata": {"name": "web-x"}, "spec": {"replicas": 2}, "status": {"replicas": 2}},
         ["web-x", 2, 2, 0, "<unknown>", "<none>", "<none>", "<none>"]),
        ("namespaces", {"metadata": {"name": "team"}, "status": {"phase": "Terminating"}},
         ["team", "Terminating", "<unknown>"]),
        ("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, ["c", 2, "<unknown>"]),
        ("secrets", {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}},
         ["s", "Opaque", 1, "<unknown>"]),
        ("nodes", {"metadata": {"name": "n1"}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "nodeInfo": {"kubeletVersion": "v1", "osImage": "Debian", "kernelVersion": "6.1",
                         "containerRuntimeVersion": "docker://20"}}},
         ["n1", "Ready", "<none>", "<unknown>", "v1", "10.0.0.1", "<none>", "Debian", "6.1", "docker://20"]),
    ],
)
def test_other_kinds(kind: str, obj: dict, expect: list) -> None:
    assert resolve(kind).printer.cells(obj, NOW) == expect
    assert len(expect) == len(resolve(kind).printer.columns)


def test_event_cells() -> None:
    ev = {"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled", "message": "assigned  to\nn1",
          "involvedObject": {"kind": "Pod", "name": "web-1"}, "source": {"component": "scheduler"},
          "firstTimestamp": "2025-01-01T11:00:00Z", "lastTimestamp": "2025-01-01T11:59:00Z", "count": 3}
    assert names("events")[:4] == ["Last Seen", "Type", "Reason", "Object"]
    assert resolve("events").printer.cells(ev, NOW) == ["60s", "Normal", "Scheduled", "pod/web-1", "",
                                                        "scheduler", "assigned to n1", "60m", 3, "web.1"]


def test_table_include_object() -> None:
    kind = resolve("pods")
    t = tables.table(kind, [pod()], "42", now=NOW)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42"}
    assert t["columnDefinitions"][0] == {"name": "Name", "type": "string", "format": "name",
                                         "description": printers.NAME.description, "priority": 0}
    obj = t["rows"][0]["object"]
    assert obj["kind"] == "PartialObjectMetadata" and obj["metadata"]["name"] == "web-1" and "spec" not in obj
    full = tables.table(kind, [pod()], include_object="Object", now=NOW)
    assert full["rows"][0]["object"]["spec"]["nodeName"] == "n1"
    assert "object" not in tables.table(kind, [pod()], include_object="None", now=NOW)["rows"][0]


@pytest.mark.parametrize(
    ("accept", "as_", "version"),
    [
        (None, "", "v1"),
        ("application/json", "", "v1"),
        (TABLE_ACCEPT, "Table", "v1"),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "Table", "v1beta1"),
        ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json", "Table", "v1"),
        ("application/json;as=Table;v=v9;g=meta.k8s.io,application/json", "", "v1"),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "PartialObjectMetadataList", "v1"),
        ("application/vnd.kubernetes.protobuf,application/json", "", "v1"),
    ],
)
def test_negotiate(accept: str | None, as_: str, version: str) -> None:
    w = tables.negotiate(accept)
    assert (w.as_, w.version) == (as_, version)


# --- through the HTTP layer ------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", b"n" * 32), b"PEM",
                       lambda n: node_token(b"n" * 32, n))
    return TestClient(server.app)


def h(accept: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {ADMIN}"}
    if accept:
        out["Accept"] = accept
    return out


def cm(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"k": "v"}}


def test_list_and_get_as_table(api: TestClient) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    assert api.post(base, json=cm("a"), headers=h()).status_code == 201
    r = api.get(base, headers=h(TABLE_ACCEPT))
    assert r.status_code == 200
    t = r.json()
    assert t["kind"] == "Table" and [c["name"] for c in t["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert t["rows"][0]["cells"][:2] == ["a", 1]
    assert t["metadata"]["resourceVersion"]
    one = api.get(f"{base}/a?includeObject=Object", headers=h(TABLE_ACCEPT)).json()
    assert one["kind"] == "Table" and one["rows"][0]["object"]["data"] == {"k": "v"}
    plain = api.get(f"{base}/a", headers=h("application/vnd.kubernetes.protobuf,application/json"))
    assert plain.status_code == 200 and plain.json()["kind"] == "ConfigMap"
    meta = api.get(base, headers=h("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io")).json()
    assert meta["kind"] == "PartialObjectMetadataList" and meta["items"][0]["metadata"]["name"] == "a"


def test_watch_as_table(api: TestClient) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    api.post(base, json=cm("a"), headers=h())
    api.post(base, json=cm("b"), headers=h())
    with api.stream("GET", f"{base}?watch=true&resourceVersion=0&timeoutSeconds=1", headers=h(TABLE_ACCEPT)) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert all(e["object"]["kind"] == "Table" for e in events)
    assert len(events[0]["object"]["columnDefinitions"]) == 3
    assert events[1]["object"]["columnDefinitions"] == []  # sent once; clients reuse them
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["a", "b"]
