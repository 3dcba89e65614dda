"""The scheduler's effectful side: keep a cache from watches, decide, bind or explain.

The scheduler runs in a controller runner of its own (a thread and event loop apart from
the API's and the controller manager's), so its state (the cache, the pending and parked
pods) is only touched from that thread: from `keys_for`, `all_keys` and `sync`.

The controller never lists the registry per pod. Its pod and node informers (delivered by
the controller runtime through `keys_for`) update a `SchedulerCache` incrementally and
track the pending pods (no `spec.nodeName`, not being deleted, ours by `schedulerName`);
each pending pod's key goes on the runtime's deduplicating queue. `sync(key)` takes the
pending pod from memory, decides on the cache (`SchedulerCache.schedule`: rotating node
order, stop after enough feasible nodes), assumes the pod on the chosen node so the next
decision sees it, and persists the binding with `registry.bind` (a CAS write of
`spec.nodeName` and PodScheduled=True). A failed bind forgets the assumption; the runtime
retries with backoff. A bind result is fed back into the cache, so the watch's own copy of
that write, arriving later, is a no-op (and older events are ignored by resourceVersion).

A pod that fits nowhere is parked, like kube-scheduler's unschedulable queue: it gets
`PodScheduled=False` (reason Unschedulable) with the per-node explanation and a
FailedScheduling event, then waits. It is retried once its backoff (1s doubling to 10s)
has passed *and* something happened that may let it fit (a node added or changed in what
the filters read, a bound pod deleted or finished), or after `MAX_PARKED_SECONDS` anyway.
Node heartbeats therefore do not re-run every unschedulable pod. The status is rewritten
only when the message changes, and the event is repeated at most every
`EVENT_INTERVAL_SECONDS` while the message stays the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ApiError
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, by_kind
from ..reconcile.events import EventRecorder
from ..reconcile.runner import Controller, split_key
from ..registry import set_condition
from .cache import PodInfo, SchedulerCache, pod_uid
from .core import ScheduleResult

POD = by_kind("v1", "Pod")
NODE = by_kind("v1", "Node")

INITIAL_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
MAX_PARKED_SECONDS = 60.0
EVENT_INTERVAL_SECONDS = 60.0


def is_pending(pod: dict) -> bool:
    return (
        not pod.get("spec", {}).get("nodeName")
        and not pod["metadata"].get("deletionTimestamp")
        and pod.get("spec", {}).get("schedulerName", "default-scheduler") == "default-scheduler"
    )


def pod_key(pod: dict) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace') or 'default'}/{meta['name']}"


@dataclass
class Parked:
    """An unschedulable pod waiting for a cluster change and its backoff."""

    attempts: int
    retry_at: float  # monotonic
    parked_at: float
    moves_seen: int  # the scheduler's move counter when parked
    message: str = ""
    reported_at: float = float("-inf")


class Scheduler(Controller):
    name = "scheduler"
    watches = (POD, NODE)
    resync_seconds = 1.0

    def __init__(self, registry: ObjectAccess, recorder: EventRecorder, *,
                 percentage_of_nodes_to_score: int = 0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(registry)
        self.events = recorder
        self.cache = SchedulerCache(percentage_of_nodes_to_score)
        self.pending: dict[str, PodInfo] = {}  # "ns/name" -> pod without a node
        self.parked: dict[str, Parked] = {}
        self.moves = 0  # cluster changes that may let parked pods fit
        self.monotonic = monotonic
        self.bound = 0

    # -- watch events -> cache and keys -------------------------------------------------------

    def keys_for(self, kind: Kind, event_type: str, obj: dict) -> Iterable[str]:
        if kind is NODE:
            name = obj.get("metadata", {}).get("name", "")
            if event_type == "DELETED":
                self.cache.remove_node(name)
                return []
            return self._moved() if self.cache.set_node(obj) else []
        key = pod_key(obj)
        if event_type == "DELETED":
            freed = self.cache.remove_pod(obj)
            current = self.pending.get(key)
            if current is not None and current.uid == pod_uid(obj):
                self.pending.pop(key, None)
                self.parked.pop(key, None)
            return self._moved() if freed else []
        info, freed = self.cache.set_pod(obj)
        if info is None:  # older than what the cache has seen
            return []
        keys: list[str] = []
        if is_pending(obj):
            self.pending[key] = info
            if key not in self.parked:
                keys.append(key)
        else:
            self.pending.pop(key, None)
            self.parked.pop(key, None)
        if freed:
            keys.extend(self._moved())
        return keys

    def _moved(self) -> list[str]:
        """Record a helpful cluster change; parked pods past their backoff go back to the queue."""
        self.moves += 1
        now = self.monotonic()
        return [k for k, p in self.parked.items() if p.retry_at <= now]

    def all_keys(self) -> Iterable[str]:
        now = self.monotonic()
        keys = [k for k in self.pending if k not in self.parked]
        keys.extend(k for k, p in self.parked.items() if p.retry_at <= now and (
            p.moves_seen < self.moves or now - p.parked_at >= MAX_PARKED_SECONDS))
        return keys

    # -- decisions ----------------------------------------------------------------------------

    def decide(self, info: PodInfo) -> ScheduleResult:
        return self.cache.schedule(info)

    def sync(self, key: str) -> None:
        info = self.pending.get(key)
        if info is None:
            return
        result = self.decide(info)
        if not result.node:
            self._unschedulable(key, info, result.reason)
            return
        ns, name = split_key(key)
        assumed = self.cache.assume(info, result.node)
        try:
            bound = self.registry.bind(ns or "default", name, result.node, info.uid) or assumed.pod
        except BaseException as e:
            self.cache.forget(info)
            if isinstance(e, ApiError) and e.code == 404:
                self.pending.pop(key, None)
                self.parked.pop(key, None)
                return
            raise
        self.cache.set_pod(bound)
        self.pending.pop(key, None)
        self.parked.pop(key, None)
        self.bound += 1
        self.events.record(bound, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {result.node}")

    def _unschedulable(self, key: str, info: PodInfo, reason: str) -> None:
        now = self.monotonic()
        parked = self.parked.get(key)
        if parked is None:
            parked = self.parked[key] = Parked(0, now, now, self.moves)
        parked.attempts += 1
        parked.retry_at = now + min(INITIAL_BACKOFF_SECONDS * 2 ** (parked.attempts - 1), MAX_BACKOFF_SECONDS)
        parked.parked_at = now
        parked.moves_seen = self.moves
        if reason == parked.message and now - parked.reported_at < EVENT_INTERVAL_SECONDS:
            return
        ns, name = split_key(key)
        pod = self.registry.try_get(POD, ns, name)
        if pod is None or not is_pending(pod):
            return
        if set_condition(pod, "PodScheduled", "False", "Unschedulable", reason, self.registry.clock()):
            try:
                self.registry.update(POD, ns, name, pod, "status")
            except ApiError as e:
                if e.code != 404:
                    raise
        parked.message = reason
        parked.reported_at = now
        self.events.record(pod, "Warning", "FailedScheduling", reason)
