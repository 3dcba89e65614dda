"""Rollout and automatic rollback under load: requests sent and failed, and how long each took.

Starts a real single-node cluster (`dockyard up`), a Deployment "web" of `--replicas` busybox
httpd pods (RollingUpdate maxSurge 1 / maxUnavailable 0, an httpGet readiness probe every
second, minReadySeconds 1, servers that keep serving for 3s after SIGTERM) behind the
ClusterIP Service "web", and a load generator pod fetching `http://web/` in a loop. Then:

* rolls the Deployment to v2 and times it from the spec update until every replica is
  updated and available and no old one is left;
* rolls it to a v3 whose container exits at once and times it from the spec update until
  the controller has rolled back to v2 and the Deployment is whole again;

and prints the load generator's count of requests sent and failed over both.

Run: `python bench/rollout.py [--replicas 3] [--keep]` (needs Docker and root for iptables).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.objects.kinds import resolve  # noqa: E402
from tests.integration.test_zero_downtime import (  # noqa: E402
    SERVICE,
    container_of,
    deployment,
    endpoint_names,
    loadgen_pod,
    logs,
    sh_in,
    template,
)
from tests.support.cluster import Cluster, running, wait_for  # noqa: E402

DEPLOY = resolve("deployments")


def whole(cluster: Cluster, replicas: int, rolled_back: bool = False) -> bool:
    dep = cluster.client.get(DEPLOY, "web", "default")
    st = dep.get("status") or {}
    done = (st.get("observedGeneration") == dep["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas and st.get("availableReplicas") == replicas
            and st.get("replicas") == replicas)
    if rolled_back:
        done = done and bool((dep["metadata"].get("annotations") or {}).get("dockyard.io/rolled-back-from-revision"))
    return done


def set_template(cluster: Cluster, tmpl: dict) -> None:
    dep = cluster.client.get(DEPLOY, "web", "default")
    dep["spec"]["template"] = copy.deepcopy(tmpl)
    cluster.client.replace(dep)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=3, help="replicas of the Deployment (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the bench directory (logs)")
    args = ap.parse_args()
    n = args.replicas
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-rollout-"))
    print(f"rollout under load: {n} replicas, maxSurge 1, maxUnavailable 0, readiness period 1s")
    try:
        with running(Cluster(base, cluster_cidr="10.219.0.0/16",
                             extra_args=("--service-cidr", "10.119.0.0/16",
                                         "--backoff-base", "0.5", "--backoff-cap", "2"))) as c:
            c.client.create(deployment(n), "default")
            c.client.create(copy.deepcopy(SERVICE), "default")
            wait_for(lambda: len(endpoint_names(c)) == n, 120, what=f"{n} ready endpoints")
            c.client.create(loadgen_pod("loadgen", seconds=600, max_requests=200000), "default")
            wait_for(lambda: any(r.ok for r in logs(c, "loadgen").requests), 60, 0.3, what="the first answer")

            t0 = time.monotonic()
            set_template(c, template("v2"))
            wait_for(lambda: whole(c, n), 300, 0.2, what="the rollout to v2")
            rollout_s = time.monotonic() - t0
            time.sleep(4)  # the old pods' grace period, still under load

            t1 = time.monotonic()
            set_template(c, template("v3", command=["sh", "-c", "echo broken; exit 1"]))
            wait_for(lambda: whole(c, n, rolled_back=True), 300, 0.2, what="the automatic rollback")
            rollback_s = time.monotonic() - t1
            time.sleep(2)

            sh_in(container_of(c, "loadgen", "load"), "touch /tmp/stop")
            report = wait_for(lambda: (rep := logs(c, "loadgen")).done and rep, 60, 0.3, what="the load to stop")
    finally:
        if args.keep:
            print(f"bench directory: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"  rollout v1 -> v2:              {rollout_s:6.1f} s")
    print(f"  failed v3, rolled back to v2:  {rollback_s:6.1f} s")
    print(f"  requests sent:                 {report.sent:6d}")
    print(f"  requests failed:               {report.failed:6d}")
    for r in report.failures[:5]:
        print(f"    failed #{r.n} at {r.at}: {r.text}")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
