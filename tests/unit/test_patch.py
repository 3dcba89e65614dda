"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.objects.patch import PatchError, json_merge_patch, json_patch, strategic_merge_patch

# --- RFC 7386 (the examples of its appendix A) ---------------------------------------------------


@pytest.mark.parametrize(
    "target, patch, result",
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_json_merge_patch(target: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(target)
    assert json_merge_patch(target, patch) == result
    assert target == before


# --- RFC 6902 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, ops, result",
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/-", "value": 2}], {"foo": [1, 2]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        ({"baz": "qux"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo"}),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
        (
            {"baz": "qux", "foo": ["a", 2, "c"]},
            [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
            {"baz": "qux", "foo": ["a", 2, "c"]},
        ),
        (
            {"/": 9, "~1": 10},
            [{"op": "replace", "path": "/~01", "value": 11}, {"op": "remove", "path": "/~1"}],
            {"~1": 11},
        ),
        ({"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
        ({"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
        ({"foo": 1}, [{"op": "add", "path": "/foo", "value": 2}], {"foo": 2}),
        (
            {"metadata": {"labels": {"app": "x"}}},
            [{"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "db"}],
            {"metadata": {"labels": {"app": "x", "example.com/tier": "db"}}},
        ),
    ],
)
def test_json_patch(target: Any, ops: list, result: Any) -> None:
    before = copy.deepcopy(target)
    assert json_patch(target, ops) == result
    assert target == before


@pytest.mark.parametrize(
    "target, ops, fragment",
    [
        ({"a": 1}, [{"op": "test", "path": "/a", "value": 2}], "test operation failed"),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "test operation failed"),
        ({"a": 1}, [{"op": "remove", "path": "/b"}], "does not exist"),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], "does not exist"),
        ({"a": [1]}, [{"op": "add", "path": "/a/5", "value": 1}], "out of range"),
        ({"a": [1]}, [{"op": "add", "path": "/a/01", "value": 1}], "invalid array index"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/-"}], "invalid array index"),
        ({"a": 1}, [{"op": "add", "path": "/x/y", "value": 1}], "does not exist"),
        ({"a": 1}, [{"op": "add", "path": "a", "value": 1}], "must be empty or start with"),
        ({"a": 1}, [{"op": "frobnicate", "path": "/a"}], "unsupported op"),
        ({"a": 1}, [{"op": "add", "path": "/b"}], 'missing "value"'),
        ({"a": 1}, [{"op": "move", "path": "/b"}], 'missing "from"'),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "its own child"),
        ({"a": 1}, [{"op": "add", "path": "/a/b", "value": 1}], "not an object or array"),
        ({"a": 1}, {"op": "add"}, "list of operations"),
    ],
)
def test_json_patch_errors(target: Any, ops: Any, fragment: str) -> None:
    before = copy.deepcopy(target)
    with pytest.raises(PatchError) as exc:
        json_patch(target, ops)
    assert fragment in str(exc.value)
    assert target == before


def test_json_patch_is_all_or_nothing() -> None:
    target = {"a": 1}
    with pytest.raises(PatchError):
        json_patch(target, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zzz"}])
    assert target == {"a": 1}


# --- strategic merge ------------------------------------------------------------------------------


def pod(containers: list, **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": containers, **spec},
    }


BASE = pod(
    [
        {
            "name": "a",
            "image": "a:1",
            "ports": [{"containerPort": 80}, {"containerPort": 81}],
            "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
            "args": ["--one"],
        },
        {"name": "b", "image": "b:1"},
    ],
    tolerations=[{"key": "k", "operator": "Exists"}],
    volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v2", "hostPath": {"path": "/x"}}],
)
BASE["metadata"]["finalizers"] = ["f1", "f2"]


CASES: list[tuple[str, dict, dict, Any]] = [
    (
        "merge container by name, keep others",
        BASE,
        {"spec": {"containers": [{"name": "b", "image": "b:2"}]}},
        lambda r: [c["image"] for c in r["spec"]["containers"]] == ["a:1", "b:2"],
    ),
    (
        "new container appended",
        BASE,
        {"spec": {"containers": [{"name": "c", "image": "c:1"}]}},
        lambda r: [c["name"] for c in r["spec"]["containers"]] == ["a", "b", "c"],
    ),
    (
        "ports merge by containerPort",
        BASE,
        {
            "spec": {
                "containers": [
                    {"name": "a", "ports": [{"containerPort": 81, "name": "metrics"}, {"containerPort": 82}]}
                ]
            }
        },
        lambda r: (
            r["spec"]["containers"][0]["ports"]
            == [{"containerPort": 80}, {"containerPort": 81, "name": "metrics"}, {"containerPort": 82}]
        ),
    ),
    (
        "env merge by name, null deletes a key inside an element",
        BASE,
        {
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "env": [
                            {
                                "name": "Y",
                                "value": None,
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            }
                        ],
                    }
                ]
            }
        },
        lambda r: (
            r["spec"]["containers"][0]["env"]
            == [
                {"name": "X", "value": "1"},
                {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ]
        ),
    ),
    (
        "lists without a merge key are replaced (args, tolerations)",
        BASE,
        {
            "spec": {
                "tolerations": [{"key": "z", "operator": "Exists"}],
                "containers": [{"name": "a", "args": ["--two"]}],
            }
        },
        lambda r: (
            r["spec"]["tolerations"] == [{"key": "z", "operator": "Exists"}]
            and r["spec"]["containers"][0]["args"] == ["--two"]
        ),
    ),
    (
        "null deletes a key",
        BASE,
        {"spec": {"tolerations": None}},
        lambda r: "tolerations" not in r["spec"],
    ),
    (
        "$patch: delete removes a list element by merge key",
        BASE,
        {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}},
        lambda r: [c["name"] for c in r["spec"]["containers"]] == ["b"],
    ),
    (
        "$patch: replace as a list element replaces the whole list",
        BASE,
        {"spec": {"volumes": [{"name": "v3", "emptyDir": {}}, {"$patch": "replace"}]}},
        lambda r: r["spec"]["volumes"] == [{"name": "v3", "emptyDir": {}}],
    ),
    (
        "$patch: replace in a map replaces the map",
        BASE,
        {"spec": {"containers": [{"name": "a", "$patch": "replace", "image": "a:9"}]}},
        lambda r: r["spec"]["containers"][0] == {"name": "a", "image": "a:9"},
    ),
    (
        "$patch: delete in a map deletes the map",
        {"metadata": {"name": "p", "labels": {"a": "b"}}},
        {"metadata": {"labels": {"$patch": "delete"}}},
        lambda r: r == {"metadata": {"name": "p"}},
    ),
    (
        "$patch: merge is the default",
        {"metadata": {"labels": {"a": "b"}}},
        {"metadata": {"labels": {"$patch": "merge", "c": "d"}}},
        lambda r: r["metadata"]["labels"] == {"a": "b", "c": "d"},
    ),
    (
        "finalizers merge as a set",
        BASE,
        {"metadata": {"finalizers": ["f2", "f3"]}},
        lambda r: r["metadata"]["finalizers"] == ["f1", "f2", "f3"],
    ),
    (
        "$deleteFromPrimitiveList",
        BASE,
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}},
        lambda r: r["metadata"]["finalizers"] == ["f2"],
    ),
    (
        "$setElementOrder on a keyed list",
        BASE,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b", "image": "b:3"}],
            }
        },
        lambda r: [(c["name"], c["image"]) for c in r["spec"]["containers"]] == [("b", "b:3"), ("a", "a:1")],
    ),
    (
        "$setElementOrder on a primitive set, unmentioned items follow",
        {"metadata": {"finalizers": ["x", "y", "z"]}},
        {"metadata": {"$setElementOrder/finalizers": ["z", "x"]}},
        lambda r: r["metadata"]["finalizers"] == ["z", "x", "y"],
    ),
    (
        "$retainKeys clears fields not listed (switching volume source)",
        BASE,
        {"spec": {"volumes": [{"name": "v2", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]}},
        lambda r: r["spec"]["volumes"][1] == {"name": "v2", "emptyDir": {}},
    ),
    (
        "$retainKeys on deployment strategy",
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        lambda r: r["spec"]["strategy"] == {"type": "Recreate"},
    ),
    (
        "directives are stripped from new content",
        {"spec": {}},
        {
            "spec": {
                "containers": [
                    {
                        "name": "n",
                        "image": "i",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}],
                    }
                ]
            }
        },
        lambda r: (
            r["spec"]["containers"] == [{"name": "n", "image": "i", "env": [{"name": "A", "value": "1"}]}]
        ),
    ),
]


