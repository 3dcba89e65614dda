"""API semantics everyday clients rely on, against a real `dockyard up`, with kubectl 1.32 and
the official Python client: paged lists (`--chunk-size`, `limit`/`_continue`), field
validation's default (Warn), foreground/background/orphan deletion of a Deployment's chain,
404s that name the unserved resource, and Status bodies as kube-apiserver writes them.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.client import Client
from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE
from tests.support.kubectl import Kubectl, python_client

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, dynamic  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses (they may run at once)."""
    with running(Cluster(tmp_path_factory.mktemp("cluster"), cluster_cidr="10.237.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


@pytest.fixture(scope="module")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    with python_client(cluster) as c:
        yield c


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [
                {"name": "web", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent"}]}}


def deployment_manifest(name: str, replicas: int) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "web", "image": DEMO_IMAGE, "imagePullPolicy": "IfNotPresent"}]}}}})


def pods_of(core: client.CoreV1Api, app: str) -> list[client.V1Pod]:
    items: list[client.V1Pod] = core.list_namespaced_pod("default", label_selector=f"app={app}").items
    return items


def running_deployment(kubectl: Kubectl, core: client.CoreV1Api, name: str, replicas: int) -> None:
    kubectl("apply", "-f", "-", input=deployment_manifest(name, replicas))
    wait_for(lambda: len([p for p in pods_of(core, name) if p.status.phase == "Running"]) == replicas,
             timeout=90, what=f"{replicas} running pods of {name}")


# -- paging -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paging_pods(api_client: client.ApiClient) -> Iterator[list[str]]:
    core = client.CoreV1Api(api_client)
    names = [f"chunk-{i}" for i in range(5)]
    for name in names:
        core.create_namespaced_pod("default", pod(name, {"paging": "yes"}))
    yield names
    core.delete_collection_namespaced_pod("default", label_selector="paging=yes", grace_period_seconds=0)


def test_kubectl_get_pods_in_chunks(kubectl: Kubectl, paging_pods: list[str]) -> None:
    r = kubectl("get", "pods", "-l", "paging=yes", "--chunk-size=2", "-v=6")
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == paging_pods
    pages = re.findall(r"GET https://\S+/api/v1/namespaces/default/pods\?(\S+) 200", r.stderr)
    assert len(pages) == 3, r.stderr
    assert all("limit=2" in q for q in pages) and ["continue=" in q for q in pages] == [False, True, True]
    r = kubectl("get", "pods", "-l", "paging=yes", "--chunk-size=2", "-o", "name")
    assert r.stdout.split() == [f"pod/{name}" for name in paging_pods]


def test_python_client_pages_with_continue(api_client: client.ApiClient, paging_pods: list[str]) -> None:
    core = client.CoreV1Api(api_client)
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_pod("default", limit=2, _continue=token, label_selector="paging=yes")
        pages += 1
        names += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and names == paging_pods
    first = core.list_namespaced_pod("default", limit=3)
    assert first.metadata._continue and first.metadata.remaining_item_count == len(
        core.list_namespaced_pod("default").items) - 3


# -- field validation -----------------------------------------------------------------------


def raw(api_client: client.ApiClient, method: str, path: str, body: Any = None,
        query: list[tuple[str, str]] | None = None, content_type: str = "application/json") -> Any:
    """A request through the client's own ApiClient (its auth and TLS), answered undecoded:
    the typed APIs would refuse an unknown field before sending it."""
    params = api_client.param_serialize(method, path, query_params=query or [], body=body,
                                        header_params={"Content-Type": content_type, "Accept": "application/json"},
                                        auth_settings=["BearerToken"])
    resp = api_client.call_api(*params)
    resp.read()
    return resp


def test_unknown_fields_are_dropped_with_a_warning_by_default(api_client: client.ApiClient) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lenient"}, "data": {"a": "1"},
            "spec": {"colour": "blue"}}
    path = "/api/v1/namespaces/default/configmaps"
    r = raw(api_client, "POST", path, body)
    assert r.status == 201 and json.loads(r.data)["data"] == {"a": "1"} and "spec" not in json.loads(r.data)
    assert r.getheader("Warning") == '299 - "unknown field \\"spec\\""'
    r = raw(api_client, "PATCH", f"{path}/lenient", {"data": {"b": "2"}, "bogus": 1},
            content_type="application/merge-patch+json")
    assert r.status == 200 and r.getheader("Warning") == '299 - "unknown field \\"bogus\\""'
    r = raw(api_client, "POST", path, {**body, "metadata": {"name": "strict"}}, [("fieldValidation", "Strict")])
    assert r.status == 400 and 'strict decoding error: unknown field "spec"' in json.loads(r.data)["message"]
    r = raw(api_client, "POST", path, {**body, "metadata": {"name": "quiet"}}, [("fieldValidation", "Ignore")])
    assert r.status == 201 and r.getheader("Warning") is None
    # a manifest with an unknown field, through the dynamic client: accepted
    configmaps = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    made = configmaps.create(body={**body, "metadata": {"name": "dynamic"}}, namespace="default")
    assert made.metadata.name == "dynamic" and made.data.a == "1"


