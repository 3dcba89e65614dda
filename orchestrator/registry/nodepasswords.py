"""Node passwords: a node name belongs to the first agent that joined with it, like k3s's.

The join token is shared by every node, so on its own it would let any holder mint a
credential for *any* node name, an existing one included, and then act as that node. Each
agent therefore keeps a random password of its own (``<data-dir>/node-password``, 0600) and
sends it with every join. The first join under a name stores the password's SHA-256 in the
Secret ``kube-system/<node>.node-password.dockyard``; a later join under that name must
present the same password, or it is refused (403) with what to do. Deleting the Node
deletes its password record (the node lifecycle controller does it), so a removed node's
name can be reused; records of names with no Node for `ORPHAN_AFTER` (an agent that joined
but never registered, or a Node deleted while the master was down) are swept too
(`orphaned`), since a joining agent registers its Node within seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import by_kind
from ..objects.timefmt import parse_rfc3339

SECRET = by_kind("v1", "Secret")
NAMESPACE = "kube-system"
SUFFIX = ".node-password.dockyard"
LABEL = "dockyard.io/node-password"
MIN_LENGTH = 16
ORPHAN_AFTER = timedelta(minutes=10)


def secret_name(node: str) -> str:
    return f"{node}{SUFFIX}"


def digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def record(node: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(node), "namespace": NAMESPACE, "labels": {LABEL: node}},
        "type": "dockyard.io/node-password",
        "data": {"hash": base64.b64encode(digest(password).encode()).decode()},
    }


def matches(secret: dict[str, Any], password: str) -> bool:
    stored = base64.b64decode((secret.get("data") or {}).get("hash", "")).decode(errors="replace")
    return hmac.compare_digest(stored, digest(password))


def bind(registry: ObjectAccess, node: str, password: str) -> None:
    """Record `password` for `node` on its first join; refuse a different one later."""
    existing = registry.try_get(SECRET, NAMESPACE, secret_name(node))
    if existing is None:
        try:
            registry.create(SECRET, NAMESPACE, record(node, password))
            return
        except ApiError as e:
            if e.code != 409:
                raise
            existing = registry.try_get(SECRET, NAMESPACE, secret_name(node))
    if existing is not None and not matches(existing, password):
        raise ApiError(
            403, "Forbidden",
            f"node name {node!r} is already taken by a node with another node password; use another name, or, "
            f"if that node is gone for good, `dockyard delete node {node}` first (its password record goes with "
            f"it; a record without a Node is removed {int(ORPHAN_AFTER.total_seconds() // 60)} minutes after the "
            "join)",
        )


def forget(registry: ObjectAccess, node: str) -> bool:
    """Delete `node`'s password record; True if there was one."""
    try:
        registry.delete(SECRET, NAMESPACE, secret_name(node))
        return True
    except ApiError as e:
        if e.code == 404:
            return False
        raise


def orphaned(records: Iterable[dict[str, Any]], nodes: set[str], now: datetime,
             after: timedelta = ORPHAN_AFTER) -> list[str]:
    """Node names whose password record is older than `after` while no such Node exists."""
    out = []
    for rec in records:
        meta = rec.get("metadata") or {}
        name = str(meta.get("name", ""))
        if not name.endswith(SUFFIX) or not (meta.get("labels") or {}).get(LABEL):
            continue
        node = name[: -len(SUFFIX)]
        created = meta.get("creationTimestamp")
        if node not in nodes and created and now - parse_rfc3339(created) > after:
            out.append(node)
    return sorted(out)
