"""Helpers for tests that drive the agent's PodExecutor directly on the Docker engine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agent.images import BUSYBOX_IMAGE, ensure_images
from agent.main import PodExecutor, SyncResult
from agent.runtime import DockerRuntime, RuntimeFailure


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


@contextmanager
def node_runtime(node: str, network: str) -> Iterator[DockerRuntime]:
    """A DockerRuntime for a test node of its own; removes its containers and network after."""
    try:
        rt = DockerRuntime(network=network, node_name=node)
        rt.ping()
    except RuntimeFailure as e:
        if os.environ.get("CI"):
            pytest.fail(f"Docker is not reachable: {e}")
        pytest.skip(f"Docker is not reachable: {e}")
    ensure_images(rt)
    try:
        yield rt
    finally:
        for c in rt.list_containers():
            rt.remove(c.id)
        rt.remove_network()
        rt.close()
