"""Rollouts on a real cluster: automatic rollback, `dockyard rollout …` and its exit codes.

The tests of this module share one cluster (short restart back-off) and one Deployment
"web" and run in order, like a user's session: roll out v1; roll out a crashing v2, which
is rolled back while v1's pods keep answering HTTP; a slow v3 on which `rollout status`
times out, then completes; `rollout history`; `rollout undo --to-revision`; restart,
pause and resume.
"""

from __future__ import annotations

import copy
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for

pytestmark = pytest.mark.docker

POD = resolve("pods")
DEPLOY = resolve("deployments")
RS = resolve("replicasets")
EVENT = resolve("events")
LABELS = {"app": "roll-web"}


def container(version: str, **extra: object) -> dict:
    return {
        "name": "web",
        "image": "dockyard/demo-web:1",
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1},
        **extra,
    }


def template(version: str, **extra: object) -> dict:
    return {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [container(version, **extra)]}}


WEB = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "replicas": 2,
        "progressDeadlineSeconds": 15,
        "selector": {"matchLabels": dict(LABELS)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": template("1"),
    },
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("rollout"), cluster_cidr="10.215.0.0/16",
                extra_args=("--backoff-base", "0.5", "--backoff-cap", "2"))) as c:
        yield c


def set_template(cluster: Cluster, tmpl: dict, cause: str | None = None) -> None:
    dep = cluster.client.get(DEPLOY, "web", "default")
    dep["spec"]["template"] = copy.deepcopy(tmpl)
    if cause:
        dep["metadata"].setdefault("annotations", {})["kubernetes.io/change-cause"] = cause
    cluster.client.replace(dep)


def ready_pods(client: Client) -> list[dict]:
    items = client.list(POD, "default", label_selector="app=roll-web")["items"]
    return [
        p for p in items
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("podIP")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
    ]


