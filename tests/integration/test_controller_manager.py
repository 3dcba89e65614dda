"""The controllers and the scheduler in their own process (`dockyard controller-manager`,
the master's default), reaching the objects through the API over HTTPS.

A real `dockyard up --no-agent` with a hollow Node (Ready, its Lease renewed by the test):
a Deployment's pods are created and bound through the child; its metrics reach the master's
/metrics; a Namespace is finalized through namespaces/finalize; a Binding names the pod's
uid; `kill -9` of the child brings a new one that carries on, and `kill -9` of the master
leaves no controller manager behind. `ApiRegistry` (the child's access) is exercised
directly too: reads, 404s, conflicts and a watch.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from orchestrator.objects.timefmt import rfc3339
from orchestrator.reconcile.remote import ApiRegistry
from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.docker

NODES, PODS, LEASES = resolve("nodes"), resolve("pods"), resolve("leases")
DEPLOYMENTS, NAMESPACES, CONFIGMAPS = resolve("deployments"), resolve("namespaces"), resolve("configmaps")
HOLLOW = "hollow-cm"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def controller_manager(master_pid: int) -> int | None:
    for child in children(master_pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"controller-manager" in cmd:
            return child
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def now() -> str:
    return rfc3339(datetime.now(UTC))


class Heartbeat:
    """A hollow Node, Ready, with its Lease renewed every second (no agent behind it)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.stop = threading.Event()
        node = client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": HOLLOW}, "spec": {}})
        node["status"] = {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow",
                            "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }
        client.replace_status(node)
        client.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": HOLLOW, "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": HOLLOW, "leaseDurationSeconds": 40, "renewTime": now()}})
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.client.patch(LEASES, HOLLOW, {"spec": {"renewTime": now()}}, "kube-node-lease")
            except Exception:  # noqa: BLE001 - the master restarting; the next beat retries
                pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cm"), extra_args=("--no-agent",))
    c.start(wait_node=False)
    beat = Heartbeat(Client.from_kubeconfig(str(c.kubeconfig)))
    try:
        yield c
    finally:
        beat.stop.set()
        c.stop()


def deployment(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}


def bound(c: Client, app: str) -> int:
    pods = c.list(PODS, "default", label_selector=f"app={app}")["items"]
    return sum(1 for p in pods if (p.get("spec") or {}).get("nodeName") == HOLLOW
               and not p["metadata"].get("deletionTimestamp"))


def test_the_master_runs_its_controllers_in_a_child_process(cluster: Cluster) -> None:
    assert cluster.proc is not None
    pid = wait_for(lambda: controller_manager(cluster.proc.pid), 20, what="the controller-manager process")
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--parent-pipe" in cmd
    assert os.getpriority(os.PRIO_PROCESS, pid) == 0  # the process; its runner threads are niced


def test_a_deployment_is_rolled_out_and_scheduled_through_the_api(cluster: Cluster) -> None:
    c = cluster.client
    c.create(deployment("web", 3), "default")
    wait_for(lambda: bound(c, "web") == 3, 30, what="3 pods bound to the hollow node")
    events = c.list(resolve("events"), "default")["items"]
    reasons = {(e["source"]["component"], e["reason"]) for e in events}
    assert ("default-scheduler", "Scheduled") in reasons
    assert ("dockyard-controller-manager", "SuccessfulCreate") in reasons
    rs = c.list(resolve("replicasets"), "default", label_selector="app=web")["items"]
    assert len(rs) == 1 and rs[0]["status"]["replicas"] == 3


def test_the_controllers_metrics_are_on_the_masters_metrics(cluster: Cluster) -> None:
    def scraped() -> str | None:
        text = cluster.client.http.get("/metrics").text
        return text if 'dockyard_controller_sync_duration_seconds_count{controller="deployment"}' in text else None

    text = wait_for(scraped, 20, what="the deployment controller's sync series")
    assert 'dockyard_controller_queue_depth{controller="scheduler"}' in text
    assert "dockyard_apiserver_requests_total" in text  # the master's own
    assert text.count("# TYPE dockyard_controller_sync_duration_seconds histogram") == 1


def test_a_namespace_is_finalized_through_the_api(cluster: Cluster) -> None:
    c = cluster.client
    c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "teardown"}})
    c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}, "teardown")
    c.delete(NAMESPACES, "teardown")

    def gone() -> bool:
        try:
            c.get(NAMESPACES, "teardown")
            return False
        except ApiError as e:
            return e.code == 404

    wait_for(gone, 30, what="the namespace removed")
    # an Active namespace is not removed by a finalize: only its finalizers are set
    c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stays"}})
    out = c.request("PUT", "/api/v1/namespaces/stays/finalize",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "stays"},
                     "spec": {"finalizers": []}})
    assert out["metadata"]["name"] == "stays"
    assert c.get(NAMESPACES, "stays")["status"]["phase"] == "Active"


