"""Drains and rolling upgrades against an in-memory API: who is evacuated, who is deleted,
and which nodes are upgraded in place (no cordon, no drain)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.bootstrap.upgrade import drain, rolling_upgrade
from orchestrator.controllers.replicaset import EVACUATE_ANNOTATION
from orchestrator.objects.nodeinfo import POD_RUNTIME_ANNOTATION, POD_RUNTIME_REVISION, keeps_pods


def pod(name: str, owner: str | None = "ReplicaSet", phase: str = "Running") -> dict[str, Any]:
    refs = [{"kind": owner, "name": "web-1", "controller": True}] if owner else []
    return {"metadata": {"name": name, "namespace": "default", "ownerReferences": refs},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


class FakeAPI:
    """Nodes and pods in memory; an evacuated pod is gone at once (as if its replacement
    were Ready), a deleted one too."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    def get(self, kind: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        if kind.kind == "Node":
            return self.nodes.setdefault(name, {"metadata": {"name": name}, "spec": {}})
        return self.pods[name]

    def list(self, kind: Any, namespace: str | None = None, **kw: Any) -> dict[str, Any]:
        return {"items": list(self.pods.values())}

    def patch(self, kind: Any, name: str, body: dict[str, Any], namespace: str | None = None, **kw: Any) -> dict:
        if kind.kind == "Node":
            self.calls.append(("cordon" if body["spec"]["unschedulable"] else "uncordon", name))
            self.nodes.setdefault(name, {"metadata": {"name": name}, "spec": {}})["spec"].update(body["spec"])
            return self.nodes[name]
        assert EVACUATE_ANNOTATION in body["metadata"]["annotations"]
        self.calls.append(("evacuate", name))
        return self.pods.pop(name)

    def delete(self, kind: Any, name: str, namespace: str | None = None, **kw: Any) -> None:
        self.calls.append(("delete", name))
        self.pods.pop(name)


def test_drain_evacuates_replicaset_pods_and_deletes_the_rest() -> None:
    api = FakeAPI([pod("web-a"), pod("bare", owner=None), pod("done", phase="Succeeded")])
    gone = drain(api, "n1", force=True, timeout=5)  # type: ignore[arg-type]
    assert sorted(gone) == ["default/bare", "default/done", "default/web-a"]
    assert ("evacuate", "web-a") in api.calls
    assert {("delete", "bare"), ("delete", "done")} <= set(api.calls)
    assert api.calls[0] == ("cordon", "n1")


def test_drain_without_surge_deletes_replicaset_pods() -> None:
    api = FakeAPI([pod("web-a")])
    drain(api, "n1", timeout=5, surge=False)  # type: ignore[arg-type]
    assert ("delete", "web-a") in api.calls and ("evacuate", "web-a") not in api.calls


@pytest.mark.parametrize(
    ("in_place", "calls"),
    [
        ({"n1", "n2"}, [("upgrade", "n1"), ("ready", "n1"), ("upgrade", "n2"), ("ready", "n2")]),
        ({"n2"}, [("cordon", "n1"), ("upgrade", "n1"), ("ready", "n1"), ("uncordon", "n1"),
                  ("upgrade", "n2"), ("ready", "n2")]),
    ],
)
def test_rolling_upgrade_in_place_touches_no_pod(in_place: set[str], calls: list[tuple[str, str]]) -> None:
    api = FakeAPI([])
    steps = rolling_upgrade(
        api, ["n1", "n2"],  # type: ignore[arg-type]
        lambda n: api.calls.append(("upgrade", n)), lambda n: api.calls.append(("ready", n)),
        in_place=lambda n: n in in_place)
    assert api.calls == calls
    assert [s.message for s in steps] == ["upgraded in place" if n in in_place else "upgraded" for n in ("n1", "n2")]


@pytest.mark.parametrize(
    ("annotations", "keeps"),
    [
        ({POD_RUNTIME_ANNOTATION: str(POD_RUNTIME_REVISION)}, True),
        ({POD_RUNTIME_ANNOTATION: str(POD_RUNTIME_REVISION + 1)}, False),
        ({POD_RUNTIME_ANNOTATION: "junk"}, False),
        ({}, False),  # an agent from before revisions: drain first
    ],
)
def test_keeps_pods(annotations: dict[str, str], keeps: bool) -> None:
    assert keeps_pods({"metadata": {"name": "n1", "annotations": annotations}}) is keeps
