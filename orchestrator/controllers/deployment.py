"""Deployment controller logic: one pure reconciliation pass over a Deployment and its ReplicaSets.

`plan_deployment(dep, replicasets, pods, now)` follows the Kubernetes Deployment controller
closely and returns a `DeploymentPlan`: at most one ReplicaSet to create, modified copies of
ReplicaSets to update (spec.replicas, annotations, minReadySeconds), old ReplicaSets to
delete, the full desired Deployment `.status` and events to record. The caller executes the
plan and re-runs it on the next change; each pass does one step of the rollout, as in
Kubernetes (a level-triggered loop, never a long-running procedure).

Inputs: `replicasets` are the ReplicaSets of the Deployment's namespace (only those whose
controller ownerReference is the Deployment are managed; the others only matter for name
collisions), `pods` are the pods owned by those ReplicaSets (pods owned by anything else are
ignored).

Identity and revisions
  * The "new" ReplicaSet is the owned one whose template, ignoring the `pod-template-hash`
    label, hashes like the Deployment template (the oldest wins if several do).
  * A new ReplicaSet is named ``{deployment}-{hash}``, its labels, selector and template
    labels get ``pod-template-hash``, and its revision is max(old revisions) + 1. When an old
    ReplicaSet becomes the new one again (rollback) its revision is bumped to max + 1 and the
    previous number appended to ``deployment.kubernetes.io/revision-history``.
  * Every scaled ReplicaSet gets ``desired-replicas`` = spec.replicas and ``max-replicas`` =
    spec.replicas + maxSurge annotations; a mismatch on an active ReplicaSet marks a scaling
    event. A name clash with a ReplicaSet of another template bumps ``status.collisionCount``
    which is folded into the hash.
  * `deployment_annotations` in the plan carries the revision annotation the Deployment itself
    should show (None when already correct); it is metadata, not status.

Order of a pass (as `syncDeployment` in Kubernetes): terminating Deployment → status only;
paused → Progressing Unknown/DeploymentPaused and scaling only; a scaling event (desired
replicas changed) → scaling only; otherwise a rollout step by strategy.

Scaling uses Kubernetes' proportional scaling: if a single ReplicaSet is active (or none is,
then the newest) it takes all replicas; if the new ReplicaSet is saturated the old ones go
to 0; otherwise, for RollingUpdate, the difference to spec.replicas + maxSurge is spread over
the active ReplicaSets in proportion to their size relative to their ``max-replicas``
annotation, leftovers to the largest.

RollingUpdate: maxSurge rounds up, maxUnavailable rounds down, both against spec.replicas;
both zero means maxUnavailable 1. The new ReplicaSet grows while the sum of spec.replicas
stays ≤ replicas + maxSurge; old ReplicaSets shrink (unhealthy replicas first, then oldest
ReplicaSet first) while availability stays ≥ replicas - maxUnavailable. Recreate: every old
ReplicaSet goes to 0 and, only once no pod of an old ReplicaSet is left running (terminating
pods still count, so old and new never overlap), the new one is created or scaled up.

Counting: ready and available pods are counted from `pods` (active pods only; available
means Ready for spec.minReadySeconds, from the Ready condition's lastTransitionTime), which is
fresher than ReplicaSet status. For rollout decisions a ReplicaSet never counts more available
pods than its spec.replicas (surplus pods are about to be deleted). ``status.replicas`` and
``updatedReplicas`` come from ReplicaSet ``status.replicas`` as in Kubernetes.

Conditions: Available (MinimumReplicasAvailable / MinimumReplicasUnavailable) and
Progressing (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed), with
Kubernetes' timestamp rules: lastTransitionTime kept while status is unchanged; the
Progressing lastUpdateTime moves whenever progress is observed and the deadline is measured
from it. Old ReplicaSets beyond revisionHistoryLimit (default 10) with no replicas and no pods
are deleted, lowest revision first, once a rollout is complete or while paused.

Automatic rollback (a Dockyard extension; Kubernetes never rolls back by itself)
  * Last good revision: whenever a rollout is complete (observedGeneration current, all
    spec.replicas updated and available, no old replicas, spec.replicas > 0) the Deployment
    gets the annotation ``dockyard.io/last-good-revision`` = the new ReplicaSet's revision.
  * A rollout *fails* when it is not complete and either its progress deadline passes
    (Progressing=False/ProgressDeadlineExceeded, as in Kubernetes) or a pod of the new
    ReplicaSet is failing (Progressing=False/NewReplicaSetFailing). A pod is failing when
    one of its (init or app) containers is waiting with a reason that retrying the same
    template will not fix (``FAILING_WAIT_REASONS``: CrashLoopBackOff, ImagePullBackOff,
    ErrImagePull, ErrImageNeverPull, InvalidImageName, CreateContainerConfigError,
    CreateContainerError) or has restarted ``CRASH_LOOP_RESTARTS`` (3) times or more.
    Pod failures are judged before progress, so a readiness that flaps between crashes does
    not hide a crash loop. The first failure records a ``Warning RolloutFailed`` event.
  * On failure the Deployment is rolled back, like ``kubectl rollout undo``, to the old
    ReplicaSet whose revision is the last good one: the plan carries a `Rollback` with that
    ReplicaSet's template (minus ``pod-template-hash``), which the caller writes as a normal
    update of the Deployment's spec (generation bumps). No ReplicaSet is touched in that pass.
    Progressing becomes False/RolledBack, a ``Normal DeploymentRollback`` event says
    "Rolled back deployment "web" to revision N", and the Deployment is marked with
    ``dockyard.io/rolled-back-from-revision`` (the failed revision),
    ``dockyard.io/rolled-back-to-revision`` (N) and ``dockyard.io/rolled-back-template-hash``
    (the hash of the template rolled back to); its ``kubernetes.io/change-cause`` becomes
    the restored ReplicaSet's (removed if that has none), as `kubectl rollout undo` does.
  * No loop: while the Deployment's template still hashes to the marked one, the
    RolledBack condition is kept (the rollback is visible until someone changes the
    template) and no further automatic rollback happens, even if the restored revision
    fails too. The failed ReplicaSet is never a rollback target (it never became good), and
    the restored one takes a new revision number, so two templates cannot ping-pong. A new
    template clears the marks and starts an ordinary rollout; re-applying the failed template
    is such an explicit change and is tried (and, if it fails again, rolled back) again.
  * No rollback when: the annotation ``dockyard.io/auto-rollback: "false"`` is set (opt-out;
    the failure is still reported with Progressing=False), there is no last good revision
    or its ReplicaSet is gone (first rollout, history limit), the Deployment is paused, or it
    has no progress deadline (progressDeadlineSeconds = 2^31-1 means "never give up").
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.objects.pods import (
    controller_ref,
    creation_time,
    format_time,
    is_active,
    is_available,
    is_pod_ready,
    is_terminating,
    owned_by,
    pod_phase,
    uid_of,
)
from orchestrator.objects.timefmt import as_utc, parse_time
from orchestrator.objects.workloads import (
    DEADLINE_EXCEEDED,
    HASH_LABEL,
    NEW_RS_FAILING,
    REVISION,
    ROLLED_BACK,
    ROLLED_BACK_HASH,
    ROLLED_BACK_TO,
    pod_template_hash,
)

REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
AUTO_ROLLBACK = "dockyard.io/auto-rollback"
LAST_GOOD_REVISION = "dockyard.io/last-good-revision"
ROLLED_BACK_FROM = "dockyard.io/rolled-back-from-revision"
_ROLLBACK_MARKS = (ROLLED_BACK_FROM, ROLLED_BACK_TO, ROLLED_BACK_HASH)
FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
CRASH_LOOP_RESTARTS = 3
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
        LAST_GOOD_REVISION,
        ROLLED_BACK_FROM,
        ROLLED_BACK_TO,
        ROLLED_BACK_HASH,
    }
)
DEFAULT_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
NO_DEADLINE = 2**31 - 1

Event = tuple[str, str, str]


@dataclass
class Rollback:
    """Write `template` into the Deployment's spec.template: the rollout failed."""

    template: dict
    to_revision: int
    from_revision: int
    reason: str  # ProgressDeadlineExceeded | NewReplicaSetFailing
    message: str
    change_cause: str | None = None  # the restored ReplicaSet's kubernetes.io/change-cause


