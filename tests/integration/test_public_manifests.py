"""Public example manifests of the Kubernetes project, applied to a real `dockyard up` with the
real kubectl 1.32 and with `dockyard apply -f`.

The manifests (tests/fixtures/manifests/public, see its README) hold Deployments, Services
of the three types, ConfigMaps, Secrets (`data` and `stringData`), a Pod, multi-document
files, a file in YAML flow style and a `kind: List`. The cluster runs its API server and
controllers without a node agent (images cannot be pulled here), so what is checked is
that every object is accepted and stored as written, that each Deployment gets its
ReplicaSet and pods, that applying again changes nothing with either tool, whichever
applied first (both write kubectl's last-applied annotation), and that `kubectl delete -f`
removes it all, the garbage collector taking the ReplicaSets and pods.

A Secret written with `stringData` is `configured` on every apply, with both tools, as
kubectl says of it against Kubernetes (kubernetes/kubernetes#87736): `stringData` is
write-only, so the live object never holds what the manifest says.

Then files mixing what can be applied with what cannot: an object of an unserved kind, or
an invalid Deployment, is reported on its own line naming it and the file, every other
object is applied, and the exit code is 1, with kubectl and with dockyard alike.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli.apply import covered
from orchestrator.cli.output import display_kind, display_name
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import Kind, by_kind, resolve
from tests.support.cluster import ROOT, Cluster, wait_for
from tests.support.kubectl import Kubectl

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")

PUBLIC = ROOT / "tests/fixtures/manifests/public"
FILES = sorted(p.name for p in PUBLIC.glob("*.yaml"))
RS, PODS = resolve("replicasets"), resolve("pods")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The API server and the controllers; no node agent, so pods stay Pending."""
    c = Cluster(tmp_path_factory.mktemp("public"), extra_args=("--no-agent",))
    try:
        c.start(wait_node=False)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


def objects_of(path: Path) -> list[dict[str, Any]]:
    """The objects of a manifest file, `List`s expanded, in file order."""
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            out.extend(doc["items"] if doc["kind"] == "List" else [doc])
    return out


def kind_of(obj: dict[str, Any]) -> Kind:
    return by_kind(obj["apiVersion"], obj["kind"])


def namespace_of(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("namespace") or "default") if kind_of(obj).namespaced else None


def lines(objs: list[dict[str, Any]], action: str) -> list[str]:
    """What both tools print for these objects: `deployment.apps/web created`."""
    return [f"{display_name(kind_of(o), o['metadata']['name'])} {action}" for o in objs]


def reapplied(objs: list[dict[str, Any]]) -> list[str]:
    """The lines of a second apply: `unchanged`, but `configured` for a stringData Secret."""
    return [line for o in objs for line in lines([o], "configured" if "stringData" in o else "unchanged")]


def stored_form(obj: dict[str, Any]) -> dict[str, Any]:
    """What the live object must say: the manifest, a Secret's stringData as base64 data."""
    if "stringData" not in obj:
        return obj
    want = {k: v for k, v in obj.items() if k != "stringData"}
    want["data"] = {**(obj.get("data") or {}),
                    **{k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}}
    return want


def check_stored(cluster: Cluster, objs: list[dict[str, Any]]) -> list[str]:
    """Every object is stored as written (plus defaults); Services got their addresses and
    Deployments their ReplicaSet and pods. Returns the uids of those ReplicaSets."""
    c = cluster.client
    replicasets: list[str] = []
    for obj in objs:
        kind, name = kind_of(obj), obj["metadata"]["name"]
        live = c.get(kind, name, namespace_of(obj))
        assert covered(stored_form(obj), live), (obj, live)
        if kind.kind == "Service":
            spec = live["spec"]
            assert spec["clusterIP"] and spec["clusterIP"] != "None"
            for port in spec["ports"]:
                assert port["protocol"] == "TCP" and port["targetPort"]
                if spec["type"] in ("NodePort", "LoadBalancer"):
                    assert 30000 <= port["nodePort"] <= 32767, spec
        if kind.kind == "Deployment":
            replicasets.append(rolled_out(cluster, live, obj["spec"].get("replicas", 1)))
    return replicasets


def rolled_out(cluster: Cluster, deployment: dict[str, Any], replicas: int) -> str:
    """The uid of the Deployment's one ReplicaSet, once it has its `replicas` pods."""
    name = deployment["metadata"]["name"]
    rs = wait_for(lambda: owned(cluster, RS, deployment["metadata"]["uid"]), 30,
                  what=f"the ReplicaSet of deployment {name}")
    assert len(rs) == 1 and rs[0]["spec"]["replicas"] == replicas
    uid: str = rs[0]["metadata"]["uid"]
    wait_for(lambda: len(owned(cluster, PODS, uid)) == replicas, 30, what=f"{replicas} pods of deployment {name}")
    return uid


def owned(cluster: Cluster, kind: Kind, owner_uid: str) -> list[dict[str, Any]]:
    items = cluster.client.list(kind, "default")["items"]
    return [i for i in items if any(r.get("uid") == owner_uid for r in i["metadata"].get("ownerReferences") or [])]


def gone(cluster: Cluster, obj: dict[str, Any]) -> bool:
    try:
        cluster.client.get(kind_of(obj), obj["metadata"]["name"], namespace_of(obj))
    except ApiError as e:
        return e.code == 404
    return False


