"""Helpers for tests that drive the agent's PodExecutor directly on the Docker engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.images import BUSYBOX_IMAGE
from agent.main import PodExecutor, SyncResult


def box(name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A busybox container running `sh -c script`."""
    c = {"name": name, "image": BUSYBOX_IMAGE, "command": ["sh", "-c", script]}
    c.update(extra)
    return c


def converge(
    ex: PodExecutor, pod: dict[str, Any], until: Callable[[SyncResult], bool], timeout: float = 20.0
) -> SyncResult:
    """Sync the pod (feeding its status back, as the API would) until `until` holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = ex.sync(pod)
        pod["status"] = result.status
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no convergence; last status: {result.status}")
        time.sleep(0.1)
