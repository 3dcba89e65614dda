"""The official `kubernetes` Python client against a real `dockyard up`.

Typed APIs (CoreV1Api, AppsV1Api) deserialize every response into their models, so any
field of the wrong shape fails here; the dynamic client drives discovery; `watch.Watch`
streams pod events while a Deployment scales.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE
from tests.support.kubectl import python_client

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, dynamic, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses (they may run at once)."""
    with running(Cluster(tmp_path_factory.mktemp("cluster"), cluster_cidr="10.212.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    with python_client(cluster) as c:
        yield c


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=2,
                    containers=[client.V1Container(
                        name="web", image=DEMO_IMAGE, image_pull_policy="IfNotPresent",
                        ports=[client.V1ContainerPort(container_port=80)],
                    )],
                ),
            ),
        ),
    )


def test_version_and_typed_core(api_client: client.ApiClient, cluster: Cluster) -> None:
    info = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor) == ("1", "32")
    core = client.CoreV1Api(api_client)
    assert {"default", "kube-system"} <= {ns.metadata.name for ns in core.list_namespace().items}
    cm = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "py"}),
                                      data={"a": "1"}))
    assert cm.metadata.uid and cm.metadata.resource_version
    patched = core.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("nope", "default")
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py")))
    assert e.value.status == 409
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py2", labels={"from": "py"})))
    core.delete_collection_namespaced_config_map("default", label_selector="from=py")
    assert core.list_namespaced_config_map("default", label_selector="from=py").items == []


def test_typed_nodes(api_client: client.ApiClient, cluster: Cluster) -> None:
    nodes = client.CoreV1Api(api_client).list_node()
    assert [n.metadata.name for n in nodes.items] == [cluster.node_name]
    ready = {c.type: c.status for c in nodes.items[0].status.conditions}
    assert ready["Ready"] == "True"


def test_apps_deployment_and_watch(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    created = apps.create_namespaced_deployment("default", deployment("pyweb", 1))
    assert created.metadata.generation == 1 and created.spec.strategy.type == "RollingUpdate"

    def available() -> bool:
        d = apps.read_namespaced_deployment_status("pyweb", "default")
        return (d.status.available_replicas or 0) == 1

    wait_for(available, 90, what="pyweb available")
    before = core.list_namespaced_pod("default", label_selector="app=pyweb")
    rv = before.metadata.resource_version
    scaled = apps.patch_namespaced_deployment_scale("pyweb", "default", {"spec": {"replicas": 2}})
    assert scaled.spec.replicas == 2
    w = watch.Watch()
    seen = {p.metadata.name: p.status.phase for p in before.items}
    for ev in w.stream(core.list_namespaced_pod, "default", label_selector="app=pyweb", resource_version=rv,
                       timeout_seconds=60):
        pod = ev["object"]
        assert isinstance(pod, client.V1Pod)
        seen[pod.metadata.name] = pod.status.phase
        if ev["type"] == "ADDED":
            assert pod.metadata.labels["app"] == "pyweb"
        if list(seen.values()).count("Running") >= 2:
            w.stop()
    assert list(seen.values()).count("Running") == 2, seen
    scale = apps.read_namespaced_deployment_scale("pyweb", "default")
    assert scale.spec.replicas == 2
    apps.delete_namespaced_deployment("pyweb", "default")
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("pyweb", "default")
    assert e.value.status == 404


def test_dynamic_client(api_client: client.ApiClient) -> None:
    dyn = dynamic.DynamicClient(api_client)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.namespaced and "scale" in deployments.subresources
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}, "data": {"x": "y"}}
    made = cms.create(body=body, namespace="default")
    assert made.metadata.name == "dyn" and made.data.x == "y"
    listed = cms.get(namespace="default", field_selector="metadata.name=dyn")
    assert [i.metadata.name for i in listed.items] == ["dyn"]
    applied = cms.server_side_apply(
        body={**body, "data": {"x": "z"}}, name="dyn", namespace="default", field_manager="test", force_conflicts=True)
    assert applied.data.x == "z"
    cms.delete(name="dyn", namespace="default")
    with pytest.raises(dynamic.exceptions.NotFoundError):
        cms.get(name="dyn", namespace="default")
    with pytest.raises(dynamic.exceptions.ResourceNotFoundError):
        dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
