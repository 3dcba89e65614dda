"""`ApiRegistry`: the registry's calls that controllers make (`reconcile.access.ObjectAccess`),
over the API, for controllers and a scheduler running in a process of their own.

Reads and writes are plain requests through `client.Client` (one keep-alive connection per
thread: the controller manager and the scheduler each have theirs); errors come back as the
same `ApiError`s the registry raises, so the controllers' handling of 404/409 is unchanged.
A watch is an async stream on the calling runner's own event loop (an `httpx.AsyncClient`
made for it and closed with it), so cancelling the informer's task ends the request.
A Binding names the pod's uid, as kube-scheduler's does: a pod deleted and created again
under the same name meanwhile is not bound by a decision taken for the old one.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from ..client import Client, ConnectionFailed, ssl_context
from ..errors import ApiError
from ..objects import Obj
from ..objects.kinds import Kind, by_kind

POD = by_kind("v1", "Pod")
NAMESPACE = by_kind("v1", "Namespace")
WATCH_SECONDS = 300  # a watch is ended by the server after this long and resumed


def utcnow() -> datetime:
    return datetime.now(UTC)


class ApiRegistry:
    def __init__(self, server: str, token: str, ca_pem: bytes | None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.ca_pem = ca_pem
        self.timeout = timeout
        self.clock = utcnow
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        c: Client | None = getattr(self._local, "client", None)
        if c is None:
            c = Client(self.server, self.token, self.ca_pem, timeout=self.timeout)
            self._local.client = c
            with self._lock:
                self._clients.append(c)
        return c

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for c in clients:
            c.close()

    def _path(self, kind: Kind, namespace: str | None, name: str | None = None, sub: str = "") -> str:
        p = kind.base_path(namespace if kind.namespaced else None)
        if name:
            p += f"/{name}"
        if sub:
            p += f"/{sub}"
        return p

    # -- reads --------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        out: Obj = self.client.request("GET", self._path(kind, namespace, name))
        return out

    def try_get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get(kind, namespace, name)
        except ApiError as e:
            if e.code == 404 and not isinstance(e, ConnectionFailed):
                return None
            raise

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> Obj:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        out: Obj = self.client.request("GET", self._path(kind, namespace), params=params or None)
        return out

    def items(self, kind: Kind, namespace: str | None = None) -> builtins.list[Obj]:
        items: builtins.list[Obj] = self.list(kind, namespace)["items"]
        return items

    # -- writes -------------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str | None, body: Obj) -> Obj:
        out: Obj = self.client.request("POST", self._path(kind, namespace), self._typed(kind, body))
        return out

    def update(self, kind: Kind, namespace: str | None, name: str, body: Obj, subresource: str = "") -> Obj:
        out: Obj = self.client.request("PUT", self._path(kind, namespace, name, subresource), self._typed(kind, body))
        return out

    def patch(self, kind: Kind, namespace: str | None, name: str, body: Any, content_type: str,
              subresource: str = "") -> Obj:
        out: Obj = self.client.request("PATCH", self._path(kind, namespace, name, subresource), body,
                                       content_type=content_type)
        return out

    def delete(self, kind: Kind, namespace: str | None, name: str, grace_period: int | None = None,
               propagation: str = "Background", precondition_uid: str | None = None) -> Obj:
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if precondition_uid:
            options["preconditions"] = {"uid": precondition_uid}
        out: Obj = self.client.request("DELETE", self._path(kind, namespace, name), options)
        return out

    def bind(self, namespace: str, name: str, node: str, uid: str | None = None) -> Obj | None:
        binding: Obj = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        if uid:
            binding["metadata"]["uid"] = uid
        self.client.request("POST", self._path(POD, namespace, name, "binding"), binding)
        return None  # a Status; the pod comes back on the watch

    def update_scale(self, kind: Kind, namespace: str, name: str, scale: Obj) -> Obj:
        body = {"apiVersion": "autoscaling/v1", "kind": "Scale", **scale,
                "metadata": {**(scale.get("metadata") or {}), "name": name, "namespace": namespace}}
        out: Obj = self.client.request("PUT", self._path(kind, namespace, name, "scale"), body)
        return out

    def finalize_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {"finalizers": []}}
        self.client.request("PUT", self._path(NAMESPACE, None, name, "finalize"), body)

    @staticmethod
    def _typed(kind: Kind, body: Obj) -> Obj:
        if body.get("apiVersion") and body.get("kind"):
            return body
        return {**body, "apiVersion": kind.api_version, "kind": kind.kind}

    # -- watch ------------------------------------------------------------------------

    async def watch(self, kind: Kind, namespace: str | None, resource_version: str | None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout: float | None = None, bookmarks: bool = False) -> AsyncIterator[Obj]:
        params: dict[str, Any] = {"watch": "true", "timeoutSeconds": int(timeout or WATCH_SECONDS)}
        for key, value in (("resourceVersion", resource_version), ("labelSelector", label_selector),
                           ("fieldSelector", field_selector)):
            if value:
                params[key] = value
        if bookmarks:
            params["allowWatchBookmarks"] = "true"
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", "User-Agent": "dockyard"}
        read = float(params["timeoutSeconds"]) + 30
        try:
            async with httpx.AsyncClient(base_url=self.server, headers=headers, verify=ssl_context(self.ca_pem),
                                         timeout=httpx.Timeout(10.0, read=read)) as http, \
                    http.stream("GET", self._path(kind, namespace), params=params) as r:
                if r.status_code >= 400:
                    await r.aread()
                    Client._decode(r)
                async for line in r.aiter_lines():
                    if line.strip():
                        event: Obj = json.loads(line)
                        yield event
        except httpx.TransportError as e:
            raise ConnectionFailed(self.server, e) from None
