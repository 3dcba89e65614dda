"""One module per served kind: everything particular to the kind, in one place (Kubernetes'
`pkg/registry/<group>/<resource>/strategy.go` plus its printer and schema).

Each module holds the kind's server-side defaults, validation and update rules, `SCHEMA`
(its field types, extending `schema.TOP_LEVEL` with the shared sub-schemas of
`objects/schema.py`), `PRINTER` (its table columns and a pure cells function, built from the
shared helpers of `objects/printers.py`) and a `Strategy` subclass that names them
(`printer = PRINTER`, `schema = SCHEMA`, categories, deletion hooks), exported as `STRATEGY`.

A module takes shared pieces from `objects/` only (never from another kind's module, nor
from the kinds table, which imports every module here). Adding a kind is one module here
and its row in `objects/kinds.py`; `tests/unit/test_kinds_strategies.py` checks both.
"""
