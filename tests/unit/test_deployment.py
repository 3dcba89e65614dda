"""Tests of the pure Deployment planning logic, driven through a small in-memory simulation.

`Sim` plays the roles of the API server (applying plans), the ReplicaSet controller (via
`plan_replicaset`) and the kubelet (making pods ready on request), advancing an injected
clock, so rollouts can be observed step by step.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.controllers.deployment import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    plan_deployment,
    pod_template_hash,
)
from orchestrator.controllers.replicaset import plan_replicaset, pod_from_template
from orchestrator.objects.pods import format_time, is_active, is_available, owned_by

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def deployment(replicas: int = 3, image: str = "web:1", strategy: dict | None = None, **spec: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "uid": "dep-uid", "generation": 1,
                     "annotations": {"team": "blue"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
            "strategy": strategy or {"type": "RollingUpdate"},
            **spec,
        },
        "status": {},
    }


def cond(status: dict, ctype: str) -> dict:
    return next(c for c in status.get("conditions", []) if c["type"] == ctype)


class Sim:
    def __init__(self, dep: dict, auto_ready: bool = True, slow_delete: bool = False) -> None:
        self.dep = dep
        self.slow_delete = slow_delete  # deleted pods linger one tick as terminating
        self.rss: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.now = T0
        self.counter = 0
        self.events: list[tuple[str, str, str]] = []
        self.auto_ready = auto_ready
        self.plans: list = []

    def _uid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def edit(self, **spec: object) -> None:
        self.dep["spec"].update(spec)
        self.dep["metadata"]["generation"] += 1

    def set_image(self, image: str) -> None:
        template = copy.deepcopy(self.dep["spec"]["template"])
        template["spec"]["containers"][0]["image"] = image
        self.edit(template=template)

    def sync_deployment(self):
        plan = plan_deployment(copy.deepcopy(self.dep), copy.deepcopy(list(self.rss.values())),
                               copy.deepcopy(list(self.pods.values())), self.now)
        if plan.create_rs is not None:
            rs = copy.deepcopy(plan.create_rs)
            assert rs["metadata"]["name"] not in self.rss
            rs["metadata"].update(uid=self._uid("rs"), creationTimestamp=format_time(self.now), generation=1)
            rs["status"] = {}
            self.rss[rs["metadata"]["name"]] = rs
        for rs in plan.update_rs:
            stored = copy.deepcopy(rs)
            assert stored["metadata"]["uid"] == self.rss[rs["metadata"]["name"]]["metadata"]["uid"]
            self.rss[rs["metadata"]["name"]] = stored
        for rs in plan.delete_rs:
            del self.rss[rs["metadata"]["name"]]
        if plan.rollback is not None:
            self.dep["spec"]["template"] = copy.deepcopy(plan.rollback.template)
            self.dep["metadata"]["generation"] += 1
        self.dep["status"] = copy.deepcopy(plan.status)
        for key, value in (plan.deployment_annotations or {}).items():
            if value is None:
                self.dep["metadata"]["annotations"].pop(key, None)
            else:
                self.dep["metadata"]["annotations"][key] = value
        self.events.extend(plan.events)
        self.plans.append(plan)
        return plan

    def sync_replicasets(self) -> None:
        for name in [n for n, p in self.pods.items() if p["metadata"].get("deletionTimestamp")]:
            del self.pods[name]
        for rs in self.rss.values():
            owned = [p for p in self.pods.values() if owned_by(p, rs)]
            plan = plan_replicaset(rs, owned, self.now)
            for _ in range(plan.create):
                pod = pod_from_template(rs)
                name = pod["metadata"]["generateName"] + str(self.counter)
                pod["metadata"].update(name=name, uid=self._uid("pod"), creationTimestamp=format_time(self.now))
                pod["status"] = {"phase": "Pending"}
                self.pods[name] = pod
            for victim in plan.delete:
                if self.slow_delete:
                    self.pods[victim["metadata"]["name"]]["metadata"]["deletionTimestamp"] = format_time(self.now)
                else:
                    del self.pods[victim["metadata"]["name"]]
            owned = [p for p in self.pods.values() if owned_by(p, rs)]
            rs["status"] = plan_replicaset(rs, owned, self.now).status

    def make_ready(self) -> None:
        for pod in self.pods.values():
            if pod["status"]["phase"] == "Pending":
                pod["spec"]["nodeName"] = "n1"
                pod["status"] = {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": format_time(self.now)}]}

    def tick(self, seconds: int = 1) -> None:
        self.sync_deployment()
        self.sync_replicasets()
        self.check()
        if self.auto_ready:
            self.make_ready()
        self.now += timedelta(seconds=seconds)

    def check(self) -> None:
        """Hook for invariants; replaced in some tests."""

    def run(self, ticks: int = 30, seconds: int = 1) -> None:
        for _ in range(ticks):
            self.tick(seconds)
        self.sync_deployment()  # final status

    def pods_of(self, rs_name: str) -> list[dict]:
        rs = self.rss[rs_name]
        return [p for p in self.pods.values() if owned_by(p, rs) and is_active(p)]

    def revisions(self) -> dict[str, str]:
        return {n: rs["metadata"]["annotations"][REVISION] for n, rs in self.rss.items()}


# --- hashing -------------------------------------------------------------------------------


def test_pod_template_hash_stable_and_safe() -> None:
    t = deployment()["spec"]["template"]
    h = pod_template_hash(t)
    assert len(h) == 10 and all(c in "bcdfghjklmnpqrstvwxz2456789" for c in h)
    assert pod_template_hash(copy.deepcopy(t)) == h
    labelled = copy.deepcopy(t)
    labelled["metadata"]["labels"][HASH_LABEL] = h
    assert pod_template_hash(labelled) == h
    changed = copy.deepcopy(t)
    changed["spec"]["containers"][0]["image"] = "web:2"
    assert pod_template_hash(changed) != h
    assert pod_template_hash(t, collision_count=1) != h


# --- first rollout and scaling ---------------------------------------------------------------


def test_first_rollout_creates_revision_one() -> None:
    sim = Sim(deployment(replicas=3))
    plan = sim.sync_deployment()
    rs = plan.create_rs
    h = pod_template_hash(sim.dep["spec"]["template"])
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["labels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: h}
    assert rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL] == h
    assert rs["spec"]["replicas"] == 3
    ann = rs["metadata"]["annotations"]
    assert ann[REVISION] == "1" and ann[DESIRED_REPLICAS] == "3" and ann[MAX_REPLICAS] == "4"
    assert ann["team"] == "blue"
    owner = rs["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Deployment" and owner["uid"] == "dep-uid" and owner["controller"] is True
    assert plan.events == [("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{h} from 0 to 3")]
    assert cond(plan.status, "Progressing")["reason"] == "NewReplicaSetCreated"
    assert plan.deployment_annotations == {REVISION: "1"}

    sim.sync_replicasets()
    sim.make_ready()
    sim.run(3)
    st = sim.dep["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["unavailableReplicas"] == 0 and st["observedGeneration"] == 1
    assert cond(st, "Available")["status"] == "True"
    assert cond(st, "Progressing")["reason"] == "NewReplicaSetAvailable"


@pytest.mark.parametrize("new_replicas", [5, 1, 0])
def test_scale_existing_rollout(new_replicas: int) -> None:
    sim = Sim(deployment(replicas=3))
    sim.run(5)
    (name,) = sim.rss
    sim.edit(replicas=new_replicas)
    plan = sim.sync_deployment()
    assert plan.create_rs is None
    assert [r["spec"]["replicas"] for r in plan.update_rs] == [new_replicas]
    assert plan.update_rs[0]["metadata"]["annotations"][DESIRED_REPLICAS] == str(new_replicas)
    direction = "up" if new_replicas > 3 else "down"
    assert plan.events == [("Normal", "ScalingReplicaSet",
                            f"Scaled {direction} replica set {name} from 3 to {new_replicas}")]
    sim.run(5)
    assert len(sim.pods_of(name)) == new_replicas
    assert sim.dep["status"]["availableReplicas"] == new_replicas
    assert cond(sim.dep["status"], "Available")["status"] == "True"


# --- rolling update ----------------------------------------------------------------------------


@pytest.mark.parametrize("slow_delete", [False, True])
@pytest.mark.parametrize(
    "replicas,surge,unavailable,max_total,min_available",
    [
        (4, 1, 1, 5, 3),
        (4, 0, 1, 4, 3),
        (4, 2, 0, 6, 4),
        (10, "25%", "25%", 13, 8),  # surge rounds up (2.5 -> 3), unavailable down (2.5 -> 2)
        (3, 0, 0, 3, 2),  # both zero: maxUnavailable 1
    ],
)
def test_rolling_update_respects_surge_and_unavailable(replicas, surge, unavailable, max_total,
                                                       min_available, slow_delete) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    sim = Sim(deployment(replicas=replicas, strategy=strategy), slow_delete=slow_delete)
    sim.run(5)
    (old_name,) = sim.rss
    sim.set_image("web:2")

    seen: list[tuple[int, int]] = []

    def check() -> None:
        active = [p for p in sim.pods.values() if is_active(p)]
        available = [p for p in active if is_available(p, 0, sim.now)]
        spec_total = sum(rs["spec"]["replicas"] for rs in sim.rss.values())
        assert len(active) <= max_total
        assert spec_total <= max_total
        assert len(available) >= min_available
        seen.append((len(active), len(available)))

    sim.check = check
    sim.run(30)
    new_names = [n for n in sim.rss if n != old_name]
    assert len(new_names) == 1
    new = sim.rss[new_names[0]]
    assert new["metadata"]["annotations"][REVISION] == "2"
    assert new["spec"]["replicas"] == replicas and sim.rss[old_name]["spec"]["replicas"] == 0
    assert len(sim.pods_of(new_names[0])) == replicas and sim.pods_of(old_name) == []
    st = sim.dep["status"]
    assert st["updatedReplicas"] == replicas and st["availableReplicas"] == replicas
    assert cond(st, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert sim.dep["metadata"]["annotations"][REVISION] == "2"
    assert any(total == max_total for total, _ in seen) or max_total == replicas
    assert any(e[2].startswith("Scaled down replica set " + old_name) for e in sim.events)


def test_rolling_update_waits_for_min_ready_seconds() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    sim = Sim(deployment(replicas=2, strategy=strategy, minReadySeconds=10))
    sim.run(15)
    (old_name,) = sim.rss
    sim.set_image("web:2")
    sim.run(3)  # new pod ready but not yet available for 10s: old RS must stay at 2
    assert sim.rss[old_name]["spec"]["replicas"] == 2
    sim.run(40)
    assert sim.rss[old_name]["spec"]["replicas"] == 0


def test_unhealthy_old_replicas_are_scaled_down_first() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    sim = Sim(deployment(replicas=3, strategy=strategy), auto_ready=False)
    sim.run(1)
    sim.make_ready()
    sim.run(1)
    (old_name,) = sim.rss
    # one old pod goes unready
    victim = sim.pods_of(old_name)[0]
    victim["status"]["conditions"][0]["status"] = "False"
    sim.set_image("web:2")
    plan = sim.sync_deployment()
    old = next(r for r in plan.update_rs if r["metadata"]["name"] == old_name)
    # 3 desired, 2 available, maxUnavailable 1: only the unhealthy replica may go
    assert old["spec"]["replicas"] == 2


# --- recreate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("slow_delete", [False, True])
def test_recreate_never_overlaps(slow_delete: bool) -> None:
    sim = Sim(deployment(replicas=3, strategy={"type": "Recreate"}), slow_delete=slow_delete)
    sim.run(5)
    (old_name,) = sim.rss
    sim.set_image("web:2")

    plan = sim.sync_deployment()
    assert plan.create_rs is None
    assert [(r["metadata"]["name"], r["spec"]["replicas"]) for r in plan.update_rs] == [(old_name, 0)]

    def check() -> None:  # terminating pods still run: they count here
        owners = {p["metadata"]["ownerReferences"][0]["uid"] for p in sim.pods.values()
                  if p["status"]["phase"] not in ("Succeeded", "Failed")}
        assert len(owners) <= 1

    sim.check = check
    sim.run(10)
    new_name = next(n for n in sim.rss if n != old_name)
    assert sim.rss[new_name]["metadata"]["annotations"][REVISION] == "2"
    assert len(sim.pods_of(new_name)) == 3
    assert cond(sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_recreate_waits_for_terminating_old_pods() -> None:
    sim = Sim(deployment(replicas=2, strategy={"type": "Recreate"}))
    sim.run(5)
    (old_name,) = sim.rss
    sim.set_image("web:2")
    sim.sync_deployment()  # old RS -> 0
    for pod in sim.pods.values():
        pod["metadata"]["deletionTimestamp"] = format_time(sim.now)
    plan = sim.sync_deployment()
    assert plan.create_rs is None  # old pods still shutting down
    sim.pods.clear()
    sim.rss[old_name]["status"]["replicas"] = 0
    plan = sim.sync_deployment()
    assert plan.create_rs is not None and plan.create_rs["spec"]["replicas"] == 2


# --- rollback and history ------------------------------------------------------------------------


def test_rollback_reuses_old_replicaset_with_bumped_revision() -> None:
    sim = Sim(deployment(replicas=2))
    sim.run(5)
    (v1_name,) = sim.rss
    v1_template = copy.deepcopy(sim.dep["spec"]["template"])
    sim.set_image("web:2")
    sim.run(15)
    assert sim.revisions()[v1_name] == "1"
    sim.edit(template=v1_template)
    plan = sim.sync_deployment()
    assert plan.create_rs is None
    v1 = next(r for r in plan.update_rs if r["metadata"]["name"] == v1_name)
    assert v1["metadata"]["annotations"][REVISION] == "3"
    assert v1["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert plan.deployment_annotations == {REVISION: "3"}
    sim.run(15)
    assert len(sim.rss) == 2
    assert sim.rss[v1_name]["spec"]["replicas"] == 2
    assert len(sim.pods_of(v1_name)) == 2
    assert sim.dep["metadata"]["annotations"][REVISION] == "3"
    assert cond(sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_revision_history_limit_deletes_oldest() -> None:
    sim = Sim(deployment(replicas=1, revisionHistoryLimit=1))
    sim.run(5)
    for image in ("web:2", "web:3", "web:4"):
        sim.set_image(image)
        sim.run(10)
    revisions = sorted(int(r) for r in sim.revisions().values())
    assert revisions == [3, 4]
    deleted = [rs for plan in sim.plans for rs in plan.delete_rs]
    assert [rs["metadata"]["annotations"][REVISION] for rs in deleted] == ["1", "2"]


def test_history_limit_keeps_replicasets_with_pods() -> None:
    sim = Sim(deployment(replicas=1, revisionHistoryLimit=0))
    sim.run(5)
    (old_name,) = sim.rss
    old = sim.rss[old_name]
    sim.set_image("web:2")
    sim.run(10)
    assert old_name not in sim.rss  # limit 0: the scaled-down revision goes once complete
    # put it back with a straggling (terminating) pod: it must be kept
    sim.rss[old_name] = old
    old["spec"]["replicas"] = 0
    old["status"] = {"replicas": 0}
    straggler = pod_from_template(old)
    straggler["metadata"].update(name="straggler", uid="s-1", deletionTimestamp=format_time(sim.now))
    straggler["status"] = {"phase": "Running"}
    live = list(sim.pods.values())
    plan = plan_deployment(sim.dep, list(sim.rss.values()), [*live, straggler], sim.now)
    assert plan.delete_rs == []
    plan = plan_deployment(sim.dep, list(sim.rss.values()), live, sim.now)
    assert [r["metadata"]["name"] for r in plan.delete_rs] == [old_name]


# --- progress deadline, paused, status details ----------------------------------------------------


def test_progress_deadline_exceeded() -> None:
    sim = Sim(deployment(replicas=2, progressDeadlineSeconds=30), auto_ready=False)
    sim.run(3, seconds=1)
    st = sim.dep["status"]
    assert cond(st, "Progressing")["status"] == "True"
    assert cond(st, "Available")["status"] == "False"
    assert cond(st, "Available")["reason"] == "MinimumReplicasUnavailable"
    sim.run(5, seconds=10)
    progressing = cond(sim.dep["status"], "Progressing")
    assert progressing["status"] == "False" and progressing["reason"] == "ProgressDeadlineExceeded"
    assert ("Warning", "ProgressDeadlineExceeded",
            'Deployment "web" exceeded its progress deadline') in sim.events
    # the event is recorded once
    assert sum(1 for e in sim.events if e[1] == "ProgressDeadlineExceeded") == 1
    # pods becoming ready resumes progress
    sim.make_ready()
    sim.run(2)
    assert cond(sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_condition_times() -> None:
    sim = Sim(deployment(replicas=1))
    sim.run(3)
    available = cond(sim.dep["status"], "Available")
    first = available["lastTransitionTime"]
    sim.run(5, seconds=60)
    again = cond(sim.dep["status"], "Available")
    assert again["lastTransitionTime"] == first and again["status"] == "True"
    assert first.endswith("Z")


def test_paused_deployment_only_scales() -> None:
    sim = Sim(deployment(replicas=2))
    sim.run(5)
    (name,) = sim.rss
    sim.edit(paused=True)
    sim.set_image("web:2")
    sim.run(5)
    assert list(sim.rss) == [name]
    progressing = cond(sim.dep["status"], "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")
    sim.edit(replicas=4)
    sim.run(5)
    assert sim.rss[name]["spec"]["replicas"] == 4
    assert len(sim.pods_of(name)) == 4
    sim.edit(paused=False)
    plan = sim.sync_deployment()
    assert plan.create_rs is not None
    sim.run(30)
    assert sim.rss[name]["spec"]["replicas"] == 0
    assert cond(sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_proportional_scaling_mid_rollout() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    sim = Sim(deployment(replicas=10, strategy=strategy), auto_ready=False)
    sim.run(1)
    sim.make_ready()
    sim.run(2)
    (old_name,) = sim.rss
    sim.set_image("web:2")  # new pods never become ready: rollout stalls half way
    sim.run(3)
    new_name = next(n for n in sim.rss if n != old_name)
    old_before = sim.rss[old_name]["spec"]["replicas"]
    new_before = sim.rss[new_name]["spec"]["replicas"]
    assert old_before + new_before == 13
    sim.edit(replicas=20)
    plan = sim.sync_deployment()
    sizes = {r["metadata"]["name"]: r["spec"]["replicas"] for r in plan.update_rs}
    assert sum(sizes.values()) == 20 + 3
    assert sizes[old_name] > old_before and sizes[new_name] > new_before
    for rs in plan.update_rs:
        assert rs["metadata"]["annotations"][DESIRED_REPLICAS] == "20"


def test_ignores_replicasets_of_others() -> None:
    dep = deployment(replicas=1)
    foreign = {"metadata": {"name": "other", "uid": "x", "ownerReferences": [
        {"kind": "Deployment", "uid": "someone", "controller": True}]},
        "spec": {"replicas": 5, "template": dep["spec"]["template"]}}
    plan = plan_deployment(dep, [foreign], [], T0)
    assert plan.create_rs is not None and plan.update_rs == [] and plan.delete_rs == []
