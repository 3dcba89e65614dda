"""Loading and checking manifests for `apply -f` / `delete -f`: all-or-nothing, with locations."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from orchestrator.cli.manifests import load, manifests_from_text, parse_documents
from orchestrator.cli.output import CliError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_multi_document_skips_empty_documents() -> None:
    text = CM.format(name="a") + "---\n---\n# only a comment\n---\n" + CM.format(name="b")
    ms = manifests_from_text(text, "f.yaml")
    assert [m.name for m in ms] == ["a", "b"]
    assert [m.document for m in ms] == [1, 4]
    assert ms[0].kind.resource == "configmaps"


def test_list_items_are_expanded() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n" \
           "- {apiVersion: apps/v1, kind: Deployment, metadata: {name: y, namespace: prod}}\n"
    ms = manifests_from_text(text, "l.yaml")
    assert [(m.kind.kind, m.name, m.namespace, m.item) for m in ms] == [
        ("ConfigMap", "x", None, 1),
        ("Deployment", "y", "prod", 2),
    ]


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad\n", ["f.yaml", "document 2", "invalid YAML", "line 9", "at line 8"]),
        ("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n", ["f.yaml", "document 2", '"Widget"']),
        ("apiVersion: v9\nkind: ConfigMap\nmetadata: {name: w}\n", ["document 2", '"ConfigMap"', '"v9"']),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", ["document 2", "metadata.name"]),
        ("apiVersion: v1\nkind: ConfigMap\n", ["document 2", "metadata.name"]),
        ("kind: ConfigMap\nmetadata: {name: x}\n", ["document 2", "apiVersion"]),
        ("apiVersion: v1\nmetadata: {name: x}\n", ["document 2", "field kind"]),
        ("- just\n- a list\n", ["document 2", "expected an object"]),
    ],
)
def test_bad_documents_name_file_document_and_problem(second: str, expected: list[str]) -> None:
    text = CM.format(name="good") + "---\n" + second
    with pytest.raises(CliError) as e:
        manifests_from_text(text, "f.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    for part in expected:
        assert part in msg, msg


def test_bad_list_item_is_located() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {}}\n"
    with pytest.raises(CliError, match=r"l.yaml: document 1, item 1: missing field metadata.name"):
        manifests_from_text(text, "l.yaml")


def test_yaml_error_in_first_document() -> None:
    with pytest.raises(CliError, match=r"document 1: invalid YAML: line 2"):
        parse_documents("a: 1\nb: c: d\n", "x.yaml")


def test_json_file(tmp_path: Path) -> None:
    f = tmp_path / "cm.json"
    f.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}')
    assert [m.name for m in load([str(f)])] == ["j"]
    f.write_text('{"apiVersion": "v1",\n "kind": }')
    with pytest.raises(CliError, match=r"cm.json: document 1: invalid JSON: line 2"):
        load([str(f)])


def test_directory_sorted_and_recursive_only_with_flag(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(CM.format(name="b"))
    (tmp_path / "a.yml").write_text(CM.format(name="a"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yaml").write_text(CM.format(name="c"))
    assert [m.name for m in load([str(tmp_path)])] == ["a", "b"]
    assert sorted(m.name for m in load([str(tmp_path)], recursive=True)) == ["a", "b", "c"]


def test_stdin_and_missing_path(tmp_path: Path) -> None:
    ms = load(["-"], stdin=io.StringIO(CM.format(name="s")))
    assert ms[0].name == "s" and ms[0].source == "<stdin>"
    with pytest.raises(CliError, match="does not exist"):
        load([str(tmp_path / "nope.yaml")])


def test_one_bad_file_fails_the_whole_load(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CM.format(name="a"))
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n")
    with pytest.raises(CliError, match="b.yaml: document 1"):
        load([str(tmp_path)])
