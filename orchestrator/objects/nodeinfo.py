"""What an agent publishes about itself on its Node, for the master and the fleet tools.

* ``dockyard.io/agent-instance``: a random id each agent process takes when it starts. A
  tool that restarts an agent (``cluster up``, ``node upgrade``) knows the new one is up
  when the Node is Ready under another instance id: no clock comparison between machines.
* ``dockyard.io/pod-runtime-revision``: the revision of the way the agent runs pods (container
  names, labels and spec hashes, sandbox and network wiring). A new agent of the same
  revision adopts every running pod exactly as it is, so ``node upgrade`` replaces such an
  agent in place without touching the pods; across revisions it drains the node first.
  Bump ``POD_RUNTIME_REVISION`` with any change that would make an agent restart or
  recreate containers an older agent started.
"""

from __future__ import annotations

from typing import Any

POD_RUNTIME_REVISION = 1
AGENT_INSTANCE_ANNOTATION = "dockyard.io/agent-instance"
POD_RUNTIME_ANNOTATION = "dockyard.io/pod-runtime-revision"


def _annotation(node: dict[str, Any] | None, key: str) -> str | None:
    value = (((node or {}).get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value is not None else None


def agent_instance(node: dict[str, Any] | None) -> str | None:
    return _annotation(node, AGENT_INSTANCE_ANNOTATION)


def pod_runtime_revision(node: dict[str, Any] | None) -> int | None:
    """The revision the node's running agent published (None: an agent from before revisions)."""
    value = _annotation(node, POD_RUNTIME_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def keeps_pods(node: dict[str, Any] | None, revision: int = POD_RUNTIME_REVISION) -> bool:
    """Whether an agent of `revision` would adopt this node's pods unchanged."""
    return pod_runtime_revision(node) == revision
