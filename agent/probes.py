"""Container probes (startup, liveness, readiness), kubelet semantics.

Design: one :class:`Prober` per agent keeps a *worker* per running container that has
probes, keyed by Docker container id, so a restarted container (new id) starts with fresh
probe state and a stale result never leaks into the next attempt. The pod executor
registers containers on every sync (:meth:`Prober.track`); a scheduler thread
(:meth:`Prober.start`) wakes every ``tick`` seconds, asks each worker which probes are due
(pure :meth:`ProbeState.due`) and runs them in a small thread pool, so a slow probe never
delays another container's probes or the reconcile loop. When a probe result changes what
the container looks like (ready flips, startup succeeded, liveness/startup failure
threshold reached) the ``on_change(pod uid)`` callback runs; the agent then syncs that
pod at once, so status follows probe results within one period.

Per probe (:class:`ProbeState`, pure, injected time):

* the first run happens ``initialDelaySeconds`` after the container started, then every
  ``periodSeconds``; each run has ``timeoutSeconds``;
* ``successThreshold`` consecutive successes make the result Success,
  ``failureThreshold`` consecutive failures make it Failure;
* initial results: readiness Failure (not ready until proven), liveness Success,
  startup Failure (not started); :meth:`ProbeState.assume_passed` starts a probe as if it
  had just passed instead (after an agent restart, see below).

Gating: while a startup probe has not succeeded, liveness and readiness do not run and the
container is neither started nor ready; once it succeeded it never runs again for that
container. A container without readiness probe is ready as soon as it is started.
:meth:`Prober.health` sums this up as an ``agent.pods.Health`` for the planners: a
liveness (or startup) Failure asks ``compute_pod_actions`` to kill and restart the
container.

Probe state lives in memory only; the pod's status in the API is what survives an agent
restart (an upgrade, a supervisor restart). Workers are created again on the first sync,
and a worker created for a container that the pod's current status reports by its id
(``containerStatuses[].containerID == "docker://<id>"``, same name) starts from what that
status says (:func:`vouched_for`): ``started: true`` counts as a startup probe that
succeeded, ``ready: true`` (with ``started: true``) as a readiness probe that has just
passed. So a restart of the agent alone never turns a Ready pod unready, and Services keep
their endpoints. The first probe still runs at once, and a container that now fails goes
unready after ``failureThreshold`` failures as usual. A container the status does not name
(new, or restarted while the agent was away) starts as above, not ready until proven.
Liveness starts at Success either way, so no container is restarted because the agent
restarted.

Handlers (:class:`NetworkProbeRunner`): ``httpGet`` (``http.client`` to the pod IP or
``host``, ``path``, ``httpHeaders``; 2xx/3xx is success; HTTPS without certificate
verification, like kubelet), ``tcpSocket`` (a connect), ``exec`` (``docker exec`` through
the runtime; exit code 0 is success). Named ports resolve through the container's
``ports``. ``grpc`` probes are not supported: they count as success (with a warning), so an
unsupported probe never kills a container.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from .pods import Health, ObservedContainer, ObservedPod, app_specs, pod_uid
from .status import container_id

log = logging.getLogger(__name__)

STARTUP, LIVENESS, READINESS = "startupProbe", "livenessProbe", "readinessProbe"
KINDS = (STARTUP, LIVENESS, READINESS)
USER_AGENT = "kube-probe/1.30"


@dataclass(frozen=True)
class ProbeConfig:
    handler: dict[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: int | None = None

    @classmethod
    def from_spec(cls, kind: str, spec: Mapping[str, Any]) -> ProbeConfig:
        def num(key: str, default: float) -> float:
            v = spec.get(key)
            return float(v) if v not in (None, 0, "") else default

        success = int(num("successThreshold", 1))
        if kind != READINESS:
            success = 1  # liveness and startup probes must have successThreshold 1
        grace = spec.get("terminationGracePeriodSeconds")
        return cls(
            handler={k: v for k, v in spec.items() if k in ("exec", "httpGet", "tcpSocket", "grpc")},
            initial_delay=float(spec.get("initialDelaySeconds") or 0),
            period=num("periodSeconds", 10.0),
            timeout=num("timeoutSeconds", 1.0),
            success_threshold=max(1, success),
            failure_threshold=max(1, int(num("failureThreshold", 3))),
            termination_grace=int(grace) if grace is not None else None,
        )


@dataclass
class ProbeState:
    """One probe of one container: when to run, and the result so far."""

    kind: str
    config: ProbeConfig
    started_at: float
    result: bool = False
    successes: int = 0
    failures: int = 0
    last_run: float | None = None
    runs: int = 0
    message: str = ""

    def __post_init__(self) -> None:
        self.result = self.kind == LIVENESS

    def assume_passed(self) -> None:
        """Start from Success, as if the probe had just passed: the next runs count from
        here (``failureThreshold`` failures in a row make it Failure)."""
        self.result = True
        self.successes = self.config.success_threshold
        self.failures = 0

    def due(self, now: float) -> bool:
        if now < self.started_at + self.config.initial_delay:
            return False
        return self.last_run is None or now >= self.last_run + self.config.period

    def record(self, ok: bool, message: str = "") -> bool:
        """Count one run; returns True when the result changed."""
        self.runs += 1
        self.message = message
        before = self.result
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.config.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.config.failure_threshold:
                self.result = False
        return self.result != before


def health_of(states: Mapping[str, ProbeState], spec: Mapping[str, Any]) -> Health:
    """The container's health given its probe states (missing state = not probed yet)."""
    startup = states.get(STARTUP)
    if spec.get(STARTUP):
        started = startup is not None and startup.result
        if not started:
            failed = startup is not None and startup.failures >= startup.config.failure_threshold
            msg = f"Container {spec.get('name')} failed startup probe, will be restarted" if failed else ""
            return Health(started=False, ready=False, failed="startup" if failed else "", message=msg)
    liveness = states.get(LIVENESS)
    if liveness is not None and not liveness.result:
        return Health(
            started=True,
            ready=False,
            failed="liveness",
            message=f"Container {spec.get('name')} failed liveness probe, will be restarted",
        )
    if spec.get(READINESS):
        readiness = states.get(READINESS)
        return Health(started=True, ready=readiness is not None and readiness.result)
    return Health()


