"""The controller manager and the scheduler, and the process that runs them.

`build_runners` assembles the two units (the controller manager: Deployment, ReplicaSet,
garbage collector, namespace, node lifecycle, HPA, Endpoints and EndpointSlice controllers, and the
in-cluster API Service `default/kubernetes` when told the master's endpoint; the scheduler)
over any `ObjectAccess`: the registry itself, or `reconcile.remote.ApiRegistry` (the API).

By default the master runs them in a child process, `dockyard controller-manager`, reaching
the objects through the API like kube-controller-manager and kube-scheduler do: the API
server's process then has an interpreter of its own, so no reconcile holds the lock a
request needs (threads of one process share it). `ControllerManagerProcess` supervises the
child from the master:

* it is started once the API serves, with a kubeconfig of its own (loopback URL, mode 0600)
  and at a lower CPU priority (`nice`), and started again (backoff 1 s doubling to 30 s) if
  it exits while it should run;
* its stdin is a pipe from the master: when the master dies, even by `kill -9`, the child
  reads end-of-file and stops, so there is never a controller manager without a master
  (nor two of them after the master restarts);
* the same pipes carry the child's metrics: the master writes ``metrics`` on a line, the
  child answers with its series in the text format (a length line, then the bytes), which
  the master appends to its own `/metrics`;
* SIGTERM stops it: the runners stop (their informers' watches end) and it exits 0;
* the master's advertised endpoint (`IP:PORT`, for the `default/kubernetes` Endpoints) is
  in the child's environment, `DOCKYARD_MASTER_ENDPOINT` (`child_env`); its kubeconfig
  only knows the loopback URL.

`--controller-manager thread` keeps them in threads of the master's process instead (as
the master's unit tests run them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from . import logs
from .autoscaling.metrics import make_source
from .client import Client
from .controllers.endpoints import EndpointsController
from .controllers.endpointslices import EndpointSliceController
from .controllers.gc import GarbageCollector, NamespaceController
from .controllers.hpa import HorizontalPodAutoscalerController, sync_seconds_from_env
from .controllers.kubernetesservice import KubernetesServiceController, MasterEndpoint
from .controllers.nodes import DEFAULT_EVICTION_TIMEOUT, DEFAULT_NODE_GRACE, NodeLifecycleController
from .controllers.workloads import DeploymentController, ReplicaSetController
from .objects.access import ObjectAccess
from .reconcile.events import EventRecorder
from .reconcile.metrics import ControllerMetrics
from .reconcile.remote import ApiRegistry
from .reconcile.runner import Runner, SyncHook
from .scheduler.loop import Scheduler

log = logging.getLogger("dockyard.controller-manager")

RUNNER_NICE = 5  # the controllers' niceness: when both want the CPU, requests go first
METRICS_REQUEST = b"metrics\n"
METRICS_TIMEOUT = 5.0
RESTART_BACKOFF = (1.0, 30.0)
MASTER_ENDPOINT_ENV = "DOCKYARD_MASTER_ENDPOINT"


def build_runners(access: ObjectAccess, *, node_grace_seconds: float, eviction_timeout_seconds: float,
                  hpa_sync_seconds: float, prometheus_url: str | None, on_sync: SyncHook | None,
                  nice: int = RUNNER_NICE, master_endpoint: MasterEndpoint | None = None) -> tuple[Runner, Runner]:
    """(the controller manager, the scheduler), not started. With `master_endpoint` the
    controller manager also keeps the `default/kubernetes` Service and Endpoints."""
    recorder = EventRecorder(access, "dockyard-controller-manager")
    extra = [KubernetesServiceController(access, master_endpoint)] if master_endpoint is not None else []
    controllers = Runner(
        access,
        [
            DeploymentController(access, recorder),
            ReplicaSetController(access, recorder),
            GarbageCollector(access),
            NamespaceController(access),
            NodeLifecycleController(access, recorder, node_grace_seconds, eviction_timeout_seconds),
            HorizontalPodAutoscalerController(
                access, recorder, sync_seconds=hpa_sync_seconds,
                source_factory=lambda: make_source(access, prometheus_url),
            ),
            EndpointsController(access),
            EndpointSliceController(access),
            *extra,
        ],
        name="controller-manager",
        on_sync=on_sync,
        nice=nice,
    )
    scheduler = Runner(
        access,
        [Scheduler(access, EventRecorder(access, "default-scheduler"))],
        name="scheduler",
        on_sync=on_sync,
        nice=nice,
    )
    return controllers, scheduler


# -- the child process ---------------------------------------------------------------------------


def _serve_parent(in_fd: int, out_fd: int, metrics: ControllerMetrics, stop: threading.Event) -> None:
    """Answer the master's metrics requests on `out_fd` (stdout); end-of-file on `in_fd`
    (stdin: the master is gone) stops the process. Raw descriptors, no buffered file: a
    thread blocked in a buffered read would hold its lock through interpreter shutdown."""
    pending = b""
    try:
        while True:
            chunk = os.read(in_fd, 4096)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                if line + b"\n" == METRICS_REQUEST:
                    body = metrics.exposition()
                    _write_all(out_fd, b"%d\n" % len(body) + body)
    except OSError:
        pass
    if not stop.is_set():
        log.info("the master is gone; stopping")
    stop.set()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main_controller_manager(args: Any) -> int:
    logs.setup(os.environ.get("DOCKYARD_LOG_LEVEL", "INFO"))
    client = Client.from_kubeconfig(args.kubeconfig)
    client.close()
    if not client.token:
        print(f"dockyard controller-manager: error: {args.kubeconfig} has no token", file=sys.stderr)
        return 2
    try:
        endpoint = master_endpoint_setting(args)
    except ValueError as e:
        print(f"dockyard controller-manager: error: {e}", file=sys.stderr)
        return 2
    if endpoint is None:
        log.warning("no master endpoint given; the Service default/kubernetes is not kept")
    access = ApiRegistry(client.server, client.token, client.ca_pem)
    metrics = ControllerMetrics()
    runners = build_runners(
        access,
        node_grace_seconds=DEFAULT_NODE_GRACE if args.node_grace is None else args.node_grace,
        eviction_timeout_seconds=DEFAULT_EVICTION_TIMEOUT if args.eviction_timeout is None else args.eviction_timeout,
        hpa_sync_seconds=args.hpa_sync_period or sync_seconds_from_env(),
        prometheus_url=args.prometheus_url or None,
        on_sync=metrics.observe_sync, nice=args.nice, master_endpoint=endpoint,
    )
    metrics.watch_queues(runners)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.parent_pipe:
        threading.Thread(target=_serve_parent, args=(sys.stdin.fileno(), sys.stdout.fileno(), metrics, stop),
                         name="parent", daemon=True).start()
    log.info("controller manager and scheduler starting", extra={"server": client.server})
    for runner in runners:
        runner.start()
    while not stop.wait(1.0):
        pass
    for runner in runners:
        runner.stop()
    access.close()
    log.info("controller manager and scheduler stopped")
    return 0


# -- supervision, in the master ------------------------------------------------------------------


class ControllerManagerProcess:
    """The child process running the controllers and the scheduler, kept running while
    started (see the module's docstring)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 sleep: Callable[[float], bool] | None = None) -> None:
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one metrics exchange at a time
        self._proc_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, name="controller-manager-process", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        with self._proc_lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the controller manager did not stop in %.0fs; killing it", timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        proc = self.proc
        return proc is not None and proc.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env,
                                start_new_session=True)

    def _supervise(self) -> None:
        backoff = RESTART_BACKOFF[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            with self._proc_lock:
                if self._stopping.is_set():
                    return
                proc = self.proc = self._spawn()
                self.starts += 1
            log.info("controller manager started", extra={"pid": proc.pid})
            code = proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = RESTART_BACKOFF[0]
            log.error("the controller manager exited (code %s); starting it again in %.0fs", code, backoff)
            if self._sleep(backoff):
                return
            backoff = min(backoff * 2, RESTART_BACKOFF[1])

    def fetch_metrics(self) -> bytes:
        """The child's series (blocking, at most METRICS_TIMEOUT): run it off the API's loop."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
                raise RuntimeError("the controller manager is not running")
            proc.stdin.write(METRICS_REQUEST)
            proc.stdin.flush()
            out = proc.stdout
            deadline = time.monotonic() + METRICS_TIMEOUT
            header = _read_line(out, deadline)
            return _read_exact(out, int(header), deadline)


def _wait_readable(f: IO[bytes], deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([f], [], [], left)[0]:
        raise TimeoutError("the controller manager did not answer in time")


def _read_line(f: IO[bytes], deadline: float) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        _wait_readable(f, deadline)
        c = os.read(f.fileno(), 1)
        if not c:
            raise EOFError("the controller manager closed its output")
        buf += c
    return buf


def _read_exact(f: IO[bytes], n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        _wait_readable(f, deadline)
        c = os.read(f.fileno(), n - got)
        if not c:
            raise EOFError("the controller manager closed its output")
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def master_endpoint_setting(args: Any) -> MasterEndpoint | None:
    """The master's endpoint for `default/kubernetes`: `--master-endpoint` when the command
    line has one, else `$DOCKYARD_MASTER_ENDPOINT` (set by the master for its child)."""
    text = getattr(args, "master_endpoint", None) or os.environ.get(MASTER_ENDPOINT_ENV)
    return MasterEndpoint.parse(text) if text else None


def child_env(base: dict[str, str], master_endpoint: MasterEndpoint | None) -> dict[str, str]:
    """The child's environment: `base` plus the master's endpoint."""
    env = dict(base)
    env.pop(MASTER_ENDPOINT_ENV, None)
    if master_endpoint is not None:
        env[MASTER_ENDPOINT_ENV] = str(master_endpoint)
    return env


def child_argv(kubeconfig: Path, *, node_grace_seconds: float, eviction_timeout_seconds: float,
               hpa_sync_seconds: float, prometheus_url: str | None, nice: int = RUNNER_NICE) -> list[str]:
    argv = [sys.executable, "-m", "orchestrator", "controller-manager", "--kubeconfig", str(kubeconfig),
            "--node-grace", repr(node_grace_seconds), "--eviction-timeout", repr(eviction_timeout_seconds),
            "--hpa-sync-period", repr(hpa_sync_seconds), "--nice", str(nice), "--parent-pipe"]
    if prometheus_url:
        argv += ["--prometheus-url", prometheus_url]
    return argv
