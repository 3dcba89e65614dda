"""`dockyard top pods [NAME] [-A] [-l SEL]` and `dockyard top nodes [NAME]`.

Reads the master's `metrics.k8s.io/v1beta1` view (which the master fills by scraping the
node agents' `/metrics` at request time) and prints kubectl's tables: CPU in millicores
(`12m`), memory in MiB (`34Mi`), and for nodes the share of allocatable.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..objects.kinds import by_kind
from . import output
from .options import global_options

METRICS = "/apis/metrics.k8s.io/v1beta1"
NODE = by_kind("v1", "Node")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("top", parents=[global_options(suppress=True)],
                              help="show CPU and memory use of pods or nodes",
                              description="show CPU and memory use of pods or nodes")
    p.add_argument("what", choices=["pods", "pod", "po", "nodes", "node", "no"], metavar="pods|nodes")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", metavar="SEL", help="label selector")
    p.add_argument("--containers", action="store_true", help="one line per container")
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(handler=cmd_top)


def parse_cpu_cores(q: str) -> float:
    units = {"n": 1e-9, "u": 1e-6, "m": 1e-3}
    if q and q[-1] in units:
        return float(q[:-1]) * units[q[-1]]
    return float(q or 0)


def parse_bytes(q: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, mult in units.items():
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * mult
    return float(q or 0)


def fmt_cpu(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def fmt_mem(n: float) -> str:
    return f"{round(n / 2**20)}Mi"


def table(rows: list[list[str]], headers: list[str], no_headers: bool) -> str:
    data = rows if no_headers else [headers, *rows]
    if not data:
        return ""
    widths = [max(len(r[i]) for r in data) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in data)


def pod_rows(items: list[dict[str, Any]], all_ns: bool, containers: bool) -> tuple[list[str], list[list[str]]]:
    headers = (["NAMESPACE"] if all_ns else []) + ["POD" if containers else "NAME"]
    headers += (["NAME"] if containers else []) + ["CPU(cores)", "MEMORY(bytes)"]
    rows: list[list[str]] = []
    for item in sorted(items, key=lambda i: (i["metadata"].get("namespace", ""), i["metadata"]["name"])):
        meta = item["metadata"]
        prefix = [meta.get("namespace", "")] if all_ns else []
        usages = [(c["name"], c.get("usage") or {}) for c in item.get("containers") or []]
        if containers:
            for cname, u in usages:
                rows.append(prefix + [meta["name"], cname, fmt_cpu(parse_cpu_cores(u.get("cpu", "0"))),
                                      fmt_mem(parse_bytes(u.get("memory", "0")))])
        else:
            cpu = sum(parse_cpu_cores(u.get("cpu", "0")) for _, u in usages)
            mem = sum(parse_bytes(u.get("memory", "0")) for _, u in usages)
            rows.append(prefix + [meta["name"], fmt_cpu(cpu), fmt_mem(mem)])
    return headers, rows


def node_rows(items: list[dict[str, Any]], nodes: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    headers = ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    rows = []
    for item in sorted(items, key=lambda i: i["metadata"]["name"]):
        name = item["metadata"]["name"]
        cpu = parse_cpu_cores((item.get("usage") or {}).get("cpu", "0"))
        mem = parse_bytes((item.get("usage") or {}).get("memory", "0"))
        alloc = ((nodes.get(name) or {}).get("status") or {}).get("allocatable") or {}
        a_cpu = parse_cpu_cores(str(alloc.get("cpu", "0")))
        a_mem = parse_bytes(str(alloc.get("memory", "0")))
        rows.append([name, fmt_cpu(cpu), f"{round(100 * cpu / a_cpu)}%" if a_cpu else "<unknown>",
                     fmt_mem(mem), f"{round(100 * mem / a_mem)}%" if a_mem else "<unknown>"])
    return headers, rows


def cmd_top(args: argparse.Namespace) -> int:
    params = {"labelSelector": args.selector} if args.selector else None
    with output.connect(args) as client:
        if args.what in ("pods", "pod", "po"):
            if args.all_namespaces:
                path = f"{METRICS}/pods"
            else:
                path = f"{METRICS}/namespaces/{client.namespace}/pods"
            if args.name:
                path += f"/{args.name}"
            data = client.request("GET", path, params=params)
            items = [data] if args.name else list(data.get("items") or [])
            if not items and not args.name:
                raise output.CliError("metrics not available yet" if not args.selector else "no matching pods")
            headers, rows = pod_rows(items, args.all_namespaces, args.containers)
        else:
            path = f"{METRICS}/nodes" + (f"/{args.name}" if args.name else "")
            data = client.request("GET", path, params=params)
            items = [data] if args.name else list(data.get("items") or [])
            nodes = {n["metadata"]["name"]: n for n in client.list(NODE).get("items") or []}
            if not items:
                raise output.CliError("metrics not available yet")
            headers, rows = node_rows(items, nodes)
    text = table(rows, headers, args.no_headers)
    if text:
        output.write(text)
    return 0
