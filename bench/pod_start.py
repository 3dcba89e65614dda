"""Pod start latency of a real `dockyard up`, against plain `docker run -d`, plus agent memory.

Every series starts single-container `dockyard/busybox:1` containers running
`httpd -f -p 8080` on the local Docker engine, and every latency is measured from the
client's call:

* **dockyard, all at once**: N Pods created through the API as fast as the client goes
  (one create call after the other); a watch records, per pod, create call → bound to the
  node (`spec.nodeName`, the scheduler's share), → `status.phase=Running` with a pod IP,
  → condition `Ready=True`.
* **dockyard, paced**: one create every 1/rate seconds, default 2 pods/s. Kubernetes
  measures its pod startup SLO the same way, on "latency pods" created at a steady rate
  that leaves the cluster headroom, so that the figure is a pod's start latency and not a
  queue's length. A container start costs Docker, runc and the kernel about 0.3 s of CPU on
  a small VM, so 5 pods/s already keeps a 2-core node ~80% busy; the CPU lines printed for
  each series show how loaded the host was.
* **dockyard, one at a time**: the same, but each pod is created only once the previous
  one is Running and Ready.
* **docker run, all at once**: N `docker run -d` (Docker SDK) on a user bridge network, so
  the baseline also pays for a network attachment like a pod sandbox does. The calls are
  issued like the pod creates (one after the other, by N threads, each timed from its own
  call) and a container counts once the run call returned (it is running then).
* **docker run, paced** and **one at a time**: the same schedules as the pods.

A pod is two containers (sandbox + app) and goes through the API, the scheduler and a
status write, so the ratios say what that costs. The paced and sequential series give a
pod's start latency; the all-at-once series says how both sides queue when the host's CPUs
are saturated (there, `docker run` alone has a p99 of several seconds on a 2-core host).

Then the RSS of the `up` process (master and agent together) is read from /proc, and,
unless `--no-standalone`, `dockyard master` and `dockyard agent` run as two processes with
the same N pods for the agent process's RSS alone.

Prints p50/p99 per series, the ratios of means and the host's CPU use per series; removes
everything it created. Never asserts on timings. Run with `make bench` or `python bench/pod_start.py [-n N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.runtime import DockerRuntime  # noqa: E402
from orchestrator.client import Client  # noqa: E402
from orchestrator.objects.kinds import resolve  # noqa: E402
from tests.support.cluster import Cluster, free_port, wait_for  # noqa: E402

IMAGE = "dockyard/busybox:1"
COMMAND = ["httpd", "-f", "-p", "8080"]
POD = resolve("pods")
NODE = resolve("nodes")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pod_manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "pod-start"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "web", "image": IMAGE, "command": COMMAND}]}}


@dataclass
class Timings:
    """Seconds from each pod's create call (or each docker run call)."""

    bound: list[float] = field(default_factory=list)
    running: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)


def start_pods(client: Client, n: int, sequential: bool = False, prefix: str = "bench",
               timeout: float = 60, interval: float = 0.0) -> Timings:
    """Create n pods, all at once, every `interval` seconds, or one after the other; watch
    them bound, Running, Ready."""
    names = [f"{prefix}-{i:02d}" for i in range(n)]
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    changed = threading.Condition()
    rv = client.list(POD, "default")["metadata"]["resourceVersion"]
    done = threading.Event()
    opened = threading.Event()

    def watch() -> None:
        watcher = Client(client.server, client.token, client.ca_pem)
        try:
            stream = watcher.watch(POD, "default", resource_version=rv, label_selector="bench=pod-start",
                                   timeout_seconds=int(timeout))
            opened.set()
            for ev in stream:
                now = time.monotonic()
                obj = ev.get("object") or {}
                name = obj.get("metadata", {}).get("name")
                if name not in names:
                    continue
                st = obj.get("status") or {}
                if obj.get("spec", {}).get("nodeName"):
                    bound.setdefault(name, now)
                if st.get("phase") == "Running" and st.get("podIP"):
                    running.setdefault(name, now)
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
                    ready.setdefault(name, now)
                with changed:
                    changed.notify_all()
                if len(ready) == n:
                    break
        finally:
            watcher.close()
            done.set()
            opened.set()
            with changed:
                changed.notify_all()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    opened.wait(5)
    time.sleep(0.2)  # the watch is open on the server side too
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    for i, name in enumerate(names):
        if interval:
            time.sleep(max(0.0, t0 + i * interval - time.monotonic()))
        created[name] = time.monotonic()
        client.create(pod_manifest(name), "default")
        if sequential:
            with changed:
                changed.wait_for(lambda name=name: name in ready or done.is_set(),
                                 max(0.0, deadline - time.monotonic()))
    done.wait(max(0.0, deadline - time.monotonic()))
    missing = [x for x in names if x not in ready]
    if missing:
        print(f"  warning: {len(missing)} pod(s) not Ready within {timeout:.0f}s", file=sys.stderr)
    return Timings(bound=[bound[x] - created[x] for x in names if x in bound],
                   running=[running[x] - created[x] for x in names if x in running],
                   ready=[ready[x] - created[x] for x in names if x in ready])


