"""Pods end to end on the real Docker engine, without a master.

Each test drives `PodExecutor.sync` on a pod dict the way the agent does (plan, execute,
observe, status) and feeds the status back into the pod. Everything runs on a private
network and under a unique node label, so cleanup removes exactly what the tests created.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent.backoff import Backoff
from agent.images import BUSYBOX_IMAGE, ensure_images
from agent.main import PodExecutor, SyncResult
from agent.podnet import host_ifname
from agent.pods import SANDBOX_NAME
from agent.runtime import L_NODE, L_POD_IP, PAUSE_IMAGE, DockerRuntime
from tests.support.cluster import free_port
from tests.support.executor import box, converge, node_runtime

pytestmark = pytest.mark.docker

RUN_ID = uuid.uuid4().hex[:8]
NODE = f"it-{RUN_ID}"


@pytest.fixture(scope="module")
def runtime() -> Iterator[DockerRuntime]:
    with node_runtime(NODE, f"dockyard-it-{RUN_ID}") as rt:
        yield rt


def make_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": containers}
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "it", "uid": str(uuid.uuid4())},
        "spec": body,
    }


def statuses(result: SyncResult) -> dict[str, dict[str, Any]]:
    return {cs["name"]: cs for cs in result.status["containerStatuses"]}


def all_ready(result: SyncResult) -> bool:
    return result.status["phase"] == "Running" and all(cs["ready"] for cs in result.status["containerStatuses"])


def delete(ex: PodExecutor, pod: dict[str, Any]) -> None:
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    converge(ex, pod, lambda r: r.finished)


def test_images_are_built_once(runtime: DockerRuntime) -> None:
    assert runtime.image_exists(PAUSE_IMAGE) and runtime.image_exists(BUSYBOX_IMAGE)
    assert ensure_images(runtime) == []


def test_two_containers_share_localhost_and_readoption(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0), node_ip="192.0.2.10")
    web = box("web", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www")
    client = box(
        "client",
        "echo host=$(hostname); until wget -O- http://127.0.0.1:8080/ 2>/dev/null; do sleep 0.2; done; "
        "exec sleep 3600",
    )
    pod = make_pod("duo", [web, client])
    result = converge(ex, pod, all_ready)

    st = result.status
    assert st["hostIP"] == "192.0.2.10"
    assert st["podIP"] and st["podIPs"] == [{"ip": st["podIP"]}]
    assert [cs["name"] for cs in st["containerStatuses"]] == ["web", "client"]
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {"Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    observed = result.observed
    assert observed is not None
    sandbox = observed.sandbox()
    assert sandbox is not None and sandbox.ip == st["podIP"]
    assert sandbox.pod_name == "duo" and sandbox.name == SANDBOX_NAME

    client_c = observed.latest("client")
    assert client_c is not None
    deadline = time.monotonic() + 10
    while "hello-from-web" not in runtime.logs(client_c.id) and time.monotonic() < deadline:
        time.sleep(0.2)
    logs = runtime.logs(client_c.id)
    assert "hello-from-web" in logs
    assert "host=duo" in logs  # app containers see the pod's hostname

    attrs = runtime.api.inspect_container(client_c.id)
    uid8 = pod["metadata"]["uid"][:8]
    assert attrs["Name"] == f"/dy_it_duo_client_{uid8}_0"
    assert attrs["Config"]["Labels"][L_NODE] == NODE
    assert attrs["HostConfig"]["NetworkMode"] == f"container:{sandbox.id}"
    assert "no-new-privileges" in attrs["HostConfig"]["SecurityOpt"]

    # A fresh executor (agent restart) adopts the running pod without touching it.
    ids = sorted(c.id for c in observed.all())
    again = PodExecutor(runtime, Backoff(0.2, 1.0), node_ip="192.0.2.10").sync(pod)
    assert again.actions == []
    assert again.observed is not None and sorted(c.id for c in again.observed.all()) == ids
    assert again.status == st

    delete(ex, pod)
    assert runtime.observe_pod(pod["metadata"]["uid"]).all() == []


def test_sandbox_network_attachment(runtime: DockerRuntime) -> None:
    """Sandboxes get eth0 on the pod bridge from agent.podnet: distinct labelled addresses,
    /etc/hosts, pod-to-pod traffic over the bridge, addresses freed with the sandbox, and a
    sandbox that lost its link is stopped at the agent's start so the pod gets a new one."""
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    web = box("web", "mkdir -p /www && echo hi-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www")
    pods = [make_pod(f"net{i}", [dict(web)]) for i in range(2)]
    pods[0]["spec"]["hostAliases"] = [{"ip": "192.0.2.50", "hostnames": ["foo.local", "bar"]}]
    results = [converge(ex, p, all_ready) for p in pods]
    ips = [r.status["podIP"] for r in results]
    assert len(set(ips)) == 2
    bridge = runtime._bridge
    assert bridge is not None
    sandboxes = [r.observed.sandbox() for r in results if r.observed is not None]
    for sb, ip in zip(sandboxes, ips, strict=True):
        assert sb is not None and sb.ip == ip
        attrs = runtime.api.inspect_container(sb.id)
        assert attrs["Config"]["Labels"][L_POD_IP] == ip
        assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert {ip: cid for ip, cid in runtime.ipam.held().items() if ip in ips} == {
        ip: sb.id for sb, ip in zip(sandboxes, ips, strict=True) if sb is not None
    }
    web0 = results[0].observed.latest("web") if results[0].observed else None
    assert web0 is not None
    code, out = runtime.exec_probe(web0.id, ["sh", "-c", "ip -4 addr show eth0; ip route; cat /etc/hosts"], 10)
    text = out.decode()
    assert code == 0 and f"inet {ips[0]}/" in text
    assert f"default via {bridge.gateway}" in text
    assert f"{ips[0]}\tnet0" in text
    assert "192.0.2.50\tfoo.local" in text and "192.0.2.50\tbar" in text
    # pod to pod over the bridge, by IP
    code, out = runtime.exec_probe(web0.id, ["wget", "-qO-", f"http://{ips[1]}:8080/"], 15)
    assert code == 0 and out.decode().strip() == "hi-net1"

    # a lost link (the agent died between start and attach): the check stops that sandbox,
    # the pod gets a new sandbox and address
    assert sandboxes[1] is not None
    subprocess.run(["ip", "link", "del", host_ifname(sandboxes[1].id)], check=True)
    assert runtime.check_sandboxes() == [sandboxes[1].id]
    again = converge(ex, pods[1], lambda r: all_ready(r) and r.status["podIP"] not in ips)
    assert again.observed is not None and again.observed.sandbox() is not None
    assert again.observed.sandbox().id != sandboxes[1].id  # type: ignore[union-attr]
    assert runtime.check_sandboxes() == []

    for p in pods:
        delete(ex, p)
    held = runtime.ipam.held()
    assert not {*ips, again.status["podIP"]} & set(held)


