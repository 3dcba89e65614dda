"""The master's own Prometheus metrics, and Prometheus service discovery for the cluster.

Routes (`routes(...)`, served ahead of the API's catch-all; the master passes what they
need, this module knows nothing of the master's assembly):

* ``GET /metrics``: the master's series in the Prometheus text format, from a registry of
  its own (never the process-global one):

  - ``dockyard_apiserver_request_duration_seconds{verb,resource,code}`` (histogram) and
    ``dockyard_apiserver_requests_total{verb,resource,code}``: every API request, through
    `ApiServer.request_hooks`. ``verb`` is the HTTP method, with ``LIST`` for a GET of a
    collection (a watch is counted as a LIST: only its set-up time is measured);
    ``resource`` is ``pods``, ``deployments/scale``, ... and empty for other paths;
    The children of both metrics are looked up once per label tuple and kept, and found
    again by (method, path, code) in a bounded map: a request costs one dictionary lookup
    and the two updates;
  - ``dockyard_controller_sync_duration_seconds{controller}`` (histogram) and
    ``dockyard_controller_queue_depth{controller}`` (`reconcile.metrics`): registered here
    when the runners run in the master's process (`observe_sync` is their `on_sync` hook),
    else the controller-manager process's series, fetched at scrape time (`add_exposition`);
  - ``dockyard_store_size_bytes`` (database plus write-ahead log), ``dockyard_store_revision``.

* ``GET /prometheus/targets[?role=agent|master]``: Prometheus HTTP service discovery
  (``http_sd_configs``): a JSON list of target groups, one per node with an address and a
  ``dockyard.io/metrics-port`` annotation (``<InternalIP>:<port>``, labels ``node`` and
  ``__meta_dockyard_role="agent"``) plus the master itself (the host and port of its
  advertised URL, ``__meta_dockyard_role="master"``). The agents' endpoints are plain
  HTTP; the master's is HTTPS with the cluster CA.

Authentication: both routes want ``Authorization: Bearer <token>``, either the admin token
(any identity in ``system:masters``) or the read-only *scrape token* the master writes to
``<data-dir>/prometheus-token`` (mode 0600) at start: ``prometheus:`` plus an HMAC of the
cluster's node secret, so it is stable across restarts, needs no storage, and grants only
these two routes. Prometheus sends it with ``authorization: {credentials_file: ...}`` in
both the ``http_sd_configs`` and the scrape config of the master (see
``deploy/prometheus/prometheus.yml``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import ApiError
from ..objects.files import write_private
from ..objects.kinds import by_kind
from ..objects.nodeaddr import metrics_port, node_address
from ..reconcile.metrics import LATENCY_BUCKETS, ControllerMetrics, QueueDepths
from . import auth
from .app import ApiServer, parse_path

log = logging.getLogger("dockyard.api.metrics")
NODE = by_kind("v1", "Node")
SCRAPE_TOKEN_PREFIX = "prometheus:"
TOKEN_FILE = "prometheus-token"
TARGETS_PATH = "/prometheus/targets"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PATHS_KEPT = 4096  # (method, path, code) whose series `observe_request` remembers


def scrape_token(node_secret: bytes) -> str:
    mac = hmac.new(node_secret, b"dockyard prometheus scrape token", hashlib.sha256).hexdigest()
    return f"{SCRAPE_TOKEN_PREFIX}{mac}"


def write_scrape_token(data_dir: Path, token: str) -> Path:
    path = data_dir / TOKEN_FILE
    write_private(path, (token + "\n").encode())
    return path


def request_labels(method: str, path: str) -> tuple[str, str]:
    """(verb, resource) labels of an API request path."""
    try:
        target = parse_path(path)
    except ApiError:
        return method, ""
    resource = target.kind.resource + (f"/{target.subresource}" if target.subresource else "")
    verb = "LIST" if method == "GET" and target.name is None else method
    return verb, resource


def sd_targets(nodes: list[dict[str, Any]], master_url: str, role: str | None = None) -> list[dict[str, Any]]:
    """Prometheus http_sd target groups for the agents' and the master's metrics endpoints."""
    groups: list[dict[str, Any]] = []
    if role in (None, "", "agent"):
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            host, port = node_address(node), metrics_port(node)
            if not host or not port:
                continue
            if ":" in host:
                host = f"[{host}]"
            name = node["metadata"]["name"]
            groups.append({"targets": [f"{host}:{port}"],
                           "labels": {"node": name, "__meta_dockyard_role": "agent",
                                      "__meta_dockyard_node": name}})
    if role in (None, "", "master"):
        netloc = urlsplit(master_url).netloc
        groups.append({"targets": [netloc], "labels": {"__meta_dockyard_role": "master"}})
    return groups


class StoreStats(Protocol):
    def size_bytes(self) -> int: ...

    def current_revision(self) -> int: ...


class _StoreCollector(Collector):
    """The store's size and revision, read at scrape time."""

    def __init__(self, store: StoreStats) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dockyard_store_size_bytes", "Size of the store on disk (database and WAL).",
                                value=self.store.size_bytes())
        yield GaugeMetricFamily("dockyard_store_revision", "Current revision of the store.",
                                value=self.store.current_revision())


