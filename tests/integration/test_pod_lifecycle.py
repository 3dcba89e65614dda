"""The full pod lifecycle on the real Docker engine, driven through `PodExecutor` (no master).

Probes, volumes, env resolution, restarts, OOM and graceful termination. ConfigMaps and
Secrets come from an in-memory `StaticConfigSource`; pod volumes live under a temporary
data dir. Everything runs on a private network under a unique node label, and every
container and mount is removed at the end.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.backoff import Backoff
from agent.env import StaticConfigSource
from agent.main import PodExecutor, SyncResult
from agent.runtime import DockerRuntime
from agent.volumes import HostMounter
from tests.support.executor import box, converge, node_runtime

pytestmark = pytest.mark.docker

RUN_ID = uuid.uuid4().hex[:8]
NODE = f"lc-{RUN_ID}"


@pytest.fixture(scope="module")
def runtime() -> Iterator[DockerRuntime]:
    with node_runtime(NODE, f"dockyard-lc-{RUN_ID}") as rt:
        yield rt


@pytest.fixture
def source() -> StaticConfigSource:
    return StaticConfigSource()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "agent"
    yield d
    mounter = HostMounter()
    for mp in sorted(mounter.mounts_under(d), key=lambda p: len(str(p)), reverse=True):
        mounter.unmount(mp)


@pytest.fixture
def ex(runtime: DockerRuntime, source: StaticConfigSource, data_dir: Path) -> Iterator[PodExecutor]:
    executor = PodExecutor(
        runtime, Backoff(0.3, 5.0), node_ip="192.0.2.10", config_source=source, data_dir=data_dir
    )
    executor.volumes.refresh_every = 0.2
    yield executor
    executor.close()
    for uid, observed in runtime.observe_all().items():
        executor.kill_pod(observed, 0)
        executor.volumes.teardown(uid)


def make_pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": containers}
    body.update(spec)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "lc", "uid": str(uuid.uuid4()), "labels": {"app": name}},
        "spec": body,
    }


def cstatus(result: SyncResult, name: str) -> dict[str, Any]:
    return next(cs for cs in result.status["containerStatuses"] if cs["name"] == name)


def conditions(result: SyncResult) -> dict[str, str]:
    return {c["type"]: c["status"] for c in result.status["conditions"]}


def running(result: SyncResult) -> bool:
    return result.status["phase"] == "Running" and all(
        "running" in cs["state"] for cs in result.status["containerStatuses"]
    )


def all_ready(result: SyncResult) -> bool:
    return running(result) and all(cs["ready"] for cs in result.status["containerStatuses"])


def cid(result: SyncResult, name: str) -> str:
    assert result.observed is not None
    latest = result.observed.latest(name)
    assert latest is not None
    return latest.id


def sh(runtime: DockerRuntime, container: str, script: str) -> str:
    code, out = runtime.exec_probe(container, ["sh", "-c", script], 10)
    assert code == 0, out
    return out.decode()


def delete(ex: PodExecutor, pod: dict[str, Any], timeout: float = 30.0) -> None:
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    converge(ex, pod, lambda r: r.finished, timeout)


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


# -- tests ----------------------------------------------------------------------------------


def test_sidecar_localhost_and_shared_empty_dirs(ex: PodExecutor, runtime: DockerRuntime) -> None:
    web = box(
        "web",
        "until [ -f /www/index.html ]; do sleep 0.1; done; exec httpd -f -p 8080 -h /www",
        volumeMounts=[{"name": "www", "mountPath": "/www"}, {"name": "mem", "mountPath": "/mem"}],
    )
    side = box(
        "side",
        "echo from-sidecar > /content/index.html; echo shared > /mem/x; "
        "until wget -O- http://127.0.0.1:8080/ > /content/fetched 2>/dev/null; do sleep 0.2; done; "
        "exec sleep 3600",
        volumeMounts=[{"name": "www", "mountPath": "/content"}, {"name": "mem", "mountPath": "/mem"}],
    )
    pod = make_pod(
        "duo", [web, side], volumes=[{"name": "www", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}}]
    )
    uid = pod["metadata"]["uid"]
    result = converge(ex, pod, all_ready)
    web_id = cid(result, "web")
    wait_for(lambda: "from-sidecar" in sh(runtime, web_id, "cat /www/fetched 2>/dev/null || true"))
    assert sh(runtime, web_id, "cat /mem/x").strip() == "shared"  # Memory emptyDir shared too
    mounts = sh(runtime, web_id, "cat /proc/mounts")
    assert any(line.split()[1] == "/mem" and line.split()[2] == "tmpfs" for line in mounts.splitlines())
    host_mem = ex.volumes.volume_dir(uid, "mem")
    assert os.path.ismount(host_mem)
    assert (ex.volumes.volume_dir(uid, "www") / "index.html").read_text() == "from-sidecar\n"
    delete(ex, pod)
    assert not os.path.ismount(host_mem)
    assert not ex.volumes.pod_dir(uid).exists()


def test_init_containers_run_in_order(ex: PodExecutor, runtime: DockerRuntime) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    pod = make_pod(
        "init",
        [box("main", "cat /work/log; exec sleep 3600", volumeMounts=mount)],
        initContainers=[
            box("first", "sleep 0.5; echo first >> /work/log", volumeMounts=mount),
            box("second", "echo second >> /work/log", volumeMounts=mount),
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    seen_pending = False

    def check(r: SyncResult) -> bool:
        nonlocal seen_pending
        if cstatus(r, "main")["state"].get("waiting", {}).get("reason") == "PodInitializing":
            seen_pending = True
        return running(r)

    result = converge(ex, pod, check)
    assert seen_pending
    main_id = cid(result, "main")
    wait_for(lambda: "second" in runtime.logs(main_id))
    assert runtime.logs(main_id).split() == ["first", "second"]
    inits = {cs["name"]: cs for cs in result.status["initContainerStatuses"]}
    assert inits["first"]["state"]["terminated"]["finishedAt"] <= inits["second"]["state"]["terminated"]["startedAt"]
    delete(ex, pod)


def test_liveness_failure_restarts_the_container(ex: PodExecutor) -> None:
    c = box(
        "app",
        "mkdir -p /tmp; touch /tmp/alive; (sleep 2; rm /tmp/alive) & exec sleep 3600",
        livenessProbe={"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2},
    )
    pod = make_pod("live", [c])
    first = converge(ex, pod, running)
    first_id = cid(first, "app")
    result = converge(ex, pod, lambda r: cstatus(r, "app")["restartCount"] >= 1 and running(r), timeout=30)
    cs = cstatus(result, "app")
    assert cs["containerID"] != f"docker://{first_id}"
    last = cs["lastState"]["terminated"]
    assert last["reason"] == "Error" and last["exitCode"] == 137  # sleep as PID 1 ignores TERM
    assert last["message"] == "Container app failed liveness probe, will be restarted"
    assert ex.runtime.observe_pod(pod["metadata"]["uid"]).previous("app").ran_for >= 2.0  # was alive first
    assert ex.probe_kills >= 1
    delete(ex, pod)


def test_readiness_gates_ready(ex: PodExecutor, runtime: DockerRuntime) -> None:
    c = box(
        "web",
        "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www",
        ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"path": "/ready.html", "port": "http"}, "periodSeconds": 1},
    )
    tcp = box("tcp", "exec httpd -f -p 9090 -h /", readinessProbe={"tcpSocket": {"port": 9090}, "periodSeconds": 1})
    pod = make_pod("ready", [c, tcp])
    result = converge(ex, pod, lambda r: running(r) and cstatus(r, "tcp")["ready"])
    assert cstatus(result, "web")["ready"] is False
    assert conditions(result)["Ready"] == "False" and conditions(result)["ContainersReady"] == "False"
    web_id = cid(result, "web")
    sh(runtime, web_id, "echo ok > /www/ready.html")
    t0 = time.monotonic()
    result = converge(ex, pod, all_ready, timeout=5)
    assert time.monotonic() - t0 < 2.5  # within about one period
    assert conditions(result)["Ready"] == "True" and conditions(result)["ContainersReady"] == "True"
    sh(runtime, web_id, "rm /www/ready.html")
    result = converge(ex, pod, lambda r: not cstatus(r, "web")["ready"], timeout=5)
    assert conditions(result)["Ready"] == "False"
    assert cstatus(result, "web")["restartCount"] == 0  # readiness never restarts
    delete(ex, pod)


def test_startup_probe_gates_liveness_and_readiness(ex: PodExecutor, runtime: DockerRuntime) -> None:
    c = box(
        "slow",
        "mkdir -p /tmp; sleep 2; touch /tmp/started; exec sleep 3600",
        startupProbe={"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 10},
        livenessProbe={"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 1},
    )
    pod = make_pod("startup", [c])
    result = converge(ex, pod, running)
    cs = cstatus(result, "slow")
    assert cs["started"] is False and cs["ready"] is False
    result = converge(ex, pod, lambda r: cstatus(r, "slow")["ready"], timeout=10)
    assert cstatus(result, "slow")["started"] is True and cstatus(result, "slow")["restartCount"] == 0
    delete(ex, pod)


def test_crash_loop_backoff_grows(ex: PodExecutor) -> None:
    pod = make_pod("crash", [box("c", "exit 1")])
    starts: dict[str, float] = {}
    reasons: set[str] = set()

    def check(r: SyncResult) -> bool:
        assert r.observed is not None
        for a in r.observed.attempts("c"):
            if a.started_at:
                starts.setdefault(a.id, a.started_at)
        reasons.add(cstatus(r, "c")["state"].get("waiting", {}).get("reason", ""))
        return len(starts) >= 5

    converge(ex, pod, check, timeout=30)
    times = sorted(starts.values())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # First restart at once, then base 0.3 s doubling: 0.3, 0.6, 1.2 (plus run time).
    assert gaps[1] >= 0.3 and gaps[2] >= 0.6 and gaps[3] >= 1.2, gaps
    assert gaps[3] > gaps[2] > gaps[1], gaps
    assert "CrashLoopBackOff" in reasons
    delete(ex, pod)


def test_oom_killed(ex: PodExecutor) -> None:
    c = box(
        "hog",
        'x=$(head -c 64000000 /dev/zero | tr "\\0" a); echo survived',
        resources={"limits": {"memory": "8Mi"}},
    )
    pod = make_pod("oom", [c], restartPolicy="Never")
    result = converge(ex, pod, lambda r: r.status["phase"] in ("Failed", "Succeeded"), timeout=30)
    term = cstatus(result, "hog")["state"]["terminated"]
    assert term["reason"] == "OOMKilled", term
    assert term["exitCode"] == 137
    assert result.status["phase"] == "Failed"
    delete(ex, pod)


def test_secret_on_tmpfs_and_config_map_updates(
    ex: PodExecutor, runtime: DockerRuntime, source: StaticConfigSource
) -> None:
    source.config_maps[("lc", "conf")] = {"data": {"app.conf": "v1", "other": "x"}}
    source.secrets[("lc", "creds")] = {"data": {"password": base64.b64encode(b"s3cret").decode()}}
    c = box(
        "app",
        "exec sleep 3600",
        volumeMounts=[
            {"name": "conf", "mountPath": "/etc/app"},
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "conf", "mountPath": "/etc/single.conf", "subPath": "app.conf"},
        ],
    )
    pod = make_pod(
        "cfg",
        [c],
        volumes=[
            {"name": "conf", "configMap": {"name": "conf"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                         "items": [{"key": "password", "path": "db/password"}]}},
        ],
    )
    result = converge(ex, pod, running)
    app = cid(result, "app")
    assert sh(runtime, app, "cat /etc/creds/db/password") == "s3cret"
    assert sh(runtime, app, "stat -c %a /etc/creds/..data/db/password").strip() == "400"
    mounts = {line.split()[1]: line.split() for line in sh(runtime, app, "cat /proc/mounts").splitlines()}
    assert mounts["/etc/creds"][2] == "tmpfs"
    assert mounts["/etc/creds"][3].startswith("ro")  # secret and configMap volumes are read-only
    assert mounts["/etc/app"][3].startswith("ro")
    assert os.path.ismount(ex.volumes.volume_dir(pod["metadata"]["uid"], "creds"))
    assert sh(runtime, app, "cat /etc/app/app.conf") == "v1"
    assert sh(runtime, app, "cat /etc/single.conf") == "v1"

    source.config_maps[("lc", "conf")] = {"data": {"app.conf": "v2"}}
    t0 = time.monotonic()
    while sh(runtime, app, "cat /etc/app/app.conf") != "v2":
        assert time.monotonic() - t0 < 10, "configMap update not propagated"
        ex.sync(pod)
        time.sleep(0.2)
    assert sh(runtime, app, "ls /etc/app").split() == ["app.conf"]  # removed key is gone
    assert sh(runtime, app, "cat /etc/single.conf") == "v1"  # subPath mounts do not update
    assert cstatus(ex.sync(pod), "app")["restartCount"] == 0
    delete(ex, pod)


def test_missing_config_map_volume_waits(ex: PodExecutor) -> None:
    c = box("app", "exec sleep 3600", volumeMounts=[{"name": "conf", "mountPath": "/etc/app"}])
    pod = make_pod("nocfg", [c], volumes=[{"name": "conf", "configMap": {"name": "absent"}}])
    result = converge(ex, pod, lambda r: "waiting" in cstatus(r, "app")["state"])
    w = cstatus(result, "app")["state"]["waiting"]
    assert w["reason"] == "ContainerCreating"
    assert 'configmap "absent" not found' in w["message"]
    delete(ex, pod)


def test_env_from_config_map_secret_and_fields(
    ex: PodExecutor, runtime: DockerRuntime, source: StaticConfigSource
) -> None:
    source.config_maps[("lc", "settings")] = {"data": {"MODE": "fast", "level": "3"}}
    source.secrets[("lc", "token")] = {"data": {"value": base64.b64encode(b"t0k3n").decode()}}
    c = box(
        "app",
        'echo "$0 mode=$MODE cfg_level=$CFG_level tok=$TOKEN pod=$POD_NAME ns=$POD_NS '
        'uid=$POD_UID app=$APP node=$NODE ip=$POD_IP host=$HOST_IP mem=$MEM_MI"; exec sleep 3600',
        envFrom=[{"configMapRef": {"name": "settings"}}, {"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
        env=[
            {"name": "NAME", "value": "world"},
            {"name": "GREETING", "value": "hello-$(NAME)-$$(NAME)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "value"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ],
        resources={"limits": {"memory": "64Mi"}},
    )
    c["command"].append("$(GREETING)")  # expanded by the agent, then passed to sh as $0
    pod = make_pod("env", [c])
    result = converge(ex, pod, running)
    app = cid(result, "app")
    wait_for(lambda: "mode=" in runtime.logs(app))
    line = runtime.logs(app).strip()
    uid = pod["metadata"]["uid"]
    assert line == (
        f"hello-world-$(NAME) mode=fast cfg_level=3 tok=t0k3n pod=env ns=lc uid={uid} app=env "
        f"node={NODE} ip={result.status['podIP']} host=192.0.2.10 mem=64"
    )
    env = dict(x.split("=", 1) for x in runtime.api.inspect_container(app)["Config"]["Env"])
    assert "OPT" not in env

    # A required key that does not exist: CreateContainerConfigError naming it.
    bad = box("bad", "exec sleep 3600", env=[
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}
    ])
    pod2 = make_pod("badenv", [bad])
    result = converge(ex, pod2, lambda r: "waiting" in cstatus(r, "bad")["state"])
    w = cstatus(result, "bad")["state"]["waiting"]
    assert w["reason"] == "CreateContainerConfigError"
    assert "nope" in w["message"] and "settings" in w["message"]
    source.config_maps[("lc", "settings")]["data"]["nope"] = "found"
    converge(ex, pod2, running, timeout=15)
    delete(ex, pod)
    delete(ex, pod2)


def test_security_context(ex: PodExecutor, runtime: DockerRuntime) -> None:
    c = box(
        "app",
        "id -u; id -g; pwd; touch /root-write 2>/dev/null && echo rw || echo ro; exec sleep 3600",
        workingDir="/tmp",
        securityContext={
            "runAsUser": 1000,
            "runAsGroup": 2000,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
    )
    pod = make_pod("sec", [c])
    result = converge(ex, pod, running)
    app = cid(result, "app")
    wait_for(lambda: len(runtime.logs(app).split()) >= 4)
    assert runtime.logs(app).split() == ["1000", "2000", "/tmp", "ro"]
    hc = runtime.api.inspect_container(app)["HostConfig"]
    assert hc["ReadonlyRootfs"] is True and hc["Privileged"] is False
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["NET_BIND_SERVICE"]
    delete(ex, pod)


def test_graceful_termination_honours_grace(ex: PodExecutor, runtime: DockerRuntime) -> None:
    polite = box("polite", "trap 'sleep 1.5; exit 0' TERM; while :; do sleep 0.1; done")
    pod = make_pod("grace", [polite], terminationGracePeriodSeconds=10)
    result = converge(ex, pod, running)
    assert result.observed is not None
    t0 = time.monotonic()
    delete(ex, pod)
    took = time.monotonic() - t0
    assert 1.4 <= took < 8, took  # waited for the handler, did not need the whole grace

    stubborn = box("stubborn", "exec sleep 3600")  # PID 1 without a TERM handler ignores TERM
    pod = make_pod("stubborn", [stubborn], terminationGracePeriodSeconds=2)
    converge(ex, pod, running)
    t0 = time.monotonic()
    delete(ex, pod)
    took = time.monotonic() - t0
    assert 1.9 <= took < 8, took  # killed once the grace ran out


def test_pre_stop_hook_runs_before_the_container_stops(ex: PodExecutor, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    c = box("app", "trap 'echo term >> /shared/order; exit 0' TERM; while :; do sleep 0.1; done",
            volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
            lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /shared/order; sleep 1"]}}})
    pod = make_pod("hook", [c], terminationGracePeriodSeconds=10,
                   volumes=[{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}])
    converge(ex, pod, running)
    delete(ex, pod)
    assert (shared / "order").read_text().split() == ["prestop", "term"]  # hook first, then SIGTERM


def test_post_start_hook_runs_and_a_failing_one_restarts_the_container(ex: PodExecutor, tmp_path: Path) -> None:
    shared = tmp_path / "poststart"
    shared.mkdir()
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    volumes = [{"name": "shared", "hostPath": {"path": str(shared), "type": "Directory"}}]
    good = box("app", "exec sleep 3600", **mount,
               lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "hostname > /shared/started"]}}})
    pod = make_pod("poststart", [good], terminationGracePeriodSeconds=1, volumes=volumes)
    converge(ex, pod, running)
    assert (shared / "started").read_text().strip() == "poststart"  # done by the time the pod runs
    delete(ex, pod)

    bad = box("bad", "exec sleep 3600", lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}})
    pod = make_pod("poststart-bad", [bad], terminationGracePeriodSeconds=1)
    result = converge(ex, pod, lambda r: cstatus(r, "bad")["restartCount"] >= 1, timeout=40)
    last = cstatus(result, "bad")["lastState"]["terminated"]
    assert "PostStartHookError" in last.get("message", ""), last
    delete(ex, pod)
