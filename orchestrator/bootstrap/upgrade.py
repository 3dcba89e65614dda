"""Cordon, drain and rolling agent upgrades.

* `cordon`/`uncordon` set `spec.unschedulable` (a merge patch), like kubectl.
* `drain` empties a node. A pod of a ReplicaSet is *evacuated* (annotation
  `dockyard.io/evacuate`): its ReplicaSet starts a replacement on another node first and
  deletes the pod once the replacement is Ready, so a Service keeps its full capacity.
  Other pods are deleted so their controllers recreate them elsewhere.
  Pods without a controller would be lost, so they need `force`; DaemonSet pods are skipped
  with `ignore_daemonsets` and refused otherwise (their controller would put them back).
  With `max_unavailable`, a pod owned by a ReplicaSet of a Deployment is only deleted while
  the Deployment keeps at least `replicas - max_unavailable` Ready pods after the deletion,
  counted from the pods themselves (not the possibly lagging status), so a drain never takes
  a workload below its budget; it waits for replacements to become Ready instead.
  `drain` returns once the node's pods are gone (the agent finished them) or fails at the
  timeout.
* `rolling_upgrade` upgrades the agents one node at a time. A node whose running agent has
  the same pod runtime revision as the new one (`orchestrator.objects.nodeinfo`) is upgraded
  in place: the new agent is installed and started, adopts the pods as they are and the
  data plane the old one left running, and nothing is drained, so every Service keeps its
  full capacity. Any other node is cordoned and drained first (evictions within
  `max_unavailable`), upgraded, and uncordoned once Ready. It stops at the first failure
  and leaves that node cordoned, so the user sees which node needs attention.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..client import Client
from ..controllers.replicaset import EVACUATE_ANNOTATION
from ..errors import ApiError
from ..objects.kinds import by_kind
from ..objects.pods import controller_ref
from . import BootstrapError

NODE = by_kind("v1", "Node")
POD = by_kind("v1", "Pod")
RS = by_kind("apps/v1", "ReplicaSet")
DEPLOY = by_kind("apps/v1", "Deployment")

Progress = Callable[[str], None]


def cordon(client: Client, name: str, on: bool = True) -> bool:
    """Set spec.unschedulable; True when it changed."""
    node = client.get(NODE, name)
    if bool((node.get("spec") or {}).get("unschedulable")) == on:
        return False
    client.patch(NODE, name, {"spec": {"unschedulable": True if on else None}})
    return True


def uncordon(client: Client, name: str) -> bool:
    return cordon(client, name, on=False)


def pod_ready(pod: dict[str, Any]) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


@dataclass
class DrainPlan:
    delete: list[dict[str, Any]]
    skipped: list[str]  # "ns/name (reason)"
    refused: list[str]  # "ns/name (reason)": block the drain


def plan_drain(pods: list[dict[str, Any]], force: bool, ignore_daemonsets: bool) -> DrainPlan:
    plan = DrainPlan([], [], [])
    for p in pods:
        meta = p.get("metadata") or {}
        ident = f"{meta.get('namespace')}/{meta.get('name')}"
        if meta.get("deletionTimestamp"):
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            plan.delete.append(p)
            continue
        ref = controller_ref(p)
        if ref is None:
            if force:
                plan.delete.append(p)
            else:
                plan.refused.append(f"{ident} (not managed by a controller; use --force)")
        elif ref.get("kind") == "DaemonSet":
            if ignore_daemonsets:
                plan.skipped.append(f"{ident} (DaemonSet)")
            else:
                plan.refused.append(f"{ident} (DaemonSet-managed; use --ignore-daemonsets)")
        else:
            plan.delete.append(p)
    return plan


def _deployment_of(client: Client, pod: dict[str, Any]) -> dict[str, Any] | None:
    ref = controller_ref(pod)
    if not ref or ref.get("kind") != "ReplicaSet":
        return None
    ns = pod["metadata"].get("namespace")
    try:
        rs = client.get(RS, ref["name"], ns)
        dref = controller_ref(rs)
        if not dref or dref.get("kind") != "Deployment":
            return None
        return client.get(DEPLOY, dref["name"], ns)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


def _ready_pods_of(client: Client, dep: dict[str, Any]) -> int:
    sel = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    label_selector = ",".join(f"{k}={v}" for k, v in sel.items())
    items = client.list(POD, dep["metadata"].get("namespace"), label_selector=label_selector or None)["items"]
    return sum(1 for p in items if pod_ready(p))


def drain(
    client: Client,
    name: str,
    force: bool = False,
    ignore_daemonsets: bool = False,
    timeout: float = 300.0,
    max_unavailable: int | None = None,
    grace_period: int | None = None,
    progress: Progress | None = None,
    surge: bool = True,
) -> list[str]:
    """Cordon, evacuate or evict and wait until the node's pods are gone; returns the pods
    removed. With `surge` (the default) ReplicaSet pods are replaced before they go."""
    say = progress or (lambda msg: None)
    cordon(client, name)
    deadline = time.monotonic() + timeout if timeout else None
    pods = client.list(POD, all_namespaces=True, field_selector=f"spec.nodeName={name}")["items"]
    plan = plan_drain(pods, force, ignore_daemonsets)
    if plan.refused:
        raise BootstrapError(f"{name}: cannot drain: " + "; ".join(plan.refused))
    evicted: list[str] = []
    for pod in plan.delete:
        meta = pod["metadata"]
        ident = f"{meta.get('namespace')}/{meta['name']}"
        ref = controller_ref(pod)
        if surge and ref is not None and ref.get("kind") == "ReplicaSet" and \
                (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            try:
                client.patch(POD, meta["name"], {"metadata": {"annotations": {EVACUATE_ANNOTATION: _now()}}},
                             meta.get("namespace"))
            except ApiError as e:
                if e.code != 404:
                    raise
                continue
            say(f"{name}: evacuating pod {ident} (its replacement starts first)")
            evicted.append(ident)
            continue
        if max_unavailable is not None:
            while True:
                dep = _deployment_of(client, pod)
                if dep is None:
                    break
                want = int((dep.get("spec") or {}).get("replicas", 1)) - max_unavailable
                ready = _ready_pods_of(client, dep)
                # this pod counts as ready now and will not be after the eviction
                if ready - (1 if pod_ready(pod) else 0) >= want:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise BootstrapError(f"{name}: drain timed out waiting for deployment "
                                         f"{dep['metadata']['name']} to have {want + 1} Ready pods (has {ready})")
                time.sleep(0.5)
                try:
                    pod = client.get(POD, meta["name"], meta.get("namespace"))
                except ApiError as e:
                    if e.code == 404:
                        break
                    raise
        try:
            client.delete(POD, meta["name"], meta.get("namespace"), grace_period=grace_period)
            say(f"{name}: evicted pod {ident}")
            evicted.append(ident)
        except ApiError as e:
            if e.code != 404:
                raise
    wanted = {(p["metadata"].get("namespace"), p["metadata"]["name"]) for p in plan.delete}
    while True:
        left = [p for p in client.list(POD, all_namespaces=True, field_selector=f"spec.nodeName={name}")["items"]
                if (p["metadata"].get("namespace"), p["metadata"]["name"]) in wanted]
        if not left:
            return evicted
        if deadline is not None and time.monotonic() > deadline:
            names = ", ".join(f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in left)
            raise BootstrapError(f"{name}: drain timed out after {timeout:g}s; still on the node: {names}")
        time.sleep(0.3)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class UpgradeStep:
    node: str
    ok: bool
    message: str
    seconds: float


def rolling_upgrade(
    client: Client,
    names: list[str],
    upgrade_one: Callable[[str], None],
    wait_ready: Callable[[str], object],  # its result is not used
    max_unavailable: int = 1,
    drain_timeout: float = 300.0,
    progress: Progress | None = None,
    in_place: Callable[[str], bool] = lambda name: False,
) -> list[UpgradeStep]:
    """Upgrade nodes one at a time; stops at the first failure (that node stays cordoned).
    `in_place(name)` says whether the node's pods survive the new agent unchanged."""
    say = progress or (lambda msg: None)
    steps: list[UpgradeStep] = []
    for name in names:
        t0 = time.monotonic()
        try:
            if in_place(name):
                say(f"{name}: upgrading the agent in place (its pods need no change)")
                upgrade_one(name)
                wait_ready(name)
                steps.append(UpgradeStep(name, True, "upgraded in place", time.monotonic() - t0))
                say(f"{name}: upgraded")
                continue
            say(f"{name}: cordon and drain")
            drain(client, name, ignore_daemonsets=True, timeout=drain_timeout, max_unavailable=max_unavailable,
                  progress=say)
            say(f"{name}: upgrading the agent")
            upgrade_one(name)
            wait_ready(name)
            uncordon(client, name)
        except (BootstrapError, ApiError) as e:
            msg = e.message if isinstance(e, ApiError) else str(e)
            steps.append(UpgradeStep(name, False, f"{msg} (the node stays cordoned)", time.monotonic() - t0))
            return steps
        steps.append(UpgradeStep(name, True, "upgraded", time.monotonic() - t0))
        say(f"{name}: upgraded and uncordoned")
    return steps
