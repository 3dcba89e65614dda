"""`dockyard expose (TYPE NAME | TYPE/NAME) --port P [--target-port T] [--type T]`: a Service for it.

As `kubectl expose`: the Service selects what the object selects (a Deployment's or
ReplicaSet's `spec.selector.matchLabels`, a Pod's labels, a Service's selector), carries the
object's labels and is named after it (`--name` to choose). Without `--port` the ports come
from the pod template's container ports (several are named `port-1`, `port-2`, …). The
target port defaults to the port; a name (`--target-port http`) stays a name.
`build_service` is pure and unit-tested.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..objects.kinds import resolve
from . import output, targets
from .options import dry_run_option, global_options, output_option

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("expose", parents=[global_options(suppress=True)],
                              help="create a Service for a deployment, replicaset, pod or service",
                              description="expose TYPE NAME | TYPE/NAME as a new Service")
    p.add_argument("words", nargs="+", metavar="TYPE[/NAME] [NAME]")
    p.add_argument("--port", metavar="PORT", help="the Service's port")
    p.add_argument("--target-port", metavar="PORT|NAME", help="the container port (default: --port)")
    p.add_argument("--protocol", default=None, choices=["TCP", "UDP", "SCTP"], help="default TCP")
    p.add_argument("--type", choices=SERVICE_TYPES, default=None, help="the Service type (default ClusterIP)")
    p.add_argument("--name", metavar="NAME", help="the Service's name (default: the object's)")
    p.add_argument("--selector", metavar="K=V,...", help="select these labels instead of the object's selector")
    p.add_argument("-l", "--labels", metavar="K=V,...", help="labels of the Service (default: the object's)")
    p.add_argument("--cluster-ip", metavar="IP", help='the ClusterIP, or "None" for a headless Service')
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler=cmd_expose, intermixed="words")


def parse_map(text: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise output.CliError(f'{flag}: expected KEY=VALUE[,KEY=VALUE…], got "{part}"')
        out[key] = value
    return out


def selector_of(obj: dict[str, Any]) -> dict[str, str]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name")
    if kind == "Pod":
        selector = dict((obj.get("metadata") or {}).get("labels") or {})
    elif kind == "Service":
        selector = dict(spec.get("selector") or {})
    elif isinstance(spec.get("selector"), dict) and "template" in spec:
        sel = spec["selector"]
        if sel.get("matchExpressions"):
            raise output.CliError(f"cannot expose {kind} {name!r}: its selector has matchExpressions, "
                                  "which a Service cannot express (give --selector)")
        selector = dict(sel.get("matchLabels") or {})
    else:
        raise output.CliError(f"cannot expose a {kind}: only deployments, replicasets, pods and services")
    if not selector:
        raise output.CliError(f"couldn't find a selector for {kind} {name!r}: it has no labels to select "
                              "(give --selector)")
    return selector


def _target(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def ports_of(obj: dict[str, Any]) -> list[tuple[int, str]]:
    """Container ports of the object's pods (port, protocol)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Service":
        return [(int(p.get("port")), str(p.get("protocol") or "TCP")) for p in spec.get("ports") or []]
    pod = spec if obj.get("kind") == "Pod" else ((spec.get("template") or {}).get("spec") or {})
    out: list[tuple[int, str]] = []
    for c in pod.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("containerPort"):
                out.append((int(p["containerPort"]), str(p.get("protocol") or "TCP")))
    return out


def build_service(obj: dict[str, Any], name: str | None = None, port: str | None = None,
                  target_port: str | None = None, protocol: str | None = None, service_type: str | None = None,
                  selector: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                  cluster_ip: str | None = None) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    chosen = selector if selector is not None else selector_of(obj)
    ports: list[dict[str, Any]] = []
    if port is not None:
        numbers = [p.strip() for p in port.split(",") if p.strip()]
        for i, p in enumerate(numbers, start=1):
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise output.CliError(f'--port: "{p}" is not a port number (1-65535)')
            entry: dict[str, Any] = {"port": int(p), "protocol": protocol or "TCP",
                                     "targetPort": _target(target_port) if target_port else int(p)}
            if len(numbers) > 1:
                entry = {"name": f"port-{i}", **entry}
            ports.append(entry)
    else:
        found = ports_of(obj)
        if not found:
            raise output.CliError(f"couldn't find port via --port flag or introspection: "
                                  f"{obj.get('kind')} {meta.get('name')!r} declares no container ports (give --port)")
        for i, (number, proto) in enumerate(found, start=1):
            entry = {"port": number, "protocol": protocol or proto,
                     "targetPort": _target(target_port) if target_port else number}
            if len(found) > 1:
                entry = {"name": f"port-{i}", **entry}
            ports.append(entry)
    spec: dict[str, Any] = {"ports": ports, "selector": chosen}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if service_type:
        spec["type"] = service_type
    svc_meta: dict[str, Any] = {}
    svc_labels = labels if labels is not None else dict(meta.get("labels") or {})
    if svc_labels:
        svc_meta["labels"] = svc_labels
    svc_meta["name"] = name or meta.get("name")
    return {"apiVersion": "v1", "kind": "Service", "metadata": svc_meta, "spec": spec,
            "status": {"loadBalancer": {}}}


def cmd_expose(args: argparse.Namespace) -> int:
    kind = resolve("services")
    with output.connect(args) as client:
        words = args.words
        if len(words) == 1 and "/" not in words[0]:
            raise output.CliError(f"a name is needed: expose {words[0]} NAME")
        refs = targets.resolve_refs(client, words)
        if len(refs) != 1:
            raise output.CliError("expose takes exactly one object")
        obj = targets.fetch(client, refs[0])
        svc = build_service(obj, args.name, args.port, args.target_port, args.protocol, args.type,
                            parse_map(args.selector, "--selector") if args.selector else None,
                            parse_map(args.labels, "--labels") if args.labels else None, args.cluster_ip)
        if getattr(args, "namespace", None):
            svc["metadata"]["namespace"] = args.namespace
        if args.dry_run == "client":
            output.show(svc, kind, "exposed", args.output, args.dry_run)
            return 0
        body = {k: v for k, v in svc.items() if k != "status"}
        created = client.request("POST", client.path(kind, refs[0].namespace), body,
                                 params=output.dry_run_params(args.dry_run))
    output.show(created, kind, "exposed", args.output, args.dry_run)
    return 0
