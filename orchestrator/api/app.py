"""The HTTP API: Kubernetes REST paths over Starlette, in front of the registry.

One catch-all route parses `/api/v1/...` and `/apis/{group}/{version}/...` into a
`Target` (kind, namespace, name, subresource), authenticates the bearer token,
authorizes the request (admins, node identities, bootstrap tokens), and dispatches to the
registry. Errors leave as `metav1.Status` bodies; watches are newline-delimited JSON
streams that end when the client goes away or `timeoutSeconds` passes. Bodies and query
parameters are read strictly before anything acts on them (`requests.py`): bodies up to
3 MiB (413 beyond, the rest unread), JSON, YAML or Kubernetes protobuf by `Content-Type`
(415 otherwise; `protobuf.py`),
nesting and YAML aliases bounded, the expected top-level shape; unparsable parameters are
400 naming the parameter, and `ListOptions`/`DeleteOptions` combinations Kubernetes forbids
are 422.

What kubectl and the official clients rely on beyond plain REST:

* discovery (`/api`, `/apis`, group versions) and OpenAPI (`/openapi/v2`, `/openapi/v3`,
  see `openapi.py`); aggregated discovery is not served: the legacy documents answer
  with `Content-Type: application/json`, and clients fall back to them;
* content negotiation by `Accept` (see `tables.negotiate`): `as=Table` gives server-side
  printed tables for list, get and watch, `as=PartialObjectMetadata(List)` metadata only;
  a client that takes only `application/vnd.kubernetes.protobuf` gets objects, lists and
  Status bodies as protobuf (`requests.protobuf_response`); every other media type is
  answered with JSON, never 406;
* `fieldValidation=Strict` rejects unknown fields with 400 `strict decoding error`,
  `Warn` (the default, as in Kubernetes) drops them and returns `Warning` headers
  (`unknown field "spec.foo"`), `Ignore` drops them silently; creates and updates (of the
  object or its status) check the body, patches of every type the patched object
  (`Registry.patch`'s `check_fields`); the registry itself refuses unknown fields (422) to
  whoever writes without going through here;
* `dryRun=All` on every write (validated, defaulted, never stored);
* DELETE on a collection (deletecollection, with label/field selectors);
* paged lists (`limit`, `continue`; kubectl's `--chunk-size`): each page is listed at the
  first page's revision, the opaque token (Kubernetes' encoding) names that revision and
  the key to go on from, and `metadata.continue` / `remainingItemCount` are set on lists,
  Tables and metadata lists alike (`Registry.list`); a token whose revision has been
  compacted is 410 Expired, a malformed one 400. A first page (or whole list) asked for
  at another revision than the current one (`resourceVersionMatch=Exact`, or a
  `resourceVersion` with `limit`) is 410, one newer than the store 504 `Too large resource
  version`;
* server-side apply (`application/apply-patch+yaml`): a PATCH that creates the object
  when it is missing and otherwise merges it strategically.
* kinds served in a further version than the one stored (`kinds.CONVERTED`: autoscaling/v1
  HorizontalPodAutoscalers, stored as v2): every verb goes through
  `registry.converting.ConvertingRegistry` (`_registry_for`), which converts request bodies
  to the stored version and objects, lists and watch events back, so handlers, Tables and
  field validation (by the served version's schema) need nothing per kind.

The hot path (a GET of one object) does no repeated work: routing is one regular
expression that tells whether any route but the catch-all could take the path
(`ApiRouter`), a path's parse and an `Accept` header's negotiation are remembered
(bounded caches of pure functions), verified tokens are remembered by the authenticator,
requests without a query string skip query parsing, and a plain JSON GET answers with the
body the registry keeps for the object's revision (`Registry.get_json`: no decode, no
encode once it has been answered at that revision). The router hands the catch-all's
requests to `ApiServer._asgi` without Starlette's per-endpoint wrapping, and there an
admin's plain JSON GET of one object without parameters is answered on a short path
(`_plain_get`: the headers read once, no Request, no Response object) that answers exactly
as the general one and leaves it every other request. Every response body is encoded by
`registry.dumps` (`dumps` here).
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, Router, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__, errors
from ..errors import ApiError
from ..nodecerts import NodeCertError
from ..objects import Obj, managedfields
from ..objects.kinds import Kind, UnknownKind, by_kind, by_resource
from ..objects.managedfields import FieldManager
from ..pki import PKIError
from ..registry import Registry, apply_patch, dumps, nodepasswords
from ..registry.converting import ConvertingRegistry
from . import accessreview, auth, discovery, openapi, tables
from .requests import (
    APPLY_PATCH,
    MERGE_PATCH,
    OBJECT_MEDIA_TYPES,
    PATCH_MEDIA_TYPES,
    ListOptions,
    Query,
    check_media_type,
    decode,
    delete_options,
    list_options,
    media_type,
    protobuf_only,
    protobuf_response,
    read_body,
    require_object,
)

log = logging.getLogger("dockyard.api")

NODE_CREDENTIALS = "nodecredentials"
DOCKYARD_GROUP = "dockyard.io"
_NODE_CREDENTIALS = f"/apis/{DOCKYARD_GROUP}/v1/{NODE_CREDENTIALS}"
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


@dataclass(frozen=True)
class Target:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str = ""


def request_path(request: Request) -> str:
    """`request.url.path` without building the URL: the decoded path with the characters a
    URL cannot carry in its path escaped again, as Starlette's `URL` does."""
    return request_path_of(request.scope)


