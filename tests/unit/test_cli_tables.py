"""`get` tables: columns and cell values per kind, from fixture objects; kubectl-style ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.cli import tables
from orchestrator.objects import printers
from orchestrator.objects.kinds import resolve

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (192, "3m12s"), (599, "9m59s"), (600, "10m"),
        (179 * 60, "179m"), (3 * 3600, "3h"), (5 * 3600 + 3 * 60, "5h3m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
        (2 * 86400 + 4 * 3600, "2d4h"), (3 * 86400, "3d"), (40 * 86400, "40d"), (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"), (-0.7, "0s"), (-5, "<invalid>"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert printers.format_duration(seconds) == text


def test_age_of_missing_or_bad_timestamp() -> None:
    assert printers.age(None, NOW) == "<unknown>"
    assert printers.age("yesterday", NOW) == "<unknown>"
    assert printers.age(ts(75), NOW) == "75s"


def pod(**status: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ts(192)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "podIP": "10.42.1.7"},
    }
    base["status"].update(status)
    return base


def cs(name: str, ready: bool, restarts: int = 0, **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state or {"running": {}}}


POD = resolve("po")


def test_pod_row_and_wide_row() -> None:
    p = pod(containerStatuses=[cs("a", True, 2), cs("b", True, 1)])
    assert tables.headers(POD) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert tables.row(POD, p, NOW) == ["web-1", "2/2", "Running", "3", "3m12s"]
    assert tables.headers(POD, wide=True)[-2:] == ["IP", "NODE"]
    assert tables.row(POD, p, NOW, wide=True)[-2:] == ["10.42.1.7", "node-a"]
    assert tables.headers(POD, all_namespaces=True)[0] == "NAMESPACE"
    assert tables.row(POD, p, NOW, all_namespaces=True)[:2] == ["default", "web-1"]


@pytest.mark.parametrize(
    ("statuses", "extra", "expected"),
    [
        ([cs("a", False, waiting={"reason": "CrashLoopBackOff"}), cs("b", True)], {},
         "CrashLoopBackOff"),
        ([cs("a", False, waiting={"reason": "ErrImagePull"})], {}, "ErrImagePull"),
        ([cs("a", False, waiting={"reason": "ContainerCreating"})], {"phase": "Pending"}, "ContainerCreating"),
        ([cs("a", False, terminated={"reason": "Error", "exitCode": 1})], {}, "Error"),
        ([cs("a", False, terminated={"exitCode": 137})], {}, "ExitCode:137"),
        ([cs("a", False, terminated={"reason": "Completed", "exitCode": 0})], {"phase": "Succeeded"}, "Completed"),
        ([], {"phase": "Pending"}, "Pending"),
        ([], {"phase": "Failed", "reason": "Evicted"}, "Evicted"),
    ],
)
def test_pod_status(statuses: list[dict[str, Any]], extra: dict[str, Any], expected: str) -> None:
    assert printers.pod_status(pod(containerStatuses=statuses, **extra)) == expected


def test_terminating_pod() -> None:
    p = pod(containerStatuses=[cs("a", True), cs("b", True)])
    p["metadata"]["deletionTimestamp"] = ts(1)
    assert tables.row(POD, p, NOW)[:3] == ["web-1", "2/2", "Terminating"]


def test_deployment_and_replicaset_rows() -> None:
    dep = {
        "metadata": {"name": "web", "creationTimestamp": ts(3 * 86400)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2, "replicas": 3},
    }
    d = resolve("deploy")
    assert tables.headers(d) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert tables.row(d, dep, NOW) == ["web", "2/3", "3", "2", "3d"]
    assert tables.row(d, dep, NOW, wide=True)[-3:] == ["web", "web:1", "app=web"]
    assert tables.row(d, {"metadata": {"name": "x"}, "spec": {"replicas": 0}}, NOW)[1:4] == ["0/0", "0", "0"]
    rs = resolve("rs")
    assert tables.headers(rs) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert tables.row(rs, {**dep, "metadata": {"name": "web-abc", "creationTimestamp": ts(5)}}, NOW) == [
        "web-abc", "3", "3", "2", "5s"]


def node(ready: str = "True", unschedulable: bool = False, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "creationTimestamp": ts(7200), "labels": labels or {}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.5"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0+dockyard", "osImage": "Debian GNU/Linux 12",
                         "containerRuntimeVersion": "docker://20.10.24"},
        },
    }


def test_node_rows() -> None:
    n = resolve("nodes")
    assert tables.headers(n) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert tables.headers(n, wide=True)[5:] == ["INTERNAL-IP", "OS-IMAGE", "CONTAINER-RUNTIME"]
    assert tables.headers(n, all_namespaces=True)[0] == "NAME"  # cluster-scoped: no NAMESPACE column
    assert tables.row(n, node(), NOW) == ["n1", "Ready", "<none>", "120m", "v1.32.0+dockyard"]
    labels = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true"}
    assert tables.row(n, node("Unknown", True, labels), NOW)[1:3] == [
        "NotReady,SchedulingDisabled", "control-plane,master"]
    assert tables.row(n, node(), NOW, wide=True)[5:] == ["192.168.1.5", "Debian GNU/Linux 12", "docker://20.10.24"]


def test_other_kinds() -> None:
    meta = {"name": "x", "creationTimestamp": ts(30)}
    assert tables.row(resolve("ns"), {"metadata": meta, "status": {"phase": "Active"}}, NOW) == ["x", "Active", "30s"]
    assert tables.row(resolve("cm"), {"metadata": meta, "data": {"a": "1", "b": "2"}}, NOW) == ["x", "2", "30s"]
    assert tables.headers(resolve("secrets")) == ["NAME", "TYPE", "DATA", "AGE"]
    assert tables.row(resolve("secrets"), {"metadata": meta, "data": {"a": "MQ=="}}, NOW) == ["x", "Opaque", "1", "30s"]
    ev = {"metadata": meta, "type": "Warning", "reason": "BackOff", "lastTimestamp": ts(4),
          "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "Back-off\nrestarting"}
    assert tables.headers(resolve("ev")) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert tables.row(resolve("ev"), ev, NOW) == ["4s", "Warning", "BackOff", "pod/web-1", "Back-off restarting"]


def test_name_prefix_for_several_kinds() -> None:
    row = tables.row(POD, pod(), NOW, all_namespaces=True, name_prefix="pod/")
    assert row[:2] == ["default", "pod/web-1"]


def test_render_is_plain_aligned_text() -> None:
    text = tables.render(["NAME", "STATUS"], [["a", "Running"], ["long-name-[x]", "CrashLoopBackOff"]])
    lines = text.splitlines()
    assert lines == [
        "NAME            STATUS",
        "a               Running",
        "long-name-[x]   CrashLoopBackOff",
    ]
    assert "\x1b" not in text
    assert tables.render(["NAME"], [["a"]], show_header=False) == "a"
    assert tables.render(["A", "B"], [["x", "y"]], show_header=False, min_widths=[4, 1]) == "x      y"
