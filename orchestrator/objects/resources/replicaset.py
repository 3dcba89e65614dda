"""ReplicaSet (apps/v1): replicas (default 1), selector and pod template (`podspec`), an
immutable selector.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import Obj
from ..fielderrors import FieldError
from ..jsonfields import child, set_default
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
from ..schema import CONDITION, INT32, INT64, LABEL_SELECTOR, POD_TEMPLATE_SPEC, TOP_LEVEL, ListOf, struct
from ..strategy import Strategy


def set_defaults(obj: dict[str, Any]) -> None:
    spec = child(obj, "spec")
    if spec is None:
        return
    set_default(spec, "replicas", 1)
    template = spec.get("template")
    if isinstance(template, dict):
        pod_template_spec_defaults(template)


# --- schema ------------------------------------------------------------------------------------

REPLICA_SET_SPEC = struct(
    replicas=INT32, minReadySeconds=INT32, selector=LABEL_SELECTOR, template=POD_TEMPLATE_SPEC
)
REPLICA_SET_STATUS = struct(
    replicas=INT32,
    fullyLabeledReplicas=INT32,
    readyReplicas=INT32,
    availableReplicas=INT32,
    terminatingReplicas=INT32,
    observedGeneration=INT64,
    conditions=ListOf(CONDITION),
)

SCHEMA = TOP_LEVEL.extend(spec=REPLICA_SET_SPEC, status=REPLICA_SET_STATUS)


# --- printer -----------------------------------------------------------------------------------


def _replicaset_cells(rs: Obj, now: datetime) -> list[Cell]:
    status = status_of(rs)
    return [
        name_of(rs),
        desired_replicas(rs),
        as_int(status.get("replicas")),
        as_int(status.get("readyReplicas")),
        created(rs, now),
        *template_cells(rs),
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Desired", "integer", description="Number of desired pods."),
        Column("Current", "integer", description="Number of actual replicas."),
        Column("Ready", "integer", description="The number of ready replicas for this replica set."),
        AGE,
        *TEMPLATE_COLUMNS,
    ),
    _replicaset_cells,
)


class ReplicaSetStrategy(Strategy):
    categories = ("all",)
    printer = PRINTER
    schema = SCHEMA

    def defaults(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_workload("ReplicaSet", obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_selector_update(new, old)


STRATEGY = ReplicaSetStrategy()
