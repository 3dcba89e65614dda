"""PATCH of /scale while a controller writes the same object: the patch is applied again to
the new Scale (as the API server's update loop does), unless the patch named a
resourceVersion of its own, whose failed precondition is the 409."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.objects.kinds import resolve
from orchestrator.registry import Registry
from tests.unit.test_api import h, make_api
from tests.unit.test_api_hostile import DEPLOY, MERGE, WEB

DEPLOYMENTS = resolve("deployments")


def racing(reg: Registry, writes: int) -> list[int]:
    """Make the next `writes` reads of the Scale be followed by a status write (a controller
    writing between the API's read and its write)."""
    done: list[int] = []
    real = reg.get_scale

    def get_scale(kind: Any, namespace: str, name: str) -> dict[str, Any]:
        scale = real(kind, namespace, name)
        if len(done) < writes:
            d = reg.get(DEPLOYMENTS, namespace, name)
            d.setdefault("status", {})["observedGeneration"] = len(done) + 1
            reg.update(DEPLOYMENTS, namespace, name, d, "status")
            done.append(1)
        return scale

    reg.get_scale = get_scale  # type: ignore[method-assign]
    return done


def test_a_scale_patch_is_applied_again_after_a_conflict(tmp_path: Path) -> None:
    reg, client = make_api(tmp_path)
    assert client.post(DEPLOY, json=WEB, headers=h()).status_code == 201
    done = racing(reg, 2)
    r = client.patch(f"{DEPLOY}/web/scale", content='{"spec":{"replicas":7}}',
                     headers={**h(), "Content-Type": MERGE})
    assert r.status_code == 200, r.text
    assert len(done) == 2  # two conflicts, the third attempt wrote
    assert r.json()["spec"]["replicas"] == 7
    assert reg.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 7


@pytest.mark.parametrize("stale", [True, False])
def test_a_scale_patch_with_its_own_resource_version_is_a_precondition(tmp_path: Path, stale: bool) -> None:
    reg, client = make_api(tmp_path)
    assert client.post(DEPLOY, json=WEB, headers=h()).status_code == 201
    rv = reg.get(DEPLOYMENTS, "default", "web")["metadata"]["resourceVersion"]
    if stale:
        racing(reg, 1)  # the object changes after the client read it: its precondition fails
    body = json.dumps({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 4}})
    r = client.patch(f"{DEPLOY}/web/scale", content=body, headers={**h(), "Content-Type": MERGE})
    if stale:
        assert r.status_code == 409 and r.json()["reason"] == "Conflict"
        assert reg.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 1
    else:
        assert r.status_code == 200 and reg.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 4
