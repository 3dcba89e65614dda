"""Which objects a command acts on: `TYPE NAME…`, `TYPE/NAME…`, `TYPE -l SEL`, `TYPE --all`, `-f FILE`.

kubectl's verbs that change existing objects (`label`, `annotate`, `patch`, `set`, `wait`,
`edit`, `expose`) all name their objects the same way; `resolve_refs` turns those words
into `Ref`s (kind, name, namespace) and `fetch` reads each live object, so every verb
reports a missing object with the server's own NotFound line.

`split_pairs` is kubectl's rule for verbs that mix objects and `key=value`/`key-` changes
(`label`, `annotate`, `set env`): objects first, then changes; an object after a change
is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..client import Client
from ..objects.kinds import Kind
from . import manifests
from .apply import parse_targets
from .output import CliError


@dataclass(frozen=True)
class Ref:
    kind: Kind
    name: str
    namespace: str | None  # None for cluster-scoped kinds


def split_pairs(words: list[str], what: str) -> tuple[list[str], list[str]]:
    """`["pods", "web", "a=1", "b-"]` → (`["pods", "web"]`, `["a=1", "b-"]`)."""
    objects: list[str] = []
    pairs: list[str] = []
    for w in words:
        is_pair = ("=" in w and not w.startswith("=")) or (w.endswith("-") and w != "-")
        if is_pair:
            pairs.append(w)
        elif pairs:
            raise CliError(f"all resources must be specified before {what} changes: {w}")
        else:
            objects.append(w)
    return objects, pairs


def resolve_refs(client: Client, words: list[str], selector: str | None = None, all_: bool = False,
                 filenames: list[str] | None = None, recursive: bool = False,
                 all_namespaces: bool = False) -> list[Ref]:
    """The objects named on the command line (listing the kind for `-l`/`--all`)."""
    if filenames:
        if words:
            raise CliError("cannot use resource arguments together with -f")
        return [Ref(m.kind, m.name, (m.namespace or client.namespace) if m.kind.namespaced else None)
                for m in manifests.load(filenames, recursive=recursive)]
    pairs = parse_targets(words)
    named = [p for p in pairs if p[1] is not None]
    if named and (selector or all_):
        raise CliError("names cannot be given together with --selector (-l) or --all")
    if not named and not (selector or all_):
        raise CliError("resource(s) were provided, but no name was specified (give NAME, -l SELECTOR or --all)")
    refs: list[Ref] = []
    for kind, name in pairs:
        if name is not None:
            refs.append(Ref(kind, name, client.namespace if kind.namespaced else None))
            continue
        listed = client.list(kind, all_namespaces=all_namespaces, label_selector=selector)
        for item in listed.get("items") or []:
            meta = item.get("metadata") or {}
            refs.append(Ref(kind, str(meta.get("name", "")), meta.get("namespace") if kind.namespaced else None))
    return refs


def fetch(client: Client, ref: Ref) -> dict[str, Any]:
    obj = client.get(ref.kind, ref.name, ref.namespace)
    obj.setdefault("apiVersion", ref.kind.api_version)
    obj.setdefault("kind", ref.kind.kind)
    return obj
