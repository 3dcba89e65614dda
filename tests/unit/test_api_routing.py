"""The API's precompiled routing answers exactly as Starlette's router would, route for route."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from orchestrator.api.app import ApiRouter, ApiServer, request_path
from orchestrator.api.auth import Authenticator
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
SECRET = b"n" * 32
H = {"Authorization": f"Bearer {ADMIN}"}


async def extra(request: Request) -> Response:
    return PlainTextResponse(f"extra {request.path_params}")


async def ws(websocket: WebSocket) -> None:
    await websocket.close()


@pytest.fixture
def apps(tmp_path: Path) -> tuple[TestClient, TestClient]:
    """(the API, a plain Starlette app with the very same routes)."""
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", SECRET), b"PEM",
                       lambda n: node_token(SECRET, n))
    server.add_routes([
        Route("/api/v1/namespaces/{namespace}/pods/{name}/log", extra, methods=["GET"]),
        WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", ws),
        Route("/apis/metrics.k8s.io/v1beta1/nodes/{name}", extra, methods=["GET"]),
        Route("/metrics", extra, methods=["GET"]),
    ])
    assert isinstance(server.app.router, ApiRouter)
    plain = Starlette(routes=list(server.app.router.routes))
    fast = TestClient(server.app)
    fast.get("/api/v1/nodes", headers=H)
    assert server.app.router._catch_all is server.app.router.routes[-1]  # the precompiled path is taken
    return fast, TestClient(plain)


CASES = [
    ("GET", "/api/v1/nodes"),
    ("GET", "/api/v1/nodes/n1"),
    ("GET", "/api/v1/namespaces/default/configmaps/a%3Fb"),
    ("GET", "/api/v1/namespaces/default/configmaps/a%23b"),
    ("GET", "/api/v1/namespaces/default/pods/web/log"),
    ("POST", "/api/v1/namespaces/default/pods/web/log"),
    ("GET", "/api/v1/namespaces/default/pods/web/exec"),
    ("GET", "/apis/metrics.k8s.io/v1beta1/nodes/n1"),
    ("DELETE", "/apis/metrics.k8s.io/v1beta1/nodes/n1"),
    ("GET", "/metrics"),
    ("PUT", "/metrics"),
    ("GET", "/version"),
    ("OPTIONS", "/version"),
    ("OPTIONS", "/api/v1/nodes"),
    ("HEAD", "/api/v1/nodes/n1"),
    ("GET", "/healthz"),
    ("GET", "/nothing/here"),
    ("GET", "/"),
    ("GET", "//api/v1/nodes"),
]


@pytest.mark.parametrize(("method", "path"), CASES)
def test_routes_as_starlette_does(apps: tuple[TestClient, TestClient], method: str, path: str) -> None:
    fast, plain = apps
    a, b = fast.request(method, path, headers=H), plain.request(method, path, headers=H)
    assert (a.status_code, a.headers.get("allow"), a.content) == (b.status_code, b.headers.get("allow"), b.content)


def test_routes_added_later_are_routed(apps: tuple[TestClient, TestClient], tmp_path: Path) -> None:
    fast, _ = apps
    assert fast.get("/late", headers=H).status_code == 404  # the catch-all's NotFound Status
    app = fast.app
    assert isinstance(app, Starlette)
    app.router.routes[-1:-1] = [Route("/late", extra, methods=["GET"])]
    assert fast.get("/late", headers=H).text == "extra {}"


@pytest.mark.parametrize("path", ["/api/v1/nodes/n1", "/a?b", "/a#b", "/a\\b", "/a%b", "/ü"])
def test_request_path_is_the_urls_path(path: str) -> None:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "root_path": "",
             "headers": [(b"host", b"example")], "server": ("127.0.0.1", 443), "scheme": "https"}
    request = Request(scope)
    assert request_path(request) == request.url.path


def test_long_paths_are_parsed_but_not_kept() -> None:
    from orchestrator.api import app

    before = app._parse_path_cached.cache_info().currsize
    long_name = "a" * (app.CACHED_KEY_MAX + 1)
    assert app.parse_path(f"/api/v1/nodes/{long_name}").name == long_name
    assert app._parse_path_cached.cache_info().currsize == before
    assert app.parse_path("/api/v1/nodes/short").name == "short"


@pytest.mark.parametrize(("path", "kind"), [
    ("/api", "APIVersions"), ("/api/", "APIVersions"), ("/apis", "APIGroupList"),
    ("/api/v1", "APIResourceList"), ("/apis/apps/v1/", "APIResourceList"),
    ("/api//v1", "APIResourceList"), ("/apis//apps/v1", "APIResourceList"),
])
def test_discovery_is_answered_on_every_spelling_of_its_paths(
    apps: tuple[TestClient, TestClient], path: str, kind: str
) -> None:
    fast, _ = apps
    r = fast.get(path, headers=H)
    assert r.status_code == 200 and r.json()["kind"] == kind
