"""An in-memory API behind httpx.MockTransport, enough for CLI unit tests (no server)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.cli import output
from orchestrator.client import Client

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/v1)(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[a-z]+)"
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
        res, ns, name, sub = m["res"], m["ns"] or "", m["name"], m["sub"]
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
            obj["metadata"].setdefault("namespace", ns) if ns else None
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
