"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from orchestrator.objects.selectors import (
    SelectorError,
    match_labels,
    parse_field_selector,
    parse_label_selector,
    selector_from_spec,
    selector_to_string,
)

LABELS = {"app": "web", "tier": "front", "env": ""}


@pytest.mark.parametrize(
    "selector, expected",
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("app!=web", False),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("app notin (db, cache)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("  app = web ,  tier in ( front ) ", True),
        ("env=", True),
        ("env in (,x)", True),
        ("example.com/owner", False),
    ],
)
def test_label_selector_matches(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize(
    "selector, fragment",
    [
        ("app=", None),
        ("app in web", "'('"),
        ("app in (web", "')'"),
        ("app in ()", "must not be empty"),
        ("app ~ web", "one of"),
        ("=web", "label key"),
        ("app=web,", "label key"),
        ("app=web tier=x", "','"),
        ("-bad=x", "invalid label key"),
        ("app=in valid", "','"),
        ("app=b@d", "invalid label value"),
        ("app=" + "x" * 64, "63 characters"),
        ("!", "label key"),
        ("a/b/c=x", "invalid label key"),
    ],
)
def test_label_selector_syntax_errors(selector: str, fragment: str | None) -> None:
    if fragment is None:
        parse_label_selector(selector)  # `app=` is valid: the empty value
        return
    with pytest.raises(SelectorError) as exc:
        parse_label_selector(selector)
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    "spec, labels, expected",
    [
        ({}, {"a": "b"}, True),
        ({}, {}, True),
        (None, {"a": "b"}, False),
        ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            {"tier": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": "a"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "a"}, False),
        (
            {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            {"app": "web"},
            False,
        ),
    ],
)
def test_selector_from_spec(spec: dict | None, labels: dict, expected: bool) -> None:
    assert selector_from_spec(spec).matches(labels) is expected
    assert match_labels(spec, labels) is expected


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"matchExpressions": [{"key": "a", "operator": "Has"}]}, "unsupported value"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "must be specified"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "may not be specified"),
        ({"matchLabels": {"a": "bad value"}}, "invalid label value"),
    ],
)
def test_selector_from_spec_errors(spec: dict, fragment: str) -> None:
    with pytest.raises(SelectorError, match=fragment):
        selector_from_spec(spec)


@pytest.mark.parametrize(
    "spec, text",
    [
        ({}, ""),
        (None, "<none>"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "t", "operator": "In", "values": ["y", "x"]},
                    {"key": "u", "operator": "NotIn", "values": ["z"]},
                    {"key": "v", "operator": "Exists"},
                    {"key": "w", "operator": "DoesNotExist"},
                ],
            },
            "app=web,t in (x,y),u notin (z),v,!w",
        ),
    ],
)
def test_selector_to_string_round_trips(spec: dict | None, text: str) -> None:
    assert selector_to_string(spec) == text
    if spec is not None:
        assert str(parse_label_selector(text)) == text


POD = {
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "hostNetwork": False},
    "status": {"phase": "Running"},
}
EVENT = {
    "metadata": {"name": "e1", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default", "uid": "u-1"},
    "reason": "Started",
}


@pytest.mark.parametrize(
    "selector, obj, expected",
    [
        ("", POD, True),
        ("metadata.name=p1", POD, True),
        ("metadata.name==p1", POD, True),
        ("metadata.name!=p1", POD, False),
        ("metadata.namespace=default,spec.nodeName=node-a", POD, True),
        ("spec.nodeName=", POD, False),
        ("spec.nodeName=", {"spec": {}}, True),
        ("status.phase!=Running", POD, False),
        ("spec.hostNetwork=false", POD, True),
        ("involvedObject.name=p1,involvedObject.kind=Pod", EVENT, True),
        ("involvedObject.uid=u-2", EVENT, False),
        ("involvedObject.namespace=default", EVENT, True),
        ("metadata.name=a\\,b", {"metadata": {"name": "a,b"}}, True),
    ],
)
def test_field_selector(selector: str, obj: dict, expected: bool) -> None:
    assert parse_field_selector(selector).matches(obj) is expected


@pytest.mark.parametrize(
    "selector, kind, fragment",
    [
        ("spec.foo=x", None, '"spec.foo"'),
        ("involvedObject.name=x", "Pod", '"involvedObject.name"'),
        ("metadata.name", None, "can't understand"),
        ("=x", None, "missing field name"),
        ("metadata.name=x,", None, "empty requirement"),
        ("metadata.name=a\\b", None, "escape"),
    ],
)
def test_field_selector_errors(selector: str, kind: str | None, fragment: str) -> None:
    with pytest.raises(SelectorError) as exc:
        parse_field_selector(selector, kind)
    assert fragment in str(exc.value)


def test_field_selector_per_kind_and_value_for() -> None:
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed", "Pod")
    assert sel.value_for("spec.nodeName") == "n1"
    assert sel.value_for("status.phase") is None
    assert str(sel) == "spec.nodeName=n1,status.phase!=Failed"
    assert parse_field_selector("involvedObject.name=x", "Event").matches({"involvedObject": {"name": "x"}})
