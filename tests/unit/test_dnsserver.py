"""The node DNS server's pure parts: adopting a running server, the records file, reloading."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from dnslib import DNSRecord

from agent.dns import ClusterIndex, addresses
from agent.dnsserver import SERVER_REVISION, FileWatch, plan_server, read_state
from tests.unit.test_dns import ENDPOINTS, SERVICES

WANT = ("10.42.0.1", 53, SERVER_REVISION)
SAME: dict[str, Any] = {"pid": 4242, "address": "10.42.0.1", "port": 53, "revision": SERVER_REVISION,
                        "started": "2025-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("state", "alive", "expected"),
    [
        (None, False, "start"),  # first start on this node
        (None, True, "start"),  # no state file: nothing to adopt
        (SAME, True, "adopt"),  # a restarted agent
        (SAME, False, "start"),  # the server died (or the pid is someone else's now)
        ({**SAME, "revision": SERVER_REVISION - 1}, True, "replace"),  # an upgrade
        ({**SAME, "revision": SERVER_REVISION + 1}, True, "replace"),  # a downgrade
        ({**SAME, "revision": SERVER_REVISION - 1}, False, "start"),
        ({**SAME, "address": "10.42.7.1"}, True, "replace"),  # a new pod CIDR for the node
        ({**SAME, "port": 5353}, True, "replace"),
        ({"pid": 4242}, True, "replace"),  # a state file of unknown shape names a live server
    ],
)
def test_plan_server(state: dict[str, Any] | None, alive: bool, expected: str) -> None:
    assert plan_server(state, alive, WANT) == expected


NAMES = [
    ("web.default.svc.cluster.local", "A"),
    ("web.default.svc.cluster.local", "AAAA"),
    ("web.default.svc.cluster.local", "ANY"),
    ("_http._tcp.web.default.svc.cluster.local", "SRV"),
    ("db.prod.svc.cluster.local", "A"),
    ("10-42-1-3.db.prod.svc.cluster.local", "A"),
    ("db-0.db.prod.svc.cluster.local", "A"),
    ("ext.default.svc.cluster.local", "A"),
    ("prod.svc.cluster.local", "A"),
    ("nope.default.svc.cluster.local", "A"),
    ("example.org", "A"),
]


def test_index_json_round_trip_answers_the_same() -> None:
    index = ClusterIndex.build(SERVICES, ENDPOINTS)
    text = index.to_json()
    copy = ClusterIndex.from_json(text)
    assert copy == index and copy.to_json() == text
    assert ClusterIndex.from_json(text.encode()) == index
    for name, qtype in NAMES:
        request = DNSRecord.question(name, qtype)
        original, restored = index.answer(request), copy.answer(request)
        if original is None:
            assert restored is None, name
        else:
            assert restored is not None and restored.pack() == original.pack(), (name, qtype)
    reply = copy.answer(DNSRecord.question("db.prod.svc.cluster.local"))
    assert reply is not None and addresses(reply) == ["10.42.0.7", "10.42.1.3"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.domain = "other"  # type: ignore[misc]


def test_equal_indexes_give_equal_text() -> None:
    shuffled = ClusterIndex.build(list(reversed(SERVICES)), ENDPOINTS)
    assert shuffled.to_json() == ClusterIndex.build(SERVICES, ENDPOINTS).to_json()
    assert ClusterIndex.from_json(ClusterIndex().to_json()) == ClusterIndex()



@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"format": 1, "a": {"x": ["10.0.0.1"]',  # cut short
        "[]",
        '{"a": {}}',  # no format
        '{"format": 99, "domain": "cluster.local"}',
        '{"format": 1, "domain": ""}',
        '{"format": 1, "domain": "cluster.local", "a": {"x.cluster.local": "10.0.0.1"}}',
        '{"format": 1, "domain": "cluster.local", "a": {"x.cluster.local": ["10.0.0.300"]}}',
        '{"format": 1, "domain": "cluster.local", "a": []}',
        '{"format": 1, "domain": "cluster.local", "cname": {"x.cluster.local": 7}}',
        '{"format": 1, "domain": "cluster.local", "srv": {"_p._tcp.x.cluster.local": [[65536, "x.cluster.local"]]}}',
        '{"format": 1, "domain": "cluster.local", "srv": {"_p._tcp.x.cluster.local": [["80", "x"]]}}',
        '{"format": 1, "domain": "cluster.local", "srv": {"_p._tcp.x.cluster.local": [[true, "x"]]}}',
    ],
)
def test_bad_records_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="records"):
        ClusterIndex.from_json(text)


def test_a_bad_records_file_keeps_the_last_good_index_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.json"
    loaded: list[ClusterIndex] = []
    watch = FileWatch(path, lambda p: loaded.append(ClusterIndex.from_json(p.read_bytes())), "records")
    assert not watch.poll()  # no file yet
    path.write_text(ClusterIndex.build(SERVICES, ENDPOINTS).to_json())
    assert watch.poll() and len(loaded) == 1
    assert not watch.poll()  # unchanged: not read again
    caplog.set_level(logging.WARNING, "dockyard.agent.dnsserver")
    path.write_text('{"format": 1, "a": {')  # a writer that did not rename
    assert not watch.poll() and not watch.poll()
    assert len(loaded) == 1
    assert len([r for r in caplog.records if "keeping the last good one" in r.getMessage()]) == 1
    tmp = tmp_path / ".records.json.tmp"
    tmp.write_text(ClusterIndex.build(SERVICES[:1], []).to_json())
    os.replace(tmp, path)
    assert watch.poll() and len(loaded) == 2 and list(loaded[-1].a) == ["web.default.svc.cluster.local"]


def test_read_state(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    (tmp_path / "server.json").write_text("{not json")
    assert read_state(tmp_path) is None
    (tmp_path / "server.json").write_text('{"pid": "12"}')
    assert read_state(tmp_path) is None
    (tmp_path / "server.json").write_text('{"pid": 12, "address": "10.42.0.1", "port": 53, "revision": 1}')
    assert read_state(tmp_path) == {"pid": 12, "address": "10.42.0.1", "port": 53, "revision": 1}


def test_addresses_that_are_not_ipv4_stay_out_of_the_records() -> None:
    services = [
        {"metadata": {"name": "v6", "namespace": "default"}, "spec": {"clusterIP": "fd00::10"}},
        {"metadata": {"name": "hl", "namespace": "default"}, "spec": {"clusterIP": "None"}},
    ]
    endpoints = [{"metadata": {"name": "hl", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "10.42.0.9"}, {"ip": "fd00::9"}, {"ip": "10.42.0.010"}]}]}]
    index = ClusterIndex.from_json(ClusterIndex.build(services, endpoints).to_json())
    assert "v6.default.svc.cluster.local" not in index.a
    assert index.a["hl.default.svc.cluster.local"] == ("10.42.0.9",)
