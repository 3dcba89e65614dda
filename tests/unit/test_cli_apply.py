"""The three-way merge patch of `apply`: last-applied → new manifest, against the live object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.cli.apply import (
    LAST_APPLIED,
    compute_apply_patch,
    covered,
    last_applied_json,
    plan_apply,
    with_last_applied,
)

CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    # name, last-applied, new, live, expected patch
    ("no change", {"a": 1}, {"a": 1}, {"a": 1, "status": {"x": 1}}, {}),
    ("changed scalar", {"a": 1}, {"a": 2}, {"a": 1}, {"a": 2}),
    ("new key", {"a": 1}, {"a": 1, "b": 2}, {"a": 1}, {"b": 2}),
    ("dropped key becomes null", {"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2}, {"b": None}),
    ("dropped key already gone", {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, {}),
    ("others' fields kept", {"a": 1}, {"a": 1}, {"a": 1, "b": 9}, {}),
    ("live drift reset", {"a": 1}, {"a": 1}, {"a": 5}, {"a": 1}),
    (
        "nested maps merge",
        {"spec": {"replicas": 3, "paused": False}},
        {"spec": {"replicas": 4}},
        {"spec": {"replicas": 3, "paused": False, "strategy": {"type": "RollingUpdate"}}},
        {"spec": {"replicas": 4, "paused": None}},
    ),
    (
        "no last-applied: nothing deleted",
        None,
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {},
    ),
    (
        "label removed",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"b": None}}},
    ),
    ("list replaced whole", {"l": [1, 2]}, {"l": [1, 3]}, {"l": [1, 2]}, {"l": [1, 3]}),
    (
        "list with server defaults is unchanged",
        {"ports": [{"containerPort": 80}]},
        {"ports": [{"containerPort": 80}]},
        {"ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {},
    ),
    (
        "list item field dropped by the user is sent",
        {"c": [{"name": "a", "x": 1}]},
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a", "x": 1}]},
        {"c": [{"name": "a"}]},
    ),
    (
        "list changed by someone else is reset",
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a"}]},
        {"c": [{"name": "a"}, {"name": "b"}]},
        {"c": [{"name": "a"}]},
    ),
    ("map replaces a scalar", {"a": 1}, {"a": {"b": 1}}, {"a": 1}, {"a": {"b": 1}}),
    ("map where live has none", {}, {"m": {"k": "v"}}, {}, {"m": {"k": "v"}}),
]


@pytest.mark.parametrize(("last", "new", "live", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compute_apply_patch(
    last: dict[str, Any] | None, new: dict[str, Any], live: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compute_apply_patch(last, new, live) == expected


def test_covered() -> None:
    assert covered({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}], "d": 3})
    assert not covered({"a": [{"b": 1}]}, {"a": [{"b": 2}]})
    assert not covered([1], [1, 2])


DOC = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}


def test_annotation_is_compact_json_of_the_doc_without_itself() -> None:
    doc = {**DOC, "metadata": {"name": "c", "annotations": {LAST_APPLIED: "old", "x": "y"}}}
    value = last_applied_json(doc)
    assert " " not in value
    assert json.loads(value) == {**DOC, "metadata": {"name": "c", "annotations": {"x": "y"}}}
    assert json.loads(last_applied_json(DOC)) == DOC
    created = with_last_applied(DOC)
    assert json.loads(created["metadata"]["annotations"][LAST_APPLIED]) == DOC
    assert "annotations" not in DOC["metadata"]  # the input is not modified


def _live(doc: dict[str, Any]) -> dict[str, Any]:
    live = with_last_applied(doc)
    live["metadata"].update(uid="u1", resourceVersion="7", namespace="default")
    return live


def test_plan_unchanged_and_configured() -> None:
    live = _live(DOC)
    assert plan_apply(DOC, live) == {}
    new = {**DOC, "data": {"b": "2"}}
    patch = plan_apply(new, live)
    assert patch["data"] == {"a": None, "b": "2"}
    assert json.loads(patch["metadata"]["annotations"][LAST_APPLIED]) == new


def test_plan_for_object_created_without_apply_adds_annotation() -> None:
    live = {**DOC, "metadata": {"name": "c", "uid": "u"}, "data": {"a": "1", "other": "x"}}
    patch = plan_apply(DOC, live)
    assert set(patch) == {"metadata"}  # data.other is not deleted: no last-applied
    assert LAST_APPLIED in patch["metadata"]["annotations"]
