"""The commands that write objects: `apply`, `delete` and `scale`.

`apply` is declarative, like `kubectl apply` (client-side): the manifest as the user gave it
is stored on the object in the `kubectl.kubernetes.io/last-applied-configuration`
annotation, and the next apply sends a three-way JSON merge patch computed from

- the last-applied configuration (what the user said before),
- the new manifest (what the user says now),
- the live object (what the cluster has, including fields others set: status, defaults,
  replicas changed by `scale`, …).

Fields the user dropped since the last apply are set to null; fields whose new value
differs from the live one are set; everything else is left alone, so fields owned by
controllers or other clients survive. Maps merge recursively; lists are replaced whole
(JSON merge patch has no list merging), and since the server adds defaults inside list
items, a list counts as changed only when it differs from the last-applied one or the live
list no longer contains what it says. `compute_apply_patch` is pure and table-tested.

`--dry-run=server` sends the same writes with `dryRun=All` (the API validates and defaults
them and stores nothing), `--dry-run=client` sends none; lines then end in `(server dry run)`
or `(dry run)` as kubectl's do, and `-o json|yaml|name` prints the resulting objects instead.

`--server-side` sends each manifest as one server-side apply patch instead
(`application/apply-patch+yaml`, `fieldManager=dockyard` or `--field-manager`): the API
merges it, records which fields the manager owns in `managedFields`, and answers 409 naming
fields another manager set to other values, unless `--force-conflicts`. Lines say
`serverside-applied`, as kubectl's. Client-side applies are recorded under
`dockyard-client-side-apply` (kubectl's are `kubectl-client-side-apply`).

`delete --dry-run=server` asks the API to check the deletion (`dryRun=All`), `client` only
checks that the objects exist; neither waits.

The annotation is written byte for byte as kubectl writes it (the manifest with its
namespace filled in and `metadata.annotations` present, keys sorted, Go's JSON escaping,
a final newline), so `kubectl apply` after `dockyard apply` of the same file, and the
other way round, both say `unchanged`.

All manifests are loaded and checked before any request is made (see `manifests`). As
with kubectl, `apply -f` and `delete -f` send every object they can: an object of a kind
the server does not serve, or one without a name, is reported on its own `error:` line
(naming the kind, the file and the document) after the others have been sent; a server
error on one object (e.g. 422 Invalid) is reported and the others are still processed.
Either way the exit code is then 1. A file that does not parse stops everything before
any request.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects.kinds import Kind, UnknownKind, resolve
from . import manifests, output
from .output import CliError, display_kind, display_name

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SCALABLE = ("deployments", "replicasets")


# -- three-way merge patch ---------------------------------------------------------------


def covered(want: Any, have: Any) -> bool:
    """Whether `have` says everything `want` says (it may add fields, e.g. server defaults)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and covered(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(covered, want, have))
    return bool(want == have)


