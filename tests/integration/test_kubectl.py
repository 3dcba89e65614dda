"""The real kubectl (v1.32) against a real `dockyard up`: a user's session, in order.

kubectl is run with the cluster's kubeconfig and a private cache dir, exactly as a user
would run it, and its output is checked as the user would read it: discovery
(`api-resources`), `apply` with server-side field validation (no `--validate=false`),
tables from the server (`get`, `-o wide`, `get all`, `get -w`), `describe`, `scale`,
client-side apply of a change followed by `rollout status|history|undo`, `wait`,
server-side apply, server dry run, `explain`, readable failures for unknown fields and
unserved kinds, and `delete`. Logs and exec are tested with the pod proxy, elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE
from tests.support.kubectl import Kubectl

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

MANIFEST = f"""\
# The site: a config map, the deployment that reads it, and its service.
apiVersion: v1
kind: ConfigMap
metadata:
  name: site-config
  labels:
    app: site
    tier: web
data:
  GREETING: hello   # read by the container's environment
  mode: "production"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: site
  labels:
    app: site
    tier: web
  annotations:
    example.com/owner: platform-team
spec:
  replicas: 2
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app: site
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: site
        tier: web
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: web
          image: {DEMO_IMAGE}
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: 80
          env:
            - name: VERSION
              value: "1"
            - name: GREETING
              valueFrom:
                configMapKeyRef:
                  name: site-config
                  key: GREETING
          resources:
            requests: {{cpu: 10m, memory: 8Mi}}
            limits: {{cpu: 100m, memory: 32Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: site
  labels:
    app: site
spec:
  selector:
    app: site
  ports:
    - name: http
      port: 80
      targetPort: http
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses (they may run at once)."""
    with running(Cluster(tmp_path_factory.mktemp("cluster"), cluster_cidr="10.211.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("manifests") / "site.yaml"
    path.write_text(MANIFEST)
    return path


def table(out: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of kubectl's table output, split on runs of blanks."""
    lines = [line for line in out.splitlines() if line.strip()]
    split = [[c for c in line.split("  ") if c.strip()] for line in lines]
    return [c.strip() for c in split[0]], [[c.strip() for c in row] for row in split[1:]]


def env_of(kubectl: Kubectl) -> dict[str, str]:
    dep = json.loads(kubectl("get", "deployment", "site", "-o", "json").stdout)
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e.get("value", "<from>") for e in env}


def test_version_and_api_resources(kubectl: Kubectl) -> None:
    version = json.loads(kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1" and version["serverVersion"]["minor"] == "32"
    header, rows = table(kubectl("api-resources").stdout)
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name: dict[str, list[str]] = {}
    for r in rows:  # the core group's row first: metrics.k8s.io serves "pods" and "nodes" too
        by_name.setdefault(r[0], r)
    assert by_name["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert by_name["pods"] == ["pods", "po", "v1", "true", "Pod"]
    assert by_name["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert by_name["secrets"] == ["secrets", "v1", "true", "Secret"]  # no short name
    cats = kubectl("api-resources", "--categories=all", "-o", "name").stdout.split()
    # the `all` category of Kubernetes, less the kinds Dockyard does not serve
    assert set(cats) == {"pods", "services", "deployments.apps", "replicasets.apps",
                         "horizontalpodautoscalers.autoscaling"}
    raw = json.loads(kubectl("get", "--raw", "/apis/apps/v1").stdout)
    scale = next(r for r in raw["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    index = json.loads(kubectl("get", "--raw", "/openapi/v3").stdout)
    assert {"api/v1", "apis/apps/v1", "apis/autoscaling/v2"} <= set(index["paths"])


def test_apply_creates_with_server_side_validation(kubectl: Kubectl, manifest: Path) -> None:
    r = kubectl("apply", "-f", str(manifest), "-v=6")
    assert r.stdout.splitlines() == ["configmap/site-config created", "deployment.apps/site created",
                                     "service/site created"]
    # kubectl found fieldValidation in /openapi/v3 and left strict validation to the server
    assert "fieldValidation=Strict" in r.stderr
    r = kubectl("rollout", "status", "deployment/site", "--timeout=90s", timeout=100)
    assert 'deployment "site" successfully rolled out' in r.stdout
    again = kubectl("apply", "-f", str(manifest))
    assert again.stdout.splitlines() == ["configmap/site-config unchanged", "deployment.apps/site unchanged",
                                         "service/site unchanged"]
    svc = json.loads(kubectl("get", "service", "site", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"].startswith("10.43.") and svc["spec"]["ports"][0]["targetPort"] == "http"
    ep = json.loads(kubectl("get", "endpoints", "site", "-o", "json").stdout)
    assert len(ep["subsets"][0]["addresses"]) == 2 and ep["subsets"][0]["ports"][0]["port"] == 80


def test_get_tables(kubectl: Kubectl, cluster: Cluster) -> None:
    header, rows = table(kubectl("get", "pods", "-l", "app=site").stdout)
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows) == 2 and all(r[0].startswith("site-") and r[1:4] == ["1/1", "Running", "0"] for r in rows)
    header, rows = table(kubectl("get", "pods", "-l", "app=site", "-o", "wide").stdout)
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                      "READINESS GATES"]
    assert all(r[6] == cluster.node_name and r[5].startswith("10.") for r in rows)
    header, rows = table(kubectl("get", "deploy", "-o", "wide").stdout)
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows[0][:4] == ["site", "2/2", "2", "2"] and rows[0][5:] == ["web", DEMO_IMAGE, "app=site"]
    header, rows = table(kubectl("get", "configmaps").stdout)
    assert header == ["NAME", "DATA", "AGE"] and ["site-config", "2"] == rows[0][:2]
    header, rows = table(kubectl("get", "nodes").stdout)
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] and rows[0][:2] == [cluster.node_name, "Ready"]
    header, _ = table(kubectl("get", "pods", "-A").stdout)
    assert header[0] == "NAMESPACE"
    header, rows = table(kubectl("get", "ns").stdout)
    assert header == ["NAME", "STATUS", "AGE"] and ["default", "Active"] == rows[0][:2]
    events = kubectl("get", "events").stdout
    assert events.splitlines()[0].split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert "ScalingReplicaSet" in events
    everything = kubectl("get", "all").stdout
    assert "deployment.apps/site" in everything and "replicaset.apps/site-" in everything
    assert "service/site" in everything  # services are in the `all` category, as in Kubernetes
    assert everything.count("pod/site-") == 2
    assert kubectl("get", "pods", "-l", "app=nothing").stderr.strip() == "No resources found in default namespace."


def test_get_yaml_json_and_name(kubectl: Kubectl) -> None:
    dep = yaml.safe_load(kubectl("get", "deployment", "site", "-o", "yaml").stdout)
    assert dep["kind"] == "Deployment" and dep["metadata"]["annotations"]["example.com/owner"] == "platform-team"
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    items = json.loads(kubectl("get", "pods", "-l", "app=site", "-o", "json").stdout)
    assert items["kind"] == "List" and len(items["items"]) == 2
    names = kubectl("get", "deploy,cm", "-o", "name").stdout.split()
    assert "deployment.apps/site" in names and "configmap/site-config" in names
    ready = kubectl("get", "deploy", "site", "-o", "jsonpath={.status.readyReplicas}").stdout
    assert ready == "2"


def test_describe(kubectl: Kubectl) -> None:
    out = kubectl("describe", "deployment", "site").stdout
    assert "Name:                   site" in out
    assert "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable" in out
    assert f"Image:      {DEMO_IMAGE}" in out
    assert "NewReplicaSet:   site-" in out
    pod = kubectl("get", "pods", "-l", "app=site", "-o", "name").stdout.split()[0]
    out = kubectl("describe", pod).stdout
    assert re.search(r"^Status:\s+Running$", out, re.M) and "Successfully assigned" in out, out


def test_describe_node_shows_its_lease(kubectl: Kubectl, cluster: Cluster) -> None:
    out = kubectl("describe", "node", cluster.node_name).stdout
    assert "Failed to get lease" not in out
    lease = out[out.index("\nLease:"):].splitlines()[2:5]
    assert re.match(rf"^\s+HolderIdentity:\s+{re.escape(cluster.node_name)}$", lease[0]), out
    assert re.match(r"^\s+RenewTime:\s+\S", lease[2]), out


def test_get_watch_streams_table_rows(kubectl: Kubectl) -> None:
    proc = kubectl.popen("get", "deployments", "-w", "--request-timeout=8s")
    time.sleep(1.5)
    kubectl("scale", "deployment/site", "--replicas=3")
    try:
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert lines[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert sum(1 for line in lines if line[0] == "NAME") == 1  # headers once
    assert lines[1][0] == "site" and len(lines) > 2  # the list, then watch events
    assert any(line[0] == "site" and line[1].endswith("/3") for line in lines[2:])


def test_scale_and_wait(kubectl: Kubectl) -> None:
    r = kubectl("scale", "deployment/site", "--replicas=3")
    assert r.stdout.strip() == "deployment.apps/site scaled"
    kubectl("rollout", "status", "deployment/site", "--timeout=90s", timeout=100)
    r = kubectl("wait", "--for=condition=Available", "deployment/site", "--timeout=60s", timeout=70)
    assert r.stdout.strip() == "deployment.apps/site condition met"
    assert kubectl("get", "deploy", "site", "-o", "jsonpath={.status.readyReplicas}").stdout == "3"


def test_second_apply_rolls_out_and_undo_rolls_back(kubectl: Kubectl, manifest: Path, tmp_path: Path) -> None:
    # a new image (a second tag of the demo image, built locally: no registry is reachable)
    subprocess.run(["docker", "tag", DEMO_IMAGE, "dockyard/demo-web:2"], check=True, capture_output=True)
    changed = tmp_path / "site-v2.yaml"
    changed.write_text(MANIFEST.replace('value: "1"', 'value: "2"').replace("replicas: 2", "replicas: 3")
                       .replace(f"image: {DEMO_IMAGE}", "image: dockyard/demo-web:2"))
    r = kubectl("apply", "-f", str(changed))
    assert "deployment.apps/site configured" in r.stdout
    r = kubectl("rollout", "status", "deployment/site", "--timeout=90s", timeout=100)
    assert 'deployment "site" successfully rolled out' in r.stdout
    assert env_of(kubectl) == {"VERSION": "2", "GREETING": "<from>"}

    def images() -> list[str]:  # old pods may still be terminating right after the rollout
        out = kubectl("get", "pods", "-l", "app=site", "-o", "jsonpath={.items[*].spec.containers[0].image}")
        return out.stdout.split()

    wait_for(lambda: images() == ["dockyard/demo-web:2"] * 3, 60, what="only pods of the new image")
    # fields the manifest never set survive the strategic merge (server defaults)
    dep = json.loads(kubectl("get", "deployment", "site", "-o", "json").stdout)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["ports"] == [{"name": "http", "containerPort": 80, "protocol": "TCP"}]
    header, rows = table(kubectl("rollout", "history", "deployment/site").stdout.split("\n", 1)[1])
    assert header == ["REVISION", "CHANGE-CAUSE"] and [r[0] for r in rows] == ["1", "2"]
    assert kubectl("rollout", "undo", "deployment/site").stdout.strip() == "deployment.apps/site rolled back"
    kubectl("rollout", "status", "deployment/site", "--timeout=90s", timeout=100)
    assert env_of(kubectl)["VERSION"] == "1"
    dep = json.loads(kubectl("get", "deployment", "site", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == DEMO_IMAGE
    # the undo reused the revision-1 ReplicaSet instead of making a third one
    header, rows = table(kubectl("get", "rs", "-l", "app=site").stdout)
    assert len(rows) == 2
    assert sorted(r[0] for r in table(kubectl("rollout", "history", "deployment/site").stdout.split("\n", 1)[1])[1]) \
        == ["2", "3"]


LOGGER = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: ticker
      image: {DEMO_IMAGE}
      command: ["sh", "-c", "echo hello-from-logs; i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done"]
"""


def test_logs_exec_and_top(kubectl: Kubectl, tmp_path: Path) -> None:
    pod = tmp_path / "ticker.yaml"
    pod.write_text(LOGGER)
    assert kubectl("apply", "-f", str(pod)).stdout.strip() == "pod/ticker created"
    kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s", timeout=70)
    out = wait_for(lambda: (lambda o: o if "tick 1" in o else None)(kubectl("logs", "ticker").stdout), 30,
                   what="log lines")
    assert out.splitlines()[0] == "hello-from-logs"
    assert kubectl("logs", "ticker", "--tail=1").stdout.count("\n") == 1
    # -f streams lines written after the request started
    proc = kubectl.popen("logs", "-f", "ticker", "--tail=0")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("tick ")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    r = kubectl("exec", "ticker", "--", "sh", "-c", "echo out-$((6*7)); echo err >&2", timeout=30)
    assert r.stdout.strip() == "out-42"
    r = kubectl("exec", "ticker", "--", "sh", "-c", "exit 3", check=False, timeout=30)
    assert r.returncode == 3 and "command terminated with exit code 3" in r.stderr
    r = kubectl("exec", "-i", "ticker", "--", "cat", input="through stdin\n", timeout=30)
    assert r.stdout == "through stdin\n"
    kubectl("delete", "pod", "ticker", "--wait=false")


def test_unknown_fields_and_kinds_fail_readably(kubectl: Kubectl, tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(MANIFEST.replace("imagePullPolicy:", "imagePulPolicy:"))
    r = kubectl("apply", "-f", str(typo), check=False)
    assert r.returncode == 1
    assert ('strict decoding error: unknown field "spec.template.spec.containers[0].imagePulPolicy"'
            in r.stderr), r.stderr
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: site\nspec:\n  serviceName: site\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: {a: b}\n"
    )
    r = kubectl("apply", "-f", str(mixed), check=False)
    assert r.returncode == 1
    assert 'no matches for kind "StatefulSet" in version "apps/v1"' in r.stderr
    assert "resource mapping not found" in r.stderr
    assert "configmap/extra created" in r.stdout  # the rest of the file still applied
    r = kubectl("get", "statefulsets", check=False)
    assert r.returncode == 1 and 'the server doesn\'t have a resource type "statefulsets"' in r.stderr
    r = kubectl("get", "deployment", "nope", check=False)
    assert r.returncode == 1 and 'deployments.apps "nope" not found' in r.stderr


def test_explain(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec").stdout
    assert "KIND:       Deployment" in out and "FIELD: spec <Object>" in out
    for field in ("replicas\t<integer>", "selector\t<Object>", "template\t<Object>", "strategy\t<Object>"):
        assert field in out
    out = kubectl("explain", "pods.spec.containers.ports").stdout
    assert "containerPort\t<integer>" in out
    r = kubectl("explain", "deployment.spec.bogus", check=False)
    assert r.returncode == 1 and 'field "bogus" does not exist' in r.stderr


def test_server_side_apply_and_dry_run(kubectl: Kubectl, tmp_path: Path) -> None:
    cm = tmp_path / "ssa.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {a: b}\ndata:\n  k: v\n")
    assert kubectl("apply", "--server-side", "-f", str(cm)).stdout.strip() == "configmap/ssa serverside-applied"
    kubectl("label", "configmap", "ssa", "added=by-hand")
    cm.write_text(cm.read_text().replace("k: v", "k: w"))
    kubectl("apply", "--server-side", "-f", str(cm))
    got = json.loads(kubectl("get", "cm", "ssa", "-o", "json").stdout)
    assert got["data"] == {"k": "w"} and got["metadata"]["labels"] == {"a": "b", "added": "by-hand"}
    r = kubectl("apply", "--dry-run=server", "-f", str(cm.with_name("x.yaml")), check=False)
    assert r.returncode == 1  # no such file: nothing happened
    cm.write_text(cm.read_text().replace("name: ssa", "name: dry"))
    r = kubectl("apply", "--dry-run=server", "-f", str(cm))
    assert r.stdout.strip() == "configmap/dry created (server dry run)"
    assert kubectl("get", "cm", "dry", check=False).returncode == 1
    assert kubectl("delete", "cm", "ssa", "--dry-run=server").stdout.strip() == 'configmap "ssa" deleted (server dry run)'
    assert kubectl("get", "cm", "ssa", check=False).returncode == 0


def managers(kubectl: Kubectl, *target: str) -> dict[tuple[str, str], dict[str, Any]]:
    got = json.loads(kubectl("get", *target, "-o", "json", "--show-managed-fields").stdout)
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in got["metadata"].get("managedFields", [])}


def test_server_side_apply_conflict_then_force_conflicts(kubectl: Kubectl, tmp_path: Path, demo_image: str) -> None:
    deploy = tmp_path / "ssa-deploy.yaml"
    deploy.write_text(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa-web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: ssa-web}}
  template:
    metadata:
      labels: {{app: ssa-web}}
    spec:
      containers:
      - name: web
        image: {demo_image}
""")
    assert kubectl("apply", "--server-side", "-f", str(deploy)).stdout.strip() == \
        "deployment.apps/ssa-web serverside-applied"
    fields = managers(kubectl, "deploy", "ssa-web")[("kubectl", "Apply")]
    assert "f:replicas" in fields["f:spec"]
    assert 'k:{"name":"web"}' in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    # another manager (a CI job) sets replicas to another value: kubectl's conflict report, exit 1
    deploy.write_text(deploy.read_text().replace("replicas: 1", "replicas: 2"))
    r = kubectl("apply", "--server-side", "--field-manager=ci", "-f", str(deploy), check=False)
    assert r.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas' in r.stderr
    assert "--force-conflicts" in r.stderr
    got = json.loads(kubectl("get", "deploy", "ssa-web", "-o", "json").stdout)
    assert got["spec"]["replicas"] == 1  # nothing written
    r = kubectl("apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", str(deploy))
    assert r.stdout.strip() == "deployment.apps/ssa-web serverside-applied"
    owners = managers(kubectl, "deploy", "ssa-web")
    assert "f:replicas" in owners[("ci", "Apply")]["f:spec"]
    assert "f:replicas" not in owners[("kubectl", "Apply")]["f:spec"]
    assert json.loads(kubectl("get", "deploy", "ssa-web", "-o", "json").stdout)["spec"]["replicas"] == 2
    kubectl("delete", "deploy", "ssa-web", "--wait=false")


def test_client_side_apply_migrates_to_server_side_apply(kubectl: Kubectl, tmp_path: Path) -> None:
    cm = tmp_path / "migrate.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\n  labels: {a: '1', b: '2'}\n"
                  "data:\n  x: '1'\n  y: '2'\n")
    assert kubectl("apply", "-f", str(cm)).stdout.strip() == "configmap/migrate created"
    assert ("kubectl-client-side-apply", "Update") in managers(kubectl, "cm", "migrate")
    # the same file, less one label and one key, applied server-side: kubectl hands the client-side
    # applier's fields to its server-side manager first, so what the file no longer has is removed
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: migrate\n  labels: {a: '1'}\n"
                  "data:\n  x: '1'\n")
    kubectl("apply", "--server-side", "-f", str(cm))
    got = json.loads(kubectl("get", "cm", "migrate", "-o", "json").stdout)
    assert got["data"] == {"x": "1"} and got["metadata"]["labels"] == {"a": "1"}
    owners = managers(kubectl, "cm", "migrate")
    assert ("kubectl", "Apply") in owners and ("kubectl-client-side-apply", "Update") not in owners
    # kubectl keeps its last-applied annotation up to date under a manager of its own
    assert set(owners) <= {("kubectl", "Apply"), ("kubectl-last-applied", "Apply")}
    kubectl("delete", "cm", "migrate")


def test_delete(kubectl: Kubectl, manifest: Path, cluster: Cluster) -> None:
    r = kubectl("delete", "-f", str(manifest), timeout=120)
    assert r.stdout.splitlines() == ['configmap "site-config" deleted', 'deployment.apps "site" deleted',
                                     'service "site" deleted']
    r = kubectl("get", "deployment", "site", check=False)
    assert r.returncode == 1 and 'deployments.apps "site" not found' in r.stderr

    def pods_gone() -> bool:
        return kubectl("get", "pods", "-l", "app=site", "-o", "name").stdout.strip() == ""

    wait_for(pods_gone, 90, what="the site pods to be garbage-collected")
    r = kubectl("delete", "configmaps", "-l", "a=b")
    assert r.stdout.strip() == 'configmap "ssa" deleted'


BURNER = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: burner
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: burn
      image: {DEMO_IMAGE}
      command: ["sh", "-c", "while :; do :; done"]
      resources:
        limits: {{cpu: 50m}}
"""


def test_top_pods_and_nodes(kubectl: Kubectl, cluster: Cluster, tmp_path: Path) -> None:
    """kubectl finds metrics.k8s.io in discovery and prints the agents' numbers."""
    groups = json.loads(kubectl("get", "--raw", "/apis").stdout)["groups"]
    assert {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}} in groups
    header, rows = table(kubectl("api-resources", "--api-group=metrics.k8s.io").stdout)
    assert rows == [["nodes", "metrics.k8s.io/v1beta1", "false", "NodeMetrics"],
                    ["pods", "metrics.k8s.io/v1beta1", "true", "PodMetrics"]], rows
    pod = tmp_path / "burner.yaml"
    pod.write_text(BURNER)
    kubectl("apply", "-f", str(pod))
    kubectl("wait", "--for=condition=Ready", "pod/burner", "--timeout=60s", timeout=70)

    def pod_row() -> list[str] | None:
        r = kubectl("top", "pods", "burner", check=False)
        if r.returncode != 0:
            return None  # "metrics not available yet" until the agent has sampled it
        header, rows = table(r.stdout)
        assert header == ["NAME", "CPU(cores)", "MEMORY(bytes)"], r.stdout
        return rows[0] if rows and int(rows[0][1].rstrip("m")) > 0 else None

    name, cpu, memory = wait_for(pod_row, 60, interval=1.0, what="kubectl top pods to show the burner's CPU")
    assert name == "burner" and re.fullmatch(r"\d+m", cpu) and re.fullmatch(r"\d+Mi", memory), (cpu, memory)

    header, rows = table(kubectl("top", "nodes").stdout)
    assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    row = next(r for r in rows if r[0] == cluster.node_name)
    assert re.fullmatch(r"\d+m", row[1]) and int(row[1][:-1]) > 0, row
    assert re.fullmatch(r"\d+%", row[2]) and re.fullmatch(r"\d+Mi", row[3]) and int(row[3][:-2]) > 0, row
    assert re.fullmatch(r"\d+%", row[4]), row
    kubectl("delete", "pod", "burner", "--wait=false")
