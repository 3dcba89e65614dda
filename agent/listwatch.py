"""List, then watch, then resume: the agent's one reflector loop.

`ListWatch.run(stop)` keeps a local copy of one resource current, the way client-go's
reflector does:

* **list** once (``rv`` unknown): the items go to ``on_list`` (the caller replaces its cache),
  and the list's ``resourceVersion`` becomes ``rv``;
* **watch** from ``rv``: every ``ADDED``/``MODIFIED``/``DELETED`` event goes to ``on_event``,
  and the ``resourceVersion`` of every event object (``BOOKMARK`` included) becomes ``rv``;
  when the server ends the stream (its ``timeoutSeconds``), watch again from ``rv``;
* an ``ERROR`` event or a ``410 Gone`` answer means ``rv`` is too old: list again at once;
* any other ``ApiError`` (the master is unreachable — the client raises ``ConnectionFailed``,
  an ``ApiError`` — or answers 5xx) keeps ``rv``: wait, then watch again from it (a list if
  none was had yet), without a fresh list;
* anything else (a stream cut mid-line, bad JSON, a callback that raised) throws ``rv``
  away: wait, then list again;
* waits back off from ``initial_delay`` doubling to ``max_delay``, and start over from
  ``initial_delay`` once a watch stream ended cleanly;
* ``stop`` (a ``threading.Event``) ends the loop: it is checked before each request and each
  event, and the waits are ``stop.wait``.

The loop owns no I/O of its own: it is given the two calls (``list_fn() -> list object``,
``watch_fn(rv) -> iterable of events``), so a unit test drives it with a fake client and no
thread. Callbacks run on the loop's thread, one at a time and in stream order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from orchestrator.errors import ApiError
from orchestrator.objects import Obj

ListFn = Callable[[], Obj]  # the list object: {"metadata": {"resourceVersion"}, "items": [...]}
WatchFn = Callable[[str | None], Iterable[Obj]]  # watch events from a resourceVersion
OnList = Callable[[list[Obj]], None]
OnEvent = Callable[[str, Obj], None]  # (ADDED | MODIFIED | DELETED, object)

CHANGES = ("ADDED", "MODIFIED", "DELETED")
INITIAL_DELAY = 0.5
MAX_DELAY = 10.0


def _rv_of(obj: Obj) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None


class ListWatch:
    """One resource's list-watch-relist loop (see the module docstring)."""

    def __init__(
        self,
        what: str,
        list_fn: ListFn,
        watch_fn: WatchFn,
        on_list: OnList,
        on_event: OnEvent,
        *,
        log: logging.Logger | None = None,
        initial_delay: float = INITIAL_DELAY,
        max_delay: float = MAX_DELAY,
    ) -> None:
        self.what = what  # names the resource in log lines ("pod", "services", ...)
        self.list_fn = list_fn
        self.watch_fn = watch_fn
        self.on_list = on_list
        self.on_event = on_event
        self.log = log or logging.getLogger("dockyard.agent.listwatch")
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.rv: str | None = None  # where the next watch starts; None: list first
        self.delay = initial_delay  # the next wait after a failure

    def run(self, stop: threading.Event) -> None:
        """List and watch until `stop` is set."""
        while not stop.is_set():
            try:
                if self.rv is None:
                    self._list()
                if not self._watch(stop):
                    return
                self.delay = self.initial_delay
            except ApiError as e:
                if e.code == 410:
                    self.rv = None
                    continue
                self.log.warning("%s watch failed: %s; retrying in %.1fs", self.what, e, self.delay)
                self._back_off(stop)
            except Exception as e:  # a broken stream or bad JSON: start over from a fresh list
                self.log.warning("%s watch broke: %s; relisting in %.1fs", self.what, e, self.delay)
                self.rv = None
                self._back_off(stop)

    def _list(self) -> None:
        lst = self.list_fn()
        self.on_list(list(lst.get("items") or []))
        self.rv = _rv_of(lst)

    def _watch(self, stop: threading.Event) -> bool:
        """One watch stream from `rv`; False when `stop` ended it."""
        for ev in self.watch_fn(self.rv):
            if stop.is_set():
                return False
            etype, obj = ev.get("type"), ev.get("object") or {}
            if etype == "ERROR":
                self.log.info("%s watch: %s (code %s); relisting", self.what, obj.get("message"), obj.get("code"))
                self.rv = None
                break
            self.rv = _rv_of(obj) or self.rv
            if etype in CHANGES:
                self.on_event(str(etype), obj)
        return True

    def _back_off(self, stop: threading.Event) -> None:
        stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.max_delay)
