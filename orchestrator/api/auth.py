"""Authentication (bearer token -> User) and authorization (User x Request -> allowed?).

Pure functions over plain data, free of any HTTP framework, so the API layer calls them
and turns a None user into 401 and a False decision into 403.

Identities, all from bearer tokens (see `orchestrator.pki`):
- the admin token -> `admin`, group `system:masters`: may do everything;
- a node token `node:<name>:<mac>` -> `system:node:<name>`, group `system:nodes`;
- the join token (full `K10<ca-hash>::node:<secret>` form or the bare secret) ->
  `system:node-bootstrap`, group `system:bootstrappers`: may only exchange itself for a node
  token (`create` on the Dockyard-specific `nodecredentials` resource).

Authorization is a fixed, small rule set in the spirit of Kubernetes' node authorizer:
a node may read everything (except the `log`/`exec` subresources), create/update/patch its
own Node object and its status, update/patch the status of pods bound to it, delete pods
bound to it, and write events. For decisions about existing objects the API layer fills
`Request.bound_node` (the stored pod's spec.nodeName) and, on create, `Request.name` with the
new object's metadata.name.

Cost: every request is authenticated, so a verified token is remembered (`TokenCache`,
bounded): the next request with it costs a hash and one constant-time comparison instead
of parsing the header again and recomputing a node token's HMAC. Only successes are
remembered (what a token identifies never changes while the master runs: the admin
token, the node secret and the join token are fixed at start), so guessing costs the
guesser the full check every time.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..pki import PKIError, node_token, parse_join_token, valid_node_name, verify_node_token

MASTERS = "system:masters"
NODES = "system:nodes"
BOOTSTRAPPERS = "system:bootstrappers"
AUTHENTICATED = "system:authenticated"

ADMIN_USER = "admin"
BOOTSTRAP_USER = "system:node-bootstrap"
NODE_USER_PREFIX = "system:node:"

# The resource the API layer serves for the join-token -> node-token exchange.
NODE_CREDENTIALS = "nodecredentials"

READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "update", "patch"})
VERBS = READ_VERBS | WRITE_VERBS | {"delete", "deletecollection"}

# Subresources a node may read: not logs (other tenants' output) nor exec (code execution).
_NODE_READABLE_SUBRESOURCES = frozenset({"", "status"})
# What a node may read at all, as Kubernetes' node authorizer allows a kubelet: pods, nodes,
# services, endpoints and EndpointSlices (routes, service rules, DNS), and the ConfigMaps and
# Secrets its own pods reference (narrowed further by the API layer); never workload controllers.
_NODE_READABLE = frozenset({("", "pods"), ("", "nodes"), ("", "services"), ("", "endpoints"),
                            ("discovery.k8s.io", "endpointslices"), ("", "configmaps"), ("", "secrets")})
_EVENT_GROUPS = frozenset({"", "events.k8s.io"})
NODE_LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class User:
    name: str  # "admin", "system:node:<name>", "system:node-bootstrap", "system:serviceaccount:ns:sa", ...
    groups: tuple[str, ...]
    node_name: str | None = None  # set for node identities
    uid: str = ""
    # Kubernetes' user "extra" (e.g. authentication.kubernetes.io/pod-uid of a bound token)
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


# A further way to authenticate a bearer token (ServiceAccount JWTs, user tokens): the User
# it identifies, or None when it is not such a token or not valid (now).
TokenAuthenticator = Callable[[str], "User | None"]
# A further authorizer (RBAC): True when it allows the request.
RequestAuthorizer = Callable[["User", "Request"], bool]


@dataclass(frozen=True)
class Request:
    """What the authorizer needs to know about one API request."""

    verb: str  # get list watch create update patch delete deletecollection
    group: str
    resource: str
    namespace: str | None
    name: str | None  # for create: the new object's metadata.name
    subresource: str = ""
    # For pods: the node the existing object is bound to (its spec.nodeName).
    bound_node: str | None = None


def admin_user() -> User:
    return User(ADMIN_USER, (MASTERS, AUTHENTICATED))


def node_user(node_name: str) -> User:
    return User(NODE_USER_PREFIX + node_name, (NODES, AUTHENTICATED), node_name=node_name)


def bootstrap_user() -> User:
    return User(BOOTSTRAP_USER, (BOOTSTRAPPERS, AUTHENTICATED))


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


MAX_CACHED_HEADER = 1024  # longer Authorization headers are never kept


class TokenCache:
    """Authorization headers already verified -> their User, at most `size` of them.

    Looked up by the header's hash (Python's keyed string hash, so a lookup never compares
    secrets byte by byte), then the header kept with the entry is compared in constant
    time; two headers with one hash only cost the later one the full check. When full it
    is emptied: verified tokens are few (one admin, a token per node) and fill it again at
    once; a flood of distinct valid tokens cannot grow it without bound.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[int, tuple[bytes, User]] = {}

    def get(self, header: str) -> User | None:
        entry = self._entries.get(hash(header))
        if entry is None or not hmac.compare_digest(entry[0], header.encode()):
            return None
        return entry[1]

    def put(self, header: str, user: User) -> None:
        if len(header) > MAX_CACHED_HEADER:
            return  # a token padded with whitespace: verified every time rather than kept
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[hash(header)] = (header.encode(), user)


