"""Rule generation of the service proxy and the pod network (pure, table-driven)."""

from __future__ import annotations

import pytest

from agent.network import NetChains, Route, parse_routes, plan_network, plan_routes, ports_without_hairpin
from agent.network import compute_rules as net_rules
from agent.serviceproxy import (
    Chains,
    Endpoint,
    ServicePort,
    compute_rules,
    parse_chains,
    render_restore,
    service_ports,
)


def svc(name: str, cluster_ip: str = "10.43.0.5", ports: list | None = None, **spec: object) -> dict:
    body = {"clusterIP": cluster_ip, "type": "ClusterIP",
            "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def eps(name: str, ready: list[str], not_ready: list[str] = (), port: int = 8080, pname: str = "http") -> dict:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "subsets": [{
            "addresses": [{"ip": ip} for ip in ready],
            "notReadyAddresses": [{"ip": ip} for ip in not_ready],
            "ports": [{"name": pname, "port": port, "protocol": "TCP"}],
        }],
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
    from agent.serviceproxy import removal_payload

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
