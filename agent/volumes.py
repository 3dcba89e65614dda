"""Pod volumes on the host, bind-mounted into the pod's containers.

Every pod gets a directory ``<data dir>/pods/<uid>/volumes/<name>`` per volume; the
containers mount those directories (or files below them, for ``subPath``) as Docker bind
mounts, so all containers of a pod see the same data:

* ``emptyDir``: a plain directory; with ``medium: Memory`` a tmpfs mounted on the host at
  that directory (``sizeLimit`` → ``size=``). Docker's own tmpfs mounts are private to one
  container, a host tmpfs bound into each container is shared, like in Kubernetes.
* ``hostPath``: the host path itself, after the ``type`` check (``Directory``,
  ``DirectoryOrCreate``, ``File``, ``FileOrCreate``, ``Socket``, ``CharDevice``,
  ``BlockDevice``; empty = no check).
* ``configMap`` / ``secret``: keys projected as files (all keys, or ``items`` with
  ``path``/``mode``; ``defaultMode`` otherwise, 0644 by default). Secret volumes live on a
  tmpfs, so secret data never reaches the disk. Both are always mounted read-only.
  Projection follows kubelet's atomic writer: files go into a fresh hidden
  ``..<timestamp>`` directory, a ``..data`` symlink is swapped to it with one
  ``rename``, and each top-level name is a symlink through ``..data``. Readers see either
  the old or the new set of files, never a mix. Projections are refreshed on each sync
  (at most every ``refresh_every`` seconds per pod), so ConfigMap/Secret updates reach the
  files; a ``subPath`` mount of such a volume keeps the file it saw at start (as in
  Kubernetes).

A volume that cannot be set up (a missing ConfigMap that is not optional, a hostPath of
the wrong type, …) makes every container mounting it wait with reason
``ContainerCreating`` and a ``MountVolume.SetUp failed`` message, like kubelet's
``FailedMount``. Removing a pod unmounts every mount under its directory (deepest first)
and deletes the directory. Mounting is delegated to a :class:`Mounter` so the planning
and projection logic is tested without privileges.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from orchestrator.objects.validation import parse_memory_quantity

from .env import ConfigError, ConfigSource, config_map_data, secret_data

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644
DATA_LINK = "..data"


class VolumeError(Exception):
    """A volume could not be set up; containers mounting it keep waiting."""

    reason = "ContainerCreating"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class BindMount:
    source: str  # host path
    target: str  # path inside the container
    read_only: bool = False


# -- mounting -------------------------------------------------------------------------------


class Mounter(Protocol):
    def mount_tmpfs(self, path: Path, size: int | None = None) -> None: ...

    def unmount(self, path: Path) -> None: ...

    def is_mount(self, path: Path) -> bool: ...

    def mounts_under(self, path: Path) -> list[Path]: ...


class HostMounter:
    """Real mounts through mount(8)/umount(8); needs root."""

    def mount_tmpfs(self, path: Path, size: int | None = None) -> None:
        opts = "mode=0755" + (f",size={size}" if size else "")
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise VolumeError(f"mounting a tmpfs at {path} failed: {r.stderr.strip() or r.returncode}")

    def unmount(self, path: Path) -> None:
        r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)
            if r.returncode != 0:
                log.warning("unmounting %s failed: %s", path, r.stderr.strip())

    def is_mount(self, path: Path) -> bool:
        return os.path.ismount(path)

    def mounts_under(self, path: Path) -> list[Path]:
        prefix = str(path).rstrip("/") + "/"
        out: list[Path] = []
        try:
            with open("/proc/self/mounts") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 1:
                        mp = parts[1].replace("\\040", " ")
                        if mp.startswith(prefix) or mp == str(path):
                            out.append(Path(mp))
        except OSError:
            pass
        return out


# -- pure planning --------------------------------------------------------------------------


def volume_kind(volume: Mapping[str, Any]) -> str:
    for kind in ("emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected",
                 "persistentVolumeClaim", "nfs"):
        if kind in volume and volume[kind] is not None:
            return kind
    return "emptyDir" if set(volume) == {"name"} else "unknown"


def always_read_only(kind: str) -> bool:
    return kind in ("configMap", "secret", "downwardAPI", "projected")


def projected_files(
    data: Mapping[str, bytes],
    items: list[Mapping[str, Any]] | None,
    default_mode: int,
    optional: bool,
    what: str,
) -> dict[str, tuple[bytes, int]]:
    """Files (relative path → (content, mode)) of a configMap/secret volume."""
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out: dict[str, tuple[bytes, int]] = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"configmap references non-existent config key: {key}" if what == "configmap"
                              else f"references non-existent secret key: {key}")
        mode = item.get("mode")
        out[str(item.get("path") or key)] = (data[key], int(mode) if mode is not None else default_mode)
    return out


def safe_join(base: str, rel: str) -> str:
    """`base/rel` when it stays inside `base` (no absolute paths, no `..` escapes)."""
    if os.path.isabs(rel):
        raise VolumeError(f"subPath {rel!r} must be a relative path")
    joined = os.path.normpath(os.path.join(base, rel))
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise VolumeError(f"subPath {rel!r} escapes the volume")
    return joined


def plan_mounts(
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    paths: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
) -> list[BindMount]:
    """Bind mounts of one container, given each volume's host path (or its setup error)."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    errors = errors or {}
    out: list[BindMount] = []
    for m in spec.get("volumeMounts") or []:
        name = str(m.get("name") or "")
        if name in errors:
            raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {errors[name]}')
        if name not in volumes or name not in paths:
            raise VolumeError(f'unable to find volume "{name}" for container {spec.get("name")}')
        kind = volume_kind(volumes[name])
        source = paths[name]
        sub = str(m.get("subPath") or "")
        if sub:
            source = safe_join(source, sub)
        out.append(
            BindMount(
                source=source,
                target=str(m.get("mountPath") or ""),
                read_only=bool(m.get("readOnly")) or always_read_only(kind),
            )
        )
    return out


