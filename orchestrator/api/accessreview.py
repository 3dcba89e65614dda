"""SelfSubjectAccessReview (authorization.k8s.io/v1): "may I?", answered by the authorizer
that guards every request (`auth.authorize`), as `kubectl auth can-i` asks it.

`POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` with `spec.resourceAttributes`
(verb, group, resource, subresource, namespace, name) is answered 201 with the review and
`status.allowed` (and `status.reason` when denied). `spec.nonResourceAttributes` (paths such
as `/healthz`) are allowed to every authenticated user, as Dockyard serves them to all.
Impersonation (`Impersonate-User`, `Impersonate-Group`: `kubectl auth can-i --as`) is taken
from an admin only: the review is then made for that user (`system:node:<name>` is a node
identity); anyone else asking on someone's behalf is refused with 403, as Kubernetes does
for a user without the `impersonate` right. Nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import errors
from ..errors import ApiError
from . import auth

GROUP_VERSION = "authorization.k8s.io/v1"
PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*")

BoundNode = Callable[[str, str], "str | None"]  # (namespace, pod name) -> the pod's node


def impersonated(caller: auth.User, user: str | None, groups: Sequence[str]) -> auth.User:
    """The user a review is made for: the caller, or whom an admin impersonates."""
    if not user and not groups:
        return caller
    if auth.MASTERS not in caller.groups:
        raise errors.forbidden(caller.name, "impersonate", "users", user or "")
    if not user:
        raise errors.bad_request("Impersonate-Group is given without Impersonate-User")
    if user.startswith(auth.NODE_USER_PREFIX) and not groups:
        return auth.node_user(user[len(auth.NODE_USER_PREFIX):])
    node = user[len(auth.NODE_USER_PREFIX):] if user.startswith(auth.NODE_USER_PREFIX) else None
    return auth.User(user, (*groups, auth.AUTHENTICATED), node_name=node if auth.NODES in groups else None)


def review(user: auth.User, body: Any, bound_node: BoundNode,
           authz: auth.Authorizer | None = None) -> dict[str, Any]:
    """The answered review for `body` (a SelfSubjectAccessReview) asked by `user`."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body is not a SelfSubjectAccessReview")
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise _invalid("spec: Required value")
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (res is None) == (nonres is None):
        raise _invalid("spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must "
                       "be specified")
    if nonres is not None:
        if not isinstance(nonres, dict):
            raise _invalid("spec.nonResourceAttributes: must be an object")
        allowed, reason = True, ""
    else:
        allowed, reason = _resource_allowed(user, res, bound_node, authz or auth.Authorizer())
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {"kind": "SelfSubjectAccessReview", "apiVersion": GROUP_VERSION,
            "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}


def _resource_allowed(user: auth.User, res: Any, bound_node: BoundNode,
                      authz: auth.Authorizer) -> tuple[bool, str]:
    if not isinstance(res, dict):
        raise _invalid("spec.resourceAttributes: must be an object")
    text = {k: res.get(k) or "" for k in ("verb", "group", "resource", "subresource", "namespace", "name")}
    for key, value in text.items():
        if not isinstance(value, str):
            raise _invalid(f"spec.resourceAttributes.{key}: must be a string")
    if text["verb"] not in _VERBS:
        raise _invalid(f'spec.resourceAttributes.verb: Unsupported value: "{text["verb"]}"')
    if auth.MASTERS in user.groups:
        return True, ""
    if text["verb"] == "*" or text["resource"] == "*":
        return False, f'User "{user.name}" is not allowed every verb or resource'
    node = None
    if user.node_name is not None and (text["group"], text["resource"]) == ("", "pods") and text["name"]:
        node = bound_node(text["namespace"], text["name"])
    req = auth.Request(verb=text["verb"], group=text["group"], resource=text["resource"],
                       namespace=text["namespace"] or None, name=text["name"] or None,
                       subresource=text["subresource"], bound_node=node)
    if authz.authorize(user, req):
        return True, ""
    return False, f'User "{user.name}" cannot {text["verb"]} resource "{text["resource"]}"'


def _invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", f"SelfSubjectAccessReview.authorization.k8s.io is invalid: {message}")
