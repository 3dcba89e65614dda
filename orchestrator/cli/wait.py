"""`dockyard wait (TYPE NAME | TYPE/NAME | TYPE -l SEL | -f FILE) --for=… [--timeout=30s]`.

The conditions of `kubectl wait`:

* `--for=condition=Available` (value `true` unless `=False` etc. is given): a
  `status.conditions[]` entry of that type with that status (both compared case-
  insensitively, as kubectl does), not older than the object's generation when the
  condition says which generation it observed;
* `--for=jsonpath='{.status.phase}'=Running`: the JSONPath reaches a value whose text is the
  given one; without `=VALUE` it must reach something non-empty;
* `--for=delete`: the object is gone (an object already gone counts as deleted);
* `--for=create`: the object exists.

Objects are read every half second until all have met the condition or the shared deadline
passes. Each met object prints `kind/name condition met`; a timeout prints kubectl's
`timed out waiting for the condition on TYPE/NAME` and exits 1, so CI can gate on it.
`--timeout=0` checks once; a negative timeout waits a week, as kubectl's does.
`parse_condition` and `met` are pure and unit-tested.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from ..client import Client, ConnectionFailed
from ..errors import ApiError, not_found
from . import jsonpath, output, targets
from .options import global_options, go_duration

POLL = 0.5
WEEK = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Condition:
    kind: str  # "condition", "jsonpath", "delete", "create"
    name: str = ""  # condition type, or the JSONPath expression
    value: str | None = None  # expected status / text; None: any non-empty value (jsonpath)


def parse_condition(text: str) -> Condition:
    """`--for` as kubectl takes it."""
    lowered = text.lower()
    if lowered in ("delete", "create"):
        return Condition(lowered)
    if lowered.startswith("condition="):
        rest = text[len("condition="):]
        name, sep, value = rest.partition("=")
        if not name:
            raise output.CliError(f'--for: a condition name is needed: condition=NAME[=VALUE], got "{text}"')
        return Condition("condition", name, value if sep else "true")
    if lowered.startswith("jsonpath="):
        rest = text[len("jsonpath="):].strip()
        if rest[:1] in "'\"" and rest[1:2] == "{":  # `jsonpath='{.a}'=v` where no shell took the quotes
            close = rest.find(rest[0], 1)
            if close > 0:
                rest = rest[1:close] + rest[close + 1:]
        if rest.startswith("{"):
            depth = 0
            for i, c in enumerate(rest):
                depth += c == "{"
                depth -= c == "}"
                if depth == 0:
                    expr, tail = rest[: i + 1], rest[i + 1:]
                    break
            else:
                raise output.CliError(f'--for: unclosed "{{" in the JSONPath of "{text}"')
        else:
            expr, eq, value = rest.partition("=")
            tail = eq + value
        if tail and not tail.startswith("="):
            raise output.CliError(f'--for: expected jsonpath={{.path}}=VALUE, got "{text}"')
        if not jsonpath.strip_braces(expr):
            raise output.CliError(f'--for: jsonpath expression cannot be empty in "{text}"')
        try:
            jsonpath.find({}, expr)
        except jsonpath.JsonPathError as e:
            raise output.CliError(f"--for: {e}") from None
        return Condition("jsonpath", expr, tail[1:] if tail else None)
    raise output.CliError(f'unrecognized condition: "{text}" (use condition=NAME[=VALUE], '
                          "jsonpath={.path}=VALUE, delete or create)")


def met(obj: dict[str, Any] | None, cond: Condition) -> bool:
    """Whether `obj` (None: it does not exist) satisfies `cond`."""
    if cond.kind == "delete":
        return obj is None
    if obj is None:
        return False
    if cond.kind == "create":
        return True
    if cond.kind == "condition":
        generation = (obj.get("metadata") or {}).get("generation")
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).lower() != cond.name.lower():
                continue
            observed = c.get("observedGeneration")
            if observed is not None and generation is not None and observed < generation:
                return False
            return str(c.get("status", "")).lower() == str(cond.value).lower()
        return False
    found = jsonpath.find(obj, cond.name)
    if cond.value is None:
        return any(v not in (None, "", [], {}) for v in found)
    if len(found) > 1:
        raise output.CliError(f"given jsonpath expression matches more than one value: {cond.name}")
    return len(found) == 1 and jsonpath.text(found[0]) == cond.value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("wait", parents=[global_options(suppress=True)],
                              help="wait for a condition on objects (exit 1 on timeout)",
                              description="wait until objects meet --for=condition=NAME[=VALUE] | "
                                          "--for=jsonpath={.path}=VALUE | --for=delete | --for=create")
    p.add_argument("words", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument("--for", dest="for_", required=True, metavar="CONDITION")
    p.add_argument("--timeout", type=go_duration, default=30.0, metavar="DURATION",
                   help="give up after this long (default 30s; 0 checks once; negative: a week)")
    p.add_argument("-l", "--selector", metavar="SEL")
    p.add_argument("--all", action="store_true", help="every object of the type in the namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    p.add_argument("-o", "--output", choices=["name"], default=None)
    p.set_defaults(handler=cmd_wait, intermixed="words")


def _read(client: Client, ref: targets.Ref) -> dict[str, Any] | None:
    try:
        return client.get(ref.kind, ref.name, ref.namespace)
    except ApiError as e:
        if e.code == 404 and not isinstance(e, ConnectionFailed):
            return None
        raise


def cmd_wait(args: argparse.Namespace) -> int:
    cond = parse_condition(args.for_)
    timeout = WEEK if args.timeout < 0 else args.timeout
    deadline = time.monotonic() + timeout
    with output.connect(args) as client:
        refs = targets.resolve_refs(client, args.words, args.selector, args.all, args.filename,
                                    all_namespaces=args.all_namespaces)
        if not refs:
            if cond.kind == "delete":
                return 0
            raise output.CliError("no matching resources found")
        for ref in refs:
            label = output.display_name(ref.kind, ref.name)
            first = True
            while True:
                obj = _read(client, ref)
                if obj is None and first and cond.kind not in ("delete", "create"):
                    raise not_found(ref.kind.resource, ref.name, ref.kind.group)
                first = False
                if met(obj, cond):
                    print(label if args.output == "name" else f"{label} condition met", flush=True)
                    break
                if time.monotonic() >= deadline:
                    raise output.CliError(f"timed out waiting for the condition on {ref.kind.resource}/{ref.name}")
                time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    return 0
