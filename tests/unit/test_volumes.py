"""Volume planning, atomic projection and the manager with a fake mounter (no privileges)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from agent.env import StaticConfigSource
from agent.volumes import (
    BindMount,
    VolumeError,
    VolumeManager,
    plan_mounts,
    projected_files,
    read_projection,
    safe_join,
    write_projection,
)


def pod(volumes: list[dict[str, Any]], uid: str = "uid-1") -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": "p", "namespace": "ns"}, "spec": {"volumes": volumes}}


VOLS = [
    {"name": "scratch", "emptyDir": {}},
    {"name": "cfg", "configMap": {"name": "cm"}},
    {"name": "host", "hostPath": {"path": "/srv"}},
]
PATHS = {"scratch": "/d/scratch", "cfg": "/d/cfg", "host": "/srv"}


@pytest.mark.parametrize(
    ("mounts", "expected"),
    [
        ([{"name": "scratch", "mountPath": "/s"}], [BindMount("/d/scratch", "/s")]),
        ([{"name": "scratch", "mountPath": "/s", "readOnly": True}], [BindMount("/d/scratch", "/s", True)]),
        ([{"name": "cfg", "mountPath": "/etc/c"}], [BindMount("/d/cfg", "/etc/c", True)]),  # always read-only
        ([{"name": "host", "mountPath": "/h", "subPath": "a/b"}], [BindMount("/srv/a/b", "/h")]),
    ],
)
def test_plan_mounts(mounts: list[dict[str, Any]], expected: list[BindMount]) -> None:
    assert plan_mounts(pod(VOLS), {"name": "c", "volumeMounts": mounts}, PATHS) == expected


@pytest.mark.parametrize(
    ("mounts", "errors", "message"),
    [
        ([{"name": "nope", "mountPath": "/x"}], {}, 'unable to find volume "nope"'),
        ([{"name": "cfg", "mountPath": "/x"}], {"cfg": 'configmap "cm" not found'}, "MountVolume.SetUp failed"),
        ([{"name": "scratch", "mountPath": "/x", "subPath": "../../etc"}], {}, "escapes"),
        ([{"name": "scratch", "mountPath": "/x", "subPath": "/abs"}], {}, "relative"),
    ],
)
def test_plan_mount_errors(mounts: list[dict[str, Any]], errors: dict[str, str], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        plan_mounts(pod(VOLS), {"name": "c", "volumeMounts": mounts}, PATHS, errors)


def test_safe_join() -> None:
    assert safe_join("/a", "b/../c") == "/a/c"
    with pytest.raises(VolumeError):
        safe_join("/a", "../a2")


@pytest.mark.parametrize(
    ("items", "optional", "expected"),
    [
        (None, False, {"k1": (b"v1", 0o644), "k2": (b"v2", 0o644)}),
        ([{"key": "k1", "path": "sub/one", "mode": 0o400}], False, {"sub/one": (b"v1", 0o400)}),
        ([{"key": "k9", "path": "x"}], True, {}),
    ],
)
def test_projected_files(items: list[dict[str, Any]] | None, optional: bool, expected: dict[str, Any]) -> None:
    assert projected_files({"k1": b"v1", "k2": b"v2"}, items, 0o644, optional, "configmap") == expected


def test_projected_files_missing_key() -> None:
    with pytest.raises(VolumeError, match="k9"):
        projected_files({}, [{"key": "k9", "path": "x"}], 0o644, False, "configmap")


def test_atomic_projection(tmp_path: Path) -> None:
    assert write_projection(tmp_path, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert (tmp_path / "a").read_text() == "1" and (tmp_path / "dir" / "b").read_text() == "2"
    assert os.readlink(tmp_path / "a") == "..data/a"
    first = os.readlink(tmp_path / "..data")
    assert not write_projection(tmp_path, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})  # unchanged
    assert write_projection(tmp_path, {"a": (b"changed", 0o644)})
    assert (tmp_path / "a").read_text() == "changed"
    assert not (tmp_path / "dir").exists() and not (tmp_path / first).exists()
    assert read_projection(tmp_path) == {"a": (b"changed", 0o644)}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("..")) == ["a"]


class FakeMounter:
    def __init__(self) -> None:
        self.mounted: dict[Path, int | None] = {}

    def mount_tmpfs(self, path: Path, size: int | None = None) -> None:
        self.mounted[path] = size

    def unmount(self, path: Path) -> None:
        self.mounted.pop(path, None)

    def is_mount(self, path: Path) -> bool:
        return path in self.mounted

    def mounts_under(self, path: Path) -> list[Path]:
        return [p for p in self.mounted if str(p).startswith(str(path) + "/")]


def test_manager_sets_up_refreshes_and_tears_down(tmp_path: Path) -> None:
    src = StaticConfigSource(
        config_maps={("ns", "cm"): {"data": {"app.conf": "v1"}}},
        secrets={("ns", "s"): {"data": {"pw": base64.b64encode(b"x").decode()}}},
    )
    mounter = FakeMounter()
    vm = VolumeManager(tmp_path, src, mounter, refresh_every=0)
    p = pod([
        {"name": "scratch", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "cfg", "configMap": {"name": "cm"}},
        {"name": "sec", "secret": {"secretName": "s"}},
        {"name": "missing", "configMap": {"name": "absent"}},
        {"name": "optional", "secret": {"secretName": "absent", "optional": True}},
        {"name": "hp", "hostPath": {"path": str(tmp_path / "host" / "made"), "type": "DirectoryOrCreate"}},
        {"name": "hpfile", "hostPath": {"path": str(tmp_path / "nofile"), "type": "File"}},
    ])
    prepared = vm.prepare(p)
    assert set(prepared.errors) == {"missing", "hpfile"}
    assert 'configmap "absent" not found' in prepared.errors["missing"]
    assert (tmp_path / "host" / "made").is_dir()
    assert mounter.mounted == {
        vm.volume_dir("uid-1", "mem"): 2**20,
        vm.volume_dir("uid-1", "sec"): None,
        vm.volume_dir("uid-1", "optional"): None,  # secrets always on tmpfs, even empty ones
    }
    assert (vm.volume_dir("uid-1", "cfg") / "app.conf").read_text() == "v1"
    assert (vm.volume_dir("uid-1", "sec") / "pw").read_text() == "x"

    spec = {"name": "c", "volumeMounts": [
        {"name": "scratch", "mountPath": "/s", "subPath": "logs"},
        {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
    ]}
    mounts = vm.mounts(p, spec, prepared)
    assert (vm.volume_dir("uid-1", "scratch") / "logs").is_dir()  # subPath created in emptyDir
    assert mounts[1].source == os.path.realpath(vm.volume_dir("uid-1", "cfg") / "app.conf")
    assert ".." in mounts[1].source  # the file itself, not the symlink

    src.config_maps[("ns", "cm")] = {"data": {"app.conf": "v2"}}
    vm.prepare(p)
    assert (vm.volume_dir("uid-1", "cfg") / "app.conf").read_text() == "v2"

    assert vm.cleanup({"uid-1"}) == []
    assert vm.cleanup(set()) == ["uid-1"]
    assert mounter.mounted == {} and not vm.pod_dir("uid-1").exists()


def test_pod_dir_rejects_bad_uids(tmp_path: Path) -> None:
    vm = VolumeManager(tmp_path, StaticConfigSource(), FakeMounter())
    for bad in ("", "../x", ".."):
        with pytest.raises(VolumeError):
            vm.pod_dir(bad)