def request_path_of(scope: Scope) -> str:
    """`request_path` of a request's ASGI scope."""
    path: str = scope["path"]
    if "?" in path or "#" in path or "\\" in path:
        path = path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return path


CACHED_KEY_MAX = 512  # longer paths and Accept headers are parsed every time, never kept


def parse_path(path: str) -> Target:
    """Map a Kubernetes resource path to a Target; raises ApiError 404 for anything else.

    A pure function of the path, so the Targets (immutable) of paths of a sensible length
    are remembered (errors are not)."""
    if len(path) <= CACHED_KEY_MAX:
        return _parse_path_cached(path)
    return _parse_path(path)


def _parse_path(path: str) -> Target:
    seg = [s for s in path.split("/") if s]
    if len(seg) >= 2 and seg[0] == "api":
        group, version, rest = "", seg[1], seg[2:]
    elif len(seg) >= 3 and seg[0] == "apis":
        group, version, rest = seg[1], seg[2], seg[3:]
    else:
        raise errors.path_not_found()
    if not rest:
        raise errors.path_not_found()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        # namespaces/{ns}/{resource}/...: a namespaced resource (served or not), unless it
        # is a subresource of the namespace itself (status, finalize)
        namespace, rest = rest[1], rest[2:]
    try:
        kind = by_resource(group, version, rest[0])
    except UnknownKind:
        raise errors.resource_not_served(group, rest[0]) from None
    if len(rest) > 3:
        raise errors.path_not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in kind.subresources:
        raise errors.resource_not_served(group, f"{kind.resource}/{sub}")
    if kind.namespaced and namespace is None and name is not None:
        raise errors.path_not_found()
    return Target(kind, namespace, name, sub)


_NAMESPACE_SUBRESOURCES = frozenset(by_resource("", "v1", "namespaces").subresources)
_parse_path_cached = functools.lru_cache(maxsize=4096)(_parse_path)


def status_response(e: ApiError) -> Response:
    resp = Response(dumps(e.status()), status_code=e.code or 500, media_type="application/json")
    if e.code == 413:
        resp.headers["Connection"] = "close"  # the rest of the body is not read
    retry = (e.details or {}).get("retryAfterSeconds")
    if isinstance(retry, int) and retry > 0:
        resp.headers["Retry-After"] = str(retry)
    return resp


def ok(obj: Any, code: int = 200, warnings: list[str] | None = None) -> Response:
    resp = Response(dumps(obj), status_code=code, media_type="application/json")
    for w in warnings or []:
        resp.raw_headers.append((b"warning", warning_header(w)))
    return resp


_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


def warning_header(text: str) -> bytes:
    """A `Warning: 299 - "text"` header value (RFC 7234 quoting). What a header cannot carry
    (control characters) and what clients read differently (non-ASCII: latin-1 or UTF-8) is
    written as \\uXXXX, so a field name of any characters comes back readable."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    quoted = _NOT_PRINTABLE_ASCII.sub(lambda m: "".join(f"\\u{u:04x}" for u in _utf16(m.group())), quoted)
    return ('299 - "' + quoted + '"').encode("ascii")


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


FIELD_VALIDATION = ("", "Strict", "Warn", "Ignore")


def dry_run(request: Request) -> bool:
    """True for `dryRun=All`; any other value is a 400 as in Kubernetes."""
    values = request.query_params.getlist("dryRun")
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value "{v}": supported values: "All"')
    return bool(values)


def field_manager(request: Request) -> FieldManager:
    """The manager a write is recorded under in `managedFields`: the request's `fieldManager`,
    else the User-Agent's first word (`kubectl/v1.32.0 ...` -> `kubectl`), as in Kubernetes."""
    name = request.query_params.get("fieldManager") or managedfields.manager_from_user_agent(
        request.headers.get("user-agent", ""))
    return FieldManager(check_manager(name or "unknown"))


def check_manager(name: str) -> str:
    """A `fieldManager` as Kubernetes accepts it, else its 422."""
    problem = managedfields.manager_problem(name)
    if problem:
        raise errors.invalid("PatchOptions", "", [{
            "field": "fieldManager", "reason": "FieldValueInvalid", "message": f"Invalid value: {problem}"}],
            "meta.k8s.io")
    return name


def field_validation(mode: str, kind: Kind, obj: dict[str, Any]) -> list[str]:
    """Unknown fields of `obj` under a `fieldValidation` mode: `Strict` refuses them (400
    strict decoding error), `Warn` drops them and returns one warning each (kube-apiserver's
    text: `unknown field "spec.foo"`), `Ignore` drops them silently."""
    if mode == "Strict":
        unknown = openapi.unknown_paths(kind, obj)
        if unknown:
            raise strict_decoding_error(kind, unknown)
        return []
    removed = openapi.prune_unknown(kind, obj)
    return [f'unknown field "{p}"' for p in removed] if mode == "Warn" else []


def strict_decoding_error(kind: Kind, unknown: list[str]) -> ApiError:
    fields = ", ".join(f'unknown field "{p}"' for p in unknown)
    return errors.bad_request(
        f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: strict decoding error: {fields}'
    )


_UNREAD = object()


