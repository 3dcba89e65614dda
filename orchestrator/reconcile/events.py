"""Events: what happened to an object, as Kubernetes `Event` objects.

Repeated events (same object, type, reason and message) are folded into one object whose
`count` and `lastTimestamp` advance, like the Kubernetes event recorder. Events older than
`ttl` are removed by `prune`.

Thread-safe: the controllers record from their runner's thread while the master prunes
from another; the map of folded events is guarded by a lock, held for no store I/O.
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import timedelta
from typing import Any

from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import by_kind
from ..objects.timefmt import parse_rfc3339, rfc3339

log = logging.getLogger("dockyard.events")

EVENT = by_kind("v1", "Event")


class EventRecorder:
    def __init__(self, registry: ObjectAccess, component: str, instance: str = "") -> None:
        self.registry = registry
        self.component = component
        self.instance = instance or component
        self._names: dict[tuple[str, str, str, str], str] = {}
        self._lock = threading.Lock()  # guards _names

    def record(self, obj: dict[str, Any], etype: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        now = rfc3339(self.registry.clock())
        key = (meta.get("uid", ""), etype, reason, message)
        log.info("%s %s/%s: %s", reason, obj.get("kind", "").lower(), meta.get("name"), message)
        with self._lock:
            name = self._names.get(key)
        if name:
            try:
                ev = self.registry.get(EVENT, ns, name)
                ev["count"] = int(ev.get("count", 1)) + 1
                ev["lastTimestamp"] = now
                self.registry.update(EVENT, ns, name, ev)
                return
            except ApiError:
                pass
        name = f"{meta.get('name', 'object')}.{secrets.token_hex(8)}"
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        if not event["involvedObject"]["namespace"]:
            del event["involvedObject"]["namespace"]
        try:
            self.registry.create(EVENT, ns, event)
            with self._lock:
                self._names[key] = name
                if len(self._names) > 4096:
                    self._names.pop(next(iter(self._names)))
        except ApiError as e:
            log.warning("could not record event %s: %s", reason, e.message)

    def prune(self, ttl: timedelta = timedelta(hours=1)) -> int:
        cutoff = self.registry.clock() - ttl
        removed = 0
        for ev in self.registry.items(EVENT):
            ts = ev.get("lastTimestamp") or ev.get("metadata", {}).get("creationTimestamp")
            try:
                old = ts is not None and parse_rfc3339(ts) < cutoff
            except ValueError:
                old = False
            if old:
                try:
                    self.registry.delete(EVENT, ev["metadata"]["namespace"], ev["metadata"]["name"])
                    removed += 1
                except ApiError:
                    pass
        return removed
