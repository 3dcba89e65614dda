"""EndpointSlices with the real kubectl (v1.32) against a real `dockyard up`.

kubectl 1.32 reads a Service's endpoints from its EndpointSlices (label
`kubernetes.io/service-name`), so this is what users see of them:

* `kubectl api-resources` lists `endpointslices` in `discovery.k8s.io/v1`, and `kubectl
  explain` describes their fields;
* a Deployment of two web pods behind a Service: `kubectl get endpointslices` prints one
  IPv4 slice with the target port and both pod IPs (kube-apiserver's columns), owned by the
  Service and labelled as the EndpointSlice controller labels them;
* `kubectl describe svc` lists `podIP:port` of both pods under Endpoints, and the in-cluster
  API Service `kubernetes` lists the master's address;
* scaling the Deployment reaches the slice; the Service's cluster IP answers from this host
  through the agent's service rules, which read the slices;
* deleting the Service removes its slices.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator

import pytest

from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE
from tests.support.kubectl import Kubectl

pytestmark = [
    pytest.mark.docker,
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

SLICES = resolve("endpointslices")
POD = resolve("pods")

MANIFEST = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 2
  selector:
    matchLabels:
      app: echo
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: {DEMO_IMAGE}
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: 80
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  labels:
    tier: web
spec:
  selector:
    app: echo
  ports:
    - name: web
      port: 8080
      targetPort: http
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses."""
    with running(Cluster(tmp_path_factory.mktemp("endpointslices"), cluster_cidr="10.241.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def app(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("manifests") / "echo.yaml"
    path.write_text(MANIFEST)
    kubectl("apply", "-f", str(path))
    r = kubectl("rollout", "status", "deployment/echo", "--timeout=90s", timeout=100)
    assert 'deployment "echo" successfully rolled out' in r.stdout


def table(out: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of kubectl's table output, split on runs of blanks."""
    lines = [line for line in out.splitlines() if line.strip()]
    split = [[c.strip() for c in re.split(r"\s{2,}", line.strip())] for line in lines]
    return split[0], split[1:]


def pod_ips(kubectl: Kubectl) -> set[str]:
    pods = json.loads(kubectl("get", "pods", "-l", "app=echo", "-o", "json").stdout)["items"]
    return {p["status"]["podIP"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def ready_addresses(cluster: Cluster, service: str) -> set[str]:
    slices = cluster.client.list(SLICES, "default", label_selector=f"kubernetes.io/service-name={service}")
    return {e["addresses"][0] for s in slices["items"] for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")}


def test_api_resources_list_endpoint_slices(kubectl: Kubectl) -> None:
    header, rows = table(kubectl("api-resources", "--api-group=discovery.k8s.io").stdout)
    assert header == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert rows == [["endpointslices", "discovery.k8s.io/v1", "true", "EndpointSlice"]]
    out = kubectl("explain", "endpointslices.addressType").stdout
    assert "addressType specifies the type of address carried by this EndpointSlice" in out


def test_get_endpointslices_prints_the_pods(kubectl: Kubectl, cluster: Cluster, app: None) -> None:
    ips = pod_ips(kubectl)
    assert len(ips) == 2
    # the pods became Ready before the rollout finished; the slice follows within a sync
    wait_for(lambda: ready_addresses(cluster, "echo") == ips, 30, what="both pods in the EndpointSlice")
    header, rows = table(kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=echo").stdout)
    assert header == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    [row] = rows
    assert re.fullmatch(r"echo-[a-z0-9]{5}", row[0]) and row[1:3] == ["IPv4", "80"]
    assert set(row[3].split(",")) == ips
    [s] = json.loads(kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=echo",
                             "-o", "json").stdout)["items"]
    svc = json.loads(kubectl("get", "svc", "echo", "-o", "json").stdout)
    assert s["metadata"]["labels"] == {"tier": "web", "kubernetes.io/service-name": "echo",
                                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "echo",
                                                 "uid": svc["metadata"]["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]
    assert s["ports"] == [{"name": "web", "port": 80, "protocol": "TCP"}]
    for e in s["endpoints"]:
        assert e["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert e["targetRef"]["kind"] == "Pod" and e["targetRef"]["name"].startswith("echo-")
        assert e["nodeName"] == cluster.node_name


def test_describe_service_lists_the_endpoints(kubectl: Kubectl, cluster: Cluster, app: None) -> None:
    ips = pod_ips(kubectl)
    wait_for(lambda: ready_addresses(cluster, "echo") == ips, 30, what="both pods in the EndpointSlice")
    out = kubectl("describe", "svc", "echo").stdout
    [line] = [x for x in out.splitlines() if x.startswith("Endpoints:")]
    assert set(line.split(None, 1)[1].split(",")) == {f"{ip}:80" for ip in ips}, out
    # the in-cluster API Service: the master's address and port (kept by the master from its start)
    got = wait_for(lambda: kubectl("get", "endpointslice", "kubernetes", "-o", "json", check=False).stdout, 30,
                   what="the EndpointSlice default/kubernetes")
    api = json.loads(got)
    assert api["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    [master] = api["endpoints"]
    out = kubectl("describe", "svc", "kubernetes").stdout
    [line] = [x for x in out.splitlines() if x.startswith("Endpoints:")]
    assert line.split(None, 1)[1] == f"{master['addresses'][0]}:{api['ports'][0]['port']}", out


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:
        return r.read().decode()


def test_scaling_reaches_the_slice_and_the_cluster_ip_answers(kubectl: Kubectl, cluster: Cluster, app: None) -> None:
    kubectl("scale", "deployment/echo", "--replicas=3")
    kubectl("rollout", "status", "deployment/echo", "--timeout=90s", timeout=100)
    wait_for(lambda: len(pod_ips(kubectl)) == 3 and ready_addresses(cluster, "echo") == pod_ips(kubectl), 30,
             what="the third pod in the EndpointSlice")
    _, rows = table(kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=echo").stdout)
    assert len(rows) == 1 and len(rows[0][3].split(",")) == 3
    # the agent's service rules follow the slices: the cluster IP answers from this host
    cluster_ip = json.loads(kubectl("get", "svc", "echo", "-o", "json").stdout)["spec"]["clusterIP"]
    body = wait_for(lambda: _try_fetch(f"http://{cluster_ip}:8080/"), 30, what="the cluster IP to answer")
    assert "Hello from Dockyard" in body


def _try_fetch(url: str) -> str | None:
    try:
        return _fetch(url)
    except OSError:
        return None


def test_deleting_the_service_removes_its_slices(kubectl: Kubectl, cluster: Cluster, app: None) -> None:
    assert cluster.client.list(SLICES, "default", label_selector="kubernetes.io/service-name=echo")["items"]
    kubectl("delete", "svc", "echo")
    wait_for(lambda: not cluster.client.list(SLICES, "default",
                                             label_selector="kubernetes.io/service-name=echo")["items"],
             30, what="the Service's EndpointSlices to go")
    out = kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=echo")
    assert "No resources found" in out.stdout + out.stderr