class Authenticator:
    def __init__(self, admin_token: str, join_token: str, node_secret: bytes) -> None:
        if not admin_token:
            raise ValueError("the admin token must not be empty")
        if len(node_secret) < 16:
            raise ValueError("the node secret must be at least 16 bytes")
        self.admin_token = admin_token
        self.node_secret = node_secret
        try:
            self._join_hash, self._join_secret = parse_join_token(join_token)
        except PKIError as e:
            raise ValueError(f"unusable join token: {e}") from None
        self._verified = TokenCache()
        # consulted in order for a token none of the fixed ones matches; their answers are
        # not remembered (such tokens expire, or stop working when revoked)
        self.token_authenticators: list[TokenAuthenticator] = []

    def authenticate(self, authorization_header: str | None) -> User | None:
        """The user a `Bearer <token>` header identifies, or None."""
        if not authorization_header:
            return None
        user = self._verified.get(authorization_header)
        if user is not None:
            return user
        token = bearer_token(authorization_header)
        if token is None:
            return None
        user = self.authenticate_token(token)
        if user is not None:
            self._verified.put(authorization_header, user)
            return user
        return self._plugged(token)

    def _plugged(self, token: str) -> User | None:
        for authenticate in self.token_authenticators:
            user = authenticate(token)
            if user is not None:
                return user
        return None

    def authenticate_token(self, token: str) -> User | None:
        if _eq(token, self.admin_token):
            return admin_user()
        if token.startswith("node:"):
            name = verify_node_token(self.node_secret, token)
            return node_user(name) if name is not None else None
        try:
            digest, secret = parse_join_token(token)
        except PKIError:
            return None
        if not _eq(secret, self._join_secret):
            return None
        if digest is not None and self._join_hash is not None and not _eq(digest, self._join_hash):
            return None
        return bootstrap_user()

    def node_credential(self, node_name: str) -> str:
        """A node token for `node_name` (raises ValueError for an invalid node name)."""
        if not valid_node_name(node_name):
            raise ValueError(f"invalid node name {node_name!r}: must be a DNS-1123 subdomain")
        return node_token(self.node_secret, node_name)


def node_credential_for(authn: Authenticator, node_name: str) -> str:
    """Mint the token a bootstrapping node receives in exchange for the join token."""
    return authn.node_credential(node_name)


_NO_SPACE = re.compile(r"\S+")  # \s is str.isspace()'s whitespace


def bearer_token(authorization_header: str | None) -> str | None:
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or not _NO_SPACE.fullmatch(token):
        return None
    return token


def request_verb(method: str, name: str | None, watch: bool = False) -> str:
    """The Kubernetes verb of an HTTP request (GET on a collection is list, …)."""
    m = method.upper()
    if m in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if name else "list"
    if m == "POST":
        return "create"
    if m == "PUT":
        return "update"
    if m == "PATCH":
        return "patch"
    if m == "DELETE":
        return "delete" if name else "deletecollection"
    return m.lower()


class Authorizer:
    """The decision on every request: the fixed rules (`authorize`: masters, nodes, the
    bootstrap identity), then each plugged authorizer (`extra`, e.g. RBAC) in order; the
    first that allows wins, none allowing is a 403."""

    def __init__(self) -> None:
        self.extra: list[RequestAuthorizer] = []

    def authorize(self, user: User, req: Request) -> bool:
        if authorize(user, req):
            return True
        return any(allowed(user, req) for allowed in self.extra)


def authorize(user: User, req: Request) -> bool:
    """The fixed rules alone (see `Authorizer` for the whole decision)."""
    groups = user.groups
    if MASTERS in groups:
        return True
    if NODES in groups and user.node_name and _node_allowed(user.node_name, req):
        return True
    return BOOTSTRAPPERS in groups and _bootstrap_allowed(req)


def _bootstrap_allowed(req: Request) -> bool:
    return req.verb == "create" and req.resource == NODE_CREDENTIALS and not req.subresource


def _node_allowed(node: str, req: Request) -> bool:
    verb, group, resource, sub = req.verb, req.group, req.resource, req.subresource
    if verb in READ_VERBS:
        if (group, resource) == ("coordination.k8s.io", "leases"):
            return verb == "get" and req.namespace == NODE_LEASE_NAMESPACE and req.name == node and sub == ""
        return (group, resource) in _NODE_READABLE and sub in _NODE_READABLE_SUBRESOURCES
    if group == "" and resource == "nodes":
        return verb in WRITE_VERBS and req.name == node and sub in ("", "status")
    if group == "" and resource == "pods":
        if req.bound_node != node:
            return False
        if verb in ("update", "patch"):
            return sub == "status"
        return verb == "delete" and sub == ""
    if group == "coordination.k8s.io" and resource == "leases":
        # its own heartbeat Lease, kube-node-lease/<node>
        return verb in WRITE_VERBS and req.namespace == NODE_LEASE_NAMESPACE and req.name == node and sub == ""
    if group in _EVENT_GROUPS and resource == "events":
        return verb in WRITE_VERBS and sub == ""
    return False
