"""The cluster DNS index: names, headless answers, NXDOMAIN and forwarding decisions."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from agent.dns import ClusterDNS, ClusterIndex, addresses, query, read_upstreams, search_domains

SERVICES = [
    {"metadata": {"name": "web", "namespace": "default"},
     "spec": {"clusterIP": "10.43.0.5", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
    {"metadata": {"name": "db", "namespace": "prod"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}},
    {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.org"}},
]
ENDPOINTS = [
    {"metadata": {"name": "db", "namespace": "prod"},
     "subsets": [{"addresses": [{"ip": "10.42.0.7", "hostname": "db-0"}, {"ip": "10.42.1.3"}],
                  "notReadyAddresses": [{"ip": "10.42.2.9"}]}]},
]


@pytest.fixture
def index() -> ClusterIndex:
    return ClusterIndex.build(SERVICES, ENDPOINTS)


def ask(index: ClusterIndex, name: str, qtype: str = "A") -> DNSRecord | None:
    return index.answer(DNSRecord.question(name, qtype))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web.default.svc.cluster.local", ["10.43.0.5"]),
        ("WEB.default.svc.cluster.local.", ["10.43.0.5"]),
        ("db.prod.svc.cluster.local", ["10.42.0.7", "10.42.1.3"]),
        ("10-42-1-3.db.prod.svc.cluster.local", ["10.42.1.3"]),
        ("db-0.db.prod.svc.cluster.local", ["10.42.0.7"]),
    ],
)
def test_a_records(index: ClusterIndex, name: str, expected: list[str]) -> None:
    reply = ask(index, name)
    assert reply is not None and reply.header.rcode == RCODE.NOERROR
    assert addresses(reply) == expected


@pytest.mark.parametrize("name", ["nope.default.svc.cluster.local", "10-42-2-9.db.prod.svc.cluster.local",
                                  "web.default.svc.cluster.local.default.svc.cluster.local"])
def test_unknown_cluster_names_are_nxdomain(index: ClusterIndex, name: str) -> None:
    reply = ask(index, name)
    assert reply is not None and reply.header.rcode == RCODE.NXDOMAIN and reply.header.aa


def test_aaaa_of_known_name_is_empty_noerror(index: ClusterIndex) -> None:
    reply = ask(index, "web.default.svc.cluster.local", "AAAA")
    assert reply is not None and reply.header.rcode == RCODE.NOERROR and not reply.rr


def test_srv_and_cname(index: ClusterIndex) -> None:
    srv = ask(index, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert srv is not None and srv.rr[0].rtype == QTYPE.SRV and srv.rr[0].rdata.port == 80
    cname = ask(index, "ext.default.svc.cluster.local")
    assert cname is not None and str(cname.rr[0].rdata) == "example.org."


def test_names_outside_the_cluster_are_forwarded(index: ClusterIndex) -> None:
    assert ask(index, "example.org") is None


def test_search_domains_and_upstreams(tmp_path) -> None:
    assert search_domains("prod") == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    conf = tmp_path / "resolv.conf"
    conf.write_text("search x\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 10.217.0.1\n")
    assert read_upstreams(str(conf), exclude=["10.217.0.1"]) == ["10.0.0.2"]


def test_server_answers_over_udp_on_loopback() -> None:
    dns = ClusterDNS("127.0.0.1", port=0, upstreams=[])
    # port 0: let the OS choose, then read it back
    dns.start()
    try:
        port = dns.servers[0].server.server_address[1]
        dns.update(SERVICES, ENDPOINTS)
        assert addresses(query("127.0.0.1", "web.default.svc.cluster.local", port=port)) == ["10.43.0.5"]
        assert query("127.0.0.1", "example.org", port=port).header.rcode == RCODE.SERVFAIL  # no upstream
    finally:
        dns.stop()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, {"dns": ["10.42.0.1"], "dns_search": ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"],
              "dns_opt": ["ndots:5"]}),
        ({"hostNetwork": True}, {}),  # ClusterFirst on the host network means the node's resolver
        ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
         {"dns": ["10.42.0.1"], "dns_search": ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"],
          "dns_opt": ["ndots:5"]}),
        ({"dnsPolicy": "Default", "dnsConfig": {"nameservers": ["192.0.2.53"], "options": [{"name": "edns0"}]}},
         {"dns": ["192.0.2.53"], "dns_opt": ["edns0"]}),
    ],
)
def test_sandbox_resolver_settings(spec: dict, expected: dict) -> None:
    from types import SimpleNamespace

    from agent.runtime import DockerRuntime

    rt = DockerRuntime(client=SimpleNamespace(api=None))  # type: ignore[arg-type]
    rt.dns_servers = ["10.42.0.1"]
    assert rt.dns_kwargs({"metadata": {"namespace": "team"}, "spec": spec}) == expected
