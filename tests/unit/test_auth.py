"""Tests for bearer-token authentication and the node/bootstrap authorization rules."""

from __future__ import annotations

import pytest

from orchestrator.api.auth import (
    Authenticator,
    Request,
    TokenCache,
    User,
    admin_user,
    authorize,
    bootstrap_user,
    node_credential_for,
    node_user,
    request_verb,
)
from orchestrator.pki import make_join_token, node_token, verify_node_token

ADMIN = "0123456789abcdef0123456789abcdef"
SECRET = bytes(range(32))
CA_PEM = b"-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"
JOIN = make_join_token(CA_PEM, "joinsecret42")
OTHER_CA_JOIN = make_join_token(b"another ca", "joinsecret42")


@pytest.fixture
def authn() -> Authenticator:
    return Authenticator(ADMIN, JOIN, SECRET)


# -- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [
        (f"Bearer {ADMIN}", admin_user()),
        (f"bearer {ADMIN}", admin_user()),
        (f"  Bearer   {ADMIN}  ", admin_user()),
        (f"Bearer {node_token(SECRET, 'worker-1')}", node_user("worker-1")),
        (f"Bearer {JOIN}", bootstrap_user()),
        ("Bearer joinsecret42", bootstrap_user()),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {ADMIN}", None),
        (ADMIN, None),
        (f"Bearer {ADMIN}x", None),
        (f"Bearer {ADMIN[:-1]}", None),
        (f"Bearer {ADMIN} extra", None),
        (f"Bearer {node_token(bytes(32), 'worker-1')}", None),
        (f"Bearer {node_token(SECRET, 'worker-1')[:-2]}00", None),
        (f"Bearer {OTHER_CA_JOIN}", None),
        ("Bearer joinsecret4", None),
        ("Bearer K10abc::node:joinsecret42", None),
        ("Bearer ünïcode", None),
        ("Bearer garbage", None),
    ],
)
def test_authenticate(authn: Authenticator, header: str | None, expected: User | None) -> None:
    assert authn.authenticate(header) == expected


def test_user_shapes() -> None:
    assert admin_user().name == "admin" and "system:masters" in admin_user().groups
    node = node_user("worker-1")
    assert (node.name, node.node_name) == ("system:node:worker-1", "worker-1")
    assert "system:nodes" in node.groups
    boot = bootstrap_user()
    assert boot.name == "system:node-bootstrap" and "system:bootstrappers" in boot.groups
    assert boot.node_name is None


def test_bare_join_secret_configured() -> None:
    authn = Authenticator(ADMIN, "joinsecret42", SECRET)
    assert authn.authenticate(f"Bearer {JOIN}") == bootstrap_user()
    assert authn.authenticate(f"Bearer {OTHER_CA_JOIN}") == bootstrap_user()
    assert authn.authenticate("Bearer joinsecret42") == bootstrap_user()


def test_node_credential_exchange(authn: Authenticator) -> None:
    token = node_credential_for(authn, "worker-7")
    assert verify_node_token(SECRET, token) == "worker-7"
    assert authn.authenticate(f"Bearer {token}") == node_user("worker-7")
    with pytest.raises(ValueError):
        node_credential_for(authn, "Bad:Name")


@pytest.mark.parametrize(
    "admin, join, secret",
    [("", JOIN, SECRET), (ADMIN, "", SECRET), (ADMIN, JOIN, b"short"), (ADMIN, "a:b", SECRET)],
)
def test_authenticator_rejects_bad_config(admin: str, join: str, secret: bytes) -> None:
    with pytest.raises(ValueError):
        Authenticator(admin, join, secret)


# -- authorization -------------------------------------------------------------------------

N1 = node_user("n1")
BOOT = bootstrap_user()
ADM = admin_user()
NOBODY = User("mallory", ("system:authenticated",))


