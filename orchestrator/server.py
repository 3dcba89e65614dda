"""Assembling and running the master (`dockyard master`) and the all-in-one `dockyard up`.

The master is one process. uvicorn serves the API over TLS on the main asyncio loop,
which only serves requests and watches. The controllers run in a `Runner` of their own
(the controller manager: a thread with its own event loop and shared informers), and so
does the scheduler; both talk to the registry in-process (it is thread-safe) and each can
be switched on and off as a unit (`start_controllers` / `stop_controllers`). Store
compaction and Event pruning run in a worker thread, off the API's loop. `up` adds a node
agent in a thread of the same process, with its own node identity, talking to the API
over HTTPS like any remote agent would.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from . import logs, nodecerts
from .api import mastermetrics, proxy, serving
from .api.app import ApiServer
from .api.auth import Authenticator
from .api.serving import api_server_config
from .autoscaling.metrics import make_source
from .client import Client, config_path
from .controllers.endpoints import EndpointsController
from .controllers.gc import GarbageCollector, NamespaceController
from .controllers.hpa import HorizontalPodAutoscalerController, sync_seconds_from_env
from .controllers.nodes import (
    DEFAULT_EVICTION_TIMEOUT,
    DEFAULT_NODE_GRACE,
    NodeLifecycleController,
    pod_cidr_hook,
)
from .controllers.services import DEFAULT_SERVICE_CIDR, service_allocation_hook
from .controllers.workloads import DeploymentController, ReplicaSetController
from .objects.files import write_private
from .objects.kinds import by_kind
from .pki import ClusterPKI, load_or_create_pki, node_token, write_kubeconfig
from .reconcile.events import EventRecorder
from .reconcile.runner import Runner
from .registry import Registry
from .registry.podadmission import pending_pods_hook
from .scheduler.loop import Scheduler
from .store import SQLiteStore

log = logging.getLogger("dockyard.master")

NODE = by_kind("v1", "Node")
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
HISTORY_KEPT = 20000  # revisions of history kept for watch resumption
# The API's loop shares the interpreter with the controller and scheduler threads. Three
# settings keep a busy reconcile from adding to a request's latency:
# * a thread that computes keeps the interpreter lock until a waiting thread has asked for it
#   for the switch interval (CPython's default is 5 ms): 0.5 ms bounds each wait;
# * the runners' threads run at a lower priority (Linux niceness): when both want the CPU,
#   requests go first and reconciles catch up (they are level-triggered);
# * the cyclic garbage collector stops every thread while it runs, and a full collection walks
#   every object the master holds (tens of ms per thousand pods): the objects of startup are
#   frozen out of it and full collections are made rare (gen2 after 100 gen1 collections, not
#   10); young generations are still collected often, which is where cyclic garbage dies.
SWITCH_INTERVAL = 0.0005
RUNNER_NICE = 5
GC_THRESHOLDS = (10_000, 10, 100)


def tune_interpreter() -> None:
    """Interpreter settings for a master process (see SWITCH_INTERVAL and GC_THRESHOLDS)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


