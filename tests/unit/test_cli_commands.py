"""`dockyard apply|get|delete|scale|describe` against an in-memory API (httpx.MockTransport)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.cli import output
from orchestrator.cli.main import main
from orchestrator.client import Client

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/v[0-9]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$"
)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _status(code: int, reason: str, message: str) -> httpx.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
            "message": message}
    return httpx.Response(code, json=body)


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (resource, ns, name)
        self.requests: list[tuple[str, str, Any]] = []
        self.rv = 100
        self.fail: dict[tuple[str, str], tuple[int, str, str]] = {}  # (method, name) -> status

    def add(self, resource: str, obj: dict[str, Any], ns: str = "default") -> None:
        self.objects[(resource, ns, obj["metadata"]["name"])] = copy.deepcopy(obj)

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path == "/version":
            return httpx.Response(200, json={"gitVersion": "v1.32.0+fake"})
        m = _PATH.match(request.url.path)
        if not m:
            return _status(404, "NotFound", "no route")
        res, ns, name = m["res"], m["ns"] or "", m["name"]
        if (request.method, name) in self.fail:
            return _status(*self.fail[(request.method, name)])
        key = (res, ns, name or "")
        if request.method == "GET" and not name:
            items = [copy.deepcopy(o) for (r, n, _), o in sorted(self.objects.items()) if r == res and (not ns or n == ns)]
            sel = request.url.params.get("labelSelector")
            if sel:
                k, _, v = sel.partition("=")
                items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
            return httpx.Response(200, json={"kind": "List", "metadata": {"resourceVersion": str(self.rv)},
                                             "items": items})
        if request.method == "POST":
            obj = copy.deepcopy(body)
            if ns:
                obj["metadata"].setdefault("namespace", ns)
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[(res, ns, obj["metadata"]["name"])] = obj
            return httpx.Response(201, json=obj)
        if key not in self.objects:
            return _status(404, "NotFound", f'{res} "{name}" not found')
        if request.method == "GET":
            return httpx.Response(200, json=self.objects[key])
        if request.method == "PATCH":
            assert request.headers["content-type"] == "application/merge-patch+json"
            self.rv += 1
            self.objects[key] = _merge(self.objects[key], body)
            return httpx.Response(200, json=self.objects[key])
        if request.method == "DELETE":
            return httpx.Response(200, json=self.objects.pop(key))
        return _status(405, "MethodNotAllowed", request.method)

    def client(self, namespace: str = "default") -> Client:
        c = Client("https://fake.invalid", "t0ken", namespace=namespace)
        c.http = httpx.Client(transport=httpx.MockTransport(self.handler), base_url="https://fake.invalid")
        return c


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeApi:
    api = FakeApi()
    monkeypatch.setattr(output, "connect", lambda args: api.client(getattr(args, "namespace", None) or "default"))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "absent-config"))
    return api


WEB = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web:1, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf, namespace: other}
data: {a: "1"}
"""


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def test_apply_create_unchanged_configured(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, WEB)
    assert main(["apply", "-f", f]) == 0
    assert capsys.readouterr().out.splitlines() == ["deployment.apps/web created", "configmap/conf created"]
    assert ("deployments", "default", "web") in fake.objects
    assert ("configmaps", "other", "conf") in fake.objects  # the document's namespace wins
    # the server adds defaults inside lists: still unchanged
    live = fake.objects[("deployments", "default", "web")]
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = "TCP"
    live["status"] = {"replicas": 2}
    assert main(["apply", "-f", f]) == 0
    assert capsys.readouterr().out.splitlines() == ["deployment.apps/web unchanged", "configmap/conf unchanged"]
    assert main(["apply", "-f", _write(tmp_path, WEB.replace("replicas: 2", "replicas: 5"))]) == 0
    assert capsys.readouterr().out.splitlines() == ["deployment.apps/web configured", "configmap/conf unchanged"]
    assert fake.objects[("deployments", "default", "web")]["spec"]["replicas"] == 5
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert len(patches) == 1 and patches[0][2]["spec"] == {"replicas": 5}


def test_apply_namespace_flag(fake: FakeApi, tmp_path: Path) -> None:
    assert main(["-n", "prod", "apply", "-f", _write(tmp_path, WEB)]) == 0
    assert ("deployments", "prod", "web") in fake.objects
    assert ("configmaps", "other", "conf") in fake.objects


def test_apply_unserved_kind_fails_alone(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, WEB + "---\napiVersion: v1\nkind: Widget\nmetadata: {name: w}\n", "bad.yaml")
    assert main(["apply", "-f", f]) == 1
    out = capsys.readouterr()
    err = out.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: resource mapping not found") and "bad.yaml" in err[0]
    assert "(document 3;" in err[0] and 'no matches for kind "Widget" in version "v1"' in err[0]
    assert out.out.splitlines() == ["deployment.apps/web created", "configmap/conf created"]


def test_apply_server_error_continues_and_exits_1(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail[("GET", "web")] = (422, "Invalid", 'deployment.apps "web" is invalid: spec.x: bad')
    assert main(["apply", "-f", _write(tmp_path, WEB)]) == 1
    out = capsys.readouterr()
    assert out.err.strip() == 'Error from server (Invalid): deployment.apps "web" is invalid: spec.x: bad'
    assert out.out.strip() == "configmap/conf created"


def _pod(name: str, phase: str = "Running", ready: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n1"},
        "status": {"phase": phase, "podIP": "10.42.0.5",
                   "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0,
                                          "state": {"running": {}}}]},
    }


