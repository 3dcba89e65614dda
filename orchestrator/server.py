"""Assembling and running the master (`dockyard master`) and the all-in-one `dockyard up`.

uvicorn serves the API over TLS on the main asyncio loop, which only serves requests and
watches. The controllers (the controller manager: a `Runner` with shared informers) and
the scheduler (a `Runner` of its own) run, by default, in a child process that reaches the
objects through the API (`controllermanager.ControllerManagerProcess`: started once the API
serves, started again if it dies, stopped first when the master stops, and gone with the
master even after `kill -9`); the API's process then has its interpreter to itself. With
`--controller-manager thread` (and for a `Master` made in code) they run in threads of
this process instead, on the registry (it is thread-safe). Either way each unit can be
switched on and off (`start_controllers` / `stop_controllers`). Store compaction and Event
pruning run in a worker thread, off the API's loop. `up` adds a node agent in a thread of
the same process, with its own node identity, talking to the API over HTTPS like any
remote agent would.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
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
from .client import Client, config_path
from .controllermanager import ControllerManagerProcess, build_runners, child_argv, child_env
from .controllers.hpa import sync_seconds_from_env
from .controllers.kubernetesservice import MasterEndpoint
from .controllers.nodes import (
    DEFAULT_EVICTION_TIMEOUT,
    DEFAULT_NODE_GRACE,
    pod_cidr_hook,
)
from .controllers.services import DEFAULT_SERVICE_CIDR, service_allocation_hook
from .objects.files import write_private
from .objects.kinds import by_kind
from .pki import ClusterPKI, load_or_create_pki, node_token, write_kubeconfig
from .reconcile.events import EventRecorder
from .registry import Registry
from .registry.podadmission import pending_pods_hook
from .store import SQLiteStore

log = logging.getLogger("dockyard.master")

NODE = by_kind("v1", "Node")
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
HISTORY_KEPT = 20000  # revisions of history kept for watch resumption
# The API's loop shares the interpreter with the local agent's threads and, in thread mode,
# with the controller and scheduler threads. Three settings keep them from adding to a
# request's latency:
# * a thread that computes keeps the interpreter lock until a waiting thread has asked for it
#   for the switch interval (CPython's default is 5 ms): 0.5 ms bounds each wait;
# * the runners' threads run at a lower priority (Linux niceness): when both want the CPU,
#   requests go first and reconciles catch up (they are level-triggered);
# * the cyclic garbage collector stops every thread while it runs, and a full collection walks
#   every object the master holds (tens of ms per thousand pods): the objects of startup are
#   frozen out of it and full collections are made rare (gen2 after 100 gen1 collections, not
#   10); young generations are still collected often, which is where cyclic garbage dies.
SWITCH_INTERVAL = 0.0005
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
    # the controllers and the scheduler: in a child process using the API (`dockyard master`
    # and `up`), or in threads of this process (False: the default for a Master made in code)
    controllers_process: bool = False

    @property
    def loopback_url(self) -> str:
        """The URL this machine's own processes use (the serving certificate names 127.0.0.1)."""
        if self.host in ("0.0.0.0", "::", "", "127.0.0.1", "localhost"):
            return f"https://127.0.0.1:{self.port}"
        return f"https://[{self.host}]:{self.port}" if ":" in self.host else f"https://{self.host}:{self.port}"

    @property
    def server_url(self) -> str:
        host = self.advertise_address or ("127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host)
        return f"https://{host}:{self.port}"

    @property
    def master_endpoint(self) -> MasterEndpoint | None:
        """Where pods reach the API (the `default/kubernetes` Endpoints): the advertised
        address, else the listen address; a loopback or wildcard one stands for this
        machine's primary address, as kube-apiserver falls back to its default interface
        (pods cannot reach the node's loopback). A host name is resolved; None if it cannot be."""
        host = self.advertise_address or self.host
        if host in ("0.0.0.0", "::", "", "localhost"):
            host = primary_ip()
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            try:
                addr = ipaddress.ip_address(socket.gethostbyname(host))
            except (OSError, ValueError):
                return None
        if addr.is_loopback or addr.is_unspecified:
            addr = ipaddress.ip_address(primary_ip())
        return MasterEndpoint(str(addr), self.port)


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
    the graceful-shutdown timeout passes. `first` runs before that (blocking, in a worker
    thread): the master stops its controller-manager process there, while the API still
    answers its last writes."""

    def __init__(self, config: uvicorn.Config, end_watches: Callable[[], None],
                 first: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._end_watches = end_watches
        self._first = first

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._first is not None:
            await asyncio.to_thread(self._first)
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
        self.events = EventRecorder(self.registry, "dockyard-controller-manager")  # pruning, in compact()
        self.runner, self.scheduler_runner = build_runners(
            self.registry, node_grace_seconds=cfg.node_grace_seconds,
            eviction_timeout_seconds=cfg.eviction_timeout_seconds, hpa_sync_seconds=cfg.hpa_sync_seconds,
            prometheus_url=cfg.prometheus_url, on_sync=self.metrics.observe_sync,
            master_endpoint=cfg.master_endpoint,
        )
        self.runners = [self.runner, self.scheduler_runner]
        self.controller_process: ControllerManagerProcess | None = None
        if cfg.controllers_process:
            kubeconfig = cfg.data_dir / "controller-manager.kubeconfig"
            write_kubeconfig(kubeconfig, cfg.loopback_url, self.pki.ca_cert_pem, self.pki.admin_token)
            source_root = str(Path(__file__).resolve().parents[1])
            env = child_env(dict(os.environ), cfg.master_endpoint)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
            self.controller_process = ControllerManagerProcess(child_argv(
                kubeconfig, node_grace_seconds=cfg.node_grace_seconds,
                eviction_timeout_seconds=cfg.eviction_timeout_seconds, hpa_sync_seconds=cfg.hpa_sync_seconds,
                prometheus_url=cfg.prometheus_url), env)
            proc = self.controller_process
            self.metrics.add_exposition(lambda: asyncio.to_thread(proc.fetch_metrics))
            self.metrics.watch_state([], self.store)
        else:
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
        """Start the controller manager and the scheduler (their process, or a thread each). Idempotent."""
        if self.controller_process is not None:
            self.controller_process.start()
            return
        for runner in self.runners:
            runner.start()

    def stop_controllers(self) -> None:
        """Stop them (and wait for them). Idempotent; they can be started again."""
        if self.controller_process is not None:
            self.controller_process.stop()
            return
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
        self.server = _ApiServer(config, self.store.close_watches,
                                 self.stop_controllers if self.controller_process is not None else None)
        tune_interpreter()
        if self.controller_process is None:
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
        if self.controller_process is not None:
            await asyncio.to_thread(self.start_controllers)  # it reaches the objects through the API
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
        controllers_process=getattr(args, "controller_manager", "process") == "process",
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
