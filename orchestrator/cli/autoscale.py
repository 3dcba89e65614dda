"""`dockyard autoscale deploy/NAME --max N [--min M] [--cpu-percent P]`: a HorizontalPodAutoscaler.

As `kubectl autoscale`: the HPA is named after its target (`--name` to choose), scales the
Deployment or ReplicaSet between `--min` (default 1) and `--max`, and, with `--cpu-percent`,
aims at that average CPU utilization (otherwise the server's default target applies). It is
written as `autoscaling/v2`. Prints `horizontalpodautoscaler.autoscaling/web autoscaled`.
`build_hpa` is pure and unit-tested.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..objects.kinds import resolve
from . import output, targets
from .options import dry_run_option, global_options, output_option


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("autoscale", parents=[global_options(suppress=True)],
                              help="create a HorizontalPodAutoscaler for a deployment or replicaset",
                              description="autoscale deploy/NAME --max N [--min M] [--cpu-percent P]")
    p.add_argument("words", nargs="+", metavar="TYPE[/NAME] [NAME]")
    p.add_argument("--max", type=int, required=True, metavar="N", help="the most replicas")
    p.add_argument("--min", type=int, default=None, metavar="N", help="the fewest replicas (default 1)")
    p.add_argument("--cpu-percent", type=int, default=None, metavar="P",
                   help="target average CPU utilization, percent of the requests")
    p.add_argument("--name", metavar="NAME", help="the autoscaler's name (default: the target's)")
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler=cmd_autoscale, intermixed="words")


def build_hpa(target: dict[str, Any], max_replicas: int, min_replicas: int | None, cpu_percent: int | None,
              name: str | None = None) -> dict[str, Any]:
    kind = str(target.get("kind", ""))
    if kind not in ("Deployment", "ReplicaSet"):
        raise output.CliError(f"cannot autoscale a {kind}: only deployments and replicasets")
    if max_replicas < 1:
        raise output.CliError("--max=MAXPODS is required and must be at least 1")
    if min_replicas is not None and min_replicas > max_replicas:
        raise output.CliError(f"--max={max_replicas} must be larger or equal to --min={min_replicas}")
    if cpu_percent is not None and cpu_percent < 1:
        raise output.CliError("--cpu-percent must be at least 1")
    meta = target.get("metadata") or {}
    spec: dict[str, Any] = {"maxReplicas": max_replicas}
    if cpu_percent is not None:
        spec["metrics"] = [{"resource": {"name": "cpu", "target": {"averageUtilization": cpu_percent,
                                                                   "type": "Utilization"}},
                            "type": "Resource"}]
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    spec["scaleTargetRef"] = {"apiVersion": target.get("apiVersion", "apps/v1"), "kind": kind,
                              "name": meta.get("name")}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name or meta.get("name")}, "spec": spec, "status": {}}


def cmd_autoscale(args: argparse.Namespace) -> int:
    kind = resolve("horizontalpodautoscalers")
    with output.connect(args) as client:
        if len(args.words) == 1 and "/" not in args.words[0]:
            raise output.CliError(f"a name is needed: autoscale {args.words[0]} NAME --max N")
        for ref in targets.resolve_refs(client, args.words):
            obj = targets.fetch(client, ref)
            hpa = build_hpa(obj, args.max, args.min, args.cpu_percent, args.name)
            if args.dry_run == "client":
                output.show(hpa, kind, "autoscaled", args.output, args.dry_run)
                continue
            body = {k: v for k, v in hpa.items() if k != "status"}
            created = client.request("POST", client.path(kind, ref.namespace), body,
                                     params=output.dry_run_params(args.dry_run))
            output.show(created, kind, "autoscaled", args.output, args.dry_run)
    return 0
