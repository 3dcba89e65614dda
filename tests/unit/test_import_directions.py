"""Which packages may import which: the layering of orchestrator/ and agent/.

Every .py file under orchestrator/ and agent/ is parsed with `ast`; every import statement
counts (module level, inside functions, under `if TYPE_CHECKING:`), relative imports are
resolved, and `from pkg import name` counts as importing `pkg.name` when that is a module.

Rules:

* orchestrator/api/, orchestrator/store/ and orchestrator/objects/ do not import
  orchestrator/cli/;
* orchestrator/cli/, orchestrator/api/ and orchestrator/scheduler/ do not import
  orchestrator/controllers/;
* agent/ imports from the orchestrator only orchestrator.objects, orchestrator.client,
  orchestrator.errors, orchestrator.execproto and orchestrator.nodecerts;
* orchestrator/objects/ imports nothing from the other orchestrator packages;
* orchestrator/autoscaling/ does not import orchestrator/api/ (node addressing and scrape
  parsing are on the ground floor, `objects.nodeaddr` and `objects.scrape`);
* orchestrator/controllers/ and orchestrator/scheduler/ do not import orchestrator/api/ (the
  HTTP layer);
* orchestrator/registry/ and orchestrator/reconcile/ (the domain service and the controller
  runtime) import neither orchestrator/api/, orchestrator/cli/ nor orchestrator/controllers/.

Known violations are listed in ALLOWED; a new one fails the test, and so does an ALLOWED
entry that no longer occurs, so the list can only shrink.
"""

from __future__ import annotations

from tests.support.imports import ROOT, imports_of, module_name

TOP_PACKAGES = ("orchestrator", "agent")
AGENT_MAY_IMPORT = (
    "orchestrator.objects",
    "orchestrator.client",
    "orchestrator.errors",
    "orchestrator.execproto",
    "orchestrator.nodecerts",
)

# "importer -> imported" (module names), each with the reason it is still there.
ALLOWED: set[str] = set()


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for top in TOP_PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            importer, _ = module_name(path)
            edges.update((importer, imported) for imported in imports_of(path))
    return edges


def _breaks_a_rule(importer: str, imported: str) -> str | None:
    if any(_within(importer, f"orchestrator.{p}") for p in ("api", "store", "objects")):
        if _within(imported, "orchestrator.cli"):
            return "api/store/objects must not import cli"
    if any(_within(importer, f"orchestrator.{p}") for p in ("cli", "api", "scheduler")):
        if _within(imported, "orchestrator.controllers"):
            return "cli/api/scheduler must not import controllers"
    if _within(importer, "agent") and _within(imported, "orchestrator"):
        if not any(_within(imported, allowed) for allowed in AGENT_MAY_IMPORT):
            return "agent may import only objects, client, errors, execproto, nodecerts"
    if any(_within(importer, f"orchestrator.{p}") for p in ("controllers", "scheduler")):
        if _within(imported, "orchestrator.api"):
            return "controllers/scheduler must not import api (HTTP); domain code lives in registry"
    if any(_within(importer, f"orchestrator.{p}") for p in ("registry", "reconcile")):
        if any(_within(imported, f"orchestrator.{p}") for p in ("api", "cli", "controllers")):
            return "registry/reconcile must not import api, cli or controllers"
    if _within(importer, "orchestrator.autoscaling") and _within(imported, "orchestrator.api"):
        return "autoscaling must not import api"
    if _within(importer, "orchestrator.objects") and _within(imported, "orchestrator"):
        if not _within(imported, "orchestrator.objects"):
            return "objects must not import other orchestrator packages"
    return None


def _violations() -> dict[str, str]:
    out = {}
    for importer, imported in _edges():
        rule = _breaks_a_rule(importer, imported)
        if rule:
            out[f"{importer} -> {imported}"] = rule
    return out


def test_the_scan_sees_relative_and_function_level_imports() -> None:
    edges = _edges()
    assert ("orchestrator.objects.validation", "orchestrator.objects.schema") in edges  # from . import schema
    assert ("orchestrator.objects.defaults", "orchestrator.objects.validation") in edges  # in a function
    assert ("agent.main", "orchestrator.nodecerts") in edges  # from orchestrator import nodecerts


def test_no_new_import_direction_violations() -> None:
    new = {edge: rule for edge, rule in _violations().items() if edge not in ALLOWED}
    assert not new, "imports against the layering:\n" + "\n".join(
        f"{e}  ({r})" for e, r in sorted(new.items())
    )


def test_allowed_violations_still_occur() -> None:
    stale = ALLOWED - set(_violations())
    assert not stale, "no longer violated, remove from ALLOWED: " + ", ".join(sorted(stale))
