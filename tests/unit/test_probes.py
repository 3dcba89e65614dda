"""Probe state machines, health gating and the prober's scheduling (injected clock, fake runner)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agent.pods import Health, ObservedContainer, ObservedPod
from agent.probes import (
    LIVENESS,
    READINESS,
    STARTUP,
    NetworkProbeRunner,
    ProbeConfig,
    Prober,
    ProbeState,
    Target,
    health_of,
    resolve_port,
    vouched_for,
)

UID = "u1"
P = {"exec": {"command": ["true"]}}


@pytest.mark.parametrize(
    ("kind", "spec", "results", "expected"),
    [
        ("readiness starts unready", {}, [], [False]),
        ("readiness one success", {}, [True], [True]),
        ("readiness threshold 2", {"successThreshold": 2}, [True, True], [False, True]),
        ("readiness 3 failures to flip", {}, [True, False, False, False], [True, True, True, False]),
        ("readiness failure streak reset", {}, [True, False, False, True, False, False], [True] * 6),
        ("liveness starts healthy", {}, [], [True]),
        ("liveness failureThreshold 1", {"failureThreshold": 1}, [False], [False]),
        ("liveness ignores successThreshold", {"successThreshold": 3, "failureThreshold": 1}, [False, True], [False, True]),
    ],
)
def test_state_machine(kind: str, spec: dict[str, Any], results: list[bool], expected: list[bool]) -> None:
    which = READINESS if kind.startswith("readiness") else LIVENESS
    st = ProbeState(which, ProbeConfig.from_spec(which, {"exec": {}, **spec}), started_at=0.0)
    if not results:
        assert st.result is expected[0]
        return
    for ok, want in zip(results, expected, strict=True):
        st.record(ok)
        assert st.result is want


def test_defaults_and_due() -> None:
    cfg = ProbeConfig.from_spec(READINESS, {"httpGet": {"port": 80}})
    assert (cfg.initial_delay, cfg.period, cfg.timeout, cfg.success_threshold, cfg.failure_threshold) == (
        0.0, 10.0, 1.0, 1, 3,
    )
    st = ProbeState(READINESS, ProbeConfig.from_spec(READINESS, {"exec": {}, "initialDelaySeconds": 5, "periodSeconds": 2}), 100.0)
    assert not st.due(104.9)
    assert st.due(105.0)
    st.last_run = 105.0
    assert not st.due(106.5) and st.due(107.0)


def _states(**kw: tuple[bool, int]) -> dict[str, ProbeState]:
    out = {}
    for kind, (result, failures) in kw.items():
        st = ProbeState(kind, ProbeConfig.from_spec(kind, {"exec": {}}), 0.0)
        st.result, st.failures = result, failures
        out[kind] = st
    return out


@pytest.mark.parametrize(
    ("what", "spec", "states", "expected"),
    [
        ("no probes", {}, {}, Health()),
        ("readiness not run yet", {READINESS: P}, {}, Health(ready=False)),
        ("readiness ok", {READINESS: P}, _states(readinessProbe=(True, 0)), Health()),
        ("startup pending", {STARTUP: P, READINESS: P}, _states(startupProbe=(False, 1)), Health(False, False)),
        ("startup ok, no readiness", {STARTUP: P}, _states(startupProbe=(True, 0)), Health()),
        ("startup ok, readiness pending", {STARTUP: P, READINESS: P}, _states(startupProbe=(True, 0)), Health(ready=False)),
        (
            "startup exhausted",
            {"name": "c", STARTUP: P},
            _states(startupProbe=(False, 3)),
            Health(False, False, "startup", "Container c failed startup probe, will be restarted"),
        ),
        (
            "liveness failed",
            {"name": "c", LIVENESS: P},
            _states(livenessProbe=(False, 3)),
            Health(True, False, "liveness", "Container c failed liveness probe, will be restarted"),
        ),
    ],
)
def test_health(what: str, spec: dict[str, Any], states: dict[str, ProbeState], expected: Health) -> None:
    assert health_of(states, spec) == expected


class FakeRunner:
    def __init__(self) -> None:
        self.answers: dict[str, bool] = {}
        self.calls: list[tuple[str, str]] = []

    def run(self, handler: Mapping[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
        key = handler["exec"]["command"][0]
        self.calls.append((target.container, key))
        return self.answers.get(key, False), ""


def _pod(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"uid": UID, "name": "p", "namespace": "ns"}, "spec": {"containers": containers}}


def _probe(cmd: str, **kw: Any) -> dict[str, Any]:
    return {"exec": {"command": [cmd]}, "periodSeconds": 1, **kw}


def test_prober_gates_on_startup_and_reports_changes() -> None:
    runner = FakeRunner()
    changes: list[str] = []
    now = [1000.0]
    prober = Prober(runner, clock=lambda: now[0], on_change=changes.append)
    spec = {"name": "app", STARTUP: _probe("startup"), LIVENESS: _probe("live", failureThreshold=2),
            READINESS: _probe("ready")}
    observed = ObservedPod.from_containers(UID, [
        ObservedContainer(id="c1", name="app", pod_uid=UID, started_at=1000.0),
        ObservedContainer(id="sb", name="POD", pod_uid=UID, ip="10.0.0.9"),
    ])
    prober.track(_pod([spec]), observed)
    assert prober.tracking() == 1

    prober.run_due(wait=True)
    assert runner.calls == [("app", "startup")]  # liveness/readiness wait for startup
    assert prober.health("c1", spec) == Health(False, False)

    runner.answers.update(startup=True, live=True, ready=True)
    now[0] += 1
    prober.run_due(wait=True)
    assert prober.health("c1", spec) == Health(True, False)
    assert changes == [UID]
    now[0] += 1
    prober.run_due(wait=True)
    assert prober.health("c1", spec) == Health()
    assert sorted(k for _, k in runner.calls[2:]) == ["live", "ready"]  # startup never runs again

    runner.answers["live"] = False
    for _ in range(2):
        now[0] += 1
        prober.run_due(wait=True)
    h = prober.health("c1", spec)
    assert h.failed == "liveness" and not h.ready
    calls = len(runner.calls)
    now[0] += 1
    prober.run_due(wait=True)
    assert len(runner.calls) == calls  # a failed container waits for its kill

    # The container is replaced: its worker goes, the new one starts fresh.
    observed2 = ObservedPod.from_containers(UID, [ObservedContainer(id="c2", name="app", pod_uid=UID, started_at=now[0])])
    prober.track(_pod([spec]), observed2)
    assert prober.states("c1") == {} and prober.health("c2", spec) == Health(False, False)
    prober.forget(UID)
    assert prober.tracking() == 0


# -- carrying results over an agent restart ----------------------------------------------------


def _status(name: str = "app", cid: str = "docker://c1", **kw: Any) -> dict[str, Any]:
    return {"name": name, "containerID": cid, "restartCount": 0, **kw}


READY = {"ready": True, "started": True}


@pytest.mark.parametrize(
    ("what", "probes", "statuses", "expected"),
    [
        ("ready, same id: ready at once", (READINESS,), [_status(**READY)], Health()),
        ("same id, not ready", (READINESS,), [_status(ready=False, started=True)], Health(ready=False)),
        ("ready, other id: a new container", (READINESS,), [_status(cid="docker://c0", **READY)], Health(ready=False)),
        ("ready, same id, other name", (READINESS,), [_status(name="side", **READY)], Health(ready=False)),
        ("no container statuses", (READINESS,), [], Health(ready=False)),
        ("ready without started", (READINESS,), [_status(ready=True)], Health(ready=False)),
        ("started: startup seeded, readiness not", (STARTUP, READINESS), [_status(ready=False, started=True)],
         Health(ready=False)),
        ("started and ready: both seeded", (STARTUP, READINESS), [_status(**READY)], Health()),
        ("started, startup only", (STARTUP,), [_status(ready=True, started=True)], Health()),
        ("not started: startup pending", (STARTUP, READINESS), [_status(ready=False, started=False)],
         Health(False, False)),
        ("startup probe, other id", (STARTUP,), [_status(cid="docker://c0", **READY)], Health(False, False)),
        ("liveness starts healthy anyway", (LIVENESS,), [_status(ready=False, started=True)], Health()),
    ],
)
def test_new_worker_starts_from_the_pod_status(
    what: str, probes: tuple[str, ...], statuses: list[dict[str, Any]], expected: Health
) -> None:
    runner = FakeRunner()
    prober = Prober(runner, clock=lambda: 2000.0)
    spec = {"name": "app", **{k: _probe(k) for k in probes}}
    pod = {**_pod([spec]), "status": {"containerStatuses": statuses}}
    observed = ObservedPod.from_containers(UID, [ObservedContainer(id="c1", name="app", pod_uid=UID, started_at=1000.0)])
    prober.track(pod, observed)
    assert prober.health("c1", spec) == expected
    assert not runner.calls  # seeding runs nothing


def test_vouched_for() -> None:
    c = ObservedContainer(id="c1", name="app", pod_uid=UID)
    assert vouched_for({"status": {"containerStatuses": [_status(**READY)]}}, c) == {STARTUP, READINESS}
    assert vouched_for({"status": {"containerStatuses": [_status(started=True)]}}, c) == {STARTUP}
    assert vouched_for({"status": {"containerStatuses": [_status(cid="c1", **READY)]}}, c) == set()
    assert vouched_for({"status": {"containerStatuses": [_status(cid="docker://c1x", **READY)]}}, c) == set()
    assert vouched_for({"status": {}}, c) == set() and vouched_for({}, c) == set()


@pytest.mark.parametrize(
    ("what", "spec", "results", "expected"),
    [
        ("3 failures to flip", {}, [False, False, False], [True, True, False]),
        ("failure streak reset", {}, [False, False, True, False, False], [True] * 5),
        ("failureThreshold 1", {"failureThreshold": 1}, [False, True], [False, True]),
        ("successThreshold 2 again after a flip", {"successThreshold": 2, "failureThreshold": 1},
         [True, False, True, True], [True, False, False, True]),
    ],
)
def test_assumed_pass_then_runs(what: str, spec: dict[str, Any], results: list[bool], expected: list[bool]) -> None:
    st = ProbeState(READINESS, ProbeConfig.from_spec(READINESS, {"exec": {}, **spec}), started_at=0.0)
    st.assume_passed()
    assert st.result is True and st.runs == 0
    for ok, want in zip(results, expected, strict=True):
        st.record(ok)
        assert st.result is want


def test_seeded_readiness_is_probed_at_once_and_fails_after_the_threshold() -> None:
    runner = FakeRunner()
    changes: list[str] = []
    now = [5000.0]
    prober = Prober(runner, clock=lambda: now[0], on_change=changes.append)
    spec = {"name": "app", STARTUP: _probe("startup"), READINESS: _probe("ready", periodSeconds=5, failureThreshold=3)}
    pod = {**_pod([spec]), "status": {"containerStatuses": [_status(**READY)]}}
    observed = ObservedPod.from_containers(UID, [ObservedContainer(id="c1", name="app", pod_uid=UID, started_at=1000.0)])
    prober.track(pod, observed)
    assert prober.health("c1", spec) == Health()

    prober.run_due(wait=True)
    assert runner.calls == [("app", "ready")]  # at once, and the startup probe never runs again
    assert prober.health("c1", spec) == Health()  # one failure is not enough
    for i in range(2):
        now[0] += 4.9
        assert prober.run_due(wait=True) == 0  # at its normal period, not sooner
        now[0] += 0.1
        prober.run_due(wait=True)
        assert prober.health("c1", spec) == (Health() if i == 0 else Health(ready=False))
    assert runner.calls == [("app", "ready")] * 3
    assert changes == [UID]

    # Tracking again with a status that still says ready: the worker keeps its own result.
    prober.track(pod, observed)
    assert prober.health("c1", spec) == Health(ready=False)


def test_resolve_port() -> None:
    t = Target(UID, "c1", "app", "10.0.0.1", {"http": 8080})
    assert resolve_port(80, t) == 80 and resolve_port("81", t) == 81 and resolve_port("http", t) == 8080
    with pytest.raises(ValueError):
        resolve_port("grpc", t)


def test_network_runner_against_a_local_server() -> None:
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            ok = self.path == "/ok" and self.headers.get("X-Probe") == "yes"
            self.send_response(200 if ok else 503)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    t = Target(UID, "c1", "app", "127.0.0.1", {"web": port})
    r = NetworkProbeRunner(exec_fn=lambda cid, cmd, timeout: (0 if cmd == ["true"] else 1, b""))
    try:
        ok = {"httpGet": {"path": "/ok", "port": "web", "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}}
        assert r.run(ok, t, 1.0)[0] is True
        assert r.run({"httpGet": {"path": "/bad", "port": port}}, t, 1.0)[0] is False
        assert r.run({"tcpSocket": {"port": port}}, t, 1.0)[0] is True
        srv.shutdown()
        srv.server_close()
        assert r.run({"tcpSocket": {"port": port}}, t, 1.0)[0] is False
        assert r.run({"exec": {"command": ["true"]}}, t, 1.0)[0] is True
        assert r.run({"exec": {"command": ["false"]}}, t, 1.0)[0] is False
        assert r.run({"grpc": {"port": 1}}, t, 1.0)[0] is True  # unsupported: never kills
    finally:
        srv.server_close()
