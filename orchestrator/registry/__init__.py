"""The registry: Kubernetes object semantics on top of the revisioned store (the domain service).

`generic.Registry` applies every kind's strategy (defaults, validation, status rules) and the
metadata bookkeeping to every write; `podadmission` holds the admission step that bounds
pending pods. The HTTP layer (`orchestrator/api/`) only translates requests into calls here.

Where a kind's logic lives (the ground floor, `orchestrator/objects/`):

* `kinds.py`: the table of served kinds (`KINDS`: group, version, resource, scope, short
  names, subresources) and each row's strategy; readers reach a kind's printer, schema and
  categories through its row (`Kind.printer`, `Kind.schema`, `schema_for(name)`,
  `Kind.categories`);
* `strategy.py`: `Strategy`, the hooks the registry calls (defaults, validate,
  validate_update, prepare_for_create/update, what a status write may change, the
  generation payload, deletion, categories) and what the kind prints and accepts
  (`printer`, `schema`), with the generic behaviour;
* `resources/<kind>.py`: one module per kind with its defaults, rules, update rules, its
  field types (`SCHEMA`), its table columns and cells (`PRINTER`) and `STRATEGY`, as
  Kubernetes' `pkg/registry/<group>/<resource>/strategy.go`;
* shared pieces: `podspec.py` (pod specs and templates), `objectmeta.py`, `names.py`,
  `fielderrors.py`, `configdata.py`, `quantity.py`, `schema.py` (the schema language, the
  checks and the shared sub-schemas: object metadata, selectors, pod specs), `printers.py`
  (columns, cell helpers, ages, the NAME/AGE fallback); `validation.py` and `defaults.py`
  are the entry points by kind name.

A new kind: its module under `objects/resources/` (rules, `SCHEMA`, `PRINTER`, `STRATEGY`)
and its row in `objects/kinds.py`; nothing in this package, `api/` or `cli/` changes.
"""

from __future__ import annotations

from .generic import Registry, apply_patch, dumps, json_type, scale_of, set_condition

__all__ = ["Registry", "apply_patch", "dumps", "json_type", "scale_of", "set_condition"]