def req(
    verb: str,
    resource: str,
    name: str | None = None,
    namespace: str | None = None,
    sub: str = "",
    bound: str | None = None,
    group: str = "",
) -> Request:
    return Request(verb, group, resource, namespace, name, sub, bound)


ALLOW = [
    (ADM, req("delete", "nodes", "n2")),
    (ADM, req("create", "deployments", "web", "default", group="apps")),
    (ADM, req("deletecollection", "pods", None, "default")),
    (ADM, req("get", "pods", "p", "default", "exec")),
    # nodes: reads
    (N1, req("get", "pods", "p", "default", bound="n2")),
    (N1, req("list", "pods", None, None)),
    (N1, req("watch", "pods", None, None)),
    (N1, req("list", "services", None, None)),
    (N1, req("get", "secrets", "s", "default")),
    (N1, req("get", "configmaps", "c", "default")),
    (N1, req("get", "nodes", "n2", sub="status")),
    # nodes: own Node
    (N1, req("create", "nodes", "n1")),
    (N1, req("update", "nodes", "n1")),
    (N1, req("patch", "nodes", "n1")),
    (N1, req("update", "nodes", "n1", sub="status")),
    (N1, req("patch", "nodes", "n1", sub="status")),
    # nodes: pods bound to them
    (N1, req("update", "pods", "p", "default", "status", bound="n1")),
    (N1, req("patch", "pods", "p", "default", "status", bound="n1")),
    (N1, req("delete", "pods", "p", "default", bound="n1")),
    # nodes: events
    (N1, req("create", "events", None, "default")),
    (N1, req("patch", "events", "e", "default")),
    (N1, req("update", "events", "e", "default")),
    (N1, req("create", "events", None, "default", group="events.k8s.io")),
    # nodes: their own heartbeat Lease
    (N1, req("create", "leases", "n1", "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("update", "leases", "n1", "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("get", "leases", "n1", "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("list", "endpoints", None, None)),
    # bootstrap
    (BOOT, req("create", "nodecredentials")),
]

DENY = [
    # nodes read what a kubelet reads, not workload controllers or other nodes' Leases
    (N1, req("list", "deployments", None, "default", group="apps")),
    (N1, req("get", "replicasets", "r", "default", group="apps")),
    (N1, req("list", "horizontalpodautoscalers", None, None, group="autoscaling")),
    (N1, req("get", "leases", "n2", "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("list", "leases", None, "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("list", "namespaces", None, None)),
    # another node's Lease, a Lease elsewhere, deleting its own
    (N1, req("update", "leases", "n2", "kube-node-lease", group="coordination.k8s.io")),
    (N1, req("create", "leases", "n1", "default", group="coordination.k8s.io")),
    (N1, req("delete", "leases", "n1", "kube-node-lease", group="coordination.k8s.io")),
    # another node's Node / status
    (N1, req("update", "nodes", "n2", sub="status")),
    (N1, req("patch", "nodes", "n2", sub="status")),
    (N1, req("patch", "nodes", "n2")),
    (N1, req("create", "nodes", "n2")),
    (N1, req("create", "nodes", None)),
    (N1, req("delete", "nodes", "n1")),
    (N1, req("delete", "nodes", "n2")),
    # pods bound elsewhere or unbound, pod spec, pod creation
    (N1, req("update", "pods", "p", "default", "status", bound="n2")),
    (N1, req("patch", "pods", "p", "default", "status", bound=None)),
    (N1, req("update", "pods", "p", "default", bound="n1")),
    (N1, req("patch", "pods", "p", "default", bound="n1")),
    (N1, req("create", "pods", "p", "default")),
    (N1, req("delete", "pods", "p", "default", bound="n2")),
    (N1, req("delete", "pods", "p", "default", bound=None)),
    (N1, req("deletecollection", "pods", None, "default")),
    (N1, req("create", "pods", "p", "default", "binding", bound="n1")),
    # exec/log through the API are not node business
    (N1, req("get", "pods", "p", "default", "exec", bound="n1")),
    (N1, req("get", "pods", "p", "default", "log", bound="n2")),
    # other writes
    (N1, req("create", "secrets", "s", "default")),
    (N1, req("update", "configmaps", "c", "default")),
    (N1, req("delete", "events", "e", "default")),
    (N1, req("update", "deployments", "d", "default", group="apps")),
    (N1, req("create", "namespaces", "x")),
    (N1, req("create", "nodecredentials")),
    (N1, req("escalate", "nodes", "n1")),
    # bootstrap: only the credential exchange
    (BOOT, req("get", "nodecredentials")),
    (BOOT, req("list", "pods", None, None)),
    (BOOT, req("get", "nodes", "n1")),
    (BOOT, req("create", "nodes", "n1")),
    (BOOT, req("create", "nodecredentials", sub="status")),
    # no groups that grant anything
    (NOBODY, req("get", "pods", "p", "default")),
    (User("system:node:n1", ("system:authenticated",), node_name="n1"), req("get", "pods", "p", "default")),
    (User("weird", ("system:nodes",)), req("get", "pods", "p", "default")),
]


@pytest.mark.parametrize("user, request_", ALLOW)
def test_authorize_allows(user: User, request_: Request) -> None:
    assert authorize(user, request_)


@pytest.mark.parametrize("user, request_", DENY)
def test_authorize_denies(user: User, request_: Request) -> None:
    assert not authorize(user, request_)


@pytest.mark.parametrize(
    "method, name, watch, verb",
    [
        ("GET", "p", False, "get"),
        ("GET", None, False, "list"),
        ("GET", None, True, "watch"),
        ("get", "p", True, "watch"),
        ("POST", None, False, "create"),
        ("PUT", "p", False, "update"),
        ("PATCH", "p", False, "patch"),
        ("DELETE", "p", False, "delete"),
        ("DELETE", None, False, "deletecollection"),
    ],
)
def test_request_verb(method: str, name: str | None, watch: bool, verb: str) -> None:
    assert request_verb(method, name, watch) == verb


# -- the verified-token cache -------------------------------------------------------------


def test_a_verified_token_is_remembered_and_answers_the_same(authn: Authenticator) -> None:
    node = f"Bearer {node_token(SECRET, 'worker-3')}"
    for header, user in ((f"Bearer {ADMIN}", admin_user()), (node, node_user("worker-3")),
                         (f"Bearer {JOIN}", bootstrap_user())):
        assert authn.authenticate(header) == user
        assert authn._verified.get(header) == user
        assert authn.authenticate(header) == user  # from the cache now


def test_refused_tokens_are_never_remembered(authn: Authenticator) -> None:
    for header in (f"Bearer {ADMIN}x", f"Bearer {node_token(bytes(32), 'worker-1')}", "Bearer garbage", "Basic x"):
        assert authn.authenticate(header) is None
        assert authn.authenticate(header) is None
    assert authn._verified._entries == {}


def test_a_cache_entry_answers_only_its_own_header() -> None:
    cache = TokenCache()
    cache.put("Bearer a", admin_user())
    # another header that lands on the same entry (a hash collision) is compared and refused
    cache._entries[hash("Bearer b")] = cache._entries[hash("Bearer a")]
    assert cache.get("Bearer a") == admin_user()
    assert cache.get("Bearer b") is None
    assert cache.get("Bearer c") is None


def test_the_cache_is_bounded() -> None:
    cache = TokenCache(size=3)
    for i in range(10):
        cache.put(f"Bearer t{i}", node_user(f"n{i}"))
        assert len(cache._entries) <= 3
    assert cache.get("Bearer t9") == node_user("n9")


def test_a_padded_header_is_verified_but_not_kept(authn: Authenticator) -> None:
    header = f"Bearer {ADMIN}" + " " * 2000
    assert authn.authenticate(header) == admin_user()
    assert authn._verified._entries == {}
