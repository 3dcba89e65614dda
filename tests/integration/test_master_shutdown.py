"""A master stopping with watches open ends their streams as shutdown begins: clients see the
end of the stream (not a connection cut in the middle of a chunk), the process exits within
its graceful-shutdown time, and nothing is logged as a failed request."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.client import Client
from orchestrator.objects.kinds import resolve
from tests.support.cluster import Cluster

pytestmark = pytest.mark.docker


@pytest.fixture()
def master(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, extra_args=("--no-agent",))
    c.start(wait_node=False)
    try:
        yield c
    finally:
        c.stop()


def test_open_watches_end_cleanly_when_the_master_stops(master: Cluster) -> None:
    ended: dict[str, object] = {}

    def watch(resource: str) -> None:
        with Client.from_kubeconfig(str(master.kubeconfig)) as c:
            try:
                events = list(c.watch(resolve(resource), all_namespaces=True))
                ended[resource] = len(events)
            except Exception as e:  # noqa: BLE001 - what the stream ended with is the finding
                ended[resource] = e

    threads = [threading.Thread(target=watch, args=(r,), daemon=True) for r in ("pods", "nodes", "configmaps")]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the streams are open
    started = time.monotonic()
    master.stop()
    took = time.monotonic() - started
    for t in threads:
        t.join(10)
    assert all(isinstance(v, int) for v in ended.values()), ended  # each stream simply ended
    assert len(ended) == 3
    assert took < 5.0, f"the master took {took:.1f}s to stop with watches open"  # graceful timeout: 2 s
    log = master.log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]
