"""Pure planning of what to do with one pod: desired pod spec vs observed containers.

This follows kubelet's ``computePodActions``. Inputs are the pod object (a dict as served
by the API), an :class:`ObservedPod` (what the runtime saw, rebuilt from container labels:
the agent keeps no local database), the current time and the restart :class:`Backoff`
(read only here). The output is a list of small action dataclasses that the executor in
``agent.main`` carries out in order. Nothing here does I/O, so every rule is unit-tested
with plain tables.

Rules, in order:

* ``metadata.deletionTimestamp`` set → ``KillPod`` with the pod's grace period; the
  executor stops and removes everything, then finalizes the deletion.
* Containers whose name is not in the spec → kill (if running) and remove.
* Pod already finished (terminal ``status.phase``, or every container exited and the
  restart policy restarts none of them) → no new containers; stop the sandbox.
* No running sandbox → kill whatever still runs, ``CreateSandbox`` with the next attempt
  number, then start the first init container (or every app container that should run).
  With ``restartPolicy: Never`` a pod whose sandbox died after it started is not revived.
* Init containers run one at a time, in order, to successful completion inside the
  current sandbox before any app container starts; a failed init container is restarted
  (with back-off) unless the policy is ``Never``, which fails the pod.
* App container missing → start it (unless a recent failed start is backing off);
  running with a different spec hash → kill it and start a new attempt (the hash covers
  the container's spec alone: what the executor resolves at start, such as the Service
  variables of ``agent.serviceenv`` or ConfigMap values, is outside it, so a Service that
  appears later or an agent restart replaces nothing, as with kubelet); exited →
  restart per ``restartPolicy`` (Always / OnFailure / Never), held back by the back-off
  (the status then says ``CrashLoopBackOff``).
* Garbage: per container name keep the two newest attempts (the newest gives ``state``,
  the one before gives ``lastState``), remove older exited ones; keep only the newest
  sandbox.

* Probes: ``health`` (per container id, from ``agent.probes``) marks a running
  container whose liveness or startup probe reached its failure threshold. It is killed
  (grace: the probe's ``terminationGracePeriodSeconds``, else the pod's) and, when the
  restart policy restarts it and the back-off allows, started again in the same pass
  (the restart counts in the back-off); otherwise the next passes restart it like any
  exited container.

Not handled yet: sidecar init containers (``restartPolicy: Always`` on an init container),
ephemeral containers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .backoff import Backoff

SANDBOX_NAME = "POD"
DEFAULT_GRACE = 30
TERMINAL_PHASES = ("Succeeded", "Failed")


# -- observed state -------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedContainer:
    """One container as seen by the runtime, decoded from its labels and inspect data."""

    id: str
    name: str  # the spec container name, or SANDBOX_NAME
    pod_uid: str
    pod_name: str = ""
    pod_namespace: str = ""
    hash: str = ""
    restart_count: int = 0
    state: str = "running"  # running | exited | created | paused | restarting | dead | removing
    exit_code: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False
    error: str = ""
    image: str = ""
    image_id: str = ""
    ip: str = ""  # sandboxes only: the pod IP on the pod network

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "restarting")

    @property
    def exited(self) -> bool:
        """Finished (or never managed to start): it will not run again."""
        return self.state in ("exited", "dead") or (self.state == "created" and self.failed_start)

    @property
    def failed_start(self) -> bool:
        return self.state == "created" and (bool(self.error) or (self.exit_code or 0) != 0)

    @property
    def succeeded(self) -> bool:
        return self.exited and self.exit_code == 0 and not self.failed_start

    @property
    def ran_for(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass
class ObservedPod:
    uid: str
    sandboxes: list[ObservedContainer] = field(default_factory=list)
    containers: list[ObservedContainer] = field(default_factory=list)

    @classmethod
    def from_containers(cls, uid: str, items: list[ObservedContainer]) -> ObservedPod:
        pod = cls(uid)
        for c in items:
            (pod.sandboxes if c.name == SANDBOX_NAME else pod.containers).append(c)
        return pod

    def all(self) -> list[ObservedContainer]:
        return [*self.containers, *self.sandboxes]

    def sandbox(self) -> ObservedContainer | None:
        """The newest sandbox attempt."""
        return _newest(self.sandboxes)

    def attempts(self, name: str) -> list[ObservedContainer]:
        """All attempts of container `name`, newest first."""
        return sorted(
            (c for c in self.containers if c.name == name),
            key=lambda c: (c.restart_count, c.created_at),
            reverse=True,
        )

    def latest(self, name: str) -> ObservedContainer | None:
        a = self.attempts(name)
        return a[0] if a else None

    def previous(self, name: str) -> ObservedContainer | None:
        a = self.attempts(name)
        return a[1] if len(a) > 1 else None

    @property
    def pod_ip(self) -> str:
        sb = self.sandbox()
        return sb.ip if sb is not None and sb.running else ""


def _newest(items: list[ObservedContainer]) -> ObservedContainer | None:
    return max(items, key=lambda c: (c.restart_count, c.created_at), default=None)


@dataclass(frozen=True)
class Health:
    """What the probes say about one running container."""

    started: bool = True  # startup probe passed (or none)
    ready: bool = True  # readiness probe passes (or none), and started
    failed: str = ""  # "liveness" | "startup" when that probe reached its failure threshold
    message: str = ""


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateSandbox:
    attempt: int


@dataclass(frozen=True)
class StartContainer:
    name: str
    restart_count: int
    init: bool = False
    # Record this start in the back-off (a restart after an exit; not a first start or a
    # restart caused by a spec change), with how long the previous attempt ran.
    count_backoff: bool = False
    ran_for: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class KillContainer:
    id: str
    name: str
    reason: str
    grace: int = DEFAULT_GRACE


@dataclass(frozen=True)
class RemoveContainer:
    id: str
    name: str = ""


@dataclass(frozen=True)
class KillPod:
    grace: int
    reason: str = "Deleted"


Action = CreateSandbox | StartContainer | KillContainer | RemoveContainer | KillPod


# -- helpers shared with agent.status -------------------------------------------------------


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("uid", ""))


def backoff_key(uid: str, name: str) -> str:
    return f"{uid}/{name}"


def restart_policy(pod: dict[str, Any]) -> str:
    return str(pod.get("spec", {}).get("restartPolicy") or "Always")


def grace_period(pod: dict[str, Any]) -> int:
    meta = pod.get("metadata", {})
    g = meta.get("deletionGracePeriodSeconds")
    if g is None:
        g = pod.get("spec", {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE if g is None else max(0, int(g))


def container_hash(spec: dict[str, Any]) -> str:
    """Stable hash of a container spec; a change means "replace the container"."""
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def init_specs(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("spec", {}).get("initContainers") or [])


def app_specs(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("spec", {}).get("containers") or [])


def should_restart(policy: str, c: ObservedContainer) -> bool:
    """Would `restartPolicy` restart this (exited) container?"""
    if not c.exited:
        return False
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return not c.succeeded
    return False


def restart_remaining(backoff: Backoff, uid: str, name: str, latest: ObservedContainer | None, now: float) -> float:
    """Seconds the next start of container `name` is held back."""
    since = latest.finished_at if latest is not None and latest.exited else None
    return backoff.remaining(backoff_key(uid, name), now, since)


def in_current_sandbox(c: ObservedContainer, sandbox: ObservedContainer | None) -> bool:
    return sandbox is None or c.created_at >= sandbox.created_at


def init_progress(pod: dict[str, Any], observed: ObservedPod) -> tuple[int, bool]:
    """(index of the first init container not yet succeeded in the current sandbox, failed?).

    The index equals ``len(initContainers)`` when all succeeded; ``failed`` is true when that
    container's newest attempt exited unsuccessfully.
    """
    sandbox = observed.sandbox()
    for i, spec in enumerate(init_specs(pod)):
        latest = observed.latest(spec["name"])
        if latest is None or not in_current_sandbox(latest, sandbox):
            return i, False
        if latest.succeeded:
            continue
        return i, latest.exited
    return len(init_specs(pod)), False


def pod_is_done(pod: dict[str, Any], observed: ObservedPod) -> bool:
    """True when no container of the pod will ever run again."""
    if pod.get("status", {}).get("phase") in TERMINAL_PHASES:
        return True
    policy = restart_policy(pod)
    if policy == "Always":
        return False
    idx, failed = init_progress(pod, observed)
    if failed and policy == "Never":
        return True
    if idx < len(init_specs(pod)):
        return False
    specs = app_specs(pod)
    if not specs:
        return False
    for spec in specs:
        latest = observed.latest(spec["name"])
        if latest is None or not latest.exited or should_restart(policy, latest):
            return False
    return True


# -- the planner ----------------------------------------------------------------------------


def compute_pod_actions(
    pod: dict[str, Any],
    observed: ObservedPod,
    now: float,
    backoff: Backoff,
    health: Mapping[str, Health] | None = None,
) -> list[Action]:
    uid = pod_uid(pod)
    health = health or {}
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return [KillPod(grace_period(pod), "Deleted")]

    grace = grace_period(pod)
    policy = restart_policy(pod)
    inits = init_specs(pod)
    apps = app_specs(pod)
    wanted = {s["name"] for s in inits} | {s["name"] for s in apps}
    actions: list[Action] = []

    # Containers that are no longer in the spec.
    for c in observed.containers:
        if c.name not in wanted:
            if c.running:
                actions.append(KillContainer(c.id, c.name, "NotInSpec", grace))
            actions.append(RemoveContainer(c.id, c.name))
    current = [c for c in observed.containers if c.name in wanted]

    sandbox = observed.sandbox()

    if pod_is_done(pod, observed):
        for c in current:
            if c.running:
                actions.append(KillContainer(c.id, c.name, "PodCompleted", grace))
        if sandbox is not None and sandbox.running:
            actions.append(KillContainer(sandbox.id, SANDBOX_NAME, "PodCompleted", grace))
        return actions + _garbage(observed, wanted)

    if sandbox is None or not sandbox.running:
        attempt = 0 if sandbox is None else sandbox.restart_count + 1
        for c in current:
            if c.running:
                actions.append(KillContainer(c.id, c.name, "SandboxChanged", grace))
        if policy == "Never" and attempt != 0 and current:
            # The pod ran once in a sandbox that is now gone; Never means it stays down.
            return actions + _garbage(observed, wanted)
        starts: list[Action] = []
        if inits:
            first = inits[0]["name"]
            starts.append(_start(uid, first, observed.latest(first), init=True, count=False))
        else:
            for spec in apps:
                latest = observed.latest(spec["name"])
                if latest is not None and policy == "OnFailure" and latest.succeeded:
                    continue
                if restart_remaining(backoff, uid, spec["name"], latest, now) > 0:
                    continue
                starts.append(_start(uid, spec["name"], latest, init=False))
        actions.append(CreateSandbox(attempt))
        return actions + starts + _garbage(observed, wanted)

    # Init containers, one at a time.
    idx, failed = init_progress(pod, observed)
    if idx < len(inits):
        spec = inits[idx]
        latest = observed.latest(spec["name"])
        fresh = latest if latest is not None and in_current_sandbox(latest, sandbox) else None
        if fresh is not None and fresh.running:
            pass  # wait for it
        elif fresh is not None and failed:
            if policy != "Never" and restart_remaining(backoff, uid, spec["name"], fresh, now) <= 0:
                actions.append(_start(uid, spec["name"], fresh, init=True))
        elif fresh is None or fresh.state == "created":
            if restart_remaining(backoff, uid, spec["name"], latest, now) <= 0:
                actions.append(_start(uid, spec["name"], latest, init=True, count=False))
        return actions + _garbage(observed, wanted)

    # App containers.
    for spec in apps:
        name = spec["name"]
        latest = observed.latest(name)
        if latest is None:
            if restart_remaining(backoff, uid, name, None, now) <= 0:
                actions.append(_start(uid, name, None, init=False))
            continue
        if latest.running:
            if latest.hash and latest.hash != container_hash(spec):
                actions.append(KillContainer(latest.id, name, "SpecChanged", grace))
                actions.append(
                    StartContainer(name, latest.restart_count + 1, reason="SpecChanged")
                )
                continue
            h = health.get(latest.id)
            if h is not None and h.failed:
                probe = spec.get("startupProbe" if h.failed == "startup" else "livenessProbe") or {}
                pgrace = probe.get("terminationGracePeriodSeconds")
                reason = "StartupProbeFailed" if h.failed == "startup" else "LivenessProbeFailed"
                actions.append(KillContainer(latest.id, name, reason, grace if pgrace is None else int(pgrace)))
                # The killed container exits non-zero: Always and OnFailure restart it.
                if policy != "Never" and restart_remaining(backoff, uid, name, None, now) <= 0:
                    started = latest.started_at or latest.created_at
                    actions.append(
                        StartContainer(
                            name,
                            latest.restart_count + 1,
                            count_backoff=True,
                            ran_for=max(0.0, now - started),
                            reason=reason,
                        )
                    )
            continue
        if latest.state == "created" and not latest.failed_start:
            # Created but never started (the agent stopped in between): replace it.
            actions.append(RemoveContainer(latest.id, name))
            actions.append(StartContainer(name, latest.restart_count + 1, reason="NeverStarted"))
            continue
        if should_restart(policy, latest):
            if restart_remaining(backoff, uid, name, latest, now) <= 0:
                actions.append(_start(uid, name, latest, init=False))
    return actions + _garbage(observed, wanted)


def _start(
    uid: str, name: str, latest: ObservedContainer | None, init: bool, count: bool = True
) -> StartContainer:
    if latest is None:
        return StartContainer(name, 0, init=init, reason="Created")
    return StartContainer(
        name,
        latest.restart_count + 1,
        init=init,
        count_backoff=count and latest.exited,
        ran_for=latest.ran_for,
        reason="Restart" if latest.exited else "Replace",
    )


def _garbage(observed: ObservedPod, wanted: set[str]) -> list[Action]:
    """Remove attempts nobody needs: all but the newest two per name, old sandboxes."""
    out: list[Action] = []
    for name in sorted(wanted):
        for c in observed.attempts(name)[2:]:
            if not c.running:
                out.append(RemoveContainer(c.id, name))
    newest = observed.sandbox()
    for sb in observed.sandboxes:
        if newest is not None and sb.id != newest.id and not sb.running:
            out.append(RemoveContainer(sb.id, SANDBOX_NAME))
    return out
