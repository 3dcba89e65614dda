from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, running
from tests.support.images import build_demo_image, docker_available


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not docker_available():
        if os.environ.get("CI"):
            pytest.fail("no Docker engine answers; CI must run the integration tests on a real engine")
        pytest.skip("no Docker engine answers (run `make docker`)")


@pytest.fixture(scope="session")
def demo_image(docker_engine: None) -> str:
    return build_demo_image()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("cluster"))) as c:
        yield c
