"""API serving speed: a real master over HTTPS with 1,000 hollow Nodes, idle and under controller load.

One process tree on loopback. The bench starts `dockyard master` (the same CLI path,
wrapped only so that `--profile` can switch cProfile on in it; its controllers and scheduler
run in its child process, `dockyard controller-manager`, unless `--controller-manager
thread`) with a long node grace and no pending pods limit, creates 1,000 hollow Nodes through the API (Ready, 32 cpu / 128Gi /
110 pods, no agent behind them) and their Leases in `kube-node-lease`, and renews the
Leases from a thread (each every `--renew` seconds, spread evenly: a cheap heartbeat), so
the node lifecycle controller keeps them Ready. No agent, no Docker.

Measured twice, first idle, then while a 5,000-replica Deployment is created and
scheduled onto the hollow nodes (the Deployment and ReplicaSet controllers and the
scheduler busy; pods stay Pending, bound, since nothing runs them):

* GET/s of one object (a Node) with N concurrent keep-alive clients authenticated with the
  admin bearer token, and their latency percentiles: `wrk -t2 -c16` when `wrk` is on PATH
  (`scripts/ensure-packages.sh` installs it), else a Python load generator in two separate
  processes (raw TLS sockets with keep-alive); the output says which;
* GET latency p50/p99 from one sequential client (the target figure);
* LIST latency (all Nodes; the Pods of the bench's namespace, whose count grows under load);
* WATCH latency: from the moment a ConfigMap write is sent to its event arriving on an
  open watch.

Printed: both phases, the ratio loaded / idle (target: p99 GET latency under controller
load <= 2x idle), and the baseline measured in the same run: a bare Starlette app serving
the same bytes (the JSON of the same Node) at the same path, over the same TLS certificate,
with the same uvicorn server settings and event loop (`api.serving`); Dockyard GET/s / bare
GET/s is the second target (>= 0.6). The servers' CPU time per GET (from /proc) is printed
too: on a small machine the load generator competes with the server for the CPUs (the bench
keeps them on separate CPUs when there are two or more), and the CPU ratio is the one
figure that its share does not move. With `--profile`, the master runs under cProfile for
the span of one more GET load, and again for the loaded phase, and the top entries of each
are printed: where the time goes. Under load, the output also says what else the API served
(requests per second by verb and resource, from the master's own counters) while the
sequential GETs were timed: the writes of the controllers and the scheduler it handles on
the same event loop.

A benchmark, never a test: it prints and does not assert. Run:
`python bench/api.py [--nodes 1000] [--replicas 5000] [--seconds 10] [--profile]`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pstats
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.client import Client  # noqa: E402
from orchestrator.objects.kinds import resolve  # noqa: E402
from orchestrator.objects.timefmt import rfc3339  # noqa: E402

NS = "bench"
NODES = resolve("nodes")
PODS = resolve("pods")
LEASES = resolve("leases")
CONFIGMAPS = resolve("configmaps")
DEPLOYMENTS = resolve("deployments")
LEASE_NS = "kube-node-lease"
PROFILE_ON, PROFILE_OFF = signal.SIGUSR1, signal.SIGUSR2


# -- numbers ------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}ms"


@dataclass
class Load:
    """What one GET load run measured."""

    tool: str
    rate: float  # requests per second
    requests: int
    errors: int
    p50: float  # seconds
    p99: float
    cpu: float = float("nan")  # the server's CPU seconds per request (all its threads)


@dataclass
class Phase:
    label: str
    background: float = 0.0
    load: Load | None = None
    get: list[float] = field(default_factory=list)
    list_nodes: list[float] = field(default_factory=list)
    list_pods: list[float] = field(default_factory=list)
    pods_listed: int = 0
    watch: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    others: str = ""  # what else the API served during the sequential GETs


# -- one keep-alive HTTPS connection, raw ---------------------------------------------------


class RawConnection:
    """A keep-alive HTTP/1.1 connection over TLS with as little client work as possible, so
    the figures are the server's (httpx costs more per request than the server under test)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # loopback, our own certificate; the bench measures, not checks
        raw = socket.create_connection((host, port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw)
        self.host = f"{host}:{port}"
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.buf = b""

    def get(self, path: str) -> tuple[int, bytes]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        self.buf = rest
        if chunked:
            return status, self._chunked()
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def _chunked(self) -> bytes:
        out = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            out.append(self.buf[:size])
            self.buf = self.buf[size + 2:]
            if size == 0:
                return b"".join(out)

    def _fill(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()


# -- load generation ------------------------------------------------------------------------


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _wrk_seconds(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else float("nan")


def wrk_load(url: str, token: str | None, seconds: float, threads: int, conns: int) -> Load:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"([0-9]+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return Load(f"wrk -t{threads} -c{conns}", float(rate.group(1)) if rate else 0.0,
                int(total.group(1)) if total else 0, errors,
                _wrk_seconds(lat.get("50", "nan")), _wrk_seconds(lat.get("99", "nan")))


def _python_worker(host: str, port: int, path: str, headers: dict[str, str], conns: int, seconds: float,
                   out: Any) -> None:
    """One load process: `conns` threads, each a keep-alive connection GETting `path` in a loop."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start_at = time.monotonic() + 0.2
    stop_at = start_at + seconds

    def run() -> None:
        mine: list[float] = []
        bad = 0
        conn = RawConnection(host, port, headers)
        try:
            while time.monotonic() < start_at:
                time.sleep(0.01)
            while True:
                t0 = time.perf_counter()
                if time.monotonic() >= stop_at:
                    break
                status, _ = conn.get(path)
                mine.append(time.perf_counter() - t0)
                bad += status != 200
        except OSError:
            bad += 1
        finally:
            conn.close()
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=run) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((lat, errors[0]))


def python_load(host: str, port: int, path: str, token: str | None, seconds: float, procs: int,
                conns: int) -> Load:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    workers = [ctx.Process(target=_python_worker, args=(host, port, path, headers, conns // procs, seconds, q))
               for _ in range(procs)]
    for w in workers:
        w.start()
    lat: list[float] = []
    errors = 0
    for _ in workers:
        got, bad = q.get(timeout=seconds + 120)
        lat.extend(got)
        errors += bad
    for w in workers:
        w.join()
    return Load(f"python, {procs} processes x {conns // procs} keep-alive connections", len(lat) / seconds,
                len(lat), errors, pct(lat, 50), pct(lat, 99))


class LoadGen:
    def __init__(self, force_python: bool, threads: int = 2, conns: int = 16) -> None:
        self.have_wrk = shutil.which("wrk") is not None
        self.wrk = self.have_wrk and not force_python
        self.threads, self.conns = threads, conns

    @property
    def name(self) -> str:
        if self.wrk:
            return f"wrk -t{self.threads} -c{self.conns}"
        why = "--python-load" if self.have_wrk else "wrk is not on PATH"
        return f"Python load generator ({self.threads} processes, {self.conns} connections; {why})"

    def run(self, host: str, port: int, path: str, token: str | None, seconds: float, pid: int | None = None,
            background: float = 0.0) -> Load:
        """Load `path` for `seconds`; with `pid`, also what the server process spent per request,
        less its `background` CPU seconds per second (what it spends without requests)."""
        before, started = cpu_seconds(pid) if pid else 0.0, time.monotonic()
        if self.wrk:
            load = wrk_load(f"https://{host}:{port}{path}", token, seconds, self.threads, self.conns)
        else:
            load = python_load(host, port, path, token, seconds, self.threads, self.conns)
        if pid and load.requests:
            spent = cpu_seconds(pid) - before - background * (time.monotonic() - started)
            load.cpu = spent / load.requests
        return load


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat), with its live children's
    (the master's controller-manager process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(OSError):
            for child in (task / "children").read_text().split():
                with suppress(OSError):
                    total += cpu_seconds(int(child))
    return total


# -- children: the master, and the bare Starlette app -----------------------------------------


def child_master(argv: list[str]) -> int:
    """`dockyard master ARGS`, with cProfile switched on by SIGUSR1 and dumped by SIGUSR2."""
    import cProfile

    from orchestrator.cli.main import main

    out = os.environ.get("BENCH_PROFILE_OUT")
    if out:
        prof = [cProfile.Profile()]

        def start(*_: Any) -> None:
            prof[0] = cProfile.Profile()  # each span profiled on its own
            prof[0].enable()

        def dump(*_: Any) -> None:
            prof[0].disable()
            prof[0].dump_stats(out)

        signal.signal(PROFILE_ON, start)
        signal.signal(PROFILE_OFF, dump)
    return main(["master", *argv])


def child_bare(host: str, port: int, path: str, body_file: str, cert: str, key: str) -> int:
    """A bare Starlette app answering `path` with the bytes of `body_file`, served exactly as
    the master's API is (`api.serving`: protocol, TLS files, event loop)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from orchestrator.api import serving

    body = Path(body_file).read_bytes()

    async def handler(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route(path, handler)])
    server = uvicorn.Server(serving.api_server_config(app, host, port, ssl_certfile=cert, ssl_keyfile=key))
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    serving.run(server.serve())
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def cpu_split() -> tuple[set[int], set[int]] | None:
    """(the servers' CPU, the other CPUs for the bench and its load generator), when there are
    at least two: a server and its load generator on the same core would measure each other."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


PINNING: tuple[set[int], set[int]] | None = None


@contextmanager
def child(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    server_cpus = PINNING[0] if PINNING else None
    with open(log, "ab") as f:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=f, stderr=f,
                                env={**os.environ, **(env or {})}, cwd=str(ROOT),
                                preexec_fn=(lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the cluster --------------------------------------------------------------------------------


def hollow_node(i: int) -> dict[str, Any]:
    name = f"hollow-{i:05}"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": f"z{i % 3}"}},
        "spec": {},
    }


def node_status(now: str) -> dict[str, Any]:
    return {
        "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
        "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
    }


def lease(name: str, now: str) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NS},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}}


def now_rfc3339() -> str:
    from datetime import UTC, datetime

    return rfc3339(datetime.now(UTC))


def parallel(fn: Callable[[Client, int], None], n: int, make_client: Callable[[], Client], workers: int = 8) -> None:
    """fn(client, i) for i in range(n), on `workers` threads with a client each."""
    errors: list[BaseException] = []

    def run(w: int) -> None:
        with make_client() as c:
            for i in range(w, n, workers):
                try:
                    fn(c, i)
                except BaseException as e:  # reported after the join
                    errors.append(e)
                    return

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def create_nodes(make_client: Callable[[], Client], n: int) -> None:
    def one(c: Client, i: int) -> None:
        node = c.create(hollow_node(i))
        now = now_rfc3339()
        node["status"] = node_status(now)
        c.replace_status(node)
        c.create(lease(node["metadata"]["name"], now), LEASE_NS)

    parallel(one, n, make_client)


class Heartbeats:
    """Renews every hollow node's Lease once per `period` seconds, spread evenly."""

    def __init__(self, make_client: Callable[[], Client], nodes: int, period: float) -> None:
        self.make_client, self.nodes, self.period = make_client, nodes, period
        self.stop = threading.Event()
        self.renewed = 0
        self.failed = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        gap = self.period / self.nodes
        with self.make_client() as c:
            i = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                name = f"hollow-{i % self.nodes:05}"
                try:
                    c.patch(LEASES, name, {"spec": {"renewTime": now_rfc3339()}}, LEASE_NS)
                    self.renewed += 1
                except Exception:
                    self.failed += 1
                i += 1
                next_at += gap
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Heartbeats:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "load", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "load"}},
            "template": {
                "metadata": {"labels": {"app": "load"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "dockyard/busybox:1", "imagePullPolicy": "Never",
                                    "command": ["sleep", "3600"],
                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                },
            },
        },
    }


