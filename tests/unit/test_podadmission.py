"""The pending pods limit, as a Pod create hook on a real Registry and SQLite store."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.errors import ApiError
from orchestrator.objects.kinds import by_kind
from orchestrator.registry import Registry
from orchestrator.registry.podadmission import (
    DEFAULT_MAX_PENDING_PODS,
    ENV_MAX_PENDING_PODS,
    PendingPodLimit,
    is_pending,
    max_pending_pods_from_env,
    pending_pods_hook,
)
from orchestrator.store import SQLiteStore

POD = by_kind("v1", "Pod")
NS = by_kind("v1", "Namespace")


def pod(name: str | None = "p", node: str | None = None, generate: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1"}]}
    if node:
        spec["nodeName"] = node
    meta: dict = {"name": name} if name else {"generateName": generate}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "s.db"))
    yield s
    s.close()


def registry_with_limit(store: SQLiteStore, limit: int, **kw: float) -> tuple[Registry, PendingPodLimit]:
    reg = Registry(store, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    reg.ensure_namespaces()
    hook = PendingPodLimit(store, limit, **kw)
    reg.create_hooks.setdefault("Pod", []).append(hook)
    return reg, hook


@pytest.mark.parametrize("obj,pending", [
    ({"spec": {}}, True),
    ({"spec": {}, "status": {"phase": "Pending"}}, True),
    ({"spec": {"nodeName": "n1"}}, False),
    ({"spec": {}, "status": {"phase": "Failed"}}, False),
    ({"spec": {}, "status": {"phase": "Succeeded"}}, False),
    ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}}, False),
])
def test_is_pending(obj: dict, pending: bool) -> None:
    assert is_pending(obj) is pending


def test_limit_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX_PENDING_PODS, raising=False)
    assert max_pending_pods_from_env() == DEFAULT_MAX_PENDING_PODS == 1000
    monkeypatch.setenv(ENV_MAX_PENDING_PODS, " 25 ")
    assert max_pending_pods_from_env() == 25
    monkeypatch.setenv(ENV_MAX_PENDING_PODS, "lots")
    with pytest.raises(ValueError, match=ENV_MAX_PENDING_PODS):
        max_pending_pods_from_env()


def test_constructor_argument_wins_over_env(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MAX_PENDING_PODS, "7")
    assert PendingPodLimit(store).limit == 7
    assert PendingPodLimit(store, 3).limit == 3


def test_refuses_unbound_pods_at_the_limit(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 3)
    for i in range(3):
        reg.create(POD, "default", pod(f"p{i}"))
    with pytest.raises(ApiError) as e:
        reg.create(POD, "default", pod(generate="web-7d9c-", name=None))
    assert (e.value.code, e.value.reason) == (403, "Forbidden")
    msg = e.value.message
    assert msg.startswith('pods "web-7d9c-" is forbidden: ')  # the generateName, not a random name
    assert "limit of 3 pending pods" in msg and "--max-pending-pods" in msg and ENV_MAX_PENDING_PODS in msg
    assert len(reg.items(POD)) == 3
    hook.close()


def test_bound_pods_are_not_counted_nor_refused(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 2)
    reg.create(POD, "default", pod("a"))
    reg.create(POD, "default", pod("b"))
    for i in range(3):  # pods that name their node skip the scheduler: always admitted
        reg.create(POD, "default", pod(f"static-{i}", node="n1"))
    assert hook.count() == 2
    with pytest.raises(ApiError):
        reg.create(POD, "default", pod("c"))
    hook.close()


def test_counts_follow_binding_deletion_and_terminal_phases(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 3)
    for name in ("a", "b", "c"):
        reg.create(POD, "default", pod(name))
    assert hook.count() == 3
    reg.bind("default", "a", "n1")  # scheduled: no longer pending
    assert hook.count() == 2
    reg.delete(POD, "default", "b")  # unbound: deleted at once
    assert hook.count() == 1
    reg.patch(POD, "default", "c", {"status": {"phase": "Failed"}}, "application/merge-patch+json", "status")
    assert hook.count() == 0
    for name in ("d", "e", "f"):
        reg.create(POD, "default", pod(name))
    with pytest.raises(ApiError):
        reg.create(POD, "default", pod("g"))
    hook.close()


def test_counts_every_namespace(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 2)
    reg.create(NS, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    reg.create(POD, "default", pod("a"))
    reg.create(POD, "other", pod("b"))
    with pytest.raises(ApiError):
        reg.create(POD, "kube-system", pod("c"))
    hook.close()


def test_counts_pods_that_existed_before_the_hook(store: SQLiteStore) -> None:
    reg = Registry(store)
    reg.ensure_namespaces()
    for i in range(4):
        reg.create(POD, "default", pod(f"old-{i}"))
    hook = PendingPodLimit(store, 5)
    reg.create_hooks.setdefault("Pod", []).append(hook)
    reg.create(POD, "default", pod("new"))
    with pytest.raises(ApiError):
        reg.create(POD, "default", pod("one-too-many"))
    assert hook.count() == 5
    hook.close()


def test_zero_turns_the_limit_off(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 0)
    for i in range(20):
        reg.create(POD, "default", pod(f"p{i}"))
    assert hook._thread is None  # nothing is counted at all
    hook.close()


def test_a_write_is_counted_before_the_next_admission(store: SQLiteStore) -> None:
    """The count is exact at decision time, even inside a running event loop (where the
    master calls it) and with no time for the background drain to run."""
    reg, hook = registry_with_limit(store, 50, drain_seconds=3600)

    async def flood() -> int:
        made = 0
        for i in range(200):
            try:
                reg.create(POD, "default", pod(f"p{i}"))
            except ApiError:
                break
            made += 1
        return made

    assert asyncio.run(flood()) == 50
    assert len(reg.items(POD)) == 50
    hook.close()


def test_background_drain_keeps_the_queue_short(store: SQLiteStore) -> None:
    reg, hook = registry_with_limit(store, 100, drain_seconds=0.05)
    reg.create(POD, "default", pod("first"))  # starts the count
    for i in range(30):
        reg.patch(POD, "default", "first", {"metadata": {"labels": {"n": str(i)}}}, "application/merge-patch+json")
    deadline = time.monotonic() + 5
    while hook._watch is not None and not hook._watch._squeue.empty():  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the queued events were never drained"
        time.sleep(0.02)
    assert hook.count() == 1
    hook.close()


def test_closing_the_store_stops_the_thread_and_admits(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    reg, hook = registry_with_limit(store, 1, drain_seconds=0.05)
    reg.create(POD, "default", pod("a"))
    thread = hook._thread
    assert isinstance(thread, threading.Thread) and thread.is_alive()
    store.close()
    thread.join(5)
    assert not thread.is_alive()
    assert hook.count() is None
    hook(pod("b"))  # no count: admitted (the store refuses the write anyway)


def test_pending_pods_hook_reads_the_registry_store(store: SQLiteStore) -> None:
    reg = Registry(store)
    hook = pending_pods_hook(reg, 4)
    assert isinstance(hook, PendingPodLimit) and hook.store is store and hook.limit == 4
