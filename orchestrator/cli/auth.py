"""`dockyard auth can-i VERB (TYPE | TYPE/NAME | /URL) [-A] [--subresource S] [--as USER]`.

Asks the API, as `kubectl auth can-i` does, with a `SelfSubjectAccessReview`
(`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`): `spec.resourceAttributes`
(namespace, verb, group, resource, subresource, name) for a resource, or
`spec.nonResourceAttributes` (path, verb) for a URL starting with `/`. `--as`/`--as-group`
send `Impersonate-User`/`Impersonate-Group`, so the answer is for that identity (the caller
needs the right to impersonate). Prints `yes`, or `no` followed by the server's reason,
and exits 0 for yes and 1 for no, so scripts can branch on it; `-q` prints nothing.

`TYPE` may be any name the CLI knows (`po`, `deploy`, `deployments.apps`, `pods/log`); a name
it does not know is sent as given (group from `NAME.GROUP`) after kubectl's warning. A server
that does not serve SelfSubjectAccessReviews is an error (exit 1) saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from ..client import ConnectionFailed
from ..objects.kinds import UnknownKind, resolve
from . import output
from .options import global_options

REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("auth", parents=[global_options(suppress=True)], help="inspect authorization")
    sub = p.add_subparsers(dest="auth_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("can-i", parents=[global_options(suppress=True)],
                       help="whether an action is allowed (prints yes/no; exit 0 yes, 1 no)",
                       description="can-i VERB TYPE[/NAME] | can-i VERB /URL")
    c.add_argument("verb", metavar="VERB")
    c.add_argument("resource", metavar="TYPE[/NAME] | /URL")
    c.add_argument("name", nargs="?", metavar="NAME")
    c.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    c.add_argument("--subresource", metavar="S", help="a subresource, e.g. log or exec")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing; only the exit code answers")
    c.add_argument("--as", dest="as_user", metavar="USER", help="ask for this user (impersonation)")
    c.add_argument("--as-group", action="append", default=[], metavar="GROUP", help="with --as; repeatable")
    c.set_defaults(handler=cmd_can_i)


def attributes(verb: str, resource: str, name: str | None, subresource: str | None, namespace: str | None,
               warn: Any = None) -> dict[str, Any]:
    """The review's spec for the command's words (pure, unit-tested)."""
    if resource.startswith("/"):
        return {"nonResourceAttributes": {"path": resource, "verb": verb}}
    type_text, sep, rest = resource.partition("/")
    if sep and rest:
        if "/" in rest:
            raise output.CliError(f'expected TYPE, TYPE/NAME or TYPE/SUBRESOURCE, got "{resource}"')
        # `pods/log` is a subresource of pods, `pod/web` names an object: kubectl reads the
        # part after the slash as a subresource only for known subresource words
        if rest in ("log", "exec", "status", "scale", "binding", "eviction", "portforward", "attach", "proxy",
                    "ephemeralcontainers", "finalize"):
            subresource = subresource or rest
        else:
            name = name or rest
    attrs: dict[str, Any] = {}
    if namespace:
        attrs["namespace"] = namespace
    attrs["verb"] = verb
    try:
        kind = resolve(type_text)
        group, plural = kind.group, kind.resource
    except UnknownKind:
        plural, _, group = type_text.partition(".")
        if type_text != "*" and warn is not None:
            warn(f"Warning: the server doesn't have a resource type '{type_text}'")
    if group:
        attrs["group"] = group
    attrs["resource"] = plural
    if subresource:
        attrs["subresource"] = subresource
    if name:
        attrs["name"] = name
    return {"resourceAttributes": attrs}


def cmd_can_i(args: argparse.Namespace) -> int:
    with output.connect(args) as client:
        namespace = "" if args.all_namespaces else client.namespace
        spec = attributes(args.verb, args.resource, args.name, args.subresource, namespace,
                          warn=lambda text: print(text, file=sys.stderr))
        if "resourceAttributes" in spec:
            try:
                kind = resolve(args.resource.partition("/")[0])
                if not kind.namespaced:
                    spec["resourceAttributes"].pop("namespace", None)
            except UnknownKind:
                pass
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": spec}
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        if args.as_user:
            headers.append(("Impersonate-User", args.as_user))
        headers += [("Impersonate-Group", g) for g in args.as_group]
        try:
            r = client.http.post(REVIEWS, content=json.dumps(body).encode(), headers=headers)
        except httpx.TransportError as e:
            raise ConnectionFailed(client.server, e) from None
        if r.status_code == 404:
            raise output.CliError("the server does not serve SelfSubjectAccessReviews "
                                  "(authorization.k8s.io/v1), which auth can-i needs")
        review = client._decode(r)
    status = (review or {}).get("status") or {}
    if not args.quiet:
        if status.get("allowed"):
            print("yes")
        else:
            line = "no"
            if status.get("reason"):
                line += f" - {status['reason']}"
            if status.get("evaluationError"):
                line += f" - {status['evaluationError']}"
            print(line)
    return 0 if status.get("allowed") else 1

