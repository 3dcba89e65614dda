"""Autoscaling reaction time: from CPU load start to the first scale-up and to the target count.

Starts a real single-node cluster (`dockyard up`, HPA sync period `--sync` seconds, 2 by
default; Kubernetes' is 15), a Deployment of CPU burners (request 50m, limit 100m, spinning
while a file exists in a hostPath directory) and an HPA targeting 80% CPU utilization with
`--max` replicas. After the single pod has been ready for one metrics window, it turns the
load on and prints:

* time to the first rescale (sync period + sampling + the controller round),
* time until the Deployment asks for `--max` replicas (each new pod's CPU only counts one
  sample window after it becomes ready: the Kubernetes CPU initialization rule),
* then, with the load off, the time to scale back to one replica (stabilization window
  `--down-window` seconds).

Run: `python bench/autoscale.py [--max 4] [--sync 2] [--down-window 6]` (needs Docker).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.objects.kinds import resolve  # noqa: E402
from tests.support.cluster import Cluster, wait_for  # noqa: E402
from tests.support.images import build_demo_image  # noqa: E402

BURN = "while :; do if [ -f /load/on ]; then :; else sleep 1; fi; done"


class BenchCluster(Cluster):
    sync_seconds = "2"

    def env(self) -> dict[str, str]:
        env = super().env()
        env["DOCKYARD_HPA_SYNC_SECONDS"] = self.sync_seconds
        return env


def replicas(cluster: Cluster) -> int:
    return int(cluster.client.get(resolve("deployments"), "bench-burner", "default")["spec"]["replicas"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=4, help="maxReplicas of the HPA")
    p.add_argument("--sync", type=float, default=2.0, help="HPA sync period in seconds")
    p.add_argument("--down-window", type=int, default=6, help="scale-down stabilization window in seconds")
    args = p.parse_args()

    image = build_demo_image()
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-hpa-"))
    load = base / "load"
    load.mkdir()
    os.chmod(load, 0o755)
    BenchCluster.sync_seconds = str(args.sync)
    cluster = BenchCluster(base, cluster_cidr="10.216.0.0/16")
    cluster.start()
    try:
        c = cluster.client
        c.create({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench-burner"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "bench-burner"}}, "template": {
                "metadata": {"labels": {"app": "bench-burner"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "burn", "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", BURN],
                    "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "load", "mountPath": "/load"}]}],
                    "volumes": [{"name": "load", "hostPath": {"path": str(load), "type": "Directory"}}]}}},
        }, "default")
        wait_for(lambda: (c.get(resolve("deployments"), "bench-burner", "default").get("status") or {})
                 .get("readyReplicas") == 1, 90, what="the deployment ready")
        c.create({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bench-burner"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bench-burner"},
                     "minReplicas": 1, "maxReplicas": args.max,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 80}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": args.down_window}}},
        }, "default")
        time.sleep(12)

        start = time.monotonic()
        (load / "on").touch()
        first = None
        while time.monotonic() - start < 300:
            n = replicas(cluster)
            if first is None and n > 1:
                first = time.monotonic() - start
            if n >= args.max:
                break
            time.sleep(0.2)
        reached = time.monotonic() - start
        (load / "on").unlink()
        down_start = time.monotonic()
        wait_for(lambda: replicas(cluster) == 1, 300, interval=0.2, what="scale down")
        down = time.monotonic() - down_start
        print(f"HPA sync period {args.sync:.1f}s, maxReplicas {args.max}, scale-down window {args.down_window}s")
        print(f"load start -> first scale-up:         {first if first is not None else float('nan'):6.1f}s")
        print(f"load start -> {args.max} replicas requested:    {reached:6.1f}s")
        print(f"load stop  -> back to 1 replica:      {down:6.1f}s")
        print("(Kubernetes defaults: 15s sync period, 300s scale-down window -> >= 300s to scale down)")
    finally:
        cluster.stop()
        cluster.remove_containers()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
