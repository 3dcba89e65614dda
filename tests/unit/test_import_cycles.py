"""No circular imports between the modules of orchestrator/.

Every .py file under orchestrator/ is parsed with `ast`; every import statement counts:
at module level, inside functions (a deferred import still ties the two modules
together), and under `if TYPE_CHECKING:` (a type-only import is a circle of knowledge just
the same). Relative imports are resolved, and `from pkg import name` counts as importing
`pkg.name` when that is a module. A package's `__init__` is only imported when named; a
submodule's implicit import of its parent package does not count.

The strongly connected components of that graph must all be single modules. Known circles
are listed in ALLOWED as the set of modules of the component; a new one fails the test,
and so does an ALLOWED entry that no longer occurs, so the list can only shrink.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import ROOT, imports_of, is_module, module_name

PACKAGE = "orchestrator"

# Each entry: the modules of one import circle, with the reason it is still there.
ALLOWED: set[frozenset[str]] = set()


def _imports(path: Path) -> set[str]:
    """Every orchestrator module `path` imports (absolute names), wherever the statement is."""
    return {name for name in imports_of(path) if (name == PACKAGE or name.startswith(PACKAGE + ".")) and is_module(name)}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        module, _ = module_name(path)
        graph.setdefault(module, set()).update(m for m in _imports(path) if m != module)
    for targets in list(graph.values()):
        for t in targets:
            graph.setdefault(t, set())
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: set[frozenset[str]] = set()
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.add(m)
                    if m == node:
                        break
                if len(component) > 1:
                    out.add(frozenset(component))
    return out


def _describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return "{" + ", ".join(sorted(component)) + "}:\n    " + "\n    ".join(edges)


def test_the_scan_sees_function_level_and_type_only_imports() -> None:
    graph = import_graph()
    assert "orchestrator.objects.validation" in graph["orchestrator.objects.defaults"]  # in a function
    assert "orchestrator.registry.generic" in graph["orchestrator.registry"]  # the package re-exports it
    found = cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found == {frozenset({"a", "b", "c"})}


def test_no_import_cycles() -> None:
    graph = import_graph()
    new = cycles(graph) - ALLOWED
    assert not new, "circular imports:\n" + "\n".join(_describe(c, graph) for c in sorted(new, key=sorted))


def test_allowed_cycles_still_occur() -> None:
    stale = ALLOWED - cycles(import_graph())
    assert not stale, "no longer circular, remove from ALLOWED: " + "; ".join(sorted(str(sorted(c)) for c in stale))