# -- atomic projection ----------------------------------------------------------------------


def read_projection(directory: Path) -> dict[str, tuple[bytes, int]]:
    """What a projected directory currently holds (through its ``..data`` link)."""
    data = directory / DATA_LINK
    if not data.is_symlink():
        return {}
    root = data.resolve()
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            st = p.stat()
            out[str(p.relative_to(root))] = (p.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


def write_projection(directory: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Atomically replace the projected files in `directory`; False when nothing changed."""
    if (directory / DATA_LINK).is_symlink() and read_projection(directory) == dict(files):
        return False
    stamp = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    new = directory / stamp
    new.mkdir(mode=0o755)
    for rel, (content, mode) in files.items():
        target = Path(safe_join(str(new), rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        os.chmod(target, mode)
    old = os.readlink(directory / DATA_LINK) if (directory / DATA_LINK).is_symlink() else None
    tmp = directory / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(stamp)
    os.rename(tmp, directory / DATA_LINK)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"{DATA_LINK}/{top}")
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True


# -- the manager ----------------------------------------------------------------------------


@dataclass
class PreparedVolumes:
    paths: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _host_path_check(path: Path, kind: str) -> None:
    if kind in ("", None):
        return
    if kind == "DirectoryOrCreate":
        if not path.exists():
            path.mkdir(mode=0o755, parents=True)
        kind = "Directory"
    if kind == "FileOrCreate":
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644)
        kind = "File"
    checks: dict[str, Callable[[os.stat_result], bool]] = {
        "Directory": lambda st: stat.S_ISDIR(st.st_mode),
        "File": lambda st: stat.S_ISREG(st.st_mode),
        "Socket": lambda st: stat.S_ISSOCK(st.st_mode),
        "CharDevice": lambda st: stat.S_ISCHR(st.st_mode),
        "BlockDevice": lambda st: stat.S_ISBLK(st.st_mode),
    }
    if kind not in checks:
        raise VolumeError(f"hostPath type {kind!r} is not supported")
    try:
        st = path.stat()
    except OSError:
        raise VolumeError(f"hostPath type check failed: {path} does not exist") from None
    if not checks[kind](st):
        raise VolumeError(f"hostPath type check failed: {path} is not a {kind}")


class VolumeManager:
    def __init__(
        self,
        data_dir: Path,
        source: ConfigSource,
        mounter: Mounter | None = None,
        refresh_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.source = source
        self.mounter: Mounter = mounter or HostMounter()
        self.refresh_every = refresh_every
        self.clock = clock
        self._prepared: dict[str, tuple[float, PreparedVolumes]] = {}
        self._lock = threading.Lock()

    def pods_dir(self) -> Path:
        return self.data_dir / "pods"

    def pod_dir(self, uid: str) -> Path:
        if not uid or "/" in uid or uid.startswith("."):
            raise VolumeError(f"invalid pod uid {uid!r}")
        return self.pods_dir() / uid

    def volume_dir(self, uid: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / name

    def prepare(self, pod: Mapping[str, Any], force: bool = False) -> PreparedVolumes:
        """Set up (or refresh) every volume of the pod; errors are collected per volume."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        now = self.clock()
        with self._lock:
            hit = self._prepared.get(uid)
        if hit is not None and not force and now - hit[0] < self.refresh_every:
            return hit[1]
        out = PreparedVolumes()
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = str(vol.get("name") or "")
            try:
                out.paths[name] = self._setup(pod, uid, name, vol)
            except (VolumeError, ConfigError) as e:
                out.errors[name] = e.message
            except OSError as e:
                out.errors[name] = str(e)
        with self._lock:
            self._prepared[uid] = (now, out)
        return out

    def _setup(self, pod: Mapping[str, Any], uid: str, name: str, vol: Mapping[str, Any]) -> str:
        kind = volume_kind(vol)
        namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
        if kind == "hostPath":
            hp = vol["hostPath"]
            path = Path(str(hp.get("path") or ""))
            _host_path_check(path, str(hp.get("type") or ""))
            return str(path)
        d = self.volume_dir(uid, name)
        if kind == "emptyDir":
            ed = vol.get("emptyDir") or {}
            d.mkdir(parents=True, exist_ok=True)
            if ed.get("medium") == "Memory" and not self.mounter.is_mount(d):
                size = parse_memory_quantity(ed["sizeLimit"]) if ed.get("sizeLimit") else None
                self.mounter.mount_tmpfs(d, size)
                os.chmod(d, 0o777)
            elif ed.get("medium") != "Memory":
                os.chmod(d, 0o777)
            return str(d)
        if kind in ("configMap", "secret"):
            src = vol[kind]
            optional = bool(src.get("optional"))
            mode = int(src.get("defaultMode") if src.get("defaultMode") is not None else DEFAULT_MODE)
            if kind == "configMap":
                obj_name = str(src.get("name") or "")
                obj = self.source.config_map(namespace, obj_name)
                what = "configmap"
                data = config_map_data(obj) if obj is not None else None
            else:
                obj_name = str(src.get("secretName") or "")
                obj = self.source.secret(namespace, obj_name)
                what = "secret"
                data = secret_data(obj) if obj is not None else None
            if data is None:
                if not optional:
                    raise VolumeError(f'{what} "{obj_name}" not found')
                data = {}
            files = projected_files(data, src.get("items"), mode, optional, what)
            d.mkdir(parents=True, exist_ok=True)
            if kind == "secret" and not self.mounter.is_mount(d):
                self.mounter.mount_tmpfs(d)
            if write_projection(d, files):
                log.info("pod %s: volume %s (%s %s) updated", uid, name, what, obj_name)
            return str(d)
        raise VolumeError(f"volume type {kind} is not supported by this agent")

    def mounts(self, pod: Mapping[str, Any], spec: Mapping[str, Any], prepared: PreparedVolumes) -> list[BindMount]:
        """Bind mounts of one container; creates missing subPath directories in writable volumes."""
        out = plan_mounts(pod, spec, prepared.paths, prepared.errors)
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        for i, (m, b) in enumerate(zip(spec.get("volumeMounts") or [], out, strict=True)):
            if not m.get("subPath"):
                continue
            if volume_kind(volumes[m["name"]]) == "emptyDir":
                Path(b.source).mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(b.source):
                raise VolumeError(f"subPath {m['subPath']!r} does not exist in volume {m['name']!r}")
            if os.path.islink(b.source):
                # Bind what the link points at now (projected keys are links through ..data).
                real = os.path.realpath(b.source)
                base = str(Path(prepared.paths[m["name"]]).resolve())
                if real != base and not real.startswith(base + "/"):
                    raise VolumeError(f"subPath {m['subPath']!r} escapes the volume")
                out[i] = BindMount(real, b.target, b.read_only)
        return out

    def teardown(self, uid: str) -> None:
        """Unmount everything under the pod's directory and delete it."""
        with self._lock:
            self._prepared.pop(uid, None)
        d = self.pod_dir(uid)
        for mp in sorted(self.mounter.mounts_under(d), key=lambda p: len(str(p)), reverse=True):
            self.mounter.unmount(mp)
        if self.mounter.mounts_under(d):
            log.warning("pod %s: mounts left under %s; not deleting it", uid, d)
            return
        shutil.rmtree(d, ignore_errors=True)

    def known_pods(self) -> list[str]:
        try:
            return [p.name for p in self.pods_dir().iterdir() if p.is_dir()]
        except OSError:
            return []

    def cleanup(self, keep: set[str]) -> list[str]:
        """Tear down pod directories whose uid is not in `keep`; returns the uids removed."""
        gone = [uid for uid in self.known_pods() if uid not in keep]
        for uid in gone:
            log.info("removing volumes of pod %s", uid)
            self.teardown(uid)
        return gone
