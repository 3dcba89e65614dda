"""`dockyard edit TYPE NAME | TYPE/NAME`: edit a live object in `$EDITOR`, kubectl's way.

The object is written as YAML (or JSON with `-o json`) under kubectl's header comment to a
temporary file, and the editor named by `$KUBE_EDITOR`, `$EDITOR` (default `vi`) is run on
it. Then:

* the file is unchanged (comments aside): `Edit cancelled, no changes made.`, exit 0;
* the file is empty: `Edit cancelled, saved file was empty.`, exit 0;
* otherwise the edited object is written back with a PUT that carries the resourceVersion
  it was read at, so a concurrent change is a Conflict rather than lost. An error (invalid
  YAML, a rejected field, a conflict) re-opens the file with the error as comments at the
  top, as kubectl does; saving the same failing content again stops with exit 1 and keeps
  a copy of the edits (`A copy of your changes has been stored to "…"`).

Success prints `deployment.apps/web edited`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..client import ConnectionFailed
from ..errors import ApiError
from . import output, targets
from .options import global_options

HEADER = """# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("edit", parents=[global_options(suppress=True)],
                              help="edit an object in $EDITOR and write it back",
                              description="edit TYPE NAME | TYPE/NAME in $KUBE_EDITOR or $EDITOR (default vi)")
    p.add_argument("words", nargs="+", metavar="TYPE[/NAME] [NAME]")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml", help="the format to edit in")
    p.add_argument("--subresource", choices=["status"], default=None, help="edit this subresource")
    p.set_defaults(handler=cmd_edit, intermixed="words")


def editor_command() -> list[str]:
    editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    return shlex.split(editor)


def strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).strip()


def render(obj: dict[str, Any], fmt: str, problems: list[str]) -> str:
    head = HEADER
    if problems:
        head += "".join(f"# {line}\n" for p in problems for line in p.splitlines()) + "#\n"
    body = output.to_json(obj) + "\n" if fmt == "json" else output.to_yaml(obj)
    return head + body


def parse_edited(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise output.CliError(f"the edited file is not valid YAML or JSON: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise output.CliError("the edited file must hold one object")
    return data


def _edit_file(path: Path) -> None:
    cmd = [*editor_command(), str(path)]
    try:
        code = subprocess.call(cmd)
    except OSError as e:
        raise output.CliError(f"cannot run the editor {cmd[0]!r} (set $EDITOR): {e.strerror or e}") from None
    if code != 0:
        raise output.CliError(f"the editor {cmd[0]!r} exited with status {code}; nothing was changed")


def cmd_edit(args: argparse.Namespace) -> int:
    with output.connect(args) as client:
        words = args.words
        if len(words) == 1 and "/" not in words[0]:
            raise output.CliError(f"a name is needed: edit {words[0]} NAME")
        refs = targets.resolve_refs(client, words)
        failed = False
        for ref in refs:
            try:
                if not _edit_one(args, client, ref):
                    failed = True
            except ConnectionFailed:
                raise
            except ApiError as e:
                output.report(e)
                failed = True
    return 1 if failed else 0


def _edit_one(args: argparse.Namespace, client: Any, ref: targets.Ref) -> bool:
    original = targets.fetch(client, ref)
    suffix = ".json" if args.output == "json" else ".yaml"
    fd, name = tempfile.mkstemp(prefix=f"dockyard-edit-{ref.name}-", suffix=suffix)
    os.close(fd)
    path = Path(name)
    problems: list[str] = []
    last_failed: str | None = None
    keep = False
    try:
        path.write_text(render(original, args.output, problems))
        original_text = strip_comments(render(original, args.output, []))
        while True:
            _edit_file(path)
            edited = strip_comments(path.read_text())
            if not edited:
                print("Edit cancelled, saved file was empty.", file=sys.stderr)
                return True
            if edited == original_text and not problems:
                print("Edit cancelled, no changes made.", file=sys.stderr)
                return True
            if last_failed is not None and edited == last_failed:
                keep = True
                print(f'A copy of your changes has been stored to "{path}"', file=sys.stderr)
                output.report(output.CliError("Edit cancelled, no valid changes were saved."))
                return False
            try:
                obj = parse_edited(edited)
                meta = obj.get("metadata") or {}
                if meta.get("name") != ref.name or str(obj.get("kind")) != ref.kind.kind:
                    raise output.CliError("the kind and the name of the object cannot be changed "
                                          f"(edit {ref.kind.kind} {ref.name!r})")
                ns = ref.namespace
                result = client.request("PUT", client.path(ref.kind, ns, ref.name, args.subresource or ""), obj)
            except ConnectionFailed:
                raise
            except (ApiError, output.CliError) as e:
                last_failed = edited
                reason = (f'{ref.kind.resource} "{ref.name}" was not valid:\n* {e.message}'
                          if isinstance(e, ApiError) else str(e))
                problems = [reason]
                keep_obj = obj_or_text(edited)
                if isinstance(keep_obj, dict):
                    path.write_text(render(keep_obj, args.output, problems))
                else:
                    path.write_text(HEADER + "".join(f"# {line}\n" for line in reason.splitlines()) + "#\n" + edited)
                continue
            unchanged = (result.get("metadata") or {}).get("resourceVersion") == \
                (original.get("metadata") or {}).get("resourceVersion")
            output.show(result, ref.kind, "edited" if not unchanged else "skipped", None)
            return True
    finally:
        if not keep:
            path.unlink(missing_ok=True)


def obj_or_text(text: str) -> dict[str, Any] | str:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return data if isinstance(data, dict) else text

