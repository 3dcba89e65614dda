"""The kinds table and the per-kind strategies: adding a kind is one module in
orchestrator/objects/resources/ (rules, schema, printer, strategy) plus its row in
orchestrator/objects/kinds.py."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from orchestrator.objects import defaults, printers, schema, validation
from orchestrator.objects.kinds import KINDS, Kind, resolve, schema_for, strategy_for
from orchestrator.objects.strategy import GENERIC, Strategy

RESOURCES = Path(__file__).resolve().parents[2] / "orchestrator" / "objects" / "resources"
OBJECTS = RESOURCES.parent
PACKAGE = "orchestrator.objects.resources"


def _resource_modules() -> set[str]:
    return {p.stem for p in RESOURCES.glob("*.py") if p.stem != "__init__"}


def test_every_row_has_a_strategy_from_its_own_resource_module() -> None:
    seen: dict[str, str] = {}
    for kind in KINDS:
        strategy = kind.strategy
        assert isinstance(strategy, Strategy)
        assert type(strategy) is not Strategy, f"{kind.kind} has the generic strategy"
        module = type(strategy).__module__
        assert module.startswith(PACKAGE + "."), f"{kind.kind}'s strategy lives in {module}"
        name = module.rsplit(".", 1)[1]
        assert name not in seen, f"{kind.kind} and {seen.get(name)} share {module}"
        seen[name] = kind.kind
        assert importlib.import_module(module).STRATEGY is strategy  # type: ignore[attr-defined]
        assert strategy_for(kind.kind) is strategy


def test_every_resource_module_serves_exactly_one_row() -> None:
    used = [type(k.strategy).__module__.rsplit(".", 1)[1] for k in KINDS]
    assert sorted(used) == sorted(_resource_modules())


def test_resource_modules_do_not_import_the_table_or_each_other() -> None:
    """A resource module takes shared pieces from objects/, never from another kind's module
    or from the table (which imports them all)."""
    for path in RESOURCES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [node.module or ""] + [a.name for a in node.names]
                assert node.level == 2 or path.stem == "__init__", f"{path.name} imports from .{node.module}"
                assert "kinds" not in names and "validation" not in names and "defaults" not in names, path.name


def test_nothing_outside_the_table_dispatches_on_kind_names() -> None:
    """The registry and the validation/defaults entry points ask the strategy."""
    for rel in ("validation.py", "defaults.py", "../registry/generic.py"):
        text = (OBJECTS / rel).read_text()
        for name in ("Pod", "Secret", "Namespace", "Event", "Service", "Deployment"):
            assert f'kind.kind == "{name}"' not in text and f'kind.kind != "{name}"' not in text, (rel, name)
            assert f'kind == "{name}"' not in text, (rel, name)


def test_every_rows_printer_and_schema_come_from_its_own_resource_module() -> None:
    """Columns, cells and field types are the kind's module's `PRINTER` and `SCHEMA`, named by
    its strategy; the readers (Tables, `dockyard get`, validation, OpenAPI) find them through
    the row."""
    for kind in KINDS:
        module = importlib.import_module(type(kind.strategy).__module__)
        assert kind.printer is module.PRINTER is kind.strategy.printer, kind.kind
        assert kind.printer is not printers.GENERIC, f"{kind.kind} prints only NAME and AGE"
        assert kind.printer.cells.__module__ == module.__name__, f"{kind.kind}'s cells live elsewhere"
        assert kind.schema is module.SCHEMA is kind.strategy.schema, kind.kind
        assert isinstance(kind.schema, schema.Struct)
        assert schema_for(kind.kind) is kind.schema
        assert set(kind.schema.fields) >= set(schema.TOP_LEVEL.fields), kind.kind


def test_the_shared_modules_hold_no_kinds_printer_or_schema() -> None:
    """printers.py and schema.py keep only the machinery and what several kinds share."""
    own_printers = {id(k.printer) for k in KINDS}
    own_schemas = {id(k.schema) for k in KINDS}
    assert not [n for n, v in vars(printers).items() if id(v) in own_printers]
    assert not [n for n, v in vars(schema).items() if id(v) in own_schemas]
    assert not hasattr(printers, "PRINTERS") and not hasattr(schema, "KIND_SCHEMAS")
    for rel in ("printers.py", "schema.py"):
        text = (OBJECTS / rel).read_text()
        assert "from .kinds" not in text and "from .resources" not in text, rel


def test_a_kind_without_its_own_printer_or_schema() -> None:
    widget = Kind("example.com", "v1", "Widget", "widgets", True)
    assert widget.printer is printers.GENERIC and widget.schema is None
    assert schema_for("Widget") is None
    assert schema_for("Scale") is schema.SCALE  # the scale subresource's body, not a row


def test_get_all_lists_the_all_category_in_table_order() -> None:
    from orchestrator.cli.get import ALL_KINDS

    assert [k.resource for k in ALL_KINDS] == [k.resource for k in KINDS if "all" in k.categories]
    assert [k.resource for k in ALL_KINDS] == ["pods", "services", "deployments", "replicasets", "horizontalpodautoscalers"]


def test_names_outside_the_table_get_the_generic_strategy() -> None:
    assert strategy_for("Scale") is GENERIC
    assert strategy_for("NoSuchKind") is GENERIC
    obj = {"metadata": {"name": "x"}, "spec": {}}
    defaults.apply_defaults("NoSuchKind", obj)
    assert obj == {"metadata": {"name": "x"}, "spec": {}}
    assert validation.validate("NoSuchKind", obj) == []


@pytest.mark.parametrize(
    ("resource", "categories"),
    [("pods", ("all",)), ("services", ("all",)), ("deployments", ("all",)), ("replicasets", ("all",)),
     ("hpa", ("all",)), ("configmaps", ()), ("secrets", ()), ("nodes", ()), ("namespaces", ()),
     ("events", ()), ("endpoints", ()), ("leases", ())],
)
def test_categories_as_discovery_serves_them(resource: str, categories: tuple[str, ...]) -> None:
    assert resolve(resource).categories == categories


def test_the_strategy_does_not_change_a_rows_identity() -> None:
    pod = resolve("pods")
    assert pod == resolve("po")
    assert "strategy" not in repr(pod)
    assert len({k: k.kind for k in KINDS}) == len(KINDS)  # rows stay hashable and distinct


def test_status_rules() -> None:
    old = {"spec": {"a": 1}, "status": {"phase": "Running"}}
    new = {"spec": {"a": 2}, "status": {"phase": "Failed"}}
    main = dict(new)
    GENERIC.prepare_for_update(main, old, has_status=True)
    assert main == {"spec": {"a": 2}, "status": {"phase": "Running"}}  # the main resource keeps status
    main = dict(new)
    GENERIC.prepare_for_update(main, old, has_status=False)
    assert main["status"] == {"phase": "Failed"}
    assert GENERIC.prepare_for_status_update(new, old) == {"spec": {"a": 1}, "status": {"phase": "Failed"}}
    assert GENERIC.prepare_for_status_update({"spec": {}}, old) == {"spec": {"a": 1}}


def test_generation_payload() -> None:
    assert GENERIC.generation_payload({"spec": {"a": 1}, "status": {}}, has_status=True) == {"a": 1}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert GENERIC.generation_payload(cm, has_status=False) == {"data": {"k": "v"}}


def test_pod_deletion_hooks() -> None:
    pod = resolve("pods").strategy
    bound = {"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 5}, "status": {"phase": "Running"}}
    assert pod.waits_for_node(bound)
    assert not pod.waits_for_node({"spec": {}})
    assert pod.graceful_seconds(bound, None, lambda node: node == "n1") == 5
    assert pod.graceful_seconds(bound, 0, lambda node: True) is None
    assert pod.graceful_seconds(bound, None, lambda node: False) is None  # no node to finish it
    assert resolve("deployments").strategy.graceful_seconds(bound, None, lambda node: True) is None


def test_namespace_and_event_hooks() -> None:
    ns = resolve("namespaces").strategy
    assert ns.deleted_by_controller
    obj: dict[str, dict[str, str]] = {}
    ns.prepare_for_delete(obj)
    assert obj == {"status": {"phase": "Terminating"}}
    assert resolve("events").strategy.allowed_in_terminating_namespace
    assert not resolve("pods").strategy.allowed_in_terminating_namespace


def test_secret_folds_string_data() -> None:
    secret = resolve("secrets").strategy
    obj = {"stringData": {"a": "hi"}, "data": {"b": "eA=="}}
    secret.prepare_for_create(obj)
    assert obj == {"data": {"a": "aGk=", "b": "eA=="}}
    new = {"stringData": {"a": "yo"}}
    secret.prepare_for_update(new, {}, has_status=False)
    assert new == {"data": {"a": "eW8="}}


def test_name_formats_per_kind() -> None:
    assert resolve("services").strategy.name_error("1abc")  # DNS-1035 label
    assert resolve("namespaces").strategy.name_error("a.b")  # DNS-1123 label
    assert resolve("configmaps").strategy.name_error("a.b") is None  # DNS-1123 subdomain