def delete_pods(client: Client, n: int, prefix: str = "bench", node: str | None = None) -> None:
    """Delete the pods; with `node`, also wait until that node's containers are gone, so
    the next series does not share the engine with teardowns."""
    for i in range(n):
        with contextlib.suppress(Exception):
            client.delete(POD, f"{prefix}-{i:02d}", "default", grace_period=0)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not client.list(POD, "default", label_selector="bench=pod-start")["items"], 30,
                 what="the bench pods to go")
    if node is not None:
        rt = DockerRuntime()
        try:
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not rt.api.containers(all=True, filters={"label": f"dockyard.io/node={node}"}),
                         60, what="the pods' containers to go")
        finally:
            rt.close()


def baseline(n: int, sequential: bool = False, interval: float = 0.0,
             cpu: dict[str, tuple[float, float]] | None = None, key: str = "") -> list[float]:
    """Seconds per `docker run -d` on a user bridge network, all at once, one every
    `interval` seconds, or one at a time; with `cpu`, the host's CPU use of the runs (not of
    the removals) is recorded under `key`."""
    rt = DockerRuntime()
    net = f"dy-bench-{uuid.uuid4().hex[:6]}"
    rt.api.create_network(net, driver="bridge")
    ids: list[str] = []
    lock = threading.Lock()

    start = time.monotonic()

    def one(i: int) -> float:
        if interval:
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
        t0 = time.monotonic()
        c = rt.client.containers.run(IMAGE, COMMAND, detach=True, network=net, name=f"{net}-{i}",
                                     labels={"dockyard.io/bench": net}, security_opt=["no-new-privileges"])
        took = time.monotonic() - t0
        with lock:
            ids.append(c.id)
        return took

    try:
        with metered(cpu, key) if cpu is not None else contextlib.nullcontext():
            if sequential:
                return [one(i) for i in range(n)]
            with ThreadPoolExecutor(max_workers=n) as pool:
                return list(pool.map(one, range(n)))
    finally:
        for cid in ids:
            with contextlib.suppress(Exception):
                rt.api.remove_container(cid, force=True)
        with contextlib.suppress(Exception):
            rt.api.remove_network(net)
        rt.close()


