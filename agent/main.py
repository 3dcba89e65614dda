"""The node agent: join the cluster, register the Node, run the pods bound to it.

Threads of an ``Agent``:

* **watch**: lists then watches ``pods?fieldSelector=spec.nodeName=<node>`` across all
  namespaces, keeping a cache by pod uid; reconnects from the last resourceVersion after a
  network error and relists after ``410 Gone`` (the loop is ``agent.listwatch``). Each
  event wakes the reconcile loop.
* **lease**: renews the node's Lease in ``kube-node-lease`` every ``heartbeat`` seconds
  (default 2 s), the cheap liveness signal the master's node lifecycle controller reads.
* **node status**: posts the full Node status every ``node_status_period`` seconds (default
  60 s), and at once when the container runtime's health flips.
* **reconcile** (the caller of ``run``): every ``resync`` seconds hands each cached pod
  to a small thread pool (a full pass); a watch event hands over just its own pod, at
  once, so a burst of new pods does not re-sync every running pod per event. A relist, or
  a pod deleted or moved away, brings the full pass forward. A pod is never worked on by
  two threads at once; an event for a busy pod marks it dirty and it runs again right
  after. Containers of pods the cache does not know (after the first successful list) are
  orphans and get removed.

A pod worker is ``PodExecutor.sync``: observe the pod's containers, plan with
``agent.pods.compute_pod_actions``, execute the actions through ``DockerRuntime``,
observe again and compute the status with ``agent.status.compute_pod_status``. The
executor needs no API server, so it is also what the integration tests drive. The agent
then writes the status through ``/status`` when it changed (retrying on conflicts) and, for
a pod being deleted whose containers are all gone, finalizes the deletion with
``gracePeriodSeconds=0``.

Joining (``main_agent``): the CA is fetched from ``/cacerts`` without verification and
checked against the hash inside the join token (``K10<sha256 of the CA PEM>::node:<secret>``)
before anything is sent; the join token then buys a node credential, stored with the CA
under the data directory (mode 0600) and reused on restart.

The executor also owns the pod's surroundings: volumes (``agent.volumes``, prepared and
refreshed before planning, torn down when the pod's containers are gone), the container
environment (``agent.env``: ``valueFrom``/``envFrom``/``$(VAR)``, resolved at each start;
a missing required key waits as ``CreateContainerConfigError``; then the Service variables,
``agent.serviceenv``, from the Services the agent's watch-fed cache holds at that moment:
a start waits a few seconds for the cache's first list, as kubelet does, and is otherwise
retried as ``CreateContainerConfigError``) and probes
(``agent.probes``: the executor registers running containers with the ``Prober``, feeds its
health into both planners, and records why it killed a container whose liveness probe
failed). A probe result change calls back into the agent, which syncs that pod at once.

Stopping: the agent's exit (SIGTERM, an upgrade, a supervisor restart) leaves the node's
data plane in place — pods, Service rules, pod routes and the cluster DNS server (its own
process, ``agent.dnsserver``) keep working while no agent runs, and the next agent adopts
them (its rule rewrites are idempotent and atomic, it re-adopts containers by their labels
and keeps a ready container ready, see ``agent.probes``). It renews its Lease until it has
finished stopping, so the master's grace starts from the exit. Removing the data plane is an
explicit act: ``dockyard agent --cleanup`` (what ``dockyard node remove`` runs) or
``cleanup_on_exit``; see ``agent.dataplane``.

Hooks for later work: Events for starts/back-offs/probe kills.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from orchestrator import nodecerts
from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects import jointoken
from orchestrator.objects.files import write_private
from orchestrator.objects.kinds import by_kind

from .backoff import Backoff
from .env import (
    ClientConfigSource,
    ConfigError,
    ConfigSource,
    PodFacts,
    StaticConfigSource,
    expand_command,
    resolve_env,
)
from .images import ensure_images
from .listwatch import ListWatch
from .node import NODE, NodeManager, read_meminfo_kib
from .pods import (
    SANDBOX_NAME,
    Action,
    CreateSandbox,
    Health,
    KillContainer,
    KillPod,
    ObservedContainer,
    ObservedPod,
    RemoveContainer,
    StartContainer,
    app_specs,
    backoff_key,
    compute_pod_actions,
    init_specs,
    pod_uid,
)
from .probes import NetworkProbeRunner, Prober, Target
from .runtime import ContainerOptions, DockerRuntime, RuntimeFailure
from .serviceenv import service_env, with_service_env
from .status import StartError, compute_pod_status
from .volumes import VolumeError, VolumeManager

log = logging.getLogger("dockyard.agent")

POD = by_kind("v1", "Pod")
_SANDBOX_STARTS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dockyard-sandbox")
ORPHAN_GRACE = 10
DEFAULT_DATA_DIR = Path("/var/lib/dockyard-agent")
WATCH_TIMEOUT = 60
NODE_CREDENTIALS_PATH = "/apis/dockyard.io/v1/nodecredentials"
SERVICES_SYNC_WAIT = 5.0  # how long a container start waits for the Service cache's first list

# The Services of the cluster, or None while their first list has not arrived.
ServiceLister = Callable[[], list[dict[str, Any]] | None]


# -- executing actions ----------------------------------------------------------------------


@dataclass
class SyncResult:
    status: dict[str, Any]
    actions: list[Action] = field(default_factory=list)
    observed: ObservedPod | None = None
    finished: bool = False  # terminating pod with no container left


class PodExecutor:
    """Drives one pod towards its spec on the local runtime (no API server involved)."""

    def __init__(
        self,
        runtime: DockerRuntime,
        backoff: Backoff,
        node_ip: str = "",
        clock: Callable[[], float] = time.time,
        subnet: Callable[[], str | None] = lambda: None,
        *,
        config_source: ConfigSource | None = None,
        data_dir: Path | None = None,
        volumes: VolumeManager | None = None,
        prober: Prober | None = None,
        on_change: Callable[[str], None] | None = None,
        services: ServiceLister | None = None,
    ) -> None:
        self.runtime = runtime
        # Service variables for containers; None: no API behind this executor, no variables
        self.services = services
        self.backoff = backoff
        self.node_ip = node_ip
        self.clock = clock
        self.subnet = subnet
        self.config_source: ConfigSource = config_source or StaticConfigSource()
        self.volumes = volumes or VolumeManager(data_dir or DEFAULT_DATA_DIR, self.config_source)
        self.prober = prober or Prober(NetworkProbeRunner(runtime.exec_probe), clock, on_change)
        self.hooks = NetworkProbeRunner(runtime.exec_probe)  # lifecycle handlers share the probe handlers
        self.probe_kills = 0  # containers killed because a liveness/startup probe failed
        self._node_cpu = float(os.cpu_count() or 1)
        self._node_memory = (read_meminfo_kib() or 0) * 1024
        self._errors: dict[str, dict[str, StartError]] = {}
        self._notes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the prober's threads (containers keep running)."""
        self.prober.stop()

    def notes(self, uid: str) -> dict[str, str]:
        with self._lock:
            return dict(self._notes.get(uid, {}))

    def health(self, pod: dict[str, Any], observed: ObservedPod) -> dict[str, Health]:
        specs = {s["name"]: s for s in app_specs(pod)}
        return {
            c.id: self.prober.health(c.id, specs[c.name])
            for c in observed.containers
            if c.running and c.name in specs
        }

    def start_errors(self, uid: str) -> dict[str, StartError]:
        with self._lock:
            return dict(self._errors.get(uid, {}))

    def _set_error(self, uid: str, name: str, err: StartError | None) -> None:
        with self._lock:
            errs = self._errors.setdefault(uid, {})
            if err is None:
                errs.pop(name, None)
            else:
                errs[name] = err

    def forget(self, uid: str) -> None:
        with self._lock:
            self._errors.pop(uid, None)
            self._notes.pop(uid, None)
        self.backoff.forget_prefixes([f"{uid}/"])
        self.prober.forget(uid)

    def sync(self, pod: dict[str, Any]) -> SyncResult:
        uid = pod_uid(pod)
        now = self.clock()
        terminating = bool(pod.get("metadata", {}).get("deletionTimestamp"))
        observed = self.runtime.observe_pod(uid)
        if not terminating and pod.get("spec", {}).get("volumes"):
            self.volumes.prepare(pod)  # set up, or refresh projected ConfigMaps/Secrets
        actions = compute_pod_actions(pod, observed, now, self.backoff, self.health(pod, observed))
        if actions:
            self.execute(pod, observed, actions, now)
            observed = self.runtime.observe_pod(uid)
        if terminating:
            self.prober.forget(uid)
        else:
            self.prober.track(pod, observed)
            if self.prober.tracking():
                self.prober.start()
        status = compute_pod_status(
            pod,
            observed,
            now,
            self.backoff,
            host_ip=self.node_ip,
            start_errors=self.start_errors(uid),
            health=self.health(pod, observed),
            notes=self.notes(uid),
        )
        finished = terminating and not observed.all()
        if finished:
            self.volumes.teardown(uid)
        return SyncResult(status, actions, observed, finished=finished)

    def execute(self, pod: dict[str, Any], observed: ObservedPod, actions: list[Action], now: float) -> None:
        meta = pod.get("metadata", {})
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        sb = observed.sandbox()
        sandbox_id = sb.id if sb is not None and sb.running else None
        precreated: dict[int, str] = {}  # action index -> container created while the sandbox started
        for i, a in enumerate(actions):
            try:
                if isinstance(a, CreateSandbox):
                    log.info("pod %s: creating sandbox (attempt %d)", where, a.attempt)
                    sandbox_id = self.runtime.create_sandbox(pod, a.attempt, self.subnet(), self.node_ip)
                    # start and attach it while the next container is created (Docker lets
                    # a container join a sandbox that is not running yet)
                    starting = _SANDBOX_STARTS.submit(self.runtime.start_sandbox, sandbox_id)
                    nxt = actions[i + 1] if i + 1 < len(actions) else None
                    if isinstance(nxt, StartContainer):
                        cid = self._precreate(pod, nxt, sandbox_id)
                        if cid:
                            precreated[i + 1] = cid
                    try:
                        starting.result()
                    except RuntimeFailure:
                        for cid in precreated.values():
                            with contextlib.suppress(RuntimeFailure):
                                self.runtime.remove(cid)
                        raise
                elif isinstance(a, StartContainer):
                    if sandbox_id is None:
                        log.warning("pod %s: no sandbox to start %s in", where, a.name)
                        continue
                    self._start(pod, a, sandbox_id, now, precreated.pop(i, None))
                elif isinstance(a, KillContainer):
                    log.info("pod %s: stopping %s (%s, grace %ss)", where, a.name, a.reason, a.grace)
                    if a.reason in ("LivenessProbeFailed", "StartupProbeFailed"):
                        self._record_probe_kill(pod, a)
                    self.runtime.stop(a.id, self.pre_stop(pod, a.name, a.id, observed.pod_ip, a.grace))
                elif isinstance(a, RemoveContainer):
                    self.runtime.remove(a.id)
                elif isinstance(a, KillPod):
                    log.info("pod %s: killing pod (%s, grace %ss)", where, a.reason, a.grace)
                    self.kill_pod(observed, a.grace, pod)
            except RuntimeFailure as e:
                log.warning("pod %s: %s failed: %s", where, type(a).__name__, e)
                if isinstance(a, CreateSandbox):
                    return  # nothing else can run without the sandbox

    def _record_probe_kill(self, pod: dict[str, Any], a: KillContainer) -> None:
        what = "startup" if a.reason == "StartupProbeFailed" else "liveness"
        note = f"Container {a.name} failed {what} probe, will be restarted"
        meta = pod.get("metadata", {})
        log.info("pod %s/%s: %s", meta.get("namespace"), meta.get("name"), note)
        with self._lock:
            self._notes.setdefault(pod_uid(pod), {})[a.id] = note
            self.probe_kills += 1

    def options(self, pod: dict[str, Any], spec: dict[str, Any], sandbox_id: str) -> ContainerOptions:
        """Resolved env, expanded command/args and volume mounts (raises ConfigError/VolumeError)."""
        sb = self.runtime.observe_pod(pod_uid(pod)).sandbox() if spec.get("env") else None
        pod_ip = sb.ip if sb is not None and sb.id == sandbox_id and sb.ip else ""
        if not pod_ip and any(
            ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "").startswith("status.podIP")
            for e in spec.get("env") or []
        ):
            pod_ip = self.runtime.container_ip(sandbox_id)
        facts = PodFacts(pod_ip=pod_ip, host_ip=self.node_ip, node_cpu=self._node_cpu, node_memory=self._node_memory)
        services = self.service_env(pod)
        env = with_service_env(resolve_env(pod, spec, self.config_source, facts, services), services)
        command, args = expand_command(spec, env)
        mounts: list[Any] = []
        if spec.get("volumeMounts"):
            mounts = self.volumes.mounts(pod, spec, self.volumes.prepare(pod))
        return ContainerOptions(env=env, command=command, args=args, mounts=tuple(mounts))

    def service_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """The pod's Service variables (agent.serviceenv) from the Services known now."""
        if self.services is None:
            return {}
        deadline = time.monotonic() + SERVICES_SYNC_WAIT
        services = self.services()
        while services is None and time.monotonic() < deadline:
            time.sleep(0.05)
            services = self.services()
        if services is None:
            raise ConfigError("services have not yet been read at least once, cannot construct envvars")
        return service_env(services, pod)

    def _spec(self, pod: dict[str, Any], a: StartContainer) -> dict[str, Any] | None:
        specs = init_specs(pod) if a.init else app_specs(pod)
        return next((s for s in specs if s.get("name") == a.name), None)

    def _precreate(self, pod: dict[str, Any], a: StartContainer, sandbox_id: str) -> str | None:
        """Create `a`'s container ahead of its start; None if that fails (the start then
        tries again and reports the error the usual way)."""
        spec = self._spec(pod, a)
        if spec is None:
            return None
        try:
            options = self.options(pod, spec, sandbox_id)
            return self.runtime.create_container(pod, spec, sandbox_id, a.restart_count, options)
        except (RuntimeFailure, ConfigError, VolumeError):
            return None

    def _start(self, pod: dict[str, Any], a: StartContainer, sandbox_id: str, now: float,
               created: str | None = None) -> None:
        """Create (unless `created` already is its container) and start `a`'s container."""
        uid = pod_uid(pod)
        meta = pod.get("metadata", {})
        spec = self._spec(pod, a)
        if spec is None:
            return
        key = backoff_key(uid, a.name)
        if a.count_backoff:
            self.backoff.next(key, now, a.ran_for)
        log.info(
            "pod %s/%s: starting %s (restart %d, %s)",
            meta.get("namespace"), meta.get("name"), a.name, a.restart_count, a.reason,
        )
        try:
            if created is None:
                try:
                    options = self.options(pod, spec, sandbox_id)
                except (ConfigError, VolumeError) as e:
                    raise RuntimeFailure(e.message, e.reason) from None
                created = self.runtime.create_container(pod, spec, sandbox_id, a.restart_count, options)
            self.runtime.start(created)
            if not a.init:
                self.post_start(pod, spec, created)
        except RuntimeFailure as e:
            if e.reason == "RunContainerError":
                # The container exists, exited with the error; restart rules take it from here.
                self._set_error(uid, a.name, None)
                raise
            self._set_error(uid, a.name, StartError(e.reason, e.message, now))
            if not a.count_backoff:
                self.backoff.next(key, now)
            raise
        self._set_error(uid, a.name, None)

    def pre_stop(self, pod: dict[str, Any] | None, name: str, container_id: str, pod_ip: str, grace: int) -> int:
        """Run the container's `lifecycle.preStop` handler within the grace period, like kubelet.

        Returns the grace left for SIGTERM → SIGKILL; a handler that overruns (or fails) still
        leaves the container 2 s to stop, as kubelet does.
        """
        spec = next((s for s in [*app_specs(pod), *init_specs(pod)] if s.get("name") == name), None) if pod else None
        hook = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if not hook or grace <= 0:
            return grace
        started = time.monotonic()
        ok, message = self._run_handler(pod or {}, spec or {}, hook, container_id, pod_ip, float(grace))
        if not ok:
            meta = (pod or {}).get("metadata", {})
            log.warning("pod %s/%s: preStop hook of %s failed: %s", meta.get("namespace"), meta.get("name"), name, message)
        return max(grace - int(time.monotonic() - started), 2)

    def _run_handler(self, pod: dict[str, Any], spec: dict[str, Any], hook: dict[str, Any], container_id: str,
                     pod_ip: str, timeout: float) -> tuple[bool, str]:
        """Run a lifecycle handler (exec, httpGet, tcpSocket or sleep) against one container."""
        if isinstance(hook.get("sleep"), dict):
            time.sleep(min(float(hook["sleep"].get("seconds", 0)), timeout))
            return True, ""
        ports = {str(p["name"]): int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")}
        target = Target(pod_uid(pod), container_id, str(spec.get("name", "")), pod_ip, ports)
        return self.hooks.run(hook, target, timeout)

    def post_start(self, pod: dict[str, Any], spec: dict[str, Any], container_id: str) -> None:
        """Run the container's `lifecycle.postStart` handler right after its start, like kubelet:
        the pod's sync waits for it, and a failed handler gets the container killed (with the
        pod's grace), after which its restart policy applies. The terminated state then says
        why (``PostStartHookError: …``)."""
        hook = (spec.get("lifecycle") or {}).get("postStart")
        if not hook:
            return
        uid = pod_uid(pod)
        pod_ip = self.runtime.observe_pod(uid).pod_ip
        grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)
        ok, message = self._run_handler(pod, spec, hook, container_id, pod_ip, float(max(grace, 30)))
        if ok:
            return
        meta = pod.get("metadata", {})
        note = f"PostStartHookError: {message}"
        log.warning("pod %s/%s: postStart hook of %s failed (%s); killing the container",
                    meta.get("namespace"), meta.get("name"), spec.get("name"), message)
        with self._lock:
            self._notes.setdefault(uid, {})[container_id] = note
        self.runtime.stop(container_id, grace)

    def kill_pod(self, observed: ObservedPod, grace: int, pod: dict[str, Any] | None = None) -> None:
        """Stop app containers (in parallel: preStop hook, then `grace`), then sandboxes; remove all.

        `pod` (the spec) is known for pods being deleted, not for orphans: only the former get
        their preStop hooks.
        """
        running = [c for c in observed.containers if c.running]
        pod_ip = observed.pod_ip

        def stop(c: ObservedContainer) -> None:
            self.runtime.stop(c.id, self.pre_stop(pod, c.name, c.id, pod_ip, grace))

        if len(running) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
                list(pool.map(stop, running))
        elif running:
            stop(running[0])
        for sb in observed.sandboxes:
            if sb.running:
                self.runtime.stop(sb.id, grace)
        for c in observed.all():
            self.runtime.remove(c.id)

    def remove_orphan(self, observed: ObservedPod, grace: int = ORPHAN_GRACE) -> None:
        log.info("removing %d container(s) of unknown pod %s", len(observed.all()), observed.uid)
        self.kill_pod(observed, grace)
        self.forget(observed.uid)
        self.volumes.teardown(observed.uid)


