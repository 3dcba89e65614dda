"""The controller runtime on its own thread: the API's loop keeps serving while a sync is
slow, a runner stops and starts again cleanly, and the sync hook times every sync."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.api.serving import api_server_config
from orchestrator.controllers.hpa import HorizontalPodAutoscalerController
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import by_kind
from orchestrator.pki import node_token
from orchestrator.reconcile.events import EventRecorder
from orchestrator.reconcile.runner import Controller, Runner
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

CM = by_kind("v1", "ConfigMap")
ADMIN = "admin-token-0123456789"
SECRET = b"n" * 32


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    r = Registry(SQLiteStore(str(tmp_path / "s.db")))
    r.ensure_namespaces()
    return r


def cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}


def wait(cond: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Recording(Controller):
    name = "recording"
    watches = (CM,)
    resync_seconds = 3600.0

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.synced: list[str] = []
        self.threads: set[str] = set()
        self.events: list[tuple[str, str]] = []

    def keys_for(self, kind: Any, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        self.events.append((event_type, obj["metadata"]["name"]))
        return super().keys_for(kind, event_type, obj)

    def all_keys(self) -> Iterable[str]:
        return ["every-key"]

    def sync(self, key: str) -> None:
        self.threads.add(threading.current_thread().name)
        self.synced.append(key)
        if key.endswith("/fails"):
            raise ApiError(500, "InternalError", "boom")


class Slow(Controller):
    name = "slow"
    watches = (CM,)
    resync_seconds = 3600.0

    def __init__(self, registry: Registry, seconds: float) -> None:
        super().__init__(registry)
        self.seconds = seconds
        self.started = threading.Event()
        self.finished = threading.Event()

    def keys_for(self, kind: Any, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        return ["slow"] if obj["metadata"]["name"] == "slow" else []

    def sync(self, key: str) -> None:
        self.started.set()
        time.sleep(self.seconds)  # a reconcile stuck in a blocking call
        self.finished.set()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_slow_sync_does_not_delay_api_gets(reg: Registry) -> None:
    reg.create(CM, "default", cm("web"))
    slow = Slow(reg, 2.0)
    runner = Runner(reg, [slow])
    api = ApiServer(reg, Authenticator(ADMIN, "K10" + "0" * 64 + "::node:join", SECRET), b"PEM",
                    lambda n: node_token(SECRET, n))
    port = free_port()
    latencies: list[float] = []
    during: list[bool] = []

    async def main() -> None:
        server = uvicorn.Server(api_server_config(api.app, "127.0.0.1", port))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        runner.start()
        try:
            reg.create(CM, "default", cm("slow"))
            while not slow.started.is_set():
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                         headers={"Authorization": f"Bearer {ADMIN}"}) as client:
                for _ in range(10):
                    t0 = time.perf_counter()
                    r = await client.get("/api/v1/namespaces/default/configmaps/web")
                    latencies.append(time.perf_counter() - t0)
                    assert r.status_code == 200
                    during.append(not slow.finished.is_set())
        finally:
            server.should_exit = True
            await serving
            await asyncio.to_thread(runner.stop)

    asyncio.run(main())
    assert all(during), "the GETs were answered while the sync slept"
    assert max(latencies) < 0.5, latencies
    assert slow.finished.is_set()


def test_a_runner_stops_and_starts_again(reg: Registry) -> None:
    c = Recording(reg)
    runner = Runner(reg, [c], name="unit")
    reg.create(CM, "default", cm("a"))
    runner.start()
    runner.start()  # idempotent
    assert runner.running
    wait(lambda: "default/a" in c.synced, what="the first sync")
    assert c.threads == {"unit"}  # on the runner's thread, not the caller's
    runner.stop()
    runner.stop()  # idempotent
    assert not runner.running and runner.tasks == []
    assert not [t for t in threading.enumerate() if t.name == "unit"]
    assert reg.store._watchers == ()  # the informers' store watches are closed too
    reg.create(CM, "default", cm("b"))  # while stopped
    reg.delete(CM, "default", "a")
    c.synced.clear()
    c.events.clear()
    runner.start()
    wait(lambda: "default/b" in c.synced, what="a sync after the restart")
    wait(lambda: "every-key" in c.synced, what="the resync a restart makes at once")
    assert sorted(c.events) == [("ADDED", "b"), ("DELETED", "a")]  # what changed while stopped
    reg.create(CM, "default", cm("c"))
    wait(lambda: "default/c" in c.synced, what="a watch event after the restart")
    assert set(runner.queue_depth()) == {"recording"}
    runner.stop()
    assert not runner.running


def test_the_sync_hook_times_every_sync(reg: Registry) -> None:
    seen: list[tuple[str, str, float, BaseException | None]] = []
    c = Recording(reg)
    runner = Runner(reg, [c], on_sync=lambda *args: seen.append(args))
    reg.create(CM, "default", cm("ok"))
    reg.create(CM, "default", cm("fails"))
    runner.start()
    try:
        wait(lambda: {k for _, k, _, _ in seen} >= {"default/ok", "default/fails"}, what="both syncs")
    finally:
        runner.stop()
    ok = next(s for s in seen if s[1] == "default/ok")
    failed = next(s for s in seen if s[1] == "default/fails")
    assert ok[0] == "recording" and ok[2] >= 0 and ok[3] is None
    assert isinstance(failed[3], ApiError)


def test_controllers_of_a_runner_share_one_informer_per_kind(reg: Registry) -> None:
    a, b = Recording(reg), Recording(reg)
    b.name = "recording-2"
    runner = Runner(reg, [a, b])
    assert len(runner.informers.all()) == 1
    assert a.lister(CM) is b.lister(CM) is runner.informers.get(CM)
    reg.create(CM, "default", cm("x"))
    runner.start()
    try:
        assert runner.wait_synced(5.0) and len(runner.informers.get(CM)) == 1
        wait(lambda: "default/x" in a.synced and "default/x" in b.synced, what="both controllers")
    finally:
        runner.stop()


def test_the_autoscaler_leaves_nothing_bound_to_a_stopped_loop(reg: Registry) -> None:
    made: list[object] = []

    def source() -> Any:
        made.append(object())
        return made[-1]

    hpa = HorizontalPodAutoscalerController(reg, EventRecorder(reg, "test"), sync_seconds=3600,
                                            source_factory=source)
    runner = Runner(reg, [hpa])
    runner.start()
    runner.stop()
    assert len(made) == 2 and hpa.source is made[1]  # a fresh source (HTTP clients) for the next loop
    assert hpa._running == {}


class Niceness(Controller):
    name = "niceness"
    watches = (CM,)
    resync_seconds = 3600.0

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self.seen: list[int] = []

    def sync(self, key: str) -> None:
        self.seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))


def test_a_runner_can_run_below_the_api_threads_priority(reg: Registry) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    c = Niceness(reg)
    runner = Runner(reg, [c], name="nice", nice=5)
    reg.create(CM, "default", cm("a"))
    runner.start()
    try:
        wait(lambda: c.seen, what="a sync")
    finally:
        runner.stop()
    assert c.seen[0] == min(mine + 5, 19)  # the runner's thread only
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_the_master_tunes_the_interpreter_for_its_threads() -> None:
    import gc
    import sys

    from orchestrator import server

    before = (sys.getswitchinterval(), gc.get_threshold())
    try:
        server.tune_interpreter()
        assert sys.getswitchinterval() == pytest.approx(server.SWITCH_INTERVAL)
        assert gc.get_threshold() == server.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        sys.setswitchinterval(before[0])
        gc.set_threshold(*before[1])
        gc.unfreeze()