def vouched_for(pod: Mapping[str, Any], c: ObservedContainer) -> frozenset[str]:
    """The probe kinds whose Success the pod's current status already reports for this very
    container (same name and container id): STARTUP when it says ``started: true``, and
    READINESS when it also says ``ready: true``. Empty for a container it does not name."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") != c.name or cs.get("containerID") != container_id(c):
            continue
        if cs.get("started") is not True:
            return frozenset()
        return frozenset({STARTUP, READINESS} if cs.get("ready") is True else {STARTUP})
    return frozenset()


# -- running handlers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    pod_uid: str
    container_id: str
    container: str
    pod_ip: str
    ports: dict[str, int] = field(default_factory=dict)


class ProbeRunner(Protocol):
    def run(self, handler: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]: ...


ExecFn = Callable[[str, list[str], float], tuple[int, bytes]]


def resolve_port(port: Any, target: Target) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in target.ports:
        return target.ports[str(port)]
    raise ValueError(f"port {port!r} is not a named port of container {target.container}")


class NetworkProbeRunner:
    def __init__(self, exec_fn: ExecFn | None = None) -> None:
        self.exec_fn = exec_fn
        self._warned: set[str] = set()

    def run(self, handler: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
        try:
            if handler.get("httpGet") is not None:
                return self.http_get(handler["httpGet"], target, timeout)
            if handler.get("tcpSocket") is not None:
                return self.tcp(handler["tcpSocket"], target, timeout)
            if handler.get("exec") is not None:
                return self.exec(handler["exec"], target, timeout)
        except (OSError, ValueError, http.client.HTTPException) as e:
            return False, f"{type(e).__name__}: {e}"
        if target.container_id not in self._warned:
            self._warned.add(target.container_id)
            log.warning("container %s: unsupported probe handler %s; treated as success",
                        target.container, sorted(handler))
        return True, "unsupported handler"

    def http_get(self, h: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
        host = str(h.get("host") or target.pod_ip)
        if not host:
            return False, "no pod IP"
        port = resolve_port(h.get("port"), target)
        path = str(h.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        conn: http.client.HTTPConnection
        if str(h.get("scheme") or "HTTP").upper() == "HTTPS":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        for hdr in h.get("httpHeaders") or []:
            headers[str(hdr.get("name"))] = str(hdr.get("value", ""))
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read(10 * 1024)
            ok = 200 <= resp.status < 400
            return ok, f"HTTP probe failed with statuscode: {resp.status}" if not ok else ""
        finally:
            conn.close()

    def tcp(self, h: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
        host = str(h.get("host") or target.pod_ip)
        if not host:
            return False, "no pod IP"
        with socket.create_connection((host, resolve_port(h.get("port"), target)), timeout=timeout):
            return True, ""

    def exec(self, h: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
        if self.exec_fn is None:
            return False, "exec probes need a runtime"
        code, out = self.exec_fn(target.container_id, [str(x) for x in h.get("command") or []], timeout)
        text = out.decode(errors="replace")[-200:]
        return code == 0, "" if code == 0 else f"exit code {code}: {text}"


# -- the prober -----------------------------------------------------------------------------


@dataclass
class _Worker:
    target: Target
    spec: dict[str, Any]
    states: dict[str, ProbeState]
    busy: set[str] = field(default_factory=set)


class Prober:
    def __init__(
        self,
        runner: ProbeRunner,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str], None] | None = None,
        workers: int = 4,
        tick: float = 0.1,
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.on_change = on_change
        self.tick = tick
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._n_workers = workers
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.failures: dict[str, int] = {}  # probe kind → failed runs (for metrics)

    # -- registration ---------------------------------------------------------------------

    def track(self, pod: Mapping[str, Any], observed: ObservedPod) -> None:
        """Create workers for the pod's running app containers with probes; drop the rest.

        A new worker starts from what the pod's status reports for that container id
        (:func:`vouched_for`); an existing worker keeps its own results."""
        uid = pod_uid(pod)
        pod_ip = observed.pod_ip
        specs = {s["name"]: s for s in app_specs(dict(pod))}
        live: set[str] = set()
        for c in observed.containers:
            spec = specs.get(c.name)
            if spec is None or not c.running or not any(spec.get(k) for k in KINDS):
                continue
            live.add(c.id)
            with self._lock:
                w = self._workers.get(c.id)
                if w is not None:
                    if pod_ip and w.target.pod_ip != pod_ip:
                        w.target = Target(uid, c.id, c.name, pod_ip, w.target.ports)
                    continue
                ports = {str(p["name"]): int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")}
                started = c.started_at or c.created_at
                states = {k: ProbeState(k, ProbeConfig.from_spec(k, spec[k]), started) for k in KINDS if spec.get(k)}
                carried = vouched_for(pod, c) & states.keys()
                for kind in carried:
                    states[kind].assume_passed()
                if carried:
                    log.debug("container %s of pod %s: %s carried over from the pod status",
                              c.name, uid, ", ".join(sorted(carried)))
                self._workers[c.id] = _Worker(Target(uid, c.id, c.name, pod_ip, ports), spec, states)
        with self._lock:
            for cid in [cid for cid, w in self._workers.items() if w.target.pod_uid == uid and cid not in live]:
                del self._workers[cid]

    def forget(self, uid: str) -> None:
        with self._lock:
            for cid in [cid for cid, w in self._workers.items() if w.target.pod_uid == uid]:
                del self._workers[cid]

    def retain(self, uids: set[str]) -> None:
        with self._lock:
            for cid in [cid for cid, w in self._workers.items() if w.target.pod_uid not in uids]:
                del self._workers[cid]

    def tracking(self) -> int:
        """How many containers have probe workers."""
        with self._lock:
            return len(self._workers)

    def health(self, container_id: str, spec: Mapping[str, Any]) -> Health:
        with self._lock:
            w = self._workers.get(container_id)
            states = dict(w.states) if w is not None else {}
        return health_of(states, spec)

    def states(self, container_id: str) -> dict[str, ProbeState]:
        with self._lock:
            w = self._workers.get(container_id)
            return dict(w.states) if w is not None else {}

    # -- running --------------------------------------------------------------------------

    def due(self, now: float | None = None) -> list[tuple[str, str]]:
        """(container id, probe kind) pairs to run now, honouring the startup gate."""
        now = self.clock() if now is None else now
        out: list[tuple[str, str]] = []
        with self._lock:
            for cid, w in self._workers.items():
                h = health_of(w.states, w.spec)
                if h.failed:
                    continue  # waiting for the kill
                for kind, st in w.states.items():
                    if kind in w.busy:
                        continue
                    if kind == STARTUP and h.started:
                        continue
                    if kind != STARTUP and not h.started:
                        continue
                    if st.due(now):
                        out.append((cid, kind))
        return out

    def run_due(self, now: float | None = None, wait: bool = False) -> int:
        """Start every due probe (in the pool; inline when `wait`); returns how many."""
        now = self.clock() if now is None else now
        jobs = self.due(now)
        for cid, kind in jobs:
            with self._lock:
                w = self._workers.get(cid)
                if w is None:
                    continue
                w.busy.add(kind)
                w.states[kind].last_run = now
            if wait or self._pool is None:
                self._probe(cid, kind)
            else:
                self._pool.submit(self._probe, cid, kind)
        return len(jobs)

    def _probe(self, cid: str, kind: str) -> None:
        with self._lock:
            w = self._workers.get(cid)
            if w is None:
                return
            st, target, spec = w.states[kind], w.target, w.spec
        try:
            ok, message = self.runner.run(st.config.handler, target, st.config.timeout)
        except Exception as e:  # a broken runtime must not kill the prober
            ok, message = False, f"probe error: {e}"
        changed = False
        with self._lock:
            w = self._workers.get(cid)
            if w is None:
                return
            before = health_of(w.states, spec)
            w.states[kind].record(ok, message)
            w.busy.discard(kind)
            changed = health_of(w.states, spec) != before
            if not ok:
                self.failures[kind] = self.failures.get(kind, 0) + 1
        if not ok:
            log.debug("container %s: %s failed: %s", target.container, kind, message)
        if changed:
            log.info("container %s of pod %s: %s → %s", target.container, target.pod_uid, kind,
                     "success" if ok else f"failure ({message})")
            if self.on_change is not None:
                try:
                    self.on_change(target.pod_uid)
                except Exception:
                    log.exception("probe change callback failed")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._n_workers, thread_name_prefix="dockyard-probe")
        self._thread = threading.Thread(target=self._loop, name="dockyard-prober", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.run_due()
            except Exception:
                log.exception("prober tick failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