def delete_all(cluster: Cluster, kubectl: Kubectl, path: Path, objs: list[dict[str, Any]],
               replicasets: list[str]) -> None:
    r = kubectl("delete", "-f", str(path))
    assert r.stdout.splitlines() == [f'{display_kind(kind_of(o))} "{o["metadata"]["name"]}" deleted' for o in objs]
    assert all(gone(cluster, o) for o in objs)
    # the garbage collector takes the ReplicaSets, then their pods
    wait_for(lambda: not any(owned(cluster, PODS, uid) for uid in replicasets), 30,
             what="the pods of the deleted Deployments to go")
    wait_for(lambda: not [rs for rs in cluster.client.list(RS, "default")["items"]
                          if rs["metadata"]["uid"] in replicasets], 30, what="the ReplicaSets to go")


@pytest.mark.parametrize("name", FILES)
def test_public_manifest_with_kubectl_then_dockyard(cluster: Cluster, kubectl: Kubectl, name: str) -> None:
    path = PUBLIC / name
    objs = objects_of(path)
    assert objs

    # kubectl creates; applying again with either tool changes nothing
    assert kubectl("apply", "-f", str(path)).stdout.splitlines() == lines(objs, "created")
    replicasets = check_stored(cluster, objs)
    assert kubectl("apply", "-f", str(path)).stdout.splitlines() == reapplied(objs)
    r = cluster.cli("apply", "-f", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == reapplied(objs)
    delete_all(cluster, kubectl, path, objs, replicasets)

    # dockyard creates; applying again with either tool changes nothing
    r = cluster.cli("apply", "-f", str(path))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.splitlines() == lines(objs, "created")
    replicasets = check_stored(cluster, objs)
    r = cluster.cli("apply", "-f", str(path))
    assert r.returncode == 0 and r.stdout.splitlines() == reapplied(objs)
    assert kubectl("apply", "-f", str(path)).stdout.splitlines() == reapplied(objs)
    delete_all(cluster, kubectl, path, objs, replicasets)


def test_the_whole_directory(cluster: Cluster, kubectl: Kubectl) -> None:
    objs = [o for name in FILES for o in objects_of(PUBLIC / name)]
    r = cluster.cli("apply", "-f", str(PUBLIC))
    assert r.returncode == 0 and r.stdout.splitlines() == lines(objs, "created"), r.stderr
    replicasets = check_stored(cluster, objs)
    assert kubectl("apply", "-f", str(PUBLIC)).stdout.splitlines() == reapplied(objs)
    delete_all(cluster, kubectl, PUBLIC, objs, replicasets)


MIXED = """apiVersion: v1
kind: ConfigMap
metadata:
  name: mixed-before
data: {a: b}
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gadget
spec: {size: 3}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: budget
spec:
  minAvailable: 1
  selector: {matchLabels: {app: mixed}}
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: mixed-invalid}
  spec:
    selector: {matchLabels: {app: mixed-invalid}}
    template:
      metadata: {labels: {app: mixed-invalid}}
      spec:
        containers: [{name: c, imagePullPolicy: Always}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: mixed-valid}
  spec:
    selector: {matchLabels: {app: mixed-valid}}
    template:
      metadata: {labels: {app: mixed-valid}}
      spec:
        containers: [{name: c, image: registry.k8s.io/pause:3.10}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: mixed-after
data: {a: b}
"""
APPLIED = ["configmap/mixed-before created", "deployment.apps/mixed-valid created", "configmap/mixed-after created"]


def test_unserved_kinds_and_invalid_objects_fail_alone(cluster: Cluster, kubectl: Kubectl, tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED)
    served = [o for o in objects_of(path) if o["kind"] in ("ConfigMap", "Deployment")]
    for tool in ("kubectl", "dockyard"):
        r = kubectl("apply", "-f", str(path), check=False) if tool == "kubectl" else cluster.cli("apply", "-f", str(path))
        assert r.returncode == 1, (tool, r.stdout, r.stderr)
        assert r.stdout.splitlines() == APPLIED, (tool, r.stdout)
        for kind, version, name in (("Widget", "example.com/v1", "gadget"),
                                    ("PodDisruptionBudget", "policy/v1", "budget")):
            line = next(e for e in r.stderr.splitlines() if f'"{name}"' in e and "resource mapping" in e)
            assert line.startswith("error: resource mapping not found") or tool == "kubectl", line
            assert f'from "{path}": no matches for kind "{kind}" in version "{version}"' in line, (tool, line)
        invalid = [e for e in r.stderr.splitlines() if "mixed-invalid" in e]
        assert len(invalid) == 1 and "spec.template.spec.containers[0].image: Required value" in invalid[0], r.stderr
        assert [gone(cluster, o) for o in served] == [False, True, False, False], tool
        # again: the unserved and invalid objects still fail, the others are unchanged
        again = cluster.cli("apply", "-f", str(path))
        assert again.returncode == 1 and again.stdout.splitlines() == [
            line.replace("created", "unchanged") for line in APPLIED]
        r = kubectl("delete", "-f", str(path), check=False)
        assert r.returncode == 1 and 'no matches for kind "Widget"' in r.stderr
        wait_for(lambda: all(gone(cluster, o) for o in served), 30, what="the mixed file's objects to go")
