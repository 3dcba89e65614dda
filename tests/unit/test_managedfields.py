"""Field ownership for server-side apply: the FieldsV1 encoding, `track`'s Update and Apply
rules (conflicts, force, shared ownership), `prune_apply`, and the API's answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.objects import managedfields as mf
from orchestrator.objects.kinds import by_kind
from orchestrator.objects.managedfields import FieldManager, Scope
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

DEPLOYMENT = by_kind("apps/v1", "Deployment")
CONFIGMAP = by_kind("v1", "ConfigMap")
MAIN = Scope("Deployment", DEPLOYMENT.schema, True, "", "apps/v1")
STATUS = Scope("Deployment", DEPLOYMENT.schema, True, "status", "apps/v1")
NOW = "2026-12-01T10:00:00Z"


def deployment(replicas: int = 2, image: str = "web:1", labels: dict[str, str] | None = None,
               ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": image}
    if ports is not None:
        container["ports"] = ports
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default", "labels": labels or {"app": "d"}, "uid": "u"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [container]}}},
        "status": {"replicas": 1},
    }


def owned(entries: list[dict[str, Any]] | None, manager: str, operation: str = "Update") -> set[str]:
    for e in entries or []:
        if e["manager"] == manager and e["operation"] == operation:
            return set(mf.members(mf.from_fields_v1(e["fieldsV1"])))
    return set()


def with_fields(obj: dict[str, Any], entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    out = {**obj, "metadata": {**obj["metadata"]}}
    if entries:
        out["metadata"]["managedFields"] = entries
    return out


# --- FieldsV1 -----------------------------------------------------------------------------------


def test_fields_v1_of_a_deployment_is_what_kubernetes_writes() -> None:
    fields = frozenset(mf.leaves(MAIN, deployment(ports=[{"containerPort": 80}])))
    v1 = mf.to_fields_v1(fields)
    assert v1["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    spec = v1["f:spec"]
    assert spec["f:replicas"] == {} and "." not in spec
    container = spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container == {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
        ".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}
    assert "f:status" not in v1  # the main resource of a kind with /status does not track status
    assert mf.from_fields_v1(v1) == fields


@pytest.mark.parametrize(("path", "shown"), [
    (("f:spec", "f:replicas"), ".spec.replicas"),
    (("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image"),
     '.spec.template.spec.containers[name="web"].image'),
    (("f:metadata", "f:finalizers", 'v:"a/b"'), '.metadata.finalizers[="a/b"]'),
])
def test_paths_display_as_kubernetes_prints_them(path: tuple[str, ...], shown: str) -> None:
    assert mf.display(path) == shown


@pytest.mark.parametrize("bad", [[1], [{"operation": "Create"}], [{"operation": "Update", "fieldsV1": {"x": {}}}],
                                 "nope"])
def test_malformed_entries_are_refused_naming_the_field(bad: Any) -> None:
    with pytest.raises(mf.InvalidManagedFields) as e:
        mf.parse_entries(bad)
    assert e.value.field.startswith("metadata.managedFields")


# --- Update -----------------------------------------------------------------------------------


def test_create_gives_the_writer_every_field_and_updates_move_changed_fields() -> None:
    created = mf.track(MAIN, None, deployment(), FieldManager("kubectl-create"), NOW)
    assert created is not None and {".spec.replicas", '.spec.template.spec.containers[name="web"].image',
                                     ".metadata.labels.app"} <= owned(created, "kubectl-create")
    old = with_fields(deployment(), created)
    new = with_fields(deployment(replicas=5), created)
    after = mf.track(MAIN, old, new, FieldManager("kubectl-scale"), NOW)
    assert owned(after, "kubectl-scale") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(after, "kubectl-create")
    assert after is not None and all(e["time"] == NOW and e["apiVersion"] == "apps/v1" for e in after)


def test_a_write_that_changes_nothing_changes_no_entry() -> None:
    created = mf.track(MAIN, None, deployment(), FieldManager("a"), NOW)
    obj = with_fields(deployment(), created)
    assert mf.track(MAIN, obj, with_fields(deployment(), created), FieldManager("b"), NOW) is None


def test_removed_fields_leave_every_entry_and_empty_entries_go() -> None:
    created = mf.track(MAIN, None, deployment(labels={"app": "d", "tier": "x"}), FieldManager("a"), NOW)
    old = with_fields(deployment(labels={"app": "d", "tier": "x"}), created)
    labelled = mf.track(MAIN, old, with_fields(deployment(labels={"app": "d", "tier": "y"}), created),
                        FieldManager("b"), NOW)
    assert owned(labelled, "b") == {".metadata.labels.tier"}
    old = with_fields(deployment(labels={"app": "d", "tier": "y"}), labelled)
    dropped = mf.track(MAIN, old, with_fields(deployment(), labelled), FieldManager("c"), NOW)
    assert dropped is not None and [e["manager"] for e in dropped] == ["a"]


def test_status_writes_track_status_only_under_their_own_entry() -> None:
    created = mf.track(MAIN, None, deployment(), FieldManager("a"), NOW)
    old = with_fields(deployment(), created)
    new = with_fields(deployment(), created)
    new["status"] = {"replicas": 2}
    after = mf.track(STATUS, old, new, FieldManager("controller"), NOW)
    assert after is not None
    status_entry = [e for e in after if e["manager"] == "controller"]
    assert status_entry[0]["subresource"] == "status" and owned(after, "controller") == {".status.replicas"}
    assert owned(after, "a") == owned(created, "a")


def test_managed_fields_sent_differently_are_taken_as_given_and_a_lone_empty_entry_clears() -> None:
    created = mf.track(MAIN, None, deployment(), FieldManager("a"), NOW)
    old = with_fields(deployment(), created)
    given = [{"manager": "x", "operation": "Apply", "fieldsType": "FieldsV1",
              "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert owned(mf.track(MAIN, old, deployment(), FieldManager("b"), NOW, given), "x", "Apply") == {".spec.replicas"}
    assert mf.track(MAIN, old, deployment(), FieldManager("b"), NOW, [{}]) == []


# --- Apply ------------------------------------------------------------------------------------


def apply_config(replicas: int | None = 2, image: str = "web:1") -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "d"}}, "template": {
        "metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "web", "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec}


def test_apply_owns_exactly_its_configuration() -> None:
    entries = mf.track(MAIN, None, deployment(), FieldManager("kubectl", "Apply", apply_config()), NOW)
    fields = owned(entries, "kubectl", "Apply")
    assert ".spec.replicas" in fields and ".status.replicas" not in fields
    assert ".metadata.labels.app" not in fields  # the configuration sets no labels on the Deployment


@pytest.mark.parametrize(("second", "force", "conflicts", "replicas_owner"), [
    # another applier sets the same value: shared ownership, no conflict
    (apply_config(replicas=2), False, [], {"kubectl", "other"}),
    # another value: a conflict naming the field and its manager
    (apply_config(replicas=3), False, ['conflict with "kubectl" using apps/v1'], {"kubectl"}),
    # forced: the field moves
    (apply_config(replicas=3), True, [], {"other"}),
])
def test_apply_conflicts_shares_and_forces(second: dict[str, Any], force: bool, conflicts: list[str],
                                           replicas_owner: set[str]) -> None:
    first = mf.track(MAIN, None, deployment(), FieldManager("kubectl", "Apply", apply_config()), NOW)
    old = with_fields(deployment(), first)
    new = with_fields(deployment(replicas=second["spec"]["replicas"]), first)
    manager = FieldManager("other", "Apply", second, force)
    if conflicts:
        with pytest.raises(mf.Conflicts) as e:
            mf.track(MAIN, old, new, manager, NOW)
        assert e.value.message == 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas'
        assert [c["message"] for c in e.value.causes] == conflicts
        assert e.value.causes[0]["field"] == ".spec.replicas"
        return
    after = mf.track(MAIN, old, new, manager, NOW)
    owners = {e["manager"] for e in after or [] if ".spec.replicas" in owned(after, e["manager"], e["operation"])}
    assert owners == replicas_owner


def test_apply_conflicts_with_an_updater_of_the_field() -> None:
    first = mf.track(MAIN, None, deployment(), FieldManager("kubectl", "Apply", apply_config()), NOW)
    old = with_fields(deployment(), first)
    scaled = mf.track(MAIN, old, with_fields(deployment(replicas=5), first), FieldManager("kubectl-scale"), NOW)
    old = with_fields(deployment(replicas=5), scaled)
    with pytest.raises(mf.Conflicts) as e:
        mf.track(MAIN, old, with_fields(deployment(replicas=2), scaled),
                 FieldManager("kubectl", "Apply", apply_config()), NOW)
    assert '"kubectl-scale"' in e.value.message
    # leaving replicas out of the configuration hands the field to the updater: no conflict
    after = mf.track(MAIN, old, with_fields(deployment(replicas=5), scaled),
                     FieldManager("kubectl", "Apply", apply_config(replicas=None)), NOW)
    assert ".spec.replicas" not in owned(after, "kubectl", "Apply")


def test_prune_removes_what_the_applier_no_longer_applies_unless_others_own_it() -> None:
    config = apply_config()
    config["metadata"]["labels"] = {"a": "1", "b": "2"}
    live = deployment(labels={"a": "1", "b": "2"})
    entries = mf.track(MAIN, None, live, FieldManager("kubectl", "Apply", config), NOW)
    live = with_fields(live, entries)
    # someone else takes label b over (an update)
    relabelled = with_fields(deployment(labels={"a": "1", "b": "3"}), entries)
    entries = mf.track(MAIN, live, relabelled, FieldManager("kubectl-label"), NOW)
    live = with_fields(relabelled, entries)
    smaller = apply_config()
    smaller["metadata"]["labels"] = {}
    merged = with_fields(relabelled, entries)
    mf.prune_apply(MAIN, live, merged, FieldManager("kubectl", "Apply", smaller))
    assert merged["metadata"]["labels"] == {"b": "3"}  # a (only the applier's) went, b (the labeller's) stayed


def test_prune_removes_a_container_the_applier_dropped() -> None:
    two = apply_config()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    live = deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    entries = mf.track(MAIN, None, live, FieldManager("kubectl", "Apply", two), NOW)
    live = with_fields(live, entries)
    merged = with_fields(live, entries)
    mf.prune_apply(MAIN, live, merged, FieldManager("kubectl", "Apply", apply_config()))
    assert [c["name"] for c in merged["spec"]["template"]["spec"]["containers"]] == ["web"]


# --- through the API --------------------------------------------------------------------------

ADMIN = "admin-token-0123456789"
H = {"Authorization": f"Bearer {ADMIN}"}
SSA = {**H, "Content-Type": "application/apply-patch+yaml"}
CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def api(tmp_path: Path) -> TestClient:
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", b"n" * 32), b"PEM",
                       lambda n: node_token(b"n" * 32, n))
    return TestClient(server.app)


def cm(data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "c"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_api_records_managers_and_answers_conflicts_with_kubernetes_status(api: TestClient) -> None:
    r = api.patch(f"{CMS}/c?fieldManager=alice", json=cm({"a": "1", "b": "1"}), headers=SSA)
    assert r.status_code == 201
    entry = r.json()["metadata"]["managedFields"][0]
    assert (entry["manager"], entry["operation"], entry["apiVersion"], entry["fieldsType"]) == (
        "alice", "Apply", "v1", "FieldsV1")
    assert entry["fieldsV1"] == {"f:data": {".": {}, "f:a": {}, "f:b": {}}}
    r = api.patch(f"{CMS}/c?fieldManager=bob", json=cm({"a": "2"}), headers=SSA)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert r.json()["message"] == 'Apply failed with 1 conflict: conflict with "alice" using v1: .data.a'
    assert r.json()["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice" using v1', "field": ".data.a"}]
    assert api.get(f"{CMS}/c", headers=H).json()["data"] == {"a": "1", "b": "1"}  # nothing written
    r = api.patch(f"{CMS}/c?fieldManager=bob&force=true", json=cm({"a": "2"}), headers=SSA)
    assert r.status_code == 200 and r.json()["data"] == {"a": "2", "b": "1"}
    fields = {e["manager"]: e["fieldsV1"] for e in r.json()["metadata"]["managedFields"]}
    assert fields == {"alice": {"f:data": {".": {}, "f:b": {}}}, "bob": {"f:data": {".": {}, "f:a": {}}}}
    # alice drops b from her configuration: b is removed (nobody else owns it)
    r = api.patch(f"{CMS}/c?fieldManager=alice", json=cm({}), headers=SSA)
    assert r.status_code == 200 and r.json()["data"] == {"a": "2"}


def test_api_takes_the_manager_from_the_user_agent_and_updates_move_fields(api: TestClient) -> None:
    r = api.post(CMS, json=cm({"a": "1"}), headers={**H, "User-Agent": "kubectl/v1.32.0 (linux/amd64)"})
    assert [e["manager"] for e in r.json()["metadata"]["managedFields"]] == ["kubectl"]
    r = api.patch(f"{CMS}/c?fieldManager=editor", json={"data": {"a": "2"}},
                  headers={**H, "Content-Type": "application/merge-patch+json"})
    managers = {e["manager"]: e["fieldsV1"] for e in r.json()["metadata"]["managedFields"]}
    assert managers["editor"] == {"f:data": {"f:a": {}}}
    assert "kubectl" not in managers or "f:a" not in managers["kubectl"].get("f:data", {})


def test_api_accepts_managed_fields_rewritten_by_a_client_and_refuses_malformed_ones(api: TestClient) -> None:
    api.post(f"{CMS}?fieldManager=kubectl-client-side-apply", json=cm({"a": "1"}), headers=H)
    upgraded = [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}]
    r = api.patch(f"{CMS}/c", json=[{"op": "replace", "path": "/metadata/managedFields", "value": upgraded}],
                  headers={**H, "Content-Type": "application/json-patch+json"})
    assert r.status_code == 200
    assert [(e["manager"], e["operation"]) for e in r.json()["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    # now applying without `a` removes it: the field is the applier's
    r = api.patch(f"{CMS}/c?fieldManager=kubectl", json=cm({"b": "1"}), headers=SSA)
    assert r.json()["data"] == {"b": "1"}
    bad = api.patch(f"{CMS}/c", json={"metadata": {"managedFields": [{"manager": "x", "operation": "Steal"}]}},
                    headers={**H, "Content-Type": "application/merge-patch+json"})
    assert bad.status_code == 422 and "metadata.managedFields[0].operation" in bad.json()["message"]


def test_api_refuses_apply_without_a_manager_and_force_on_other_patches(api: TestClient) -> None:
    r = api.patch(f"{CMS}/c", json=cm({"a": "1"}), headers=SSA)
    assert r.status_code == 422 and "fieldManager: Required value" in r.json()["message"]
    r = api.patch(f"{CMS}/c?fieldManager={'m' * 129}", json=cm({"a": "1"}), headers=SSA)
    assert r.status_code == 422 and "fieldManager" in r.json()["message"]
