"""The API client shared by the CLI, the agent, the tests and the benchmarks.

A thin layer over httpx: Kubernetes paths built from `objects.kinds`, bearer token over
TLS verified against the cluster CA, `metav1.Status` bodies turned into `ApiError`, and
watch streams as iterators of `{"type", "object"}` events. Configuration comes from a
kubeconfig-format file (the one `dockyard up` writes, also usable by kubectl).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from .errors import ApiError
from .objects.kinds import Kind, by_kind

DEFAULT_CONFIG = "~/.dockyard/config"

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class ConnectionFailed(ApiError):
    """The API server could not be reached at all."""

    def __init__(self, server: str, cause: Exception) -> None:
        super().__init__(
            0,
            "ServiceUnavailable",
            f"cannot reach the Dockyard API at {server} ({type(cause).__name__}: {cause}); "
            "is the master running? (start one with `dockyard up`)",
        )


class ConfigError(Exception):
    """The kubeconfig is missing or malformed."""


def config_path(explicit: str | None = None) -> Path:
    return Path(os.path.expanduser(explicit or os.environ.get("DOCKYARD_CONFIG") or DEFAULT_CONFIG))


def load_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster config at {path}: start a cluster with `dockyard up`, "
            "or pass --kubeconfig / set DOCKYARD_CONFIG"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a kubeconfig file")
    return data


def _named(items: list[dict[str, Any]] | None, name: str, what: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise ConfigError(f"{path}: {what} {name!r} not found")


def ssl_context(ca_pem: bytes | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if ca_pem:
        ctx = ssl.create_default_context(cadata=ca_pem.decode())
    return ctx


class Client:
    def __init__(
        self,
        server: str,
        token: str | None,
        ca_pem: bytes | None = None,
        namespace: str = "default",
        timeout: float = 30.0,
        user_agent: str = "dockyard",
    ) -> None:
        self.server = server.rstrip("/")
        if token and not self.server.startswith("https://"):
            raise ConfigError(f"refusing to send credentials to {self.server}: the Dockyard API is served over https only")
        self.token = token
        self.ca_pem = ca_pem
        self.namespace = namespace
        # sent as `fieldValidation` on writes when set: the CLI asks for "Strict", as kubectl
        # does, so a typo in a manifest is refused instead of dropped with a warning
        self.field_validation: str | None = None
        # its first word names the writer in managedFields (the API's default field manager)
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._verify = ssl_context(ca_pem) if self.server.startswith("https") else True
        self.http = httpx.Client(
            base_url=self.server, headers=headers, verify=self._verify, timeout=timeout
        )

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, namespace: str | None = None
    ) -> Client:
        p = config_path(path)
        cfg = load_kubeconfig(p)
        ctx_name = context or cfg.get("current-context")
        if not ctx_name:
            raise ConfigError(f"{p}: no current-context set; use `dockyard config use-context NAME`")
        ctx = _named(cfg.get("contexts"), ctx_name, "context", p)
        cluster = _named(cfg.get("clusters"), ctx.get("cluster", ""), "cluster", p)
        user = _named(cfg.get("users"), ctx.get("user", ""), "user", p)
        server = cluster.get("server")
        if not server:
            raise ConfigError(f"{p}: cluster {ctx.get('cluster')!r} has no server")
        ca = cluster.get("certificate-authority-data")
        ca_pem = base64.b64decode(ca) if ca else None
        if ca_pem is None and cluster.get("certificate-authority"):
            ca_pem = Path(cluster["certificate-authority"]).read_bytes()
        return cls(
            server,
            user.get("token"),
            ca_pem,
            namespace=namespace or ctx.get("namespace") or "default",
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        if self.field_validation and method in ("POST", "PUT", "PATCH") and content is not None:
            params = {"fieldValidation": self.field_validation, **(params or {})}
        try:
            r = self.http.request(method, path, content=content, params=params, headers=headers)
        except httpx.TransportError as e:
            raise ConnectionFailed(self.server, e) from None
        return self._decode(r)

    @staticmethod
    def _decode(r: httpx.Response) -> Any:
        try:
            data = r.json() if r.content else {}
        except ValueError:
            data = None
        if r.status_code >= 400:
            if isinstance(data, dict) and data.get("kind") == "Status":
                raise ApiError.from_status(data, r.status_code)
            raise ApiError(r.status_code, "Unknown", f"HTTP {r.status_code}: {r.text[:200]}")
        return data if data is not None else r.text

    # -- typed helpers ------------------------------------------------------------------

    def _ns(self, kind: Kind, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if kind.namespaced else None

    def path(self, kind: Kind, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        p = kind.base_path(self._ns(kind, namespace))
        if name:
            p += f"/{name}"
        if sub:
            p += f"/{sub}"
        return p

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.request("GET", self.path(kind, namespace, name))

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        all_namespaces: bool = False,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        path = kind.base_path(None if all_namespaces else self._ns(kind, namespace))
        return self.request("GET", path, params=params)

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        kind = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", self.path(kind, ns), obj)

    def replace(self, obj: dict[str, Any], sub: str = "") -> dict[str, Any]:
        kind = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata", {})
        return self.request("PUT", self.path(kind, meta.get("namespace"), meta["name"], sub), obj)

    def replace_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.replace(obj, "status")

    def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        sub: str = "",
    ) -> dict[str, Any]:
        return self.request(
            "PATCH", self.path(kind, namespace, name, sub), patch, content_type=PATCH_TYPES[patch_type]
        )

    def delete(
        self, kind: Kind, name: str, namespace: str | None = None, grace_period: int | None = None,
        uid: str | None = None,
    ) -> dict[str, Any]:
        """Delete one object; with `uid`, only that incarnation of it (409 otherwise)."""
        params = {"gracePeriodSeconds": grace_period} if grace_period is not None else None
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}} if uid else None
        return self.request("DELETE", self.path(kind, namespace, name), body, params=params)

    def watch(
        self,
        kind: Kind,
        namespace: str | None = None,
        all_namespaces: bool = False,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield watch events until the server ends the stream (or the caller stops)."""
        params: dict[str, Any] = {"watch": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if timeout_seconds:
            params["timeoutSeconds"] = timeout_seconds
        path = kind.base_path(None if all_namespaces else self._ns(kind, namespace))
        timeout = httpx.Timeout(10.0, read=(timeout_seconds + 30) if timeout_seconds else None)
        try:
            with self.http.stream("GET", path, params=params, timeout=timeout) as r:
                if r.status_code >= 400:
                    r.read()
                    self._decode(r)
                for line in r.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as e:
            raise ConnectionFailed(self.server, e) from None
