"""One printer per kind: the server-side Table and `dockyard get` print the same columns and cells."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.api import tables as api_tables
from orchestrator.cli import tables as cli_tables
from orchestrator.objects import printers
from orchestrator.objects.kinds import KINDS, Kind

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
META = {"name": "x-1", "namespace": "team", "creationTimestamp": "2025-01-01T11:56:48Z"}

# One object per kind, with enough filled in that every cell has something to say.
SAMPLES: dict[str, dict[str, Any]] = {
    "namespaces": {"status": {"phase": "Terminating"}},
    "nodes": {
        "metadata": {**META, "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                 {"type": "ExternalIP", "address": "203.0.113.9"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0+dockyard", "osImage": "Debian GNU/Linux 12",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "docker://24.0.7"}},
    },
    "pods": {
        "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}],
                 "readinessGates": [{"conditionType": "example.com/lb"}]},
        "status": {"phase": "Running", "podIP": "10.42.0.5", "nominatedNodeName": "n2",
                   "conditions": [{"type": "example.com/lb", "status": "True"}],
                   "containerStatuses": [
                       {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-01T11:58:00Z"}}},
                       {"name": "b", "ready": False, "restartCount": 0,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    },
    "configmaps": {"data": {"a": "1"}, "binaryData": {"b": "Mg=="}},
    "secrets": {"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}},
    "events": {"type": "Warning", "reason": "BackOff", "message": "Back-off\nrestarting  failed container",
               "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
               "source": {"component": "kubelet", "host": "n1"}, "count": 4,
               "firstTimestamp": "2025-01-01T11:00:00Z", "lastTimestamp": "2025-01-01T11:59:30Z"},
    "services": {"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                          "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}},
    "endpoints": {"subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
                               "ports": [{"port": 80}]}]},
    "replicasets": {"spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                             "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
                    "status": {"replicas": 3, "readyReplicas": 2}},
    "deployments": {"spec": {"replicas": 3, "selector": {"matchExpressions": [
                                 {"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                             "template": {"spec": {"containers": [{"name": "web", "image": "web:1"},
                                                                  {"name": "log", "image": "busybox"}]}}},
                    "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
    "horizontalpodautoscalers": {
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 8,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 50}}}]},
        "status": {"currentReplicas": 3, "currentMetrics": [{"type": "Resource", "resource": {
            "name": "cpu", "current": {"averageUtilization": 45}}}]},
    },
    "leases": {"spec": {"holderIdentity": "master-1"}},
    "endpointslices": {"addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": [f"10.42.0.{i}"]} for i in range(2, 7)]},
}


def sample(kind: Kind) -> dict[str, Any]:
    obj = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": dict(META), **SAMPLES[kind.resource]}
    if not kind.namespaced:
        obj["metadata"].pop("namespace", None)
    return obj


def test_every_kind_has_a_sample_and_a_printer() -> None:
    assert sorted(SAMPLES) == sorted(k.resource for k in KINDS)
    # every kind has a printer of its own (not the NAME/AGE fallback), one per kind
    assert all(k.printer is not printers.GENERIC for k in KINDS)
    assert len({id(k.printer) for k in KINDS}) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.resource)
@pytest.mark.parametrize("wide", [False, True], ids=["default", "wide"])
def test_dockyard_get_prints_the_server_side_table(kind: Kind, wide: bool) -> None:
    obj = sample(kind)
    table = api_tables.table(kind, [obj], "7", now=NOW)
    definitions = table["columnDefinitions"]
    served = table["rows"][0]["cells"]
    assert len(served) == len(definitions)
    shown = [i for i, c in enumerate(kind.printer.columns) if c.shown(wide)]
    assert [i for i, d in enumerate(definitions) if d["priority"] == 0] == [
        i for i, c in enumerate(kind.printer.columns) if c.shown(False)]
    # What kubectl would print for the shown columns is what `dockyard get` prints.
    assert cli_tables.headers(kind, wide) == [definitions[i]["name"].upper() for i in shown]
    assert cli_tables.row(kind, obj, NOW, wide) == [str(served[i]) for i in shown]
    # -A adds a NAMESPACE column for namespaced kinds only, in front of the same cells.
    assert cli_tables.row(kind, obj, NOW, wide, all_namespaces=True) == (
        (["team"] if kind.namespaced else []) + [str(served[i]) for i in shown])


def test_server_side_cells_of_the_samples() -> None:
    by = {k.resource: k for k in KINDS}

    def served(resource: str) -> list[Any]:
        return by[resource].printer.cells(sample(by[resource]), NOW)

    assert served("pods") == ["x-1", "1/2", "CrashLoopBackOff", "2 (2m ago)", "3m12s", "10.42.0.5", "n1", "n2",
                              "1/1"]
    assert served("nodes") == ["x-1", "Ready,SchedulingDisabled", "control-plane", "3m12s", "v1.32.0+dockyard",
                               "10.0.0.1", "203.0.113.9", "Debian GNU/Linux 12", "6.1.0", "docker://24.0.7"]
    assert served("events") == ["30s", "Warning", "BackOff", "pod/web-1", "spec.containers{a}", "kubelet, n1",
                                "Back-off restarting failed container", "60m", 4, "x-1"]
    assert served("services") == ["x-1", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP", "3m12s", "app=web"]
    assert served("deployments")[1:] == ["2/3", 3, 2, "3m12s", "web,log", "web:1,busybox", "tier in (a,b)"]
    assert served("horizontalpodautoscalers") == ["x-1", "Deployment/web", "cpu: 45%/50%", 2, 8, 3, "3m12s"]
    assert served("endpoints")[1] == "10.42.0.5:80,10.42.0.6:80"
    assert served("configmaps")[1] == 2 and served("secrets")[1:3] == ["kubernetes.io/tls", 2]


def test_dockyard_get_wide_keeps_to_its_narrower_columns() -> None:
    by = {k.resource: k for k in KINDS}
    assert cli_tables.headers(by["pods"], wide=True) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP",
                                                          "NODE"]
    assert cli_tables.headers(by["nodes"], wide=True)[5:] == ["INTERNAL-IP", "OS-IMAGE", "CONTAINER-RUNTIME"]
    assert cli_tables.headers(by["events"], wide=True) == cli_tables.headers(by["events"])
    assert cli_tables.headers(by["services"], wide=True)[-1] == "SELECTOR"


def test_a_kind_without_a_printer_gets_name_and_age() -> None:
    widget = Kind("example.com", "v1", "Widget", "widgets", True)
    obj = {"metadata": {"name": "w", "creationTimestamp": "2025-01-01T11:59:00Z"}}
    assert [c.name for c in widget.printer.columns] == ["Name", "Age"]
    assert api_tables.table(widget, [obj], now=NOW)["rows"][0]["cells"] == ["w", "60s"]
    assert cli_tables.headers(widget) == ["NAME", "AGE"] and cli_tables.row(widget, obj, NOW) == ["w", "60s"]
    assert cli_tables.row(widget, obj, NOW, name_prefix="widget/") == ["widget/w", "60s"]


def test_every_column_is_well_formed() -> None:
    for kind in KINDS:
        cols = kind.printer.columns
        assert len({c.name for c in cols}) == len(cols), kind.resource
        for c in cols:
            assert c.type in ("string", "integer") and c.priority in (0, 1) and c.description, (kind, c)
            assert c.get_wide or c.priority == 1, (kind, c)
