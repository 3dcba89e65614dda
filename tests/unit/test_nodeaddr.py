"""Where a node's agent is reached, and what its /metrics page says (objects.nodeaddr, objects.scrape)."""

from __future__ import annotations

from orchestrator.api import proxy
from orchestrator.objects import nodeaddr, scrape


def test_address_preference_and_ports() -> None:
    node = {"metadata": {"annotations": {nodeaddr.METRICS_PORT_ANNOTATION: "10249"}},
            "status": {"addresses": [{"type": "Hostname", "address": "h"}, {"type": "ExternalIP", "address": "1.2.3.4"},
                                     {"type": "InternalIP", "address": ""}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    assert nodeaddr.node_address(node) == "1.2.3.4"  # an empty InternalIP does not count
    node["status"]["addresses"] = [{"type": "Hostname", "address": "h"}]
    assert nodeaddr.node_address(node) == "h"
    assert nodeaddr.node_address({}) is None
    assert nodeaddr.kubelet_port(node) == 10250 and nodeaddr.metrics_port(node) == 10249
    node["metadata"]["annotations"][nodeaddr.METRICS_PORT_ANNOTATION] = "not-a-port"
    assert nodeaddr.metrics_port(node) is None


def test_scrape_parsing() -> None:
    text = (
        '# TYPE dockyard_container_cpu_usage_cores gauge\n'
        'dockyard_container_cpu_usage_cores{namespace="default",pod="web",container="app"} 0.25\n'
        '# TYPE container_memory_working_set_bytes gauge\n'
        'container_memory_working_set_bytes{namespace="default",pod="web",container="app"} 1048576\n'
        '# TYPE dockyard_node_used gauge\n'
        'dockyard_node_used{resource="cpu"} 1.5\n'
        '# TYPE other gauge\n'
        'other 3\n'
    )
    got = scrape.parse_scrape(text)
    assert got == {"containers": {("default", "web", "app"): {"cpu": 0.25, "memory": 1048576.0}},
                   "node": {"cpu": 1.5}}


def test_the_proxy_still_offers_the_names() -> None:
    assert proxy.node_address is nodeaddr.node_address and proxy.metrics_port is nodeaddr.metrics_port
    assert proxy.kubelet_port is nodeaddr.kubelet_port and proxy.parse_scrape is scrape.parse_scrape
    assert proxy.METRICS_PORT_ANNOTATION == nodeaddr.METRICS_PORT_ANNOTATION
