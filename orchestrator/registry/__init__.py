"""The registry: Kubernetes object semantics on top of the revisioned store (the domain service).

`generic.Registry` applies every kind's strategy (defaults, validation, status rules) and the
metadata bookkeeping to every write; `podadmission` holds the admission step that bounds
pending pods. The HTTP layer (`orchestrator/api/`) only translates requests into calls here.
"""

from __future__ import annotations

from .generic import Registry, apply_patch, dumps, json_type, scale_of, set_condition

__all__ = ["Registry", "apply_patch", "dumps", "json_type", "scale_of", "set_condition"]