def host_busy() -> float:
    """Busy CPU seconds of the whole host since boot (all cores; /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def metered(into: dict[str, tuple[float, float]], key: str) -> Iterator[None]:
    """Record (busy CPU seconds, wall seconds) of the host over the block."""
    busy, wall = host_busy(), time.monotonic()
    yield
    into[key] = (host_busy() - busy, time.monotonic() - wall)


def settle(seconds: float = 5.0) -> None:
    """Let the previous series' teardown finish before the next one starts: the kernel frees
    network namespaces asynchronously, holding the lock that creating one (or a veth) needs."""
    time.sleep(seconds)


def report(label: str, values: list[float]) -> None:
    if not values:
        print(f"  {label:<28} no samples")
        return
    print(f"  {label:<28} n={len(values):>2}  p50 {pct(values, 50) * 1000:7.0f} ms  "
          f"p99 {pct(values, 99) * 1000:7.0f} ms  mean {statistics.mean(values) * 1000:7.0f} ms")


def standalone_agent_rss(base: Path, n: int) -> tuple[float, float] | None:
    """(agent RSS MiB, master RSS MiB) with n pods, master and agent as separate processes."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), DOCKYARD_CONFIG=str(base / "kubeconfig"))
    node = f"dy-bench-{uuid.uuid4().hex[:6]}"
    master_log = open(base / "master.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
    agent_log = open(base / "agent.log", "ab")  # noqa: SIM115
    master = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "master", "--data-dir", str(base / "m"),
         "--listen", f"127.0.0.1:{port}", "--write-kubeconfig", str(base / "kubeconfig"),
         "--cluster-cidr", "10.216.0.0/16"],
        stdout=master_log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True)
    agent: subprocess.Popen[bytes] | None = None
    client: Client | None = None
    try:
        wait_for(lambda: (base / "m" / "join-token").exists() and (base / "kubeconfig").exists(), 30,
                 what="the master")
        client = Client.from_kubeconfig(str(base / "kubeconfig"))
        wait_for(lambda: client.request("GET", "/readyz"), 30, what="the master API")
        token = (base / "m" / "join-token").read_text().strip()
        agent = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "agent", "--server", f"https://127.0.0.1:{port}",
             "--token", token, "--name", node, "--data-dir", str(base / "a"), "--pod-network", f"dy-{node}",
             "--heartbeat", "1"],
            stdout=agent_log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True)
        wait_for(lambda: any(c.get("type") == "Ready" and c.get("status") == "True"
                             for c in client.get(NODE, node).get("status", {}).get("conditions", [])),
                 60, what="the standalone agent's node")
        if len(start_pods(client, n).ready) < n:
            return None
        time.sleep(1)
        return rss_mib(agent.pid), rss_mib(master.pid)
    finally:
        if client is not None:
            delete_pods(client, n)
            client.close()
        for proc in (agent, master):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=dockyard.io/node={node}"],
                             capture_output=True, text=True, check=False).stdout.split()
        if out:
            subprocess.run(["docker", "rm", "-f", *out], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", f"dy-{node}"], capture_output=True, check=False)
        master_log.close()
        agent_log.close()


def ratio(a: list[float], b: list[float]) -> str:
    return f"{statistics.mean(a) / statistics.mean(b):.2f}x" if a and b else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="pods / containers per run (default 20)")
    ap.add_argument("--rate", type=float, default=2.0, help="pods per second in the paced series (default 2)")
    ap.add_argument("--no-standalone", action="store_true", help="skip the master + agent process run")
    ap.add_argument("--keep", action="store_true", help="keep the bench directory (logs)")
    args = ap.parse_args()
    n = args.n
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    started = time.monotonic()
    print(f"pod start: {n} pods of {IMAGE} `{' '.join(COMMAND)}`: all at once, {args.rate:g}/s, one at a time")
    cpu: dict[str, tuple[float, float]] = {}
    cluster = Cluster(base / "up", cluster_cidr="10.214.0.0/16")
    (base / "up").mkdir()
    try:
        cluster.start()
        # one warm-up pod, so neither side pays for first-use costs (image layers, network)
        start_pods(cluster.client, 1, prefix="warm")
        delete_pods(cluster.client, 1, prefix="warm", node=cluster.node_name)
        settle()
        with metered(cpu, "pods all at once"):
            burst = start_pods(cluster.client, n)
        time.sleep(1)
        assert cluster.proc is not None
        up_rss = rss_mib(cluster.proc.pid)
        delete_pods(cluster.client, n, node=cluster.node_name)
        settle()
        with metered(cpu, "pods paced"):
            paced = start_pods(cluster.client, n, prefix="paced", interval=interval)
        delete_pods(cluster.client, n, prefix="paced", node=cluster.node_name)
        settle()
        with metered(cpu, "pods one at a time"):
            seq = start_pods(cluster.client, n, sequential=True, prefix="seq")
        delete_pods(cluster.client, n, prefix="seq")
    finally:
        cluster.stop()
        cluster.remove_containers()
    baseline(1)  # warm-up
    settle()
    docker_burst = baseline(n, cpu=cpu, key="docker runs all at once")
    settle()
    docker_paced = baseline(n, interval=interval, cpu=cpu, key="docker runs paced")
    settle()
    docker_seq = baseline(n, sequential=True, cpu=cpu, key="docker runs one at a time")

    print(f"\nall at once: {n} creates / {n} docker runs from {n} threads (from each call)")
    report("dockyard create -> bound", burst.bound)
    report("dockyard create -> Running", burst.running)
    report("dockyard create -> Ready", burst.ready)
    report("docker run -d (user bridge)", docker_burst)
    print(f"\npaced: one create / docker run every {interval * 1000:.0f} ms")
    report("dockyard create -> bound", paced.bound)
    report("dockyard create -> Running", paced.running)
    report("dockyard create -> Ready", paced.ready)
    report("docker run -d (user bridge)", docker_paced)
    print(f"\none at a time: {n} pods / {n} docker runs, each after the previous one is up")
    report("dockyard create -> bound", seq.bound)
    report("dockyard create -> Running", seq.running)
    report("dockyard create -> Ready", seq.ready)
    report("docker run -d (user bridge)", docker_seq)
    print("\nratio of means (dockyard / docker run)")
    print(f"  all at once,   Running: {ratio(burst.running, docker_burst)}   Ready: {ratio(burst.ready, docker_burst)}")
    print(f"  paced,         Running: {ratio(paced.running, docker_paced)}   Ready: {ratio(paced.ready, docker_paced)}")
    print(f"  one at a time, Running: {ratio(seq.running, docker_seq)}   Ready: {ratio(seq.ready, docker_seq)}")
    print("\np99 create -> Ready (dockyard / docker run)")
    for label, pods, runs in (("all at once", burst.ready, docker_burst), ("paced", paced.ready, docker_paced),
                              ("one at a time", seq.ready, docker_seq)):
        print(f"  {label + ':':<15}{pct(pods, 99) * 1000:6.0f} ms / {pct(runs, 99) * 1000:6.0f} ms")
    cores = os.cpu_count() or 1
    print(f"\nhost CPU per series ({cores} cores, everything on the host counted)")
    for key, (busy, wall) in cpu.items():
        print(f"  {key:<26} {busy / n * 1000:5.0f} ms CPU per pod/container, "
              f"{busy / (wall * cores) * 100:3.0f}% of the host over {wall:4.1f} s")
    print(f"\nmemory with {n} pods")
    print(f"  dockyard up process (master + agent): {up_rss:.1f} MiB RSS")
    if not args.no_standalone:
        measured = standalone_agent_rss(base / "standalone", n) if (base / "standalone").mkdir() is None else None
        if measured:
            print(f"  standalone dockyard agent:            {measured[0]:.1f} MiB RSS "
                  f"(its master: {measured[1]:.1f} MiB)")
        else:
            print("  standalone dockyard agent:            not measured (see the logs under the bench dir)")
    print(f"\nbench took {time.monotonic() - started:.0f}s")
    if args.keep:
        print(f"bench directory kept: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
