"""Service environment variables of containers (kubelet's rules), table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from agent.main import PodExecutor
from agent.pods import ObservedPod, container_hash
from agent.runtime import ContainerOptions, container_kwargs
from agent.serviceenv import env_name, linked_services, service_env, service_variables, with_service_env


def svc(name: str, ns: str = "default", ip: str | None = "10.43.0.5", ports: list[dict[str, Any]] | None = None,
        **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"port": 80, "protocol": "TCP"}] if ports is None else ports, **spec}
    if ip is not None:
        body["clusterIP"] = ip
    return {"metadata": {"name": name, "namespace": ns}, "spec": body}


def pod(ns: str = "default", links: bool | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if links is not None:
        spec["enableServiceLinks"] = links
    return {"metadata": {"name": "p", "namespace": ns, "uid": "u"}, "spec": spec}


KUBERNETES = svc("kubernetes", ip="10.43.0.1",
                 ports=[{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
KUBERNETES_VARS = {
    "KUBERNETES_SERVICE_HOST": "10.43.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.43.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://10.43.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "10.43.0.1",
}


@pytest.mark.parametrize(("name", "expected"), [("web", "WEB"), ("my-svc", "MY_SVC"), ("a-b-c9", "A_B_C9")])
def test_env_name(name: str, expected: str) -> None:
    assert env_name(name) == expected


@pytest.mark.parametrize(("service", "expected"), [
    (KUBERNETES, list(KUBERNETES_VARS.items())),
    # an unnamed first port, a named UDP second port; values lower-case, names upper-case
    (svc("my-db", ip="10.43.0.7", ports=[{"port": 5432}, {"name": "metrics-udp", "port": 9000, "protocol": "UDP"}]),
     [("MY_DB_SERVICE_HOST", "10.43.0.7"), ("MY_DB_SERVICE_PORT", "5432"),
      ("MY_DB_SERVICE_PORT_METRICS_UDP", "9000"),
      ("MY_DB_PORT", "tcp://10.43.0.7:5432"),
      ("MY_DB_PORT_5432_TCP", "tcp://10.43.0.7:5432"), ("MY_DB_PORT_5432_TCP_PROTO", "tcp"),
      ("MY_DB_PORT_5432_TCP_PORT", "5432"), ("MY_DB_PORT_5432_TCP_ADDR", "10.43.0.7"),
      ("MY_DB_PORT_9000_UDP", "udp://10.43.0.7:9000"), ("MY_DB_PORT_9000_UDP_PROTO", "udp"),
      ("MY_DB_PORT_9000_UDP_PORT", "9000"), ("MY_DB_PORT_9000_UDP_ADDR", "10.43.0.7")]),
    # IPv6: brackets inside host:port only
    (svc("v6", ip="fd00::5", ports=[{"port": 80, "protocol": "SCTP"}]),
     [("V6_SERVICE_HOST", "fd00::5"), ("V6_SERVICE_PORT", "80"), ("V6_PORT", "sctp://[fd00::5]:80"),
      ("V6_PORT_80_SCTP", "sctp://[fd00::5]:80"), ("V6_PORT_80_SCTP_PROTO", "sctp"),
      ("V6_PORT_80_SCTP_PORT", "80"), ("V6_PORT_80_SCTP_ADDR", "fd00::5")]),
    (svc("headless", ip="None"), []),
    (svc("external", ip=None, type="ExternalName", externalName="example.com"), []),
    (svc("empty", ip=""), []),
])
def test_service_variables(service: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert service_variables(service) == expected


WEB = svc("web", ip="10.43.0.20")
OTHER_NS = svc("web", ns="other", ip="10.43.0.21")
OWN_KUBERNETES = svc("kubernetes", ns="team", ip="10.43.0.30")


@pytest.mark.parametrize(("services", "namespace", "links", "expected"), [
    # default namespace, links on: the master Service and the namespace's Services
    ([KUBERNETES, WEB, OTHER_NS], "default", True, [("default", "kubernetes"), ("default", "web")]),
    # links off: only the master Service
    ([KUBERNETES, WEB], "default", False, [("default", "kubernetes")]),
    # another namespace: its own Services and the master Service, never default's others
    ([KUBERNETES, WEB, OTHER_NS], "other", True, [("default", "kubernetes"), ("other", "web")]),
    ([KUBERNETES, WEB, OTHER_NS], "other", False, [("default", "kubernetes")]),
    # a namespace's own `kubernetes` Service wins over the master one (either order)
    ([KUBERNETES, OWN_KUBERNETES], "team", True, [("team", "kubernetes")]),
    ([OWN_KUBERNETES, KUBERNETES], "team", True, [("team", "kubernetes")]),
    ([OWN_KUBERNETES, KUBERNETES], "team", False, [("default", "kubernetes")]),
    # no master Service yet: nothing for it
    ([WEB], "default", True, [("default", "web")]),
    ([svc("headless", ip="None")], "default", True, []),
])
def test_linked_services(services: list[dict[str, Any]], namespace: str, links: bool,
                         expected: list[tuple[str, str]]) -> None:
    got = linked_services(services, namespace, links)
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in got] == expected


@pytest.mark.parametrize(("links", "has_web"), [(None, True), (True, True), (False, False)])
def test_service_env_follows_enable_service_links(links: bool | None, has_web: bool) -> None:
    env = service_env([KUBERNETES, WEB], pod(links=links))
    assert {k: v for k, v in env.items() if k.startswith("KUBERNETES_")} == KUBERNETES_VARS
    assert ("WEB_SERVICE_HOST" in env) is has_web


def test_user_variables_win() -> None:
    user = [("KUBERNETES_SERVICE_HOST", "mine"), ("A", "1")]
    merged = with_service_env(user, {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert merged == [("KUBERNETES_SERVICE_HOST", "mine"), ("A", "1"), ("KUBERNETES_SERVICE_PORT", "443")]


# -- in the executor ------------------------------------------------------------------------------


class _Runtime:
    """Just what `PodExecutor.options` touches for a container without env refs or mounts."""

    def observe_pod(self, uid: str) -> ObservedPod:
        return ObservedPod(uid)

    exec_probe = None


def _executor(services: Any) -> PodExecutor:
    return PodExecutor(_Runtime(), backoff=None, services=services)  # type: ignore[arg-type]


def test_executor_adds_service_variables_outside_the_spec_hash() -> None:
    p = pod()
    spec = dict(p["spec"]["containers"][0], env=[{"name": "OWN", "value": "$(OWN2)x"}])
    before = container_hash(spec)
    opts = _executor(lambda: [KUBERNETES, WEB]).options(p, spec, "sandbox")
    env = dict(opts.env or [])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["WEB_SERVICE_PORT"] == "80"
    assert env["OWN"] == "$(OWN2)x"
    # the spec (and so the hash label) is untouched by the Service variables
    assert container_hash(spec) == before and "KUBERNETES_SERVICE_HOST" not in str(spec)
    labels = {"dockyard.io/container-hash": before}
    kw = container_kwargs(p, spec, "sandbox", 0, labels, ContainerOptions(env=opts.env))
    assert kw["environment"]["KUBERNETES_PORT"] == "tcp://10.43.0.1:443" and kw["labels"] == labels


def test_executor_without_api_adds_nothing_and_waits_for_the_first_list(monkeypatch: pytest.MonkeyPatch) -> None:
    p = pod()
    spec = p["spec"]["containers"][0]
    assert _executor(None).options(p, spec, "sandbox").env == []
    from agent import main
    from agent.env import ConfigError

    monkeypatch.setattr(main, "SERVICES_SYNC_WAIT", 0.1)
    with pytest.raises(ConfigError, match="services have not yet been read at least once"):
        _executor(lambda: None).options(p, spec, "sandbox")
    calls = iter([None, None, [KUBERNETES]])
    env = dict(_executor(lambda: next(calls)).options(p, spec, "sandbox").env or [])
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