@dataclass
class DeploymentPlan:
    create_rs: dict | None = None
    update_rs: list[dict] = field(default_factory=list)
    delete_rs: list[dict] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # annotation changes for the Deployment's metadata; None values remove a key
    deployment_annotations: dict[str, str | None] | None = None
    rollback: Rollback | None = None


def resolve_int_or_percent(value: int | str | None, total: int, round_up: bool, default: str) -> int:
    if value is None:
        value = default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        raw = float(text[:-1]) * total / 100
        return int(math.ceil(raw) if round_up else math.floor(raw))
    return int(text)


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


# --- working state -----------------------------------------------------------------------


def _replicas(rs: dict) -> int:
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def _status_replicas(rs: dict) -> int:
    return int((rs.get("status") or {}).get("replicas") or 0)


def _annotations(obj: dict) -> dict:
    return obj.setdefault("metadata", {}).setdefault("annotations", {})


def _revision(rs: dict) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


class _Pass:
    """Mutable state of one reconciliation pass over copies of the inputs."""

    def __init__(self, dep: dict, replicasets: list[dict], pods: list[dict], now: datetime) -> None:
        self.dep = dep
        self.now = as_utc(now)
        self.stamp = format_time(now)
        meta = dep.get("metadata") or {}
        spec = dep.get("spec") or {}
        self.name = meta.get("name", "")
        self.namespace = meta.get("namespace") or "default"
        self.generation = meta.get("generation", 0)
        self.replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
        strategy = spec.get("strategy") or {}
        self.recreate = strategy.get("type") == "Recreate"
        rolling = strategy.get("rollingUpdate") or {}
        if self.recreate:
            self.max_surge, self.max_unavailable = 0, 0
        else:
            self.max_surge = resolve_int_or_percent(rolling.get("maxSurge"), self.replicas, True, "25%")
            self.max_unavailable = resolve_int_or_percent(
                rolling.get("maxUnavailable"), self.replicas, False, "25%"
            )
            if self.max_surge == 0 and self.max_unavailable == 0:
                self.max_unavailable = 1
        self.min_ready = int(spec.get("minReadySeconds") or 0)
        limit = spec.get("revisionHistoryLimit")
        self.history_limit = DEFAULT_HISTORY_LIMIT if limit is None else int(limit)
        deadline = spec.get("progressDeadlineSeconds")
        self.deadline = DEFAULT_PROGRESS_DEADLINE if deadline is None else int(deadline)
        self.paused = bool(spec.get("paused"))

        self.old_status = copy.deepcopy(dep.get("status") or {})
        self.conditions: list[dict] = copy.deepcopy(self.old_status.get("conditions") or [])
        self.collision_count: int | None = self.old_status.get("collisionCount")
        self.all_names = {_name(rs) for rs in replicasets}
        owned = [copy.deepcopy(rs) for rs in replicasets if owned_by(rs, dep)]
        self.rs_list = sorted(owned, key=self._age_key)
        self.originals = {_name(rs): rs for rs in replicasets if owned_by(rs, dep)}
        self.dirty: set[str] = set()
        self.created: dict | None = None
        self.events: list[Event] = []
        self.pods_by_rs: dict[str, list[dict]] = {}
        owner_uids = {uid_of(rs) for rs in owned}
        for pod in pods:
            ref = controller_ref(pod)
            if ref and ref.get("uid") in owner_uids:
                self.pods_by_rs.setdefault(ref["uid"], []).append(pod)
        self.template_hash = pod_template_hash(spec.get("template") or {}, self.collision_count)
        self.new_rs = self._find_new()
        self.dep_annotations: dict = dict(meta.get("annotations") or {})
        # why this rollout failed in this pass (condition reason, message), if it did
        self.failure: tuple[str, str] | None = None

    # ordering / lookup

    @staticmethod
    def _age_key(rs: dict) -> tuple:
        created = creation_time(rs)
        return (created.timestamp() if created else float("inf"), _name(rs))

    def _find_new(self) -> dict | None:
        template = (self.dep.get("spec") or {}).get("template") or {}
        want = pod_template_hash(template)
        for rs in self.rs_list:  # oldest first
            if pod_template_hash((rs.get("spec") or {}).get("template") or {}) == want:
                return rs
        return None

    @property
    def old_rs(self) -> list[dict]:
        return [rs for rs in self.rs_list if rs is not self.new_rs]

    @property
    def all_rs(self) -> list[dict]:
        return self.old_rs + ([self.new_rs] if self.new_rs is not None else [])

    def mark(self, rs: dict) -> None:
        if rs is not self.created:
            self.dirty.add(_name(rs))

    # counting

    def _pods(self, rs: dict) -> list[dict]:
        uid = uid_of(rs)
        return [p for p in self.pods_by_rs.get(uid, []) if is_active(p)] if uid else []

    def available(self, rs: dict) -> int:
        return sum(1 for p in self._pods(rs) if is_available(p, self.min_ready, self.now))

    def ready(self, rs: dict) -> int:
        return sum(1 for p in self._pods(rs) if is_pod_ready(p))

    def usable(self, rs: dict) -> int:
        """Available pods counted for rollout decisions: never more than spec.replicas."""
        return min(self.available(rs), _replicas(rs))

    def any_pods(self, rs: dict) -> bool:
        uid = uid_of(rs)
        return bool(uid and self.pods_by_rs.get(uid))

    # conditions

    def set_condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        new = {
            "type": ctype,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": self.stamp,
            "lastTransitionTime": self.stamp,
        }
        for i, cond in enumerate(self.conditions):
            if cond.get("type") != ctype:
                continue
            if cond.get("status") == status and cond.get("reason") == reason:
                return
            if cond.get("status") == status:
                new["lastTransitionTime"] = cond.get("lastTransitionTime") or self.stamp
            self.conditions[i] = new
            return
        self.conditions.append(new)

    def condition(self, ctype: str) -> dict | None:
        return next((c for c in self.conditions if c.get("type") == ctype), None)

    @property
    def has_deadline(self) -> bool:
        return self.deadline != NO_DEADLINE

    # scaling

    def scale(self, rs: dict, new_replicas: int) -> bool:
        new_replicas = max(0, new_replicas)
        old = _replicas(rs)
        ann = _annotations(rs)
        want_desired, want_max = str(self.replicas), str(self.replicas + self.max_surge)
        size_changed = old != new_replicas
        if not size_changed and ann.get(DESIRED_REPLICAS) == want_desired and ann.get(MAX_REPLICAS) == want_max:
            return False
        rs.setdefault("spec", {})["replicas"] = new_replicas
        ann[DESIRED_REPLICAS] = want_desired
        ann[MAX_REPLICAS] = want_max
        self.mark(rs)
        if size_changed:
            direction = "up" if new_replicas > old else "down"
            self.events.append(
                (
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled {direction} replica set {_name(rs)} from {old} to {new_replicas}",
                )
            )
        return size_changed


