"""`apply`: the three-way merge patch (last-applied → new manifest, against the live object), the
last-applied annotation as kubectl writes it, and files mixing objects that can and cannot be sent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.cli import output
from orchestrator.cli.apply import (
    LAST_APPLIED,
    compute_apply_patch,
    covered,
    go_json,
    last_applied_json,
    plan_apply,
    with_last_applied,
)
from orchestrator.cli.main import main
from orchestrator.cli.manifests import Problem, manifests_from_text
from orchestrator.cli.output import CliError
from orchestrator.client import Client

CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # name, last-applied, new, live, expected patch
    ("no change", {"a": 1}, {"a": 1}, {"a": 1, "status": {"x": 1}}, {}),
    ("changed scalar", {"a": 1}, {"a": 2}, {"a": 1}, {"a": 2}),
    ("new key", {"a": 1}, {"a": 1, "b": 2}, {"a": 1}, {"b": 2}),
    ("dropped key becomes null", {"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2}, {"b": None}),
    ("dropped key already gone", {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, {}),
    ("others' fields kept", {"a": 1}, {"a": 1}, {"a": 1, "b": 9}, {}),
    ("live drift reset", {"a": 1}, {"a": 1}, {"a": 5}, {"a": 1}),
    (
        "nested maps merge",
        {"spec": {"replicas": 3, "paused": False}},
        {"spec": {"replicas": 4}},
        {"spec": {"replicas": 3, "paused": False, "strategy": {"type": "RollingUpdate"}}},
        {"spec": {"replicas": 4, "paused": None}},
    ),
    (
        "no last-applied: nothing deleted",
        None,
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {},
    ),
    (
        "label removed",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"b": None}}},
    ),
    ("list replaced whole", {"l": [1, 2]}, {"l": [1, 3]}, {"l": [1, 2]}, {"l": [1, 3]}),
    (
        "list with server defaults is unchanged",
        {"ports": [{"containerPort": 80}]},
        {"ports": [{"containerPort": 80}]},
        {"ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {},
    ),
    (
        "list item field dropped by the user is sent",
        {"c": [{"name": "a", "x": 1}]},
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a", "x": 1}]},
        {"c": [{"name": "a"}]},
    ),
    (
        "list changed by someone else is reset",
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a"}, {"name": "b"}]},
        {"c": [{"name": "a"}]},
    ),
    ("map replaces a scalar", {"a": 1}, {"a": {"b": 1}}, {"a": 1}, {"a": {"b": 1}}),
    ("map where live has none", {}, {"m": {"k": "v"}}, {}, {"m": {"k": "v"}}),
]


@pytest.mark.parametrize(("last", "new", "live", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compute_apply_patch(
    last: dict[str, Any] | None, new: dict[str, Any], live: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compute_apply_patch(last, new, live) == expected


def test_covered() -> None:
    assert covered({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}], "d": 3})
    assert not covered({"a": [{"b": 1}]}, {"a": [{"b": 2}]})
    assert not covered([1], [1, 2])


DOC = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}


def test_annotation_is_compact_json_of_the_doc_without_itself() -> None:
    doc = {**DOC, "metadata": {"name": "c", "annotations": {LAST_APPLIED: "old", "x": "y"}}}
    value = last_applied_json(doc)
    assert " " not in value and value.endswith("}\n")
    assert json.loads(value) == {**DOC, "metadata": {"name": "c", "annotations": {"x": "y"}}}
    assert json.loads(last_applied_json(DOC)) == {**DOC, "metadata": {"name": "c", "annotations": {}}}
    created = with_last_applied(DOC, "prod")
    assert created["metadata"]["namespace"] == "prod"
    assert json.loads(created["metadata"]["annotations"][LAST_APPLIED])["metadata"]["namespace"] == "prod"
    assert "annotations" not in DOC["metadata"] and "namespace" not in DOC["metadata"]  # input not modified
    explicit = {**DOC, "metadata": {"name": "c", "namespace": "mine"}}
    assert with_last_applied(explicit, "prod")["metadata"]["namespace"] == "mine"


# What kubectl 1.32 stored for two of the public example manifests (kubectl get -o json).
KUBECTL_WROTE: list[tuple[dict[str, Any], str | None, str]] = [
    (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "special-config", "namespace": "default"},
         "data": {"special.how": "very"}},
        None,
        '{"apiVersion":"v1","data":{"special.how":"very"},"kind":"ConfigMap","metadata":{"annotations":{},'
        '"name":"special-config","namespace":"default"}}\n',
    ),
    (
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "frontend", "labels": {"app": "guestbook", "tier": "frontend"}},
         "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "guestbook", "tier": "frontend"}}},
        "default",
        '{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"guestbook",'
        '"tier":"frontend"},"name":"frontend","namespace":"default"},"spec":{"ports":[{"port":80}],'
        '"selector":{"app":"guestbook","tier":"frontend"},"type":"NodePort"}}\n',
    ),
]


@pytest.mark.parametrize(("doc", "namespace", "expected"), KUBECTL_WROTE, ids=["configmap", "service"])
def test_annotation_is_byte_for_byte_kubectls(doc: dict[str, Any], namespace: str | None, expected: str) -> None:
    assert with_last_applied(doc, namespace)["metadata"]["annotations"][LAST_APPLIED] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None]}, '{"a":[true,null],"b":1}\n'),
        ({"html": "<a href='x'>&</a>"}, '{"html":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e"}\n'),
        ({"s": "caf\u00e9 \u2028"}, '{"s":"caf\u00e9 \\u2028"}\n'),
        ({"f": 2.0, "g": 0.5, "t": "tab\t"}, '{"f":2,"g":0.5,"t":"tab\\t"}\n'),
    ],
    ids=["sorted", "html-escaped", "utf8-raw", "numbers"],
)
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected


def test_live_annotation_written_by_kubectl_is_unchanged() -> None:
    doc, _, written = KUBECTL_WROTE[1]
    live = {**copy.deepcopy(doc), "metadata": {**doc["metadata"], "namespace": "default", "uid": "u",
                                               "annotations": {LAST_APPLIED: written}},
            "spec": {**doc["spec"], "clusterIP": "10.43.0.9", "ports": [{"port": 80, "protocol": "TCP",
                                                                       "targetPort": 80, "nodePort": 30080}]}}
    assert plan_apply(doc, live) == {}


def _live(doc: dict[str, Any]) -> dict[str, Any]:
    live = with_last_applied(doc, "default")  # what create sent, as the server stores it
    live["metadata"].update(uid="u1", resourceVersion="7")
    return live


def test_plan_unchanged_and_configured() -> None:
    live = _live(DOC)
    assert plan_apply(DOC, live) == {}
    new = {**DOC, "data": {"b": "2"}}
    patch = plan_apply(new, live)
    assert patch["data"] == {"a": None, "b": "2"}
    recorded = json.loads(patch["metadata"]["annotations"][LAST_APPLIED])
    assert recorded == {**new, "metadata": {"name": "c", "namespace": "default", "annotations": {}}}


def test_plan_for_object_created_without_apply_adds_annotation() -> None:
    live = {**DOC, "metadata": {"name": "c", "uid": "u"}, "data": {"a": "1", "other": "x"}}
    patch = plan_apply(DOC, live)
    assert set(patch) == {"metadata"}  # data.other is not deleted: no last-applied
    assert LAST_APPLIED in patch["metadata"]["annotations"]


# -- objects that cannot be sent: reported one line each, the rest applied (as kubectl) -----

MIXED = """apiVersion: v1
kind: ConfigMap
metadata: {name: before}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: gadget}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb, namespace: default}
---
apiVersion: v1
kind: List
items:
- {apiVersion: apps/v2, kind: Deployment, metadata: {name: d}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: in-list}}
---
apiVersion: v1
kind: ConfigMap
metadata: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after}
"""


def test_lenient_load_keeps_what_it_can_and_says_why_for_the_rest() -> None:
    problems: list[Problem] = []
    ms = manifests_from_text(MIXED, "mixed.yaml", problems)
    assert [m.name for m in ms] == ["before", "in-list", "after"]
    assert [p.where for p in problems] == ["mixed.yaml: document 2", "mixed.yaml: document 3",
                                           "mixed.yaml: document 4, item 1", "mixed.yaml: document 5"]
    widget, pdb, deploy, noname = (p.message for p in problems)
    assert widget.startswith('resource mapping not found for name: "gadget" namespace: "" from "mixed.yaml": '
                             'no matches for kind "Widget" in version "example.com/v1" (document 2; served kinds: ')
    assert 'name: "pdb" namespace: "default"' in pdb and 'kind "PodDisruptionBudget" in version "policy/v1"' in pdb
    assert deploy.endswith('no matches for kind "Deployment" in version "apps/v2" '
                           "(document 4, item 1; Deployment is served as apps/v1)")
    assert noname == "mixed.yaml: document 5: missing field metadata.name"
    assert all("\n" not in p.message for p in problems)


def test_strict_load_still_raises_and_syntax_errors_stop_a_lenient_one() -> None:
    with pytest.raises(CliError, match=r'mixed.yaml: document 2: no kind "Widget"'):
        manifests_from_text(MIXED, "mixed.yaml")
    with pytest.raises(CliError, match=r"document 2: invalid YAML"):
        manifests_from_text("a: 1\n---\nb: {c\n", "broken.yaml", [])


class FakeCluster:
    """What the API server holds, behind httpx's mock transport: create, get, patch, delete."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.methods: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        path = request.url.path
        if request.method == "POST":
            obj = json.loads(request.content)
            self.objects[f"{path}/{obj['metadata']['name']}"] = obj
            return httpx.Response(201, json=obj)
        if path not in self.objects:
            return httpx.Response(404, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                             "reason": "NotFound", "code": 404, "message": "not found"})
        if request.method == "DELETE":
            return httpx.Response(200, json=self.objects.pop(path))
        return httpx.Response(200, json=self.objects[path])

    def client(self) -> Client:
        c = Client("https://fake.invalid", "t0ken", namespace="default")
        c.http = httpx.Client(transport=httpx.MockTransport(self.handle), base_url="https://fake.invalid")
        return c


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCluster:
    api = FakeCluster()
    monkeypatch.setattr(output, "connect", lambda args: api.client())
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "absent-config"))
    return api


def test_apply_and_delete_send_the_rest_and_exit_1(
    fake_cluster: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mixed.yaml"
    f.write_text(MIXED)
    assert main(["apply", "-f", str(f)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ["configmap/before created", "configmap/in-list created", "configmap/after created"]
    err = out.err.splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    assert f'from "{f}": no matches for kind "Widget" in version "example.com/v1"' in err[0]
    assert sorted(fake_cluster.objects) == [f"/api/v1/namespaces/default/configmaps/{n}"
                                            for n in ("after", "before", "in-list")]
    assert main(["delete", "-f", str(f)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == ['configmap "before" deleted', 'configmap "in-list" deleted',
                                    'configmap "after" deleted']
    assert len(out.err.splitlines()) == 4 and fake_cluster.objects == {}


def test_apply_of_nothing_but_unserved_kinds_sends_nothing(
    fake_cluster: FakeCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "w.yaml"
    f.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert main(["apply", "-f", str(f)]) == 1
    assert 'kind "Widget"' in capsys.readouterr().err and fake_cluster.methods == []
    f.write_text("# nothing here\n")
    assert main(["apply", "-f", str(f)]) == 1
    assert capsys.readouterr().err.strip() == "error: no objects passed to apply"
