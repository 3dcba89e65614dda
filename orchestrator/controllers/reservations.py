"""Values an allocating create hook handed out whose object may not be stored yet.

The pod CIDR and Service address hooks pick the lowest value no stored object uses. The
hook runs before the create is written, so two creates on different threads (the API's
loop, a controller's runner) could both pick the same free value between the hook and the
write. Each hook therefore runs under its table's lock and records what it handed out,
keyed by the new object's store key; a later allocation treats those values as used until
the object shows up in the store (then the store itself says so) or `ttl` seconds pass
(the create failed after the hook, or was a dry run).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


class Reservations:
    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.lock = threading.Lock()  # held by the hook for its whole allocation
        self._held: dict[str, tuple[float, tuple[str, ...]]] = {}

    def in_flight(self, stored: set[str]) -> dict[str, tuple[str, ...]]:
        """Reservations of objects not in `stored` (keys) and not expired; the caller holds `lock`."""
        now = self.clock()
        for key in [k for k, (at, _) in self._held.items() if k in stored or now - at > self.ttl]:
            del self._held[key]
        return {k: values for k, (_, values) in self._held.items()}

    def hold(self, key: str, values: Iterable[str]) -> None:
        """Record what the object `key` was given; the caller holds `lock`."""
        self._held[key] = (self.clock(), tuple(values))
