"""The in-cluster API and what pods learn about Services, against a real `dockyard up`.

* the Service and Endpoints `default/kubernetes` exist (cluster IP 10.43.0.1, port 443 to
  the master's port), and come back when deleted;
* a pod's containers get `KUBERNETES_SERVICE_HOST`/`_PORT` and the service-link variables of
  the Services of its namespace that existed when it started (not with
  `enableServiceLinks: false`; the container's own variables win); a Service created later
  neither shows up nor restarts anything;
* `kubectl explain` prints Kubernetes' field descriptions;
* an exec client that goes away mid-command leaves no traceback in the agent's log.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster, running, wait_for
from tests.support.kubectl import Kubectl

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

SERVICE = resolve("services")
ENDPOINTS = resolve("endpoints")
POD = resolve("pods")
IMAGE = "dockyard/busybox:1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    """This module's own cluster, on a pod CIDR no other test module uses."""
    with running(Cluster(tmp_path_factory.mktemp("incluster"), cluster_cidr="10.226.0.0/16")) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kubectl-cache"))


def _get(cluster: Cluster, kind: Any, name: str, ns: str = "default") -> dict[str, Any] | None:
    try:
        return dict(cluster.client.get(kind, name, ns))
    except ApiError as e:
        if e.code == 404:
            return None
        raise


def _api_objects(cluster: Cluster) -> tuple[dict[str, Any], dict[str, Any]] | None:
    svc, ep = _get(cluster, SERVICE, "kubernetes"), _get(cluster, ENDPOINTS, "kubernetes")
    return (svc, ep) if svc is not None and ep is not None and ep.get("subsets") else None


def test_kubernetes_service_and_endpoints_are_kept(cluster: Cluster) -> None:
    svc, ep = wait_for(lambda: _api_objects(cluster), 30, what="default/kubernetes")
    assert svc["spec"]["clusterIP"] == "10.43.0.1" and svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": cluster.port}]
    assert not svc["spec"].get("selector")
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    [subset] = ep["subsets"]
    assert subset["ports"] == [{"name": "https", "port": cluster.port, "protocol": "TCP"}]
    [address] = subset["addresses"]
    assert not address["ip"].startswith("127.")  # pods cannot reach the node's loopback
    # deleted: both come back, the Service with its reserved address
    cluster.client.delete(SERVICE, "kubernetes", "default")
    cluster.client.delete(ENDPOINTS, "kubernetes", "default")
    svc2, ep2 = wait_for(lambda: _api_objects(cluster), 30, what="default/kubernetes again")
    assert svc2["metadata"]["uid"] != svc["metadata"]["uid"] and svc2["spec"]["clusterIP"] == "10.43.0.1"
    assert ep2["subsets"] == ep["subsets"]
    # changed by hand: put back
    ep2["subsets"] = [{"addresses": [{"ip": "10.99.0.1"}], "ports": [{"name": "https", "port": 1, "protocol": "TCP"}]}]
    cluster.client.replace(ep2)
    wait_for(lambda: (_get(cluster, ENDPOINTS, "kubernetes") or {}).get("subsets") == ep["subsets"], 30,
             what="the Endpoints put back")
    # no other Service may take the address
    with pytest.raises(ApiError, match="reserved|allocated"):
        cluster.client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "thief", "namespace": "default"},
                               "spec": {"clusterIP": "10.43.0.1", "ports": [{"port": 80}]}})


def _pod(name: str, links: bool | None = None, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                                            "env": env or []}]}
    if links is not None:
        spec["enableServiceLinks"] = links
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def _running(cluster: Cluster, name: str) -> dict[str, Any] | None:
    pod = _get(cluster, POD, name)
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return pod if statuses and statuses[0].get("state", {}).get("running") else None


def _env(kubectl: Any, pod: str) -> dict[str, str]:
    out = kubectl("exec", pod, "--", "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_pods_get_api_and_service_link_variables(cluster: Cluster, kubectl: Any) -> None:
    wait_for(lambda: _api_objects(cluster), 30, what="default/kubernetes")
    backend = cluster.client.create({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-backend", "namespace": "default"},
        "spec": {"selector": {"app": "nothing"},
                 "ports": [{"name": "http", "port": 8080, "targetPort": 80},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]}})
    ip = backend["spec"]["clusterIP"]
    cluster.client.create(_pod("linked", env=[{"name": "MY_BACKEND_SERVICE_PORT", "value": "mine"}]))
    cluster.client.create(_pod("unlinked", links=False))
    for name in ("linked", "unlinked"):
        wait_for(lambda name=name: _running(cluster, name), 90, what=f"pod {name} running")

    env = _env(kubectl, "linked")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443" and env["KUBERNETES_PORT"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_PROTO"] == "tcp" and env["KUBERNETES_PORT_443_TCP_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"
    assert env["MY_BACKEND_SERVICE_HOST"] == ip
    assert env["MY_BACKEND_SERVICE_PORT"] == "mine"  # the container's own variable wins
    assert env["MY_BACKEND_SERVICE_PORT_HTTP"] == "8080" and env["MY_BACKEND_SERVICE_PORT_DNS"] == "53"
    assert env["MY_BACKEND_PORT"] == f"tcp://{ip}:8080"
    assert env["MY_BACKEND_PORT_53_UDP"] == f"udp://{ip}:53" and env["MY_BACKEND_PORT_53_UDP_ADDR"] == ip

    env = _env(kubectl, "unlinked")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert not any(k.startswith("MY_BACKEND_") for k in env)

    # a Service created after the pod: no variables, and no restart of running containers
    before = _running(cluster, "linked")
    assert before is not None
    cluster.client.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "late", "namespace": "default"},
                           "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 81}]}})
    time.sleep(5)  # a few agent resyncs
    after = _running(cluster, "linked")
    assert after is not None
    status = lambda p: p["status"]["containerStatuses"][0]  # noqa: E731
    assert status(after)["containerID"] == status(before)["containerID"] and status(after)["restartCount"] == 0
    assert "LATE_SERVICE_HOST" not in _env(kubectl, "linked")


def test_kubectl_explain_shows_descriptions(kubectl: Any) -> None:
    out = kubectl("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out
    out = kubectl("explain", "pod.spec.containers").stdout
    assert "List of containers belonging to the pod" in out
    assert "Container image name" in out  # the fields listed with their own descriptions
    out = kubectl("explain", "service").stdout
    assert "Service is a named abstraction of software service" in out


def _traceback_lines(cluster: Cluster) -> int:
    return cluster.log_path.read_text(errors="replace").count("Traceback")


def test_exec_client_leaving_mid_command_leaves_no_traceback(cluster: Cluster, tmp_path: Path) -> None:
    cluster.client.create(_pod("execd"))
    wait_for(lambda: _running(cluster, "execd"), 90, what="pod execd running")
    before = _traceback_lines(cluster)
    flood = "while :; do echo line; done"  # output on its way when the client goes
    for script in (flood, flood, flood, "echo a; sleep 2; echo b"):
        proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(tmp_path),
                                 "exec", "execd", "--", "sh", "-c", script],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        proc.kill()
        proc.wait()
        time.sleep(2)
    assert _traceback_lines(cluster) == before, cluster.log_tail(60)
