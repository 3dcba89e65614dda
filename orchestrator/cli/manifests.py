"""Loading manifests for `apply -f` and `delete -f`: files, directories and stdin.

Every source is read, parsed and checked before the caller touches the cluster, and each
problem is reported with where it is (file, 1-based document number within the file, and
for YAML syntax errors the line) so the user can go straight to it. Two strictnesses:

- `load(paths)` is all-or-nothing: the first problem raises, so a typo in the third
  document of a file never leaves the first two created, replaced or diffed.
- `load(paths, problems=[])` is kubectl's `apply -f` / `delete -f`: a source that does not
  parse (YAML or JSON syntax, unreadable file) still stops everything, but an object that
  parses and cannot be sent (an unserved kind, no `metadata.name`, no `kind`, …) becomes a
  `Problem` in the list and every other object is returned. For an unserved kind the
  message is kubectl's (`resource mapping not found for name: "x" namespace: "" from
  "f.yaml": no matches for kind "Widget" in version "example.com/v1"`), so scripts that
  look for it find it, followed by where it is and what the server does serve.

Rules:
- `-` reads stdin (once); a directory contributes its `*.yaml`, `*.yml` and `*.json` files
  in sorted order, descending into subdirectories only with `recursive`.
- A file holds any number of YAML documents; empty documents are skipped; `kind: List`
  (or any `…List` with `items`) is expanded into its items.
- Each object needs `apiVersion`, `kind` (a served one) and `metadata.name`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from ..objects.kinds import KINDS, Kind, UnknownKind, by_kind
from .output import CliError

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Manifest:
    """One object to apply/delete, and where it came from."""

    source: str  # file path or "<stdin>"
    document: int  # 1-based document number within the source
    item: int | None  # 1-based index within a List document
    obj: dict[str, Any]
    kind: Kind

    @property
    def where(self) -> str:
        loc = f"{self.source}: document {self.document}"
        return f"{loc}, item {self.item}" if self.item is not None else loc

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        ns = self.obj["metadata"].get("namespace")
        return str(ns) if ns else None


class ObjectError(CliError):
    """One object of a source cannot be sent; the other objects of the source can."""


class UnservedKind(ObjectError):
    """The object's apiVersion/kind is not one the server serves."""

    def __init__(self, where: str, obj: dict[str, Any], detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.obj = obj


@dataclass(frozen=True)
class Problem:
    """An object left out of a lenient `load`, with the one line that says why."""

    where: str
    message: str


def served_hint(kind_name: str) -> str:
    """`Deployment is served as apps/v1`, or the list of served kinds when none matches."""
    versions = sorted(k.api_version for k in KINDS if k.kind == kind_name)
    if versions:
        return f"{kind_name} is served as {' and '.join(versions)}"
    return "served kinds: " + ", ".join(sorted({k.kind for k in KINDS}))


def compute_problem(error: ObjectError, source: str) -> str:
    """The line reported for an object a lenient load leaves out (without `error: `)."""
    if isinstance(error, UnservedKind):
        obj = error.obj
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        name, ns = meta.get("name") or "", meta.get("namespace") or ""
        where = error.where.removeprefix(f"{source}: ")
        return (f'resource mapping not found for name: "{name}" namespace: "{ns}" from "{source}": '
                f'no matches for kind "{obj["kind"]}" in version "{obj["apiVersion"]}" '
                f'({where}; {served_hint(obj["kind"])})')
    return str(error)


def expand_sources(paths: Iterable[str], recursive: bool = False) -> list[str]:
    """The files named by `-f` arguments (`-` stays `-`), directories expanded."""
    out: list[str] = []
    for p in paths:
        if p == "-":
            out.append(p)
            continue
        path = Path(p)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                f for f in path.glob(pattern) if f.is_file() and f.suffix.lower() in MANIFEST_SUFFIXES
            )
            out.extend(str(f) for f in files)
        elif path.exists():
            out.append(p)
        else:
            raise CliError(f'the path "{p}" does not exist')
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    """`line 9, column 1: expected ',' or '}' … (while parsing a flow mapping at line 8)`."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    context = getattr(e, "context", None)
    context_mark = getattr(e, "context_mark", None)
    if not problem or mark is None:
        return " ".join(str(e).split())
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    if context and context_mark is not None and context_mark.line != mark.line:
        text += f" ({context} at line {context_mark.line + 1})"
    return text


def parse_documents(text: str, source: str) -> list[tuple[int, Any]]:
    """`(document number, parsed value)` for every non-empty document of one source."""
    if source.lower().endswith(".json"):
        try:
            return [(1, json.loads(text))] if text.strip() else []
        except json.JSONDecodeError as e:
            raise CliError(
                f"{source}: document 1: invalid JSON: line {e.lineno}, column {e.colno}: {e.msg}"
            ) from None
    docs: list[tuple[int, Any]] = []
    number = 0  # the document being parsed, so an error names it
    loader = yaml.SafeLoader(text)
    try:
        while True:
            number += 1
            if not loader.check_node():
                break
            node = loader.get_node()
            value = loader.construct_document(node) if node is not None else None
            if value is not None:
                docs.append((number, value))
    except yaml.YAMLError as e:
        raise CliError(f"{source}: document {number}: invalid YAML: {_yaml_problem(e)}") from None
    finally:
        loader.dispose()
    return docs


def check_object(obj: Any, where: str) -> Kind:
    """The object's Kind, or a CliError naming the missing/bad field and the document."""
    if not isinstance(obj, dict):
        raise ObjectError(f"{where}: expected an object with apiVersion, kind and metadata, got {type(obj).__name__}")
    api_version = obj.get("apiVersion")
    kind_name = obj.get("kind")
    if not api_version or not isinstance(api_version, str):
        raise ObjectError(f"{where}: missing field apiVersion")
    if not kind_name or not isinstance(kind_name, str):
        raise ObjectError(f"{where}: missing field kind")
    try:
        kind = by_kind(api_version, kind_name)
    except UnknownKind as e:
        raise UnservedKind(where, obj, str(e)) from None
    meta = obj.get("metadata")
    if meta is None or not isinstance(meta, dict):
        raise ObjectError(f"{where}: missing field metadata.name ({kind_name} has no metadata)")
    name = meta.get("name")
    if not name or not isinstance(name, str):
        raise ObjectError(f"{where}: missing field metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise ObjectError(f"{where}: metadata.namespace must be a string")
    return kind


def _is_list(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("kind"), str)
        and obj["kind"].endswith("List")
        and "items" in obj
    )


