"""A plain JSON GET of one object answers with the body the registry keeps per revision:
byte for byte what encoding a fresh read gives, never stale, and only when the client asked
for the object as it is (not a Table, not metadata only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects.kinds import by_kind
from orchestrator.pki import node_token
from orchestrator.registry import Registry, dumps, generic
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
SECRET = b"n" * 32
H = {"Authorization": f"Bearer {ADMIN}"}
CM = by_kind("v1", "ConfigMap")
PATH = "/api/v1/namespaces/default/configmaps/c"


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    # objects made long ago: Table AGE cells cannot change between two answers compared
    r = Registry(SQLiteStore(str(tmp_path / "s.db")), clock=lambda: datetime(2020, 1, 1, tzinfo=UTC))
    r.ensure_namespaces()
    yield r
    r.store.close()


@pytest.fixture
def client(reg: Registry) -> TestClient:
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", SECRET), b"PEM",
                       lambda n: node_token(SECRET, n))
    return TestClient(server.app)


def configmap(data: dict[str, str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}


def test_the_kept_body_is_the_encoded_object(reg: Registry) -> None:
    reg.create(CM, "default", configmap({"k": "é ü \u2028 \"quoted\" </script>", "n": "1.0"}))
    for _ in range(2):  # made, then kept
        assert reg.get_json(CM, "default", "c") == dumps(reg.get(CM, "default", "c"))
    reg.update(CM, "default", "c", {**reg.get(CM, "default", "c"), "data": {"k": "v2"}})
    body = reg.get_json(CM, "default", "c")
    assert body == dumps(reg.get(CM, "default", "c"))
    assert json.loads(body)["data"] == {"k": "v2"}
    reg.delete(CM, "default", "c")
    with pytest.raises(Exception) as err:  # noqa: PT011 - the ApiError NotFound
        reg.get_json(CM, "default", "c")
    assert getattr(err.value, "code", None) == 404


def test_callers_of_get_still_own_what_they_get(reg: Registry) -> None:
    reg.create(CM, "default", configmap({"k": "v"}))
    body = reg.get_json(CM, "default", "c")
    obj = reg.get(CM, "default", "c")
    obj["data"]["k"] = "changed"
    assert reg.get_json(CM, "default", "c") == body
    assert reg.get(CM, "default", "c")["data"] == {"k": "v"}


def test_kept_bodies_are_bounded(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generic, "_BODIES_KEPT", 3)
    for i in range(8):
        reg.create(CM, "default", {**configmap({"i": str(i)}), "metadata": {"name": f"c{i}"}})
        reg.get_json(CM, "default", f"c{i}")
        assert len(reg._bodies) <= 3
    assert reg._bodies_bytes == sum(len(b) for b in reg._bodies.values())
    monkeypatch.setattr(generic, "_BODIES_KEPT_BYTES", 16 * 100)
    reg.create(CM, "default", {**configmap({"pad": "x" * 500}), "metadata": {"name": "big"}})
    body = reg.get_json(CM, "default", "big")
    assert json.loads(body)["data"]["pad"] == "x" * 500
    assert not any(key.endswith("/big") for key, _ in reg._bodies)
    assert reg._bodies_bytes == sum(len(b) for b in reg._bodies.values()) <= 16 * 100


def test_the_api_answers_a_plain_get_with_the_kept_body(reg: Registry, client: TestClient) -> None:
    assert client.post("/api/v1/namespaces/default/configmaps", json=configmap({"k": "é"}), headers=H).status_code == 201
    expected = dumps(reg.get(CM, "default", "c"))
    for accept in (None, "application/json", "application/yaml", "application/vnd.kubernetes.protobuf, */*"):
        headers = {**H, "Accept": accept} if accept else H
        for path in (PATH, PATH + "?resourceVersion=0"):
            r = client.get(path, headers=headers)
            assert r.status_code == 200 and r.content == expected
            assert r.headers["content-type"] == "application/json"
    updated = client.put(PATH, json={**json.loads(expected), "data": {"k": "v2"}}, headers=H)
    assert updated.status_code == 200
    again = client.get(PATH, headers=H)
    assert again.content == dumps(reg.get(CM, "default", "c")) and again.json()["data"] == {"k": "v2"}
    assert client.get(PATH + "-missing", headers=H).status_code == 404


def test_tables_and_metadata_are_not_the_kept_body(client: TestClient) -> None:
    client.post("/api/v1/namespaces/default/configmaps", json=configmap({"k": "v"}), headers=H)
    table = client.get(PATH, headers={**H, "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert table["kind"] == "Table" and table["rows"][0]["cells"][0] == "c"
    partial = client.get(PATH, headers={**H, "Accept": "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"})
    assert partial.json()["kind"] == "PartialObjectMetadata" and "data" not in partial.json()
    assert client.get(PATH + "?includeObject=Nope", headers=H).status_code == 400


def test_the_short_path_answers_as_the_general_one(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ApiServer._plain_get` (an admin's plain GET of one object) answers every request
    exactly as the general path does, and leaves every other request to it."""
    authn = Authenticator(ADMIN, "K10" + "0" * 64 + "::node:join", SECRET)
    server = ApiServer(reg, authn, b"PEM", lambda n: node_token(SECRET, n))
    seen: list[tuple[str, str, int]] = []
    server.request_hooks.append(lambda verb, path, code, seconds: seen.append((verb, path, code)))
    client = TestClient(server.app)
    client.post("/api/v1/namespaces/default/configmaps", json=configmap({"k": "é"}), headers=H)
    node = {"Authorization": f"Bearer {node_token(SECRET, 'n1')}"}
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    requests = [
        (PATH, H), (PATH + "/", H), (PATH + "-missing", H), (PATH + "?resourceVersion=0", H),
        (PATH, {**H, **table}), (PATH, {**H, "Accept": "application/yaml"}), (PATH, {}),
        (PATH, {"Authorization": "Bearer wrong"}), (PATH, node), ("/api/v1/namespaces/default/pods/nope", node),
        ("/api/v1", H), ("/apis/apps/v1/", H), ("/api//v1", H), ("/openapi/v2", H), ("/api/v1/nodes", H),
        ("/api/v1/namespaces/default/configmaps", H), ("/api/v1/namespaces/default/nope/c", H),
        ("/api/v1/namespaces/default/configmaps/c/status", H), ("/api/v1/namespaces/default", H),
        ("/apis/dockyard.io/v1/nodecredentials", H),
    ]

    def answers() -> list[tuple[int, str | None, bytes]]:
        out = []
        for path, headers in requests:
            r = client.get(path, headers=headers)
            out.append((r.status_code, r.headers.get("content-type"), r.content))
        return out

    scope = {"type": "http", "method": "GET", "path": PATH, "query_string": b"",
             "headers": [(b"accept", b"application/json"), (b"authorization", f"Bearer {ADMIN}".encode())]}
    assert server._plain_get(scope) == dumps(reg.get(CM, "default", "c"))  # taken by the short path
    seen.clear()
    short, short_seen = answers(), list(seen)
    assert short[0][0] == 200 and short[0][2] == dumps(reg.get(CM, "default", "c"))
    assert short[2][0] == 404
    seen.clear()
    monkeypatch.setattr(ApiServer, "_plain_get", lambda self, scope: None)
    general = answers()
    assert short == general
    assert short_seen == seen  # the same (verb, path, code) measured
