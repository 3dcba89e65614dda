"""`dockyard port-forward` without a cluster: arguments, and resolving pod/deploy/svc targets
and their ports the way kubectl does (against a fake API client)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from orchestrator.cli import output
from orchestrator.cli.portforward import (
    add_arguments,
    listen_addresses,
    parse_port_specs,
    resolve_forward,
    service_target_port,
)


@pytest.mark.parametrize(("values", "specs"), [
    (["8080"], [("", "8080")]),
    (["18080:80"], [("18080", "80")]),
    ([":80", "0:80"], [("0", "80"), ("0", "80")]),
    (["http", "9000:http"], [("", "http"), ("9000", "http")]),
])
def test_parse_port_specs(values: list[str], specs: list[tuple[str, str]]) -> None:
    assert parse_port_specs(values) == specs


@pytest.mark.parametrize("value", ["80:", "x:80", "70000:80", "0", "8080:65536"])
def test_parse_port_specs_refuses(value: str) -> None:
    with pytest.raises(output.CliError):
        parse_port_specs([value])


def test_listen_addresses() -> None:
    assert listen_addresses(None) == ["127.0.0.1", "::1"]
    assert listen_addresses(["127.0.0.1"]) == ["127.0.0.1"]
    assert listen_addresses(["localhost,0.0.0.0", "127.0.0.1"]) == ["127.0.0.1", "::1", "0.0.0.0"]


def test_arguments_parse_like_kubectl() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["svc/web", "8080:80", "9090", "--address", "127.0.0.1"])
    assert (args.target, args.ports, args.address, args.pod_running_timeout) == (
        "svc/web", ["8080:80", "9090"], ["127.0.0.1"], 60.0)


def pod(name: str, phase: str = "Running", ready: bool = True, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "ports": [{"name": "http", "containerPort": 80}]}]},
            "status": {"phase": phase,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


SVC = {"metadata": {"name": "web"},
       "spec": {"selector": {"app": "web"},
                "ports": [{"name": "web", "port": 8080, "targetPort": "http"},
                          {"name": "admin", "port": 9000, "targetPort": 9001},
                          {"name": "plain", "port": 7000}]}}
DEPLOY = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}}}


class FakeClient:
    def __init__(self, pods: list[dict]) -> None:
        self.pods = pods
        self.selectors: list[str | None] = []

    def get(self, kind: Any, name: str, namespace: str | None = None) -> dict:
        if kind.resource == "pods":
            return next(p for p in self.pods if p["metadata"]["name"] == name)
        return {"services": SVC, "deployments": DEPLOY}[kind.resource]

    def list(self, kind: Any, namespace: str | None = None, label_selector: str | None = None,
             **_: Any) -> dict:
        self.selectors.append(label_selector)
        return {"items": self.pods}


def test_service_ports_become_target_ports() -> None:
    p = pod("a")
    assert service_target_port(SVC, p, "8080") == 80  # a named target port, looked up in the pod
    assert service_target_port(SVC, p, "web") == 80
    assert service_target_port(SVC, p, "9000") == 9001
    assert service_target_port(SVC, p, "7000") == 7000  # no targetPort: the port itself
    with pytest.raises(output.CliError, match="does not have a service port 1234"):
        service_target_port(SVC, p, "1234")
    with pytest.raises(output.CliError, match="does not have a named port 'nope'"):
        service_target_port(SVC, p, "nope")


def test_resolve_targets() -> None:
    client = FakeClient([pod("old-pending", "Pending", False, "2025-01-01T00:00:00Z"),
                         pod("newer", created="2026-02-01T00:00:00Z"), pod("older")])
    chosen, pairs = resolve_forward(client, "default", "svc/web",  # type: ignore[arg-type]
                                    parse_port_specs(["8080", ":web", "9:9000"]), 1)
    assert chosen["metadata"]["name"] == "older"  # running and ready first, then the oldest
    assert pairs == [(8080, 80), (0, 80), (9, 9001)]
    assert client.selectors == ["app=web"]
    chosen, pairs = resolve_forward(client, "default", "deploy/web",  # type: ignore[arg-type]
                                    parse_port_specs(["http", "18080:80"]), 1)
    assert chosen["metadata"]["name"] == "older" and pairs == [(80, 80), (18080, 80)]
    chosen, pairs = resolve_forward(client, "default", "newer", parse_port_specs(["81"]), 1)  # type: ignore[arg-type]
    assert chosen["metadata"]["name"] == "newer" and pairs == [(81, 81)]


def test_resolve_refuses_pods_that_do_not_run_and_unknown_kinds() -> None:
    client = FakeClient([pod("p", "Pending", False)])
    with pytest.raises(output.CliError, match="pod is not running. Current status=Pending"):
        resolve_forward(client, "default", "pod/p", parse_port_specs(["80"]), 1)  # type: ignore[arg-type]
    with pytest.raises(output.CliError, match="cannot port-forward to 'cm'"):
        resolve_forward(client, "default", "cm/x", parse_port_specs(["80"]), 1)  # type: ignore[arg-type]
    with pytest.raises(output.CliError, match="does not have a named port 'db'"):
        resolve_forward(FakeClient([pod("p")]), "default", "pod/p",  # type: ignore[arg-type]
                        parse_port_specs(["db"]), 1)
