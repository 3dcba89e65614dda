"""The node DNS server as its own process: start, adoption by a new agent, live records,
a handover between revisions without a failed query, and teardown. Real processes, real
UDP and TCP on 127.0.0.1 (a free high port); no Docker needed."""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import dnsserver
from agent.dns import addresses
from agent.dnsserver import NodeDNS, alive, ask, read_state, server_pids, serving_pid, teardown
from tests.unit.test_dns import ENDPOINTS, SERVICES

HOST = "127.0.0.1"
WEB = "web.default.svc.cluster.local"
API = {"metadata": {"name": "api", "namespace": "default"}, "spec": {"clusterIP": "10.43.0.9"}}


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no free port")


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def answers(port: int, name: str, tcp: bool = False) -> list[str]:
    try:
        return addresses(ask(HOST, port, name, tcp=tcp, timeout=0.5))
    except OSError:
        return []


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "dns"
    try:
        yield d
    finally:
        teardown(d, timeout=2.0)
        for pid in server_pids(d):  # only if teardown failed: never leave a server behind
            dnsserver.terminate(pid, 1.0)


@pytest.fixture
def node(state_dir: Path, tmp_path: Path) -> Callable[[], NodeDNS]:
    """A new manager per call, as each (re)started agent creates; no upstream resolvers."""
    port = free_port()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search example\n")
    return lambda: NodeDNS(state_dir, HOST, port, resolv_conf=str(resolv), start_timeout=10.0)


def test_adopted_by_a_new_manager_and_serving_live_records(node: Callable[[], NodeDNS], state_dir: Path) -> None:
    first = node()
    pid = first.start()
    port = first.port
    assert first.update(SERVICES, ENDPOINTS) and not first.update(SERVICES, ENDPOINTS)
    eventually(lambda: answers(port, WEB) == ["10.43.0.5"], 2.0, "the Service's A record over UDP")
    assert answers(port, "db.prod.svc.cluster.local", tcp=True) == ["10.42.0.7", "10.42.1.3"]
    assert serving_pid(HOST, port) == pid and serving_pid(HOST, port, tcp=True) == pid
    assert read_state(state_dir) is not None and read_state(state_dir)["pid"] == pid  # type: ignore[index]

    del first  # the agent exits: the server stays
    gc.collect()
    assert alive(pid) and answers(port, WEB) == ["10.43.0.5"]

    second = node()
    assert second.start() == pid  # adopted, not restarted
    assert server_pids(state_dir) == [pid]
    assert not second.update(SERVICES, ENDPOINTS)  # the same records: the file is left alone
    assert second.update([*SERVICES, API], ENDPOINTS)
    eventually(lambda: answers(port, "api.default.svc.cluster.local") == ["10.43.0.9"], 1.0, "the new Service")

    (state_dir / "records.json").write_text('{"format": 1, "a": {')  # a torn write keeps the last index
    time.sleep(0.5)  # more than two polls of the file
    assert answers(port, "api.default.svc.cluster.local") == ["10.43.0.9"]
    assert serving_pid(HOST, port) == pid
    log = (state_dir / "dns.log").read_text()
    assert log.count("keeping the last good one") == 1


def test_revision_change_hands_over_without_a_failed_query(
    node: Callable[[], NodeDNS], state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = node()
    old = first.start()
    port = first.port
    first.update(SERVICES, ENDPOINTS)
    eventually(lambda: answers(port, WEB) == ["10.43.0.5"], 2.0, "the first server")

    stop = threading.Event()
    results: dict[bool, list[bool]] = {False: [], True: []}  # tcp? -> one entry per query: answered right
    seen: set[int] = set()

    def loop(tcp: bool) -> None:
        while not stop.is_set():
            results[tcp].append(answers(port, WEB, tcp=tcp) == ["10.43.0.5"])

    def who() -> None:
        while not stop.is_set():
            pid = serving_pid(HOST, port, timeout=1.0)
            if pid:
                seen.add(pid)

    threads = [threading.Thread(target=loop, args=(tcp,)) for tcp in (False, True)] + [threading.Thread(target=who)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: len(results[False]) > 20 and len(results[True]) > 20, 5.0, "queries before the handover")
        monkeypatch.setattr(dnsserver, "SERVER_REVISION", dnsserver.SERVER_REVISION + 1)
        new = node().start()
        assert new != old
        before = (len(results[False]), len(results[True]))
        eventually(lambda: len(results[False]) > before[0] + 20 and len(results[True]) > before[1] + 20, 5.0,
                   "queries after the handover")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    for tcp in (False, True):
        assert results[tcp] and all(results[tcp]), f"{results[tcp].count(False)} failed {'TCP' if tcp else 'UDP'} queries"
    assert not alive(old) and server_pids(state_dir) == [new]
    assert seen == {old, new}
    state = read_state(state_dir)
    assert state is not None and state["pid"] == new and state["revision"] == dnsserver.SERVER_REVISION
    assert answers(port, WEB, tcp=True) == ["10.43.0.5"]  # the records carried over


def test_teardown_leaves_no_process(node: Callable[[], NodeDNS], state_dir: Path) -> None:
    manager = node()
    pid = manager.start()
    manager.update(SERVICES, ENDPOINTS)
    assert teardown(state_dir) is True
    assert not alive(pid) and server_pids(state_dir) == []
    assert not state_dir.exists()
    assert teardown(state_dir) is False
    assert answers(manager.port, WEB) == []

    again = node()  # after a teardown a new start begins from nothing
    pid = again.start()
    assert again.stop() is True and not alive(pid) and not state_dir.exists()
