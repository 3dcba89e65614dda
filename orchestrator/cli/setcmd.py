"""`dockyard set image|env|resources`: change the pod template of workloads, kubectl's way.

    dockyard set image deploy/web web=nginx:1.25          # container=image; *=image for all
    dockyard set env deploy/web A=1 B-                     # set A, remove B; --from=configmap/x
    dockyard set resources deploy/web -c web --limits=cpu=200m,memory=64Mi --requests=cpu=100m

They act on Pods (`spec`) and on kinds with a pod template (`spec.template.spec`:
Deployments, ReplicaSets). Each object is read, changed in memory and written back with its
resourceVersion (PUT); a conflict (someone wrote in between) is retried on a fresh read a
few times. When the change leaves the object as it was nothing is written. Lines follow
kubectl: `deployment.apps/web image updated`, `… env updated`, `… resource requirements
updated`.

The in-memory edits (`set_images`, `set_env`, `set_resources`) are pure and unit-tested.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import re
from collections.abc import Callable
from typing import Any

from ..client import Client, ConnectionFailed
from ..errors import ApiError
from ..objects.kinds import resolve
from . import output, targets
from .options import dry_run_option, global_options, output_option

ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
RETRIES = 5

Edit = Callable[[dict[str, Any]], None]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside `obj` (the object itself for a Pod, else its template's)."""
    if obj.get("kind") == "Pod":
        return obj.setdefault("spec", {})
    template = (obj.get("spec") or {}).get("template")
    if not isinstance(template, dict):
        raise output.CliError(f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')!r} has no pod template")
    return template.setdefault("spec", {})


def _containers(spec: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    out = list(spec.get("containers") or [])
    if init:
        out += list(spec.get("initContainers") or [])
    return out


def _selected(spec: dict[str, Any], pattern: str | None) -> list[dict[str, Any]]:
    chosen = [c for c in _containers(spec) if pattern in (None, "*") or fnmatch.fnmatchcase(c.get("name", ""),
                                                                                          pattern or "*")]
    if pattern not in (None, "*") and not chosen:
        raise output.CliError(f'unable to find container named "{pattern}"')
    return chosen


# -- image ---------------------------------------------------------------------------------


def parse_images(pairs: list[str]) -> dict[str, str]:
    images: dict[str, str] = {}
    for pair in pairs:
        name, sep, image = pair.partition("=")
        if not sep or not name or not image:
            raise output.CliError(f'expected CONTAINER=IMAGE (or *=IMAGE), got "{pair}"')
        images[name] = image
    return images


def set_images(obj: dict[str, Any], images: dict[str, str]) -> None:
    spec = pod_spec(obj)
    containers = _containers(spec)
    for name, image in images.items():
        hit = [c for c in containers if name == "*" or c.get("name") == name]
        if not hit:
            raise output.CliError(f'unable to find container named "{name}"')
        for c in hit:
            c["image"] = image


# -- env -----------------------------------------------------------------------------------


def parse_env(pairs: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    sets: list[tuple[str, str]] = []
    removes: list[str] = []
    for pair in pairs:
        if "=" in pair:
            name, _, value = pair.partition("=")
            if not ENV_NAME_RE.match(name):
                raise output.CliError(f'invalid env: "{pair}": a valid environment variable name must consist of '
                                      "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit")
            sets.append((name, value))
        elif pair.endswith("-"):
            removes.append(pair[:-1])
        else:
            raise output.CliError(f'environment variables must be of the form key=value or key-, got "{pair}"')
    return sets, removes


def set_env(obj: dict[str, Any], container: str | None, entries: list[dict[str, Any]], removes: list[str],
            overwrite: bool = True) -> None:
    for c in _selected(pod_spec(obj), container):
        env: list[dict[str, Any]] = list(c.get("env") or [])
        for entry in entries:
            existing = next((i for i, e in enumerate(env) if e.get("name") == entry["name"]), None)
            if existing is None:
                env.append(copy.deepcopy(entry))
            elif overwrite:
                env[existing] = copy.deepcopy(entry)
        env = [e for e in env if e.get("name") not in removes]
        if env:
            c["env"] = env
        else:
            c.pop("env", None)


def env_from(client: Client, source: str, prefix: str, keys: list[str] | None) -> list[dict[str, Any]]:
    """`--from=configmap/NAME|secret/NAME`: one variable per key, referring to the key."""
    kind_name, sep, name = source.partition("/")
    if not sep or not name:
        raise output.CliError(f'--from: expected configmap/NAME or secret/NAME, got "{source}"')
    kind = resolve(kind_name)
    if kind.resource not in ("configmaps", "secrets"):
        raise output.CliError(f"--from: only configmaps and secrets can be used, not {kind_name}")
    obj = client.get(kind, name)
    data = sorted(set(obj.get("data") or {}) | set(obj.get("binaryData") or {}))
    ref = "configMapKeyRef" if kind.resource == "configmaps" else "secretKeyRef"
    return [{"name": (prefix + key).upper().replace("-", "_").replace(".", "_") if prefix else
             key.upper().replace("-", "_").replace(".", "_"),
             "valueFrom": {ref: {"key": key, "name": name}}}
            for key in data if not keys or key in keys]


# -- resources -----------------------------------------------------------------------------


def parse_quantities(text: str | None, flag: str) -> dict[str, str]:
    """`cpu=200m,memory=64Mi` → {"cpu": "200m", "memory": "64Mi"}."""
    out: dict[str, str] = {}
    if not text:
        return out
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name or not value:
            raise output.CliError(f'{flag}: expected RESOURCE=QUANTITY[,…] (e.g. cpu=200m,memory=64Mi), got "{part}"')
        if not re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$", value):
            raise output.CliError(f'{flag}: "{value}" is not a quantity (e.g. 200m, 0.5, 64Mi, 1G)')
        out[name] = value
    return out


def set_resources(obj: dict[str, Any], container: str | None, limits: dict[str, str],
                  requests: dict[str, str]) -> None:
    for c in _selected(pod_spec(obj), container):
        res = c.setdefault("resources", {})
        for field, values in (("limits", limits), ("requests", requests)):
            if values:
                res.setdefault(field, {}).update(values)


# -- the commands --------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    common = [global_options(suppress=True)]
    p = subparsers.add_parser("set", parents=common, help="change the image, env or resources of workloads")
    sub = p.add_subparsers(dest="set_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, parents=common, help=help_text, description=help_text)
        c.add_argument("words", nargs="*", metavar="TYPE[/NAME] [NAME...] CHANGES...")
        c.add_argument("-l", "--selector", metavar="SEL")
        c.add_argument("--all", action="store_true", help="every object of the type in the namespace")
        c.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
        output_option(c)
        dry_run_option(c)
        c.set_defaults(handler=f"orchestrator.cli.setcmd:cmd_set_{name}", intermixed="words")
        return c

    add("image", "set container images: TYPE/NAME CONTAINER=IMAGE... (*=IMAGE for all)")
    c = add("env", "set or remove environment variables: TYPE/NAME KEY=VALUE... KEY-...")
    c.add_argument("-c", "--containers", metavar="NAME", help="only these containers (a glob; default all)")
    c.add_argument("--from", dest="from_", metavar="configmap/NAME|secret/NAME",
                   help="a variable for every key of this configmap or secret")
    c.add_argument("--prefix", default="", help="prefix of the variables --from adds")
    c.add_argument("--keys", default="", help="with --from: only these keys (comma separated)")
    c.add_argument("--list", action="store_true", help="print the environment of the containers")
    c.add_argument("--overwrite", action=argparse.BooleanOptionalAction, default=True,
                   help="replace variables that exist (default yes)")
    c = add("resources", "set requests and limits: TYPE/NAME [-c C] --limits=cpu=200m,memory=64Mi --requests=…")
    c.add_argument("-c", "--containers", metavar="NAME", help="only these containers (a glob; default all)")
    c.add_argument("--limits", metavar="RES=QTY,...")
    c.add_argument("--requests", metavar="RES=QTY,...")


def update_each(args: argparse.Namespace, client: Client, object_words: list[str], edit: Edit, action: str) -> int:
    """Read, edit and write back every named object; a line per object; 1 when any failed."""
    failed = False
    refs = targets.resolve_refs(client, object_words, args.selector, args.all, args.filename)
    if not refs:
        print("No resources found", flush=True)
        return 0
    for ref in refs:
        try:
            for attempt in range(RETRIES):
                obj = targets.fetch(client, ref)
                changed = copy.deepcopy(obj)
                edit(changed)
                if changed == obj or args.dry_run == "client":
                    result = changed
                    break
                try:
                    result = client.request("PUT", client.path(ref.kind, ref.namespace, ref.name), changed,
                                            params=output.dry_run_params(args.dry_run))
                    break
                except ApiError as e:
                    if e.code != 409 or e.reason != "Conflict" or attempt == RETRIES - 1:
                        raise
            output.show(result, ref.kind, action, args.output, args.dry_run)
        except ConnectionFailed:
            raise
        except (ApiError, output.CliError) as e:
            output.report(e)
            failed = True
    return 1 if failed else 0


def _objects_and_changes(args: argparse.Namespace, what: str) -> tuple[list[str], list[str]]:
    objects, pairs = targets.split_pairs(args.words, what)
    return objects, pairs


def cmd_set_image(args: argparse.Namespace) -> int:
    objects, pairs = _objects_and_changes(args, "image")
    if not pairs:
        raise output.CliError("at least one image update is required: CONTAINER=IMAGE")
    images = parse_images(pairs)
    with output.connect(args) as client:
        return update_each(args, client, objects, lambda o: set_images(o, images), "image updated")


def cmd_set_env(args: argparse.Namespace) -> int:
    objects, pairs = _objects_and_changes(args, "env")
    sets, removes = parse_env(pairs)
    with output.connect(args) as client:
        if args.list:
            return _list_env(args, client, objects)
        entries: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sets]
        if args.from_:
            keys = [k for k in args.keys.split(",") if k]
            entries += env_from(client, args.from_, args.prefix, keys)
        if not entries and not removes:
            raise output.CliError("at least one environment variable must be provided (KEY=VALUE, KEY- or --from)")
        return update_each(args, client, objects,
                           lambda o: set_env(o, args.containers, entries, removes, args.overwrite), "env updated")


def _list_env(args: argparse.Namespace, client: Client, objects: list[str]) -> int:
    for ref in targets.resolve_refs(client, objects, args.selector, args.all, args.filename):
        obj = targets.fetch(client, ref)
        for c in _selected(pod_spec(obj), args.containers):
            print(f"# {ref.kind.resource}/{ref.name}, container {c.get('name')}")
            for e in c.get("env") or []:
                if "value" in e:
                    print(f"{e['name']}={e['value']}")
                else:
                    source = e.get("valueFrom") or {}
                    ref_kind = next(iter(source), "valueFrom")
                    detail = source.get(ref_kind) or {}
                    print(f"# {e.get('name')} from {ref_kind} {detail.get('name', '')} {detail.get('key', '')}".rstrip())
    return 0


def cmd_set_resources(args: argparse.Namespace) -> int:
    objects, pairs = _objects_and_changes(args, "resources")
    if pairs:
        raise output.CliError(f'unexpected argument "{pairs[0]}": give --limits and --requests')
    limits = parse_quantities(args.limits, "--limits")
    requests = parse_quantities(args.requests, "--requests")
    if not limits and not requests:
        raise output.CliError("you must specify an update to requests or limits (--limits or --requests)")
    with output.connect(args) as client:
        return update_each(args, client, objects,
                           lambda o: set_resources(o, args.containers, limits, requests),
                           "resource requirements updated")
