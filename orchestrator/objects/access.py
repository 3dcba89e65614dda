"""What controllers and the scheduler need of the cluster's objects: `ObjectAccess`.

Two implementations satisfy it: the registry itself (`registry.Registry`, when the
controllers run in the master's process) and `reconcile.remote.ApiRegistry` (the same calls
over the API, when they run in a process of their own, as `dockyard controller-manager`
does). Controllers are written against this protocol only, so they run unchanged in both.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Protocol

from . import Obj
from .kinds import Kind


class ObjectAccess(Protocol):
    clock: Callable[[], datetime]

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj: ...

    def try_get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None: ...

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> Obj: ...

    def items(self, kind: Kind, namespace: str | None = None) -> builtins.list[Obj]: ...

    def create(self, kind: Kind, namespace: str | None, body: Obj) -> Obj: ...

    def update(self, kind: Kind, namespace: str | None, name: str, body: Obj, subresource: str = "") -> Obj: ...

    def patch(self, kind: Kind, namespace: str | None, name: str, body: Any, content_type: str,
              subresource: str = "") -> Obj: ...

    def delete(self, kind: Kind, namespace: str | None, name: str, grace_period: int | None = None,
               propagation: str = "Background", precondition_uid: str | None = None) -> Obj: ...

    def bind(self, namespace: str, name: str, node: str, uid: str | None = None) -> Obj | None:
        """Bind the pod to `node`; the bound pod, or None when the answer does not carry it
        (over the API: a Binding is answered with a Status, as Kubernetes does)."""

    def update_scale(self, kind: Kind, namespace: str, name: str, scale: Obj) -> Obj: ...

    def finalize_namespace(self, name: str) -> None: ...

    def watch(self, kind: Kind, namespace: str | None, resource_version: str | None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout: float | None = None, bookmarks: bool = False) -> AsyncIterator[Obj]: ...
