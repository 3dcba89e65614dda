"""Pure computation of a pod's ``status`` from what the runtime observed.

``compute_pod_status(pod, observed, now, backoff, ...)`` returns the full new status dict,
built on top of the pod's current status so that fields other writers own (the scheduler's
``PodScheduled`` condition, ``qosClass`` from admission, …) survive. The executor compares
the result with the current status and writes it only when something changed, so every
value here must be stable between calls: times are whole-second RFC 3339 strings derived
from container timestamps, and a condition keeps its ``lastTransitionTime`` while its
``status`` stays the same.

Phase rules follow kubelet's ``getPhase``: pending initialization or any container waiting
for its first start → Pending; something running → Running; everything stopped → Running
(Always, or OnFailure with a failure to restart), Succeeded (all exited 0) or Failed
(Never with a failure). A terminal phase never changes again.

Waiting reasons: ``ContainerCreating``, ``PodInitializing`` (app containers behind init
containers), ``CrashLoopBackOff`` (an exited container held back by the restart back-off),
and the start errors the executor recorded (``ErrImagePull`` on the attempt itself, then
``ImagePullBackOff`` while backing off; ``ErrImageNeverPull``; ``CreateContainerError``).
Readiness and ``started`` come from the probes (``health``, per container id, see
``agent.probes``): a running container is started once its startup probe passed and ready
while its readiness probe passes (no probes: both as soon as it runs). ``notes`` (per
container id) adds a message to a terminated state, e.g. why the agent killed it
("Container c failed liveness probe, will be restarted"); the reason stays what the exit
says (``Error``/137, ``OOMKilled``), as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.objects.timefmt import rfc3339

from .backoff import Backoff
from .pods import (
    TERMINAL_PHASES,
    Health,
    ObservedContainer,
    ObservedPod,
    app_specs,
    backoff_key,
    init_progress,
    init_specs,
    pod_is_done,
    pod_uid,
    restart_policy,
    restart_remaining,
    should_restart,
)

OWN_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class StartError:
    """Why the last attempt to start a container failed (recorded by the executor)."""

    reason: str  # ErrImagePull | ErrImageNeverPull | CreateContainerError | RunContainerError
    message: str
    at: float


def container_id(c: ObservedContainer) -> str:
    return f"docker://{c.id}"


def terminated_state(c: ObservedContainer, note: str = "") -> dict[str, Any]:
    if c.failed_start:
        reason = "ContainerCannotRun"
    elif c.oom_killed:
        reason = "OOMKilled"
    elif c.exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    exit_code = c.exit_code if c.exit_code is not None else (128 if c.failed_start else 0)
    t: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "containerID": container_id(c)}
    if c.error:
        t["message"] = c.error
    elif note:
        t["message"] = note
    if c.started_at:
        t["startedAt"] = rfc3339(c.started_at)
    if c.finished_at:
        t["finishedAt"] = rfc3339(c.finished_at)
    return {"terminated": t}


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    w = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def _error_waiting(
    err: StartError, image: str, remaining: float, now: float
) -> dict[str, Any]:
    if err.reason == "ErrImagePull" and err.at < now and remaining > 0:
        return _waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
    return _waiting(err.reason, err.message)


def container_status(
    pod: dict[str, Any],
    spec: dict[str, Any],
    observed: ObservedPod,
    now: float,
    backoff: Backoff,
    start_errors: Mapping[str, StartError],
    *,
    init: bool,
    waiting_reason: str,
    done: bool,
    health: Mapping[str, Health] | None = None,
    notes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    health = health or {}
    notes = notes or {}

    def term(c: ObservedContainer) -> dict[str, Any]:
        return terminated_state(c, notes.get(c.id, ""))

    name = spec["name"]
    uid = pod_uid(pod)
    image = str(spec.get("image", ""))
    policy = restart_policy(pod)
    if init and policy == "Always":
        policy = "OnFailure"
    latest = observed.latest(name)
    prev = observed.previous(name)
    err = start_errors.get(name)
    remaining = restart_remaining(backoff, uid, name, latest, now)

    cs: dict[str, Any] = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": latest.restart_count if latest else 0,
        "state": {},
        "lastState": {},
    }
    if latest is not None:
        cs["containerID"] = container_id(latest)
        cs["imageID"] = f"docker://{latest.image_id}" if latest.image_id else ""

    if latest is None:
        cs["state"] = _error_waiting(err, image, remaining, now) if err else _waiting(waiting_reason)
    elif latest.running:
        cs["state"] = {"running": {"startedAt": rfc3339(latest.started_at or latest.created_at)}}
        h = health.get(latest.id, Health())
        cs["ready"] = not init and h.ready and h.started
        cs["started"] = h.started
        if prev is not None and prev.exited:
            cs["lastState"] = term(prev)
    elif latest.exited:
        if should_restart(policy, latest) and not done:
            if err is not None and err.at >= (latest.finished_at or 0):
                cs["state"] = _error_waiting(err, image, remaining, now)
                cs["lastState"] = term(latest)
            elif remaining > 0:
                delay = int(round(backoff.delay(backoff_key(uid, name))))
                meta = pod.get("metadata", {})
                cs["state"] = _waiting(
                    "CrashLoopBackOff",
                    f"back-off {delay}s restarting failed container={name} "
                    f"pod={meta.get('name')}_{meta.get('namespace')}({uid})",
                )
                cs["lastState"] = term(latest)
            else:
                cs["state"] = term(latest)
        else:
            cs["state"] = term(latest)
            if prev is not None and prev.exited:
                cs["lastState"] = term(prev)
        if init and latest.succeeded:
            cs["ready"] = True
    else:
        cs["state"] = _waiting("ContainerCreating")
    return cs


def compute_phase(
    pod: dict[str, Any], init_statuses: list[dict[str, Any]], statuses: list[dict[str, Any]]
) -> str:
    old = pod.get("status", {}).get("phase")
    if old in TERMINAL_PHASES:
        return str(old)
    policy = restart_policy(pod)
    pending_init = failed_init = 0
    for cs in init_statuses:
        st, last = cs["state"], cs.get("lastState") or {}
        if "terminated" in st:
            if st["terminated"]["exitCode"] != 0:
                failed_init += 1
        elif "waiting" in st and "terminated" in last:
            if last["terminated"]["exitCode"] != 0:
                failed_init += 1
        else:
            pending_init += 1
    if failed_init and policy == "Never":
        return "Failed"
    running = waiting = stopped = succeeded = 0
    for cs in statuses:
        st, last = cs["state"], cs.get("lastState") or {}
        if "running" in st:
            running += 1
        elif "terminated" in st:
            stopped += 1
            if st["terminated"]["exitCode"] == 0:
                succeeded += 1
        elif "terminated" in last:
            stopped += 1
        else:
            waiting += 1
    if pending_init or failed_init or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    old: Mapping[str | None, dict[str, Any]], ctype: str, ok: bool, now: float, reason: str = "", message: str = ""
) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = old.get(ctype)
    ltt = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: dict[str, Any] = {"type": ctype, "status": status, "lastProbeTime": None}
    cond["lastTransitionTime"] = ltt or rfc3339(now)
    if not ok and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def compute_pod_status(
    pod: dict[str, Any],
    observed: ObservedPod,
    now: float,
    backoff: Backoff,
    *,
    host_ip: str = "",
    start_errors: Mapping[str, StartError] | None = None,
    health: Mapping[str, Health] | None = None,
    notes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    errors = start_errors or {}
    old_status: dict[str, Any] = dict(pod.get("status") or {})
    done = pod_is_done(pod, observed)
    inits, apps = init_specs(pod), app_specs(pod)
    init_idx, _ = init_progress(pod, observed)
    initialized = init_idx >= len(inits)

    init_statuses = [
        container_status(
            pod, s, observed, now, backoff, errors, init=True, waiting_reason="PodInitializing", done=done,
            health=health, notes=notes,
        )
        for s in inits
    ]
    app_waiting = "ContainerCreating" if initialized else "PodInitializing"
    statuses = [
        container_status(
            pod, s, observed, now, backoff, errors, init=False, waiting_reason=app_waiting, done=done,
            health=health, notes=notes,
        )
        for s in apps
    ]
    phase = compute_phase(pod, init_statuses, statuses)

    old_conds: dict[str | None, dict[str, Any]] = {
        c.get("type"): c for c in old_status.get("conditions") or [] if isinstance(c, dict)
    }
    unready = [cs["name"] for cs in statuses if not cs["ready"]]
    incomplete = [cs["name"] for cs in init_statuses if not cs["ready"]]
    completed = phase in TERMINAL_PHASES
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_msg = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
    conds = [
        _condition(
            old_conds,
            "Initialized",
            initialized or (completed and not incomplete),
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        _condition(old_conds, "Ready", not unready and not completed, now, ready_reason, ready_msg),
        _condition(old_conds, "ContainersReady", not unready and not completed, now, ready_reason, ready_msg),
    ]
    if "PodScheduled" in old_conds:
        conds.append(old_conds["PodScheduled"])
    else:
        conds.append(_condition(old_conds, "PodScheduled", True, now))
    conds += [c for t, c in old_conds.items() if t not in OWN_CONDITIONS]

    status = old_status
    status["phase"] = phase
    status["conditions"] = conds
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    pod_ip = observed.pod_ip or old_status.get("podIP") or ""
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    status["startTime"] = old_status.get("startTime") or rfc3339(now)
    if inits:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    return status
