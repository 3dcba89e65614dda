"""Keys and the template hash that Deployments and ReplicaSets share with their readers.

The deployment controller writes them; `dockyard rollout` and other clients read them, so
they live here rather than in the controller.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
ROLLED_BACK_TO = "dockyard.io/rolled-back-to-revision"
ROLLED_BACK_HASH = "dockyard.io/rolled-back-template-hash"
# Deployment condition reasons
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
NEW_RS_FAILING = "NewReplicaSetFailing"
ROLLED_BACK = "RolledBack"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """Stable 10-character hash of a pod template, ignoring the pod-template-hash label."""
    tmpl = copy.deepcopy(template or {})
    labels = (tmpl.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    text = json.dumps(tmpl, sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"#{collision_count}"
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    out = []
    for _ in range(10):
        value, idx = divmod(value, len(_SAFE_ALPHABET))
        out.append(_SAFE_ALPHABET[idx])
    return "".join(out)