# -- deletion propagation -------------------------------------------------------------------


def test_kubectl_foreground_delete_waits_for_the_pods(kubectl: Kubectl, cluster: Cluster,
                                                      api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    running_deployment(kubectl, core, "fg", 2)
    rv = cluster.client.list(resolve("deployments"), "default")["metadata"]["resourceVersion"]
    events: list[tuple[str, str, dict[str, Any]]] = []  # (kind, type, object) in the store's order

    def watch(resource: str, selector: str | None) -> None:  # what happened while kubectl waited
        with Client.from_kubeconfig(str(cluster.kubeconfig)) as c:
            for ev in c.watch(resolve(resource), "default", resource_version=rv, label_selector=selector,
                              timeout_seconds=60):
                events.append((resource, ev["type"], ev["object"]))
                if resource == "deployments" and ev["type"] == "DELETED":
                    return

    watchers = [threading.Thread(target=watch, args=a, daemon=True)
                for a in (("deployments", None), ("pods", "app=fg"))]
    for w in watchers:
        w.start()
    time.sleep(0.5)  # the watches are open
    kubectl("delete", "deployment", "fg", "--cascade=foreground", timeout=120)
    # kubectl returned once the Deployment was gone, and it went after its pods
    assert pods_of(core, "fg") == []
    assert not [r for r in apps.list_namespaced_replica_set("default").items if r.metadata.name.startswith("fg-")]
    watchers[0].join(10)

    def revision(obj: dict[str, Any]) -> int:
        return int(obj["metadata"]["resourceVersion"])

    deployment = [(t, o) for k, t, o in events if k == "deployments" and o["metadata"]["name"] == "fg"]
    marked = [o for t, o in deployment if t == "MODIFIED" and o["metadata"].get("deletionTimestamp")]
    assert marked and all(o["metadata"].get("finalizers") == ["foregroundDeletion"] for o in marked), deployment
    gone = [revision(o) for t, o in deployment if t == "DELETED"]
    pods_gone = [revision(o) for k, t, o in events if k == "pods" and t == "DELETED"]
    assert gone and len(pods_gone) == 2, events
    assert revision(marked[0]) < min(pods_gone) and max(pods_gone) < gone[0], events  # it stood while pods were there


def test_python_client_foreground_then_background_and_orphan(kubectl: Kubectl, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    running_deployment(kubectl, core, "fg2", 1)
    dep = apps.delete_namespaced_deployment("fg2", "default", propagation_policy="Foreground")
    meta = dep["metadata"] if isinstance(dep, dict) else dep.metadata.to_dict()  # the Deployment, marked
    assert meta["finalizers"] == ["foregroundDeletion"] and meta.get("deletionTimestamp", meta.get(
        "deletion_timestamp"))
    wait_for(lambda: not [d for d in apps.list_namespaced_deployment("default").items if d.metadata.name == "fg2"],
             timeout=60, what="the foreground delete")
    assert pods_of(core, "fg2") == []

    running_deployment(kubectl, core, "bg", 1)
    apps.delete_namespaced_deployment("bg", "default", propagation_policy="Background")
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("bg", "default")  # gone at once ...
    wait_for(lambda: pods_of(core, "bg") == [], timeout=60, what="the background collection")  # ... pods after

    running_deployment(kubectl, core, "orphan", 1)
    kubectl("delete", "deployment", "orphan", "--cascade=orphan")
    time.sleep(2)
    rs = [r for r in apps.list_namespaced_replica_set("default").items if r.metadata.name.startswith("orphan-")]
    assert len(rs) == 1 and not rs[0].metadata.owner_references and len(pods_of(core, "orphan")) == 1
    kubectl("delete", "rs", rs[0].metadata.name)
    wait_for(lambda: pods_of(core, "orphan") == [], timeout=60, what="the orphaned pods")


# -- unserved kinds and Status bodies --------------------------------------------------------


@pytest.mark.parametrize(("path", "details"), [
    ("/api/v1/namespaces/default/widgets", {"kind": "widgets"}),
    ("/apis/batch/v1/namespaces/default/jobs", {"group": "batch", "kind": "jobs"}),
])
def test_unserved_resources_under_namespaces_are_named(api_client: client.ApiClient, kubectl: Kubectl, path: str,
                                                       details: dict[str, str]) -> None:
    r = raw(api_client, "GET", path)
    assert r.status == 404
    body = json.loads(r.data)
    assert body["message"] == "the server could not find the requested resource" and body["details"] == details
    r = kubectl("get", "--raw", path, check=False)
    assert r.returncode == 1 and "namespaces" not in r.stderr
    r = kubectl("get", "jobs", check=False)
    assert r.returncode == 1 and 'the server doesn\'t have a resource type "jobs"' in r.stderr


def test_status_bodies_are_kube_apiservers(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("abc", "default")
    assert e.value.body in ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
                            '"pods \\"abc\\" not found","reason":"NotFound","details":{"name":"abc","kind":"pods"},'
                            '"code":404}',
                            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
                            b'"pods \\"abc\\" not found","reason":"NotFound","details":{"name":"abc","kind":"pods"},'
                            b'"code":404}')


def test_kubectl_auth_can_i(kubectl: Kubectl, cluster: Cluster) -> None:
    assert kubectl("auth", "can-i", "create", "deployments").stdout == "yes\n"
    assert kubectl("auth", "can-i", "delete", "pods", "--all-namespaces").stdout == "yes\n"
    node = "system:node:" + cluster.node_name
    assert kubectl("auth", "can-i", "watch", "services", "--as", node).stdout == "yes\n"
    r = kubectl("auth", "can-i", "create", "deployments", "--as", node, check=False)
    assert r.returncode == 1 and r.stdout.startswith("no"), (r.stdout, r.stderr)
    r = kubectl("auth", "can-i", "update", "nodes/someone-else", "--subresource=status", "--as", node, check=False)
    assert r.returncode == 1 and r.stdout.startswith("no"), (r.stdout, r.stderr)
    own = kubectl("auth", "can-i", "update", f"nodes/{cluster.node_name}", "--subresource=status", "--as", node)
    assert own.stdout == "yes\n"


def test_kubectl_imperative_creates_send_protobuf_and_are_stored(kubectl: Kubectl, cluster: Cluster) -> None:
    r = kubectl("create", "namespace", "pb-ns", "-v=8")
    assert "application/vnd.kubernetes.protobuf" in r.stderr  # the body kubectl sent
    kubectl("create", "deployment", "pb-web", "--image", DEMO_IMAGE, "--replicas=0", "-n", "pb-ns")
    kubectl("create", "configmap", "pb-cm", "--from-literal=a=b", "-n", "pb-ns")
    kubectl("create", "secret", "generic", "pb-secret", "--from-literal=k=v", "-n", "pb-ns")
    c = cluster.client
    assert c.get(resolve("namespaces"), "pb-ns")["status"]["phase"] == "Active"
    dep = c.get(resolve("deployments"), "pb-web", "pb-ns")
    assert dep["spec"]["replicas"] == 0  # a zero sent in protobuf stays a zero
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == DEMO_IMAGE
    assert c.get(resolve("configmaps"), "pb-cm", "pb-ns")["data"] == {"a": "b"}
    assert c.get(resolve("secrets"), "pb-secret", "pb-ns")["data"] == {"k": "dg=="}
    # a client that takes only protobuf gets protobuf (the k8s\0 envelope), others JSON
    path = "/api/v1/namespaces/pb-ns/configmaps/pb-cm"
    only = c.http.get(path, headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert only.status_code == 200 and only.headers["content-type"] == "application/vnd.kubernetes.protobuf"
    assert only.content.startswith(b"k8s\x00") and b"pb-cm" in only.content
    either = c.http.get(path, headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"})
    assert either.headers["content-type"].startswith("application/json")
    kubectl("delete", "namespace", "pb-ns", "--wait=false")


def test_kubectl_drain_evicts_pods_through_the_eviction_subresource(kubectl: Kubectl, cluster: Cluster,
                                                                    api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    running_deployment(kubectl, core, "drained", 2)
    before = {p.metadata.name for p in pods_of(core, "drained")}
    try:
        r = kubectl("drain", cluster.node_name, "--pod-selector=app=drained", "--timeout=90s", "-v=6", timeout=120)
        assert re.search(r"POST https://\S+/pods/drained-\S+/eviction 201", r.stderr), r.stderr[-2000:]
        assert sum(f"pod/{name} evicted" in r.stdout for name in before) == 2, r.stdout
        assert core.read_node(cluster.node_name).spec.unschedulable is True
        assert not before & {p.metadata.name for p in pods_of(core, "drained")}  # the evicted pods are gone
    finally:
        kubectl("uncordon", cluster.node_name)
    wait_for(lambda: len([p for p in pods_of(core, "drained") if p.status.phase == "Running"]) == 2,
             timeout=90, what="2 replacement pods running after uncordon")
    kubectl("delete", "deployment", "drained")
