"""Pod address allocation and the `ip` scripts of agent.podnet (pure parts)."""

from __future__ import annotations

import pytest

from agent.podnet import PENDING, Bridge, PodIPAM, PoolExhausted, host_ifname, render_host, render_pod

BRIDGE = Bridge(name="br-0123456789ab", gateway="10.42.0.1", subnet="10.42.0.0/24")


def test_first_addresses_skip_network_and_reserved() -> None:
    ipam = PodIPAM()
    assert ipam.allocate("10.42.0.0/24", reserved=["10.42.0.1"]) == "10.42.0.2"
    assert ipam.allocate("10.42.0.0/24", reserved=["10.42.0.1"]) == "10.42.0.3"
    assert ipam.held() == {"10.42.0.2": PENDING, "10.42.0.3": PENDING}


def test_round_robin_does_not_reuse_a_freed_address_at_once() -> None:
    ipam = PodIPAM()
    a = ipam.allocate("10.42.0.0/29")  # hosts .1-.6
    ipam.bind(a, "c1")
    ipam.release(container_id="c1")
    assert ipam.allocate("10.42.0.0/29") == "10.42.0.2"


def test_wraps_around_and_exhausts() -> None:
    ipam = PodIPAM()
    got = [ipam.allocate("10.42.0.0/29") for _ in range(6)]
    assert got == [f"10.42.0.{i}" for i in range(1, 7)]
    with pytest.raises(PoolExhausted, match="10.42.0.0/29"):
        ipam.allocate("10.42.0.0/29")
    ipam.release("10.42.0.3")
    assert ipam.allocate("10.42.0.0/29") == "10.42.0.3"


@pytest.mark.parametrize(
    ("held_by", "release_ip", "release_cid", "left"),
    [
        ("c1", "10.42.0.5", "c1", {}),  # its holder frees it
        ("c1", "10.42.0.5", "c2", {"10.42.0.5": "c1"}),  # someone else's: kept
        (PENDING, "10.42.0.5", "c2", {}),  # a failed create frees its pending address
        ("c1", None, "c1", {}),  # by container: everything it holds
        ("c1", None, "c9", {"10.42.0.5": "c1"}),
        ("c1", "10.42.0.5", None, {}),
    ],
)
def test_release_table(held_by: str, release_ip: str | None, release_cid: str | None, left: dict[str, str]) -> None:
    ipam = PodIPAM()
    ipam.load([(held_by, "10.42.0.5")] if held_by != PENDING else [])
    if held_by == PENDING:
        ipam._last = int.from_bytes(bytes([10, 42, 0, 4]), "big")
        assert ipam.allocate("10.42.0.0/24") == "10.42.0.5"
    ipam.release(release_ip, release_cid)
    assert ipam.held() == left


def test_load_rebuilds_from_labels_and_keeps_newer_allocations() -> None:
    ipam = PodIPAM()
    ipam.load([("old", "10.42.0.9")])
    mark = ipam.mark()
    fresh = ipam.allocate("10.42.0.0/24")  # made while the listing was in flight
    ipam.bind(fresh, "new")
    ipam.load([("other", "10.42.0.7")], since=mark)  # the listing did not see "new" yet
    assert ipam.held() == {"10.42.0.7": "other", fresh: "new"}
    ipam.load([("other", "10.42.0.7")], since=ipam.mark())  # a later listing is the truth
    assert ipam.held() == {"10.42.0.7": "other"}


def test_loaded_addresses_are_not_handed_out() -> None:
    ipam = PodIPAM()
    ipam.load([("a", "10.42.0.2"), ("b", "10.42.0.3")])
    assert ipam.allocate("10.42.0.0/24", reserved=["10.42.0.1"]) == "10.42.0.4"


def test_a_restarted_agent_goes_on_after_the_highest_address_in_use() -> None:
    ipam = PodIPAM()  # a new agent: nothing handed out yet in this process
    ipam.load([("a", "10.42.0.2"), ("b", "10.42.0.9")])  # 3..8 were freed before the restart
    assert ipam.allocate("10.42.0.0/24", reserved=["10.42.0.1"]) == "10.42.0.10"
    ipam.load([("a", "10.42.0.2")])  # a later listing does not move the pointer back
    assert ipam.allocate("10.42.0.0/24", reserved=["10.42.0.1"]) == "10.42.0.11"


def test_scripts() -> None:
    name = host_ifname("0123456789abcdef0123")
    assert name == "dy0123456789ab" and len(name) <= 15
    assert render_host(name, 4242, BRIDGE.name).splitlines() == [
        "link add dy0123456789ab type veth peer name eth0 netns 4242",
        "link set dev dy0123456789ab master br-0123456789ab",
        "link set dev dy0123456789ab type bridge_slave hairpin on",
        "link set dev dy0123456789ab up",
    ]
    assert render_host(name, 4242, BRIDGE.name, "10.42.0.7").splitlines()[-1] == \
        "neigh flush to 10.42.0.7 dev br-0123456789ab"
    assert render_pod("10.42.0.7", BRIDGE).splitlines() == [
        "addr add 10.42.0.7/24 dev eth0",
        "link set dev lo up",
        "link set dev eth0 up",
        "route add default via 10.42.0.1 dev eth0",
    ]
