"""The master's metrics without a master: controller timing through the runner's sync
hook, queue depths read from the runners' threads, and the routes' authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from orchestrator.api import mastermetrics
from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects.kinds import by_kind
from orchestrator.pki import node_token
from orchestrator.reconcile.runner import Controller, Runner
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
SECRET = b"n" * 32
CM = by_kind("v1", "ConfigMap")


class Noop(Controller):
    name = "noop"
    watches = (CM,)

    def sync(self, key: str) -> None:
        pass


def test_sync_hook_and_queue_depths_are_exported(tmp_path: Path) -> None:
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    api = ApiServer(reg, Authenticator(ADMIN, "K10" + "0" * 64 + "::node:join", SECRET), b"PEM",
                    lambda n: node_token(SECRET, n))
    mm, routes = mastermetrics.routes(api, api.authn, SECRET, tmp_path, lambda: [], "https://10.0.0.1:6443")
    api.add_routes(routes)
    runner = Runner(reg, [Noop(reg)], on_sync=mm.observe_sync)
    mm.watch_state([runner], reg.store)
    runner.pending["noop"].update({"default/a", "default/b"})  # two keys waiting
    mm.observe_sync("noop", "default/a", 0.003, None)
    client = TestClient(api.app)
    assert client.get("/metrics").status_code == 401
    token = (tmp_path / mastermetrics.TOKEN_FILE).read_text().strip()
    body = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
    assert 'dockyard_controller_sync_duration_seconds_count{controller="noop"} 1.0' in body
    assert 'dockyard_controller_queue_depth{controller="noop"} 2.0' in body
    assert "dockyard_store_revision" in body
    targets: Any = client.get(mastermetrics.TARGETS_PATH, headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert targets == [{"targets": ["10.0.0.1:6443"], "labels": {"__meta_dockyard_role": "master"}}]

