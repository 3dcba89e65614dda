"""The HorizontalPodAutoscaler controller: the effectful side of `autoscaling.replicas`.

Every sync period (15 s by default; `DOCKYARD_HPA_SYNC_SECONDS` or the master's
`hpa_sync_seconds`) and whenever an HPA's spec changes, the controller reads the target's
scale (Deployment or ReplicaSet, through the registry's scale subresource), lists the pods
its selector matches, asks the metrics source (`autoscaling.metrics`: the agents, or
Prometheus) for each metric, and hands everything to the pure `decide`. It then writes the
new scale, the HPA's status (currentReplicas, desiredReplicas, currentMetrics,
lastScaleTime, the AbleToScale / ScalingActive / ScalingLimited conditions) and Events.

Metric fetching is network I/O, and the runner calls `sync` on its event loop (shared by
the other controllers of the controller manager), so `sync` only starts an asyncio task
per HPA (never two at once for one HPA) and returns. When the runner stops, those rounds
are cancelled and the metrics source, whose HTTP clients belong to that loop, is made
again with `source_factory` (when given) for the next start. The
controller's own status writes come back as watch events; they do not trigger a new round
before the period has passed unless the spec (its generation) changed.

The per-HPA `History` (recommendations and scale events, for stabilization windows and
scaling policies) lives in memory, as in Kubernetes: a restarted master starts with a
fresh history, whose first recommendation is the current replica count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..autoscaling.metrics import MetricsSource, make_source
from ..autoscaling.replicas import (
    History,
    MetricError,
    Outcome,
    Tunables,
    decide,
    evaluate,
    failure_reason,
    needs_metrics,
    store_scale_event,
)
from ..errors import ApiError
from ..objects import Obj
from ..objects.access import ObjectAccess
from ..objects.kinds import Kind, UnknownKind, by_kind
from ..objects.timefmt import rfc3339
from ..reconcile.events import EventRecorder
from ..reconcile.runner import Controller, split_key
from ..registry import scale_of

log = logging.getLogger("dockyard.controllers.hpa")

HPA = by_kind("autoscaling/v2", "HorizontalPodAutoscaler")
POD = by_kind("v1", "Pod")
DEFAULT_SYNC_SECONDS = 15.0
CONDITION_ORDER = ("AbleToScale", "ScalingActive", "ScalingLimited")


def sync_seconds_from_env(default: float = DEFAULT_SYNC_SECONDS) -> float:
    try:
        return float(os.environ.get("DOCKYARD_HPA_SYNC_SECONDS") or default)
    except ValueError:
        return default


def merge_conditions(old: list[Obj], new: dict[str, tuple[str, str, str]], now: str) -> list[Obj]:
    """Set the conditions in `new`, keeping lastTransitionTime when a status did not change."""
    by_type = {c.get("type"): dict(c) for c in old or []}
    for ctype, (status, reason, message) in new.items():
        cond = by_type.get(ctype) or {"type": ctype}
        if cond.get("status") != status:
            cond["lastTransitionTime"] = now
        cond.update(status=status, reason=reason, message=message)
        by_type[ctype] = cond
    ordered = [by_type.pop(t) for t in CONDITION_ORDER if t in by_type]
    return ordered + list(by_type.values())


class HorizontalPodAutoscalerController(Controller):
    name = "horizontalpodautoscaler"
    watches = (HPA,)

    def __init__(self, registry: ObjectAccess, recorder: EventRecorder, source: MetricsSource | None = None,
                 sync_seconds: float | None = None, tunables: Tunables = Tunables(), *,
                 source_factory: Callable[[], MetricsSource] | None = None) -> None:
        super().__init__(registry)
        self.events = recorder
        self.source_factory = source_factory
        self.source = source or (source_factory() if source_factory else make_source(registry, None))
        self.resync_seconds = sync_seconds if sync_seconds is not None else sync_seconds_from_env()
        self.tunables = tunables
        self.histories: dict[str, History] = {}
        self._last: dict[str, tuple[float, int]] = {}  # key -> (monotonic start of last round, generation)
        self._running: dict[str, asyncio.Task[None]] = {}

    def keys_for(self, kind: Kind, event_type: str, obj: dict[str, Any]) -> Iterable[str]:
        keys = list(super().keys_for(kind, event_type, obj))
        if event_type == "DELETED":
            for key in keys:
                self.forget(key)
            return []
        return keys

    def all_keys(self) -> Iterable[str]:
        return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in self.registry.items(HPA)]

    async def stopped(self) -> None:
        rounds = [t for t in self._running.values() if not t.done()]
        for t in rounds:
            t.cancel()
        await asyncio.gather(*rounds, return_exceptions=True)
        self._running.clear()
        if self.source_factory is not None:
            self.source = self.source_factory()

    def forget(self, key: str) -> None:
        self.histories.pop(key, None)
        self._last.pop(key, None)

    def sync(self, key: str) -> None:
        ns, name = split_key(key)
        hpa = self.registry.try_get(HPA, ns, name)
        if hpa is None:
            self.forget(key)
            return
        generation = int(hpa["metadata"].get("generation") or 0)
        last = self._last.get(key)
        if last is not None and last[1] == generation and time.monotonic() - last[0] < 0.9 * self.resync_seconds:
            return  # our own status write, or an early resync
        running = self._running.get(key)
        if running is not None and not running.done():
            return
        self._last[key] = (time.monotonic(), generation)
        self._running[key] = asyncio.get_running_loop().create_task(self._round(key), name=f"hpa-{key}")

    async def _round(self, key: str) -> None:
        try:
            await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("autoscaling %s failed", key)

    # -- one round ------------------------------------------------------------------------

    async def _fetch(self, metric: Obj, namespace: str, pods: list[Obj]) -> Any:
        mtype = metric.get("type")
        if mtype == "Resource":
            return await self.source.pod_resource(namespace, pods, metric["resource"]["name"])
        if mtype == "ContainerResource":
            src = metric["containerResource"]
            return await self.source.pod_resource(namespace, pods, src["name"], src["container"])
        if mtype == "Pods":
            return await self.source.pods_metric(namespace, pods, metric["pods"]["metric"])
        if mtype == "Object":
            src = metric["object"]
            return await self.source.object_metric(namespace, src["describedObject"], src["metric"])
        if mtype == "External":
            return await self.source.external_metric(namespace, metric["external"]["metric"])
        raise MetricError(failure_reason(metric), f"unknown metric source type {mtype!r}")

    async def _outcome(self, metric: Obj, namespace: str, pods: list[Obj], spec_replicas: int,
                       status_replicas: int) -> Outcome:
        try:
            data = await self._fetch(metric, namespace, pods)
            replicas, status = evaluate(metric, data, spec_replicas, status_replicas, pods, time.time(),
                                        self.tunables)
            return Outcome(metric, replicas, status)
        except MetricError as e:
            return Outcome(metric, error=e)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            return Outcome(metric, error=MetricError(failure_reason(metric), f"invalid metric: {e}"))

    def _fail_scale(self, hpa: Obj, reason: str, message: str) -> None:
        self.events.record(hpa, "Warning", reason, message)
        self._write_status(hpa, {"AbleToScale": ("False", reason, f"the HPA controller was unable to get the "
                                                                  f"target's current scale: {message}")}, {})

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        ns = namespace or "default"  # HPAs are namespaced: their keys always name one
        hpa = self.registry.try_get(HPA, ns, name)
        if hpa is None or hpa["metadata"].get("deletionTimestamp"):
            return
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        try:
            kind = by_kind(ref.get("apiVersion") or "apps/v1", str(ref.get("kind")))
        except UnknownKind as e:
            self._fail_scale(hpa, "FailedGetScale", str(e))
            return
        if "scale" not in kind.subresources:
            self._fail_scale(hpa, "FailedGetScale", f"{kind.kind} has no scale subresource")
            return
        target = self.registry.try_get(kind, ns, str(ref.get("name")))
        if target is None:
            self._fail_scale(hpa, "FailedGetScale", f'{kind.resource}.{kind.group} "{ref.get("name")}" not found')
            return
        scale = scale_of(target)
        spec_replicas = int(scale["spec"]["replicas"] or 0)
        status_replicas = int(scale["status"]["replicas"] or 0)
        selector = scale["status"]["selector"]
        if not selector:
            self.events.record(hpa, "Warning", "SelectorRequired", "selector is required")
            self._write_status(hpa, {"ScalingActive": ("False", "InvalidSelector",
                                                       "the HPA target's scale is missing a selector")}, {})
            return
        pods = self.registry.list(POD, ns, selector)["items"]
        outcomes: list[Outcome] = []
        if needs_metrics(spec, spec_replicas):
            outcomes = list(await asyncio.gather(*(
                self._outcome(m, ns, pods, spec_replicas, status_replicas) for m in spec.get("metrics") or []
            )))
        history = self.histories.setdefault(key, History())
        now = time.time()
        d = decide(spec, spec_replicas, outcomes, history, now, self.tunables)
        hpa = self.registry.try_get(HPA, ns, name) or hpa  # fresh: the metric queries took a while
        if d.rescale:
            try:
                self.registry.update_scale(kind, ns, str(ref.get("name")), {"spec": {"replicas": d.desired}})
            except ApiError as e:
                message = f"New size: {d.desired}; reason: {d.reason}; error: {e.message}"
                self.events.record(hpa, "Warning", "FailedRescale", message)
                d.conditions["AbleToScale"] = ("False", "FailedUpdateScale",
                                               f"the HPA controller was unable to update the target scale: "
                                               f"{e.message}")
                self._write_status(hpa, d.conditions, {"currentReplicas": spec_replicas,
                                                       "currentMetrics": d.current_metrics or None})
                return
            store_scale_event(history, spec.get("behavior"), spec_replicas, d.desired, now, self.tunables)
        for etype, reason, message in d.events:
            self.events.record(hpa, etype, reason, message)
        fields: Obj = {"currentReplicas": spec_replicas, "currentMetrics": d.current_metrics or None}
        if not d.failed:
            fields["desiredReplicas"] = d.desired if d.rescale else spec_replicas
        if d.rescale:
            fields["lastScaleTime"] = rfc3339(self.registry.clock())
        self._write_status(hpa, d.conditions, fields)

    def _write_status(self, hpa: Obj, conditions: dict[str, tuple[str, str, str]], fields: Obj) -> None:
        meta = hpa["metadata"]
        for _attempt in range(3):
            status = dict(hpa.get("status") or {})
            status.update(fields)
            status = {k: v for k, v in status.items() if v is not None}
            status.setdefault("currentReplicas", 0)
            status.setdefault("desiredReplicas", status["currentReplicas"])
            status["observedGeneration"] = int(meta.get("generation") or 0)
            status["conditions"] = merge_conditions(status.get("conditions") or [], conditions,
                                                    rfc3339(self.registry.clock()))
            if status == hpa.get("status"):
                return
            hpa["status"] = status
            try:
                self.registry.update(HPA, meta["namespace"], meta["name"], hpa, "status")
                return
            except ApiError as e:
                if e.reason != "Conflict":
                    raise
                fresh = self.registry.try_get(HPA, meta["namespace"], meta["name"])
                if fresh is None:
                    return
                hpa = fresh
