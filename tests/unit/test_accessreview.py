"""SelfSubjectAccessReview answers (`api.accessreview`), table-driven over the authorizer."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.api import accessreview, auth
from orchestrator.errors import ApiError

ADMIN = auth.admin_user()
NODE = auth.node_user("n1")


def bound(namespace: str, name: str) -> str | None:
    return {"mine": "n1", "theirs": "n2"}.get(name)


def ask(user: auth.User, **attrs: str) -> dict[str, Any]:
    body = {"apiVersion": accessreview.GROUP_VERSION, "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}}
    return accessreview.review(user, body, bound)["status"]


@pytest.mark.parametrize(("user", "attrs", "allowed"), [
    (ADMIN, {"verb": "delete", "resource": "nodes"}, True),
    (ADMIN, {"verb": "*", "resource": "*"}, True),
    (NODE, {"verb": "list", "resource": "pods"}, True),
    (NODE, {"verb": "create", "group": "apps", "resource": "deployments", "namespace": "default"}, False),
    (NODE, {"verb": "update", "resource": "nodes", "subresource": "status", "name": "n1"}, True),
    (NODE, {"verb": "update", "resource": "nodes", "subresource": "status", "name": "n2"}, False),
    (NODE, {"verb": "patch", "resource": "pods", "subresource": "status", "namespace": "default", "name": "mine"},
     True),
    (NODE, {"verb": "patch", "resource": "pods", "subresource": "status", "namespace": "default", "name": "theirs"},
     False),
    (NODE, {"verb": "get", "resource": "pods", "subresource": "log", "namespace": "default", "name": "mine"}, False),
    (NODE, {"verb": "*", "resource": "pods"}, False),
])
def test_resource_reviews(user: auth.User, attrs: dict[str, str], allowed: bool) -> None:
    status = ask(user, **attrs)
    assert status["allowed"] is allowed
    assert ("reason" in status) is (not allowed)


def test_non_resource_paths_are_open_to_the_authenticated() -> None:
    body = {"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}
    assert accessreview.review(NODE, body, bound)["status"] == {"allowed": True}


@pytest.mark.parametrize("spec", [None, {}, {"resourceAttributes": {}, "nonResourceAttributes": {}},
                                  {"resourceAttributes": {"verb": "fly", "resource": "pods"}},
                                  {"resourceAttributes": {"verb": "get", "resource": 7}}])
def test_malformed_reviews_are_422(spec: Any) -> None:
    with pytest.raises(ApiError) as e:
        accessreview.review(ADMIN, {"spec": spec}, bound)
    assert e.value.code == 422 and "SelfSubjectAccessReview" in e.value.message


def test_only_an_admin_impersonates() -> None:
    assert accessreview.impersonated(ADMIN, None, []) is ADMIN
    as_node = accessreview.impersonated(ADMIN, "system:node:n1", [])
    assert as_node.node_name == "n1" and auth.NODES in as_node.groups
    as_other = accessreview.impersonated(ADMIN, "jane", ["devs"])
    assert as_other.groups == ("devs", auth.AUTHENTICATED) and as_other.node_name is None
    assert ask(as_other, verb="get", resource="pods")["allowed"] is False
    with pytest.raises(ApiError) as e:
        accessreview.impersonated(NODE, "admin", [])
    assert e.value.code == 403