def manifests_from_text(text: str, source: str, problems: list[Problem] | None = None) -> list[Manifest]:
    """The objects of one source, in order. With `problems`, an object that cannot be sent is
    reported there and skipped; without, it raises (see the module docstring)."""
    out: list[Manifest] = []

    def add(obj: Any, where: str, number: int, item: int | None) -> None:
        try:
            kind = check_object(obj, where)
        except ObjectError as e:
            if problems is None:
                raise
            problems.append(Problem(where, compute_problem(e, source)))
            return
        out.append(Manifest(source, number, item, obj, kind))

    for number, doc in parse_documents(text, source):
        where = f"{source}: document {number}"
        if _is_list(doc):
            items = doc.get("items") or []
            if not isinstance(items, list):
                error = ObjectError(f"{where}: items of a {doc['kind']} must be a list")
                if problems is None:
                    raise error
                problems.append(Problem(where, str(error)))
                continue
            for i, item in enumerate(items, start=1):
                add(item, f"{where}, item {i}", number, i)
        else:
            add(doc, where, number, None)
    return out


def _read(source: str, stdin: IO[str] | None) -> str:
    if source == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(source).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{source}: cannot read: {e}") from None


def load(paths: Iterable[str], recursive: bool = False, stdin: IO[str] | None = None,
         problems: list[Problem] | None = None) -> list[Manifest]:
    """All manifests named by `-f` arguments, fully checked, in order; objects that cannot be
    sent go to `problems` when it is given, and raise otherwise."""
    out: list[Manifest] = []
    stdin_read = False
    for source in expand_sources(paths, recursive):
        if source == "-":
            if stdin_read:
                continue
            stdin_read = True
        label = "<stdin>" if source == "-" else source
        out.extend(manifests_from_text(_read(source, stdin), label, problems))
    return out

