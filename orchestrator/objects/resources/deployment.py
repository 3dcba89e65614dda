"""Deployment (apps/v1): a ReplicaSet's rules (`podspec.validate_workload`) plus the rollout
strategy and progress deadline; defaults as apps/v1 (RollingUpdate 25%/25%, 10 revisions, 600 s).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError, forbidden, invalid, not_supported
from ..jsonfields import child, dict_of, set_default
from ..podspec import pod_template_spec_defaults, validate_selector_update, validate_workload
from ..printers import (
    AGE,
    NAME,
    TEMPLATE_COLUMNS,
    Cell,
    Column,
    Printer,
    as_int,
    created,
    desired_replicas,
    name_of,
    status_of,
    template_cells,
)
from ..schema import (
    BOOLEAN,
    CONDITION,
    INT32,
    INT64,
    INT_OR_STRING,
    LABEL_SELECTOR,
    POD_TEMPLATE_SPEC,
    STRING,
    TOP_LEVEL,
    ListOf,
    struct,
)
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_default(spec, "replicas", 1)
    set_default(spec, "revisionHistoryLimit", 10)
    set_default(spec, "progressDeadlineSeconds", 600)
    strategy = child(spec, "strategy")
    if strategy is not None:
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = child(strategy, "rollingUpdate")
            if rolling is not None:
                set_default(rolling, "maxUnavailable", "25%")
                set_default(rolling, "maxSurge", "25%")
    template = spec.get("template")
    if isinstance(template, dict):
        pod_template_spec_defaults(template)


_PERCENT_RE = re.compile(r"^[0-9]+%$")


def _int_or_percent(value: Any, path: str) -> tuple[list[FieldError], int | None, bool]:
    """Validate an IntOrString count (None counts as 0); returns (errors, number, is_percent)."""
    if value is None:
        return [], 0, False
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return (
                [
                    invalid(
                        path,
                        value,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
                    )
                ],
                None,
                True,
            )
        return [], int(value[:-1]), True
    if value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")], None, False
    return [], int(value), False


def validate_deployment_spec(spec: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    strategy = dict_of(spec.get("strategy"))
    stype = strategy.get("type")
    if stype is not None and stype not in ("RollingUpdate", "Recreate"):
        errs.append(not_supported("spec.strategy.type", stype, ("Recreate", "RollingUpdate")))
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(
            forbidden(
                "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
            )
        )
    elif isinstance(rolling, dict):
        surge_errs, surge, _ = _int_or_percent(
            rolling.get("maxSurge", 0), "spec.strategy.rollingUpdate.maxSurge"
        )
        unav_errs, unavailable, unav_pct = _int_or_percent(
            rolling.get("maxUnavailable", 0), "spec.strategy.rollingUpdate.maxUnavailable"
        )
        errs += surge_errs + unav_errs
        if unav_pct and unavailable is not None and unavailable > 100:
            errs.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.get("maxUnavailable"),
                    "must not be greater than 100%",
                )
            )
        if surge == 0 and unavailable == 0:
            errs.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.get("maxUnavailable", 0),
                    "may not be 0 when `maxSurge` is 0",
                )
            )
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        if deadline <= 0:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than 0"))
        elif deadline <= (spec.get("minReadySeconds") or 0):
            errs.append(
                invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
            )
    return errs


# --- schema ------------------------------------------------------------------------------------

DEPLOYMENT_SPEC = struct(
    replicas=INT32,
    selector=LABEL_SELECTOR,
    template=POD_TEMPLATE_SPEC,
    strategy=struct(
        type=STRING,
        rollingUpdate=struct(maxUnavailable=INT_OR_STRING, maxSurge=INT_OR_STRING),
    ),
    minReadySeconds=INT32,
    revisionHistoryLimit=INT32,
    paused=BOOLEAN,
    progressDeadlineSeconds=INT32,
)
DEPLOYMENT_STATUS = struct(
    observedGeneration=INT64,
    replicas=INT32,
    updatedReplicas=INT32,
    readyReplicas=INT32,
    availableReplicas=INT32,
    unavailableReplicas=INT32,
    terminatingReplicas=INT32,
    conditions=ListOf(CONDITION),
    collisionCount=INT32,
)

SCHEMA = TOP_LEVEL.extend(spec=DEPLOYMENT_SPEC, status=DEPLOYMENT_STATUS)


# --- printer -----------------------------------------------------------------------------------


def _deployment_cells(d: Obj, now: datetime) -> list[Cell]:
    status = status_of(d)
    return [
        name_of(d),
        f"{as_int(status.get('readyReplicas'))}/{desired_replicas(d)}",
        as_int(status.get("updatedReplicas")),
        as_int(status.get("availableReplicas")),
        created(d, now),
        *template_cells(d),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", "integer", description="Total number of non-terminated pods targeted by this "
                                                    "deployment that have the desired template spec."),
        Column("Available", "integer", description="Total number of available pods (ready for at least "
                                                   "minReadySeconds) targeted by this deployment."),
        AGE,
        *TEMPLATE_COLUMNS,
    ),
    _deployment_cells,
)


class DeploymentStrategy(Strategy):
    categories = ("all",)
    printer = PRINTER
    schema = SCHEMA

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_workload("Deployment", obj, validate_deployment_spec)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_selector_update(new, old)


STRATEGY = DeploymentStrategy()