@dataclass
class MasterConfig:
    data_dir: Path
    host: str = "0.0.0.0"
    port: int = 6443
    advertise_address: str | None = None
    kubeconfig_out: Path | None = None
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    service_cidr: str = DEFAULT_SERVICE_CIDR  # cluster DNS at its 10th address
    node_grace_seconds: float = DEFAULT_NODE_GRACE
    eviction_timeout_seconds: float = DEFAULT_EVICTION_TIMEOUT
    extra_sans: list[str] = field(default_factory=list)
    prometheus_url: str | None = None  # HPA metrics from Prometheus instead of the agents
    hpa_sync_seconds: float = field(default_factory=sync_seconds_from_env)
    max_pending_pods: int | None = None  # None: $DOCKYARD_MAX_PENDING_PODS or 1000; 0 turns it off

    @property
    def server_url(self) -> str:
        host = self.advertise_address or ("127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host)
        return f"https://{host}:{self.port}"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def primary_ip() -> str:
    """The address other machines most likely reach this one at (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: connect() on UDP only picks a route
        return str(s.getsockname()[0])
    return "127.0.0.1"


class _ApiServer(uvicorn.Server):
    """uvicorn's server, ending open watch streams as soon as shutdown begins: clients get the
    end of their stream (and watch again elsewhere) instead of a response cancelled when
    the graceful-shutdown timeout passes."""

    def __init__(self, config: uvicorn.Config, end_watches: Callable[[], None]) -> None:
        super().__init__(config)
        self._end_watches = end_watches

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._end_watches()
        await super().shutdown(sockets)


class Master:
    def __init__(self, cfg: MasterConfig) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(cfg.data_dir, 0o700)
        sans = [s for s in [cfg.advertise_address, cfg.host, *cfg.extra_sans] if s and s not in ("0.0.0.0", "::")]
        self.pki: ClusterPKI = load_or_create_pki(cfg.data_dir, sans)
        self.store = SQLiteStore(str(cfg.data_dir / "state.db"))
        self.registry = Registry(self.store)
        self.registry.ensure_namespaces()
        self.registry.create_hooks.setdefault("Node", []).append(pod_cidr_hook(self.registry, cfg.cluster_cidr))
        self.registry.create_hooks.setdefault("Pod", []).append(pending_pods_hook(self.registry, cfg.max_pending_pods))
        self.registry.create_hooks.setdefault("Service", []).append(
            service_allocation_hook(self.registry, cfg.service_cidr)
        )
        self.authn = Authenticator(self.pki.admin_token, self.pki.join_token, self.pki.node_secret)
        self.api = ApiServer(self.registry, self.authn, self.pki.ca_cert_pem, self.mint_node_token,
                             sign_serving_csr=self.sign_serving_csr)
        self.api.add_routes(proxy.routes(self.api, self.pki))
        self.metrics, metric_routes = mastermetrics.routes(
            self.api, self.authn, self.pki.node_secret, cfg.data_dir,
            lambda: self.registry.items(NODE), cfg.server_url)
        self.api.add_routes(metric_routes)
        recorder = EventRecorder(self.registry, "dockyard-controller-manager")
        self.events = recorder
        self.runner = Runner(
            self.registry,
            [
                DeploymentController(self.registry, recorder),
                ReplicaSetController(self.registry, recorder),
                GarbageCollector(self.registry),
                NamespaceController(self.registry),
                NodeLifecycleController(self.registry, recorder, cfg.node_grace_seconds, cfg.eviction_timeout_seconds),
                HorizontalPodAutoscalerController(
                    self.registry, recorder, sync_seconds=cfg.hpa_sync_seconds,
                    source_factory=lambda: make_source(self.registry, cfg.prometheus_url),
                ),
                EndpointsController(self.registry),
            ],
            name="controller-manager",
            on_sync=self.metrics.observe_sync,
            nice=RUNNER_NICE,
        )
        self.scheduler_runner = Runner(
            self.registry,
            [Scheduler(self.registry, EventRecorder(self.registry, "default-scheduler"))],
            name="scheduler",
            on_sync=self.metrics.observe_sync,
            nice=RUNNER_NICE,
        )
        self.runners = [self.runner, self.scheduler_runner]
        self.metrics.watch_state(self.runners, self.store)
        self.server: uvicorn.Server | None = None
        self.started = threading.Event()

    def mint_node_token(self, node_name: str) -> str:
        return node_token(self.pki.node_secret, node_name)

    def sign_serving_csr(self, node_name: str, csr_pem: bytes) -> bytes:
        return nodecerts.sign_csr(self.pki.ca_cert_pem, self.pki.ca_key_pem, node_name, csr_pem)

    def node_serving_cert(self, node_name: str) -> tuple[bytes, bytes]:
        """(certificate, key) PEM for the in-process agent's logs/exec endpoint."""
        return nodecerts.issue(self.pki.ca_cert_pem, self.pki.ca_key_pem, node_name)

    def write_credentials(self) -> Path:
        """Write the admin kubeconfig (data dir + the user's config path) and the join token."""
        admin = self.cfg.data_dir / "admin.kubeconfig"
        write_kubeconfig(admin, self.cfg.server_url, self.pki.ca_cert_pem, self.pki.admin_token)
        if self.cfg.kubeconfig_out:
            write_kubeconfig(self.cfg.kubeconfig_out, self.cfg.server_url, self.pki.ca_cert_pem, self.pki.admin_token)
        token_file = self.cfg.data_dir / "join-token"
        write_private(token_file, (self.pki.join_token + "\n").encode())
        return admin

    def admin_client(self) -> Client:
        return Client(self.cfg.server_url, self.pki.admin_token, self.pki.ca_cert_pem)

    def node_client(self, node_name: str) -> Client:
        return Client(self.cfg.server_url, self.mint_node_token(node_name), self.pki.ca_cert_pem)

    def start_controllers(self) -> None:
        """Start the controller manager and the scheduler (each in its own thread). Idempotent."""
        for runner in self.runners:
            runner.start()

    def stop_controllers(self) -> None:
        """Stop them and join their threads. Idempotent; they can be started again."""
        for runner in self.runners:
            runner.stop()

    def compact(self) -> None:
        """Compact the store's history and prune old Events (blocking: run it off the API loop)."""
        target = self.store.current_revision() - HISTORY_KEPT
        if target > self.store.compact_revision:
            self.store.compact(target)
        self.events.prune()

    async def _compact_loop(self) -> None:
        while True:
            await asyncio.sleep(60)
            try:
                await asyncio.to_thread(self.compact)
            except Exception:
                log.exception("compaction failed")

    async def serve(self) -> None:
        config = api_server_config(self.api.app, self.cfg.host, self.cfg.port,
                                   ssl_certfile=str(self.pki.server_cert_path),
                                   ssl_keyfile=str(self.pki.server_key_path))
        self.server = _ApiServer(config, self.store.close_watches)
        tune_interpreter()
        await asyncio.to_thread(self.start_controllers)
        compactor = asyncio.create_task(self._compact_loop())
        watcher = asyncio.create_task(self._signal_started())
        try:
            await self.server.serve()
        finally:
            compactor.cancel()
            watcher.cancel()
            await asyncio.to_thread(self.stop_controllers)
            self.store.close()

    async def _signal_started(self) -> None:
        while self.server is not None and not self.server.started:
            await asyncio.sleep(0.05)
        log.info("API server listening", extra={"url": self.cfg.server_url})
        self.started.set()

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True


def _master_config(args: Any) -> MasterConfig:
    host, port = parse_listen(args.listen)
    kube_out = getattr(args, "write_kubeconfig", None)
    return MasterConfig(
        data_dir=Path(args.data_dir),
        host=host,
        port=port,
        advertise_address=getattr(args, "advertise_address", None),
        kubeconfig_out=Path(os.path.expanduser(kube_out)) if kube_out else config_path(getattr(args, "kubeconfig", None)),
        node_grace_seconds=float(getattr(args, "node_grace", None) or DEFAULT_NODE_GRACE),
        eviction_timeout_seconds=float(
            DEFAULT_EVICTION_TIMEOUT if getattr(args, "eviction_timeout", None) is None else args.eviction_timeout
        ),
        cluster_cidr=getattr(args, "cluster_cidr", None) or DEFAULT_CLUSTER_CIDR,
        prometheus_url=getattr(args, "prometheus_url", None) or os.environ.get("DOCKYARD_PROMETHEUS_URL") or None,
        hpa_sync_seconds=float(getattr(args, "hpa_sync_period", None) or sync_seconds_from_env()),
        max_pending_pods=getattr(args, "max_pending_pods", None),
        service_cidr=getattr(args, "service_cidr", None) or DEFAULT_SERVICE_CIDR,
    )


def main_master(args: Any) -> int:
    logs.setup(os.environ.get("DOCKYARD_LOG_LEVEL", "INFO"))
    master = Master(_master_config(args))
    master.write_credentials()
    print(f"Dockyard master at {master.cfg.server_url}; admin kubeconfig {master.cfg.data_dir / 'admin.kubeconfig'}",
          flush=True)
    print(f"Join agents with: DOCKYARD_TOKEN=\"$(cat {master.cfg.data_dir / 'join-token'})\" "
          f"dockyard agent --server {master.cfg.server_url}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the SIGTERM it captured once it has shut down; with the default
        # action the process would die there, before the controllers stop and the store closes
        signal.signal(signal.SIGTERM, lambda *_: master.stop())
    serving.run(master.serve())
    return 0


def main_up(args: Any) -> int:
    """All-in-one: the master plus a local agent in the same process."""
    logs.setup(os.environ.get("DOCKYARD_LOG_LEVEL", "INFO"))
    cfg = _master_config(args)
    if cfg.advertise_address is None:
        cfg.advertise_address = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "127.0.0.1") else cfg.host
    master = Master(cfg)
    master.write_credentials()
    node_name = (getattr(args, "node_name", None) or socket.gethostname()).lower()
    stop = threading.Event()
    agent_thread: threading.Thread | None = None

    if not getattr(args, "no_agent", False):
        def run_agent() -> None:
            if not master.started.wait(60):
                log.error("the API server did not start; the local agent is not running")
                return
            from agent.main import Agent
            from agent.runtime import DockerRuntime

            try:
                runtime = DockerRuntime(network=getattr(args, "pod_network", None) or "dockyard-pods")
                agent = Agent(
                    master.node_client(node_name),
                    node_name,
                    primary_ip(),
                    runtime,
                    backoff_base=float(getattr(args, "backoff_base", None) or 10.0),
                    backoff_cap=float(getattr(args, "backoff_cap", None) or 300.0),
                    heartbeat=float(getattr(args, "heartbeat", None) or 2.0),
                    kubelet_port=getattr(args, "kubelet_port", None),
                    metrics_port=getattr(args, "metrics_port", None),
                    data_dir=cfg.data_dir / "agent",
                    serving_cert=master.node_serving_cert(node_name),
                    node_status_period=float(getattr(args, "node_status_period", None) or 60.0),
                    cleanup_on_exit=bool(getattr(args, "cleanup_on_exit", False)),
                )
                agent.run(stop)
            except Exception:
                log.exception("the local agent failed")
                master.stop()

        agent_thread = threading.Thread(target=run_agent, name="agent", daemon=True)
        agent_thread.start()

    print(f"Dockyard is starting: API {cfg.server_url}, node {node_name}, data {cfg.data_dir}", flush=True)
    print(f"Admin kubeconfig: {cfg.kubeconfig_out or cfg.data_dir / 'admin.kubeconfig'}", flush=True)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the SIGTERM it captured once it has shut down; with the default
        # action the process would die there, before the agent removes its network rules
        def on_sigterm(*_: Any) -> None:
            stop.set()
            master.stop()

        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        serving.run(master.serve())
    finally:
        stop.set()
        if agent_thread is not None:
            agent_thread.join(timeout=10)
    return 0


def _ignore_sigpipe() -> None:
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