def pod_progress(c: Client) -> tuple[int, int]:
    """(pods, pods bound to a node) in the bench's namespace."""
    pods = c.list(PODS, NS)["items"]
    return len(pods), sum(1 for p in pods if (p.get("spec") or {}).get("nodeName"))


# -- measuring ------------------------------------------------------------------------------------


class Watcher:
    """A watch on the bench's ConfigMaps; notes when each write's event arrives."""

    def __init__(self, make_client: Callable[[], Client]) -> None:
        self.client = make_client()
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        rv = self.client.list(CONFIGMAPS, NS)["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self.run, args=(rv,), daemon=True)
        self.thread.start()

    def run(self, rv: str) -> None:
        with suppress(Exception):
            for ev in self.client.watch(CONFIGMAPS, NS, resource_version=rv, timeout_seconds=600):
                data = (ev.get("object") or {}).get("data") or {}
                mark = data.get("mark")
                if mark:
                    with self.cond:
                        self.arrived.setdefault(mark, time.perf_counter())
                        self.cond.notify_all()

    def latency(self, c: Client, samples: int) -> list[float]:
        out = []
        for i in range(samples):
            mark = f"{time.time_ns()}-{i}"
            t0 = time.perf_counter()
            c.patch(CONFIGMAPS, "watched", {"data": {"mark": mark}}, NS)
            with self.cond:
                self.cond.wait_for(lambda m=mark: m in self.arrived, timeout=30)  # type: ignore[misc]
                got = self.arrived.get(mark)
            if got is not None:
                out.append(got - t0)
            time.sleep(0.01)
        return out

    def close(self) -> None:
        self.client.close()


def timed_gets(conn: RawConnection, path: str, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        status, _ = conn.get(path)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status}")
    return out


@dataclass
class Target:
    host: str
    port: int
    token: str
    node_path: str
    pid: int
    background: float = 0.0  # the master's CPU seconds per second without requests (heartbeats, controllers)


def measure(phase: Phase, t: Target, c: Client, watcher: Watcher, gen: LoadGen, seconds: float,
            get_samples: int) -> Phase:
    headers = {"Authorization": f"Bearer {t.token}", "Accept": "application/json"}
    phase.background = t.background
    phase.load = gen.run(t.host, t.port, t.node_path, t.token, seconds, t.pid, t.background)
    conn = RawConnection(t.host, t.port, headers)
    try:
        timed_gets(conn, t.node_path, 20)  # warm
        counts0, t0 = request_counts(conn), time.monotonic()
        phase.get = timed_gets(conn, t.node_path, get_samples)
        counts1, t1 = request_counts(conn), time.monotonic()
        phase.others = others_during(counts0, counts1, t1 - t0, t.node_path)
        phase.list_nodes = timed_gets(conn, "/api/v1/nodes", 10)
        phase.list_pods = timed_gets(conn, f"/api/v1/namespaces/{NS}/pods", 5)
        status, body = conn.get(f"/api/v1/namespaces/{NS}/pods")
        phase.pods_listed = len(json.loads(body)["items"]) if status == 200 else -1
    finally:
        conn.close()
    phase.watch = watcher.latency(c, 50)
    return phase


_SERIES = re.compile(r"^dockyard_apiserver_requests_total\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(conn: RawConnection) -> dict[tuple[str, str], float]:
    """The master's request counters by (verb, resource), from its /metrics."""
    status, body = conn.get("/metrics")
    out: dict[tuple[str, str], float] = {}
    if status != 200:
        return out
    for line in body.decode(errors="replace").splitlines():
        m = _SERIES.match(line)
        if m:
            labels = dict(_LABEL.findall(m.group(1)))
            key = (labels.get("verb", ""), labels.get("resource", ""))
            out[key] = out.get(key, 0.0) + float(m.group(2))
    return out


def others_during(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], seconds: float,
                  node_path: str) -> str:
    """What else the API served while the sequential GETs were timed (the bench's own GETs
    of the Node and its /metrics scrape left out), per second, the largest first."""
    rates = []
    for key, n in after.items():
        done = n - before.get(key, 0.0)
        if done > 0:
            rates.append((done / seconds, key))
    rates = [(r, k) for r, k in rates if k != ("GET", "nodes") and k[1]]
    total = sum(r for r, _ in rates)
    top = ", ".join(f"{k[0]} {k[1]} {r:,.0f}/s" for r, k in sorted(rates, reverse=True)[:5])
    return f"{total:,.0f} other requests/s ({top or 'none'})"


def show(p: Phase) -> None:
    print(f"\n== {p.label}")
    if p.load:
        ld = p.load
        print(f"GET one Node, {ld.tool}: {ld.rate:8,.0f} GET/s  latency p50 {ms(ld.p50)}  p99 {ms(ld.p99)}"
              f"  ({ld.requests} requests, {ld.errors} errors; master CPU {ld.cpu * 1e6:.0f}us per GET)")
        if p.label == "idle":
            print(f"  (the master's CPU without requests, {p.background * 100:.1f}% of a CPU: heartbeats and "
                  "controllers, is taken out of its CPU per GET)")
        else:
            print("  (its CPU per GET here also holds what the controllers and the scheduler spent)")
    print(f"GET one Node, 1 client:   p50 {ms(pct(p.get, 50))}  p99 {ms(pct(p.get, 99))}  ({len(p.get)} requests)")
    if p.others:
        print(f"  meanwhile the API served {p.others}")
    print(f"LIST nodes:               p50 {ms(pct(p.list_nodes, 50))}  p99 {ms(pct(p.list_nodes, 99))}")
    print(f"LIST pods ({p.pods_listed:5d} pods):    p50 {ms(pct(p.list_pods, 50))}  p99 {ms(pct(p.list_pods, 99))}")
    print(f"WATCH write->event:       p50 {ms(pct(p.watch, 50))}  p99 {ms(pct(p.watch, 99))}  ({len(p.watch)} events)")
    for n in p.notes:
        print(n)


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "  n/a"


def profile_report(path: Path, top: int, what: str = "under the GET load") -> None:
    if not path.exists():
        print("(no profile written)")
        return
    st = pstats.Stats(str(path))
    total = st.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(file).name}:{line}({func})" if line else func
        if "site-packages" in file:
            where = file.split("site-packages/")[-1] + f":{line}({func})"
        elif str(ROOT) in file:
            where = file.replace(str(ROOT) + "/", "") + f":{line}({func})"
        rows.append((tt, ct, nc, where))
    print(f"\n== where the master's time goes {what} (cProfile of its main thread, {total:.2f}s)")
    print("self time, the top entries:")
    for tt, _ct, nc, where in sorted(rows, reverse=True)[:top]:
        print(f"  {tt / total * 100:5.1f}%  {nc:8d} calls  {where}")
    print("cumulative time, the top entries in Dockyard's code:")
    own = [r for r in rows if r[3].startswith(("orchestrator/", "bench/"))]
    for _tt, ct, nc, where in sorted(own, key=lambda r: r[1], reverse=True)[:top]:
        print(f"  {ct / total * 100:5.1f}%  {nc:8d} calls  {where}")


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000, help="hollow nodes (default 1000)")
    p.add_argument("--replicas", type=int, default=5000, help="replicas of the load Deployment (default 5000)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each GET load (default 10)")
    p.add_argument("--gets", type=int, default=400, help="sequential GETs timed per phase (default 400)")
    p.add_argument("--renew", type=float, default=30.0, help="seconds between two renewals of a node's Lease")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk is there")
    p.add_argument("--no-pin", action="store_true", help="do not keep the servers and the load on separate CPUs")
    p.add_argument("--profile", action="store_true",
                   help="profile the master under the GET load, then under controller load, and print the tops")
    p.add_argument("--top", type=int, default=25, help="profile entries printed (default 25)")
    p.add_argument("--settle", type=float, default=120.0,
                   help="after the loaded phase, wait up to this long for every replica to be bound")
    p.add_argument("--controller-manager", choices=["process", "thread"], default="process",
                   help="where the master runs its controllers and scheduler (its --controller-manager; "
                        "default process, the master's default)")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        what, rest = args.child[0], args.child[1:]
        if what == "master":
            return child_master(rest)
        host, port, path, body, cert, key = rest
        return child_bare(host, int(port), path, body, cert, key)

    global PINNING
    PINNING = None if args.no_pin else cpu_split()
    if PINNING:
        os.sched_setaffinity(0, PINNING[1])  # the bench, its load generators and wrk inherit this
    gen = LoadGen(args.python_load)
    host = "127.0.0.1"
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dy-bench-api-") as tmp:
        base = Path(tmp)
        data = base / "master"
        port = free_port()
        prof_out = base / "master.prof"
        env = {"DOCKYARD_LOG_LEVEL": "WARNING"}
        if args.profile:
            env["BENCH_PROFILE_OUT"] = str(prof_out)
        master_args = ["master", "--data-dir", str(data), "--listen", f"{host}:{port}",
                       "--write-kubeconfig", str(base / "kubeconfig"), "--node-grace", str(max(60.0, 4 * args.renew)),
                       "--max-pending-pods", "0", "--cluster-cidr", "172.16.0.0/12",
                       "--controller-manager", args.controller_manager]
        from orchestrator.api import serving

        print(f"api: a master over HTTPS on {host}:{port} (controllers in a {args.controller_manager}), "
              f"{args.nodes} hollow nodes; served with "
              f"{serving.http_protocol_name()} on {serving.event_loop_name()}; load: {gen.name}", flush=True)
        if PINNING:
            print(f"CPUs: the servers on {sorted(PINNING[0])}, the bench and its load on {sorted(PINNING[1])}")
        with child(["--child", *master_args], base / "master.log", env) as master:
            wait_port(port, master)
            kubeconfig = str(base / "kubeconfig")
            for _ in range(100):
                if Path(kubeconfig).exists():
                    break
                time.sleep(0.1)

            def make_client() -> Client:
                return Client.from_kubeconfig(kubeconfig)

            c = make_client()
            token = c.token or ""
            t0 = time.monotonic()
            c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": NS},
                      "data": {"mark": ""}})
            create_nodes(make_client, args.nodes)
            print(f"setup: {args.nodes} hollow Nodes (Ready) and their Leases in {time.monotonic() - t0:.1f}s; "
                  f"each Lease renewed every {args.renew:.0f}s", flush=True)
            node_path = f"/api/v1/nodes/hollow-{args.nodes // 2:05}"
            target = Target(host, port, token, node_path, master.pid)
            body = c.http.get(node_path).content
            (base / "node.json").write_bytes(body)
            with Heartbeats(make_client, args.nodes, args.renew) as beats:
                watcher = Watcher(make_client)

                # the ceiling: bare Starlette, same bytes, same TLS and server settings
                bare_port = free_port()
                cert, key = data / "pki" / "server.crt", data / "pki" / "server.key"
                with child(["--child", "bare", host, str(bare_port), node_path, str(base / "node.json"),
                            str(cert), str(key)], base / "bare.log") as bare:
                    wait_port(bare_port, bare)
                    gen.run(host, bare_port, node_path, None, 2)  # warm
                    bare_load = gen.run(host, bare_port, node_path, None, args.seconds, bare.pid)
                print(f"\n== baseline: bare Starlette, the same {len(body)} bytes, same TLS and server settings")
                print(f"GET, {bare_load.tool}: {bare_load.rate:8,.0f} GET/s  latency p50 {ms(bare_load.p50)}  "
                      f"p99 {ms(bare_load.p99)}  ({bare_load.requests} requests, {bare_load.errors} errors; "
                      f"server CPU {bare_load.cpu * 1e6:.0f}us per GET)",
                      flush=True)

                gen.run(host, port, node_path, token, 2)  # warm
                cpu0 = cpu_seconds(master.pid)
                time.sleep(3)
                target.background = (cpu_seconds(master.pid) - cpu0) / 3
                idle = measure(Phase("idle"), target, c, watcher, gen, args.seconds, args.gets)
                show(idle)

                if args.profile:
                    master.send_signal(PROFILE_ON)
                    gen.run(host, port, node_path, token, args.seconds)
                    master.send_signal(PROFILE_OFF)
                    time.sleep(2)
                    profile_report(prof_out, args.top)

                # under controller load
                t_load = time.monotonic()
                c.create(deployment(args.replicas), NS)
                time.sleep(1.0)
                before = pod_progress(c)
                if args.profile:
                    prof_out.unlink(missing_ok=True)
                    master.send_signal(PROFILE_ON)
                loaded = measure(Phase(f"while a {args.replicas}-replica Deployment is created and scheduled"),
                                 target, c, watcher, gen, args.seconds, args.gets)
                if args.profile:
                    master.send_signal(PROFILE_OFF)
                after = pod_progress(c)
                took = time.monotonic() - t_load
                loaded.notes.append(f"pods (bound) at the start of the measures: {before[0]} ({before[1]}), "
                                    f"at their end {took:.0f}s after the create: {after[0]} ({after[1]})")
                if after[1] >= args.replicas:
                    loaded.notes.append("NOTE: every replica was bound before the measures ended: "
                                        "part of them ran on an idle master")
                show(loaded)
                if args.profile:
                    time.sleep(2)
                    profile_report(prof_out, args.top, "under controller load (the GET load and the sequential "
                                                       "GETs included)")

                deadline = time.monotonic() + args.settle
                done = after
                while done[1] < args.replicas and time.monotonic() < deadline:
                    time.sleep(2)
                    done = pod_progress(c)
                print(f"all {args.replicas} replicas bound after {time.monotonic() - t_load:.0f}s"
                      if done[1] >= args.replicas else
                      f"{done[1]}/{args.replicas} replicas bound after {time.monotonic() - t_load:.0f}s (gave up)")
                print(f"heartbeats: {beats.renewed} Lease renewals, {beats.failed} failed")
                watcher.close()
            ready = sum(1 for n in c.list(NODES)["items"]
                        if any(x.get("type") == "Ready" and x.get("status") == "True"
                               for x in (n.get("status") or {}).get("conditions") or []))
            print(f"nodes Ready at the end: {ready}/{args.nodes}")
            c.close()

    assert idle.load is not None and loaded.load is not None
    print("\n== summary")
    print(f"load generator: {gen.name}")
    print(f"{'':32s}{'idle':>12s}{'loaded':>12s}{'loaded/idle':>13s}")
    rows = [
        ("GET p50, 1 client", pct(idle.get, 50), pct(loaded.get, 50)),
        ("GET p99, 1 client", pct(idle.get, 99), pct(loaded.get, 99)),
        (f"GET p99, {gen.conns} clients", idle.load.p99, loaded.load.p99),
        ("LIST nodes p99", pct(idle.list_nodes, 99), pct(loaded.list_nodes, 99)),
        ("WATCH p99", pct(idle.watch, 99), pct(loaded.watch, 99)),
    ]
    for name, a, b in rows:
        print(f"{name:32s}{a * 1000:10.2f}ms{b * 1000:10.2f}ms{ratio(b, a):>13s}")
    print(f"{'GET/s':32s}{idle.load.rate:12,.0f}{loaded.load.rate:12,.0f}{ratio(loaded.load.rate, idle.load.rate):>13s}")
    get_ratio = pct(loaded.get, 99) / pct(idle.get, 99)
    bare_ratio = idle.load.rate / bare_load.rate if bare_load.rate else float("nan")
    print(f"target: GET p99 loaded/idle <= 2.0:       {get_ratio:.2f}  {'met' if get_ratio <= 2 else 'NOT met'}")
    print(f"target: GET/s Dockyard/bare >= 0.6:       {bare_ratio:.2f}  ({idle.load.rate:,.0f} / {bare_load.rate:,.0f})"
          f"  {'met' if bare_ratio >= 0.6 else 'NOT met'}")
    cpu_ratio = bare_load.cpu / idle.load.cpu if idle.load.cpu else float("nan")
    print(f"server CPU per GET, bare/Dockyard:        {cpu_ratio:.2f}  ({bare_load.cpu * 1e6:.0f}us / "
          f"{idle.load.cpu * 1e6:.0f}us, idle; the ratio the load generator's share of the machine cannot move)")
    print(f"total {time.monotonic() - t_start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
