"""kubectl and the official Python client, pointed at a test cluster.

`Kubectl(cluster, cache)` runs the real kubectl with the cluster's kubeconfig and a cache
directory of the test's own (discovery is cached per test module, never in $HOME);
`python_client(cluster)` is an `ApiClient` of the `kubernetes` package configured from the
same kubeconfig, as a user's program would load it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.cluster import Cluster


class Kubectl:
    def __init__(self, cluster: Cluster, cache: Path) -> None:
        self.base = ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache)]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*self.base, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
        return subprocess.Popen([*self.base, *args], **options)


@contextmanager
def python_client(cluster: Cluster) -> Iterator[Any]:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as c:
        yield c