def check_list_revision(opts: ListOptions, listed: int) -> None:
    """The list answered is the store's current one: refuse what asks for another revision."""
    if opts.resource_version in ("", "0"):
        return
    rv = int(opts.resource_version)
    if rv > listed:
        raise errors.too_large_resource_version(rv, listed)
    exact = opts.resource_version_match == "Exact" or (opts.limit > 0 and not opts.resource_version_match)
    if exact and rv != listed:
        raise errors.gone("The resourceVersion for the provided list is too old.")


def check_patch_shape(body: Any, ctype: str) -> None:
    """A JSON patch is an array of operation objects; every other patch type is an object."""
    if ctype == "application/json-patch+json":
        if not isinstance(body, list):
            raise errors.bad_request("the request body must be a JSON array of patch operations "
                                     f"({ctype}), not {_shape(body)}")
        for i, op in enumerate(body):
            if not isinstance(op, dict):
                raise errors.bad_request(f"the JSON patch operation [{i}] must be an object, not {_shape(op)}")
        return
    if ctype in PATCH_MEDIA_TYPES:
        require_object(body, f"a patch of type {ctype}")


def check_scale(body: Any) -> dict[str, Any]:
    body = require_object(body, "a Scale")
    for name in ("metadata", "spec"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise errors.bad_request(f"the request body is not a valid Scale: {name} must be an object, "
                                     f"not {_shape(body[name])}")
    rv = (body.get("metadata") or {}).get("resourceVersion")
    if rv is not None and not isinstance(rv, str):
        raise errors.bad_request("the request body is not a valid Scale: metadata.resourceVersion must be a string")
    return body


def _shape(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")


_negotiate_cached = functools.lru_cache(maxsize=256)(tables.negotiate)


def negotiate(accept: str | None) -> tables.Wanted:
    """`tables.negotiate`, remembered for Accept headers of a sensible length (a pure
    function; Wanted is immutable)."""
    if accept is None or len(accept) <= CACHED_KEY_MAX:
        return _negotiate_cached(accept)
    return tables.negotiate(accept)


_NAMED_GROUP = re.compile(r"\(\?P<[^>]+>")


class ApiRouter(Router):
    """Starlette's router, routing as it does, with the common case precompiled: the last
    route is the catch-all, and one regular expression made of every other HTTP route's
    tells whether one of them could take a path. When none can, the request goes straight
    to the catch-all, where Starlette would have tried each route in turn to end up there.

    `direct`, when given, is the catch-all's endpoint as an ASGI application: a request the
    catch-all accepts (by its methods) is handed to it without Starlette's per-request
    wrapping of the endpoint (a Request, and the exception-handler layer, which has nothing
    to do for an endpoint that answers every error itself)."""

    def __init__(self, routes: Sequence[BaseRoute], direct: ASGIApp | None = None) -> None:
        super().__init__(routes=list(routes))
        self.direct = direct
        self._compiled_for: tuple[int, ...] = ()
        self._others: re.Pattern[str] | None = None
        self._catch_all: Route | None = None

    def _compile(self) -> None:
        routes = list(self.routes)
        self._compiled_for = tuple(id(r) for r in routes)
        self._others, self._catch_all = None, None
        if not routes or not isinstance(routes[-1], Route) or routes[-1].path != "/{path:path}":
            return
        patterns = []
        for r in routes[:-1]:
            if isinstance(r, WebSocketRoute):
                continue  # never matches an HTTP request
            if not isinstance(r, Route):
                return  # a Mount or a Host: route as Starlette does
            patterns.append("(?:" + _NAMED_GROUP.sub("(?:", r.path_regex.pattern) + ")")
        self._others = re.compile("|".join(patterns) or "(?!)")
        self._catch_all = routes[-1]

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            routes = self.routes
            if len(routes) != len(self._compiled_for) or (routes and id(routes[-1]) != self._compiled_for[-1]):
                self._compile()  # routes were added (the only change made to them)
            catch_all = self._catch_all
            if catch_all is not None and self._others is not None and not self._others.match(scope["path"]):
                scope.setdefault("router", self)
                scope["route"] = catch_all
                scope["endpoint"] = catch_all.endpoint
                scope["path_params"] = {**scope.get("path_params", {}), "path": scope["path"][1:]}
                direct = self.direct
                if direct is not None and (not catch_all.methods or scope["method"] in catch_all.methods):
                    await direct(scope, receive, send)
                else:
                    await catch_all.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)


class ApiServer:
    """Holds what the handlers need; `app` is the ASGI application."""

    def __init__(
        self,
        registry: Registry,
        authenticator: auth.Authenticator,
        ca_pem: bytes,
        mint_node_token: Callable[[str], str],
        extra_routes: list[BaseRoute] | None = None,
        sign_serving_csr: Callable[[str, bytes], bytes] | None = None,
    ) -> None:
        self.registry = registry
        self._converting = ConvertingRegistry(registry)  # for kinds served in a version not stored
        self.authn = authenticator
        self.authz = auth.Authorizer()  # the fixed rules, then whatever is plugged into `authz.extra`
        self.ca_pem = ca_pem
        self.mint_node_token = mint_node_token
        self.sign_serving_csr = sign_serving_csr  # (node name, CSR PEM) -> certificate PEM
        self.request_hooks: list[Callable[[str, str, int, float], None]] = []
        routes = [
            Route("/version", self.version),
            Route("/version/", self.version),
            Route("/healthz", self.health),
            Route("/readyz", self.ready),
            Route("/livez", self.health),
            Route("/cacerts", self.cacerts),
            *(extra_routes or []),
            Route("/{path:path}", self.dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
        self.app = Starlette()
        self.app.router = ApiRouter(routes, direct=self._asgi)

    def add_routes(self, routes: list[BaseRoute]) -> None:
        """Serve more specific routes (e.g. pods/log, pods/exec) ahead of the catch-all."""
        self.app.router.routes[-1:-1] = routes

    # -- unauthenticated endpoints ------------------------------------------------------

    async def version(self, request: Request) -> Response:
        return JSONResponse({
            "major": "1",
            "minor": "32",
            "gitVersion": f"v1.32.0+dockyard-{__version__}",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": "python",
            "compiler": "cpython",
            "platform": "linux/amd64",
        })

    async def health(self, request: Request) -> Response:
        try:
            self.registry.store.current_revision()
        except Exception as e:  # the store is the only dependency worth checking
            return PlainTextResponse(f"store: {e}", status_code=500)
        return PlainTextResponse("ok")

    async def ready(self, request: Request) -> Response:
        """Like /healthz, and not ready while the store says it cannot take writes (`health()`)."""
        store = self.registry.store
        try:
            store.current_revision()
            check = getattr(store, "health", None)
            reason = check() if callable(check) else None
        except Exception as e:
            return PlainTextResponse(f"store: {e}", status_code=500)
        if reason:
            return PlainTextResponse(f"store: {reason}", status_code=500)
        return PlainTextResponse("ok")

    async def cacerts(self, request: Request) -> Response:
        return Response(self.ca_pem, media_type="application/x-pem-file")

    # -- everything else ----------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`dispatch` as an ASGI application (the router's `direct` way to the catch-all),
        with the hottest request answered on a short path first (`_plain_get`)."""
        if scope["method"] == "GET" and not scope.get("query_string"):
            started = time.monotonic()
            try:
                body = self._plain_get(scope)
            except ApiError as e:  # as `dispatch` answers it: the general path would fail alike
                self._observed("GET", request_path_of(scope), e.code, started)
                await status_response(e)(scope, receive, send)
                return
            except Exception:  # unforeseen: the general path answers (and logs) it
                body = None
            if body is not None:
                self._observed("GET", request_path_of(scope), 200, started)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", str(len(body)).encode()), _JSON_CONTENT_TYPE]})
                await send({"type": "http.response.body", "body": body})
                return
        response = await self.dispatch(Request(scope, receive, send))
        await response(scope, receive, send)

    def _patch_scale(self, request: Request, kind: Kind, namespace: str, name: str, patch: Any,
                     dry: bool) -> Obj:
        """A patch of `/scale`: the registry applies it to the current Scale (again after a
        conflict with a concurrent write, `Registry.patch_scale`)."""
        ctype = self._patch_type(request)
        check_patch_shape(patch, ctype)
        return self.registry.patch_scale(kind, namespace, name,
                                         lambda current: check_scale(apply_patch(kind, current, patch, ctype)),
                                         dry_run=dry, manager=field_manager(request))

    def _plain_get(self, scope: Scope) -> bytes | None:
        """The body of an admin's plain JSON GET of one object, as `_dispatch` and `_serve`
        answer it (`ok` of `Registry.get_json`), or None for any other request (the general
        path takes it). Raises the ApiError of a failed read, as the general path would."""
        authorization = accept = None
        for key, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if key == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif key == b"accept" and accept is None:
                accept = value.decode("latin-1")
        user = self.authn.authenticate(authorization)
        if user is None or user.node_name is not None or auth.MASTERS not in user.groups:
            return None  # unauthenticated (401), or a caller whose access is checked per request
        path = request_path_of(scope).rstrip("/")
        if path.count("/") <= 3 or "//" in path or path.startswith("/openapi") or path.startswith(_NODE_CREDENTIALS):
            return None  # perhaps discovery, OpenAPI or node credentials
        try:
            t = parse_path(path)
        except ApiError:
            return None
        if not t.name or t.subresource:
            return None
        wanted = negotiate(accept)
        if wanted.table or wanted.partial or protobuf_only(accept):
            return None
        return self._registry_for(t.kind).get_json(t.kind, t.namespace, t.name)

    def _registry_for(self, kind: Kind) -> Registry | ConvertingRegistry:
        """The registry for a served kind; one that converts for a kind served in another
        version than the stored one (`Kind.conversion`: autoscaling/v1 HorizontalPodAutoscalers)."""
        return self.registry if kind.conversion is None else self._converting

    def _observed(self, verb: str, path: str, code: int, started: float) -> None:
        seconds = time.monotonic() - started
        for hook in self.request_hooks:
            try:
                hook(verb, path, code, seconds)
            except Exception:  # observing a request must never fail it
                log.exception("request hook failed")

    async def dispatch(self, request: Request) -> Response:
        started = time.monotonic()
        code = 500
        verb = request.scope["method"]
        path = request_path(request)
        accept = request.headers.get("accept")
        try:
            resp = protobuf_response(accept, await self._dispatch(request, path))
            code = resp.status_code
            return resp
        except ApiError as e:
            code = e.code
            return protobuf_response(accept, status_response(e))
        except Exception:
            log.exception("internal error serving %s %s", request.method, path)
            return status_response(ApiError(500, "InternalError", "an internal error occurred; see the master's log"))
        finally:
            self._observed(verb, path, code, started)

    async def _dispatch(self, request: Request, path: str) -> Response:
        method = request.scope["method"]
        user = self.authn.authenticate(request.headers.get("authorization"))
        if user is None:
            raise errors.unauthorized()
        path = path.rstrip("/")
        if method == "GET":
            # discovery paths have at most three segments: most paths need no look
            doc = self._discovery(path) if path.count("/") <= 3 or "//" in path else None
            if doc is not None:
                return ok(doc)
            if path == "/openapi" or path.startswith("/openapi/"):
                return self._openapi(path, request.headers.get("accept", ""))
        if path == f"/apis/{DOCKYARD_GROUP}/v1/{NODE_CREDENTIALS}":
            return await self._node_credentials(request, user)
        if path == accessreview.PATH:
            return await self._access_review(request, user)
        target = parse_path(path)
        verb = "get" if method == "GET" and target.name else self._verb(request, target)
        bound_node = None
        if user.node_name is not None and target.kind.kind == "Pod" and target.name and target.namespace:
            pod = self.registry.try_get(target.kind, target.namespace, target.name)
            if pod is None:
                raise errors.not_found(target.kind.resource, target.name)
            bound_node = pod.get("spec", {}).get("nodeName")
        name = target.name
        if verb == "create" and not name:
            try:
                body = await self._body(request)
            except ApiError:
                body = None  # answered once authorized: the caller may not even create here
            meta = body.get("metadata") if isinstance(body, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get("name"), str):
                name = meta["name"]
        if auth.MASTERS not in user.groups or user.node_name is not None:  # else allowed: no Request to build
            areq = auth.Request(
                verb=verb,
                group=target.kind.group,
                resource=target.kind.resource,
                namespace=target.namespace,
                name=name,
                subresource=target.subresource,
                bound_node=bound_node,
            )
            if not self.authz.authorize(user, areq) or not self._node_may_read(user, target, verb):
                raise errors.forbidden(user.name, verb, target.kind.resource, target.name or "")
        return await self._serve(request, target, verb)

    async def _evict(self, request: Request, t: Target) -> Response:
        """pods/eviction (policy/v1 Eviction, what `kubectl drain` posts): the pod is deleted with
        the Eviction's `deleteOptions`, gracefully, as Kubernetes does when no
        PodDisruptionBudget stands in the way (Dockyard serves none yet)."""
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on pods/eviction")
        body = require_object(await self._body(request), "an Eviction")
        meta = body.get("metadata")
        named = meta.get("name") if isinstance(meta, dict) else None
        if named not in (None, "", t.name):
            raise errors.bad_request(f"name in URL does not match name in Eviction object: {t.name} != {named}")
        opts = delete_options(Query(request), body.get("deleteOptions"), dry_run(request))
        self.registry.delete(t.kind, t.namespace, t.name or "", opts.grace_period, opts.propagation, opts.uid,
                             opts.resource_version, dry_run=opts.dry_run)
        return ok({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)

    async def _access_review(self, request: Request, user: auth.User) -> Response:
        """`kubectl auth can-i`: a SelfSubjectAccessReview answered by the authorizer itself."""
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on selfsubjectaccessreviews")
        subject = accessreview.impersonated(user, request.headers.get("impersonate-user"),
                                            request.headers.getlist("impersonate-group"))
        pods = by_kind("v1", "Pod")

        def bound_node(namespace: str, name: str) -> str | None:
            pod = self.registry.try_get(pods, namespace or "default", name)
            return None if pod is None else (pod.get("spec") or {}).get("nodeName")

        return ok(accessreview.review(subject, await self._body(request), bound_node, self.authz), 201)

    def _node_may_read(self, user: auth.User, target: Target, verb: str) -> bool:
        """Nodes read a Secret or ConfigMap only by name, and only one a pod bound to them uses."""
        if user.node_name is None or target.kind.resource not in ("secrets", "configmaps"):
            return True
        if verb != "get" or not target.name or not target.namespace:
            return False
        pods = self.registry.list(parse_path("/api/v1/pods").kind, target.namespace,
                                  field_selector=f"spec.nodeName={user.node_name}")["items"]
        return any(target.name in pod_references(p, target.kind.resource) for p in pods)

    def _discovery(self, path: str) -> dict[str, Any] | None:
        if path == "/api":
            return discovery.api_versions()
        if path == "/apis":
            return discovery.api_group_list()
        seg = [s for s in path.split("/") if s]
        if len(seg) == 2 and seg[0] == "api":
            return discovery.resource_list("", seg[1])
        if len(seg) == 3 and seg[0] == "apis":
            return discovery.resource_list(seg[1], seg[2])
        return None

    @staticmethod
    def _openapi(path: str, accept: str) -> Response:
        if path == "/openapi/v2":
            if "protobuf" in accept:
                return Response(openapi.V2_PROTOBUF, media_type=openapi.V2_PROTOBUF_MEDIA)
            return Response(openapi.v2_document(), media_type="application/json")
        if path == "/openapi/v3":
            return ok(openapi.v3_index())
        seg = [s for s in path.split("/") if s][2:]
        doc = None
        if len(seg) == 2 and seg[0] == "api":
            doc = openapi.v3_document("", seg[1])
        elif len(seg) == 3 and seg[0] == "apis":
            doc = openapi.v3_document(seg[1], seg[2])
        if doc is None:
            raise errors.path_not_found()
        return Response(doc, media_type="application/json")

    @staticmethod
    def _verb(request: Request, target: Target) -> str:
        m = request.method
        if m == "GET":
            if target.name:
                return "get"
            return "watch" if Query(request).flag("watch") else "list"
        if m == "DELETE" and not target.name:
            return "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[m]

    async def _body(self, request: Request) -> Any:
        """The decoded request body (None when empty): read once, kept on the request."""
        cached = getattr(request.state, "decoded_body", _UNREAD)
        if cached is _UNREAD:
            try:
                cached = await self._read_body(request)
            except ApiError as e:
                cached = e
            request.state.decoded_body = cached
        if isinstance(cached, ApiError):
            raise cached
        return cached

    @staticmethod
    async def _read_body(request: Request) -> Any:
        header = request.headers.get("content-type")
        accepted: tuple[str, ...]
        if request.method == "PATCH":
            mtype, accepted = media_type(header) or MERGE_PATCH, PATCH_MEDIA_TYPES
        else:
            mtype, accepted = media_type(header) or "application/json", OBJECT_MEDIA_TYPES
        if request.method in ("POST", "PUT", "PATCH"):
            check_media_type(mtype, accepted)
        raw = await read_body(request)
        if not raw:
            return None
        check_media_type(mtype, accepted)
        return await decode(raw, mtype)

    async def _serve(self, request: Request, t: Target, verb: str) -> Response:
        reg = self._registry_for(t.kind)
        kind = t.kind
        wanted = negotiate(request.headers.get("accept"))
        if verb == "get" and not t.subresource and not request.scope.get("query_string"):
            # the hottest request, in short: no parameters to check, nothing but the object
            if not (wanted.table or wanted.partial):  # the object as it is: its JSON as kept
                return Response(reg.get_json(kind, t.namespace, t.name or ""), media_type="application/json")
            return ok(self._present_object(kind, reg.get(kind, t.namespace, t.name or ""), wanted, "Metadata"))
        q = Query(request)
        include = q.raw("includeObject") or "Metadata"
        if include not in tables.INCLUDE_OBJECT:
            raise errors.bad_request(f"includeObject must be one of {', '.join(tables.INCLUDE_OBJECT)}")
        if verb == "watch":
            return self._watch_response(request, t, list_options(q, watch=True), wanted, include)
        if verb == "list":
            opts = list_options(q, watch=False)
            out = reg.list(kind, t.namespace, opts.label_selector, opts.field_selector, limit=opts.limit,
                           continue_=opts.continue_)
            if not opts.continue_:
                check_list_revision(opts, int(out["metadata"]["resourceVersion"]))
            return ok(self._present_list(kind, out, wanted, include))
        if verb == "get":
            q.resource_version()
        if t.subresource == "scale":
            if verb == "get":
                return ok(reg.get_scale(kind, t.namespace or "", t.name or ""))
            if verb not in ("update", "patch"):
                raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on {kind.resource}/scale")
            body = await self._body(request)
            dry = dry_run(request)
            if verb == "patch":
                return ok(self._patch_scale(request, kind, t.namespace or "", t.name or "", body, dry))
            body = check_scale(body)
            return ok(reg.update_scale(kind, t.namespace or "", t.name or "", body, dry_run=dry,
                                       manager=field_manager(request)))
        if t.subresource == "binding":
            if verb != "create":
                raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on pods/binding")
            body = require_object(await self._body(request), "a Binding")
            target = body.get("target")
            node = target.get("name") if isinstance(target, dict) else None
            if not isinstance(node, str) or not node:
                raise errors.bad_request("a Binding with target.name is required")
            uid = (body.get("metadata") or {}).get("uid") if isinstance(body.get("metadata"), dict) else None
            reg.bind(t.namespace or "", t.name or "", node, uid if isinstance(uid, str) and uid else None)
            return ok({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)
        if t.subresource == "eviction":
            return await self._evict(request, t)
        if t.subresource == "finalize":
            if verb != "update":
                raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on namespaces/finalize")
            body = require_object(await self._body(request), "a Namespace")
            spec = body.get("spec")
            finalizers = (spec.get("finalizers") if isinstance(spec, dict) else None) or []
            if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
                raise errors.bad_request("spec.finalizers of a Namespace must be a list of strings")
            reg.finalize_namespace(t.name or "", finalizers)
            remaining = reg.try_get(kind, None, t.name or "")
            if remaining is not None:
                return ok(remaining)
            return ok({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                       "details": {"name": t.name, "kind": "namespaces"}})
        if t.subresource in ("log", "exec"):
            raise ApiError(501, "NotImplemented", f"pods/{t.subresource} is not served by this master yet")
        if verb == "get":
            if not (wanted.table or wanted.partial):
                return Response(reg.get_json(kind, t.namespace, t.name or ""), media_type="application/json")
            return ok(self._present_object(kind, reg.get(kind, t.namespace, t.name or ""), wanted, include))
        if verb == "create":
            if t.name:
                raise ApiError(405, "MethodNotAllowed", "POST to a named resource is not allowed")
            body = require_object(await self._body(request), f"a {kind.kind}")
            warnings = self._field_validation(request, kind, body)
            return ok(reg.create(kind, t.namespace, body, dry_run=dry_run(request), manager=field_manager(request)),
                      201, warnings)
        if verb == "update":
            body = require_object(await self._body(request), f"a {kind.kind}")
            warnings = self._field_validation(request, kind, body)
            return ok(reg.update(kind, t.namespace, t.name or "", body, t.subresource, dry_run=dry_run(request),
                                 manager=field_manager(request)), 200, warnings)
        if verb == "patch":
            return await self._patch(request, t)
        if verb in ("delete", "deletecollection"):
            return await self._delete(request, t)
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed here")

    @staticmethod
    def _present_object(kind: Kind, obj: dict[str, Any], wanted: tables.Wanted, include: str) -> dict[str, Any]:
        if wanted.table:
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            return tables.table(kind, [obj], rv, include, version=wanted.version)
        if wanted.partial:
            return tables.partial_metadata(obj, wanted.version)
        return obj

    @staticmethod
    def _present_list(kind: Kind, out: dict[str, Any], wanted: tables.Wanted, include: str) -> dict[str, Any]:
        meta = out.get("metadata") or {}
        rv = meta.get("resourceVersion")
        if wanted.table:
            presented = tables.table(kind, out["items"], rv, include, version=wanted.version)
        elif wanted.partial:
            presented = tables.partial_list(out["items"], rv, wanted.version)
        else:
            return out
        # a page of a paged list: the Table (or metadata list) carries the list's paging fields
        presented["metadata"].update((k, meta[k]) for k in ("continue", "remainingItemCount") if k in meta)
        return presented

    @staticmethod
    def _field_mode(request: Request) -> str:
        """The request's `fieldValidation`; `Warn` when not given, as in Kubernetes."""
        mode = request.query_params.get("fieldValidation", "")
        if mode not in FIELD_VALIDATION:
            raise errors.bad_request(
                f'fieldValidation must be one of "Strict", "Warn" or "Ignore", not "{mode}"')
        return mode or "Warn"

    @classmethod
    def _field_validation(cls, request: Request, kind: Kind, body: Any) -> list[str]:
        """Apply `fieldValidation` to a request body (a whole object); returns the warnings
        to send back."""
        mode = cls._field_mode(request)
        if not isinstance(body, dict):
            return []
        return field_validation(mode, kind, body)

    @staticmethod
    def _patch_type(request: Request) -> str:
        return media_type(request.headers.get("content-type")) or MERGE_PATCH

    @staticmethod
    def _apply_manager(request: Request, body: Any, force: bool) -> FieldManager:
        """The manager of a server-side apply: `fieldManager` is required, as in Kubernetes."""
        name = request.query_params.get("fieldManager")
        if not name:
            raise errors.invalid("PatchOptions", "", [{
                "field": "fieldManager", "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch"}], "meta.k8s.io")
        config = copy.deepcopy(body) if isinstance(body, dict) else {}
        return FieldManager(check_manager(name), "Apply", config, force)

    async def _patch(self, request: Request, t: Target) -> Response:
        reg = self._registry_for(t.kind)
        kind = t.kind
        body = await self._body(request)
        ctype = self._patch_type(request)
        check_patch_shape(body, ctype)
        force = Query(request).flag("force")
        if force is not None and ctype != APPLY_PATCH:
            raise errors.invalid("PatchOptions", "", [{
                "field": "force", "reason": "FieldValueForbidden",
                "message": "Forbidden: may not be specified for non-apply patch"}], "meta.k8s.io")
        mode = self._field_mode(request)
        dry = dry_run(request)
        manager = field_manager(request)
        if ctype == APPLY_PATCH:
            manager = self._apply_manager(request, body, bool(force))
        if ctype == APPLY_PATCH and not t.subresource:
            meta = body.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise errors.bad_request("metadata must be an object")
            if meta.get("name") not in (None, t.name):
                raise errors.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({t.name})")
            if reg.try_get(kind, t.namespace, t.name or "") is None:
                meta["name"] = t.name
                created = copy.deepcopy(body)  # the patch itself is merged below if this create loses a race
                warnings = field_validation(mode, kind, created)
                try:
                    return ok(reg.create(kind, t.namespace, created, dry_run=dry, manager=manager), 201, warnings)
                except ApiError as e:
                    if e.reason != "AlreadyExists":
                        raise  # else created concurrently: merge into it below
        warnings = []

        def check_fields(patched: Obj) -> None:
            # the patched object, as the API server validates fields (each retry anew)
            warnings[:] = field_validation(mode, kind, patched)

        patched = reg.patch(kind, t.namespace, t.name or "", body, ctype, t.subresource, dry_run=dry,
                            check_fields=check_fields, manager=manager)
        return ok(patched, 200, warnings)

    async def _delete(self, request: Request, t: Target) -> Response:
        reg = self._registry_for(t.kind)
        q = Query(request)
        listing = list_options(q, watch=False) if not t.name else None
        if listing is not None and listing.continue_:
            # a collection is deleted whole: a token names a page of a list this delete does not make
            raise errors.gone("The provided continue parameter is too old to display a consistent list result. "
                              "You can start a new list without the continue parameter.")
        opts = delete_options(q, await self._body(request), dry_run(request))
        if listing is None:
            return ok(reg.delete(t.kind, t.namespace, t.name or "", opts.grace_period, opts.propagation, opts.uid,
                                 opts.resource_version, dry_run=opts.dry_run))
        listed = reg.list(t.kind, t.namespace, listing.label_selector, listing.field_selector)
        deleted = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            try:
                deleted.append(reg.delete(t.kind, meta.get("namespace"), meta["name"], opts.grace_period,
                                          opts.propagation, dry_run=opts.dry_run))
            except ApiError as e:
                if e.reason != "NotFound":
                    raise
        return ok({**listed, "items": deleted})

    def _watch_response(self, request: Request, t: Target, opts: ListOptions, wanted: tables.Wanted | None = None,
                        include: str = "Metadata") -> Response:
        field_selector = opts.field_selector
        if t.name:
            field_selector = f"metadata.name={t.name}" + (f",{field_selector}" if field_selector else "")
        events = self._registry_for(t.kind).watch(
            t.kind,
            t.namespace,
            opts.resource_version or None,
            opts.label_selector,
            field_selector,
            float(opts.timeout_seconds) if opts.timeout_seconds else None,
            opts.allow_bookmarks,
        )
        kind = t.kind
        want = wanted or tables.Wanted()

        def present(ev: dict[str, Any], first: bool) -> dict[str, Any]:
            obj = ev.get("object") or {}
            if ev.get("type") == "ERROR" or not (want.table or want.partial):
                return ev
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if want.partial:
                return {**ev, "object": tables.partial_metadata(obj, want.version)}
            if ev.get("type") == "BOOKMARK":
                return {**ev, "object": tables.table(kind, [], rv, include, version=want.version,
                                                     column_definitions=False)}
            # column definitions go with the first event only; clients reuse them
            return {**ev, "object": tables.table(kind, [obj], rv, include, version=want.version,
                                                 column_definitions=first)}

        async def stream() -> AsyncIterator[bytes]:
            first = True
            try:
                async for ev in events:
                    out = present(ev, first)
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        first = False
                    yield dumps(out) + b"\n"
            except ApiError as e:
                yield dumps({"type": "ERROR", "object": e.status()}) + b"\n"
            except Exception:  # the stream has started: end it with a Status rather than cut it
                log.exception("internal error serving a watch on %s", request_path(request))
                err = ApiError(500, "InternalError", "an internal error occurred; see the master's log")
                yield dumps({"type": "ERROR", "object": err.status()}) + b"\n"

        return StreamingResponse(stream(), media_type="application/json",
                                 headers={"Transfer-Encoding": "chunked"})

    async def _node_credentials(self, request: Request, user: auth.User) -> Response:
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "only POST is allowed on nodecredentials")
        areq = auth.Request(verb="create", group=DOCKYARD_GROUP, resource=NODE_CREDENTIALS,
                            namespace=None, name=None)
        if not self.authz.authorize(user, areq) and "system:masters" not in user.groups:
            raise errors.forbidden(user.name, "create", NODE_CREDENTIALS)
        body = require_object(await self._body(request), "a NodeCredential")
        spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
        name = spec.get("nodeName")
        if not isinstance(name, str) or not name:
            raise errors.invalid("NodeCredential", "", [{"field": "spec.nodeName", "reason": "FieldValueRequired",
                                                          "message": "Required value"}], DOCKYARD_GROUP)
        password = spec.get("password")
        if not isinstance(password, str) or len(password) < nodepasswords.MIN_LENGTH:
            raise errors.invalid("NodeCredential", name, [{
                "field": "spec.password", "reason": "FieldValueRequired",
                "message": f"Required value: the agent's own random node password "
                           f"(at least {nodepasswords.MIN_LENGTH} characters)"}], DOCKYARD_GROUP)
        try:
            token = self.mint_node_token(name)
        except (ValueError, PKIError) as e:
            raise errors.invalid("NodeCredential", name, [{"field": "spec.nodeName", "reason": "FieldValueInvalid",
                                                            "message": str(e)}], DOCKYARD_GROUP) from None
        csr = spec.get("servingCSR")
        if csr is not None and (not isinstance(csr, str) or self.sign_serving_csr is None):
            raise errors.invalid("NodeCredential", name, [{
                "field": "spec.servingCSR", "reason": "FieldValueInvalid",
                "message": "must be a PEM certificate signing request" if self.sign_serving_csr
                else "this master does not sign serving certificates"}], DOCKYARD_GROUP)
        nodepasswords.bind(self.registry, name, password)
        status: dict[str, Any] = {"token": token}
        if csr is not None and self.sign_serving_csr is not None:
            try:
                status["servingCertificate"] = self.sign_serving_csr(name, csr.encode()).decode()
            except NodeCertError as e:
                raise errors.invalid("NodeCredential", name, [{"field": "spec.servingCSR", "reason": "FieldValueInvalid",
                                                                "message": str(e)}], DOCKYARD_GROUP) from None
        log.info("issued node credential", extra={"node": name})
        return ok({"apiVersion": f"{DOCKYARD_GROUP}/v1", "kind": "NodeCredential", "spec": {"nodeName": name},
                   "status": status}, 201)


def pod_references(pod: dict[str, Any], resource: str) -> set[str]:
    """Names of the Secrets or ConfigMaps (`resource`) a pod uses: env, envFrom and volumes."""
    secret = resource == "secrets"
    key_ref, from_ref = ("secretKeyRef", "secretRef") if secret else ("configMapKeyRef", "configMapRef")
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get(key_ref) or {}
            names.add(ref.get("name", ""))
        for e in c.get("envFrom") or []:
            names.add((e.get(from_ref) or {}).get("name", ""))
    for v in spec.get("volumes") or []:
        sources = [v, *((v.get("projected") or {}).get("sources") or [])]
        for src in sources:
            if secret:
                names.add((src.get("secret") or {}).get("secretName") or (src.get("secret") or {}).get("name", ""))
            else:
                names.add((src.get("configMap") or {}).get("name", ""))
    for ref in spec.get("imagePullSecrets") or [] if secret else []:
        names.add(ref.get("name", ""))
    names.discard("")
    return names
