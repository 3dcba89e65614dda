"""Reading what a client sends, strictly, before anything acts on it.

Everything here raises `ApiError` with the code and reason Kubernetes answers with, and
names the query parameter or body field at fault:

* bodies (`read_body`, `decode_body`): at most `MAX_BODY_BYTES` are read (413
  RequestEntityTooLarge, stopped at the limit, never read whole first); the media type must
  be one the request takes (415 UnsupportedMediaType listing what is accepted); JSON and
  YAML are decoded with bounded nesting (`MAX_DEPTH`) and bounded YAML alias expansion, and
  yield plain JSON values only (no NaN or Infinity, no YAML timestamps, sets or binaries);
  Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`, objects and
  DeleteOptions, not patches) are decoded by `protobuf.py` into the very dict the JSON
  body of the same object gives, a malformed one is 400 naming what is wrong;
* what the client asked to be answered in (`protobuf_only`, `protobuf_response`): a client
  that accepts only protobuf gets objects, lists and Status bodies of the kinds with a
  protobuf table as protobuf; everything else (Tables, discovery, watches) stays JSON;
* query parameters (`Query`): integers and booleans parsed as Go's `strconv` does,
  `resourceVersion` as an unsigned integer, label and field selectors, `continue` tokens;
  `list_options` and `delete_options` add the semantic checks of `ListOptions` and
  `DeleteOptions` (422 Invalid, as Kubernetes' option validation answers).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from .. import errors
from ..errors import ApiError
from ..objects import selectors
from ..registry import json_type
from ..registry.generic import decode_continue
from . import protobuf

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's --max-request-body-bytes default
MAX_DEPTH = 100  # levels of nested objects and arrays in a request body
YAML_INLINE_BYTES = 16 * 1024  # larger YAML bodies are parsed in a worker thread
PROTOBUF_INLINE_BYTES = 64 * 1024  # larger protobuf bodies are decoded in a worker thread

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

OBJECT_MEDIA_TYPES = (JSON, YAML, PROTOBUF)
PATCH_MEDIA_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)
YAML_MEDIA_TYPES = (YAML, APPLY_PATCH)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")
_UINT_RE = re.compile(r"[0-9]+")
# strconv.ParseBool
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

META_GROUP = "meta.k8s.io"
RV_MATCH = ("NotOlderThan", "Exact")
PROPAGATION = ("Foreground", "Background", "Orphan")


def _quote(value: str, limit: int = 100) -> str:
    """`value` quoted for a message (Go's %q, shortened)."""
    if len(value) > limit:
        value = value[:limit] + "..."
    return json.dumps(value)


def _type_name(value: Any) -> str:
    """`json_type` with its article: "an object", "a string", "null"."""
    t = json_type(value)
    if t == "null":
        return t
    return f"{'an' if t[0] in 'aeiou' else 'a'} {t}"


# -- bodies -------------------------------------------------------------------------------


def media_type(header: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters ("" if none)."""
    return (header or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing (413) to read more than `limit` bytes of it."""
    declared = request.headers.get("content-length")
    if declared is not None and _UINT_RE.fullmatch(declared.strip()) and int(declared) > limit:
        raise errors.request_entity_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise errors.request_entity_too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise errors.bad_request("the client went away while sending the request body") from None
    return b"".join(chunks)


def check_media_type(mtype: str, accepted: Sequence[str]) -> None:
    """415 unless `mtype` is one of `accepted`."""
    if mtype in accepted:
        return
    raise errors.unsupported_media_type(mtype, accepted)


class BodyError(ValueError):
    """A body that decodes but is not a plain, bounded JSON value."""


async def decode(raw: bytes, mtype: str) -> Any:
    """`decode_body`, off the event loop for YAML of some size (the YAML parser is slow)."""
    if mtype in YAML_MEDIA_TYPES and len(raw) > YAML_INLINE_BYTES:
        return await asyncio.to_thread(decode_body, raw, mtype)
    if mtype == PROTOBUF and len(raw) > PROTOBUF_INLINE_BYTES:
        return await asyncio.to_thread(decode_body, raw, mtype)
    return decode_body(raw, mtype)


def _looks_like_json(raw: bytes) -> bool:
    return raw.lstrip()[:1] in (b"{", b"[")


def decode_body(raw: bytes, mtype: str) -> Any:
    """Decode a JSON, YAML or protobuf body (by media type) into plain JSON values; 400 when
    it is not.

    A YAML body that is JSON (what kubectl sends as an apply patch) is read as JSON, as
    YAML-to-JSON conversion would read it (`1e3` is a number), and much faster.
    """
    if mtype == PROTOBUF:
        return decode_protobuf(raw)
    yaml_body = mtype in YAML_MEDIA_TYPES
    what = "YAML" if yaml_body else "JSON"
    try:
        value = _load(raw, yaml_body)
        check_value(value)
    except RecursionError:
        raise errors.bad_request(
            f"the request body is not valid {what}: nested more than {MAX_DEPTH} levels deep") from None
    except BodyError as e:
        raise errors.bad_request(f"the request body is not valid {what}: {e}") from None
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the request body is not valid {what}: {e}") from None
    return value


def decode_protobuf(raw: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf body (`k8s\\x00` + runtime.Unknown) as the JSON object it
    encodes; 400 BadRequest naming what is wrong when it is malformed."""
    what = "the request body is not a valid Kubernetes protobuf message"
    try:
        value = protobuf.decode(raw)
        check_value(value)
    except protobuf.ProtobufError as e:
        raise errors.bad_request(f"{what}: {e}") from None
    except BodyError as e:
        raise errors.bad_request(f"{what}: {e}") from None
    except RecursionError:
        raise errors.bad_request(f"{what}: nested more than {MAX_DEPTH} levels deep") from None
    return value


def _load(raw: bytes, yaml_body: bool) -> Any:
    if not yaml_body:
        return _load_json(raw)
    if _looks_like_json(raw):
        try:
            return _load_json(raw)
        except json.JSONDecodeError:
            pass  # YAML flow style, say
    return _load_yaml(raw)


def _not_a_number(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the number {text[:40]} is out of range")
    return value


def _load_json(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_not_a_number, parse_float=_finite_float)


def check_value(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """BodyError unless `value` is made of JSON types only, nested at most `max_depth` deep.

    Shared containers (YAML aliases) are walked once; their expanded depth is bounded
    before construction (`_check_yaml_graph`).
    """
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Iterable[Any] = v.values()
            for k in v:
                if not isinstance(k, str):
                    raise BodyError(f"object keys must be strings, not {_type_name(k)}")
                _check_text(k)
        elif isinstance(v, list):
            children = v
        elif isinstance(v, str):
            _check_text(v)
            continue
        elif v is None or isinstance(v, (bool, int)):
            continue
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise BodyError(f"{v} is not a JSON number")
            continue
        else:
            raise BodyError(f"values of type {type(v).__name__} are not allowed")
        if depth > max_depth:
            raise BodyError(f"nested more than {max_depth} levels deep")
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.extend((c, depth + 1) for c in children)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(s: str) -> None:
    if _SURROGATE.search(s):
        raise BodyError("a string holds an unpaired UTF-16 surrogate")


# YAML: the safe loader, minus what JSON cannot hold, with bounded nesting and aliasing.

class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings and bounds nesting while composing."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent, yaml.ScalarEvent):
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise BodyError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        # keys become strings, as YAML-to-JSON conversion makes them (`8080: x` is "8080")
        return {_key_string(k): v for k, v in super().construct_mapping(node, deep).items()}


def _key_string(key: Any) -> Any:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool) or isinstance(key, int):
        return json.dumps(key)
    if isinstance(key, float) and math.isfinite(key):
        return json.dumps(key)
    raise BodyError(f"a mapping key of type {type(key).__name__} cannot be a JSON object key")


def _load_yaml(raw: bytes) -> Any:
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _allowed_alias_ratio(total: int) -> float:
    """The share of nodes that may come from alias expansion (go-yaml's rule)."""
    low, high = 400_000, 4_000_000
    if total <= low:
        return 0.99
    if total >= high:
        return 0.10
    return 0.99 - 0.89 * (total - low) / (high - low)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_yaml_graph(root: yaml.Node) -> None:
    """Bound what aliases expand to: no cycles, depth and node count as after expansion."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            scalar = isinstance(node, yaml.ScalarNode)
            height[key] = 0 if scalar else 1 + max((height[id(k)] for k in kids), default=0)
            continue
        if key in size:
            continue
        if key in on_path:
            raise BodyError("an anchor's value contains an alias to itself")
        on_path.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in on_path:
                raise BodyError("an anchor's value contains an alias to itself")
            if id(kid) not in size:
                stack.append((kid, False))
    total, unique = size[id(root)], len(size)
    expanded = total - unique
    if expanded > 100 and total > 1000 and expanded / total > _allowed_alias_ratio(total):
        raise BodyError("the document contains excessive aliasing")
    if height[id(root)] > MAX_DEPTH:
        raise BodyError(f"nested more than {MAX_DEPTH} levels deep")


def require_object(body: Any, what: str) -> dict[str, Any]:
    """`body` if it is a JSON object; 400 naming what was expected otherwise."""
    if isinstance(body, dict):
        return body
    if body is None:
        raise errors.bad_request(f"the request body must be a JSON object ({what}); the request has none")
    raise errors.bad_request(f"the request body must be a JSON object ({what}), not {_type_name(body)}")


# -- answering in protobuf ----------------------------------------------------------------

_JSON_LIKE = frozenset({JSON, YAML, "*/*", "application/*", "application/json;stream=watch"})


def protobuf_only(accept: str | None) -> bool:
    """True when the Accept header takes `application/vnd.kubernetes.protobuf` (the object
    itself, not `as=Table` or another transformation) and no JSON or YAML alternative."""
    if not accept or "protobuf" not in accept:
        return False
    wants = False
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = {k.strip().lower(): v.strip() for k, _, v in (f.partition("=") for f in fields[1:])}
        if params.get("q") in ("0", "0.0", "0.00", "0.000"):
            continue  # "not acceptable"
        if media == PROTOBUF:
            if "as" in params:
                return False  # a transformation (Table, PartialObjectMetadata): answered as JSON
            wants = True
        elif media in _JSON_LIKE or media.endswith("+json"):
            return False
    return wants


def protobuf_response(accept: str | None, response: Response) -> Response:
    """`response` as protobuf when the client takes only protobuf and it is a JSON object,
    list or Status of a kind with a protobuf table; `response` itself otherwise."""
    if isinstance(response, StreamingResponse) or not protobuf_only(accept):
        return response
    if response.media_type != JSON and not response.headers.get("content-type", "").startswith(JSON):
        return response
    try:
        body = protobuf.encode_response(json.loads(bytes(response.body)))
    except (protobuf.NotEncodable, ValueError, RecursionError):
        return response  # no table for it (Tables, discovery documents): JSON, as before
    out = Response(body, status_code=response.status_code, media_type=PROTOBUF)
    kept = [(k, v) for k, v in response.raw_headers if k not in (b"content-type", b"content-length")]
    out.raw_headers = kept + [(k, v) for k, v in out.raw_headers if k in (b"content-type", b"content-length")]
    return out


# -- query parameters ---------------------------------------------------------------------


_NO_PARAMS = QueryParams()


class Query:
    """Typed access to query parameters: the first value of each, parsed strictly."""

    def __init__(self, request: Request) -> None:
        # most requests have no query string: nothing to parse then
        self.params = request.query_params if request.scope.get("query_string") else _NO_PARAMS

    def raw(self, name: str) -> str | None:
        values = self.params.getlist(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool | None:
        """A boolean as Go's strconv.ParseBool reads it; None when absent."""
        v = self.raw(name)
        if v is None:
            return None
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise errors.invalid_parameter(name, v, "must be a boolean (true or false)")

    def integer(self, name: str, minimum: int = INT64_MIN) -> int | None:
        """A 64-bit integer (at least `minimum`); None when absent."""
        v = self.raw(name)
        if v is None:
            return None
        if not _INT_RE.fullmatch(v) or not INT64_MIN <= int(v) <= INT64_MAX:
            raise errors.invalid_parameter(name, v, "must be a 64-bit integer")
        n = int(v)
        if n < minimum:
            raise errors.invalid_parameter(name, v, f"must be greater than or equal to {minimum}")
        return n

    def resource_version(self, name: str = "resourceVersion") -> str:
        """"" when absent, else a non-negative integer in its canonical form."""
        v = self.raw(name)
        if v is None or v == "":
            return ""
        if not _UINT_RE.fullmatch(v) or int(v) > UINT64_MAX:
            raise errors.invalid_parameter(name, v, "must be a non-negative integer")
        return str(int(v))

    def string(self, name: str) -> str | None:
        return self.raw(name)

    def label_selector(self) -> str | None:
        v = self.raw("labelSelector")
        if v:
            try:
                selectors.parse_label_selector(v)
            except ValueError as e:
                raise errors.invalid_parameter(
                    "labelSelector", v, f"unable to parse requested label selector: {e}") from None
        return v or None

    def field_selector(self, kind: str | None = None) -> str | None:
        v = self.raw("fieldSelector")
        if v:
            try:
                selectors.parse_field_selector(v, kind)
            except ValueError as e:
                raise errors.invalid_parameter(
                    "fieldSelector", v, f"unable to parse requested field selector: {e}") from None
        return v or None


@dataclass(frozen=True)
class ListOptions:
    label_selector: str | None = None
    field_selector: str | None = None
    resource_version: str = ""
    resource_version_match: str = ""
    limit: int = 0
    continue_: str = ""
    timeout_seconds: int | None = None
    watch: bool = False
    allow_bookmarks: bool = False


def _option_errors(kind: str, causes: list[dict[str, str]]) -> ApiError:
    return errors.invalid(kind, "", causes, META_GROUP)


def _forbidden(field: str, message: str) -> dict[str, str]:
    return {"field": field, "reason": "FieldValueForbidden", "message": f"Forbidden: {message}"}


def _not_supported(field: str, value: str, supported: Sequence[str]) -> dict[str, str]:
    values = ", ".join(json.dumps(s) for s in supported)
    return {"field": field, "reason": "FieldValueNotSupported",
            "message": f"Unsupported value: {_quote(value)}: supported values: {values}"}


def list_options(q: Query, watch: bool, kind: str | None = None) -> ListOptions:
    """The ListOptions of a list, watch or deletecollection, checked as Kubernetes checks them.

    Parse errors are 400 BadRequest naming the parameter; combinations Kubernetes' option
    validation forbids are 422 Invalid `ListOptions`.
    """
    opts = ListOptions(
        label_selector=q.label_selector(),
        field_selector=q.field_selector(kind),
        resource_version=q.resource_version(),
        resource_version_match=q.raw("resourceVersionMatch") or "",
        limit=q.integer("limit", minimum=0) or 0,
        continue_=q.raw("continue") or "",
        timeout_seconds=q.integer("timeoutSeconds", minimum=0),
        watch=watch,
        allow_bookmarks=bool(q.flag("allowWatchBookmarks")),
    )
    send_initial = q.flag("sendInitialEvents")
    match = opts.resource_version_match
    causes: list[dict[str, str]] = []
    if watch:
        if send_initial is not None:
            causes.append(_forbidden(
                "sendInitialEvents", "sendInitialEvents is forbidden for watch unless the WatchList feature gate "
                "is enabled"))
        if match:
            if send_initial is None:
                causes.append(_forbidden(
                    "resourceVersionMatch", "resourceVersionMatch is forbidden for watch unless sendInitialEvents "
                    "is provided"))
            if match != "NotOlderThan":
                causes.append(_not_supported("resourceVersionMatch", match, ["NotOlderThan"]))
            if opts.continue_:
                causes.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden when continue is provided"))
    else:
        if match:
            if not opts.resource_version:
                causes.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            if opts.continue_:
                causes.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden when continue is provided"))
            if match == "Exact" and opts.resource_version == "0":
                causes.append(_forbidden("resourceVersionMatch",
                                         'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
            elif match not in RV_MATCH:
                causes.append(_not_supported("resourceVersionMatch", match, [*RV_MATCH, ""]))
        if send_initial is not None:
            causes.append(_forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if causes:
        raise _option_errors("ListOptions", causes)
    if opts.continue_ and not watch:
        check_continue(opts.continue_)
        if opts.resource_version not in ("", "0"):
            raise errors.bad_request("specifying resource version is not allowed when using continue")
    return opts


def check_continue(token: str) -> None:
    """400 BadRequest unless `token` is a well-formed continue token (Kubernetes' encoding,
    `registry.decode_continue`)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", token):
        raise errors.bad_request("invalid continue token: continue key is not valid: illegal base64 data")
    decode_continue(token, "")


@dataclass(frozen=True)
class DeleteOptions:
    grace_period: int | None = None
    propagation: str = "Background"
    uid: str | None = None
    resource_version: str | None = None
    dry_run: bool = False


def _body_field(body: dict[str, Any], name: str, types: tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise errors.bad_request(
            f"the request body is not a valid DeleteOptions: {name} must be {what}, not {_type_name(value)}")
    return value


def delete_options(q: Query, body: Any, dry_run_query: bool) -> DeleteOptions:
    """DeleteOptions from the query and the body (the query wins where both give a value)."""
    if body is None:
        body = {}
    body = require_object(body, "a DeleteOptions")
    grace = q.integer("gracePeriodSeconds")
    if grace is None:
        grace = _body_field(body, "gracePeriodSeconds", (int,), "an integer")
        if grace is not None and not INT64_MIN <= grace <= INT64_MAX:
            raise errors.bad_request(
                "the request body is not a valid DeleteOptions: gracePeriodSeconds must be a 64-bit integer")
    propagation = q.raw("propagationPolicy") or _body_field(body, "propagationPolicy", (str,), "a string")
    orphan = q.flag("orphanDependents")
    if orphan is None:
        orphan = _body_field(body, "orphanDependents", (bool,), "a boolean")
    pre = _body_field(body, "preconditions", (dict,), "an object") or {}
    uid = pre.get("uid")
    rv = pre.get("resourceVersion")
    for name, value in (("uid", uid), ("resourceVersion", rv)):
        if value is not None and not isinstance(value, str):
            raise errors.bad_request(f"the request body is not a valid DeleteOptions: preconditions.{name} "
                                     f"must be a string, not {_type_name(value)}")
    dry_body = _body_field(body, "dryRun", (list,), "an array of strings") or []
    for v in dry_body:
        if v != "All":
            shown = _quote(v) if isinstance(v, str) else _type_name(v)
            raise errors.bad_request(f'Invalid dry run value {shown}: supported values: "All"')
    causes: list[dict[str, str]] = []
    if orphan is not None and propagation:
        causes.append({"field": "propagationPolicy", "reason": "FieldValueInvalid",
                       "message": f"Invalid value: {_quote(propagation)}: orphanDependents and "
                                  "deletionPropagation cannot be both set"})
    if propagation and propagation not in PROPAGATION:
        causes.append(_not_supported("propagationPolicy", propagation, [*PROPAGATION, "nil"]))
    if causes:
        raise _option_errors("DeleteOptions", causes)
    if orphan:
        propagation = "Orphan"
    return DeleteOptions(grace_period=grace, propagation=propagation or "Background", uid=uid or None,
                         resource_version=rv or None, dry_run=dry_run_query or bool(dry_body))
