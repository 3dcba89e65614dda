"""Resource quantities (resource.Quantity): "100m", "64Mi", "1e3", 2, 0.5.

`parse_quantity` gives the exact value as a Decimal; `parse_cpu_quantity` gives cores as a
float and `parse_memory_quantity` bytes (rounded up). Validation, the scheduler, the
autoscaler and the agent all read quantities through these, so they agree on the syntax.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT_RE = re.compile(r"^[eE]([+-]?[0-9]+)$")
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
QUANTITY_SYNTAX = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


def parse_quantity(q: Any) -> Decimal:
    """A resource.Quantity ("100m", "64Mi", "1e3", 2, 0.5) as an exact Decimal."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}")
    if isinstance(q, int):
        return Decimal(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise ValueError(f"invalid quantity {q!r}: must be finite")
        return Decimal(repr(q))
    if not isinstance(q, str):
        raise ValueError(f"invalid quantity {q!r}: must be a string or a number")
    m = _QUANTITY_RE.match(q)
    if not m:
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}")
    number, suffix = m.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}") from None
    if suffix in _SUFFIXES:
        return value * _SUFFIXES[suffix]
    exp = _EXPONENT_RE.match(suffix)
    if exp:
        return value.scaleb(int(exp.group(1)))
    raise ValueError(f"invalid quantity {q!r}: unknown suffix {suffix!r}; {QUANTITY_SYNTAX}")


def parse_cpu_quantity(q: Any) -> float:
    """CPU quantity in cores: "100m" → 0.1, "2" → 2.0, 0.5 → 0.5. Raises ValueError."""
    return float(parse_quantity(q))


def parse_memory_quantity(q: Any) -> int:
    """Memory (or storage) quantity in bytes, rounded up: "64Mi" → 67108864, "1G" → 10**9."""
    return math.ceil(parse_quantity(q))
