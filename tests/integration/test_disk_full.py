"""A real master whose data dir is on a small tmpfs that fills up.

Through the API: writes get 507 InsufficientStorage with a message naming the data dir and
what to do (never a 500), reads keep working, deletes succeed, and once space is freed
(by deleting objects, or by removing a file elsewhere on that filesystem) writes succeed
again without a restart. Every acknowledged write reads back intact, also after a restart.

Needs root (to mount the tmpfs), no Docker: a master alone runs no containers. All
traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, free_port
from tests.support.tmpfs import small_tmpfs

MiB = 1 << 20
DISK = "16m"
OBJECT_BYTES = 100_000
MAX_WRITES = 300  # per filling; a 16 MiB disk takes far fewer
LABEL = "dockyard.test/disk-full"
CONFIGMAPS = resolve("configmaps")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", DISK) as mnt:
        yield mnt


class Master:
    """`dockyard master` in a subprocess, its log and kubeconfig outside the small disk."""

    def __init__(self, data_dir: Path, base: Path) -> None:
        self.data_dir = data_dir
        self.kubeconfig = base / "kubeconfig"
        self.log_path = base / "master.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    def start(self) -> Client:
        env = dict(os.environ, DOCKYARD_CONFIG=str(self.kubeconfig), PYTHONPATH=str(ROOT))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "master",
                 "--data-dir", str(self.data_dir),
                 "--listen", f"127.0.0.1:{self.port}",
                 "--write-kubeconfig", str(self.kubeconfig)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the master exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if self.kubeconfig.exists():
                try:
                    client = Client.from_kubeconfig(str(self.kubeconfig), namespace="default")
                    client.request("GET", "/version")
                    self.client = client
                    return client
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the master did not answer within 30s:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def write_filler(path: Path, size: int) -> None:
    chunk = b"\1" * MiB
    with open(path, "wb") as f:
        while size > 0:
            f.write(chunk[: min(size, MiB)])
            size -= MiB


class Writer:
    """Creates labelled ConfigMaps; remembers every one the API acknowledged."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.stored: dict[str, dict[str, str]] = {}

    def create(self, name: str, size: int) -> ApiError | None:
        """None if stored; the 507 if the disk is full; anything else fails the test."""
        data = {"blob": f"{name}:" + "x" * size}
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {LABEL: "yes"}}, "data": data}
        try:
            self.client.create(body)
        except ApiError as e:
            assert e.code == 507, f"create {name}: {e.code} {e.reason}: {e.message}"
            return e
        self.stored[name] = data
        return None

    def fill(self, prefix: str) -> ApiError:
        deadline = time.monotonic() + 120
        for i in range(MAX_WRITES):
            err = self.create(f"{prefix}-{i:03}", OBJECT_BYTES)
            if err is not None:
                return err
            assert time.monotonic() < deadline, "filling the disk took too long"
        raise AssertionError(f"the disk did not fill up after {MAX_WRITES} ConfigMaps")

    def create_when_room(self, prefix: str, timeout: float = 20) -> None:
        """Writes succeed again by themselves (no restart): within `timeout`."""
        deadline = time.monotonic() + timeout
        i = 0
        while self.create(f"{prefix}-{i:03}", 1000) is not None:
            assert time.monotonic() < deadline, "writes still refused after space was freed"
            i += 1
            time.sleep(0.2)

    def delete(self, name: str) -> None:
        self.client.delete(CONFIGMAPS, name)  # raises (failing the test) on any error
        del self.stored[name]

    def verify(self) -> None:
        items = self.client.list(CONFIGMAPS, label_selector=LABEL)["items"]
        assert {o["metadata"]["name"]: o["data"] for o in items} == self.stored


def assert_disk_full(err: ApiError, data_dir: Path) -> None:
    assert (err.code, err.reason) == (507, "InsufficientStorage")
    assert "the master's disk is full" in err.message
    assert str(data_dir) in err.message and "bytes free" in err.message
    assert "free space" in err.message and "delete objects" in err.message


def test_a_master_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    data_dir = small_disk / "data"
    master = Master(data_dir, tmp_path)
    filler = small_disk / "filler"
    try:
        w = Writer(master.start())
        # the master (its certificates, database and reserve) is up: leave it ~6 MiB
        write_filler(filler, max(0, free_bytes(small_disk) - 6 * MiB))

        # 1. fill the disk through the API: a clear 507, then creates and updates keep failing
        err = w.fill("a")
        assert_disk_full(err, data_dir)
        assert len(w.stored) >= 10
        for i in range(3):
            again = w.create(f"again-{i}", 100)
            assert again is not None
            assert_disk_full(again, data_dir)
        first = next(iter(w.stored))
        obj: dict[str, Any] = w.client.get(CONFIGMAPS, first)
        obj["data"] = {"blob": "changed"}
        with pytest.raises(ApiError) as update:
            w.client.replace(obj)
        assert update.value.code == 507
        w.verify()  # reads work, nothing acknowledged is lost or changed
        with pytest.raises(ApiError) as ready:  # not ready, and says why (store.health())
            w.client.request("GET", "/readyz")
        assert ready.value.code >= 500 and "the master's disk is full" in ready.value.message

        # 2. deletes succeed on the full disk
        for name in list(w.stored)[:3]:
            w.delete(name)
        w.verify()

        # 3. deleting objects frees space: writes work again by themselves
        for name in list(w.stored)[:-5]:
            w.delete(name)
        w.create_when_room("b")
        w.verify()

        # 4. fill it again, then free space elsewhere on the filesystem
        assert_disk_full(w.fill("c"), data_dir)
        refused = w.create("c-again", 100)
        assert refused is not None and refused.code == 507
        filler.unlink()
        w.create_when_room("d")
        w.verify()
        assert w.client.request("GET", "/readyz") == "ok"

        # the store's files are private; the log has no unexplained error
        for name in ("state.db", "state.db-wal", "state.db-shm", "state.db-reserve"):
            path = data_dir / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        log = master.log()
        assert "cannot rollback" not in log
        assert "internal error serving" not in log

        # 5. after a restart every acknowledged write is still there
        master.stop()
        w.client = master.start()
        w.verify()
    finally:
        master.stop()
