"""compute_pod_actions: desired pod vs observed containers → actions (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.backoff import Backoff
from agent.pods import (
    SANDBOX_NAME,
    CreateSandbox,
    KillContainer,
    KillPod,
    ObservedContainer,
    ObservedPod,
    RemoveContainer,
    StartContainer,
    compute_pod_actions,
    container_hash,
    grace_period,
    pod_is_done,
)

UID = "11111111-2222-3333-4444-555555555555"
NOW = 10_000.0
A = {"name": "a", "image": "img:1"}
B = {"name": "b", "image": "img:1"}
I1 = {"name": "i1", "image": "img:1"}
I2 = {"name": "i2", "image": "img:1"}
SPECS = {"a": A, "b": B, "i1": I1, "i2": I2}


def pod(containers: list[dict[str, Any]] | None = None, policy: str = "Always", **extra: Any) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "ns", "uid": UID}
    meta.update(extra.pop("meta", {}))
    spec: dict[str, Any] = {"containers": containers if containers is not None else [A, B], "restartPolicy": policy}
    spec.update(extra.pop("spec", {}))
    out = {"metadata": meta, "spec": spec}
    out.update(extra)
    return out


def sb(state: str = "running", rc: int = 0, created: float = 100.0, cid: str = "sb0") -> ObservedContainer:
    return ObservedContainer(
        id=cid, name=SANDBOX_NAME, pod_uid=UID, state=state, restart_count=rc, created_at=created, ip="10.0.0.5"
    )


def c(
    name: str,
    state: str = "running",
    rc: int = 0,
    exit_code: int | None = None,
    created: float = 200.0,
    started: float | None = 200.0,
    finished: float | None = None,
    hash_: str | None = None,
    error: str = "",
) -> ObservedContainer:
    if state == "exited" and exit_code is None:
        exit_code = 1
    if state == "exited" and finished is None:
        finished = (started or created) + 5
    return ObservedContainer(
        id=f"{name}{rc}",
        name=name,
        pod_uid=UID,
        state=state,
        restart_count=rc,
        exit_code=exit_code,
        created_at=created + rc,
        started_at=started,
        finished_at=finished,
        hash=container_hash(SPECS[name]) if hash_ is None and name in SPECS else (hash_ or ""),
        error=error,
    )


def obs(*items: ObservedContainer) -> ObservedPod:
    return ObservedPod.from_containers(UID, list(items))


def plan(p: dict[str, Any], o: ObservedPod, backoff: Backoff | None = None, now: float = NOW) -> list[Any]:
    return compute_pod_actions(p, o, now, backoff or Backoff(10, 300))


def start(name: str, rc: int = 0, **kw: Any) -> StartContainer:
    return StartContainer(name, rc, **kw)


CASES: list[tuple[str, dict[str, Any], ObservedPod, list[Any]]] = [
    (
        "new pod: sandbox then every container",
        pod(),
        obs(),
        [CreateSandbox(0), start("a", reason="Created"), start("b", reason="Created")],
    ),
    ("steady state: nothing to do", pod(), obs(sb(), c("a"), c("b")), []),
    (
        "missing app container is started",
        pod(),
        obs(sb(), c("a")),
        [start("b", reason="Created")],
    ),
    (
        "exited under Always restarts and counts the back-off",
        pod(),
        obs(sb(), c("a"), c("b", "exited", rc=2, started=300, finished=310)),
        [start("b", 3, count_backoff=True, ran_for=10.0, reason="Restart")],
    ),
    ("OnFailure: success stays down", pod(policy="OnFailure"), obs(sb(), c("a"), c("b", "exited", exit_code=0)), []),
    (
        "OnFailure: failure restarts",
        pod(policy="OnFailure"),
        obs(sb(), c("a"), c("b", "exited", exit_code=2, started=300, finished=301)),
        [start("b", 1, count_backoff=True, ran_for=1.0, reason="Restart")],
    ),
    ("Never: failure stays down", pod(policy="Never"), obs(sb(), c("a"), c("b", "exited", exit_code=2)), []),
    (
        "Never: all exited → pod done, sandbox stopped",
        pod(policy="Never"),
        obs(sb(), c("a", "exited", exit_code=0), c("b", "exited", exit_code=2)),
        [KillContainer("sb0", SANDBOX_NAME, "PodCompleted", 30)],
    ),
    (
        "spec changed: kill and start the next attempt",
        pod(),
        obs(sb(), c("a", hash_="old"), c("b")),
        [KillContainer("a0", "a", "SpecChanged", 30), start("a", 1, reason="SpecChanged")],
    ),
    (
        "container not in spec: kill and remove",
        pod([A]),
        obs(sb(), c("a"), c("b")),
        [KillContainer("b0", "b", "NotInSpec", 30), RemoveContainer("b0", "b")],
    ),
    (
        "exited container not in spec: only removed",
        pod([A]),
        obs(sb(), c("a"), c("b", "exited")),
        [RemoveContainer("b0", "b")],
    ),
    (
        "dead sandbox: kill everything, new sandbox, restart all",
        pod(),
        obs(sb("exited"), c("a"), c("b", "exited", exit_code=0, started=300, finished=301)),
        [
            KillContainer("a0", "a", "SandboxChanged", 30),
            CreateSandbox(1),
            start("a", 1, reason="Replace"),
            start("b", 1, count_backoff=True, ran_for=1.0, reason="Restart"),
        ],
    ),
    (
        "dead sandbox under OnFailure skips succeeded containers",
        pod(policy="OnFailure"),
        obs(sb("exited"), c("a"), c("b", "exited", exit_code=0)),
        [KillContainer("a0", "a", "SandboxChanged", 30), CreateSandbox(1), start("a", 1, reason="Replace")],
    ),
    (
        "dead sandbox under Never is not revived",
        pod(policy="Never"),
        obs(sb("exited"), c("a"), c("b", "exited", exit_code=0)),
        [KillContainer("a0", "a", "SandboxChanged", 30)],
    ),
    (
        "Never pod with no container yet still gets its sandbox",
        pod(policy="Never"),
        obs(),
        [CreateSandbox(0), start("a", reason="Created"), start("b", reason="Created")],
    ),
    (
        "deletion: kill the pod with the deletion grace period",
        pod(meta={"deletionTimestamp": "2024-01-01T00:00:00Z", "deletionGracePeriodSeconds": 7}),
        obs(sb(), c("a")),
        [KillPod(7, "Deleted")],
    ),
    (
        "terminal phase: never run again",
        pod(status={"phase": "Succeeded"}),
        obs(),
        [],
    ),
    (
        "terminal phase: stop what still runs",
        pod(status={"phase": "Failed"}),
        obs(sb(), c("a")),
        [KillContainer("a0", "a", "PodCompleted", 30), KillContainer("sb0", SANDBOX_NAME, "PodCompleted", 30)],
    ),
    (
        "created but never started: replaced",
        pod([A]),
        obs(sb(), c("a", "created", started=None)),
        [RemoveContainer("a0", "a"), start("a", 1, reason="NeverStarted")],
    ),
    (
        "failed start (created with error) restarts like an exit",
        pod([A]),
        obs(sb(), c("a", "created", exit_code=127, started=None, error="exec: not found")),
        [start("a", 1, count_backoff=True, ran_for=None, reason="Restart")],
    ),
    (
        "garbage: keep the two newest attempts",
        pod([A]),
        obs(sb(), c("a", "exited", rc=0), c("a", "exited", rc=1), c("a", rc=2)),
        [RemoveContainer("a0", "a")],
    ),
    (
        "garbage: old sandboxes go",
        pod([A]),
        obs(sb("exited", rc=0, created=50, cid="old"), sb(rc=1, created=150, cid="new"), c("a")),
        [RemoveContainer("old", SANDBOX_NAME)],
    ),
    # init containers
    (
        "init: new pod starts only the first init container",
        pod([A], spec={"initContainers": [I1, I2]}),
        obs(),
        [CreateSandbox(0), start("i1", init=True, reason="Created")],
    ),
    ("init: running init blocks the rest", pod([A], spec={"initContainers": [I1, I2]}), obs(sb(), c("i1")), []),
    (
        "init: next init after success",
        pod([A], spec={"initContainers": [I1, I2]}),
        obs(sb(), c("i1", "exited", exit_code=0)),
        [start("i2", init=True, reason="Created")],
    ),
    (
        "init: all done → app containers",
        pod([A], spec={"initContainers": [I1, I2]}),
        obs(sb(), c("i1", "exited", exit_code=0), c("i2", "exited", exit_code=0)),
        [start("a", reason="Created")],
    ),
    (
        "init: failure restarts (Always)",
        pod([A], spec={"initContainers": [I1]}),
        obs(sb(), c("i1", "exited", exit_code=1, started=300, finished=302)),
        [start("i1", 1, init=True, count_backoff=True, ran_for=2.0, reason="Restart")],
    ),
    (
        "init: failure under Never fails the pod",
        pod([A], policy="Never", spec={"initContainers": [I1]}),
        obs(sb(), c("i1", "exited", exit_code=1)),
        [KillContainer("sb0", SANDBOX_NAME, "PodCompleted", 30)],
    ),
    (
        "init: a success from an older sandbox does not count",
        pod([A], spec={"initContainers": [I1]}),
        obs(sb(rc=1, created=500), c("i1", "exited", exit_code=0, created=200)),
        [start("i1", 1, init=True, ran_for=5.0, reason="Restart")],
    ),
]


@pytest.mark.parametrize(("what", "p", "o", "expected"), CASES, ids=[x[0] for x in CASES])
def test_compute_pod_actions(what: str, p: dict[str, Any], o: ObservedPod, expected: list[Any]) -> None:
    assert plan(p, o) == expected


def test_crash_loop_waits_for_backoff() -> None:
    b = Backoff(10, 300)
    key = f"{UID}/a"
    b.next(key, now=NOW - 20)
    b.next(key, now=NOW - 3)  # armed 20s at NOW-3
    o = obs(sb(), c("a", "exited", rc=2, started=NOW - 3, finished=NOW - 2))
    assert plan(pod([A]), o, b) == []
    assert plan(pod([A]), o, b, now=NOW + 17.9) == []
    assert plan(pod([A]), o, b, now=NOW + 18.1) == [
        start("a", 3, count_backoff=True, ran_for=1.0, reason="Restart")
    ]


def test_failed_start_backs_off_missing_container() -> None:
    b = Backoff(10, 300)
    b.next(f"{UID}/a", now=NOW - 1)  # the executor recorded an image pull failure
    assert plan(pod([A]), obs(sb()), b) == []
    assert plan(pod([A]), obs(sb()), b, now=NOW + 10) == [start("a", reason="Created")]


def test_grace_period_sources() -> None:
    assert grace_period(pod()) == 30
    assert grace_period(pod(spec={"terminationGracePeriodSeconds": 5})) == 5
    assert grace_period(pod(spec={"terminationGracePeriodSeconds": 5}, meta={"deletionGracePeriodSeconds": 0})) == 0


def test_hash_is_stable_and_sensitive() -> None:
    assert container_hash({"name": "a", "image": "x"}) == container_hash({"image": "x", "name": "a"})
    assert container_hash({"name": "a", "image": "x"}) != container_hash({"name": "a", "image": "y"})


def test_pod_is_done() -> None:
    assert not pod_is_done(pod(), obs(sb(), c("a", "exited"), c("b", "exited")))
    assert pod_is_done(pod(policy="OnFailure"), obs(c("a", "exited", exit_code=0), c("b", "exited", exit_code=0)))
    assert not pod_is_done(pod(policy="OnFailure"), obs(c("a", "exited", exit_code=0), c("b", "exited")))
    assert not pod_is_done(pod(policy="Never"), obs(c("a", "exited")))


# -- probes ---------------------------------------------------------------------------------

LIVE = {**A, "livenessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 3}}


def test_liveness_failure_kills_and_restarts() -> None:
    from agent.pods import Health

    p = pod([LIVE], spec={"terminationGracePeriodSeconds": 30})
    o = obs(sb(), c("a", hash_=container_hash(LIVE)))
    failed = {"a0": Health(True, False, "liveness", "m")}
    assert compute_pod_actions(p, o, NOW, Backoff(10, 300), failed) == [
        KillContainer("a0", "a", "LivenessProbeFailed", 3),
        StartContainer("a", 1, count_backoff=True, ran_for=NOW - 200.0, reason="LivenessProbeFailed"),
    ]
    # Never: killed, not restarted; startup failure uses the pod's grace.
    p = pod([{**A, "startupProbe": {"exec": {}}}], policy="Never", spec={"terminationGracePeriodSeconds": 30})
    o = obs(sb(), c("a", hash_=container_hash(p["spec"]["containers"][0])))
    assert compute_pod_actions(p, o, NOW, Backoff(10, 300), {"a0": Health(False, False, "startup")}) == [
        KillContainer("a0", "a", "StartupProbeFailed", 30)
    ]
    # Backing off: only the kill now; the restart comes when the back-off allows.
    b = Backoff(10, 300)
    b.next(f"{UID}/a", NOW - 1)
    p = pod([LIVE])
    o = obs(sb(), c("a", hash_=container_hash(LIVE)))
    assert compute_pod_actions(p, o, NOW, b, failed) == [KillContainer("a0", "a", "LivenessProbeFailed", 3)]
    # Healthy: nothing to do.
    assert compute_pod_actions(p, o, NOW, b, {"a0": Health()}) == []
