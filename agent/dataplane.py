"""The node's data plane outside the agent process, and its explicit removal.

What keeps a node's pods reachable does not live in the agent process: the pods' containers
(Docker), the Service rules and the pod network's rules (iptables chains named after the
pod network, see `agent.serviceproxy.chain_prefix`), the routes to other nodes' pod CIDRs
(protocol `agent.network.ROUTE_PROTO`) and the cluster DNS server (its own process, see
`agent.dnsserver`). An agent that stops leaves all of it running, as kubelet and kube-proxy
do, so an upgrade or a restart of the agent drops no traffic; the next agent adopts it.

`teardown` removes all of it but the pods: it is what `dockyard agent --cleanup` runs (like
`kube-proxy --cleanup`), what `dockyard node remove` runs on a node before it uninstalls the
agent, and what an agent started with `cleanup_on_exit` does when it stops. It needs no API
server: everything is found from the pod network's name and the agent's data directory.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from .dnsserver import teardown as dns_teardown
from .network import ROUTE_PROTO, NetChains, parse_routes
from .serviceproxy import Chains, Iptables, IptablesError, chain_prefix, remove_rules

log = logging.getLogger("dockyard.agent.dataplane")

DEFAULT_POD_NETWORK = "dockyard-pods"


def dns_state_dir(data_dir: Path) -> Path:
    """Where the agent keeps its DNS server's state (pid, records)."""
    return Path(data_dir) / "dns"


def remove_routes() -> list[str]:
    """Delete the routes to other nodes' pod CIDRs; returns the CIDRs removed."""
    out = subprocess.run(["ip", "-4", "route", "show", "proto", ROUTE_PROTO], capture_output=True, text=True,
                         check=False).stdout
    removed = []
    for r in parse_routes(out):
        subprocess.run(["ip", "route", "del", r.cidr, "via", r.via, "proto", ROUTE_PROTO], capture_output=True,
                       check=False)
        removed.append(r.cidr)
    return removed


def teardown(data_dir: Path, network: str = DEFAULT_POD_NETWORK, routes: bool = True) -> list[str]:
    """Remove the node's Service rules, pod network rules, routes and DNS server; returns what
    was removed (for the caller's report). Pods and their containers are left alone."""
    done: list[str] = []
    prefix = chain_prefix(network)
    try:
        ipt = Iptables()
        remove_rules(ipt, Chains(prefix))
        remove_rules(ipt, NetChains(prefix))
        done.append("service and pod network rules")
    except (IptablesError, OSError) as e:
        log.warning("removing iptables rules failed: %s", e)
    if routes:
        try:
            if remove_routes():
                done.append("pod routes")
        except OSError as e:
            log.warning("removing pod routes failed: %s", e)
    if dns_teardown(dns_state_dir(data_dir)):
        done.append("cluster DNS server")
    return done
