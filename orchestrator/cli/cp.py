"""`dockyard cp [NS/]POD:PATH LOCAL` and `dockyard cp LOCAL [NS/]POD:PATH [-c C]`: copy files, kubectl's way.

As `kubectl cp`, through `exec` and `tar` in the container (the image needs a `tar`; without `-c`, kubectl's
default container, see `logs.default_container`):

* from the pod: `tar cf - -C DIR BASE` runs in the container, its output is read into
  memory and extracted locally so that the copied file or directory lands at LOCAL (inside
  LOCAL when LOCAL is an existing directory and the source is a file);
* to the pod: the local file or directory is packed as a tar whose top entry is named
  after the destination, and `tar xmf - -C DIR` unpacks it in the container; a destination
  that is a directory in the container receives the source under its own name, as with
  `cp`.

Archive members are checked before anything is written locally: absolute paths, `..` and
links pointing outside the destination are refused. Failure of the container's tar is an
error naming the pod and path, with tar's own message.
"""

from __future__ import annotations

import argparse
import io
import posixpath
import sys
import tarfile
from pathlib import Path
from typing import Any

from ..objects.kinds import resolve
from . import exec as execcmd
from . import output
from .logs import default_container
from .options import global_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("cp", parents=[global_options(suppress=True)],
                              help="copy files between a container and the local machine",
                              description="cp [NS/]POD:PATH LOCAL  |  cp LOCAL [NS/]POD:PATH (needs tar in the image)")
    p.add_argument("source", metavar="SRC")
    p.add_argument("dest", metavar="DEST")
    p.add_argument("-c", "--container", metavar="C", help="container name (default: the only one)")
    p.add_argument("--no-preserve", action="store_true", help="do not keep ownership and permissions")
    p.set_defaults(handler=cmd_cp)


def split_remote(spec: str) -> tuple[str | None, str, str] | None:
    """`ns/pod:/path` → ("ns", "pod", "/path"); a local path → None."""
    if ":" not in spec or spec.startswith(("/", ".")):
        return None
    head, _, path = spec.partition(":")
    if not head or "\\" in head:
        return None
    ns, sep, pod = head.partition("/")
    if not sep:
        return None, head, path
    if not ns or not pod or "/" in pod:
        raise output.CliError(f'expected [NAMESPACE/]POD:PATH, got "{spec}"')
    return ns, pod, path


def _safe_target(root: Path, name: str) -> Path:
    if name.startswith("/") or ".." in Path(name).parts:
        raise output.CliError(f'refusing to extract "{name}": it would land outside the destination')
    return root / name


def extract(data: bytes, base: str, dest: Path) -> None:
    """Unpack a tar whose top entry is `base` so that entry becomes `dest`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        if not members:
            raise output.CliError(f'"{base}": the container sent nothing')
        top_is_dir = any(m.name == base and m.isdir() for m in members)
        if not top_is_dir and dest.is_dir():
            dest = dest / base
        for m in members:
            rel = m.name
            if rel != base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base):].lstrip("/")
            target = _safe_target(dest, sub) if sub else dest
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(m)
                if source is None:
                    continue
                target.write_bytes(source.read())
                target.chmod(m.mode & 0o777)
            elif m.issym():
                if m.linkname.startswith("/") or ".." in Path(m.linkname).parts:
                    raise output.CliError(f'refusing the link "{m.name}" -> "{m.linkname}": it leaves the destination')
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                target.symlink_to(m.linkname)


def pack(source: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        tar.add(str(source), arcname=arcname)
    return buf.getvalue()


def cmd_cp(args: argparse.Namespace) -> int:
    src, dst = split_remote(args.source), split_remote(args.dest)
    if src and dst:
        raise output.CliError("one of src or dest must be a local file specification")
    if not src and not dst:
        raise output.CliError("one of src or dest must be a remote file specification (POD:PATH)")
    with output.connect(args) as client:
        if not args.container:
            remote = src or dst
            assert remote is not None
            found = client.get(resolve("pods"), remote[1], remote[0])
            args.container, notice = default_container(found)
            if notice:
                print(notice, file=sys.stderr, flush=True)
        if src:
            ns, pod, path = src
            if not path:
                raise output.CliError("the remote path is empty: give POD:PATH")
            path = posixpath.normpath(path)
            base = posixpath.basename(path) or "."
            parent = posixpath.dirname(path) or "."
            out, err = io.BytesIO(), io.BytesIO()
            code = execcmd.run(client, pod, ["tar", "cf", "-", "-C", parent, base], args.container,
                               stdout=out, stderr=err, namespace=ns)
            if code != 0:
                raise output.CliError(f"cannot copy {pod}:{path}: tar exited with {code}: "
                                      f"{err.getvalue().decode(errors='replace').strip()}")
            extract(out.getvalue(), base, Path(args.dest))
            return 0
        assert dst is not None
        ns, pod, path = dst
        local = Path(args.source)
        if not local.exists():
            raise output.CliError(f'"{args.source}" does not exist')
        path = posixpath.normpath(path or ".")
        if execcmd.run(client, pod, ["test", "-d", path], args.container, stdout=io.BytesIO(),
                       stderr=io.BytesIO(), namespace=ns) == 0:
            path = posixpath.join(path, local.name)
        data = pack(local, posixpath.basename(path))
        err = io.BytesIO()
        flags = "xmf" if not args.no_preserve else "xmfo"
        code = execcmd.run(client, pod, ["tar", flags, "-", "-C", posixpath.dirname(path) or "/"], args.container,
                           stdin=io.BytesIO(data), stdout=io.BytesIO(), stderr=err, namespace=ns)
        if code != 0:
            raise output.CliError(f"cannot copy to {pod}:{path}: tar exited with {code}: "
                                  f"{err.getvalue().decode(errors='replace').strip()}")
    return 0
