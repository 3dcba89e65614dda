"""Inventory parsing: defaults inheritance and validation errors named by field path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.bootstrap.inventory import InventoryError, load_inventory, parse_inventory

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_inherited_and_overridden() -> None:
    inv = parse_inventory({
        "master": {"address": "10.0.0.1"},
        "defaults": {"user": "ops", "sudo": True, "keyFile": "~/.ssh/k"},
        "nodes": [{"name": "a", "address": "10.0.0.11"}, {"name": "b", "address": "10.0.0.12", "user": "root",
                                                            "nodeIP": "192.168.56.12"}],
    })
    a, b = inv.nodes
    assert (a.user, a.sudo, a.key_file, a.node_ip) == ("ops", True, "~/.ssh/k", "10.0.0.11")
    assert (b.user, b.node_ip) == ("root", "192.168.56.12")
    assert inv.master.server == "https://10.0.0.1:6443"


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h"}, {"name": "b"}]},
         "nodes[1].address: required"),
        ({"nodes": [{"name": "a", "address": "h"}]}, "master: required"),
        ({"master": {}, "nodes": [{"name": "a", "address": "h"}]}, "master.address: required"),
        ({"master": {"address": "m"}, "nodes": []}, "nodes: required"),
        ({"master": {"address": "m"}, "nodes": [{"address": "h"}]}, "nodes[0].name: required"),
        ({"master": {"address": "m"}, "nodes": [{"name": "A_b", "address": "h"}]}, "nodes[0].name: must be"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h"}, {"name": "a", "address": "g"}]},
         "nodes[1].name: duplicate"),
        ({"master": {"address": "m", "port": 70000}, "nodes": [{"name": "a", "address": "h"}]}, "master.port"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h", "sudo": "yes"}]}, "nodes[0].sudo"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h", "hostKeyFingerprint": "MD5:x"}]},
         "nodes[0].hostKeyFingerprint"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h", "taints": [{"key": "k"}]}]},
         "nodes[0].taints[0].effect"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h", "bogus": 1}]},
         "nodes[0].bogus: unknown field"),
        ({"master": {"address": "m"}, "nodes": [{"name": "a", "address": "h", "keyFile": "k", "useAgent": True}]},
         "nodes[0].keyFile: set either"),
    ],
)
def test_validation_names_the_field(doc: dict, problem: str) -> None:
    with pytest.raises(InventoryError) as e:
        parse_inventory(doc, "c.yaml")
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(InventoryError) as e:
        parse_inventory({"master": {}, "nodes": [{"name": "a"}, {"address": "h"}]})
    assert len(e.value.problems) == 3


def test_example_inventory_is_valid() -> None:
    inv = load_inventory(ROOT / "deploy/cluster.example.yaml")
    assert len(inv.nodes) >= 2
    assert yaml.safe_load((ROOT / "deploy/cluster.example.yaml").read_text())["master"]


def test_shipped_agent_unit_matches_the_installer() -> None:
    from orchestrator.bootstrap.install import SYSTEMD_UNIT

    assert (ROOT / "deploy/systemd/dockyard-agent.service").read_text() == SYSTEMD_UNIT
