"""Loading manifests for `apply -f` and `delete -f`: files, directories and stdin.

Loading is all-or-nothing: every source is read, parsed and checked before the caller
touches the cluster, so a typo in the third document of a file never leaves the first two
applied. Each problem is reported with where it is (file, 1-based document number within
the file, and for YAML syntax errors the line) so the user can go straight to it.

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

from ..objects.kinds import Kind, UnknownKind, by_kind
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
        raise CliError(f"{where}: expected an object with apiVersion, kind and metadata, got {type(obj).__name__}")
    api_version = obj.get("apiVersion")
    kind_name = obj.get("kind")
    if not api_version or not isinstance(api_version, str):
        raise CliError(f"{where}: missing field apiVersion")
    if not kind_name or not isinstance(kind_name, str):
        raise CliError(f"{where}: missing field kind")
    try:
        kind = by_kind(api_version, kind_name)
    except UnknownKind as e:
        raise CliError(f"{where}: {e}") from None
    meta = obj.get("metadata")
    if meta is None or not isinstance(meta, dict):
        raise CliError(f"{where}: missing field metadata.name ({kind_name} has no metadata)")
    name = meta.get("name")
    if not name or not isinstance(name, str):
        raise CliError(f"{where}: missing field metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise CliError(f"{where}: metadata.namespace must be a string")
    return kind


def _is_list(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("kind"), str)
        and obj["kind"].endswith("List")
        and "items" in obj
    )


def manifests_from_text(text: str, source: str) -> list[Manifest]:
    out: list[Manifest] = []
    for number, doc in parse_documents(text, source):
        where = f"{source}: document {number}"
        if _is_list(doc):
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise CliError(f"{where}: items of a {doc['kind']} must be a list")
            for i, item in enumerate(items, start=1):
                kind = check_object(item, f"{where}, item {i}")
                out.append(Manifest(source, number, i, item, kind))
        else:
            kind = check_object(doc, where)
            out.append(Manifest(source, number, None, doc, kind))
    return out


def _read(source: str, stdin: IO[str] | None) -> str:
    if source == "-":
        return (stdin or sys.stdin).read()
    try:
        return Path(source).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"{source}: cannot read: {e}") from None


def load(paths: Iterable[str], recursive: bool = False, stdin: IO[str] | None = None) -> list[Manifest]:
    """All manifests named by `-f` arguments, fully checked, in order."""
    out: list[Manifest] = []
    stdin_read = False
    for source in expand_sources(paths, recursive):
        if source == "-":
            if stdin_read:
                continue
            stdin_read = True
        label = "<stdin>" if source == "-" else source
        out.extend(manifests_from_text(_read(source, stdin), label))
    return out

