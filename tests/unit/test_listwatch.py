"""The agent's list-watch-relist loop (agent.listwatch), driven by a scripted fake client.

Each case scripts what the lists and watch streams answer; the loop runs on the test's
thread (the fake sets `stop` once its script is used up) and the case checks the requests
made, the callbacks seen and the back-off waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.listwatch import ListWatch
from agent.serviceproxy import SERVICE, ClusterState
from orchestrator.client import ConnectionFailed
from orchestrator.errors import ApiError

Obj = dict[str, Any]


def obj(name: str, rv: int) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)}}


def listed(rv: int, *names: str) -> Obj:
    return {"metadata": {"resourceVersion": str(rv)}, "items": [obj(n, rv) for n in names]}


def ev(etype: str, name: str, rv: int) -> Obj:
    return {"type": etype, "object": obj(name, rv)}


def bookmark(rv: int) -> Obj:
    return {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(rv)}}}


def error(code: int, message: str = "too old resource version") -> Obj:
    return {"type": "ERROR", "object": {"kind": "Status", "code": code, "message": message}}


def unreachable() -> ApiError:
    return ConnectionFailed("https://master:6443", OSError("connection refused"))


GONE = ApiError(410, "Expired", "too old resource version")


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0))
        return self.is_set()


@dataclass
class FakeClient:
    """Answers lists and watches from a script; sets `stop` when the script is used up."""

    stop: threading.Event
    lists: list[Obj | Exception]
    watches: list[list[Obj | Exception] | Exception]
    calls: list[str] = field(default_factory=list)

    def list(self) -> Obj:
        self.calls.append("list")
        if not self.lists:
            self.stop.set()
            return {"items": []}
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def watch(self, rv: str | None) -> Iterator[Obj]:
        self.calls.append(f"watch {rv}")
        if not self.watches:
            self.stop.set()
            return iter(())
        answer = self.watches.pop(0)
        if isinstance(answer, Exception):
            raise answer  # refused before the stream starts
        return self._stream(answer)

    @staticmethod
    def _stream(items: list[Obj | Exception]) -> Iterator[Obj]:
        for item in items:
            if isinstance(item, Exception):
                raise item  # the stream breaks after what came before
            yield item


@dataclass
class Case:
    lists: list[Obj | Exception]
    watches: list[list[Obj | Exception] | Exception]
    calls: list[str]
    seen: list[str]
    waits: list[float] = field(default_factory=list)


CASES = {
    "events go to on_event and move rv; a clean end watches again from the last rv": Case(
        lists=[listed(1, "a")],
        watches=[[ev("ADDED", "b", 2), ev("MODIFIED", "a", 3), ev("DELETED", "b", 4)]],
        calls=["list", "watch 1", "watch 4"],
        seen=["list a", "ADDED b@2", "MODIFIED a@3", "DELETED b@4"],
    ),
    "BOOKMARK moves rv and is not an event": Case(
        lists=[listed(1, "a")],
        watches=[[bookmark(7)], [ev("ADDED", "b", 8)]],
        calls=["list", "watch 1", "watch 7", "watch 8"],
        seen=["list a", "ADDED b@8"],
    ),
    "ERROR 410 event relists at once": Case(
        lists=[listed(1, "a"), listed(9, "a", "b")],
        watches=[[ev("ADDED", "b", 2), error(410), ev("ADDED", "c", 3)]],
        calls=["list", "watch 1", "list", "watch 9"],
        seen=["list a", "ADDED b@2", "list a,b"],
    ),
    "410 Gone answer relists at once": Case(
        lists=[listed(1), listed(5, "z")],
        watches=[GONE],
        calls=["list", "watch 1", "list", "watch 5"],
        seen=["list ", "list z"],
    ),
    "network error resumes from the last rv after a back-off": Case(
        lists=[listed(1, "a")],
        watches=[[ev("ADDED", "b", 3), unreachable()], unreachable(), [ev("MODIFIED", "b", 4)], unreachable()],
        calls=["list", "watch 1", "watch 3", "watch 3", "watch 4", "watch 4"],
        seen=["list a", "ADDED b@3", "MODIFIED b@4"],
        waits=[0.5, 1.0, 0.5],  # a clean stream end resets the back-off
    ),
    "a failed first list is retried with back-off, capped": Case(
        lists=[unreachable()] * 7 + [listed(2, "a")],
        watches=[],
        calls=["list"] * 8 + ["watch 2"],
        seen=["list a"],
        waits=[0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0],
    ),
    "a broken stream relists after a back-off": Case(
        lists=[listed(1, "a"), listed(6, "a")],
        watches=[[ev("ADDED", "b", 2), ValueError("Expecting value: line 1 column 1")]],
        calls=["list", "watch 1", "list", "watch 6"],
        seen=["list a", "ADDED b@2", "list a"],
        waits=[0.5],
    ),
    "a server error keeps rv": Case(
        lists=[listed(1)],
        watches=[ApiError(500, "InternalError", "boom")],
        calls=["list", "watch 1", "watch 1"],
        seen=["list "],
        waits=[0.5],
    ),
}


def run_case(case: Case) -> tuple[FakeClient, RecordingStop, list[str]]:
    stop = RecordingStop()
    client = FakeClient(stop, list(case.lists), list(case.watches))
    seen: list[str] = []

    def on_list(items: list[Obj]) -> None:
        seen.append("list " + ",".join(i["metadata"]["name"] for i in items))

    def on_event(etype: str, o: Obj) -> None:
        seen.append(f"{etype} {o['metadata']['name']}@{o['metadata']['resourceVersion']}")

    ListWatch("thing", client.list, client.watch, on_list, on_event).run(stop)
    return client, stop, seen


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_list_watch(case: Case) -> None:
    client, stop, seen = run_case(case)
    assert client.calls == case.calls
    assert seen == case.seen
    assert stop.waits == case.waits


def test_a_callback_that_raises_relists() -> None:
    stop = RecordingStop()
    client = FakeClient(stop, [listed(1), listed(2)], [[ev("ADDED", "a", 2)]])
    seen: list[str] = []

    def on_event(etype: str, o: Obj) -> None:
        seen.append(etype)
        raise KeyError("metadata")

    ListWatch("thing", client.list, client.watch, lambda items: seen.append("list"), on_event).run(stop)
    assert client.calls == ["list", "watch 1", "list", "watch 2"]
    assert seen == ["list", "ADDED", "list"]
    assert stop.waits == [0.5]


def test_stop_ends_the_loop_mid_stream() -> None:
    stop = RecordingStop()
    client = FakeClient(stop, [listed(1)], [[ev("ADDED", "a", 2), ev("ADDED", "b", 3)]] * 3)
    seen: list[str] = []

    def on_event(etype: str, o: Obj) -> None:
        seen.append(o["metadata"]["name"])
        stop.set()

    ListWatch("thing", client.list, client.watch, lambda items: None, on_event).run(stop)
    assert seen == ["a"]  # nothing after stop is delivered
    assert client.calls == ["list", "watch 1"]


def test_stop_before_the_start_makes_no_request() -> None:
    stop = RecordingStop()
    stop.set()
    client = FakeClient(stop, [listed(1)], [])
    ListWatch("thing", client.list, client.watch, lambda items: None, lambda e, o: None).run(stop)
    assert client.calls == []


def test_stop_interrupts_a_back_off_wait() -> None:
    """With a real Event and a master that never answers, setting stop ends the thread at once."""
    stop = threading.Event()

    def refuse() -> Obj:
        raise unreachable()

    lw = ListWatch("thing", refuse, lambda rv: iter(()), lambda items: None, lambda e, o: None,
                   initial_delay=30.0, max_delay=30.0)
    t = threading.Thread(target=lw.run, args=(stop,), daemon=True)
    t.start()
    time.sleep(0.1)
    started = time.monotonic()
    stop.set()
    t.join(timeout=5)
    assert not t.is_alive()
    assert time.monotonic() - started < 5


class _ServiceClient:
    """What ClusterState asks of a Client, for one resource."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.requests: list[tuple[str, Any]] = []

    def list(self, kind: Any, all_namespaces: bool = False) -> Obj:
        self.requests.append(("list", all_namespaces))
        return listed(1, "web")

    def watch(self, kind: Any, all_namespaces: bool = False, resource_version: str | None = None,
              timeout_seconds: int | None = None) -> Iterator[Obj]:
        self.requests.append(("watch", resource_version))
        yield ev("ADDED", "db", 2)
        yield ev("DELETED", "web", 3)
        self.stop.set()


def test_cluster_state_is_fed_by_the_loop() -> None:
    stop = RecordingStop()
    fake = _ServiceClient(stop)
    state = ClusterState(fake)  # type: ignore[arg-type]  # only list and watch are used
    changed: list[str] = []
    state.listeners.append(changed.append)
    state._watch_loop(SERVICE, stop)
    assert fake.requests == [("list", True), ("watch", "1")]
    assert [s["metadata"]["name"] for s in state.services()] == ["db"]
    assert state.synced["services"] and changed == ["services", "services", "services"]
