"""Rule generation of the service proxy and the pod network (pure, table-driven)."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from agent.network import NetChains, Route, parse_routes, plan_network, plan_routes, ports_without_hairpin
from agent.network import compute_rules as net_rules
from agent.serviceproxy import (
    ROUTE_LOCALNET,
    Chains,
    ClusterState,
    Endpoint,
    Iptables,
    ServicePort,
    ServiceProxy,
    compute_rules,
    ensure_sysctl,
    parse_chains,
    removal_payload,
    render_restore,
    service_ports,
)


def svc(name: str, cluster_ip: str = "10.43.0.5", ports: list | None = None, **spec: object) -> dict:
    body = {"clusterIP": cluster_ip, "type": "ClusterIP",
            "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def eps(name: str, ready: list[str], not_ready: list[str] | tuple[str, ...] = (), port: int = 8080, pname: str = "http",
        suffix: str = "abcde", address_type: str = "IPv4", extra: list | None = None) -> dict:
    """An EndpointSlice of Service `name` with ready and not ready endpoints (and `extra` ones)."""
    return {
        "metadata": {"name": f"{name}-{suffix}", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": address_type,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ready]
        + [{"addresses": [ip], "conditions": {"ready": False}} for ip in not_ready] + (extra or []),
        "ports": [{"name": pname, "port": port, "protocol": "TCP"}],
    }


@pytest.mark.parametrize(
    ("services", "endpoints", "expected"),
    [
        ([svc("web")], [eps("web", ["10.42.0.3", "10.42.0.2"], ["10.42.0.9"])],
         [("default/web:http/tcp", "10.43.0.5", 80, None, (("10.42.0.2", 8080), ("10.42.0.3", 8080)))]),
        ([svc("web", cluster_ip="None")], [eps("web", ["10.42.0.2"])], []),
        ([svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30001, "protocol": "TCP"}])],
         [eps("web", ["10.42.0.2"])],
         [("default/web:http/tcp", "10.43.0.5", 80, 30001, (("10.42.0.2", 8080),))]),
        ([svc("web")], [], [("default/web:http/tcp", "10.43.0.5", 80, None, ())]),
        ([svc("web")], [eps("web", ["10.42.0.2"], pname="other")], [("default/web:http/tcp", "10.43.0.5", 80, None, ())]),
        # slices: every slice of the Service merged, found by its label (not its name)
        ([svc("web")], [eps("web", ["10.42.0.2"]), eps("web", ["10.42.0.3"], suffix="fghij"),
                        eps("other", ["10.42.0.4"])],
         [("default/web:http/tcp", "10.43.0.5", 80, None, (("10.42.0.2", 8080), ("10.42.0.3", 8080)))]),
        # ready unset counts as ready; terminating endpoints get no new connections, ready or not
        ([svc("web")], [eps("web", [], extra=[
            {"addresses": ["10.42.0.2"]},
            {"addresses": ["10.42.0.3"], "conditions": {"ready": False, "serving": True, "terminating": True}},
            {"addresses": ["10.42.0.4"], "conditions": {"ready": True, "terminating": True}}])],
         [("default/web:http/tcp", "10.43.0.5", 80, None, (("10.42.0.2", 8080),))]),
        # IPv4 rules: IPv6 slices are not read
        ([svc("web")], [eps("web", ["fd00::2"], address_type="IPv6")], [("default/web:http/tcp", "10.43.0.5", 80, None, ())]),
        # a placeholder slice (no ports, no endpoints)
        ([svc("web")], [{**eps("web", []), "ports": []}], [("default/web:http/tcp", "10.43.0.5", 80, None, ())]),
    ],
)
def test_service_ports(services: list, endpoints: list, expected: list) -> None:
    got = [(p.key, p.cluster_ip, p.port, p.node_port, tuple((e.ip, e.port) for e in p.endpoints))
           for p in service_ports(services, endpoints)]
    assert got == expected


def _port(n: int, affinity: int | None = None, node_port: int | None = None) -> ServicePort:
    return ServicePort("default", "web", "http", "tcp", "10.43.0.5", 80, node_port,
                       tuple(Endpoint(f"10.42.0.{i + 2}", 8080) for i in range(n)), affinity)


def test_random_probabilities_give_each_endpoint_an_equal_share() -> None:
    rules = compute_rules([_port(3)])["nat"].rules
    c = Chains()
    svc_chain = c.svc("default/web:http/tcp")
    jumps = [r for r in rules if r.startswith(f"-A {svc_chain} ")]
    assert len(jumps) == 3
    assert "--probability 0.3333333333" in jumps[0]
    assert "--probability 0.5000000000" in jumps[1]
    assert "statistic" not in jumps[2]
    dnats = [r for r in rules if "DNAT" in r]
    assert [r.split()[-1] for r in dnats] == ["10.42.0.2:8080", "10.42.0.3:8080", "10.42.0.4:8080"]
    assert "-A DOCKYARD-SERVICES -d 10.43.0.5/32 -p tcp -m tcp --dport 80 " in next(
        r for r in rules if r.endswith(f"-j {svc_chain}"))
    # the node-port dispatch is the last rule of the services chain
    assert [r for r in rules if r.startswith("-A DOCKYARD-SERVICES")][-1].endswith("-j DOCKYARD-NODEPORTS")


def test_session_affinity_uses_recent() -> None:
    rules = compute_rules([_port(2, affinity=600)])["nat"].rules
    checks = [r for r in rules if "--rcheck" in r]
    sets = [r for r in rules if "--set " in r and "recent" in r]
    assert len(checks) == 2 and all("--seconds 600" in r for r in checks)
    assert len(sets) == 2 and all("DNAT" in r for r in sets)
    # affinity checks come before the random spread
    first_random = next(i for i, r in enumerate(rules) if "statistic" in r)
    assert all(rules.index(r) < first_random for r in checks)


def test_node_port_marks_for_masquerade_then_jumps() -> None:
    rules = compute_rules([_port(1, node_port=30080)])["nat"].rules
    np = [r for r in rules if r.startswith("-A DOCKYARD-NODEPORTS")]
    assert np[0].endswith("-j DOCKYARD-MARK-MASQ") and "--dport 30080" in np[0]
    assert np[1].endswith(Chains().svc("default/web:http/tcp"))


def test_service_without_endpoints_is_rejected_not_routed() -> None:
    tables = compute_rules([_port(0, node_port=30080)])
    assert not any("10.43.0.5" in r for r in tables["nat"].rules)
    rej = tables["filter"].rules
    assert any("-d 10.43.0.5/32" in r and "REJECT" in r for r in rej)
    assert any("--dport 30080" in r and "REJECT" in r for r in rej)


def test_hairpin_endpoint_is_masqueraded() -> None:
    rules = compute_rules([_port(1)])["nat"].rules
    sep = Chains().sep("default/web:http/tcp", "10.42.0.2", 8080)
    assert f"-A {sep} -s 10.42.0.2/32" in next(r for r in rules if r.endswith("-j DOCKYARD-MARK-MASQ") and sep in r)


def test_restore_payload_deletes_only_our_stale_chains() -> None:
    c = Chains("DYABC123")
    rules = compute_rules([_port(1)], c)["nat"]
    existing = ["DYABC123-SVC-OLD", "DYABC123-SEP-OLD", "DYABC123-POD-NAT", "DOCKER", "DOCKYARD-SVC-X"]
    payload = render_restore("nat", rules, existing, c)
    lines = payload.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert "-X DYABC123-SVC-OLD" in lines and "-X DYABC123-SEP-OLD" in lines
    assert not any(x in payload for x in ("-X DYABC123-POD-NAT", "-X DOCKER", "DOCKYARD-SVC-X"))
    assert ":DYABC123-SERVICES - [0:0]" in lines
    assert all(len(name) <= 28 for name in rules.chains)


GUARD = ('-A {p}-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
         'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP')
NO_EP = '-m comment --comment "default/web:http" -j REJECT --reject-with icmp-port-unreachable'


@pytest.mark.parametrize(
    ("ports", "prefix", "expected"),
    [
        ([], "DOCKYARD", [GUARD]),
        ([_port(2)], "DOCKYARD", [GUARD]),
        ([_port(1, node_port=30080)], "DYABC123", [GUARD]),
        ([_port(0)], "DOCKYARD", [f"-A {{p}}-REJECT -d 10.43.0.5/32 -p tcp -m tcp --dport 80 {NO_EP}", GUARD]),
        ([_port(0, node_port=30080)], "DOCKYARD", [
            f"-A {{p}}-REJECT -d 10.43.0.5/32 -p tcp -m tcp --dport 80 {NO_EP}",
            f"-A {{p}}-REJECT -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30080 {NO_EP}",
            GUARD,
        ]),
    ],
)
def test_filter_table(ports: list, prefix: str, expected: list) -> None:
    """The localnet guard (CVE-2020-8558) is always there, whatever the Services."""
    flt = compute_rules(ports, Chains(prefix))["filter"]
    assert flt.chains == [f"{prefix}-REJECT", f"{prefix}-FIREWALL"]
    assert sorted(flt.rules) == sorted(r.replace("{p}", prefix) for r in expected)


@pytest.mark.parametrize(
    ("table", "chain", "target"),
    [
        ("nat", "PREROUTING", "DOCKYARD-SERVICES"),
        ("nat", "OUTPUT", "DOCKYARD-SERVICES"),
        ("nat", "POSTROUTING", "DOCKYARD-POSTROUTING"),
        ("filter", "OUTPUT", "DOCKYARD-REJECT"),
        ("filter", "FORWARD", "DOCKYARD-REJECT"),
        ("filter", "INPUT", "DOCKYARD-FIREWALL"),
    ],
)
def test_jumps_into_our_chains(table: str, chain: str, target: str) -> None:
    jumps = {(t, c): spec[spec.index("-j") + 1] for t, c, spec in Chains().jumps()}
    assert jumps[(table, chain)] == target
    assert Chains().is_ours(target)


@pytest.mark.parametrize(
    ("chain", "ours"),
    [("DOCKYARD-FIREWALL", True), ("DOCKYARD-REJECT", True), ("DOCKYARD-FORWARD", False),
     ("DOCKYARD-POD-NAT", False), ("DYABC123-FIREWALL", False)],
)
def test_is_ours(chain: str, ours: bool) -> None:
    assert Chains().is_ours(chain) is ours


def test_node_port_from_loopback_is_dnated_and_masqueraded() -> None:
    """127.0.0.1:nodePort from the host: nat OUTPUT → SERVICES → NODEPORTS (127.0.0.1 is a
    LOCAL address, nothing returns early for 127.0.0.0/8) → marked for masquerade whatever
    the source → DNAT; POSTROUTING masquerades the mark, so the pod sees the bridge address."""
    rules = compute_rules([_port(1, node_port=30080)])["nat"].rules
    services = [r for r in rules if r.startswith("-A DOCKYARD-SERVICES ")]
    assert services[-1] == "-A DOCKYARD-SERVICES -m addrtype --dst-type LOCAL -j DOCKYARD-NODEPORTS"
    assert not any("127.0.0.0/8" in r or "-j RETURN" in r for r in services)
    nodeports = [r for r in rules if r.startswith("-A DOCKYARD-NODEPORTS ")]
    assert nodeports[0].endswith("-j DOCKYARD-MARK-MASQ") and " -s " not in nodeports[0]
    assert "-A DOCKYARD-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in rules
    post = [r for r in rules if r.startswith("-A DOCKYARD-POSTROUTING ")]
    assert post == [
        "-A DOCKYARD-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A DOCKYARD-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
        "-A DOCKYARD-POSTROUTING -j MASQUERADE",
    ]


def test_parse_chains() -> None:
    out = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n:DOCKYARD-SERVICES - [0:0]\nCOMMIT\n"
    assert parse_chains(out) == ["DOCKER", "DOCKYARD-SERVICES"]


# -- pod network -------------------------------------------------------------------------------


def node(name: str, cidr: str | None, ip: str | None) -> dict:
    n: dict = {"metadata": {"name": name}, "spec": {}, "status": {"addresses": []}}
    if cidr:
        n["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    if ip:
        n["status"]["addresses"] = [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]
    return n


@pytest.mark.parametrize(
    ("nodes", "routes"),
    [
        ([node("a", "10.42.0.0/24", "10.99.0.11")], []),
        ([node("a", "10.42.0.0/24", "10.99.0.11"), node("b", "10.42.1.0/24", "10.99.0.12"),
          node("c", "10.42.2.0/24", "10.99.0.13")],
         [Route("10.42.1.0/24", "10.99.0.12"), Route("10.42.2.0/24", "10.99.0.13")]),
        ([node("a", "10.42.0.0/24", "10.99.0.11"), node("b", None, "10.99.0.12"), node("c", "10.42.2.0/24", None)],
         []),
    ],
)
def test_plan_network_routes(nodes: list, routes: list) -> None:
    assert list(plan_network("a", nodes).routes) == routes


def test_network_rules_accept_pod_traffic_and_skip_masquerade_between_nodes() -> None:
    plan = plan_network("a", [node("a", "10.42.0.0/24", "10.99.0.11"), node("b", "10.42.1.0/24", "10.99.0.12")])
    tables = net_rules(plan, NetChains())
    assert tables["filter"].rules == [
        "-A DOCKYARD-FORWARD -s 10.42.0.0/24 -j ACCEPT",
        "-A DOCKYARD-FORWARD -d 10.42.0.0/24 -j ACCEPT",
        "-A DOCKYARD-FORWARD -s 10.42.1.0/24 -j ACCEPT",
        "-A DOCKYARD-FORWARD -d 10.42.1.0/24 -j ACCEPT",
    ]
    assert tables["nat"].rules == ["-A DOCKYARD-POD-NAT -s 10.42.0.0/24 -d 10.42.1.0/24 -j ACCEPT"]


def test_bridge_ports_without_hairpin_from_ip_link() -> None:
    out = (
        "12: veth1a2b@if11: <BROADCAST,UP> mtu 1500 master br-x state UP \\    link/ether 02:42 "
        "bridge_slave state forwarding priority 32 cost 2 hairpin off guard off\n"
        "13: veth9@if12: <BROADCAST,UP> mtu 1500 master br-x \\    bridge_slave hairpin on guard off\n"
    )
    assert ports_without_hairpin(out) == ["veth1a2b"]
    assert ports_without_hairpin("") == []


def test_routes_of_departed_nodes_are_removed() -> None:
    current = parse_routes("10.42.1.0/24 via 10.99.0.12 dev eth0 \n10.42.2.0/24 via 10.99.0.13 dev eth0 \n")
    add, delete = plan_routes(current, [Route("10.42.1.0/24", "10.99.0.12"), Route("10.42.3.0/24", "10.99.0.14")])
    assert add == [Route("10.42.3.0/24", "10.99.0.14")]
    assert delete == [Route("10.42.2.0/24", "10.99.0.13")]


def test_removal_payload_deletes_jumps_then_chains() -> None:
    save = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKYARD-SERVICES - [0:0]\n:DOCKYARD-SVC-A - [0:0]\n:OTHER - [0:0]\n"
        '-A PREROUTING -m comment --comment "dockyard service portals" -j DOCKYARD-SERVICES\n'
        "-A PREROUTING -j OTHER\n-A DOCKYARD-SERVICES -d 10.43.0.5/32 -j DOCKYARD-SVC-A\nCOMMIT\n"
    )
    payload = removal_payload("nat", save, Chains().is_ours)
    assert payload is not None
    lines = payload.splitlines()
    assert '-D PREROUTING -m comment --comment "dockyard service portals" -j DOCKYARD-SERVICES' in lines
    assert "-D PREROUTING -j OTHER" not in lines
    assert lines[-3:] == ["-X DOCKYARD-SERVICES", "-X DOCKYARD-SVC-A", "COMMIT"]
    assert removal_payload("nat", "*nat\nCOMMIT\n", Chains().is_ours) is None


def test_removal_payload_deletes_the_localnet_guard() -> None:
    save = (
        "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKYARD-REJECT - [0:0]\n"
        ":DOCKYARD-FIREWALL - [0:0]\n:DOCKYARD-FORWARD - [0:0]\n"
        '-A INPUT -m comment --comment "dockyard localnet guard" -j DOCKYARD-FIREWALL\n'
        '-A OUTPUT -m comment --comment "dockyard services without endpoints" -j DOCKYARD-REJECT\n'
        + GUARD.replace("{p}", "DOCKYARD") + "\nCOMMIT\n"
    )
    payload = removal_payload("filter", save, Chains().is_ours)
    assert payload is not None
    lines = payload.splitlines()
    assert '-D INPUT -m comment --comment "dockyard localnet guard" -j DOCKYARD-FIREWALL' in lines
    assert lines[-3:] == ["-X DOCKYARD-REJECT", "-X DOCKYARD-FIREWALL", "COMMIT"]
    assert "DOCKYARD-FORWARD" not in payload  # the pod network's chain


# -- route_localnet ----------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "changed"), [("0\n", True), ("1\n", False), ("2\n", True)])
def test_ensure_sysctl(tmp_path: Path, before: str, changed: bool) -> None:
    path = tmp_path / ROUTE_LOCALNET
    path.parent.mkdir(parents=True)
    path.write_text(before)
    assert ensure_sysctl(ROUTE_LOCALNET, "1", tmp_path) is changed
    assert path.read_text().strip() == "1"
    assert ensure_sysctl(ROUTE_LOCALNET, "1", tmp_path) is False


class FakeIptables(Iptables):
    """Records restores with the value route_localnet had at that moment."""

    def __init__(self, sysctl: Path) -> None:
        super().__init__()
        self.sysctl = sysctl
        self.restores: list[tuple[str, str]] = []

    def save(self, table: str) -> str:
        return f"*{table}\nCOMMIT\n"

    def restore(self, payload: str) -> None:
        value = self.sysctl.read_text().strip() if self.sysctl.exists() else "-"
        self.restores.append((payload.splitlines()[0], value))

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(args), 1 if "-C" in args else 0, "", "")


def _proxy(root: Path) -> tuple[ServiceProxy, FakeIptables]:
    state = ClusterState(None)  # type: ignore[arg-type]
    state.replace("services", [svc("web", type="NodePort",
                                   ports=[{"name": "http", "port": 80, "nodePort": 30001, "protocol": "TCP"}])])
    state.replace("endpointslices", [eps("web", ["10.42.0.2"])])
    ipt = FakeIptables(root / ROUTE_LOCALNET)
    return ServiceProxy(state, iptables=ipt, sysctl_root=root), ipt


def test_proxy_sets_route_localnet_after_the_guard_and_logs_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / ROUTE_LOCALNET).parent.mkdir(parents=True)
    (tmp_path / ROUTE_LOCALNET).write_text("0\n")
    proxy, ipt = _proxy(tmp_path)
    with caplog.at_level(logging.INFO, logger="dockyard.agent.proxy"):
        proxy.sync()
        proxy.sync()
    assert (tmp_path / ROUTE_LOCALNET).read_text().strip() == "1"
    # the first apply (which installs the localnet guard) happened before the sysctl changed
    assert ipt.restores[:2] == [("*nat", "0"), ("*filter", "0")]
    assert [r.getMessage() for r in caplog.records if "route_localnet" in r.getMessage()] == [
        "set net.ipv4.conf.all.route_localnet=1 so that node ports answer on 127.0.0.1"]
    assert proxy.applied == 2


def test_proxy_warns_once_when_route_localnet_cannot_be_set(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proxy, ipt = _proxy(tmp_path / "missing")  # no such file: like a read-only /proc/sys
    with caplog.at_level(logging.INFO, logger="dockyard.agent.proxy"):
        proxy.sync()
        proxy.sync()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "route_localnet" in r.getMessage()]
    assert len(warnings) == 1
    assert proxy.applied == 2 and len(ipt.restores) == 4  # the rules are applied all the same
