"""Pod start latency of a real `dockyard up`, against plain `docker run -d`, plus agent memory.

Three runs, all on the local Docker engine, all starting N single-container
`dockyard/busybox:1` containers running `httpd -f -p 8080`, all N at once:

1. **dockyard up**: N Pods created through the API as fast as the client goes; a watch
   records, per pod, apply → `status.phase=Running` and apply → condition `Ready=True`.
   Then the RSS of the `up` process (master and agent together) is read from /proc.
2. **baseline**: N `docker run -d` (through the Docker SDK, from N threads) on a user
   bridge network, so the baseline also pays for a network attachment like a pod sandbox
   does. Latency is call → the run call returned (the container is running then).
   A pod is two containers (sandbox + app) and goes through the API, the scheduler and
   a status write, so the ratio says what that costs.
3. **standalone agent**: `dockyard master` and `dockyard agent` as two processes, the
   same N pods, then the agent process's RSS alone.

Prints p50/p99 per series and the ratio of means; removes everything it created. Never
asserts on timings. Run with `make bench` or `python bench/pod_start.py [-n N]`.
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
from concurrent.futures import ThreadPoolExecutor
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


def start_pods(client: Client, n: int, timeout: float = 60) -> tuple[list[float], list[float]]:
    """Create n pods at once; (apply→Running, apply→Ready) seconds per pod, by watching."""
    names = [f"bench-{i:02d}" for i in range(n)]
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    rv = client.list(POD, "default")["metadata"]["resourceVersion"]
    done = threading.Event()

    def watch() -> None:
        watcher = Client(client.server, client.token, client.ca_pem)
        try:
            for ev in watcher.watch(POD, "default", resource_version=rv, label_selector="bench=pod-start",
                                    timeout_seconds=int(timeout)):
                now = time.monotonic()
                obj = ev.get("object") or {}
                name = obj.get("metadata", {}).get("name")
                st = obj.get("status") or {}
                if st.get("phase") == "Running":
                    running.setdefault(name, now)
                if any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
                    ready.setdefault(name, now)
                if len(ready) == n:
                    break
        finally:
            watcher.close()
            done.set()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.2)  # the watch is open
    for name in names:
        created[name] = time.monotonic()
        client.create(pod_manifest(name), "default")
    done.wait(timeout)
    missing = [x for x in names if x not in ready]
    if missing:
        print(f"  warning: {len(missing)} pod(s) not Ready within {timeout:.0f}s", file=sys.stderr)
    return ([running[x] - created[x] for x in names if x in running],
            [ready[x] - created[x] for x in names if x in ready])


def delete_pods(client: Client, n: int) -> None:
    for i in range(n):
        with contextlib.suppress(Exception):
            client.delete(POD, f"bench-{i:02d}", "default", grace_period=0)


def baseline(n: int) -> list[float]:
    rt = DockerRuntime()
    net = f"dy-bench-{uuid.uuid4().hex[:6]}"
    rt.api.create_network(net, driver="bridge")
    ids: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> float:
        t0 = time.monotonic()
        c = rt.client.containers.run(IMAGE, COMMAND, detach=True, network=net, name=f"{net}-{i}",
                                     labels={"dockyard.io/bench": net}, security_opt=["no-new-privileges"])
        took = time.monotonic() - t0
        with lock:
            ids.append(c.id)
        return took

    try:
        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for cid in ids:
            with contextlib.suppress(Exception):
                rt.api.remove_container(cid, force=True)
        with contextlib.suppress(Exception):
            rt.api.remove_network(net)
        rt.close()


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
        _, ready = start_pods(client, n)
        if len(ready) < n:
            return None
        time.sleep(1)
        return rss_mib(agent.pid), rss_mib(master.pid)
    finally:
        if client is not None:
            delete_pods(client, n)
            with contextlib.suppress(Exception):
                wait_for(lambda: not client.list(POD, "default", label_selector="bench=pod-start")["items"], 30)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="pods / containers per run (default 20)")
    ap.add_argument("--no-standalone", action="store_true", help="skip the master + agent process run")
    args = ap.parse_args()
    n = args.n
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    started = time.monotonic()
    print(f"pod start: {n} pods of {IMAGE} `{' '.join(COMMAND)}`, all at once")
    cluster = Cluster(base / "up", cluster_cidr="10.214.0.0/16")
    (base / "up").mkdir()
    try:
        cluster.start()
        # one warm-up pod, so neither side pays for first-use costs (image layers, network)
        run_w, ready_w = start_pods(cluster.client, 1)
        delete_pods(cluster.client, 1)
        wait_for(lambda: not cluster.client.list(POD, "default", label_selector="bench=pod-start")["items"], 30,
                 what="the warm-up pod to go")
        running, ready = start_pods(cluster.client, n)
        time.sleep(1)
        assert cluster.proc is not None
        up_rss = rss_mib(cluster.proc.pid)
        delete_pods(cluster.client, n)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not cluster.client.list(POD, "default", label_selector="bench=pod-start")["items"], 30)
    finally:
        cluster.stop()
        cluster.remove_containers()
    baseline(1)  # warm-up
    docker_run = baseline(n)

    print("\nlatency (from the create call)")
    report("dockyard apply -> Running", running)
    report("dockyard apply -> Ready", ready)
    report("docker run -d (user bridge)", docker_run)
    if running and docker_run:
        print(f"\n  ratio of means, Running / docker run: {statistics.mean(running) / statistics.mean(docker_run):.2f}x")
        print(f"  ratio of means, Ready / docker run:   {statistics.mean(ready) / statistics.mean(docker_run):.2f}x")
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
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
