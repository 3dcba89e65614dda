"""Pod (v1): the pod spec (shared with workload templates, `podspec`), status phase and
restart counts, the pod update restriction, one-shot `spec.nodeName`; a pod bound to a node
is deleted gracefully (its node's agent stops the containers, then finishes the delete).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, enum, forbidden, invalid, nonnegative, show
from ..jsonfields import child, dict_of, dicts_of, list_of, set_default
from ..podspec import pod_spec_defaults, qos_class, validate_pod_spec
from ..printers import (
    AGE,
    NAME,
    NONE,
    Cell,
    Column,
    Printer,
    created,
    name_of,
    pod_ready,
    pod_restarts,
    pod_status,
    readiness_gates,
    spec_of,
    status_of,
)
from ..schema import (
    ANY,
    BOOLEAN,
    CONDITION,
    INT32,
    INT64,
    OPAQUE_OBJECT,
    POD_SPEC,
    RESOURCE_LIST,
    STRING,
    TOP_LEVEL,
    ListOf,
    struct,
)
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is not None:
        pod_spec_defaults(spec)
    status = child(obj, "status")
    if status is not None:
        set_default(status, "phase", "Pending")
        if spec is not None:
            set_default(status, "qosClass", qos_class(spec))


POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def validate(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_pod_spec(obj.get("spec"), "spec")
    status = dict_of(obj.get("status"))
    enum(errs, status, "phase", "status", POD_PHASES)
    for group in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for i, cs in enumerate(dicts_of(status.get(group))):
            nonnegative(errs, cs, "restartCount", f"status.{group}[{i}]")
    return errs


POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
    "(only additions to existing tolerations), `spec.nodeName` (only from unset)"
)


def _diff_paths(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff_paths(a.get(key), b.get(key), f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff_paths(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(path)


def validate_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    new_spec = copy.deepcopy(dict_of(new.get("spec")))
    old_spec = dict_of(old.get("spec"))

    old_node, new_node = old_spec.get("nodeName"), new_spec.get("nodeName")
    if old_node and new_node != old_node:
        errs.append(
            invalid(
                "spec.nodeName",
                new_node or "",
                f'field is immutable once set: pod is bound to node "{old_node}"',
            )
        )
    new_spec.pop("nodeName", None)

    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if old_deadline is not None:
        if new_deadline is None:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
                )
            )
        elif new_deadline > old_deadline:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value"
                )
            )
    new_spec.pop("activeDeadlineSeconds", None)

    old_tolerations = list_of(old_spec.get("tolerations"))
    new_tolerations = list_of(new_spec.get("tolerations"))
    missing = [t for t in old_tolerations if t not in new_tolerations]
    if missing:
        errs.append(
            forbidden(
                "spec.tolerations", f"existing toleration {show(missing[0])} must not be removed or changed"
            )
        )
    new_spec.pop("tolerations", None)

    for group in ("containers", "initContainers"):
        new_list, old_list = list_of(new_spec.get(group)), list_of(old_spec.get(group))
        if len(new_list) == len(old_list):
            for nc, oc in zip(new_list, old_list, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict):
                    # images may change (an empty image is reported by the spec rules)
                    if "image" in oc:
                        nc["image"] = oc["image"]
                    else:
                        nc.pop("image", None)

    comparable_old = {
        k: v for k, v in old_spec.items() if k not in ("nodeName", "activeDeadlineSeconds", "tolerations")
    }
    if new_spec != comparable_old:
        changed: list[str] = []
        _diff_paths(comparable_old, new_spec, "spec", changed)
        shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        errs.append(forbidden("spec", f"{POD_UPDATE_MESSAGE} (changed: {shown})"))
    return errs


# --- schema ------------------------------------------------------------------------------------

CONTAINER_STATE = struct(
    waiting=struct(reason=STRING, message=STRING),
    running=struct(startedAt=STRING),
    terminated=struct(
        exitCode=INT32,
        signal=INT32,
        reason=STRING,
        message=STRING,
        startedAt=STRING,
        finishedAt=STRING,
        containerID=STRING,
    ),
)

CONTAINER_STATUS = struct(
    name=STRING,
    state=CONTAINER_STATE,
    lastState=CONTAINER_STATE,
    ready=BOOLEAN,
    started=BOOLEAN,
    restartCount=INT32,
    image=STRING,
    imageID=STRING,
    containerID=STRING,
    allocatedResources=RESOURCE_LIST,
    resources=struct(limits=RESOURCE_LIST, requests=RESOURCE_LIST, claims=ListOf(ANY)),
    volumeMounts=ListOf(ANY),
    user=OPAQUE_OBJECT,
    stopSignal=STRING,
)

POD_STATUS = struct(
    phase=STRING,
    conditions=ListOf(CONDITION),
    message=STRING,
    reason=STRING,
    nominatedNodeName=STRING,
    hostIP=STRING,
    hostIPs=ListOf(struct(ip=STRING)),
    podIP=STRING,
    podIPs=ListOf(struct(ip=STRING)),
    startTime=STRING,
    initContainerStatuses=ListOf(CONTAINER_STATUS),
    containerStatuses=ListOf(CONTAINER_STATUS),
    ephemeralContainerStatuses=ListOf(CONTAINER_STATUS),
    qosClass=STRING,
    resize=STRING,
    observedGeneration=INT64,
)

SCHEMA = TOP_LEVEL.extend(spec=POD_SPEC, status=POD_STATUS)


# --- printer -----------------------------------------------------------------------------------


def _pod_cells(pod: Obj, now: datetime) -> list[Cell]:
    status = status_of(pod)
    return [
        name_of(pod),
        pod_ready(pod),
        pod_status(pod),
        pod_restarts(pod, now),
        created(pod, now),
        status.get("podIP") or NONE,
        spec_of(pod).get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        readiness_gates(pod),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column("Restarts", description="The number of times the containers in this pod have been restarted "
                                       "and when the last container in this pod has restarted."),
        AGE,
        Column("IP", description="IP address allocated to the pod.", priority=1),
        Column("Node", description="Name of the node the pod is assigned to.", priority=1),
        Column("Nominated Node", description="Name of the node the pod is nominated to.", priority=1,
               get_wide=False),
        Column("Readiness Gates", description="Pod readiness gates.", priority=1, get_wide=False),
    ),
    _pod_cells,
)


class PodStrategy(Strategy):
    categories = ("all",)
    printer = PRINTER
    schema = SCHEMA

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_update(new, old)

    def graceful_seconds(self, obj: Obj, grace_period: int | None, node_exists: Callable[[str], bool]) -> int | None:
        node = obj.get("spec", {}).get("nodeName")
        if not node or grace_period == 0:
            return None
        phase = obj.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed") and not obj.get("status", {}).get("containerStatuses"):
            return None
        if not node_exists(node):
            return None  # no node to finish it
        if grace_period is not None:
            return max(int(grace_period), 1)
        return max(int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)), 1)

    def waits_for_node(self, obj: Obj) -> bool:
        return bool(obj.get("spec", {}).get("nodeName"))


STRATEGY = PodStrategy()
