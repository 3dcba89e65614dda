"""Pod admission: a cluster-wide limit on pods waiting for a node (the pending pods limit).

A Dockyard safety valve, not a Kubernetes feature: Kubernetes has no default limit on how
many pods may wait for the scheduler (ResourceQuota, per namespace and opt-in, is the tool
there). Without one, a workload scaled to a huge count (2147483647 replicas is valid)
makes its controller create pods for as long as it runs, and every pending pod costs the
master memory (the scheduler's queue, the controllers' lists) and the store a row. With
it, once `limit` pods are not yet bound to a node, creating one more unbound pod is
refused with 403 Forbidden and a message that says which limit and what to do; the
ReplicaSet controller then stops its slow-start batches at that first refusal, records
FailedCreate and retries with backoff, so the refusal is cheap and the cluster keeps
working.

What counts: pods without `spec.nodeName`, not being deleted and not in a terminal phase
(Succeeded, Failed), in every namespace. Pods created with `spec.nodeName` already set are
neither counted nor refused: they never wait for the scheduler (they are how an operator
or a daemon-like controller puts a pod on the node it chose, and such a pod must still be
creatable while a flood elsewhere fills the pending queue). How many pods one node
accepts is a node-level limit (Kubernetes' kubelet `maxPods`), which this valve does not
replace.

The limit is the constructor's `limit`, else the environment variable
`DOCKYARD_MAX_PENDING_PODS`, else 1000; 0 (or less) turns the valve off.

Cost: the count is kept incrementally from a store watch on the pods' prefix (the set of
pending pod keys), so an admission costs the events written since the previous one, not
a list of every pod. The watch is a blocking-mode store watch filled synchronously by the
writer, and each admission drains it first, so the count is exact when the decision is
made (two concurrent creations may both pass at `limit - 1`: a slack of the concurrent
creations, fine for a safety valve). Admissions come from several threads (API requests on
the API's loop, the ReplicaSet controller on the controller manager's thread): the pending
set and the watch are only touched under `_lock`, the counting thread is started once
under it, and the watch is a blocking one, so no event loop is involved. A daemon thread
drains it too every `drain_seconds`, so events do not pile up while no pod is created. The
thread and the watch start at the first admission of an unbound pod; `close()` stops them
(closing the store does as well).

Depends only on the store, the kinds table and the API errors: no controller imports.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ..errors import ApiError
from ..objects import Obj
from ..objects.kinds import by_kind
from ..store import DELETE, Compacted, Store, StoreError, Watch
from .generic import Registry

log = logging.getLogger("dockyard.admission")


DEFAULT_MAX_PENDING_PODS = 1000
ENV_MAX_PENDING_PODS = "DOCKYARD_MAX_PENDING_PODS"
TERMINAL_PHASES = ("Succeeded", "Failed")
POD = by_kind("v1", "Pod")


def max_pending_pods_from_env(default: int = DEFAULT_MAX_PENDING_PODS) -> int:
    """`DOCKYARD_MAX_PENDING_PODS` as an int (0 or less: no limit), else `default`."""
    raw = (os.environ.get(ENV_MAX_PENDING_PODS) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_MAX_PENDING_PODS} must be an integer (0 for no limit), not {raw!r}") from None


def is_pending(pod: Obj) -> bool:
    """Not bound to a node, not being deleted, not finished: waiting for the scheduler."""
    return (
        not (pod.get("spec") or {}).get("nodeName")
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
    )


def refusal(pod: Obj, limit: int) -> ApiError:
    """The 403 for a pod over the limit. The message names the generateName when there is one
    (not the random name), so repeated refusals of one controller read the same."""
    meta = pod.get("metadata") or {}
    name = meta.get("generateName") or meta.get("name") or ""
    return ApiError(
        403,
        "Forbidden",
        f'pods "{name}" is forbidden: the cluster has reached its limit of {limit} pending pods '
        "(pods not yet bound to a node); wait for pending pods to be scheduled, add nodes or free "
        "capacity, or scale down the workloads that created them (the limit is the master's "
        f"--max-pending-pods, or {ENV_MAX_PENDING_PODS})",
        {"name": name, "kind": "pods"},
    )


class PendingPodLimit:
    """A Pod create hook (`registry.create_hooks["Pod"]`) that enforces the pending pods limit."""

    def __init__(self, store: Store, limit: int | None = None, *, drain_seconds: float = 0.5,
                 start_timeout: float = 5.0) -> None:
        self.store = store
        self.limit = max_pending_pods_from_env() if limit is None else int(limit)
        self.drain_seconds = drain_seconds
        self.start_timeout = start_timeout
        self._prefix = POD.prefix(None)
        self._lock = threading.Lock()  # guards _pending and _watch
        self._pending: set[str] = set()
        self._watch: Watch | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()

    # -- the hook ---------------------------------------------------------------------

    def __call__(self, pod: Obj) -> None:
        if self.limit <= 0 or not is_pending(pod):
            return
        count = self.count()
        if count is not None and count >= self.limit:
            raise refusal(pod, self.limit)

    def count(self) -> int | None:
        """Pending pods now; None when the count is not available (the store is closed, or
        the first list did not finish in time): the hook then admits."""
        self._start()
        if not self._ready.wait(self.start_timeout):
            log.warning("pending pods count not ready; admitting the pod")
            return None
        with self._lock:
            if self._watch is None:
                return None
            self._drain()
            return len(self._pending)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.close()
        self._ready.set()  # nobody waits for a count that will not come

    # -- the count --------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="pending-pods", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._relist()
                    self._ready.set()
                    while not self._stop.wait(self.drain_seconds):
                        with self._lock:
                            self._drain()
                            if self._watch is None or self._watch.closed:
                                break  # closed under us: list again (or stop, if the store is gone)
                except StoreError:
                    raise
                except Exception:
                    log.exception("the pending pods count failed; listing the pods again")
                    self._ready.set()  # meanwhile pods are admitted, not kept waiting
                    self._stop.wait(1.0)
        except StoreError:  # the store was closed: the master is stopping
            pass
        finally:
            with self._lock:
                if self._watch is not None:
                    self._watch.close()
                self._watch = None
            self._ready.set()

    def _relist(self) -> None:
        """List the pods and watch from the list's revision. Runs in the thread, which has no
        event loop: the store then makes a blocking-mode watch, filled by the writer itself."""
        while True:
            items, rev = self.store.list(self._prefix)
            try:
                watch = self.store.watch(self._prefix, rev)
            except Compacted:
                continue
            break
        pending = {kv.key for kv in items if is_pending(kv.value)}
        with self._lock:
            if self._watch is not None:
                self._watch.close()
            self._watch, self._pending = watch, pending

    def _drain(self) -> None:
        """Apply the queued events to the pending set (the caller holds the lock)."""
        watch = self._watch
        if watch is None:
            return
        while (ev := watch.get(timeout=0)) is not None:
            if ev.type != DELETE and is_pending(ev.kv.value):
                self._pending.add(ev.kv.key)
            else:
                self._pending.discard(ev.kv.key)


def pending_pods_hook(registry: Registry, limit: int | None = None) -> Callable[[Obj], None]:
    """The Pod create hook for `registry` (see the module docstring for `limit`)."""
    return PendingPodLimit(registry.store, limit)
