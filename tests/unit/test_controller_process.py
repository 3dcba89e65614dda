"""The master's supervision of its controller-manager process, with small real child
processes standing in for `dockyard controller-manager` (the real one runs in
tests/integration/test_controller_manager.py): started, its metrics fetched over the pipes,
started again when it dies, stopped on request, and the child's side of the pipe protocol."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator import controllermanager
from orchestrator.controllermanager import METRICS_REQUEST, ControllerManagerProcess, _serve_parent
from orchestrator.reconcile.metrics import ControllerMetrics

# a stand-in child: answers "metrics" with its pid, exits at end-of-file, or at once with
# the code in $EXIT_NOW, or never answers with $MUTE
CHILD = r"""
import os, sys
if os.environ.get("EXIT_NOW"):
    sys.exit(int(os.environ["EXIT_NOW"]))
for line in sys.stdin.buffer:
    if line == b"metrics\n" and not os.environ.get("MUTE"):
        body = b"pid %d\n" % os.getpid()
        sys.stdout.buffer.write(b"%d\n" % len(body) + body)
        sys.stdout.buffer.flush()
"""


def poll(fn: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture()
def child_script(tmp_path: Path) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return [sys.executable, str(path)]


@pytest.fixture()
def supervised(child_script: list[str]) -> Iterator[Callable[..., ControllerManagerProcess]]:
    made: list[ControllerManagerProcess] = []

    def make(env: dict[str, str] | None = None, sleep: Callable[[float], bool] | None = None) -> ControllerManagerProcess:
        p = ControllerManagerProcess(child_script, {**os.environ, **(env or {})}, sleep=sleep)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop(timeout=5)


def test_started_it_answers_metrics_over_the_pipes_and_stops(supervised: Callable[..., ControllerManagerProcess]) -> None:
    p = supervised()
    p.start()
    p.start()  # idempotent
    poll(lambda: p.running)
    proc = p.proc
    assert proc is not None
    assert p.fetch_metrics() == b"pid %d\n" % proc.pid
    assert p.fetch_metrics() == b"pid %d\n" % proc.pid  # the pipes stay usable
    p.stop(timeout=5)
    assert not p.running and proc.returncode is not None
    assert p.starts == 1
    with pytest.raises(RuntimeError, match="not running"):
        p.fetch_metrics()


def test_a_child_that_exits_is_started_again_with_backoff(supervised: Callable[..., ControllerManagerProcess]) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False  # not stopping

    p = supervised(env={"EXIT_NOW": "3"}, sleep=sleep)
    p.start()
    poll(lambda: p.starts >= 4)
    p.stop(timeout=5)
    assert waits[:3] == [1.0, 2.0, 4.0]  # doubling, from 1 s
    assert p._thread is None


def test_a_stopped_process_can_be_started_again(supervised: Callable[..., ControllerManagerProcess]) -> None:
    p = supervised()
    p.start()
    poll(lambda: p.running)
    first = p.proc
    p.stop(timeout=5)
    p.start()
    poll(lambda: p.running and p.proc is not first)
    assert p.starts == 2


def test_a_child_that_does_not_answer_times_out(supervised: Callable[..., ControllerManagerProcess],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controllermanager, "METRICS_TIMEOUT", 0.3)
    p = supervised(env={"MUTE": "1"})
    p.start()
    poll(lambda: p.running)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        p.fetch_metrics()
    assert time.monotonic() - started < 3


def test_the_child_answers_metrics_and_stops_at_end_of_file() -> None:
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    metrics = ControllerMetrics()
    metrics.observe_sync("deployment", "default/web", 0.002, None)
    stop = threading.Event()
    t = threading.Thread(target=_serve_parent, args=(r_in, w_out, metrics, stop))
    t.start()
    with os.fdopen(w_in, "wb") as w, os.fdopen(r_out, "rb") as out:
        w.write(METRICS_REQUEST[:3])  # a request may come in pieces
        w.flush()
        w.write(METRICS_REQUEST[3:])
        w.flush()
        header = out.readline()
        body = out.read(int(header))
        assert not stop.is_set()
        w.close()
        t.join(5)
        assert stop.is_set()  # the master is gone
    os.close(r_in)
    os.close(w_out)
    assert b'dockyard_controller_sync_duration_seconds_count{controller="deployment"} 1.0' in body
    assert body.endswith(b"\n")
