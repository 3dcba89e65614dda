"""Small, pure helpers over pod (and owned-object) dicts shared by the controllers, the
scheduler and the API.

Everything here reads Kubernetes-shaped JSON dicts and never mutates them. Time is always
passed in by the caller (`now`), so the helpers stay deterministic and testable; timestamps in
objects are RFC 3339 strings ("2024-05-01T12:00:00Z") and are parsed leniently (a missing or
malformed timestamp is treated as "unknown", never as an error).

Definitions follow the Kubernetes controller utilities:

* ready      -- the pod's `Ready` condition has status "True".
* active     -- not terminating (no `metadata.deletionTimestamp`) and phase not Succeeded/Failed.
* available  -- ready for at least `min_ready_seconds`, measured from the Ready condition's
                `lastTransitionTime`.
* controller -- the single ownerReference with `controller: true`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from . import Obj
from .timefmt import as_utc, parse_time, rfc3339

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

# How Kubernetes serialises metav1.Time (second precision, "Z").
format_time = rfc3339


def get_condition(obj: Obj, cond_type: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            found: Obj = cond
            return found
    return None


def is_pod_ready(pod: Obj) -> bool:
    cond = get_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def pod_phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_active(pod: Obj) -> bool:
    return not is_terminating(pod) and pod_phase(pod) not in TERMINAL_PHASES


def is_available(pod: Obj, min_ready_seconds: int | float, now: datetime) -> bool:
    """Ready, and (when min_ready_seconds > 0) Ready since at least that long before `now`."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds or min_ready_seconds <= 0:
        return True
    since = parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    if since is None:
        return False
    return since + timedelta(seconds=float(min_ready_seconds)) <= as_utc(now)


def ready_since(pod: Obj) -> datetime | None:
    """When the pod last became Ready (None if not ready or unknown)."""
    if not is_pod_ready(pod):
        return None
    return parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))


def restart_count(pod: Obj) -> int:
    """Highest restart count among the pod's containers (what Kubernetes ranks by)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference marked `controller: true`, or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            found: Obj = ref
            return found
    return None


def uid_of(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("uid")


def owned_by(obj: Obj, owner: Obj) -> bool:
    """True when `obj`'s controller reference points at `owner` (by uid)."""
    ref = controller_ref(obj)
    owner_uid = uid_of(owner)
    return ref is not None and owner_uid is not None and ref.get("uid") == owner_uid


def creation_time(obj: Obj) -> datetime | None:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