def http_get(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:80/", timeout=3) as r:
        return r.read().decode()


def serving_versions(cluster: Cluster) -> set[str]:
    out = set()
    for p in ready_pods(cluster.client):
        page = http_get(p["status"]["podIP"])
        out.add(page.rsplit("version", 1)[1].split("<")[0].strip())
    return out


class Prober(threading.Thread):
    """Keeps asking every Ready pod for its page; records each failure."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(daemon=True)
        self.client = Client.from_kubeconfig(str(kubeconfig))
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                pods = ready_pods(self.client)
            except Exception as e:  # the API is not under test here
                self.failures.append(f"list: {e}")
                continue
            if not pods:
                self.failures.append("no Ready pod")
            for p in pods:
                try:
                    http_get(p["status"]["podIP"])
                    self.ok += 1
                except OSError as e:
                    self.failures.append(f"{p['metadata']['name']}: {e}")
            time.sleep(0.2)
        self.client.close()


def test_first_rollout_status_succeeds(cluster: Cluster) -> None:
    cluster.client.create(copy.deepcopy(WEB))
    r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert serving_versions(cluster) == {"1"}
    dep = cluster.client.get(DEPLOY, "web", "default")
    assert wait_for(lambda: cluster.client.get(DEPLOY, "web", "default")["metadata"]["annotations"]
                    .get("dockyard.io/last-good-revision") == "1", 20, what="last good revision 1")
    assert dep["metadata"]["generation"] == 1


def test_crashing_rollout_is_rolled_back_while_v1_keeps_serving(cluster: Cluster) -> None:
    prober = Prober(cluster.kubeconfig)
    prober.start()
    try:
        time.sleep(1)
        set_template(cluster, template("2", command=["sh", "-c", "echo broken; exit 1"]), cause="crashing v2")
        r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
        assert r.returncode == 1
        assert r.stderr.strip() == 'error: deployment "web" was rolled back to revision 1'
        dep = wait_for(lambda: (d := cluster.client.get(DEPLOY, "web", "default"))["metadata"]["generation"]
                       == d["status"].get("observedGeneration") and d["status"].get("availableReplicas") == 2
                       and d["status"].get("replicas") == 2 and d, 60, what="the rollback to finish")
        time.sleep(2)
    finally:
        prober.stop.set()
        prober.join(10)
    assert prober.failures == [], prober.failures[:5]
    assert prober.ok > 10
    assert dep["spec"]["template"]["spec"]["containers"][0].get("command") is None
    progressing = next(c for c in dep["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolledBack")
    ann = dep["metadata"]["annotations"]
    assert (ann["dockyard.io/rolled-back-from-revision"], ann["dockyard.io/rolled-back-to-revision"]) == ("2", "1")
    assert serving_versions(cluster) == {"1"}
    events = cluster.client.list(EVENT, "default")["items"]
    mine = [(e["type"], e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == "web"]
    assert any(t == "Warning" and reason == "RolloutFailed" for t, reason, _ in mine), mine
    assert ("Normal", "DeploymentRollback", 'Rolled back deployment "web" to revision 1') in mine
    # no loop: the controller leaves it there
    time.sleep(3)
    again = cluster.client.get(DEPLOY, "web", "default")
    assert again["metadata"]["generation"] == dep["metadata"]["generation"]
    rss = cluster.client.list(RS, "default", label_selector="app=roll-web")["items"]
    assert len(rss) == 2


def test_rollout_status_times_out_then_succeeds(cluster: Cluster) -> None:
    slow = template("3")
    slow["spec"]["containers"][0]["readinessProbe"]["initialDelaySeconds"] = 6
    set_template(cluster, slow, cause="slow v3")
    r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "2s", timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == "error: timed out waiting for the condition"
    assert "Waiting for" in r.stdout
    r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    assert r.returncode == 0, r.stderr
    assert serving_versions(cluster) == {"3"}


def test_history_lists_revisions(cluster: Cluster) -> None:
    r = cluster.cli("rollout", "history", "deployment/web")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "deployment.apps/web"
    rows = [line.split(None, 1) for line in lines[2:]]
    assert lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    # revision 1 (v1) became 3 when it was rolled back to
    assert rows == [["2", "crashing v2"], ["3", "<none>"], ["4", "slow v3"]]
    r = cluster.cli("rollout", "history", "deployment/web", "--revision", "2")
    assert r.returncode == 0 and "echo broken" in r.stdout and "pod-template-hash" not in r.stdout
    r = cluster.cli("rollout", "history", "deployment/web", "--revision", "9")
    assert r.returncode == 1 and r.stderr.startswith("error: unable to find")


def test_undo_to_revision(cluster: Cluster) -> None:
    before = {rs["metadata"]["name"] for rs in cluster.client.list(RS, "default")["items"]}
    r = cluster.cli("rollout", "undo", "deployment/web", "--to-revision", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deployment.apps/web rolled back"
    r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    assert r.returncode == 0, r.stderr
    assert serving_versions(cluster) == {"1"}
    after = {rs["metadata"]["name"] for rs in cluster.client.list(RS, "default")["items"]}
    assert after == before  # the old ReplicaSet was reused, not a new one made
    r = cluster.cli("rollout", "undo", "deployment/web", "--to-revision", "5")
    assert r.returncode == 0 and "skipped rollback" in r.stdout


def test_restart_pause_resume(cluster: Cluster) -> None:
    r = cluster.cli("rollout", "pause", "deployment/web")
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web paused", r.stderr
    r = cluster.cli("rollout", "pause", "deployment/web")
    assert r.returncode == 1 and "already paused" in r.stderr
    r = cluster.cli("rollout", "restart", "deployment/web")
    assert r.returncode == 1 and "paused" in r.stderr
    r = cluster.cli("rollout", "resume", "deployment/web")
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web resumed", r.stderr
    r = cluster.cli("rollout", "restart", "deploy", "web")
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web restarted", r.stderr
    r = cluster.cli("rollout", "status", "deployment/web", "--timeout", "120s", timeout=150)
    assert r.returncode == 0, r.stderr
    dep = cluster.client.get(DEPLOY, "web", "default")
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "6"
