"""compute_pod_status: phase, conditions, container states, stability of timestamps."""

from __future__ import annotations

from typing import Any

import pytest

from agent.backoff import Backoff
from agent.pods import SANDBOX_NAME, Health, ObservedContainer, ObservedPod, container_hash
from agent.status import StartError, compute_pod_status, rfc3339

UID = "uid-1"
NOW = 1_700_000_000.0
A = {"name": "a", "image": "img:1"}
B = {"name": "b", "image": "img:2"}
I1 = {"name": "i1", "image": "img:1"}
SPECS = {"a": A, "b": B, "i1": I1}


def pod(containers: list[dict[str, Any]] | None = None, policy: str = "Always", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": "n1", "containers": containers or [A, B], "restartPolicy": policy}
    spec.update(extra.pop("spec", {}))
    out: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": UID}, "spec": spec}
    out.update(extra)
    return out


def sb(state: str = "running") -> ObservedContainer:
    return ObservedContainer(id="sb", name=SANDBOX_NAME, pod_uid=UID, state=state, created_at=NOW - 100, ip="10.42.0.7")


def c(name: str, state: str = "running", rc: int = 0, exit_code: int | None = None, **kw: Any) -> ObservedContainer:
    if state == "exited" and exit_code is None:
        exit_code = 1
    base: dict[str, Any] = {
        "created_at": NOW - 50 + rc,
        "started_at": NOW - 50 + rc,
        "finished_at": NOW - 40 + rc if state == "exited" else None,
    }
    base.update(kw)
    return ObservedContainer(
        id=f"{name}{rc}",
        name=name,
        pod_uid=UID,
        state=state,
        restart_count=rc,
        exit_code=exit_code,
        hash=container_hash(SPECS[name]),
        image_id="sha256:abc",
        **base,
    )


def obs(*items: ObservedContainer) -> ObservedPod:
    return ObservedPod.from_containers(UID, list(items))


def status(
    p: dict[str, Any],
    o: ObservedPod,
    backoff: Backoff | None = None,
    now: float = NOW,
    errors: dict[str, StartError] | None = None,
) -> dict[str, Any]:
    return compute_pod_status(p, o, now, backoff or Backoff(10, 300), host_ip="192.0.2.1", start_errors=errors)


def by_name(st: dict[str, Any], key: str = "containerStatuses") -> dict[str, dict[str, Any]]:
    return {cs["name"]: cs for cs in st[key]}


def conds(st: dict[str, Any]) -> dict[str, str]:
    return {x["type"]: x["status"] for x in st["conditions"]}


def test_running_pod() -> None:
    st = status(pod(), obs(sb(), c("a"), c("b")))
    assert st["phase"] == "Running"
    assert conds(st) == {"Initialized": "True", "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    assert st["podIP"] == "10.42.0.7" and st["podIPs"] == [{"ip": "10.42.0.7"}]
    assert st["hostIP"] == "192.0.2.1" and st["hostIPs"] == [{"ip": "192.0.2.1"}]
    assert st["startTime"] == rfc3339(NOW)
    assert [cs["name"] for cs in st["containerStatuses"]] == ["a", "b"]
    a = by_name(st)["a"]
    assert a["ready"] and a["started"] and a["restartCount"] == 0
    assert a["containerID"] == "docker://a0" and a["imageID"] == "docker://sha256:abc"
    assert a["state"] == {"running": {"startedAt": rfc3339(NOW - 50)}}
    assert a["image"] == "img:1"


def test_pending_while_creating() -> None:
    st = status(pod(), obs(sb(), c("a")))
    assert st["phase"] == "Pending"
    assert by_name(st)["b"]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ready = next(x for x in st["conditions"] if x["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [b]"


def test_crash_loop_backoff() -> None:
    b = Backoff(10, 300)
    b.next(f"{UID}/b", now=NOW - 45)
    b.next(f"{UID}/b", now=NOW - 44)  # 20s armed
    p = pod()
    o = obs(sb(), c("a"), c("b", "exited", rc=3, exit_code=2, finished_at=NOW - 5), c("b", "exited", rc=2))
    st = status(p, o, b)
    cs = by_name(st)["b"]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 20s restarting failed container=b pod=p_ns(uid-1)" == cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] == 3
    assert st["phase"] == "Running"


def test_running_container_reports_previous_attempt_as_last_state() -> None:
    st = status(pod([A]), obs(sb(), c("a", rc=1), c("a", "exited", rc=0, exit_code=137, oom_killed=True)))
    cs = by_name(st)["a"]
    assert "running" in cs["state"]
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled"


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Never", [0, 0], "Succeeded"),
        ("Never", [0, 1], "Failed"),
        ("OnFailure", [0, 0], "Succeeded"),
        ("Always", [0, 0], "Running"),
    ],
)
def test_terminal_phases(policy: str, codes: list[int], phase: str) -> None:
    o = obs(sb("exited"), c("a", "exited", exit_code=codes[0]), c("b", "exited", exit_code=codes[1]))
    st = status(pod(policy=policy), o, now=NOW + 1000)
    assert st["phase"] == phase
    if phase in ("Succeeded", "Failed"):
        a = by_name(st)["a"]["state"]["terminated"]
        assert a["reason"] == "Completed" and a["exitCode"] == 0
        ready = next(x for x in st["conditions"] if x["type"] == "Ready")
        assert ready["reason"] == "PodCompleted"


def test_onfailure_with_failure_in_backoff_is_running() -> None:
    b = Backoff(10, 300)
    b.next(f"{UID}/b", now=NOW - 2)
    o = obs(sb(), c("a", "exited", exit_code=0), c("b", "exited", exit_code=3, finished_at=NOW - 1))
    st = status(pod(policy="OnFailure"), o, b)
    assert by_name(st)["b"]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["phase"] == "Running"


def test_terminal_phase_is_sticky() -> None:
    st = status(pod(status={"phase": "Succeeded"}), obs())
    assert st["phase"] == "Succeeded"


def test_image_pull_errors() -> None:
    b = Backoff(10, 300)
    b.next(f"{UID}/b", now=NOW)
    err = {"b": StartError("ErrImagePull", "pull access denied", NOW)}
    first = status(pod(), obs(sb(), c("a")), b, NOW, err)
    assert by_name(first)["b"]["state"]["waiting"] == {"reason": "ErrImagePull", "message": "pull access denied"}
    later = status(pod(), obs(sb(), c("a")), b, NOW + 1, err)
    assert by_name(later)["b"]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert later["phase"] == "Pending"
    never = {"b": StartError("ErrImageNeverPull", "not present", NOW)}
    st = status(pod(), obs(sb(), c("a")), b, NOW + 1, never)
    assert by_name(st)["b"]["state"]["waiting"]["reason"] == "ErrImageNeverPull"


def test_start_error_after_crash_shows_error_with_last_state() -> None:
    b = Backoff(10, 300)
    b.next(f"{UID}/a", now=NOW)
    err = {"a": StartError("CreateContainerError", "bad mount", NOW)}
    st = status(pod([A]), obs(sb(), c("a", "exited", finished_at=NOW - 1)), b, NOW, err)
    cs = by_name(st)["a"]
    assert cs["state"]["waiting"]["reason"] == "CreateContainerError"
    assert "terminated" in cs["lastState"]


def test_failed_start_is_reported_as_cannot_run() -> None:
    bad = c("a", "created", exit_code=127, started_at=None, finished_at=None, error="exec: not found")
    st = status(pod([A], policy="Never"), obs(sb(), bad))
    t = by_name(st)["a"]["state"]["terminated"]
    assert t["reason"] == "ContainerCannotRun" and t["exitCode"] == 127 and t["message"] == "exec: not found"
    assert st["phase"] == "Failed"


def test_init_containers() -> None:
    p = pod([A], spec={"initContainers": [I1]})
    st = status(p, obs(sb(), c("i1")))
    assert st["phase"] == "Pending"
    assert conds(st)["Initialized"] == "False"
    assert by_name(st)["a"]["state"]["waiting"]["reason"] == "PodInitializing"
    assert by_name(st, "initContainerStatuses")["i1"]["state"].keys() == {"running"}
    st = status(p, obs(sb(), c("i1", "exited", exit_code=0), c("a", rc=0, created_at=NOW - 10)))
    assert st["phase"] == "Running" and conds(st)["Initialized"] == "True"
    i1 = by_name(st, "initContainerStatuses")["i1"]
    assert i1["ready"] is True and i1["state"]["terminated"]["reason"] == "Completed"


def test_init_failure_under_never_fails_the_pod() -> None:
    p = pod([A], policy="Never", spec={"initContainers": [I1]})
    st = status(p, obs(sb(), c("i1", "exited", exit_code=1)))
    assert st["phase"] == "Failed"


def test_stable_between_calls_and_transition_times_kept() -> None:
    p = pod()
    o = obs(sb(), c("a"), c("b"))
    first = status(p, o)
    p["status"] = first
    second = status(p, o, now=NOW + 60)
    assert second == first  # nothing changed → nothing to write
    o2 = obs(sb(), c("a"), c("b", "exited", finished_at=NOW + 100))
    third = status(p, o2, now=NOW + 120)
    times = {x["type"]: x["lastTransitionTime"] for x in third["conditions"]}
    assert times["Ready"] == rfc3339(NOW + 120)
    assert times["Initialized"] == rfc3339(NOW)
    assert third["startTime"] == rfc3339(NOW)


def test_foreign_fields_and_conditions_survive() -> None:
    sched = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    other = {"type": "example.com/Gate", "status": "True"}
    p = pod(status={"qosClass": "BestEffort", "conditions": [sched, other]})
    st = status(p, obs(sb(), c("a"), c("b")))
    assert st["qosClass"] == "BestEffort"
    types = [x["type"] for x in st["conditions"]]
    assert types == ["Initialized", "Ready", "ContainersReady", "PodScheduled", "example.com/Gate"]
    assert next(x for x in st["conditions"] if x["type"] == "PodScheduled") == sched
    assert "status" not in p or p["status"]["conditions"] == [sched, other]  # input not mutated


def test_pod_ip_kept_when_sandbox_stops() -> None:
    p = pod(status={"podIP": "10.42.0.9"})
    st = status(p, obs(sb("exited")))
    assert st["podIP"] == "10.42.0.9"


# -- probes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "ready", "started", "pod_ready"),
    [
        ({}, {"a": True, "b": True}, {"a": True, "b": True}, "True"),
        ({"a0": Health(ready=False)}, {"a": False, "b": True}, {"a": True, "b": True}, "False"),
        ({"a0": Health(False, False)}, {"a": False, "b": True}, {"a": False, "b": True}, "False"),
        ({"a0": Health(), "b0": Health()}, {"a": True, "b": True}, {"a": True, "b": True}, "True"),
    ],
)
def test_probe_health_drives_ready(
    health: dict[str, Health], ready: dict[str, bool], started: dict[str, bool], pod_ready: str
) -> None:
    st = compute_pod_status(pod(), obs(sb(), c("a"), c("b")), NOW, Backoff(10, 300), health=health)
    cs = by_name(st)
    assert {n: x["ready"] for n, x in cs.items()} == ready
    assert {n: x["started"] for n, x in cs.items()} == started
    assert conds(st)["Ready"] == pod_ready and conds(st)["ContainersReady"] == pod_ready


def test_probe_kill_note_in_last_state() -> None:
    o = obs(sb(), c("a", "exited", exit_code=137), c("a", rc=1), c("b"))
    note = "Container a failed liveness probe, will be restarted"
    st = compute_pod_status(pod(), o, NOW, Backoff(10, 300), notes={"a0": note})
    last = by_name(st)["a"]["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"], last["message"]) == ("Error", 137, note)


def test_oom_killed_reason() -> None:
    o = obs(sb(), c("a", "exited", exit_code=137, oom_killed=True), c("b"))
    st = status(pod(policy="Never"), o)
    assert by_name(st)["a"]["state"]["terminated"]["reason"] == "OOMKilled"