# --- new ReplicaSet ----------------------------------------------------------------------


def _copy_dep_annotations(p: _Pass, rs: dict) -> bool:
    changed = False
    ann = _annotations(rs)
    for key, value in ((p.dep.get("metadata") or {}).get("annotations") or {}).items():
        if key in _NOT_COPIED or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    return changed


def _new_rs_replicas(p: _Pass, current: int) -> int:
    """NewRSNewReplicas: how big the new ReplicaSet may be right now."""
    if p.recreate:
        return p.replicas
    total = sum(_replicas(rs) for rs in p.all_rs)
    max_total = p.replicas + p.max_surge
    if total >= max_total:
        return current
    return current + max(0, min(max_total - total, p.replicas - current))


def _sync_revision(p: _Pass, create: bool) -> None:
    """getAllReplicaSetsAndSyncRevision: update or (optionally) create the new ReplicaSet."""
    max_old = max((_revision(rs) for rs in p.old_rs), default=0)
    new_revision = max_old + 1
    rs = p.new_rs
    if rs is not None:
        changed = _copy_dep_annotations(p, rs)
        ann = _annotations(rs)
        current = _revision(rs)
        if current < new_revision:
            if REVISION in ann:
                history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h]
                ann[REVISION_HISTORY] = ",".join([*history, ann[REVISION]])
            ann[REVISION] = str(new_revision)
            changed = True
        if int((rs.get("spec") or {}).get("minReadySeconds") or 0) != p.min_ready:
            rs.setdefault("spec", {})["minReadySeconds"] = p.min_ready
            changed = True
        if changed:
            p.mark(rs)
        if p.has_deadline and p.condition("Progressing") is None:
            p.set_condition("Progressing", "True", "FoundNewReplicaSet", f'Found new replica set "{_name(rs)}"')
        return
    if not create:
        return

    spec = p.dep.get("spec") or {}
    template_hash = p.template_hash
    while f"{p.name}-{template_hash}" in p.all_names:
        p.collision_count = (p.collision_count or 0) + 1
        template_hash = pod_template_hash(spec.get("template") or {}, p.collision_count)
    p.template_hash = template_hash
    template = copy.deepcopy(spec.get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = template_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = template_hash
    rs_name = f"{p.name}-{template_hash}"
    new_rs: dict = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name,
            "namespace": p.namespace,
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": p.name,
                    "uid": uid_of(p.dep) or "",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": p.min_ready,
            "selector": selector,
            "template": template,
        },
    }
    _copy_dep_annotations(p, new_rs)
    ann = _annotations(new_rs)
    ann[REVISION] = str(new_revision)
    ann[DESIRED_REPLICAS] = str(p.replicas)
    ann[MAX_REPLICAS] = str(p.replicas + p.max_surge)
    new_rs["spec"]["replicas"] = _new_rs_replicas(p, 0)
    p.created = new_rs
    p.new_rs = new_rs
    p.rs_list.append(new_rs)
    if new_rs["spec"]["replicas"] > 0:
        p.events.append(
            (
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {rs_name} from 0 to {new_rs['spec']['replicas']}",
            )
        )
    if p.has_deadline:
        p.set_condition("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')


# --- scaling (sync) ----------------------------------------------------------------------


def _active(rss: list[dict]) -> list[dict]:
    return [rs for rs in rss if _replicas(rs) > 0]


def _is_scaling_event(p: _Pass) -> bool:
    for rs in _active(p.all_rs):
        desired = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
        if desired is not None and desired != str(p.replicas):
            return True
    return False


def _find_active_or_latest(p: _Pass) -> dict | None:
    if p.new_rs is None and not p.old_rs:
        return None
    active = _active(p.all_rs)
    if not active:
        return p.new_rs if p.new_rs is not None else p.old_rs[-1]
    if len(active) == 1:
        return active[0]
    return None


def _rs_fraction(p: _Pass, rs: dict) -> int:
    if p.replicas == 0:
        return -_replicas(rs)
    max_now = p.replicas + p.max_surge
    try:
        before = int(((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS, "0"))
    except ValueError:
        before = 0
    if before == 0:
        before = int(p.old_status.get("replicas") or 0)
        if before == 0:
            return 0
    return _round_half_away(_replicas(rs) * max_now / before) - _replicas(rs)


def _scale(p: _Pass) -> None:
    target = _find_active_or_latest(p)
    if target is not None:
        p.scale(target, p.replicas)
        return
    new = p.new_rs
    if (
        new is not None
        and _replicas(new) == p.replicas
        and _annotations(new).get(DESIRED_REPLICAS) == str(p.replicas)
        and p.available(new) >= p.replicas
    ):
        for rs in _active(p.old_rs):
            p.scale(rs, 0)
        return
    if p.recreate:
        return
    active = _active(p.all_rs)
    current = sum(_replicas(rs) for rs in active)
    allowed = p.replicas + p.max_surge if p.replicas > 0 else 0
    to_add = allowed - current
    if to_add == 0:
        for rs in active:
            p.scale(rs, _replicas(rs))
        return
    # largest first; ties: newer first when growing, older first when shrinking
    def order(rs: dict) -> tuple:
        age = p._age_key(rs)[0]
        return (-_replicas(rs), -age if to_add > 0 else age, _name(rs))

    active.sort(key=order)
    sizes: dict[str, int] = {}
    added = 0
    for rs in active:
        proportion = 0
        if _replicas(rs) > 0 and added != to_add:
            fraction = _rs_fraction(p, rs)
            allowed_left = to_add - added
            proportion = min(fraction, allowed_left) if to_add > 0 else max(fraction, allowed_left)
        sizes[_name(rs)] = _replicas(rs) + proportion
        added += proportion
    if active:
        first = _name(active[0])
        sizes[first] = max(0, sizes[first] + to_add - added)
    for rs in active:
        p.scale(rs, sizes[_name(rs)])


# --- rollout -----------------------------------------------------------------------------


def _reconcile_new(p: _Pass) -> bool:
    new = p.new_rs
    if new is None:
        return False
    if _replicas(new) == p.replicas:
        return False
    if _replicas(new) > p.replicas:
        return p.scale(new, p.replicas)
    return p.scale(new, _new_rs_replicas(p, _replicas(new)))


def _reconcile_old(p: _Pass) -> bool:
    olds = _active(p.old_rs)
    if sum(_replicas(rs) for rs in p.old_rs) == 0:
        return False
    all_count = sum(_replicas(rs) for rs in p.all_rs)
    min_available = p.replicas - p.max_unavailable
    new = p.new_rs
    new_unavailable = max(0, _replicas(new) - p.usable(new)) if new is not None else 0
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    scaled = 0
    # unhealthy replicas first, oldest ReplicaSet first
    for rs in olds:
        if scaled >= max_scaled_down:
            break
        unhealthy = _replicas(rs) - p.usable(rs)
        if unhealthy <= 0:
            continue
        step = min(max_scaled_down - scaled, unhealthy)
        p.scale(rs, _replicas(rs) - step)
        scaled += step
    # then available ones while staying above the floor
    available = sum(p.usable(rs) for rs in p.all_rs)
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in _active(p.old_rs):
            if done >= budget:
                break
            step = min(_replicas(rs), budget - done)
            p.scale(rs, _replicas(rs) - step)
            done += step
        scaled += done
    return scaled > 0


def _old_pods_running(p: _Pass) -> bool:
    for rs in p.old_rs:
        if _status_replicas(rs) > 0:
            return True
        uid = uid_of(rs)
        for pod in p.pods_by_rs.get(uid, []) if uid else []:
            if pod_phase(pod) not in ("Succeeded", "Failed"):
                return True
    return False


def _cleanup(p: _Pass) -> list[dict]:
    alive = [rs for rs in p.old_rs if not is_terminating(rs) and rs is not p.created]
    diff = len(alive) - max(0, p.history_limit)
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (_revision(rs), p._age_key(rs)))
    doomed = []
    for rs in alive[:diff]:
        meta = rs.get("metadata") or {}
        observed = (rs.get("status") or {}).get("observedGeneration", meta.get("generation", 0))
        if (
            _replicas(rs) != 0
            or _status_replicas(rs) != 0
            or meta.get("generation", 0) > observed
            or p.any_pods(rs)
        ):
            continue
        doomed.append(p.originals.get(_name(rs), rs))
    return doomed


# --- status ------------------------------------------------------------------------------


def _calculate_status(p: _Pass) -> dict:
    all_rs = p.all_rs
    available = sum(p.available(rs) for rs in all_rs)
    total = sum(_replicas(rs) for rs in all_rs)
    status: dict = {
        "observedGeneration": p.generation,
        "replicas": sum(_status_replicas(rs) for rs in all_rs),
        "updatedReplicas": _status_replicas(p.new_rs) if p.new_rs is not None else 0,
        "readyReplicas": sum(p.ready(rs) for rs in all_rs),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    if p.collision_count is not None:
        status["collisionCount"] = p.collision_count
    max_unavailable = 0 if p.recreate or p.replicas == 0 else min(p.max_unavailable, p.replicas)
    if available >= p.replicas - max_unavailable:
        p.set_condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        p.set_condition(
            "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
        )
    status["conditions"] = p.conditions
    return status


def _complete(p: _Pass, status: dict) -> bool:
    return (
        status["updatedReplicas"] == p.replicas
        and status["replicas"] == p.replicas
        and status["availableReplicas"] == p.replicas
        and status["observedGeneration"] >= p.generation
    )


def _progressing(p: _Pass, status: dict) -> bool:
    old = p.old_status
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = status["replicas"] - status["updatedReplicas"]
    return (
        status["updatedReplicas"] > int(old.get("updatedReplicas") or 0)
        or new_old < old_old
        or status["readyReplicas"] > int(old.get("readyReplicas") or 0)
        or status["availableReplicas"] > int(old.get("availableReplicas") or 0)
    )


def _timed_out(p: _Pass) -> bool:
    cond = p.condition("Progressing")
    if cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + timedelta(seconds=p.deadline) < p.now


def container_failure(pod: dict) -> str | None:
    """Why a pod counts as failing for rollout purposes (see the module docstring), or None."""
    st = pod.get("status") or {}
    for cs in [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]:
        name = cs.get("name", "")
        reason = (((cs.get("state") or {}).get("waiting")) or {}).get("reason")
        if reason in FAILING_WAIT_REASONS:
            return f"container {name} is waiting: {reason}"
        restarts = int(cs.get("restartCount") or 0)
        if restarts >= CRASH_LOOP_RESTARTS:
            return f"container {name} has restarted {restarts} times"
    return None


def _new_rs_failure(p: _Pass) -> str | None:
    if p.new_rs is None:
        return None
    for pod in sorted(p._pods(p.new_rs), key=_name):
        why = container_failure(pod)
        if why:
            return f'pod "{_name(pod)}": {why}'
    return None


def _rolled_back_template_current(p: _Pass) -> bool:
    """The template is still the one an automatic rollback restored."""
    mark = p.dep_annotations.get(ROLLED_BACK_HASH)
    template = (p.dep.get("spec") or {}).get("template") or {}
    return bool(mark) and mark == pod_template_hash(template)


def _rollout_status(p: _Pass) -> dict:
    """syncRolloutStatus: status plus the Progressing condition."""
    status = _calculate_status(p)
    if not p.has_deadline:
        p.conditions[:] = [c for c in p.conditions if c.get("type") != "Progressing"]
        return status
    current = p.condition("Progressing")
    rs_name = _name(p.new_rs) if p.new_rs is not None else ""
    if current is not None and current.get("reason") == ROLLED_BACK and _rolled_back_template_current(p):
        return status  # the rollback stays visible until the template changes
    already_complete = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == "NewReplicaSetAvailable"
    )
    if already_complete:
        return status
    was_failed = current is not None and current.get("reason") in (DEADLINE_EXCEEDED, NEW_RS_FAILING)
    failing = None if _complete(p, status) else _new_rs_failure(p)
    if _complete(p, status):
        p.set_condition(
            "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.'
        )
    elif failing:
        message = f'ReplicaSet "{rs_name}" is failing: {failing}'
        p.set_condition("Progressing", "False", NEW_RS_FAILING, message)
        p.failure = (NEW_RS_FAILING, failing)
    elif _progressing(p, status):
        msg = f'ReplicaSet "{rs_name}" is progressing.' if rs_name else f'Deployment "{p.name}" is progressing.'
        cond = {
            "type": "Progressing",
            "status": "True",
            "reason": "ReplicaSetUpdated",
            "message": msg,
            "lastUpdateTime": p.stamp,
            "lastTransitionTime": p.stamp,
        }
        if current is not None and current.get("status") == "True":
            cond["lastTransitionTime"] = current.get("lastTransitionTime") or p.stamp
        index = next((i for i, c in enumerate(p.conditions) if c.get("type") == "Progressing"), None)
        if index is None:
            p.conditions.append(cond)
        else:
            p.conditions[index] = cond
    elif _timed_out(p):
        was = current.get("reason") if current else None
        p.set_condition(
            "Progressing", "False", DEADLINE_EXCEEDED, f'ReplicaSet "{rs_name}" has timed out progressing.'
        )
        if was != DEADLINE_EXCEEDED:
            p.events.append(
                ("Warning", DEADLINE_EXCEEDED, f'Deployment "{p.name}" exceeded its progress deadline')
            )
        p.failure = (DEADLINE_EXCEEDED, "progress deadline exceeded")
    if p.failure is not None and not was_failed:
        revision = _revision(p.new_rs) if p.new_rs is not None else 0
        p.events.append(
            ("Warning", "RolloutFailed",
             f'Rollout of deployment "{p.name}" to revision {revision} failed: {p.failure[1]}')
        )
    return status


# --- automatic rollback ------------------------------------------------------------------


def auto_rollback_enabled(dep: dict) -> bool:
    value = ((dep.get("metadata") or {}).get("annotations") or {}).get(AUTO_ROLLBACK, "")
    return str(value).strip().lower() != "false"


def _last_good_rs(p: _Pass) -> dict | None:
    try:
        good = int(p.dep_annotations.get(LAST_GOOD_REVISION, ""))
    except ValueError:
        return None
    for rs in p.old_rs:
        if _revision(rs) == good and not is_terminating(rs):
            return rs
    return None


def _plan_rollback(p: _Pass) -> Rollback | None:
    """The rollback decision for a failed rollout (None: leave it failed)."""
    if p.failure is None or p.paused or not auto_rollback_enabled(p.dep):
        return None
    if _rolled_back_template_current(p):
        return None
    good = _last_good_rs(p)
    if good is None:
        return None
    template = copy.deepcopy((good.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    to_revision = _revision(good)
    from_revision = _revision(p.new_rs) if p.new_rs is not None else 0
    reason, why = p.failure
    message = f"Rolled back from revision {from_revision} to revision {to_revision}: {why}"
    p.set_condition("Progressing", "False", ROLLED_BACK, message)
    p.events.append(
        ("Normal", "DeploymentRollback", f'Rolled back deployment "{p.name}" to revision {to_revision}')
    )
    cause = ((good.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
    return Rollback(template, to_revision, from_revision, reason, message, cause)


def _paused_conditions(p: _Pass) -> None:
    if not p.has_deadline:
        return
    cond = p.condition("Progressing")
    if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
        return
    paused_now = cond is not None and cond.get("reason") == "DeploymentPaused"
    if p.paused and not paused_now:
        p.set_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
    elif not p.paused and paused_now:
        p.set_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")


# --- entry point -------------------------------------------------------------------------


def plan_deployment(dep: dict, replicasets: list[dict], pods: list[dict], now: datetime) -> DeploymentPlan:
    p = _Pass(dep, replicasets, pods, now)
    delete: list[dict] = []
    if is_terminating(dep):
        status = _calculate_status(p)
    else:
        _paused_conditions(p)
        _sync_revision(p, create=False)
        if p.paused or _is_scaling_event(p):
            _scale(p)
            if p.paused:
                delete = _cleanup(p)
            status = _calculate_status(p)
        elif p.recreate:
            status, delete = _rollout_recreate(p)
        else:
            status, delete = _rollout_rolling(p)
    return _finish(p, status, delete)


def _rollout_rolling(p: _Pass) -> tuple[dict, list[dict]]:
    _sync_revision(p, create=True)
    if _reconcile_new(p) or _reconcile_old(p):
        return _rollout_status(p), []
    status = _rollout_status(p)
    return status, _cleanup(p) if _complete(p, status) else []


def _rollout_recreate(p: _Pass) -> tuple[dict, list[dict]]:
    scaled = False
    for rs in _active(p.old_rs):
        scaled = p.scale(rs, 0) or scaled
    if scaled or _old_pods_running(p):
        return _rollout_status(p), []
    if p.new_rs is None:
        _sync_revision(p, create=True)
    if p.new_rs is not None:
        p.scale(p.new_rs, p.replicas)
    status = _rollout_status(p)
    return status, _cleanup(p) if _complete(p, status) else []


def _finish(p: _Pass, status: dict, delete: list[dict]) -> DeploymentPlan:
    rollback = None if is_terminating(p.dep) else _plan_rollback(p)
    if rollback is not None:
        status["conditions"] = p.conditions
        marks: dict[str, str | None] = {
            ROLLED_BACK_FROM: str(rollback.from_revision),
            ROLLED_BACK_TO: str(rollback.to_revision),
            ROLLED_BACK_HASH: pod_template_hash(rollback.template),
            # the change-cause follows the template, as with `kubectl rollout undo`
            CHANGE_CAUSE: rollback.change_cause,
        }
        # the Deployment's spec changes: this pass touches no ReplicaSet
        return DeploymentPlan(status=status, events=p.events, deployment_annotations=marks, rollback=rollback)
    updates = [rs for rs in p.rs_list if _name(rs) in p.dirty and rs is not p.created]
    doomed = {_name(rs) for rs in delete}
    updates = [rs for rs in updates if _name(rs) not in doomed]
    want: dict[str, str | None] = {}
    if p.new_rs is not None:
        revision = _annotations(p.new_rs).get(REVISION)
        if revision:
            want[REVISION] = revision
            if p.replicas > 0 and _complete(p, status) and not is_terminating(p.dep):
                want[LAST_GOOD_REVISION] = revision
    if not _rolled_back_template_current(p):
        want.update({key: None for key in _ROLLBACK_MARKS})
    dep_ann = {k: v for k, v in want.items() if p.dep_annotations.get(k) != v}
    return DeploymentPlan(
        create_rs=p.created,
        update_rs=updates,
        delete_rs=delete,
        status=status,
        events=p.events,
        deployment_annotations=dep_ann or None,
    )


__all__ = [
    "DeploymentPlan",
    "Rollback",
    "auto_rollback_enabled",
    "container_failure",
    "plan_deployment",
    "pod_template_hash",
    "resolve_int_or_percent",
]
