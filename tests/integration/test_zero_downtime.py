"""Zero-downtime rollouts behind a Service, on one real node (`dockyard up`).

A Deployment "web" of three busybox httpd pods (RollingUpdate maxSurge 1, maxUnavailable 0,
an httpGet readiness probe, minReadySeconds 1) sits behind the ClusterIP Service "web".
Each server answers with its version and pod name and, on SIGTERM, keeps serving for a
few seconds before it stops, so a pod that is being deleted finishes what reaches it while
the Endpoints controller and the proxies take it out of the Service.

A load generator pod (busybox `sh`) fetches `http://web/` in a loop and writes one line per
request to its log (`ok|fail <n> <unix seconds> <body or error>`), bounded by a request
count and a deadline, and a final `done sent=… ok=… fail=…` once the test asks it to stop.
While it runs: a rollout to v2 completes; a rollout to a crashing v3 is rolled back by the
controller; not one request fails. Then killing a pod's container and failing another's
readiness take them out of the Service within a probe period: no request made after that
period fails or reaches the unready pod.

All traffic stays on this host: the cluster's own bridge, its pods and its service IPs.
"""

from __future__ import annotations

import copy
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(420)]

POD = resolve("pods")
DEPLOY = resolve("deployments")
ENDPOINTS = resolve("endpoints")
BUSYBOX = "dockyard/busybox:1"
LABELS = {"app": "zd-web"}
PROBE_PERIOD = 1
# how long after a change the Service may still route to the old set: one probe period plus
# the status write, the Endpoints update and the proxy's rule rewrite
PROPAGATION = PROBE_PERIOD + 2.0

# Serve "<version> <pod name>"; on SIGTERM keep serving for 3s, then stop httpd and exit.
SERVE = (
    'mkdir -p /www && echo "$VERSION $(hostname)" > /www/index.html && echo ok > /www/ready; '
    "httpd -f -p 8080 -h /www & pid=$!; "
    "trap 'sleep 3; kill $pid; exit 0' TERM; "
    "wait $pid"
)

# One line per request, a short pause between requests (the machine is shared); stops after
# `max` requests, after `seconds`, or when /tmp/stop appears.
LOADGEN = (
    "mkdir -p /tmp; n=0; ok=0; fail=0; end=$(( $(date +%s) + {seconds} )); "
    "while [ $n -lt {max} ] && [ $(date +%s) -lt $end ] && [ ! -e /tmp/stop ]; do "
    "n=$((n+1)); "
    "if body=$(wget -O- {url} 2>/tmp/err); then ok=$((ok+1)); echo \"ok $n $(date +%s) $body\"; "
    "else fail=$((fail+1)); echo \"fail $n $(date +%s) $(tr '\\n' ' ' < /tmp/err)\"; fi; "
    "sleep {pause}; done; "
    "echo \"done sent=$n ok=$ok fail=$fail\"; "
    "exec sleep 100000"
)


def server(version: str, **extra: object) -> dict:
    return {
        "name": "httpd",
        "image": BUSYBOX,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", SERVE],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": PROBE_PERIOD,
            "failureThreshold": 1,
        },
        **extra,
    }


def template(version: str, **extra: object) -> dict:
    return {
        "metadata": {"labels": dict(LABELS)},
        "spec": {"terminationGracePeriodSeconds": 10, "containers": [server(version, **extra)]},
    }


def deployment(replicas: int = 3) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": 1,
            "progressDeadlineSeconds": 30,
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template("v1"),
        },
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"selector": dict(LABELS), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def loadgen_pod(name: str, url: str = "http://web/", max_requests: int = 20000, seconds: int = 240,
                pause: float = 0.02) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"role": "loadgen"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "restartPolicy": "Never",
            "containers": [{
                "name": "load",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", LOADGEN.format(url=url, max=max_requests, seconds=seconds, pause=pause)],
            }],
        },
    }


@dataclass
class Request:
    ok: bool
    n: int
    at: int
    text: str


@dataclass
class LoadReport:
    requests: list[Request] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    done: bool = False

    @property
    def failures(self) -> list[Request]:
        return [r for r in self.requests if not r.ok]


def parse_log(text: str) -> LoadReport:
    report = LoadReport()
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if parts[0] in ("ok", "fail") and len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            report.requests.append(Request(parts[0] == "ok", int(parts[1]), int(parts[2]),
                                           parts[3] if len(parts) > 3 else ""))
        elif line.startswith("done "):
            m = re.match(r"done sent=(\d+) ok=(\d+) fail=(\d+)", line)
            if m:
                report.sent, report.failed, report.done = int(m[1]), int(m[3]), True
    if not report.done:
        report.sent = len(report.requests)
        report.failed = len(report.failures)
    return report


def container_of(cluster: Cluster, pod: str, name: str) -> str:
    ids = cluster.containers(f"label=dockyard.io/pod-name={pod}", f"label=dockyard.io/container-name={name}")
    assert ids, f"no running container {name} in {pod}"
    return ids[0]


def sh_in(container: str, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True, text=True,
                          timeout=timeout, check=False)


def logs(cluster: Cluster, pod: str) -> LoadReport:
    r = cluster.cli("logs", pod)
    assert r.returncode == 0, r.stderr
    return parse_log(r.stdout)


