"""Cluster DNS, one server per node, listening on the pod network's gateway address.

Every node answers its own pods' queries (no cross-host hop, no single point of failure):
the sandbox's resolv.conf names the node's pod-bridge gateway as nameserver with the
search path ``<ns>.svc.cluster.local svc.cluster.local cluster.local`` and ``ndots:5``,
so ``web``, ``web.default`` and ``web.default.svc.cluster.local`` all end up here as the
full name.

Answers (records are rebuilt from the agent's watch-fed `ClusterState` on every Service or
Endpoints change, and swapped in as one immutable index):

* ``<svc>.<ns>.svc.cluster.local`` A → the Service's clusterIP; for a headless Service
  (``clusterIP: None``) → every Ready endpoint address;
* ``<a-b-c-d>.<svc>.<ns>.svc.cluster.local`` (and ``<hostname>.<svc>…`` for endpoints
  with a hostname) A → that endpoint of a headless Service;
* ``_<port>._<proto>.<svc>.<ns>.svc.cluster.local`` SRV → the named port;
* an ExternalName Service → CNAME to its ``externalName``;
* any other name under ``cluster.local`` → NXDOMAIN (authoritative), AAAA of a known name
  → an empty NOERROR answer (the cluster is IPv4-only);
* everything else is forwarded to the node's own resolvers from /etc/resolv.conf.

`ClusterIndex.build` and `ClusterIndex.answer` are pure (unit-tested with dnslib records).
`ClusterIndex.to_json` / `ClusterIndex.from_json` carry a built index to another process: the
node's DNS server runs as its own long-lived process (`agent.dnsserver`) that reads the index
from a records file, so that DNS keeps answering while no agent runs. `ClusterDNS` runs
dnslib's UDP and TCP servers in threads of the calling process.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socketserver
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SRV, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

from orchestrator.objects import Obj

log = logging.getLogger("dockyard.agent.dns")

CLUSTER_DOMAIN = "cluster.local"
TTL = 5
RECORDS_FORMAT = 1  # the version of `ClusterIndex.as_dict`; a reader refuses any other


def search_domains(namespace: str, domain: str = CLUSTER_DOMAIN) -> list[str]:
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def read_upstreams(path: str = "/etc/resolv.conf", exclude: Iterable[str] = ()) -> list[str]:
    skip = set(exclude)
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and parts[1] not in skip and ":" not in parts[1]:
                    out.append(parts[1])
    except OSError:
        pass
    return out


@dataclass(frozen=True)
class ClusterIndex:
    """Names under the cluster domain and their records."""

    a: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cname: dict[str, str] = field(default_factory=dict)
    srv: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)  # (port, target)
    domain: str = CLUSTER_DOMAIN

    @classmethod
    def build(cls, services: Iterable[Obj], endpoints: Iterable[Obj], domain: str = CLUSTER_DOMAIN) -> ClusterIndex:
        eps = {
            ((e.get("metadata") or {}).get("namespace"), (e.get("metadata") or {}).get("name")): e for e in endpoints
        }
        a: dict[str, list[str]] = {}
        cname: dict[str, str] = {}
        srv: dict[str, list[tuple[int, str]]] = {}
        for svc in services:
            meta = svc.get("metadata") or {}
            spec = svc.get("spec") or {}
            ns, name = meta.get("namespace"), meta.get("name")
            if not ns or not name:
                continue
            fqdn = f"{name}.{ns}.svc.{domain}"
            if spec.get("type") == "ExternalName":
                if spec.get("externalName"):
                    cname[fqdn] = str(spec["externalName"]).rstrip(".")
                continue
            ep = eps.get((ns, name)) or {}
            headless = spec.get("clusterIP") == "None"
            ready: list[Obj] = [
                addr for subset in ep.get("subsets") or [] for addr in subset.get("addresses") or []
                if _is_ipv4(addr.get("ip"))
            ]
            if headless:
                ips = sorted({addr["ip"] for addr in ready}, key=_ip_key)
                a[fqdn] = ips
                for addr in ready:
                    a.setdefault(f"{addr['ip'].replace('.', '-')}.{fqdn}", []).append(addr["ip"])
                    if addr.get("hostname"):
                        a.setdefault(f"{addr['hostname']}.{fqdn}", []).append(addr["ip"])
            elif _is_ipv4(spec.get("clusterIP")):
                a[fqdn] = [spec["clusterIP"]]
            for port in spec.get("ports") or []:
                if port.get("name") and 0 <= int(port.get("port") or -1) <= 65535:
                    proto = (port.get("protocol") or "TCP").lower()
                    srv.setdefault(f"_{port['name']}._{proto}.{fqdn}", []).append((int(port["port"]), fqdn))
        return cls(
            a={k: tuple(v) for k, v in a.items()},
            cname=cname,
            srv={k: tuple(v) for k, v in srv.items()},
            domain=domain,
        )

    def as_dict(self) -> Obj:
        """The index as plain JSON types (`from_dict` reads it back)."""
        return {
            "format": RECORDS_FORMAT,
            "domain": self.domain,
            "a": {name: list(ips) for name, ips in self.a.items()},
            "cname": dict(self.cname),
            "srv": {name: [[port, target] for port, target in targets] for name, targets in self.srv.items()},
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal indexes give equal text."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> ClusterIndex:
        """The index `as_dict` wrote; ValueError names what is wrong with anything else."""
        if not isinstance(data, Mapping):
            raise ValueError("records: not an object")
        if data.get("format") != RECORDS_FORMAT:
            raise ValueError(f"records: format {data.get('format')!r}, expected {RECORDS_FORMAT}")
        domain = data.get("domain")
        if not isinstance(domain, str) or not domain:
            raise ValueError("records: domain must be a non-empty string")
        a: dict[str, tuple[str, ...]] = {}
        for name, ips in _section(data, "a").items():
            if not isinstance(ips, list):
                raise ValueError(f"records: a[{name!r}] must be a list")
            a[name] = tuple(_ipv4(ip, name) for ip in ips)
        cname: dict[str, str] = {}
        for name, target in _section(data, "cname").items():
            if not isinstance(target, str) or not target:
                raise ValueError(f"records: cname[{name!r}] must be a non-empty string")
            cname[name] = target
        srv: dict[str, tuple[tuple[int, str], ...]] = {}
        for name, targets in _section(data, "srv").items():
            if not isinstance(targets, list) or not all(_is_srv(t) for t in targets):
                raise ValueError(f"records: srv[{name!r}] must be a list of [port, target]")
            srv[name] = tuple((int(port), str(target)) for port, target in targets)
        return cls(a=a, cname=cname, srv=srv, domain=domain)

    @classmethod
    def from_json(cls, text: str | bytes) -> ClusterIndex:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"records: not JSON: {e}") from None
        return cls.from_dict(data)

    def in_zone(self, qname: str) -> bool:
        return qname == self.domain or qname.endswith("." + self.domain)

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        """The reply for a name in the cluster domain, or None when it must be forwarded."""
        q = request.q
        qname = str(q.qname).rstrip(".").lower()
        if not self.in_zone(qname):
            return None
        reply = request.reply()
        reply.header.aa = 1
        known = qname in self.a or qname in self.cname or qname in self.srv or self._is_node(qname)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qname in self.cname:
            reply.add_answer(RR(q.qname, QTYPE.CNAME, ttl=TTL, rdata=CNAME(self.cname[qname] + ".")))
            return reply
        if q.qtype in (QTYPE.A, QTYPE.ANY):
            for ip in self.a.get(qname, ()):
                reply.add_answer(RR(q.qname, QTYPE.A, ttl=TTL, rdata=A(ip)))
        if q.qtype in (QTYPE.SRV, QTYPE.ANY):
            for port, target in self.srv.get(qname, ()):
                reply.add_answer(RR(q.qname, QTYPE.SRV, ttl=TTL, rdata=SRV(0, 100, port, target + ".")))
        return reply

    def _is_node(self, qname: str) -> bool:
        """Intermediate names (`svc.cluster.local`, `default.svc.cluster.local`) exist, empty."""
        suffix = "." + qname
        return any(name.endswith(suffix) for name in self.a) or qname == f"svc.{self.domain}"


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"records: {key} must be an object keyed by name")
    return value


def _is_ipv4(ip: Any) -> bool:
    """Only IPv4 addresses (as strings) make A records; anything else would fail at answer time."""
    if not isinstance(ip, str):
        return False
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return True


def _ipv4(ip: Any, name: str) -> str:
    if not _is_ipv4(ip):
        raise ValueError(f"records: a[{name!r}] holds {ip!r}, not an IPv4 address")
    return str(ip)


def _is_srv(item: Any) -> bool:
    return (
        isinstance(item, list) and len(item) == 2 and isinstance(item[0], int) and not isinstance(item[0], bool)
        and 0 <= item[0] <= 65535 and isinstance(item[1], str) and bool(item[1])
    )


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (0,)


class ClusterResolver(BaseResolver):
    def __init__(self, upstreams: list[str], timeout: float = 2.0) -> None:
        self.index = ClusterIndex()
        self.upstreams = upstreams
        self.timeout = timeout

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        index = self.index  # one consistent snapshot per query
        reply = index.answer(request)
        if reply is not None:
            return reply
        tcp = handler.protocol == "tcp"
        for upstream in self.upstreams:
            try:
                data = request.send(upstream, 53, tcp=tcp, timeout=self.timeout)
                return DNSRecord.parse(data)
            except (TimeoutError, OSError, ValueError) as e:
                log.debug("forwarding %s to %s failed: %s", request.q.qname, upstream, e)
        reply = request.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply


class QuietLogger:
    """dnslib logger that stays silent; errors go to the debug log."""

    def log_recv(self, *a: Any) -> None: ...
    def log_send(self, *a: Any) -> None: ...
    def log_request(self, *a: Any) -> None: ...
    def log_reply(self, *a: Any) -> None: ...
    def log_truncated(self, *a: Any) -> None: ...
    def log_data(self, *a: Any) -> None: ...

    def log_error(self, handler: Any, e: Exception) -> None:
        log.debug("dns error: %s", e)


class _UDPServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True


class ClusterDNS:
    """The node's DNS server (UDP and TCP) on `address:port`."""

    def __init__(self, address: str, port: int = 53, upstreams: list[str] | None = None) -> None:
        self.address = address
        self.port = port
        self.resolver = ClusterResolver(
            upstreams if upstreams is not None else read_upstreams(exclude=[address])
        )
        self.servers: list[DNSServer] = []

    def update(self, services: Iterable[Obj], endpoints: Iterable[Obj]) -> None:
        self.resolver.index = ClusterIndex.build(services, endpoints)

    def start(self) -> None:
        for server in (_UDPServer, _TCPServer):
            s = DNSServer(self.resolver, address=self.address, port=self.port, logger=QuietLogger(), server=server)
            s.start_thread()
            self.servers.append(s)
        log.info("cluster DNS listening on %s:%d", self.address, self.port)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
            s.server.server_close()
        self.servers.clear()


def query(server: str, name: str, qtype: str = "A", port: int = 53, timeout: float = 2.0) -> DNSRecord:
    """Ask `server` (a helper for tests and diagnostics)."""
    return DNSRecord.parse(DNSRecord.question(name, qtype).send(server, port, timeout=timeout))


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA)]


__all__ = [
    "AAAA", "ClusterDNS", "ClusterIndex", "ClusterResolver", "QuietLogger", "RECORDS_FORMAT", "addresses",
    "query", "read_upstreams", "search_domains",
]
