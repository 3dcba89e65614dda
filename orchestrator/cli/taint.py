"""`dockyard taint nodes NODE key=value:Effect | key:Effect | key:Effect- | key-`: node taints, as kubectl.

Effects are `NoSchedule`, `PreferNoSchedule` and `NoExecute`. Adding a taint whose key and
effect exist needs `--overwrite`; `key-` removes every taint with that key, `key:Effect-`
only that one. Nodes are named as elsewhere (`nodes n1 n2`, `node/n1`, `nodes -l SEL`,
`nodes --all`). The new taint list is written with a JSON merge patch of `spec.taints`
carrying the resourceVersion it was computed from, so a concurrent change is a conflict,
not lost. Lines: `node/n1 tainted`, `node/n1 untainted`, `node/n1 modified`.
`parse_taints` and `apply_taints` are pure and unit-tested.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..client import ConnectionFailed
from ..errors import ApiError
from . import output, targets
from .options import global_options

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

Taint = dict[str, str]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("taint", parents=[global_options(suppress=True)], help="add or remove node taints",
                              description="taint nodes NODE KEY[=VALUE]:EFFECT… KEY[:EFFECT]-…")
    p.add_argument("words", nargs="+", metavar="nodes NODE... TAINT...")
    p.add_argument("--overwrite", action="store_true", help="replace a taint with the same key and effect")
    p.add_argument("-l", "--selector", metavar="SEL")
    p.add_argument("--all", action="store_true", help="every node")
    p.set_defaults(handler=cmd_taint, intermixed="words")


def parse_taints(specs: list[str]) -> tuple[list[Taint], list[tuple[str, str | None]]]:
    """(taints to add, (key, effect or None) to remove)."""
    add: list[Taint] = []
    remove: list[tuple[str, str | None]] = []
    for spec in specs:
        if spec.endswith("-"):
            key, _, effect = spec[:-1].partition(":")
            if effect and effect not in EFFECTS:
                raise output.CliError(f'invalid taint effect: "{effect}" in "{spec}", '
                                      f"unsupported taint effect (use {', '.join(EFFECTS)})")
            remove.append((key, effect or None))
            continue
        head, sep, effect = spec.rpartition(":")
        if not sep or not head:
            raise output.CliError(f'invalid taint spec: "{spec}": expected KEY[=VALUE]:EFFECT')
        if effect not in EFFECTS:
            raise output.CliError(f'invalid taint effect: "{effect}", unsupported taint effect '
                                  f"(use {', '.join(EFFECTS)})")
        key, has_value, value = head.partition("=")
        taint: Taint = {"effect": effect, "key": key}
        if has_value and value:
            taint["value"] = value
        add.append(taint)
    return add, remove


def apply_taints(current: list[Taint], add: list[Taint], remove: list[tuple[str, str | None]],
                 overwrite: bool) -> tuple[list[Taint], str]:
    """The new taint list and kubectl's word for what happened."""
    result = [dict(t) for t in current]
    removed = False
    for key, effect in remove:
        keep = [t for t in result if not (t.get("key") == key and (effect is None or t.get("effect") == effect))]
        if len(keep) == len(result):
            raise output.CliError(f'taint "{key}{":" + effect if effect else ""}" not found')
        removed = True
        result = keep
    modified = False
    for taint in add:
        same = [i for i, t in enumerate(result) if t.get("key") == taint["key"] and t.get("effect") == taint["effect"]]
        if same:
            if not overwrite:
                raise output.CliError(f"node already has {taint['key']} taint(s) with same effect(s) "
                                      "and --overwrite is false")
            result[same[0]] = taint
            modified = True
        else:
            result.append(taint)
    word = "modified" if modified or (removed and add) else "untainted" if removed else "tainted"
    return result, word


def cmd_taint(args: argparse.Namespace) -> int:
    objects: list[str] = []
    specs: list[str] = []
    for w in args.words:
        is_taint = ":" in w or w.endswith("-") or "=" in w
        (specs if is_taint or specs else objects).append(w)
    if not specs:
        raise output.CliError("at least one taint update is required: KEY[=VALUE]:EFFECT or KEY[:EFFECT]-")
    add, remove = parse_taints(specs)
    failed = False
    with output.connect(args) as client:
        refs = targets.resolve_refs(client, objects, args.selector, args.all)
        for ref in refs:
            if ref.kind.resource != "nodes":
                raise output.CliError(f"only nodes can be tainted, not {ref.kind.resource}")
            try:
                node = targets.fetch(client, ref)
                current = list((node.get("spec") or {}).get("taints") or [])
                new, word = apply_taints(current, add, remove, args.overwrite)
                meta = node.get("metadata") or {}
                client.request("PATCH", client.path(ref.kind, None, ref.name),
                               {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                                "spec": {"taints": new or None}},
                               content_type="application/merge-patch+json")
                print(f"node/{ref.name} {word}", flush=True)
            except ConnectionFailed:
                raise
            except (ApiError, output.CliError) as e:
                output.report(e)
                failed = True
    return 1 if failed else 0