def _merge_diff(last: dict[str, Any], new: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in last:
        if key not in new and key in live:
            patch[key] = None
    for key, value in new.items():
        live_value = live.get(key)
        if isinstance(value, dict) and isinstance(live_value, dict):
            last_value = last.get(key)
            sub = _merge_diff(last_value if isinstance(last_value, dict) else {}, value, live_value)
            if sub:
                patch[key] = sub
        elif isinstance(value, list) and key in live:
            # Lists are replaced whole. The server fills defaults into list items
            # (ports[].protocol, …), so a list is sent only when the user changed it since
            # the last apply, or when the live list no longer holds what the user gave.
            if value != last.get(key) or not covered(value, live_value):
                patch[key] = copy.deepcopy(value)
        elif key not in live or value != live_value:
            if value is None and key not in live:
                continue  # deleting what is not there
            patch[key] = copy.deepcopy(value)
    return patch


def compute_apply_patch(
    last_applied: dict[str, Any] | None, new: dict[str, Any], live: dict[str, Any]
) -> dict[str, Any]:
    """The JSON merge patch that takes `live` to `new`, deleting what `last_applied` had.

    Empty when nothing needs to change.
    """
    return _merge_diff(last_applied or {}, new, live)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_numbers(value: Any) -> Any:
    """Integral floats as Go's encoder writes them (`1`, not `1.0`)."""
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def go_json(value: Any) -> str:
    """`value` as Go's `json.Encoder` writes it: compact, keys sorted, UTF-8, HTML-escaped, `\\n`."""
    text = json.dumps(_go_numbers(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return "".join(_GO_ESCAPES.get(c, c) for c in text) + "\n"


def _namespaced(doc: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    """`doc` with `metadata.namespace` filled in, as kubectl sends (and records) it."""
    meta = doc.get("metadata")
    if not namespace or not isinstance(meta, dict) or meta.get("namespace"):
        return doc
    return {**doc, "metadata": {**meta, "namespace": namespace}}


def last_applied_json(doc: dict[str, Any]) -> str:
    """The annotation value, as kubectl writes it: the manifest without the annotation
    itself but with `metadata.annotations` present (empty if nothing else is there)."""
    clean = copy.deepcopy(doc)
    meta = clean.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations.pop(LAST_APPLIED, None)
    return go_json(clean)


def with_last_applied(doc: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """The manifest (in `namespace` unless it names one) plus its own last-applied
    annotation: what create sends."""
    out = copy.deepcopy(_namespaced(doc, namespace))
    meta = out.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[LAST_APPLIED] = last_applied_json(out)
    return out


def plan_apply(doc: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The patch `apply` sends for `doc` against the live object (empty: unchanged)."""
    live_meta = live.get("metadata") or {}
    annotations = live_meta.get("annotations") or {}
    last: dict[str, Any] | None = None
    raw = annotations.get(LAST_APPLIED)
    if raw:
        try:
            parsed = json.loads(raw)
            last = parsed if isinstance(parsed, dict) else None
        except ValueError:
            last = None
    return compute_apply_patch(last, with_last_applied(doc, live_meta.get("namespace")), live)


# -- apply -------------------------------------------------------------------------------


def _namespace(client: Client, m: manifests.Manifest) -> str | None:
    return (m.namespace or client.namespace) if m.kind.namespaced else None


APPLY_PATCH = "application/apply-patch+yaml"
SERVER_SIDE_MANAGER = "dockyard"
CLIENT_SIDE_MANAGER = "dockyard-client-side-apply"
CONFLICT_HINT = ("hint: these fields have other managers; re-run with --force-conflicts to take them over, "
                 "or leave them out of the manifest to let the other managers keep them")


@dataclass(frozen=True)
class ApplyMode:
    """How `apply` writes: client-side (a three-way merge patch) or server-side (the API
    merges and records field ownership under `field_manager`)."""

    server_side: bool = False
    force_conflicts: bool = False
    field_manager: str | None = None

    @property
    def manager(self) -> str:
        return self.field_manager or (SERVER_SIDE_MANAGER if self.server_side else CLIENT_SIDE_MANAGER)


def apply_one(client: Client, m: manifests.Manifest, dry_run: str = "none",
              fmt: str | None = None, mode: ApplyMode = ApplyMode()) -> str | None:
    """Create or patch one object; returns the line to print (None when `fmt` printed the object).

    `dry_run` is `none`, `client` (nothing is sent but the read of the live object) or
    `server` (the write is sent with `dryRun=All`: validated and defaulted, never stored).
    With `mode.server_side`, one apply patch is sent and the API merges it (`serverside-applied`).
    """
    ns = _namespace(client, m)
    label = display_name(m.kind, m.name)
    params = {**(output.dry_run_params(dry_run) or {}), "fieldManager": mode.manager}
    if mode.server_side:
        if mode.force_conflicts:
            params["force"] = "true"
        body = {**m.obj, "metadata": {**m.obj.get("metadata", {}), "name": m.name}}
        result = client.request("PATCH", client.path(m.kind, ns, m.name), body, params=params,
                                content_type=APPLY_PATCH)
        if fmt:
            output.show(result, m.kind, "serverside-applied", fmt, dry_run)
            return None
        return f"{label} serverside-applied{output.DRY_RUN_SUFFIX.get(dry_run, '')}"

    def done(obj: dict[str, Any], action: str) -> str | None:
        if fmt:
            output.show(obj, m.kind, action, fmt, dry_run)
            return None
        return f"{label} {action}{output.DRY_RUN_SUFFIX.get(dry_run, '')}"

    try:
        live = client.get(m.kind, m.name, ns)
    except ApiError as e:
        if e.code != 404 or isinstance(e, ConnectionFailed):
            raise
        result = with_last_applied(m.obj, ns)
        if dry_run != "client":
            result = client.request("POST", client.path(m.kind, ns), result, params=params)
        return done(result, "created")
    patch = plan_apply(m.obj, live)
    if not patch:
        return done(live, "unchanged")
    if dry_run == "client":
        from ..objects.patch import json_merge_patch

        result = json_merge_patch(live, patch)
    else:
        result = client.request("PATCH", client.path(m.kind, ns, m.name), patch, params=params,
                                content_type="application/merge-patch+json")
    return done(result, "configured")


def report_problems(problems: list[manifests.Problem]) -> bool:
    """One `error:` line per object a lenient load left out; whether there was any."""
    for problem in problems:
        output.report(CliError(problem.message))
    return bool(problems)


def cmd_apply(args: argparse.Namespace) -> int:
    problems: list[manifests.Problem] = []
    docs = manifests.load(args.filename, recursive=args.recursive, problems=problems)
    if not docs and not problems:
        raise CliError("no objects passed to apply")
    failed = False
    dry_run = getattr(args, "dry_run", "none")
    fmt = getattr(args, "output", None)
    mode = ApplyMode(bool(getattr(args, "server_side", False)), bool(getattr(args, "force_conflicts", False)),
                     getattr(args, "field_manager", None))
    if mode.force_conflicts and not mode.server_side:
        raise CliError("--force-conflicts only works with --server-side")
    if mode.server_side and dry_run == "client":
        raise CliError("--dry-run=client doesn't work with --server-side (did you mean --dry-run=server instead?)")
    if docs:
        with output.connect(args) as client:
            for m in docs:
                try:
                    line = apply_one(client, m, dry_run, fmt, mode)
                    if line is not None:
                        print(line, flush=True)
                except ConnectionFailed:
                    raise
                except ApiError as e:
                    output.report(e)
                    if mode.server_side and e.code == 409 and e.reason == "Conflict":
                        print(CONFLICT_HINT, file=sys.stderr)
                    failed = True
    if report_problems(problems):
        failed = True
    return 1 if failed else 0


# -- targets: `KIND NAME…`, `KIND/NAME…`, `KIND,KIND` ------------------------------------


def resolve_kind(name: str) -> Kind:
    try:
        return resolve(name)
    except UnknownKind as e:
        raise CliError(str(e)) from None


def parse_targets(words: list[str]) -> list[tuple[Kind, str | None]]:
    """`deploy web api` → [(deploy, web), (deploy, api)]; `deploy/web po/x`; `deploy,rs` → names None."""
    if not words:
        raise CliError("you must specify the type of resource (e.g. pods, deployments)")
    if "/" in words[0]:
        out: list[tuple[Kind, str | None]] = []
        for w in words:
            kind_name, sep, name = w.partition("/")
            if not sep or not name or not kind_name:
                raise CliError(f'there is no need to specify a resource type as a separate argument '
                               f'when passing arguments in resource/name form (got "{w}")')
            out.append((resolve_kind(kind_name), name))
        return out
    kinds = [resolve_kind(k) for k in words[0].split(",") if k]
    names = words[1:]
    for n in names:
        if "/" in n:
            raise CliError(f'there is no need to specify a resource type as a separate argument '
                           f'when passing arguments in resource/name form (got "{n}")')
    if not names:
        return [(k, None) for k in kinds]
    if len(kinds) > 1:
        raise CliError("names can only be given with a single resource type")
    return [(kinds[0], n) for n in names]


# -- delete ------------------------------------------------------------------------------


def _wait_gone(client: Client, kind: Kind, name: str, ns: str | None, deadline: float | None) -> bool:
    while True:
        try:
            client.get(kind, name, ns)
        except ApiError as e:
            if e.code == 404 and not isinstance(e, ConnectionFailed):
                return True
            raise
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def cmd_delete(args: argparse.Namespace) -> int:
    targets: list[tuple[Kind, str, str | None]] = []  # kind, name, explicit namespace
    problems: list[manifests.Problem] = []
    if args.filename:
        if args.targets:
            raise CliError("cannot use resource arguments together with -f")
        for m in manifests.load(args.filename, recursive=args.recursive, problems=problems):
            targets.append((m.kind, m.name, m.namespace))
        client = output.connect(args)
    else:
        pairs = parse_targets(args.targets)
        selecting = bool(args.selector) or args.all
        named = [p for p in pairs if p[1] is not None]
        if named and selecting:
            raise CliError("names cannot be given together with --selector or --all")
        if not named and not selecting:
            raise CliError("resource(s) were provided, but no name was specified "
                           "(give NAME, -l SELECTOR or --all)")
        client = output.connect(args)
        for kind, name in pairs:
            if name is not None:
                targets.append((kind, name, None))
                continue
            listed = client.list(kind, label_selector=args.selector)
            for item in listed.get("items") or []:
                meta = item.get("metadata") or {}
                targets.append((kind, meta.get("name", ""), meta.get("namespace")))
        if not targets:
            print("No resources found", file=sys.stderr)
            return 0

    failed = False
    deleted: list[tuple[Kind, str, str | None]] = []
    with client:
        for kind, name, explicit_ns in targets:
            ns = (explicit_ns or client.namespace) if kind.namespaced else None
            dry_run = getattr(args, "dry_run", "none")
            try:
                if dry_run == "client":
                    client.get(kind, name, ns)  # only say "deleted" of what exists
                elif dry_run == "server":
                    params: dict[str, Any] = {"dryRun": "All"}
                    if args.grace_period is not None:
                        params["gracePeriodSeconds"] = args.grace_period
                    client.request("DELETE", client.path(kind, ns, name), params=params)
                else:
                    client.delete(kind, name, ns, grace_period=args.grace_period)
            except ConnectionFailed:
                raise
            except ApiError as e:
                if e.code == 404 and args.ignore_not_found:
                    continue
                output.report(e)
                failed = True
                continue
            print(f'{display_kind(kind)} "{name}" deleted{output.DRY_RUN_SUFFIX.get(dry_run, "")}', flush=True)
            if dry_run == "none":
                deleted.append((kind, name, ns))
        if args.wait:
            deadline = time.monotonic() + args.timeout if args.timeout else None
            for kind, name, ns in deleted:
                if not _wait_gone(client, kind, name, ns, deadline):
                    output.report(CliError(f'timed out waiting for {display_kind(kind)} "{name}" to be deleted'))
                    failed = True
                    break
    if report_problems(problems):
        failed = True
    return 1 if failed else 0


# -- scale -------------------------------------------------------------------------------


def cmd_scale(args: argparse.Namespace) -> int:
    pairs = parse_targets(args.targets)
    if any(name is None for _, name in pairs):
        raise CliError("scale needs a name: KIND NAME or KIND/NAME")
    for kind, _ in pairs:
        if kind.resource not in SCALABLE:
            raise CliError(f"cannot scale {display_kind(kind)}: only deployments and replicasets scale")
    failed = False
    with output.connect(args) as client:
        for kind, name in pairs:
            assert name is not None
            try:
                client.patch(kind, name, {"spec": {"replicas": args.replicas}}, patch_type="merge", sub="scale")
            except ConnectionFailed:
                raise
            except ApiError as e:
                output.report(e)
                failed = True
                continue
            print(f"{display_name(kind, name)} scaled", flush=True)
    return 1 if failed else 0