def test_host_network_pod(runtime: DockerRuntime) -> None:
    """hostNetwork: the pod runs in the host's network namespace, with the node's name and
    IP; no veth, no pod address, and the sandbox check leaves it alone."""
    ex = PodExecutor(runtime, Backoff(0.2, 1.0), node_ip="127.0.0.1")
    port = free_port()
    web = box("web", f"mkdir -p /www && echo host-net > /www/index.html && exec httpd -f -p 127.0.0.1:{port} -h /www")
    pod = make_pod("hostnet", [web], hostNetwork=True)
    result = converge(ex, pod, all_ready)
    assert result.status["podIP"] == "127.0.0.1"
    sb = result.observed.sandbox() if result.observed else None
    assert sb is not None
    assert runtime.api.inspect_container(sb.id)["HostConfig"]["NetworkMode"] == "host"
    assert sb.ip not in runtime.ipam.held()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:  # the host's own loopback
        assert r.read().decode().strip() == "host-net"
    app = result.observed.latest("web") if result.observed else None
    assert app is not None
    code, out = runtime.exec_probe(app.id, ["hostname"], 10)
    assert code == 0 and out.decode().strip() == socket.gethostname()
    assert runtime.check_sandboxes() == []
    delete(ex, pod)


def test_crashing_container_restarts_with_backoff(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 0.4))
    pod = make_pod("crash", [box("c", "echo boom; exit 3")])
    seen_reasons: set[str] = set()

    def check(r: SyncResult) -> bool:
        cs = statuses(r)["c"]
        seen_reasons.update(cs["state"].get("waiting", {}).get("reason", "") for _ in [0])
        return cs["restartCount"] >= 3

    result = converge(ex, pod, check)
    assert "CrashLoopBackOff" in seen_reasons
    assert result.status["phase"] == "Running"  # Always: restarting
    result = converge(ex, pod, lambda r: "waiting" in statuses(r)["c"]["state"])
    cs = statuses(result)["c"]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["ready"] is False
    # Old attempts are garbage collected: at most the two newest per container.
    assert result.observed is not None and len(result.observed.attempts("c")) <= 2
    delete(ex, pod)


