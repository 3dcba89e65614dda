"""The ground floor: object logic both halves share (kinds, strategies, schemas, printers, pod
helpers, quantities, selectors, patches, time formats). Imports nothing else of Dockyard's."""

from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object (or any JSON object) as decoded from JSON."""

__all__ = ["Obj"]
