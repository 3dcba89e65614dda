"""The controllers' Prometheus series, in whichever process runs them.

* ``dockyard_controller_sync_duration_seconds{controller}`` (histogram): each controller's
  `sync`, the scheduler's included (one sync is one scheduling attempt), fed by the runners'
  `on_sync` hook (`ControllerMetrics.observe_sync`, called from the runners' threads; the
  prometheus_client metrics are thread-safe);
* ``dockyard_controller_queue_depth{controller}``: keys waiting in each work queue, read at
  scrape time.

The master's `/metrics` holds them: registered in its own registry when the controllers run
in its process, or, when they run in the controller-manager process, that process's
exposition (`exposition()`) appended to the master's at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class QueueDepths(Protocol):
    """What the metrics read of a controller runner (`reconcile.runner.Runner`)."""

    def queue_depth(self) -> dict[str, int]: ...


class _QueueCollector(Collector):
    def __init__(self, runners: Sequence[QueueDepths]) -> None:
        self.runners = list(runners)

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("dockyard_controller_queue_depth", "Keys waiting in a controller's work queue.",
                                  labels=["controller"])
        depths: dict[str, int] = {}
        for runner in self.runners:
            depths.update(runner.queue_depth())
        for name, n in sorted(depths.items()):
            depth.add_metric([name], n)
        yield depth


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.sync_seconds = Histogram(
            "dockyard_controller_sync_duration_seconds", "Duration of one controller sync (the scheduler's "
            "is one scheduling attempt).", ["controller"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe_sync(self, controller: str, key: str, seconds: float, error: BaseException | None) -> None:
        """A runner's `on_sync` hook: one controller sync took `seconds`."""
        self.sync_seconds.labels(controller).observe(seconds)

    def watch_queues(self, runners: Sequence[QueueDepths]) -> None:
        self.registry.register(_QueueCollector(runners))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
