"""Pod network plumbing across hosts: flannel-style host-gw routing.

Each node's pods live on a Docker bridge holding that node's pod CIDR (`spec.podCIDR`,
allocated by the master). For a pod to reach a pod on another node by its IP, every agent:

* routes each other node's pod CIDR via that node's InternalIP
  (``ip route replace 10.42.2.0/24 via 192.168.1.12 proto 211``); the routes carry a
  protocol number of their own so that the routes of nodes that left can be found and
  removed without touching anyone else's routes. This needs the nodes on one L2 segment,
  like flannel's host-gw backend;
* ACCEPTs traffic from and to every pod CIDR in ``DOCKER-USER`` (Docker's FORWARD policy is
  DROP, and its own rules only admit traffic into a bridge for published ports), through
  our chain ``<P>-FORWARD``;
* exempts pod-to-pod traffic from Docker's masquerade (``-s <own CIDR> -d <other CIDR>
  -j ACCEPT`` in ``<P>-POD-NAT``, jumped from nat POSTROUTING before Docker's rule), so
  a pod sees the real source IP of its peers. ACCEPT, not RETURN: a RETURN in our chain
  would only return to POSTROUTING, where Docker's MASQUERADE would still match;
* turns on hairpin mode on the bridge ports, so a pod reaching a Service that picks the
  pod itself gets its own (masqueraded) packets back. The ports are found and set over
  netlink (`ip`), not sysfs: a /sys mounted for another network namespace (containers,
  the lab's hosts) does not show this namespace's bridge.

`plan_network` and `compute_rules` are pure functions of the node list; `PodNetwork.sync`
applies them (iptables-restore of our chains only, like `agent.serviceproxy`) on every
Node watch event and periodically, and `cleanup` removes routes and rules.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from orchestrator.objects import Obj

from .serviceproxy import DEFAULT_PREFIX, ClusterState, Iptables, RuleSet, remove_rules, render_restore

log = logging.getLogger("dockyard.agent.network")

ROUTE_PROTO = "211"


@dataclass(frozen=True)
class Route:
    cidr: str
    via: str


@dataclass(frozen=True)
class NetworkPlan:
    own_cidr: str | None
    pod_cidrs: tuple[str, ...]  # every node's, own included
    routes: tuple[Route, ...]  # to the other nodes' CIDRs


def internal_ip(node: Obj) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP" and addr.get("address"):
            return str(addr["address"])
    return None


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if spec.get("podCIDR") and spec["podCIDR"] not in cidrs:
        cidrs.insert(0, spec["podCIDR"])
    out = []
    for c in cidrs:
        try:
            net = ipaddress.ip_network(c)
        except ValueError:
            continue
        if net.version == 4:
            out.append(str(net))
    return out


def plan_network(node_name: str, nodes: Iterable[Obj]) -> NetworkPlan:
    own: str | None = None
    cidrs: list[str] = []
    routes: list[Route] = []
    own_ip = None
    for node in nodes:
        if (node.get("metadata") or {}).get("name") == node_name:
            own_ip = internal_ip(node)
    for node in sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name") or ""):
        name = (node.get("metadata") or {}).get("name")
        mine = node_cidrs(node)
        cidrs += [c for c in mine if c not in cidrs]
        if name == node_name:
            own = mine[0] if mine else None
            continue
        via = internal_ip(node)
        if via and via != own_ip and not (node.get("metadata") or {}).get("deletionTimestamp"):
            routes += [Route(c, via) for c in mine]
    return NetworkPlan(own, tuple(cidrs), tuple(routes))


@dataclass(frozen=True)
class NetChains:
    prefix: str = DEFAULT_PREFIX

    @property
    def forward(self) -> str:
        return f"{self.prefix}-FORWARD"

    @property
    def pod_nat(self) -> str:
        return f"{self.prefix}-POD-NAT"

    def is_ours(self, chain: str) -> bool:
        return chain in (self.forward, self.pod_nat)

    def jumps(self) -> list[tuple[str, str, list[str]]]:
        return [
            ("filter", "DOCKER-USER", ["-m", "comment", "--comment", "dockyard pod network", "-j", self.forward]),
            ("nat", "POSTROUTING", ["-m", "comment", "--comment", "dockyard pod-to-pod without nat",
                                    "-j", self.pod_nat]),
        ]


def compute_rules(plan: NetworkPlan, chains: NetChains = NetChains()) -> dict[str, RuleSet]:
    flt = RuleSet([chains.forward])
    nat = RuleSet([chains.pod_nat])
    for cidr in plan.pod_cidrs:
        flt.rules.append(f"-A {chains.forward} -s {cidr} -j ACCEPT")
        flt.rules.append(f"-A {chains.forward} -d {cidr} -j ACCEPT")
    if plan.own_cidr:
        for cidr in plan.pod_cidrs:
            if cidr != plan.own_cidr:
                nat.rules.append(f"-A {chains.pod_nat} -s {plan.own_cidr} -d {cidr} -j ACCEPT")
    return {"filter": flt, "nat": nat}


def parse_routes(output: str) -> list[Route]:
    """Routes from `ip -4 route show proto 211` output (`10.42.2.0/24 via 192.168.1.12 dev …`)."""
    out = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "via":
            out.append(Route(parts[0], parts[2]))
    return out


def ports_without_hairpin(output: str) -> list[str]:
    """Bridge ports whose hairpin mode is off, from `ip -d -o link show master <bridge>`."""
    out = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) < 2 or "hairpin" not in parts:
            continue
        i = parts.index("hairpin")
        if i + 1 < len(parts) and parts[i + 1] == "off":
            out.append(parts[1].rstrip(":").split("@", 1)[0])
    return out


def plan_routes(current: Iterable[Route], desired: Iterable[Route]) -> tuple[list[Route], list[Route]]:
    """(routes to add or replace, routes to delete)."""
    cur = set(current)
    want = {r.cidr: r for r in desired}
    add = [r for r in want.values() if r not in cur]
    delete = [r for r in cur if r.cidr not in want]
    return sorted(add, key=lambda r: r.cidr), sorted(delete, key=lambda r: r.cidr)


class PodNetwork:
    def __init__(
        self,
        state: ClusterState,
        node_name: str,
        chains: NetChains = NetChains(),
        bridge: Callable[[], str | None] = lambda: None,
        resync: float = 5.0,
        iptables: Iptables | None = None,
    ) -> None:
        self.state = state
        self.node_name = node_name
        self.chains = chains
        self.bridge = bridge
        self.resync = resync
        self.ipt = iptables or Iptables()
        self._wake = threading.Event()
        state.listeners.append(lambda resource: self._wake.set() if resource == "nodes" else None)

    def _ip(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if check and r.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def sync(self) -> None:
        if not self.state.synced["nodes"]:
            return
        plan = plan_network(self.node_name, self.state.nodes())
        with self.ipt.lock:
            for table, rules in compute_rules(plan, self.chains).items():
                # our chains are fixed: nothing stale to delete (the proxy's chains share the prefix)
                self.ipt.restore(render_restore(table, rules, ()))
            for table, chain, spec in self.chains.jumps():
                self.ipt.ensure_chain(table, chain)
                self.ipt.ensure_jump(table, chain, spec)
        current = parse_routes(self._ip("-4", "route", "show", "proto", ROUTE_PROTO))
        add, delete = plan_routes(current, plan.routes)
        for r in add:
            log.info("route %s via %s", r.cidr, r.via)
            self._ip("route", "replace", r.cidr, "via", r.via, "proto", ROUTE_PROTO)
        for r in delete:
            log.info("removing route %s via %s (node gone)", r.cidr, r.via)
            self._ip("route", "del", r.cidr, "via", r.via, "proto", ROUTE_PROTO, check=False)
        self._hairpin()

    def _hairpin(self) -> None:
        bridge = self.bridge()
        if not bridge:
            return
        out = self._ip("-d", "-o", "link", "show", "master", bridge, check=False)
        for port in ports_without_hairpin(out):
            self._ip("link", "set", "dev", port, "type", "bridge_slave", "hairpin", "on", check=False)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception:
                log.exception("pod network sync failed")
            self._wake.wait(self.resync)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def cleanup(self) -> None:
        try:
            remove_rules(self.ipt, self.chains)
            for r in parse_routes(self._ip("-4", "route", "show", "proto", ROUTE_PROTO, check=False)):
                self._ip("route", "del", r.cidr, "via", r.via, "proto", ROUTE_PROTO, check=False)
        except Exception:
            log.exception("removing pod network rules failed")

