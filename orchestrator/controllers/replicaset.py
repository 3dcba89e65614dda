"""ReplicaSet controller logic: compare desired replicas with owned pods, plan the difference.

`plan_replicaset(rs, pods, now)` is pure: it receives the ReplicaSet and the pods the caller
believes it owns, and returns how many pods to create, which pods to delete and the full
desired `.status`. The caller creates pods from `pod_from_template(rs)` and deletes the listed
pods; the next event re-runs the plan against fresh state (level-triggered, like Kubernetes).

Rules (from the Kubernetes ReplicaSet controller):

* Only pods whose controller ownerReference uid is the ReplicaSet's uid count; others in the
  input are ignored (adoption of orphans is not done here). An owned pod whose labels no
  longer match `spec.selector` is listed in `release` (the caller drops its ownerReference,
  as Kubernetes does) and is replaced: relabelling a pod takes it out of the set.
* Active pods: not terminating and phase not Succeeded/Failed. Only they count toward
  replicas; a terminating pod is already on its way out and is never deleted twice.
* Creations and deletions per pass are capped at `max_burst` (Kubernetes' `burstReplicas`,
  500). The caller creates the pods in slow-start batches (`slow_start_batches`: 1, 2, 4, …
  doubling, the last one what remains) and stops at the first batch in which a creation
  fails: a quota or admission refusal then costs one attempt per pass, not `max_burst`.
  What was skipped is left to the next pass, which sees the pods created so far (the
  caller reads fresh state from the in-process registry, so no "expectations" are needed).
* A ReplicaSet that is itself being deleted gets no creations or deletions, only status.
* Deletion order, most deletable first: unscheduled before scheduled; Pending < Unknown <
  Running; not ready before ready; lower `controller.kubernetes.io/pod-deletion-cost`
  first; pods doubled up on a node with other pods of this set first; ready for less time
  first; more restarts first; newer first; then name (determinism).
* Evacuation (what `drain` asks for, with the annotation `dockyard.io/evacuate` on a pod of
  a node being drained): an evacuating pod no longer counts toward `replicas`, so a
  replacement is created at once (on another node: the drained one is cordoned), and the
  evacuating pod is deleted only once the set keeps `replicas` Ready pods without it (an
  unready one goes at once). The set never drops below its Ready count for a drain: a
  surge, like a rolling update's, instead of Kubernetes' evict-then-replace. When the
  replacement cannot be placed (PodScheduled=False, Unschedulable: a single node, or no
  room) the evacuating pod goes anyway, so the drain finishes as Kubernetes' would.
* Status: replicas (active), fullyLabeledReplicas (active pods carrying all template labels),
  readyReplicas, availableReplicas (ready for spec.minReadySeconds), observedGeneration, and
  the existing conditions untouched. The caller sets ReplicaFailure (FailedCreate or
  FailedDelete, with the error) when a pass stops on an error, and removes it after a pass
  without errors, as Kubernetes does: `with_replica_failure`.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.objects.pods import (
    creation_time,
    format_time,
    is_active,
    is_available,
    is_pod_ready,
    is_terminating,
    owned_by,
    pod_phase,
    ready_since,
    restart_count,
)
from orchestrator.objects.selectors import SelectorError, selector_from_spec

DEFAULT_MAX_BURST = 500
EVACUATE_ANNOTATION = "dockyard.io/evacuate"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


@dataclass
class ReplicaSetPlan:
    create: int
    delete: list[dict] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    release: list[dict] = field(default_factory=list)  # owned pods no longer matching the selector


def desired_replicas(rs: dict) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _deletion_cost(pod: dict) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _deletion_key(pod: dict, node_counts: Counter) -> tuple:
    node = (pod.get("spec") or {}).get("nodeName") or ""
    ready = is_pod_ready(pod)
    since = ready_since(pod)
    created = creation_time(pod)
    return (
        1 if node else 0,
        _PHASE_RANK.get(pod_phase(pod), 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -node_counts[node] if node else 0,
        # ready for less time first: later ready time sorts first
        -(since.timestamp()) if ready and since else 0.0,
        -restart_count(pod),
        -(created.timestamp()) if created else 0.0,
        (pod.get("metadata") or {}).get("name", ""),
    )


def rank_pods_for_deletion(pods: list[dict]) -> list[dict]:
    """Sort pods so that the first ones are the best to delete."""
    node_counts: Counter = Counter((p.get("spec") or {}).get("nodeName") or "" for p in pods)
    return sorted(pods, key=lambda p: _deletion_key(p, node_counts))


def _fully_labeled(pod: dict, template_labels: dict) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in template_labels.items())


def compute_status(rs: dict, active: list[dict], now: datetime) -> dict:
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    status: dict = {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(1 for p in active if _fully_labeled(p, template_labels)),
        "readyReplicas": sum(1 for p in active if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in active if is_available(p, min_ready, now)),
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 0),
    }
    conditions = (rs.get("status") or {}).get("conditions")
    if conditions:
        status["conditions"] = copy.deepcopy(conditions)
    return status


def replica_failure_condition(message: str, now: datetime, reason: str = "FailedCreate") -> dict:
    """A ReplicaFailure condition for the caller to set when pod creation is refused."""
    stamp = format_time(now)
    return {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp,
    }


def with_replica_failure(status: dict, failure: tuple[str, str] | None, now: datetime) -> dict:
    """`status` with the ReplicaFailure condition set to `(reason, message)`, or removed (None).

    A condition that is already there keeps its lastTransitionTime; only its reason and
    message follow the latest error. Returns a new dict, `status` is left as it was.
    """
    out = dict(status)
    others = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        reason, message = failure
        cond = replica_failure_condition(message, now, reason)
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        if old is not None and old.get("status") == "True" and old.get("lastTransitionTime"):
            cond["lastTransitionTime"] = old["lastTransitionTime"]
        others.append(cond)
    if others:
        out["conditions"] = others
    else:
        out.pop("conditions", None)
    return out


def slow_start_batches(n: int, burst: int = DEFAULT_MAX_BURST, initial: int = 1) -> list[int]:
    """Batch sizes for creating `n` pods in one pass: `initial`, then doubling, the last batch
    what remains, `min(n, burst)` pods in all (Kubernetes' `slowStartBatch`).

    `slow_start_batches(500)` is [1, 2, 4, 8, 16, 32, 64, 128, 245]; [] when there is
    nothing to create.
    """
    remaining = max(0, min(n, burst))
    sizes: list[int] = []
    size = min(remaining, max(1, initial))
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


def plan_replicaset(
    rs: dict, pods: list[dict], now: datetime, max_burst: int = DEFAULT_MAX_BURST
) -> ReplicaSetPlan:
    owned = [p for p in pods if owned_by(p, rs)]
    release: list[dict] = []
    try:
        selector = selector_from_spec((rs.get("spec") or {}).get("selector"))
    except SelectorError:
        selector = None  # an invalid stored selector: keep every owned pod rather than drop all
    if selector is not None:
        release = [p for p in owned if not selector.matches((p.get("metadata") or {}).get("labels"))]
        owned = [p for p in owned if selector.matches((p.get("metadata") or {}).get("labels"))]
    active = [p for p in owned if is_active(p)]
    status = compute_status(rs, active, now)
    plan = ReplicaSetPlan(create=0, delete=[], status=status, release=release)
    if is_terminating(rs):
        return plan
    leaving = [p for p in active if is_evacuating(p)]
    staying = [p for p in active if not is_evacuating(p)]
    desired = desired_replicas(rs)
    diff = len(staying) - desired
    if diff < 0:
        plan.create = min(-diff, max_burst)
    elif diff > 0:
        plan.delete = rank_pods_for_deletion(staying)[: min(diff, max_burst)]
    # an evacuating pod goes once the others keep `desired` Ready pods without it, or when
    # its replacement cannot be placed anywhere (the drain must finish, as Kubernetes' does)
    ready = sum(1 for p in staying if is_pod_ready(p)) - sum(1 for p in plan.delete if is_pod_ready(p))
    spare = ready + sum(1 for p in leaving if is_pod_ready(p)) - desired
    spare += sum(1 for p in staying if is_unschedulable(p) and p not in plan.delete)
    for pod in sorted(leaving, key=is_pod_ready):  # the unready ones first, they cost nothing
        if len(plan.delete) >= max_burst:
            break
        if not is_pod_ready(pod):
            plan.delete.append(pod)
        elif spare > 0:
            plan.delete.append(pod)
            spare -= 1
    return plan


def is_unschedulable(pod: dict) -> bool:
    """The scheduler found no node for the pod (PodScheduled=False, reason Unschedulable)."""
    return not (pod.get("spec") or {}).get("nodeName") and any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in (pod.get("status") or {}).get("conditions") or [])


def is_evacuating(pod: dict) -> bool:
    return bool(((pod.get("metadata") or {}).get("annotations") or {}).get(EVACUATE_ANNOTATION))


def pod_from_template(rs: dict) -> dict:
    """A new Pod object (no name; generateName) for the ReplicaSet's template."""
    meta = rs.get("metadata") or {}
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_meta: dict = {
        "generateName": f"{meta.get('name', '')}-",
        "namespace": meta.get("namespace") or "default",
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