def test_never_policy_completes_and_init_containers_run_first(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    pod = make_pod(
        "job",
        [box("main", "exit 0")],
        restartPolicy="Never",
        initContainers=[box("init1", "exit 0"), box("init2", "exit 0")],
    )
    result = converge(ex, pod, lambda r: r.status["phase"] == "Succeeded")
    init = {cs["name"]: cs for cs in result.status["initContainerStatuses"]}
    assert init["init1"]["state"]["terminated"]["reason"] == "Completed"
    assert init["init2"]["state"]["terminated"]["reason"] == "Completed"
    main = statuses(result)["main"]["state"]["terminated"]
    assert main["exitCode"] == 0
    assert init["init2"]["state"]["terminated"]["finishedAt"] <= main["startedAt"]
    # The sandbox is stopped once the pod is done, and nothing restarts.
    result = converge(ex, pod, lambda r: r.observed is not None and not r.observed.sandbox().running)
    assert ex.sync(pod).actions == []
    delete(ex, pod)


def test_failed_never_pod(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    pod = make_pod("fail", [box("main", "exit 7")], restartPolicy="Never")
    result = converge(ex, pod, lambda r: r.status["phase"] == "Failed")
    assert statuses(result)["main"]["state"]["terminated"]["exitCode"] == 7
    delete(ex, pod)


def test_image_errors(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(5.0, 10.0))
    pod = make_pod(
        "img",
        [
            {"name": "never", "image": "dockyard/absent:1", "imagePullPolicy": "Never"},
            {"name": "pull", "image": "dockyard/absent:1"},
        ],
    )
    first = converge(ex, pod, lambda r: True)
    st = statuses(first)
    assert st["never"]["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    assert st["pull"]["state"]["waiting"]["reason"] == "ErrImagePull"
    assert first.status["phase"] == "Pending"
    time.sleep(0.05)
    second = converge(ex, pod, lambda r: True)
    assert statuses(second)["pull"]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert second.actions == []  # backing off
    delete(ex, pod)


def test_spec_change_replaces_container(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    pod = make_pod("chg", [box("c", "exec sleep 3600")])
    result = converge(ex, pod, all_ready)
    old = statuses(result)["c"]["containerID"]
    pod["spec"]["containers"][0]["env"] = [{"name": "X", "value": "1"}]
    result = converge(ex, pod, lambda r: all_ready(r) and statuses(r)["c"]["containerID"] != old)
    assert statuses(result)["c"]["restartCount"] == 1
    delete(ex, pod)


def test_dead_sandbox_is_recreated(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    pod = make_pod("sbx", [box("c", "exec sleep 3600")])
    result = converge(ex, pod, all_ready)
    assert result.observed is not None
    sb = result.observed.sandbox()
    assert sb is not None
    runtime.stop(sb.id, 0)
    result = converge(
        ex, pod, lambda r: all_ready(r) and r.observed is not None and r.observed.sandbox().id != sb.id
    )
    assert statuses(result)["c"]["restartCount"] == 1
    assert result.observed is not None and result.observed.sandbox().restart_count == 1
    delete(ex, pod)


def test_orphans_are_removed(runtime: DockerRuntime) -> None:
    ex = PodExecutor(runtime, Backoff(0.2, 1.0))
    pod = make_pod("orphan", [box("c", "exec sleep 3600")])
    converge(ex, pod, all_ready)
    observed = runtime.observe_all()[pod["metadata"]["uid"]]
    ex.remove_orphan(observed, grace=0)
    assert runtime.observe_pod(pod["metadata"]["uid"]).all() == []