def test_get_table_and_name_and_empty(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("pods", _pod("a"))
    fake.add("pods", _pod("b", "Pending", False, {"app": "db"}))
    assert main(["get", "po"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:3] for line in lines[1:]] == [["a", "1/1", "Running"], ["b", "0/1", "Pending"]]
    assert main(["get", "pods", "-l", "app=web", "-o", "name"]) == 0
    assert capsys.readouterr().out == "pod/a\n"
    assert main(["get", "pods", "-l", "app=none"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == "No resources found in default namespace.\n"
    assert main(["get", "pods", "-o", "wide", "--no-headers"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-2:] == ["10.42.0.5", "n1"]


def test_get_json_one_object_or_list(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("pods", _pod("a"))
    assert main(["get", "pod", "a", "-o", "json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["kind"] == "Pod" and one["apiVersion"] == "v1" and one["metadata"]["name"] == "a"
    assert main(["get", "pods", "-o", "json"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["kind"] == "List" and many["apiVersion"] == "v1" and many["items"][0]["kind"] == "Pod"


def test_get_hides_managed_fields_unless_asked(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    pod = _pod("a")
    pod["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                                         "fieldsV1": {"f:spec": {}}}]
    fake.add("pods", pod)
    assert main(["get", "pod", "a", "-o", "yaml"]) == 0
    assert "managedFields" not in capsys.readouterr().out
    assert main(["get", "pods", "-o", "json", "--show-managed-fields"]) == 0
    shown = json.loads(capsys.readouterr().out)["items"][0]["metadata"]["managedFields"]
    assert shown[0]["manager"] == "kubectl"


def test_get_multiple_kinds_prefix_names(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("pods", _pod("a"))
    fake.add("deployments", {"metadata": {"name": "web"}, "spec": {"replicas": 3},
                             "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}})
    assert main(["get", "all"]) == 0
    out = capsys.readouterr().out
    assert "pod/a" in out and "deployment.apps/web" in out
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert blocks[1].splitlines()[1].split()[:4] == ["deployment.apps/web", "2/3", "3", "2"]


def test_get_not_found_and_unknown_kind(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "deploy", "nope"]) == 1
    assert capsys.readouterr().err.startswith("Error from server (NotFound): ")
    assert main(["get", "widgets"]) == 1
    assert capsys.readouterr().err == 'error: the server doesn\'t have a resource type "widgets"\n'


def test_delete_and_not_found(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("deployments", {"metadata": {"name": "web"}})
    assert main(["delete", "deployment", "web"]) == 0
    assert capsys.readouterr().out == 'deployment.apps "web" deleted\n'
    assert not fake.objects
    assert main(["delete", "deploy/web"]) == 1
    assert capsys.readouterr().err.startswith("Error from server (NotFound)")
    assert main(["delete", "deploy", "web", "--ignore-not-found"]) == 0


def test_delete_by_selector_and_file(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("pods", _pod("a"))
    fake.add("pods", _pod("b", labels={"app": "db"}))
    assert main(["delete", "pods", "-l", "app=web", "--no-wait"]) == 0
    assert capsys.readouterr().out == 'pod "a" deleted\n'
    fake.add("configmaps", {"metadata": {"name": "conf"}}, "other")
    assert main(["delete", "-f", _write(tmp_path, WEB), "--ignore-not-found"]) == 0
    assert capsys.readouterr().out == 'configmap "conf" deleted\n'
    assert main(["delete", "pods"]) == 1  # neither names nor --all nor -l
    assert "no name was specified" in capsys.readouterr().err


def test_scale_patches_the_scale_subresource(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.add("deployments", {"metadata": {"name": "web"}, "spec": {"replicas": 1}})
    assert main(["scale", "deployment/web", "--replicas", "3"]) == 0
    assert main(["scale", "deploy", "web", "--replicas", "0"]) == 0
    assert capsys.readouterr().out == "deployment.apps/web scaled\n" * 2
    patches = [(path, body) for method, path, body in fake.requests if method == "PATCH"]
    assert patches == [("/apis/apps/v1/namespaces/default/deployments/web/scale", {"spec": {"replicas": 3}}),
                       ("/apis/apps/v1/namespaces/default/deployments/web/scale", {"spec": {"replicas": 0}})]
    assert main(["scale", "configmap/x", "--replicas", "1"]) == 1
    assert main(["scale", "deploy/web", "--replicas", "-1"]) == 2


def test_describe_lists_matching_events(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    pod = _pod("a")
    pod["metadata"]["uid"] = "u-a"
    fake.add("pods", pod)
    for i, uid in enumerate(["u-a", "u-old"]):
        fake.add("events", {"metadata": {"name": f"e{i}"}, "type": "Normal", "reason": f"Reason{i}",
                            "involvedObject": {"kind": "Pod", "name": "a", "uid": uid}, "message": "m"})
    assert main(["describe", "pod", "a"]) == 0
    out = capsys.readouterr().out
    assert "Name:" in out and "Reason0" in out and "Reason1" not in out
    lists = [r for r in fake.requests if r[1].endswith("/events")]
    assert lists


def test_version_with_server(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Client Version: v") and out[1] == "Server Version: v1.32.0+fake"