@pytest.mark.parametrize("name, target, patch, check", CASES, ids=[c[0] for c in CASES])
def test_strategic_merge_pod(name: str, target: dict, patch: dict, check: Any) -> None:
    before = copy.deepcopy(target)
    result = strategic_merge_patch(target, patch, "Pod")
    assert check(result), result
    assert target == before


def test_strategic_merge_deployment_template_and_conditions() -> None:
    deploy = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "web", "image": "w:1"}, {"name": "side", "image": "s:1"}]}
            }
        },
        "status": {
            "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]
        },
    }
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "w:2"}]}}},
        "status": {"conditions": [{"type": "Progressing", "status": "False", "reason": "Stuck"}]},
    }
    result = strategic_merge_patch(deploy, patch, "Deployment")
    assert [c["image"] for c in result["spec"]["template"]["spec"]["containers"]] == ["w:2", "s:1"]
    assert result["status"]["conditions"] == [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "False", "reason": "Stuck"},
    ]


def test_strategic_merge_node_and_owner_references() -> None:
    node = {
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
        "spec": {"podCIDRs": ["10.42.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
    }
    patch = {
        "metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
        "spec": {"podCIDRs": ["fd00::/64"], "taints": []},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.0.0.2"},
            ]
        },
    }
    result = strategic_merge_patch(node, patch, "Node")
    assert [r["uid"] for r in result["metadata"]["ownerReferences"]] == ["1", "2"]
    assert result["spec"]["podCIDRs"] == ["10.42.0.0/24", "fd00::/64"]
    assert result["spec"]["taints"] == []
    assert result["status"]["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.2"},
        {"type": "Hostname", "address": "n1"},
    ]


def test_unknown_kind_merges_like_merge_patch() -> None:
    assert strategic_merge_patch({"a": [1], "b": {"c": 1}}, {"a": [2], "b": {"d": 2}}, "Widget") == {
        "a": [2],
        "b": {"c": 1, "d": 2},
    }


@pytest.mark.parametrize(
    "patch, fragment",
    [
        ({"spec": {"containers": [{"image": "x"}]}}, 'merge key "name"'),
        ({"spec": {"containers": ["x"]}}, 'merge key "name"'),
        ({"spec": {"$patch": "explode"}}, "unknown $patch directive"),
        ({"spec": {"$frob": 1}}, "unknown directive"),
        ({"spec": {"$retainKeys": ["a"], "b": 1}}, "not in $retainKeys"),
        ({"metadata": {"finalizers": [{"a": 1}]}}, "primitive"),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": "f1"}}, "must be a list"),
        ({"spec": {"$setElementOrder/containers": [{"image": "x"}], "containers": []}}, "each entry"),
        ([], "JSON object"),
    ],
)
def test_strategic_merge_errors(patch: Any, fragment: str) -> None:
    with pytest.raises(PatchError) as exc:
        strategic_merge_patch(BASE, patch, "Pod")
    assert fragment in str(exc.value)
