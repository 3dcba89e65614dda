"""Where a node's agent is reached: its address and ports, as the Node object publishes them.

The agent writes these into its own Node, and the master's readers (the log/exec proxy, the
metrics.k8s.io view, the autoscaler's metrics client, the master's own metrics) read them
back from here:

* the address: the first non-empty of `status.addresses` of type InternalIP, then
  ExternalIP, then Hostname;
* the kubelet port (HTTPS, log/exec): `status.daemonEndpoints.kubeletEndpoint.Port`;
* the metrics port (plain HTTP `/metrics`): the `dockyard.io/metrics-port` annotation.

Addresses come from node-written status, so callers authenticate the node by name, not by
address (see `orchestrator.nodecerts`).
"""

from __future__ import annotations

from . import Obj

METRICS_PORT_ANNOTATION = "dockyard.io/metrics-port"
ADDRESS_PREFERENCE = ("InternalIP", "ExternalIP", "Hostname")



def node_address(node: Obj) -> str | None:
    """The address to reach the node's agent at, or None when it published none."""
    addrs = (node.get("status") or {}).get("addresses") or []
    for kind in ADDRESS_PREFERENCE:
        for a in addrs:
            if a.get("type") == kind and a.get("address"):
                return str(a["address"])
    return None


def kubelet_port(node: Obj) -> int | None:
    port = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    return int(port) if port else None


def metrics_port(node: Obj) -> int | None:
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(METRICS_PORT_ANNOTATION)
    try:
        return int(value) if value else None
    except ValueError:
        return None
