"""Table-driven tests of the automatic rollback decision of `plan_deployment`.

The in-memory `Sim` of test_deployment plays API server, ReplicaSet controller and kubelet.
Here the kubelet part is steered per ReplicaSet: pods of the good revision become Ready,
pods of the revision under test either never become Ready (deadline case) or report a
failing container state (crash-loop cases).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from orchestrator.controllers.deployment import (
    AUTO_ROLLBACK,
    CRASH_LOOP_RESTARTS,
    LAST_GOOD_REVISION,
    REVISION,
    ROLLED_BACK_FROM,
    ROLLED_BACK_HASH,
    ROLLED_BACK_TO,
    container_failure,
    plan_deployment,
    pod_template_hash,
)
from orchestrator.objects.pods import owned_by
from tests.unit.test_deployment import Sim, cond, deployment

Kubelet = Callable[[dict], dict]  # pod -> its status


def waiting(reason: str, restarts: int = 0) -> Kubelet:
    def status(pod: dict) -> dict:
        return {
            "phase": "Running" if reason == "CrashLoopBackOff" else "Pending",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "c", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}
            ],
        }

    return status


def running(restarts: int, ready: bool = False) -> Kubelet:
    def status(pod: dict) -> dict:
        return {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "c", "ready": ready, "restartCount": restarts,
                 "state": {"running": {"startedAt": "2026-01-01T12:00:00Z"}}}
            ],
        }

    return status


def never_ready(pod: dict) -> dict:
    return running(0)(pod)


class Rollout:
    """A Deployment rolled out at web:1 (revision 1, complete), then changed to web:2."""

    def __init__(self, kubelet: Kubelet, annotations: dict | None = None, strategy: dict | None = None,
                 deadline: int = 60, replicas: int = 3, first_rollout_good: bool = True) -> None:
        dep = deployment(replicas=replicas, progressDeadlineSeconds=deadline, strategy=strategy)
        dep["metadata"]["annotations"].update(annotations or {})
        self.sim = Sim(dep)
        self.good_template = copy.deepcopy(dep["spec"]["template"])
        if first_rollout_good:
            self.sim.run(5)
            (self.good_rs,) = self.sim.rss
        self.kubelet = kubelet
        self.sim.auto_ready = False
        self.sim.check = self._kubelet
        self.sim.set_image("web:2")
        self.bad_template = copy.deepcopy(self.sim.dep["spec"]["template"])

    def bad_rs(self) -> str:
        h = pod_template_hash(self.bad_template)
        return next(n for n in self.sim.rss if n.endswith(h))

    def _kubelet(self) -> None:
        sim = self.sim
        good = pod_template_hash(self.good_template)
        for pod in sim.pods.values():
            rs = next(r for r in sim.rss.values() if owned_by(pod, r))
            if rs["metadata"]["name"].endswith(good):
                if pod["status"]["phase"] == "Pending":
                    pod["spec"]["nodeName"] = "n1"
                    pod["status"] = {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T12:00:00Z"}]}
            else:
                pod["status"] = self.kubelet(pod)

    def rollbacks(self) -> list:
        return [p.rollback for p in self.sim.plans if p.rollback is not None]

    def annotations(self) -> dict:
        return self.sim.dep["metadata"]["annotations"]


# --- the decision ---------------------------------------------------------------------------

CASES = [
    # id, kubelet, ticks, seconds per tick, expected failure reason (None: still progressing)
    ("deadline", never_ready, 12, 10, "ProgressDeadlineExceeded"),
    ("crashloop", waiting("CrashLoopBackOff", 1), 3, 1, "NewReplicaSetFailing"),
    ("image-pull-backoff", waiting("ImagePullBackOff"), 3, 1, "NewReplicaSetFailing"),
    ("err-image-pull", waiting("ErrImagePull"), 3, 1, "NewReplicaSetFailing"),
    ("config-error", waiting("CreateContainerConfigError"), 3, 1, "NewReplicaSetFailing"),
    ("restarts", running(CRASH_LOOP_RESTARTS), 3, 1, "NewReplicaSetFailing"),
    ("restarts-while-ready", running(CRASH_LOOP_RESTARTS, ready=True), 3, 1, "NewReplicaSetFailing"),
    ("few-restarts", running(CRASH_LOOP_RESTARTS - 1), 3, 1, None),
    ("container-creating", waiting("ContainerCreating"), 3, 1, None),
]


@pytest.mark.parametrize("kubelet,ticks,seconds,reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_failed_rollout_rolls_back_to_last_good(kubelet: Kubelet, ticks: int, seconds: int,
                                                reason: str | None) -> None:
    r = Rollout(kubelet)
    sim = r.sim
    assert r.annotations()[LAST_GOOD_REVISION] == "1"
    generation = sim.dep["metadata"]["generation"]
    sim.run(ticks, seconds)
    if reason is None:
        assert r.rollbacks() == []
        assert cond(sim.dep["status"], "Progressing")["status"] == "True"
        return
    (rollback,) = r.rollbacks()
    assert (rollback.from_revision, rollback.to_revision, rollback.reason) == (2, 1, reason)
    assert rollback.template == r.good_template
    assert sim.dep["spec"]["template"] == r.good_template
    assert sim.dep["metadata"]["generation"] == generation + 1
    plan = next(p for p in sim.plans if p.rollback is not None)
    assert plan.create_rs is None and plan.update_rs == [] and plan.delete_rs == []
    kinds = [(e[0], e[1]) for e in sim.events]
    assert ("Warning", "RolloutFailed") in kinds
    assert ("Normal", "DeploymentRollback", 'Rolled back deployment "web" to revision 1') in sim.events
    assert kinds.index(("Warning", "RolloutFailed")) < kinds.index(("Normal", "DeploymentRollback"))
    ann = r.annotations()
    assert ann[ROLLED_BACK_FROM] == "2" and ann[ROLLED_BACK_TO] == "1"
    assert ann[ROLLED_BACK_HASH] == pod_template_hash(r.good_template)

    # the restored revision takes over again; the rollback stays visible
    sim.run(20)
    st = sim.dep["status"]
    progressing = cond(st, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "RolledBack")
    assert "revision 2 to revision 1" in progressing["message"]
    assert sim.rss[r.good_rs]["spec"]["replicas"] == 3 and sim.rss[r.bad_rs()]["spec"]["replicas"] == 0
    assert (st["updatedReplicas"], st["availableReplicas"], st["replicas"]) == (3, 3, 3)
    assert sim.rss[r.good_rs]["metadata"]["annotations"][REVISION] == "3"
    assert ann[LAST_GOOD_REVISION] == "3"
    assert len(r.rollbacks()) == 1


@pytest.mark.parametrize("kubelet,reason", [
    (waiting("CrashLoopBackOff"), "NewReplicaSetFailing"),
    (never_ready, "ProgressDeadlineExceeded"),
])
@pytest.mark.parametrize("why", ["opt-out", "no-good-revision", "paused"])
def test_failed_rollout_without_rollback(kubelet: Kubelet, reason: str, why: str) -> None:
    annotations = {AUTO_ROLLBACK: "False"} if why == "opt-out" else None
    r = Rollout(kubelet, annotations=annotations, first_rollout_good=why != "no-good-revision")
    if why == "paused":
        r.sim.tick()  # the rollout has started: new pods exist
        r.sim.edit(paused=True)
    r.sim.run(12, 10)
    assert r.rollbacks() == []
    assert r.sim.dep["spec"]["template"] == r.bad_template
    progressing = cond(r.sim.dep["status"], "Progressing")
    if why == "paused":
        assert progressing["reason"] in ("DeploymentPaused", reason)
        return
    assert (progressing["status"], progressing["reason"]) == ("False", reason)
    assert sum(1 for e in r.sim.events if e[1] == "RolloutFailed") == 1
    assert ROLLED_BACK_HASH not in r.annotations()


def test_no_loop_when_restored_revision_fails_too() -> None:
    r = Rollout(waiting("CrashLoopBackOff"))
    r.sim.run(3)
    assert len(r.rollbacks()) == 1
    # now the restored revision crashes as well (say a dependency went away)
    r.kubelet = waiting("CrashLoopBackOff")
    r.good_template = {"no": "match"}  # the steering kubelet treats every pod as failing
    for pod in r.sim.pods.values():
        pod["status"] = waiting("CrashLoopBackOff")(pod)
    r.sim.run(12, 10)
    assert len(r.rollbacks()) == 1
    assert cond(r.sim.dep["status"], "Progressing")["reason"] == "RolledBack"
    assert r.sim.dep["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"


def test_new_template_after_rollback_clears_marks_and_rolls_out() -> None:
    r = Rollout(waiting("CrashLoopBackOff"))
    r.sim.run(3)
    r.sim.run(10)
    assert r.annotations()[ROLLED_BACK_TO] == "1"
    fixed = copy.deepcopy(r.good_template)
    fixed["spec"]["containers"][0]["image"] = "web:3"
    r.good_template = fixed  # web:3 pods become ready
    r.sim.edit(template=copy.deepcopy(fixed))
    r.sim.run(20)
    ann = r.annotations()
    assert not {ROLLED_BACK_FROM, ROLLED_BACK_TO, ROLLED_BACK_HASH} & set(ann)
    assert cond(r.sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert ann[REVISION] == ann[LAST_GOOD_REVISION] == "4"


def test_failed_template_applied_again_is_rolled_back_again() -> None:
    r = Rollout(waiting("CrashLoopBackOff"))
    r.sim.run(20)
    r.sim.edit(template=copy.deepcopy(r.bad_template))
    r.sim.run(20)
    rollbacks = r.rollbacks()
    assert len(rollbacks) == 2
    assert (rollbacks[1].from_revision, rollbacks[1].to_revision) == (4, 3)
    assert r.sim.dep["spec"]["template"] == r.good_template


def test_crashes_after_a_complete_rollout_do_not_roll_back() -> None:
    r = Rollout(running(0, ready=True))
    r.sim.run(10)
    assert cond(r.sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert r.annotations()[LAST_GOOD_REVISION] == "2"
    r.kubelet = waiting("CrashLoopBackOff", 5)
    r.sim.run(12, 10)
    assert r.rollbacks() == []


def test_recreate_strategy_rolls_back() -> None:
    r = Rollout(waiting("CrashLoopBackOff"), strategy={"type": "Recreate"})
    r.sim.run(30)
    (rollback,) = r.rollbacks()
    assert rollback.to_revision == 1
    assert len(r.sim.pods_of(r.good_rs)) == 3
    assert r.sim.pods_of(r.bad_rs()) == []


def test_rollback_target_deleted_by_history_limit_means_no_rollback() -> None:
    r = Rollout(waiting("CrashLoopBackOff"))
    good = r.sim.rss.pop(r.good_rs)
    for pod in [p for p in r.sim.pods.values() if owned_by(p, good)]:
        del r.sim.pods[pod["metadata"]["name"]]
    r.sim.run(5)
    assert r.rollbacks() == []
    assert cond(r.sim.dep["status"], "Progressing")["reason"] == "NewReplicaSetFailing"


def test_plan_is_pure() -> None:
    r = Rollout(waiting("CrashLoopBackOff"))
    r.sim.tick()
    dep = copy.deepcopy(r.sim.dep)
    rss = copy.deepcopy(list(r.sim.rss.values()))
    pods = copy.deepcopy(list(r.sim.pods.values()))
    plan = plan_deployment(dep, rss, pods, r.sim.now)
    assert plan.rollback is not None
    assert dep == r.sim.dep and rss == list(r.sim.rss.values())


@pytest.mark.parametrize("status,expected", [
    ({}, None),
    ({"containerStatuses": [{"name": "c", "state": {"running": {}}, "restartCount": 2}]}, None),
    ({"containerStatuses": [{"name": "c", "state": {"running": {}}, "restartCount": 3}]},
     "container c has restarted 3 times"),
    ({"initContainerStatuses": [{"name": "init", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
     "container init is waiting: CrashLoopBackOff"),
    ({"containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}]}, None),
])
def test_container_failure(status: dict, expected: str | None) -> None:
    assert container_failure({"status": status}) == expected
