"""Restart back-off for containers, kubelet style, with an injected clock.

Each key (``<pod uid>/<container name>``) has an entry holding the current delay and the
time of the last (re)start attempt. The first restart of a container happens at once and
arms the entry with ``base``; every further restart doubles the delay up to ``cap``. A
restart is held back while ``now - since < delay``, where ``since`` is the later of the
previous attempt's finish time and the last attempt recorded here (so failed starts, which
leave no finished container behind, are spaced out too).

The delay goes back to ``base`` once a container ran cleanly for ``reset_after`` seconds
(10 minutes by default), or when nothing happened to the key for that long past its window.

All methods take an optional ``now``; when omitted the injected ``clock`` is used. Nothing
here sleeps: callers (the pure planners in ``agent.pods`` / ``agent.status``) only ask
"how long is left", and the executor records attempts with :meth:`Backoff.next`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_BASE = 10.0
DEFAULT_CAP = 300.0
DEFAULT_RESET_AFTER = 600.0


@dataclass
class _Entry:
    delay: float
    last: float


class Backoff:
    def __init__(
        self,
        base: float = DEFAULT_BASE,
        cap: float = DEFAULT_CAP,
        reset_after: float = DEFAULT_RESET_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"invalid back-off: base={base} cap={cap} (need 0 < base <= cap)")
        self.base = base
        self.cap = cap
        self.reset_after = reset_after
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _now(self, now: float | None) -> float:
        return self.clock() if now is None else now

    def delay(self, key: str) -> float:
        """The delay currently armed for `key` (0 when it has no entry)."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.delay if entry else 0.0

    def remaining(self, key: str, now: float | None = None, since: float | None = None) -> float:
        """Seconds until `key` may be (re)started; 0 when it may start now."""
        now = self._now(now)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return 0.0
            start = max(since, entry.last) if since is not None else entry.last
            return max(0.0, start + entry.delay - now)

    def in_backoff(self, key: str, now: float | None = None, since: float | None = None) -> bool:
        return self.remaining(key, now, since) > 0.0

    def next(self, key: str, now: float | None = None, ran_for: float | None = None) -> float:
        """Record a (re)start attempt of `key` at `now` and return the delay armed for the next one.

        `ran_for` is how long the previous attempt ran; a clean run of at least `reset_after`
        seconds resets the delay to `base`.
        """
        now = self._now(now)
        with self._lock:
            entry = self._entries.get(key)
            stale = entry is not None and now - entry.last >= self.reset_after + entry.delay
            clean = ran_for is not None and ran_for >= self.reset_after
            if entry is None or stale or clean:
                entry = _Entry(delay=self.base, last=now)
            else:
                entry = _Entry(delay=min(entry.delay * 2, self.cap), last=now)
            self._entries[key] = entry
            return entry.delay

    def reset(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Forget every key for which `keep(key)` is false (e.g. keys of deleted pods)."""
        with self._lock:
            for key in [k for k in self._entries if not keep(k)]:
                del self._entries[key]

    def forget_prefixes(self, prefixes: Iterable[str]) -> None:
        ps = tuple(prefixes)
        if ps:
            self.retain(lambda k: not k.startswith(ps))

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)
