"""Service virtual IPs on a node: kube-proxy's iptables mode.

Every agent programs the nat table of its host so that a connection to a Service's
`clusterIP:port` (from a pod or from the host), or to `<any local address>:nodePort`, is
DNATed to one Ready endpoint of that Service, wherever in the cluster it runs (cross-host
delivery is the pod network's job, see `agent.network`).

Node ports answer on 127.0.0.1 too, as with kube-proxy's iptables mode. A packet from the
host to `127.0.0.1:nodePort` is DNATed in nat OUTPUT to a pod, marked for masquerade like
all node-port traffic, and leaves by the pod bridge with the bridge's address as source.
The kernel lets a 127.0.0.0/8 address leave loopback (and the reply, de-NATed back to
127.0.0.1, come in on the bridge) only with ``net.ipv4.conf.all.route_localnet=1``, which
the proxy sets after it has applied its rules (idempotent; logged when it changes the
value). That setting would also let other hosts on the link reach services bound to
127.0.0.1 (CVE-2020-8558), so, like kube-proxy, the filter chain ``<P>-FIREWALL``
(jumped from INPUT, installed in the same apply and before the sysctl is set) drops
packets to 127.0.0.0/8 from a source outside it unless they belong to a DNATed (node port)
or established connection. Removing our rules (`cleanup()`, `remove_rules`) removes that
chain and its jump too but does not reset the sysctl (neither does kube-proxy's clean-up):
other software on the host may rely on it.

Chains (``<P>`` is the chain prefix, ``DOCKYARD`` by default)::

    nat PREROUTING / OUTPUT  -> <P>-SERVICES
    <P>-SERVICES   -d <clusterIP> -p <proto> --dport <port>        -> <P>-SVC-<hash>
                   (last) -m addrtype --dst-type LOCAL             -> <P>-NODEPORTS
    <P>-NODEPORTS  -p <proto> --dport <nodePort>  -> <P>-MARK-MASQ, <P>-SVC-<hash>
    <P>-SVC-<hash> one rule per endpoint, `-m statistic --mode random --probability
                   1/(n-i)` (the last one unconditional), so each of n endpoints gets 1/n;
                   with `sessionAffinity: ClientIP`, first one `-m recent --rcheck` rule
                   per endpoint sends a client seen recently to the same endpoint
    <P>-SEP-<hash> -s <endpoint ip> -> <P>-MARK-MASQ (hairpin), then DNAT to ip:port
                   (and `-m recent --set` for affinity)
    nat POSTROUTING -> <P>-POSTROUTING: MASQUERADE what <P>-MARK-MASQ marked (0x4000)
    filter OUTPUT / FORWARD -> <P>-REJECT: REJECT connections to a Service port that has
                   no Ready endpoint (instead of letting them leave by the default route)
    filter INPUT -> <P>-FIREWALL: `! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate
                   RELATED,ESTABLISHED,DNAT -j DROP` (see route_localnet above)

Hashes are a digest of `namespace/name:port/protocol` (and the endpoint address), so chain
names are stable across restarts and fit iptables' 28-character limit.

The endpoints come from EndpointSlices, as kube-proxy's do: the slices of a Service are those
labelled `kubernetes.io/service-name: <service>` in its namespace (kept by the EndpointSlice
controller for Services with a selector, by the user otherwise, by the master for
`default/kubernetes`); the IPv4 ones are read. A Service port's endpoints are the ready
endpoints (`conditions.ready` true or unset) that are not terminating, each at the first
of its addresses and the number the slice gives the port of that name and protocol; the
endpoints of all of the Service's slices are merged. Terminating endpoints get no new
connections (the EndpointSlice controller marks them not ready anyway), as before slices.

The rule text is a pure function (`compute_rules`) of Services and EndpointSlices, unit-tested
table-driven. Applying it is one `iptables-restore --noflush` per table: only our chains
are declared (which flushes them) and rewritten, chains of Services that are gone are
deleted (`-X`) in the same transaction, and the jumps from the built-in chains are
checked and inserted with `iptables -C`/`-I`. Packets never see a half-written table.
`ServiceProxy` re-applies at once after a Service/EndpointSlice watch event (coalesced) and
every `resync` seconds whether or not anything changed, which repairs rules (and the
sysctl) that someone changed; `cleanup()` removes our jumps and chains on shutdown.

`ClusterState` is the agent's watch-fed cache of Services, EndpointSlices, Endpoints and
Nodes shared by the proxy (Services, EndpointSlices), the pod network (`agent.network`,
Nodes) and the DNS server (`agent.dns`, Services and Endpoints); one
`agent.listwatch.ListWatch` per resource keeps it current.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.client import Client
from orchestrator.objects import Obj
from orchestrator.objects.kinds import Kind, by_kind

from .listwatch import ListWatch

log = logging.getLogger("dockyard.agent.proxy")

SERVICE = by_kind("v1", "Service")
ENDPOINTS = by_kind("v1", "Endpoints")
ENDPOINT_SLICE = by_kind("discovery.k8s.io/v1", "EndpointSlice")
NODE = by_kind("v1", "Node")
DEFAULT_PREFIX = "DOCKYARD"
MASQ_MARK = "0x4000/0x4000"
LOCALNET = "127.0.0.0/8"
ROUTE_LOCALNET = "net/ipv4/conf/all/route_localnet"  # under /proc/sys
WATCH_TIMEOUT = 60
SERVICE_NAME_LABEL = "kubernetes.io/service-name"



class IptablesError(Exception):
    """An iptables command failed."""


# -- pure rule generation ------------------------------------------------------------------


def chain_hash(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return base64.b32encode(digest).decode()[:15]


@dataclass(frozen=True)
class Chains:
    prefix: str = DEFAULT_PREFIX

    @property
    def services(self) -> str:
        return f"{self.prefix}-SERVICES"

    @property
    def nodeports(self) -> str:
        return f"{self.prefix}-NODEPORTS"

    @property
    def mark_masq(self) -> str:
        return f"{self.prefix}-MARK-MASQ"

    @property
    def postrouting(self) -> str:
        return f"{self.prefix}-POSTROUTING"

    @property
    def reject(self) -> str:
        return f"{self.prefix}-REJECT"

    @property
    def firewall(self) -> str:
        return f"{self.prefix}-FIREWALL"

    def svc(self, key: str) -> str:
        return f"{self.prefix}-SVC-{chain_hash(key)}"

    def sep(self, key: str, ip: str, port: int) -> str:
        return f"{self.prefix}-SEP-{chain_hash(key, ip, str(port))}"

    def is_ours(self, chain: str) -> bool:
        """Chains the proxy owns (the pod network's chains share the prefix but not these)."""
        fixed = (self.services, self.nodeports, self.mark_masq, self.postrouting, self.reject, self.firewall)
        return chain in fixed or chain.startswith((f"{self.prefix}-SVC-", f"{self.prefix}-SEP-"))

    def jumps(self) -> list[tuple[str, str, list[str]]]:
        """(table, built-in chain, rule spec) of the jumps into our chains."""
        return [
            ("nat", "PREROUTING", ["-m", "comment", "--comment", "dockyard service portals", "-j", self.services]),
            ("nat", "OUTPUT", ["-m", "comment", "--comment", "dockyard service portals", "-j", self.services]),
            ("nat", "POSTROUTING", ["-m", "comment", "--comment", "dockyard service masquerade", "-j", self.postrouting]),
            ("filter", "OUTPUT", ["-m", "comment", "--comment", "dockyard services without endpoints", "-j", self.reject]),
            ("filter", "FORWARD", ["-m", "comment", "--comment", "dockyard services without endpoints", "-j", self.reject]),
            ("filter", "INPUT", ["-m", "comment", "--comment", "dockyard localnet guard", "-j", self.firewall]),
        ]


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service with its Ready endpoints, as the proxy programs it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "tcp" | "udp"
    cluster_ip: str
    port: int
    node_port: int | None
    endpoints: tuple[Endpoint, ...]
    affinity_seconds: int | None = None  # set for sessionAffinity: ClientIP

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name or self.port}/{self.protocol}"

    @property
    def comment(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else f"{self.namespace}/{self.name}"


def endpoint_serves(endpoint: Obj) -> bool:
    """Ready (`ready` true or unset, as the API documents) and not terminating."""
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and conditions.get("terminating") is not True


def slices_by_service(slices: Iterable[Obj]) -> dict[tuple[str, str], list[Obj]]:
    """(namespace, service name) -> its IPv4 EndpointSlices (by the service-name label)."""
    out: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service and sl.get("addressType") == "IPv4":
            out.setdefault((str(meta.get("namespace") or ""), str(service)), []).append(sl)
    return out


def _targets(slices: list[Obj], port_name: str, protocol: str) -> set[Endpoint]:
    targets: set[Endpoint] = set()
    for sl in slices:
        number = None
        for sp in sl.get("ports") or []:
            if (sp.get("name") or "") == port_name and (sp.get("protocol") or "TCP") == protocol:
                number = sp.get("port")
        if number is None:
            continue
        for ep in sl.get("endpoints") or []:
            addresses = ep.get("addresses") or []
            if addresses and endpoint_serves(ep):
                targets.add(Endpoint(str(addresses[0]), int(number)))
    return targets


def service_ports(services: Iterable[Obj], endpoint_slices: Iterable[Obj]) -> list[ServicePort]:
    """Flatten Services and their EndpointSlices into the ports to program (headless ones have none)."""
    slices = slices_by_service(endpoint_slices)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip or cluster_ip == "None" or spec.get("type") == "ExternalName":
            continue
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity = int(cfg.get("timeoutSeconds") or 10800)
        own = slices.get((str(meta.get("namespace") or ""), str(meta.get("name") or ""))) or []
        for port in spec.get("ports") or []:
            proto = (port.get("protocol") or "TCP").upper()
            if proto not in ("TCP", "UDP"):
                continue
            targets = _targets(own, str(port.get("name") or ""), proto)
            node_port = port.get("nodePort") if spec.get("type") in ("NodePort", "LoadBalancer") else None
            out.append(
                ServicePort(
                    namespace=str(meta.get("namespace")),
                    name=str(meta.get("name")),
                    port_name=str(port.get("name") or ""),
                    protocol=proto.lower(),
                    cluster_ip=str(cluster_ip),
                    port=int(port["port"]),
                    node_port=int(node_port) if node_port else None,
                    endpoints=tuple(sorted(targets, key=lambda e: (tuple(int(x) for x in e.ip.split(".")), e.port))),
                    affinity_seconds=affinity,
                )
            )
    return sorted(out, key=lambda sp: sp.key)


def _probability(n: int) -> str:
    return f"{1.0 / n:.10f}"


@dataclass
class RuleSet:
    """Chains (declared in this order) and rules of one table."""

    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    def chain(self, name: str) -> None:
        if name not in self.chains:
            self.chains.append(name)


def compute_rules(ports: list[ServicePort], chains: Chains = Chains()) -> dict[str, RuleSet]:
    """The contents of our chains, per table ("nat", "filter"), in iptables-restore syntax."""
    nat, flt = RuleSet(), RuleSet()
    for name in (chains.services, chains.nodeports, chains.mark_masq, chains.postrouting):
        nat.chain(name)
    flt.chain(chains.reject)
    flt.chain(chains.firewall)
    flt.rules.append(
        f"-A {chains.firewall} ! -s {LOCALNET} -d {LOCALNET} "
        '-m comment --comment "block incoming localnet connections" '
        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    )
    nat.rules += [
        f"-A {chains.mark_masq} -j MARK --set-xmark {MASQ_MARK}",
        f"-A {chains.postrouting} -m mark ! --mark {MASQ_MARK} -j RETURN",
        f"-A {chains.postrouting} -j MARK --set-xmark 0x4000/0x0",
        f"-A {chains.postrouting} -j MASQUERADE",
    ]
    for sp in ports:
        comment = f'-m comment --comment "{sp.comment}"'
        match = f"-p {sp.protocol} -m {sp.protocol}"
        if not sp.endpoints:
            flt.rules.append(
                f"-A {chains.reject} -d {sp.cluster_ip}/32 {match} --dport {sp.port} {comment} "
                "-j REJECT --reject-with icmp-port-unreachable"
            )
            if sp.node_port:
                flt.rules.append(
                    f"-A {chains.reject} -m addrtype --dst-type LOCAL {match} --dport {sp.node_port} "
                    f"{comment} -j REJECT --reject-with icmp-port-unreachable"
                )
            continue
        svc_chain = chains.svc(sp.key)
        nat.chain(svc_chain)
        nat.rules.append(f"-A {chains.services} -d {sp.cluster_ip}/32 {match} --dport {sp.port} {comment} -j {svc_chain}")
        if sp.node_port:
            nat.rules.append(f"-A {chains.nodeports} {match} --dport {sp.node_port} {comment} -j {chains.mark_masq}")
            nat.rules.append(f"-A {chains.nodeports} {match} --dport {sp.node_port} {comment} -j {svc_chain}")
        seps = [(ep, chains.sep(sp.key, ep.ip, ep.port)) for ep in sp.endpoints]
        if sp.affinity_seconds:
            for _ep, sep in seps:
                nat.rules.append(
                    f"-A {svc_chain} {comment} -m recent --name {sep} --mask 255.255.255.255 --rsource "
                    f"--rcheck --seconds {sp.affinity_seconds} --reap -j {sep}"
                )
        n = len(seps)
        for i, (_ep, sep) in enumerate(seps):
            if i < n - 1:
                nat.rules.append(
                    f"-A {svc_chain} {comment} -m statistic --mode random --probability {_probability(n - i)} -j {sep}"
                )
            else:
                nat.rules.append(f"-A {svc_chain} {comment} -j {sep}")
        for ep, sep in seps:
            nat.chain(sep)
            nat.rules.append(f"-A {sep} -s {ep.ip}/32 {comment} -j {chains.mark_masq}")
            recent = (
                f" -m recent --name {sep} --mask 255.255.255.255 --rsource --set" if sp.affinity_seconds else ""
            )
            nat.rules.append(f"-A {sep} {match}{recent} {comment} -j DNAT --to-destination {ep.ip}:{ep.port}")
    nat.rules.append(f"-A {chains.services} -m addrtype --dst-type LOCAL -j {chains.nodeports}")
    return {"nat": nat, "filter": flt}


def render_restore(table: str, rules: RuleSet, existing: Iterable[str], chains: Chains = Chains()) -> str:
    """An `iptables-restore --noflush` payload: rewrite our chains, delete our stale ones."""
    stale = sorted(c for c in existing if chains.is_ours(c) and c not in rules.chains)
    lines = [f"*{table}"]
    lines += [f":{c} - [0:0]" for c in rules.chains + stale]
    lines += rules.rules
    lines += [f"-X {c}" for c in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def parse_chains(save_output: str) -> list[str]:
    """User chain names from `iptables-save -t TABLE` output."""
    out = []
    for line in save_output.splitlines():
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if name not in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"):
                out.append(name)
    return out


# -- applying --------------------------------------------------------------------------------


class Iptables:
    """Thin wrapper over the iptables binaries (one lock: xtables takes its own, -w waits)."""

    def __init__(self, binary: str = "iptables") -> None:
        self.binary = binary
        self.lock = threading.Lock()

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "-w", "5", *args]
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
        if check and r.returncode != 0:
            raise IptablesError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
        return r

    def save(self, table: str) -> str:
        r = subprocess.run([f"{self.binary}-save", "-t", table], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise IptablesError(f"{self.binary}-save -t {table}: {r.stderr.strip()}")
        return r.stdout

    def restore(self, payload: str) -> None:
        r = subprocess.run(
            [f"{self.binary}-restore", "-w", "5", "--noflush"], input=payload, capture_output=True, text=True,
            check=False,
        )
        if r.returncode != 0:
            raise IptablesError(f"iptables-restore failed: {r.stderr.strip()}\n{payload}")

    def ensure_jump(self, table: str, chain: str, spec: list[str], position: int = 1) -> None:
        if self.run("-t", table, "-C", chain, *spec, check=False).returncode != 0:
            self.run("-t", table, "-I", chain, str(position), *spec)

    def delete_jump(self, table: str, chain: str, spec: list[str]) -> None:
        while self.run("-t", table, "-C", chain, *spec, check=False).returncode == 0:
            self.run("-t", table, "-D", chain, *spec, check=False)

    def ensure_chain(self, table: str, chain: str) -> None:
        if self.run("-t", table, "-L", chain, "-n", check=False).returncode != 0:
            self.run("-t", table, "-N", chain, check=False)

    def remove_chains(self, table: str, names: Iterable[str]) -> None:
        names = list(names)
        for c in names:
            self.run("-t", table, "-F", c, check=False)
        for c in names:
            self.run("-t", table, "-X", c, check=False)


def apply_rules(ipt: Iptables, ports: list[ServicePort], chains: Chains) -> None:
    tables = compute_rules(ports, chains)
    with ipt.lock:
        for table, rules in tables.items():
            ipt.restore(render_restore(table, rules, parse_chains(ipt.save(table)), chains))
        for table, chain, spec in chains.jumps():
            ipt.ensure_jump(table, chain, spec)


def ensure_sysctl(name: str, value: str, root: Path = Path("/proc/sys")) -> bool:
    """Set sysctl `name` (a path under `root`) to `value` unless it has it; True if changed."""
    path = root / name
    if path.read_text().strip() == value:
        return False
    path.write_text(value + "\n")
    return True


def removal_payload(table: str, save_output: str, is_ours: Callable[[str], bool]) -> str | None:
    """One iptables-restore payload deleting every jump into our chains and the chains themselves."""
    ours = [c for c in parse_chains(save_output) if is_ours(c)]
    if not ours:
        return None
    lines = [f"*{table}"] + [f":{c} - [0:0]" for c in ours]
    for line in save_output.splitlines():
        parts = line.split()
        if line.startswith("-A ") and not is_ours(parts[1]) and "-j" in parts:
            target = parts[parts.index("-j") + 1]
            if target in ours:
                lines.append("-D " + line[3:])
    lines += [f"-X {c}" for c in ours]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def remove_rules(ipt: Iptables, chains: Chains | Any) -> None:
    """Remove our jumps and chains: one save and one restore per table (fast at shutdown)."""
    with ipt.lock:
        for table in ("nat", "filter"):
            payload = removal_payload(table, ipt.save(table), chains.is_ours)
            if payload:
                ipt.restore(payload)


# -- the watch-fed cache ----------------------------------------------------------------------


Listener = Callable[[str], None]  # called with the resource that changed


class ClusterState:
    """Services, EndpointSlices, Endpoints and Nodes of the whole cluster, kept current by watches."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {
            "services": {}, "endpointslices": {}, "endpoints": {}, "nodes": {}}
        self.synced: dict[str, bool] = {k: False for k in self._objects}
        self.listeners: list[Listener] = []

    def services(self) -> list[Obj]:
        with self._lock:
            return list(self._objects["services"].values())

    def endpoint_slices(self) -> list[Obj]:
        with self._lock:
            return list(self._objects["endpointslices"].values())

    def endpoints(self) -> list[Obj]:
        with self._lock:
            return list(self._objects["endpoints"].values())

    def nodes(self) -> list[Obj]:
        with self._lock:
            return list(self._objects["nodes"].values())

    def _notify(self, resource: str) -> None:
        for fn in list(self.listeners):
            try:
                fn(resource)
            except Exception:
                log.exception("listener failed")

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def replace(self, resource: str, items: list[Obj]) -> None:
        with self._lock:
            self._objects[resource] = {self._key(o): o for o in items}
            self.synced[resource] = True
        self._notify(resource)

    def apply(self, resource: str, etype: str, obj: Obj) -> None:
        with self._lock:
            if etype == "DELETED":
                self._objects[resource].pop(self._key(obj), None)
            else:
                self._objects[resource][self._key(obj)] = obj
        self._notify(resource)

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._watch_loop, args=(kind, stop), name=f"dockyard-watch-{kind.resource}",
                             daemon=True)
            for kind in (SERVICE, ENDPOINT_SLICE, ENDPOINTS, NODE)
        ]
        for t in threads:
            t.start()
        return threads

    def _watch_loop(self, kind: Kind, stop: threading.Event) -> None:
        ListWatch(
            kind.resource,
            lambda: self.client.list(kind, all_namespaces=kind.namespaced),
            lambda rv: self.client.watch(
                kind, all_namespaces=kind.namespaced, resource_version=rv, timeout_seconds=WATCH_TIMEOUT
            ),
            lambda items: self.replace(kind.resource, items),
            lambda etype, obj: self.apply(kind.resource, etype, obj),
            log=log,
        ).run(stop)


# -- the proxy ----------------------------------------------------------------------------------


class ServiceProxy:
    """Keeps the host's service rules equal to `compute_rules(ClusterState)`."""

    def __init__(self, state: ClusterState, chains: Chains = Chains(), resync: float = 10.0,
                 iptables: Iptables | None = None, sysctl_root: Path = Path("/proc/sys")) -> None:
        self.state = state
        self.chains = chains
        self.resync = resync
        self.ipt = iptables or Iptables()
        self.sysctl_root = sysctl_root
        self._sysctl_warned = False
        self._wake = threading.Event()
        self.applied = 0  # successful applies (for tests and metrics)
        state.listeners.append(self._changed)

    def _changed(self, resource: str) -> None:
        if resource in ("services", "endpointslices"):
            self._wake.set()

    def sync(self) -> None:
        if not (self.state.synced["services"] and self.state.synced["endpointslices"]):
            return
        apply_rules(self.ipt, service_ports(self.state.services(), self.state.endpoint_slices()), self.chains)
        self._route_localnet()  # after the rules: the localnet guard is in place first
        self.applied += 1

    def _route_localnet(self) -> None:
        """Let node-port traffic DNATed from 127.0.0.1 leave loopback (see the module docstring)."""
        try:
            changed = ensure_sysctl(ROUTE_LOCALNET, "1", self.sysctl_root)
        except OSError as e:
            if not self._sysctl_warned:
                log.warning("cannot set net.ipv4.conf.all.route_localnet=1 (%s): node ports will not "
                            "answer on 127.0.0.1", e)
                self._sysctl_warned = True
            return
        self._sysctl_warned = False
        if changed:
            log.info("set net.ipv4.conf.all.route_localnet=1 so that node ports answer on 127.0.0.1")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(self.resync)
            self._wake.clear()
            if stop.is_set():
                break
            try:
                self.sync()
            except Exception:
                log.exception("programming service rules failed")
            stop.wait(0.05)  # coalesce bursts of events

    def wake(self) -> None:
        self._wake.set()

    def cleanup(self) -> None:
        try:
            remove_rules(self.ipt, self.chains)
        except Exception:
            log.exception("removing service rules failed")


def chain_prefix(network: str, default_network: str = "dockyard-pods") -> str:
    """`DOCKYARD` for the standard pod network; a per-network prefix when several agents
    (separate test clusters) share one host, so they never rewrite each other's chains."""
    if network == default_network:
        return DEFAULT_PREFIX
    return "DY" + hashlib.sha256(network.encode()).hexdigest()[:6].upper()