def test_a_binding_for_another_incarnation_of_the_pod_is_refused(cluster: Cluster) -> None:
    c = cluster.client
    pod = c.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pinned"},
                    "spec": {"nodeName": "", "schedulerName": "nobody",
                             "containers": [{"name": "c", "image": "busybox:1.36"}]}}, "default")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "pinned", "uid": "not-" + pod["metadata"]["uid"]},
               "target": {"apiVersion": "v1", "kind": "Node", "name": HOLLOW}}
    with pytest.raises(ApiError) as e:
        c.request("POST", "/api/v1/namespaces/default/pods/pinned/binding", binding)
    assert e.value.code == 409
    binding["metadata"]["uid"] = pod["metadata"]["uid"]
    c.request("POST", "/api/v1/namespaces/default/pods/pinned/binding", binding)
    assert c.get(PODS, "pinned", "default")["spec"]["nodeName"] == HOLLOW


def test_api_registry_reads_writes_and_watches(cluster: Cluster) -> None:
    c = cluster.client
    reg = ApiRegistry(c.server, c.token or "", c.ca_pem)
    try:
        assert reg.try_get(CONFIGMAPS, "default", "absent") is None
        made = reg.create(CONFIGMAPS, "default", {"metadata": {"name": "via-api"}, "data": {"k": "1"}})
        assert made["kind"] == "ConfigMap" and made["metadata"]["uid"]
        stale = dict(made, data={"k": "2"})
        reg.update(CONFIGMAPS, "default", "via-api", stale)
        with pytest.raises(ApiError) as e:
            reg.update(CONFIGMAPS, "default", "via-api", dict(made, data={"k": "3"}))  # the old resourceVersion
        assert e.value.reason == "Conflict"
        listed = reg.list(CONFIGMAPS, "default")
        assert "via-api" in {o["metadata"]["name"] for o in listed["items"]}
        assert any(o["metadata"]["name"] == "kube-system" for o in reg.items(NAMESPACES))
        assert reg.items(PODS)  # None: every namespace

        async def first_events() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            stream = reg.watch(CONFIGMAPS, "default", listed["metadata"]["resourceVersion"])
            try:
                async for ev in stream:
                    got.append(ev)
                    if ev["object"]["metadata"]["name"] == "watched":
                        return got
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
            return got

        async def run() -> list[dict[str, Any]]:
            task = asyncio.create_task(first_events())
            await asyncio.sleep(0.3)
            await asyncio.to_thread(reg.create, CONFIGMAPS, "default", {"metadata": {"name": "watched"}})
            return await asyncio.wait_for(task, 10)

        events = asyncio.run(run())
        assert [ev["type"] for ev in events][-1] == "ADDED"
        assert events[-1]["object"]["metadata"]["name"] == "watched"
        reg.delete(CONFIGMAPS, "default", "via-api")
        assert reg.try_get(CONFIGMAPS, "default", "via-api") is None
    finally:
        reg.close()


def test_a_killed_controller_manager_is_replaced_and_carries_on(cluster: Cluster) -> None:
    assert cluster.proc is not None
    master = cluster.proc.pid
    first = wait_for(lambda: controller_manager(master), 20, what="the controller-manager process")
    os.kill(first, signal.SIGKILL)
    second = wait_for(lambda: (p := controller_manager(master)) and p != first and p, 20,
                      what="a new controller-manager process")
    assert second != first
    c = cluster.client
    c.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, "default")
    wait_for(lambda: bound(c, "web") == 5, 30, what="5 pods bound after the restart")


def test_killing_the_master_leaves_no_controller_manager(tmp_path: Path) -> None:
    c = Cluster(tmp_path, extra_args=("--no-agent",))
    c.start(wait_node=False)
    try:
        assert c.proc is not None
        child = wait_for(lambda: controller_manager(c.proc.pid), 20, what="the controller-manager process")
        os.killpg(c.proc.pid, signal.SIGKILL)
        c.proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the controller manager outlived its master"
    finally:
        c.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"https://127.0.0.1:{c.port}/readyz", verify=False, timeout=1)