class MasterMetrics:
    def __init__(self, authn: auth.Authenticator, token: str, nodes: Callable[[], list[dict[str, Any]]],
                 master_url: str) -> None:
        self.authn = authn
        self.token = token
        self.nodes = nodes
        self.master_url = master_url
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "dockyard_apiserver_request_duration_seconds", "API request latency by verb, resource and code.",
            ["verb", "resource", "code"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("dockyard_apiserver_requests_total", "API requests by verb, resource and code.",
                                ["verb", "resource", "code"], registry=self.registry)
        # (verb, resource, code) -> the two children; (method, path, code) -> the same pair
        self._series: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._by_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # the controllers' series: here when they run in this process (`watch_state`), else
        # the exposition of the process that runs them, fetched at scrape time (`add_exposition`)
        self.controllers: ControllerMetrics | None = None
        self._expositions: list[Callable[[], Awaitable[bytes]]] = []

    # -- feeding ------------------------------------------------------------------------------

    def observe_request(self, method: str, path: str, code: int, seconds: float) -> None:
        try:
            series = self._by_request.get((method, path, code))
            if series is None:
                series = self._request_series(method, path, code)
            series[0].observe(seconds)
            series[1].inc()
        except Exception:  # measuring must never fail a request
            log.exception("could not record the metrics of %s %s", method, path)

    def _request_series(self, method: str, path: str, code: int) -> tuple[Any, Any]:
        """The (histogram, counter) children of a request, each looked up once per label
        tuple; remembered for its (method, path, code), at most `_PATHS_KEPT` of those."""
        verb, resource = request_labels(method, path)
        labels = (verb, resource, str(code))
        series = self._series.get(labels)
        if series is None:
            series = (self.request_seconds.labels(*labels), self.requests.labels(*labels))
            self._series[labels] = series
        if len(self._by_request) >= _PATHS_KEPT:
            self._by_request.clear()
        self._by_request[(method, path, code)] = series
        return series

    def observe_sync(self, controller: str, key: str, seconds: float, error: BaseException | None) -> None:
        """A runner's `on_sync` hook: one controller sync took `seconds`."""
        self._controllers().observe_sync(controller, key, seconds, error)

    def _controllers(self) -> ControllerMetrics:
        if self.controllers is None:
            self.controllers = ControllerMetrics(self.registry)
        return self.controllers

    def watch_state(self, runners: Sequence[QueueDepths], store: StoreStats) -> None:
        """Export the store's size and, when `runners` run in this process, their series."""
        self.registry.register(_StoreCollector(store))
        if runners:
            self._controllers().watch_queues(runners)

    def add_exposition(self, fetch: Callable[[], Awaitable[bytes]]) -> None:
        """Append what `fetch` returns (series in the text format, another process's) to
        every scrape; a failed fetch leaves them out of that scrape."""
        self._expositions.append(fetch)

    # -- serving ------------------------------------------------------------------------------

    def _allowed(self, request: Request) -> bool:
        token = auth.bearer_token(request.headers.get("authorization"))
        if token is None:
            return False
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return True
        user = self.authn.authenticate_token(token)
        return user is not None and auth.MASTERS in user.groups

    async def metrics(self, request: Request) -> Response:
        if not self._allowed(request):
            return _denied()
        body = generate_latest(self.registry)
        for fetch in self._expositions:
            try:
                body += await fetch()
            except Exception as e:  # the controller manager restarting: its series are absent once
                log.info("the controllers' metrics are not available: %s", e)
        return Response(body, media_type=CONTENT_TYPE)

    async def targets(self, request: Request) -> Response:
        if not self._allowed(request):
            return _denied()
        body = sd_targets(self.nodes(), self.master_url, request.query_params.get("role"))
        return Response(json.dumps(body), media_type="application/json")


def _denied() -> Response:
    err = ApiError(401, "Unauthorized", "a bearer token is required: the admin token or the scrape token "
                                        f"in <data-dir>/{TOKEN_FILE}")
    return Response(json.dumps(err.status()), status_code=401, media_type="application/json")


def routes(api: ApiServer, authn: auth.Authenticator, node_secret: bytes, data_dir: Path,
           nodes: Callable[[], list[dict[str, Any]]], master_url: str) -> tuple[MasterMetrics, list[BaseRoute]]:
    """The metrics of a master and their routes; API requests are measured at once (through
    `api.request_hooks`). The caller hands `observe_sync` to its runners (`on_sync`) and
    calls `watch_state` with them and the store."""
    token = scrape_token(node_secret)
    write_scrape_token(data_dir, token)
    mm = MasterMetrics(authn, token, nodes, master_url)
    api.request_hooks.append(mm.observe_request)
    return mm, [Route("/metrics", mm.metrics, methods=["GET"]), Route(TARGETS_PATH, mm.targets, methods=["GET"])]