@contextmanager
def load(cluster: Cluster, name: str) -> Iterator[list[LoadReport]]:
    """Run a load generator pod for the duration of the block; yields a list that holds
    its final report afterwards."""
    cluster.client.create(loadgen_pod(name), "default")
    result: list[LoadReport] = []
    try:
        wait_for(lambda: any(r.ok for r in logs(cluster, name).requests), 60, 0.3,
                 what=f"the first answer to {name}")
        yield result
        sh_in(container_of(cluster, name, "load"), "touch /tmp/stop")
        result.append(wait_for(lambda: (rep := logs(cluster, name)).done and rep, 60, 0.3,
                               what=f"{name} to finish"))
    finally:
        cluster.client.delete(POD, name, "default")


def ready_pods(cluster: Cluster) -> list[dict]:
    items = cluster.client.list(POD, "default", label_selector="app=zd-web")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (p.get("status") or {}).get("conditions") or [])]


def endpoint_names(cluster: Cluster) -> set[str]:
    ep = cluster.client.get(ENDPOINTS, "web", "default")
    return {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


def set_template(cluster: Cluster, tmpl: dict) -> None:
    dep = cluster.client.get(DEPLOY, "web", "default")
    dep["spec"]["template"] = copy.deepcopy(tmpl)
    cluster.client.replace(dep)


def complete(cluster: Cluster) -> dict | None:
    dep = cluster.client.get(DEPLOY, "web", "default")
    st = dep.get("status") or {}
    done = (st.get("observedGeneration") == dep["metadata"]["generation"] and st.get("updatedReplicas") == 3
            and st.get("availableReplicas") == 3 and st.get("replicas") == 3)
    return dep if done else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("zerodowntime"), cluster_cidr="10.218.0.0/16",
                         extra_args=("--service-cidr", "10.118.0.0/16",
                                     "--backoff-base", "0.5", "--backoff-cap", "2"))) as c:
        c.client.create(deployment(), "default")
        c.client.create(copy.deepcopy(SERVICE), "default")
        wait_for(lambda: len(endpoint_names(c)) == 3, 90, what="three ready endpoints")
        yield c


def test_rollout_and_automatic_rollback_drop_no_request(cluster: Cluster) -> None:
    with load(cluster, "loadgen-rollout") as result:
        before = {p["metadata"]["name"] for p in ready_pods(cluster)}
        t0 = time.monotonic()
        set_template(cluster, template("v2"))
        dep = wait_for(lambda: complete(cluster), 120, 0.3, what="the rollout to v2")
        rollout_s = time.monotonic() - t0
        after = {p["metadata"]["name"] for p in ready_pods(cluster)}
        assert not before & after
        time.sleep(4)  # old pods finish their grace period while the load goes on

        t1 = time.monotonic()
        set_template(cluster, template("v3", command=["sh", "-c", "echo broken; exit 1"]))

        def rolled_back() -> dict | None:
            d = complete(cluster)
            return d if d and (d["metadata"].get("annotations") or {}).get(
                "dockyard.io/rolled-back-from-revision") else None

        dep = wait_for(rolled_back, 150, 0.3, what="the automatic rollback")
        rollback_s = time.monotonic() - t1
        time.sleep(2)
    report = result[0]
    assert report.failed == 0, [f"{r.n}@{r.at}: {r.text}" for r in report.failures][:10]
    versions = [r.text.split()[0] for r in report.requests]
    assert "v1" in versions and "v2" in versions and "v3" not in versions
    assert versions[-1] == "v2"
    assert report.sent > 50, report.sent
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "v2"
    print(f"rollout {rollout_s:.1f}s, rollback {rollback_s:.1f}s, {report.sent} requests, 0 failed")


def test_killed_or_unready_pod_leaves_the_service_within_a_probe_period(cluster: Cluster) -> None:
    pods = sorted(p["metadata"]["name"] for p in ready_pods(cluster))
    assert len(pods) == 3
    killed, unready = pods[0], pods[1]
    with load(cluster, "loadgen-kill") as result:
        t_kill = int(time.time())
        subprocess.run(["docker", "kill", container_of(cluster, killed, "httpd")], check=True,
                       capture_output=True)
        time.sleep(PROPAGATION + 1)
        t_unready = int(time.time())
        sh_in(container_of(cluster, unready, "httpd"), "rm /www/ready")
        wait_for(lambda: unready not in endpoint_names(cluster), 10, 0.1, what=f"{unready} out of the endpoints")
        time.sleep(PROPAGATION + 3)
        # the killed pod's container is restarted; once Ready it serves again
        wait_for(lambda: killed in endpoint_names(cluster), 30, what=f"{killed} back in the endpoints")
        time.sleep(PROPAGATION)
    report = result[0]
    late = [r for r in report.failures if r.at > t_kill + PROPAGATION]
    assert not late, [f"{r.n}@{r.at - t_kill}s: {r.text}" for r in late][:10]
    after_unready = [r for r in report.requests if r.at > t_unready + PROPAGATION]
    assert after_unready and all(r.ok for r in after_unready)
    assert not [r for r in after_unready if unready in r.text]
    served = {r.text.split()[1] for r in after_unready if r.ok}
    assert killed in served  # back after its restart
    print(f"kill: {len(report.failures)} failed request(s) within {PROPAGATION:.0f}s, "
          f"{report.sent} requests in all")
