"""A real single-node cluster: `dockyard up`, the CLI, the Docker engine, HTTPS and real HTTP to pods.

The tests of this module share one cluster and run in order (a user's session): apply the
demo Deployment, reach its pods, scale, replace a deleted pod, roll the template, survive
`kill -9` of the master, delete and garbage-collect.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, wait_for

pytestmark = pytest.mark.docker

POD = resolve("pods")
DEPLOY = resolve("deployments")
RS = resolve("replicasets")
CM = resolve("configmaps")
WEB = ROOT / "deploy/examples/web.yaml"


def web_pods(cluster: Cluster) -> list[dict]:
    items = cluster.client.list(POD, "default", label_selector="app=web")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running_ready(cluster: Cluster, n: int) -> list[dict] | None:
    pods = web_pods(cluster)
    ok = [p for p in pods if p.get("status", {}).get("phase") == "Running" and p["status"].get("podIP")]
    dep = cluster.client.get(DEPLOY, "web", "default")
    if len(pods) == n and len(ok) == n and dep.get("status", {}).get("readyReplicas", 0) == n:
        return ok
    return None


def http_get(ip: str, port: int = 80) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as r:
        return r.read().decode()


def test_apply_runs_three_real_containers(cluster: Cluster) -> None:
    r = cluster.cli("apply", "-f", str(WEB))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deployment.apps/web created"
    pods = wait_for(lambda: running_ready(cluster, 3), 90, what="3 running web pods")
    for p in pods:
        assert p["spec"]["nodeName"] == cluster.node_name
        page = http_get(p["status"]["podIP"])
        assert f"pod {p['metadata']['name']} version 1" in page
    # the containers really exist, labelled with their pod
    ids = cluster.containers("label=dockyard.io/container-name=web")
    assert len(ids) == 3
    # apply again: nothing changes
    r = cluster.cli("apply", "-f", str(WEB))
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web unchanged", r.stdout + r.stderr


def test_get_tables_and_formats(cluster: Cluster) -> None:
    r = cluster.cli("get", "pods")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert len(rows) == 3 and all(row[1] == "1/1" and row[2] == "Running" for row in rows)
    wide = cluster.cli("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["IP", "NODE"] and all(cluster.node_name in line for line in wide[1:])
    out = json.loads(cluster.cli("get", "deploy", "web", "-o", "json").stdout)
    assert out["kind"] == "Deployment" and out["status"]["readyReplicas"] == 3
    assert out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    allns = cluster.cli("get", "pods", "-A").stdout.splitlines()
    assert allns[0].split()[0] == "NAMESPACE"
    assert cluster.cli("get", "pods", "-l", "app=nothing").stdout.strip() == ""
    nodes = cluster.cli("get", "nodes").stdout
    assert cluster.node_name in nodes and "Ready" in nodes
    desc = cluster.cli("describe", "deployment", "web")
    assert desc.returncode == 0 and "ScalingReplicaSet" in desc.stdout


def test_scale_3_5_1_3(cluster: Cluster) -> None:
    r = cluster.cli("scale", "deployment/web", "--replicas", "5")
    assert r.returncode == 0 and "scaled" in r.stdout, r.stderr
    pods = wait_for(lambda: running_ready(cluster, 5), 90, what="5 web pods")
    assert all("version 1" in http_get(p["status"]["podIP"]) for p in pods)
    assert len(cluster.containers("label=dockyard.io/container-name=web")) == 5
    r = cluster.cli("scale", "deployment/web", "--replicas", "1")
    assert r.returncode == 0 and "scaled" in r.stdout, r.stderr
    wait_for(lambda: running_ready(cluster, 1), 60, what="1 web pod")
    wait_for(lambda: len(cluster.containers("label=dockyard.io/container-name=web")) == 1, 60,
             what="extra containers removed")
    r = cluster.cli("scale", "deployment", "web", "--replicas", "3")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: running_ready(cluster, 3), 90, what="3 web pods again")


def test_deleted_pod_is_replaced_and_its_containers_removed(cluster: Cluster) -> None:
    victim = web_pods(cluster)[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    r = cluster.cli("delete", "pod", name)
    assert r.returncode == 0 and f'pod "{name}" deleted' in r.stdout, r.stderr
    pods = wait_for(lambda: (lambda ps: ps if ps and name not in [p["metadata"]["name"] for p in ps] else None)(
        running_ready(cluster, 3)), 90, what="a replacement pod")
    assert uid not in [p["metadata"]["uid"] for p in pods]
    wait_for(lambda: not cluster.containers(f"label=dockyard.io/pod-uid={uid}"), 60,
             what="the deleted pod's containers to go")


def test_container_removed_behind_our_back_is_replaced(cluster: Cluster) -> None:
    pod = web_pods(cluster)[0]
    uid = pod["metadata"]["uid"]
    old = cluster.containers(f"label=dockyard.io/pod-uid={uid}", "label=dockyard.io/container-name=web")
    assert len(old) == 1
    subprocess.run(["docker", "rm", "-f", old[0]], check=True, capture_output=True)

    def replaced() -> list[str]:
        new = cluster.containers(f"label=dockyard.io/pod-uid={uid}", "label=dockyard.io/container-name=web")
        return new if new and new != old else []

    wait_for(replaced, 60, what="the removed container to be recreated")
    p = wait_for(lambda: (lambda q: q if q["status"].get("phase") == "Running" and all(
        c.get("ready") for c in q["status"].get("containerStatuses", [])) else None)(
        cluster.client.get(POD, pod["metadata"]["name"], "default")), 60, what="the pod Ready again")
    assert p["metadata"]["uid"] == uid  # the same pod, its container restarted
    assert "version 1" in http_get(p["status"]["podIP"])
    wait_for(lambda: running_ready(cluster, 3), 60, what="3 web pods")


def test_template_change_rolls_to_a_new_replicaset(cluster: Cluster, tmp_path: Path) -> None:
    v2 = WEB.read_text().replace('value: "1"', 'value: "2"')
    f = tmp_path / "web-v2.yaml"
    f.write_text(v2)
    r = cluster.cli("apply", "-f", str(f))
    assert r.returncode == 0 and r.stdout.strip() == "deployment.apps/web configured", r.stderr

    def rolled() -> list[dict] | None:
        pods = running_ready(cluster, 3)
        if not pods:
            return None
        if all(c["env"][0]["value"] == "2" for p in pods for c in p["spec"]["containers"]):
            return pods
        return None

    pods = wait_for(rolled, 120, what="3 pods of the new template")
    assert all("version 2" in http_get(p["status"]["podIP"]) for p in pods)
    rss = cluster.client.list(RS, "default", label_selector="app=web")["items"]
    revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in rss)
    assert revisions == ["1", "2"]
    assert {rs["spec"]["replicas"] for rs in rss} == {0, 3}


def test_master_kill9_loses_no_write_and_keeps_containers(cluster: Cluster) -> None:
    for i in range(30):
        cluster.client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"k9-{i}"},
                               "data": {"i": str(i)}}, "default")
    # 3 pods of 2 containers each (sandbox + app), once earlier pods have finished stopping
    before = wait_for(lambda: (lambda ids: ids if len(ids) == 6 else None)(sorted(cluster.containers())), 60,
                      what="only the 3 web pods' containers running")
    cluster.kill9()
    cluster.start()
    names = {c["metadata"]["name"] for c in cluster.client.list(CM, "default")["items"]}
    assert {f"k9-{i}" for i in range(30)} <= names
    wait_for(lambda: running_ready(cluster, 3), 60, what="the web pods after the restart")
    assert sorted(cluster.containers()) == before  # re-adopted, not restarted


def test_bad_input_exits_1_naming_the_file(cluster: Cluster, tmp_path: Path) -> None:
    # a file that does not parse writes nothing; an object that cannot be sent (unserved
    # kind, no name) fails alone and the rest of the file is applied, as with kubectl
    cases = {
        "syntax.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad1\n", "invalid YAML", 0),
        "kind.yaml": ("apiVersion: v1\nkind: Widget\nmetadata: {name: bad2}\n", 'no matches for kind "Widget"', 1),
        "noname.yaml": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "missing field metadata.name", 1),
    }
    for fname, (text, says, applied) in cases.items():
        f = tmp_path / fname
        f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good-" + fname[:3] + "}\n---\n" + text)
        r = cluster.cli("apply", "-f", str(f))
        assert r.returncode == 1, (fname, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and fname in r.stderr and says in r.stderr, r.stderr
        assert r.stdout.splitlines() == [f"configmap/good-{fname[:3]} created"][:applied]
        good = cluster.client.list(CM, "default", field_selector=f"metadata.name=good-{fname[:3]}")["items"]
        assert len(good) == applied, fname
    # a server-side validation error names the field; the store is unchanged
    f = tmp_path / "noimage.yaml"
    f.write_text(WEB.read_text().replace("name: web\n", "name: noimage\n", 1)
                 .replace("image: dockyard/demo-web:1", "imagePullPolicy: Always"))
    r = cluster.cli("apply", "-f", str(f))
    assert r.returncode == 1
    assert "spec.template.spec.containers[0].image" in r.stderr and "Invalid" in r.stderr, r.stderr
    assert cluster.cli("get", "deploy", "noimage").returncode == 1
    r = cluster.cli("get", "widgets")
    assert r.returncode == 1 and "widgets" in r.stderr
    assert cluster.cli("get", "--bogus-flag").returncode == 2


def test_unschedulable_pod_says_why(cluster: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
           "spec": {"containers": [{"name": "c", "image": "dockyard/demo-web:1",
                                    "resources": {"requests": {"cpu": "500"}}}]}}
    cluster.client.create(pod, "default")

    def reason() -> str | None:
        p = cluster.client.get(POD, "huge", "default")
        for c in p.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c.get("message")
        return None

    msg = wait_for(reason, 30, what="PodScheduled=False")
    assert msg == "0/1 nodes are available: 1 Insufficient cpu."
    assert cluster.client.get(POD, "huge", "default")["status"]["phase"] == "Pending"
    cluster.client.delete(POD, "huge", "default")


def test_https_only_and_token_required(cluster: Cluster) -> None:
    import httpx

    r = httpx.get(f"{cluster.server}/api/v1/namespaces/default/pods", verify=False, timeout=5)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{cluster.port}/api/v1/pods", timeout=5)
    with pytest.raises(httpx.ConnectError):  # the server certificate does not verify without the CA
        httpx.get(f"{cluster.server}/version", timeout=5)


def test_delete_deployment_collects_everything(cluster: Cluster) -> None:
    r = cluster.cli("delete", "deployment", "web")
    assert r.returncode == 0 and 'deployment.apps "web" deleted' in r.stdout, r.stderr
    wait_for(lambda: not cluster.client.list(RS, "default", label_selector="app=web")["items"], 60,
             what="replicasets collected")
    wait_for(lambda: not cluster.client.list(POD, "default", label_selector="app=web")["items"], 90,
             what="pods deleted")
    wait_for(lambda: not cluster.containers("label=dockyard.io/container-name=web"), 60, what="containers removed")

    def leftovers() -> list[str]:
        return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=dockyard.io/node={cluster.node_name}"],
                              capture_output=True, text=True, check=True).stdout.split()

    wait_for(lambda: leftovers() == [], 60, what="no container (sandboxes included) left")
