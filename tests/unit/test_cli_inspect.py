"""Pure parts of `diff`, `explain`, `auth can-i`, `cp` and `events`."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import auth, cp, diff, events, explain
from orchestrator.cli.output import CliError
from orchestrator.objects.kinds import resolve


def test_diff_file_names_are_kubectls() -> None:
    assert diff.file_name({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "web", "namespace": "default"}}) == "apps.v1.Deployment.default.web"
    assert diff.file_name({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}) == "v1.Namespace.x"


def test_diff_masks_secret_values() -> None:
    live = {"kind": "Secret", "data": {"same": "YQ==", "changed": "Yg==", "gone": "Yw=="}}
    merged = {"kind": "Secret", "data": {"same": "YQ==", "changed": "Zg==", "new": "ZA=="}}
    diff.mask_secrets(live, merged)
    assert live["data"] == {"same": "***", "changed": "*** (before)", "gone": "*** (before)"}
    assert merged["data"] == {"same": "***", "changed": "*** (after)", "new": "*** (after)"}


def test_python_diff_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "LIVE", tmp_path / "MERGED"
    a.mkdir()
    b.mkdir()
    (a / "v1.ConfigMap.default.c").write_text("data:\n  a: '1'\n")
    (b / "v1.ConfigMap.default.c").write_text("data:\n  a: '1'\n")
    assert diff.python_diff(a, b) == 0 and capsys.readouterr().out == ""
    (b / "v1.ConfigMap.default.c").write_text("data:\n  a: '2'\n")
    assert diff.python_diff(a, b) == 1
    out = capsys.readouterr().out
    assert "-  a: '1'" in out and "+  a: '2'" in out


PORT = {"type": "object", "properties": {"containerPort": {"type": "integer"}}}
CONTAINER = {"type": "object", "properties": {
    "name": {"type": "string", "description": "Name of the container."},
    "ports": {"type": "array", "items": PORT}}}
POD_SPEC = {"type": "object", "properties": {"containers": {"type": "array", "items": CONTAINER}}}
SPEC = {"type": "object", "description": "Specification of the desired behavior.", "required": ["selector"],
        "properties": {
            "replicas": {"type": "integer", "description": "Number of desired pods."},
            "selector": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"},
            "template": {"type": "object", "properties": {"spec": POD_SPEC}}}}
DEPLOYMENT = {
    "description": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Deployment"}],
    "type": "object",
    "properties": {"apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema."},
                   "spec": SPEC}}
SELECTOR = {"type": "object", "description": "A label selector.",
            "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}}
DOC: dict[str, Any] = {"components": {"schemas": {
    "io.k8s.api.apps.v1.Deployment": DEPLOYMENT,
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector": SELECTOR}}}


def test_explain_a_kind_and_a_field() -> None:
    kind = resolve("deploy")
    out = explain.explain_text(DOC, kind, [])
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nDESCRIPTION:\n"
                          "    Deployment enables declarative updates for Pods and ReplicaSets.\n")
    assert "  spec\t<Object>\n    Specification of the desired behavior.\n" in out
    out = explain.explain_text(DOC, kind, ["spec", "replicas"])
    assert "FIELD: replicas <integer>\n\nDESCRIPTION:\n    Number of desired pods." in out
    out = explain.explain_text(DOC, kind, ["spec"])
    assert "  selector\t<LabelSelector> -required-" in out
    out = explain.explain_text(DOC, kind, ["spec", "selector", "matchLabels"])
    assert "FIELD: matchLabels <map[string]string>" in out
    out = explain.explain_text(DOC, kind, ["spec", "template", "spec", "containers"])
    assert "FIELD: containers <[]Object>" in out and "  name\t<string>" in out
    out = explain.explain_text(DOC, kind, ["spec"], recursive=True)
    assert "    spec\t<Object>\n      containers\t<[]Object>\n        name\t<string>" in out
    with pytest.raises(CliError, match='field "nope" does not exist'):
        explain.explain_text(DOC, kind, ["spec", "nope"])


def test_can_i_attributes() -> None:
    warnings: list[str] = []
    assert auth.attributes("create", "deploy", None, None, "default") == {"resourceAttributes": {
        "namespace": "default", "verb": "create", "group": "apps", "resource": "deployments"}}
    assert auth.attributes("get", "pods/log", None, None, "ns") == {"resourceAttributes": {
        "namespace": "ns", "verb": "get", "resource": "pods", "subresource": "log"}}
    assert auth.attributes("delete", "pod/web", None, None, "") == {"resourceAttributes": {
        "verb": "delete", "resource": "pods", "name": "web"}}
    assert auth.attributes("get", "/healthz", None, None, "x") == {
        "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}
    spec = auth.attributes("list", "widgets.example.com", None, None, "d", warn=warnings.append)
    assert spec["resourceAttributes"]["group"] == "example.com" and spec["resourceAttributes"]["resource"] == "widgets"
    assert warnings == ["Warning: the server doesn't have a resource type 'widgets.example.com'"]


def test_cp_remote_specs() -> None:
    assert cp.split_remote("web-1:/etc/x") == (None, "web-1", "/etc/x")
    assert cp.split_remote("ns/web-1:/etc/x") == ("ns", "web-1", "/etc/x")
    assert cp.split_remote("/local/a:b") is None
    assert cp.split_remote("./a:b") is None
    assert cp.split_remote("plain") is None


def _tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cp_extract_renames_and_refuses_escapes(tmp_path: Path) -> None:
    cp.extract(_tar({"f": b"1"}), "f", tmp_path / "g")
    assert (tmp_path / "g").read_bytes() == b"1"
    (tmp_path / "dir").mkdir()
    cp.extract(_tar({"f": b"2"}), "f", tmp_path / "dir")
    assert (tmp_path / "dir" / "f").read_bytes() == b"2"
    cp.extract(_tar({"d/a/b": b"3"}), "d", tmp_path / "copy")
    assert (tmp_path / "copy" / "a" / "b").read_bytes() == b"3"
    with pytest.raises(CliError, match="outside the destination"):
        cp.extract(_tar({"d/../../evil": b"x"}), "d", tmp_path / "copy2")
    assert not (tmp_path / "evil").exists()


def test_cp_pack_names_the_top_entry(tmp_path: Path) -> None:
    (tmp_path / "src").write_text("x")
    with tarfile.open(fileobj=io.BytesIO(cp.pack(tmp_path / "src", "dest.txt"))) as tar:
        assert tar.getnames() == ["dest.txt"]


def test_events_last_seen_and_order() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    once: dict[str, Any] = {"metadata": {"name": "a"}, "lastTimestamp": "2026-01-01T11:59:50Z", "count": 1}
    many: dict[str, Any] = {"metadata": {"name": "b"}, "firstTimestamp": "2026-01-01T11:50:00Z",
            "lastTimestamp": "2026-01-01T11:57:00Z", "count": 4}
    new: dict[str, Any] = {"metadata": {"name": "c"}, "eventTime": "2026-01-01T11:59:59.000000Z"}
    assert events.last_seen(once, now) == "10s"
    assert events.last_seen(many, now) == "3m (x4 over 10m)"
    assert [e["metadata"]["name"] for e in sorted([once, many, new], key=events.sort_key)] == ["b", "a", "c"]
    assert events.parse_for("deploy/web") == ("Deployment", "web")
    assert events.parse_for("web-1") == ("Pod", "web-1")
    ev = {"involvedObject": {"kind": "Pod", "name": "web-1"}, "type": "Warning"}
    assert events.matches(ev, ("Pod", "web-1"), {"warning"}) and not events.matches(ev, None, {"normal"})


def _fake_api(monkeypatch: pytest.MonkeyPatch, answer: Any) -> list[Any]:
    import json

    import httpx

    from orchestrator.cli import output
    from orchestrator.client import Client

    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content), dict(request.headers)))
        return answer(json.loads(request.content))

    def connect(args: Any) -> Client:
        c = Client("https://fake.invalid", None, namespace=getattr(args, "namespace", None) or "default")
        c.http = httpx.Client(transport=httpx.MockTransport(handler), base_url="https://fake.invalid")
        return c

    monkeypatch.setattr(output, "connect", connect)
    return seen


def test_can_i_asks_a_self_subject_access_review(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    from orchestrator.cli.main import main

    def answer(body: dict[str, Any]) -> httpx.Response:
        allowed = body["spec"]["resourceAttributes"]["verb"] != "delete"
        status = {"allowed": allowed} if allowed else {"allowed": False, "reason": "not for you"}
        return httpx.Response(201, json={**body, "status": status})

    seen = _fake_api(monkeypatch, answer)
    assert main(["auth", "can-i", "create", "deploy", "-n", "team"]) == 0
    assert capsys.readouterr().out == "yes\n"
    path, body, headers = seen[-1]
    assert path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert body == {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {
        "resourceAttributes": {"namespace": "team", "verb": "create", "group": "apps", "resource": "deployments"}}}
    assert main(["auth", "can-i", "delete", "nodes", "--as", "system:node:n1"]) == 1
    assert capsys.readouterr().out == "no - not for you\n"
    _, body, headers = seen[-1]
    assert "namespace" not in body["spec"]["resourceAttributes"]  # nodes are cluster-scoped
    assert headers["impersonate-user"] == "system:node:n1"


def test_can_i_when_the_server_does_not_serve_reviews(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    from orchestrator.cli.main import main

    _fake_api(monkeypatch, lambda body: httpx.Response(404, json={"kind": "Status", "code": 404, "reason": "NotFound",
                                                                   "message": "not found"}))
    assert main(["auth", "can-i", "get", "pods"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SelfSubjectAccessReviews (authorization.k8s.io/v1)" in err


def test_default_container_is_kubectls() -> None:
    from orchestrator.cli.logs import default_container

    one = {"spec": {"containers": [{"name": "a"}]}}
    assert default_container(one) == ("a", None)
    two: dict[str, Any] = {"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}}
    assert default_container(two) == ("a", 'Defaulted container "a" out of: a, b, i (init)')
    two["metadata"] = {"annotations": {"kubectl.kubernetes.io/default-container": "b"}}
    assert default_container(two) == ("b", None)