# -- the agent ------------------------------------------------------------------------------


def _ensure_kind(pod: dict[str, Any]) -> dict[str, Any]:
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    return pod


class Agent:
    def __init__(
        self,
        client: Client,
        node_name: str,
        node_ip: str,
        runtime: DockerRuntime,
        backoff_base: float = 10.0,
        backoff_cap: float = 300.0,
        heartbeat: float = 2.0,
        resync: float = 2.0,
        workers: int = 8,
        clock: Callable[[], float] = time.time,
        kubelet_port: int | None = None,
        metrics_port: int | None = None,
        *,
        data_dir: Path = DEFAULT_DATA_DIR,
        probe_workers: int = 4,
        service_network: bool = True,
        serving_cert: tuple[bytes, bytes] | None = None,
        node_status_period: float = 60.0,
        cleanup_on_exit: bool = False,
    ) -> None:
        self.node_status_period = node_status_period  # full Node status posts (the Lease is the heartbeat)
        self.cleanup_on_exit = cleanup_on_exit  # remove service rules, routes and DNS when the agent exits
        self.serving_cert = serving_cert  # (cert, key) PEM signed by the cluster CA for the node name
        self.service_network = service_network  # pod routes, service rules and cluster DNS
        self.kubelet_port = kubelet_port  # HTTPS logs/exec endpoint (None: default, see agent.server)
        self.metrics_port = metrics_port  # plain-HTTP /metrics endpoint
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.runtime = runtime
        if runtime.node_name is None:
            runtime.bind_node(node_name)
        self.heartbeat_every = heartbeat
        self.resync = resync
        self.workers = workers
        self.backoff = Backoff(backoff_base, backoff_cap, clock=clock)
        self.node = NodeManager(client, node_name, node_ip, lambda: (runtime.info(), runtime.version()), clock)
        self.data_dir = Path(data_dir)
        self.executor = PodExecutor(
            runtime,
            self.backoff,
            node_ip,
            clock,
            subnet=lambda: self.node.pod_cidr,
            config_source=ClientConfigSource(client),
            data_dir=self.data_dir,
            prober=Prober(NetworkProbeRunner(runtime.exec_probe), clock, self._probe_changed, probe_workers),
            services=self._services,
        )
        self.pods: dict[str, dict[str, Any]] = {}
        self.synced = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self._finalized: set[str] = set()  # deleted by us; ignore until the watch says DELETED
        self._queued: set[str] = set()  # pods a watch event (or a busy re-run) asks to sync now
        self._full = True  # a full pass (every pod, orphans, volumes) is due at the next wake
        self._pool: ThreadPoolExecutor | None = None
        self._exited = threading.Event()  # run() has finished stopping (ends the Lease renewals)
        self.cluster_state: Any = None  # agent.serviceproxy.ClusterState once the service network runs
        self._field_selector = f"spec.nodeName={node_name}"

    def _services(self) -> list[dict[str, Any]] | None:
        """The Services for container variables: the service network's cache (None until its
        first list); none when that network does not run (no cache to read)."""
        state = self.cluster_state
        if state is None:
            return []
        return state.services() if state.synced.get("services") else None

    # -- lifecycle ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set. Pods keep running after the agent stops."""
        ensure_images(self.runtime)
        try:
            self.runtime.check_sandboxes()
        except RuntimeFailure as e:
            log.warning("checking the sandboxes' pod network links failed: %s", e)
        from .server import start_agent_server

        self.http = start_agent_server(self, stop)
        if not self._register(stop):
            return

        def wake_on_stop() -> None:
            stop.wait()
            self._wake.set()

        threads = [
            threading.Thread(target=wake_on_stop, name="dockyard-stop", daemon=True),
            threading.Thread(target=self._lease_loop, name="dockyard-lease", daemon=True),
            threading.Thread(target=self._watch_loop, args=(stop,), name="dockyard-watch", daemon=True),
            threading.Thread(target=self._status_loop, args=(stop,), name="dockyard-node-status", daemon=True),
        ]
        for t in threads:
            t.start()
        cleanup = self._start_service_network(stop) if self.service_network else (lambda: None)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="dockyard-pod")
        next_full = time.monotonic()
        try:
            while not stop.is_set():
                self._wake.wait(max(0.0, next_full - time.monotonic()))
                self._wake.clear()
                if stop.is_set():
                    break
                with self._lock:
                    full = self._full or time.monotonic() >= next_full
                    self._full = False
                    queued, self._queued = self._queued, set()
                try:
                    if full:
                        next_full = time.monotonic() + self.resync
                        self.sync_all()
                    else:
                        for uid in queued:
                            self._submit(uid, self._sync_pod)
                except Exception:
                    log.exception("resync failed")
        finally:
            if self.cleanup_on_exit:
                cleanup()  # first: the process may be given little time to exit
            else:
                log.info("agent stopping; pods, service rules, pod routes and cluster DNS stay in place")
            self.executor.close()
            self._pool.shutdown(wait=True, cancel_futures=True)  # pods being stopped finish
            threads[3].join(timeout=1)
            # the Lease was renewed all along (the master's grace starts from our exit)
            self._exited.set()
            threads[1].join(timeout=2)

    def _start_service_network(self, stop: threading.Event) -> Callable[[], None]:
        """Pod routes to other nodes, service rules and the node's DNS server (see
        agent.network, agent.serviceproxy, agent.dns); returns their cleanup."""
        from .dataplane import dns_state_dir
        from .dnsserver import NodeDNS
        from .network import NetChains, PodNetwork
        from .serviceproxy import Chains, ClusterState, ServiceProxy, chain_prefix

        try:
            self.runtime.ensure_network(self.node.pod_cidr)
            gateway, bridge = self.runtime.network_info()
        except RuntimeFailure as e:
            log.warning("pod network unavailable (%s); services and DNS are disabled", e)
            return lambda: None
        prefix = chain_prefix(self.runtime.network)
        state = ClusterState(self.client)
        self.cluster_state = state  # its Node watch also tells the status loop the master's view
        network = PodNetwork(state, self.node_name, NetChains(prefix), bridge=lambda: bridge)
        proxy = ServiceProxy(state, Chains(prefix))
        dns: NodeDNS | None = None
        if gateway:
            try:
                # its own process: it outlives this agent and the next one adopts it
                node_dns = NodeDNS(dns_state_dir(self.data_dir), gateway)

                def publish(res: str) -> None:
                    # both lists first: a Services-only view would briefly empty headless names
                    if res in ("services", "endpoints") and state.synced["services"] and state.synced["endpoints"]:
                        node_dns.update(state.services(), state.endpoints())

                state.listeners.append(publish)
                node_dns.start()
                dns = node_dns
                self.runtime.dns_servers = [gateway]
            except OSError as e:
                log.warning("cluster DNS cannot listen on %s:53: %s", gateway, e)
                dns = None
        workers = [
            threading.Thread(target=proxy.run, args=(stop,), name="dockyard-proxy", daemon=True),
            threading.Thread(target=network.run, args=(stop,), name="dockyard-network", daemon=True),
        ]

        def wake_on_stop() -> None:
            stop.wait()
            proxy.wake()
            network.wake()

        workers.append(threading.Thread(target=wake_on_stop, name="dockyard-network-stop", daemon=True))
        state.start(stop)
        for t in workers:
            t.start()
        proxy.wake()

        def cleanup() -> None:
            log.info("removing service rules, pod routes and cluster DNS")
            for t in workers:
                t.join(timeout=1)
            proxy.cleanup()
            network.cleanup()
            if dns is not None:
                dns.stop()
            log.info("service rules, pod routes and cluster DNS removed")

        return cleanup

    def _register(self, stop: threading.Event) -> bool:
        delay = 0.5
        while not stop.is_set():
            try:
                self.node.register()
                log.info("node %s registered (ip %s)", self.node_name, self.node_ip)
                return True
            except (ApiError, RuntimeFailure) as e:
                log.warning("registering node %s failed: %s; retrying in %.1fs", self.node_name, e, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
        return False

    def _own_node(self) -> dict[str, Any]:
        """The master's copy of our Node: from the service network's Node watch when it runs
        (no request), else one GET."""
        state = self.cluster_state
        if state is not None and state.synced["nodes"]:
            for node in state.nodes():
                if (node.get("metadata") or {}).get("name") == self.node_name:
                    return node
        return self.client.get(NODE, self.node_name)

    def _renew_lease_once(self) -> bool:
        try:
            self.node.renew_lease()
            return True
        except Exception as e:
            log.warning("renewing the node lease failed: %s", e)
            return False

    def _lease_loop(self) -> None:
        """Renew the node's Lease every `heartbeat` seconds (the first renewal at once), until
        the agent has finished stopping: pods it is still stopping when asked to exit keep
        their node alive, and the last renewal is the moment it leaves."""
        while True:
            self._renew_lease_once()
            if self._exited.wait(self.heartbeat_every):
                self._renew_lease_once()
                return

    def _status_loop(self, stop: threading.Event) -> None:
        """Post the full Node status every `node_status_period` seconds, and at once when the
        container runtime's health changes or the master's view of the node's readiness
        differs from ours (e.g. it marked us Unknown while we were cut off), checked with a
        cheap ping every few seconds against the Node the watch keeps (a read where none
        runs), as kubelet compares before it posts."""
        last = time.monotonic()
        check = min(max(self.heartbeat_every, 1.0), 5.0)
        while not stop.wait(check):
            try:
                self.runtime.ping()
                healthy = True
            except Exception:
                healthy = False
            try:
                seen = self._own_node()
                server_ready = next((c.get("status") for c in (seen.get("status") or {}).get("conditions") or []
                                     if c.get("type") == "Ready"), None)
            except Exception:
                server_ready = None  # the master is unreachable: the post below would fail too
            agree = server_ready is None or server_ready == ("True" if healthy else "False")
            if agree and healthy == self.node.runtime_ok and time.monotonic() - last < self.node_status_period:
                continue
            try:
                self.node.heartbeat()
                last = time.monotonic()
            except Exception as e:
                log.warning("posting node status failed: %s", e)

    # -- pod cache ------------------------------------------------------------------------

    def _replace_all(self, items: list[dict[str, Any]]) -> None:
        pods = {pod_uid(p): _ensure_kind(p) for p in items if pod_uid(p)}
        with self._lock:
            self._finalized &= set(pods)
            for uid in self._finalized:
                del pods[uid]
            self.pods = pods
            self.synced = True
            self._full = True
        self._wake.set()

    def _apply_event(self, etype: str, pod: dict[str, Any]) -> None:
        uid = pod_uid(pod)
        if not uid:
            return
        with self._lock:
            if etype == "DELETED":
                self._finalized.discard(uid)
            elif uid in self._finalized:
                return
            if etype == "DELETED" or pod.get("spec", {}).get("nodeName") != self.node_name:
                self.pods.pop(uid, None)
                self._full = True  # its containers are orphans now
            else:
                self.pods[uid] = _ensure_kind(pod)
                self._queued.add(uid)
        self._wake.set()

    def _watch_loop(self, stop: threading.Event) -> None:
        ListWatch(
            "pod",
            lambda: self.client.list(POD, all_namespaces=True, field_selector=self._field_selector),
            lambda rv: self.client.watch(
                POD,
                all_namespaces=True,
                resource_version=rv,
                field_selector=self._field_selector,
                timeout_seconds=WATCH_TIMEOUT,
            ),
            self._replace_all,
            self._apply_event,
            log=log,
        ).run(stop)

    # -- reconciling ----------------------------------------------------------------------

    def sync_all(self) -> None:
        with self._lock:
            uids = list(self.pods)
            synced = self.synced
        for uid in uids:
            self._submit(uid, self._sync_pod)
        if not synced:
            return
        known = set(uids)
        self.backoff.retain(lambda k: k.split("/", 1)[0] in known)
        self.executor.prober.retain(known)
        everything = self.runtime.observe_all()
        for uid, observed in everything.items():
            with self._lock:
                if uid in self.pods:
                    continue
            self._submit(uid, functools.partial(self._remove_orphan, observed=observed))
        with self._lock:
            busy = set(self._inflight) | set(self.pods)
        # Volumes of pods that are gone and have no container left (e.g. after an agent restart).
        self.executor.volumes.cleanup(busy | set(everything))

    def _probe_changed(self, uid: str) -> None:
        """A probe result changed: sync that pod now (its status follows the probe)."""
        if self._pool is None:
            self._wake.set()
            return
        self._submit(uid, self._sync_pod)

    def _submit(self, uid: str, fn: Callable[[str], None]) -> None:
        with self._lock:
            if uid in self._inflight:
                self._dirty.add(uid)
                return
            self._inflight.add(uid)
        assert self._pool is not None
        try:
            self._pool.submit(self._work, uid, fn)
        except RuntimeError:  # pool shutting down
            with self._lock:
                self._inflight.discard(uid)

    def _work(self, uid: str, fn: Callable[[str], None]) -> None:
        try:
            fn(uid)
        except Exception:
            log.exception("pod %s: sync failed", uid)
        finally:
            with self._lock:
                self._inflight.discard(uid)
                again = uid in self._dirty
                self._dirty.discard(uid)
                if again:
                    self._queued.add(uid)
            if again:
                self._wake.set()

    def _remove_orphan(self, uid: str, observed: ObservedPod) -> None:
        with self._lock:
            if uid in self.pods:
                return
        self.executor.remove_orphan(observed)

    def _sync_pod(self, uid: str) -> None:
        with self._lock:
            pod = self.pods.get(uid)
        if pod is None:
            return
        result = self.executor.sync(pod)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            if result.finished:
                log.info("pod %s/%s: stopped; finalizing deletion", meta.get("namespace"), meta.get("name"))
                try:
                    # this incarnation only: a new pod of the same name is not ours to delete
                    self.client.delete(POD, meta["name"], meta.get("namespace"), grace_period=0, uid=uid)
                except ApiError as e:
                    # Already gone (some API versions answer 403 for a vanished pod).
                    if e.code not in (403, 404, 409):
                        raise
                    if e.code == 409 and self._still_there(pod):
                        log.info("pod %s/%s: finalizing conflicted; the next resync retries",
                                 meta.get("namespace"), meta.get("name"))
                        return
                    log.debug("pod %s: finalizing: %s", uid, e)
                with self._lock:
                    self.pods.pop(uid, None)
                    self._finalized.add(uid)
                self.executor.forget(uid)
            return
        if result.status != pod.get("status"):
            self._write_status(pod, result.status)

    def _still_there(self, pod: dict[str, Any]) -> bool:
        """Whether this very pod (same uid) still exists on the API server."""
        meta = pod["metadata"]
        try:
            fresh = self.client.get(POD, meta["name"], meta.get("namespace"))
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return pod_uid(fresh) == pod_uid(pod)

    def _write_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        uid = pod_uid(pod)
        meta = pod["metadata"]
        based_on = {meta.get("resourceVersion")}
        body = dict(pod, status=status)
        for _ in range(3):
            try:
                new = self.client.replace_status(body)
            except ApiError as e:
                if e.code == 404:
                    return
                if e.code != 409:
                    raise
                fresh = self.client.get(POD, meta["name"], meta.get("namespace"))
                if pod_uid(fresh) != uid or fresh.get("status") == status:
                    return
                based_on.add((fresh.get("metadata") or {}).get("resourceVersion"))
                body = _ensure_kind(dict(fresh, status=status))
                continue
            # Keep our write in the cache unless the watch already brought something newer.
            with self._lock:
                cur = self.pods.get(uid)
                if cur is not None and cur.get("metadata", {}).get("resourceVersion") in based_on:
                    self.pods[uid] = _ensure_kind(new)
            return


# -- joining --------------------------------------------------------------------------------


class JoinError(Exception):
    """The agent could not join the cluster (bad token, CA mismatch, refused credential)."""


def parse_join_token(token: str) -> str:
    """The CA hash inside a `K10<sha256 hex>::node:<secret>` join token.

    An agent needs the hash to check the master's CA, so a bare secret is refused here.
    """
    try:
        ca_hash, _ = jointoken.parse_join_token(token)
    except jointoken.PKIError as e:
        raise JoinError(str(e)) from None
    if ca_hash is None:
        raise JoinError("malformed join token: expected K10<ca-sha256>::node:<secret>")
    return ca_hash


def fetch_ca(server: str, timeout: float = 10.0) -> bytes:
    # Unverified on purpose: the content is checked against the hash in the join token.
    try:
        r = httpx.get(f"{server.rstrip('/')}/cacerts", verify=False, timeout=timeout)
    except httpx.HTTPError as e:
        raise JoinError(f"cannot fetch the cluster CA from {server}: {e}") from None
    if r.status_code != 200:
        raise JoinError(f"cannot fetch the cluster CA from {server}: HTTP {r.status_code}")
    return r.content


@dataclass(frozen=True)
class Credentials:
    ca_pem: bytes
    token: str
    serving_cert: tuple[bytes, bytes] | None = None  # (certificate, key) PEM


def load_credentials(data_dir: Path, server: str, name: str, ca_hash: str) -> Credentials | None:
    try:
        meta = json.loads((data_dir / "agent.json").read_text())
        ca = (data_dir / "ca.crt").read_bytes()
        tok = (data_dir / "node-token").read_text().strip()
    except (OSError, ValueError):
        return None
    if meta.get("server") != server or meta.get("node") != name or not tok:
        return None
    if hashlib.sha256(ca).hexdigest() != ca_hash:
        return None
    try:
        serving = ((data_dir / "serving.crt").read_bytes(), (data_dir / "serving.key").read_bytes())
    except OSError:
        return None  # from before serving certificates: join again for one
    if nodecerts.needs_renewal(serving[0], name, ca):
        log.info("the agent's serving certificate is missing, for another name or expiring; joining again")
        return None
    return Credentials(ca, tok, serving)


def join(server: str, join_token: str, name: str, data_dir: Path) -> Credentials:
    """Verify the master against the token's CA hash and obtain a node credential."""
    ca_hash = parse_join_token(join_token)
    ca = fetch_ca(server)
    got = hashlib.sha256(ca).hexdigest()
    if got != ca_hash:
        raise JoinError(
            f"REFUSING TO JOIN: the CA served by {server} has sha256 {got}, but the join token "
            f"expects {ca_hash}. Wrong server or token, or someone is intercepting the connection."
        )
    csr, serving_key = nodecerts.make_csr(name)
    body = {"apiVersion": "dockyard.io/v1", "kind": "NodeCredential",
            "spec": {"nodeName": name, "password": node_password(data_dir), "servingCSR": csr.decode()}}
    with Client(server, join_token, ca) as c:
        try:
            resp = c.request("POST", NODE_CREDENTIALS_PATH, body)
        except ApiError as e:
            raise JoinError(f"the master refused the join request: {e.message}") from None
    status = ((resp or {}).get("status") or {}) if isinstance(resp, dict) else {}
    token = status.get("token")
    if not token:
        raise JoinError("the master answered the join request without a node token")
    cert = str(status.get("servingCertificate") or "").encode()
    if not cert or nodecerts.needs_renewal(cert, name, ca):
        raise JoinError("the master answered the join request without a valid serving certificate for "
                        f"{name} (is it older than this agent?)")
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    write_private(data_dir / "ca.crt", ca)
    write_private(data_dir / "node-token", token.encode())
    write_private(data_dir / "serving.key", serving_key)
    write_private(data_dir / "serving.crt", cert)
    write_private(data_dir / "agent.json", json.dumps({"server": server, "node": name}).encode())
    return Credentials(ca, token, (cert, serving_key))


def node_password(data_dir: Path) -> str:
    """This agent's own random node password (made once, kept in the data dir, 0600): the
    master binds the node name to it at the first join (see orchestrator.registry.nodepasswords)."""
    path = data_dir / "node-password"
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    password = secrets.token_hex(32)
    write_private(path, password.encode())
    return password


def credentials(server: str, join_token: str, name: str, data_dir: Path) -> Credentials:
    """Saved credentials when still valid, else a fresh join."""
    saved = load_credentials(data_dir, server, name, parse_join_token(join_token))
    if saved is not None:
        with Client(server, saved.token, saved.ca_pem) as c:
            try:
                c.request("GET", f"/api/v1/nodes/{name}")
                return saved
            except ApiError as e:
                if e.code != 401:
                    return saved  # 404 before the first registration, or the master is down
                log.warning("saved node credential was rejected; joining again")
    return join(server, join_token, name, data_dir)


def primary_ipv4() -> str:
    """The source address of the default route (no packet is sent), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def detect_node_ip(server: str) -> str:
    """The local IPv4 address used to reach the server host."""
    u = urlparse(server)
    host, port = u.hostname or "127.0.0.1", u.port or (443 if u.scheme == "https" else 80)
    try:
        addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return primary_ipv4()
    if ipaddress.ip_address(addr).is_loopback:
        return primary_ipv4()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((addr, port))
            return str(s.getsockname()[0])
        except OSError:
            return primary_ipv4()


def main_agent(args: argparse.Namespace) -> int:
    """Entry point of `dockyard agent`; returns the process exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if getattr(args, "cleanup", False):
        from .dataplane import teardown

        removed = teardown(Path(getattr(args, "data_dir", None) or DEFAULT_DATA_DIR),
                           getattr(args, "pod_network", None) or "dockyard-pods")
        print("removed: " + (", ".join(removed) if removed else "nothing (no data plane found)"))
        return 0
    server = str(args.server).rstrip("/")
    name = str(getattr(args, "name", None) or socket.gethostname()).lower()
    data_dir = Path(getattr(args, "data_dir", None) or "/var/lib/dockyard-agent")
    try:
        creds = credentials(server, args.token, name, data_dir)
    except JoinError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        runtime = DockerRuntime(
            base_url=getattr(args, "docker_url", None),
            node_name=name,
            network=getattr(args, "pod_network", None) or "dockyard-pods",
        )
        runtime.ping()
    except RuntimeFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    node_ip = getattr(args, "node_ip", None) or detect_node_ip(server)
    client = Client(server, creds.token, creds.ca_pem, user_agent="dockyard-agent")
    agent = Agent(
        client,
        name,
        node_ip,
        runtime,
        backoff_base=float(getattr(args, "backoff_base", None) or 10.0),
        backoff_cap=float(getattr(args, "backoff_cap", None) or 300.0),
        heartbeat=float(getattr(args, "heartbeat", None) or 2.0),
        kubelet_port=getattr(args, "kubelet_port", None),
        metrics_port=getattr(args, "metrics_port", None),
        data_dir=data_dir,
        serving_cert=creds.serving_cert,
        node_status_period=float(getattr(args, "node_status_period", None) or 60.0),
        cleanup_on_exit=bool(getattr(args, "cleanup_on_exit", False)),
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info("agent %s starting against %s", name, server)
    try:
        agent.run(stop)
    except RuntimeFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


__all__ = ["Agent", "PodExecutor", "SyncResult", "JoinError", "main_agent", "detect_node_ip", "SANDBOX_NAME"]
