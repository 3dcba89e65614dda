"""Reading an agent's `/metrics` page: per-container and node resource usage.

An agent exposes Prometheus text: `dockyard_container_cpu_usage_cores` and
`container_memory_working_set_bytes` per container (labels `namespace`, `pod`,
`container`), and `dockyard_node_used` per resource (label `resource`). `parse_scrape`
turns a page into

    {"containers": {(namespace, pod, container): {"cpu": cores, "memory": bytes}},
     "node": {"cpu": cores, "memory": bytes, ...}}

for the metrics.k8s.io view and the autoscaler's metrics client. Other samples are ignored.
"""

from __future__ import annotations

from typing import Any

CONTAINER_CPU = "dockyard_container_cpu_usage_cores"
CONTAINER_MEMORY = "container_memory_working_set_bytes"
NODE_USED = "dockyard_node_used"


def parse_scrape(text: str) -> dict[str, Any]:
    """Per-container cpu cores / memory bytes and node usage from an agent's exposition text."""
    from prometheus_client.parser import text_string_to_metric_families  # imported on first use

    containers: dict[tuple[str, str, str], dict[str, float]] = {}
    node: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == CONTAINER_CPU:
                key = (s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("container", ""))
                containers.setdefault(key, {})["cpu"] = float(s.value)
            elif s.name == CONTAINER_MEMORY:
                key = (s.labels.get("namespace", ""), s.labels.get("pod", ""), s.labels.get("container", ""))
                containers.setdefault(key, {})["memory"] = float(s.value)
            elif s.name == NODE_USED:
                node[s.labels.get("resource", "")] = float(s.value)
    return {"containers": containers, "node": node}
