"""The resource registry: Kubernetes object semantics on top of the revisioned store.

Everything that writes objects goes through here — the HTTP handlers, the controllers
and the scheduler running inside the master — so defaults, validation, metadata
bookkeeping and optimistic concurrency are enforced in one place. The registry is generic:
what is particular to a kind (defaults, validation, what a status write may change, what
`generation` tracks, how a delete finishes) is its strategy's (`kind.strategy`, an
`objects.strategy.Strategy` from the kind's module under `objects/resources/`), so a new kind
needs no change here — only its module and its row in `objects/kinds.py`.

* `metadata.resourceVersion` is the store's mod revision of the object (never stored in
  the value, added on every read), `metadata.uid`/`creationTimestamp` are set on create,
  `metadata.generation` is bumped only when the spec (or, for kinds without a spec, the
  payload) changes.
* the main resource cannot change `status` and the `status` subresource cannot change
  anything else, for kinds that have a status subresource.
* every write (create, update, each patch type, `/status`, `/scale`) is checked in the same
  order as the API server decodes it: a body that is not a JSON object, or names another
  apiVersion or kind, is 400 BadRequest; a value of the wrong type or integer width (int32 /
  int64) is 422 Invalid, before defaults run; then the name, namespace and uid must still be
  the object's (400, or 409 for a PUT carrying another uid, 422 for a patch changing it;
  creationTimestamp and the other system fields are kept from the stored object), and only
  then is the object defaulted and validated. A refused write leaves the store as it was.
* a write carrying a stale `resourceVersion` fails with 409 Conflict; patches without one
  are retried on conflicts.
* `get_json` is `get` for the API's plain JSON GET: the response body itself, from a small
  bounded map keyed by the store key and mod revision (a revision names one value, so an
  entry is never stale), filled from the stored text (`store.get_raw`); a read of an
  object already answered at its current revision decodes and encodes nothing. Every
  other read returns freshly decoded values the caller owns.
* `list` answers whole, or in pages (`limit`, `continue`) that all list the store at the
  first page's revision (`store.list_page`): the continue token is Kubernetes' (base64 JSON
  of that revision and the key to go on from, relative to the list's prefix), and one
  whose revision has been compacted is 410 Expired with Kubernetes' message.
* deletion is graceful for pods bound to a node (the node's agent stops the containers and
  then finishes the delete with `gracePeriodSeconds=0`) and waits for `finalizers`;
  dependents are removed by the garbage collector: after the owner (Background, the
  default), before it (Foreground: the owner is marked for deletion with the
  `foregroundDeletion` finalizer, which the collector removes once the dependents that
  block it are gone), or never (Orphan: their ownerReferences to it are removed here).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import copy
import json
import json.encoder
import math
import posixpath
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import errors
from ..errors import ApiError
from ..objects import Obj, fielderrors, managedfields, patch, schema, selectors, validation
from ..objects.kinds import KINDS, Kind, by_kind
from ..objects.managedfields import FieldManager
from ..objects.timefmt import rfc3339
from ..store import KV, Compacted, KeyExists, KeyNotFound, RevisionConflict, SQLiteStore, WatchEvent

MAX_GRACE_TIMESTAMP = 100 * 365 * 86400  # seconds a deletionTimestamp may lie ahead
FOREGROUND_FINALIZER = "foregroundDeletion"  # metav1.FinalizerDeleteDependents
ORPHAN_FINALIZER = "orphan"  # metav1.FinalizerOrphanDependents
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# How deeply objects and patches may nest: far beyond any real object (a pod template with
# affinity and managedFields stays under 20 levels), well within what the code walking them
# can recurse.
MAX_DEPTH = 100

_BODIES_KEPT = 2048  # JSON bodies `get_json` keeps ...
_BODIES_KEPT_BYTES = 16 << 20  # ... and their bytes together (one body at most a sixteenth)


def clone(obj: Any) -> Any:
    """A deep copy of a JSON value (a JSON round trip is several times faster than deepcopy)."""
    return json.loads(json.dumps(obj))


def utcnow() -> datetime:
    return datetime.now(UTC)


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(n))


def json_type(value: Any) -> str:
    """The JSON type of a value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def json_problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why `value` cannot be stored as JSON (NaN or an infinite number, a value of a non-JSON
    type such as a YAML date, nesting deeper than `max_depth`), or None."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = path or "<root>"
        if isinstance(item, (dict, list)) and depth >= max_depth:
            return f"exceeded max depth of {max_depth}"
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, (str, int, bool)) and key is not None:
                    return f"{where}: a key of type {type(key).__name__} is not a JSON object key"
                stack.append((child, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{where}: {json.dumps(item)} is not a JSON number"
        elif item is not None and not isinstance(item, (str, int, bool)):
            return f"{where}: a value of type {type(item).__name__} is not a JSON value"
    return None


def _name_of(obj: Any) -> str:
    """metadata.name (or generateName) of a body, for messages; "" when there is none."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ""
    for key in ("name", "generateName"):
        value = meta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


CONTINUE_VERSION = "meta.k8s.io/v1"  # the encoding version of Kubernetes' continue tokens
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of "
    "the results. Continuing with the provided token results in an inconsistent list - objects that were "
    "created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
)
_PAGE_BATCH_MAX = 10_000  # rows read at once while selectors leave most of them out


def encode_continue(revision: int, start: str) -> str:
    """A continue token as Kubernetes encodes it: unpadded URL-safe base64 of the JSON
    `{"v": "meta.k8s.io/v1", "rv": <revision of the list>, "start": <key to go on from,
    relative to the list's prefix>}`. Opaque to clients."""
    data = json.dumps({"v": CONTINUE_VERSION, "rv": revision, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    """(revision, store key to go on from) of a continue token for a list under `prefix`;
    400 BadRequest for a token that is not one (Kubernetes' messages). A revision of -1
    (Kubernetes' "inconsistent" token) lists the store as it is now (0)."""
    def invalid(why: str) -> ApiError:
        return errors.bad_request(f"invalid continue token: continue key is not valid{why}")

    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise invalid(": not a base64-encoded JSON object") from None
    if not isinstance(data, dict):
        raise invalid(": not a base64-encoded JSON object")
    if data.get("v") != CONTINUE_VERSION:
        raise invalid(": server does not recognize this encoded version")
    rv, start = data.get("rv"), data.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0 or rv < -1:
        raise invalid(f": incorrect encoded start resourceVersion (version {CONTINUE_VERSION})")
    if not isinstance(start, str) or not start:
        raise invalid(f": encoded start key empty (version {CONTINUE_VERSION})")
    key = start if start.startswith("/") else "/" + start
    if posixpath.normpath(key.rstrip("\x00") or "/") != (key.rstrip("\x00") or "/"):
        raise invalid(f": {json.dumps(start)}")
    return max(rv, 0), prefix + start.lstrip("/")


@dataclass(frozen=True)
class Selectors:
    labels: selectors.LabelSelector | None = None
    fields: selectors.FieldSelector | None = None

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selectors:
        try:
            ls = selectors.parse_label_selector(label_selector) if label_selector else None
            fs = selectors.parse_field_selector(field_selector) if field_selector else None
        except ValueError as e:
            raise errors.bad_request(f"unable to parse requested selector: {e}") from None
        return cls(ls, fs)

    def matches(self, obj: Obj) -> bool:
        if self.labels is not None and not self.labels.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        return self.fields is None or self.fields.matches(obj)


class Registry:
    def __init__(self, store: SQLiteStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        # hooks run after defaults and before validation on create (e.g. node pod CIDR)
        self.create_hooks: dict[str, list[Callable[[Obj], None]]] = {}
        self._bodies: dict[tuple[str, int], bytes] = {}  # (store key, mod revision) -> `get_json`'s body
        self._bodies_bytes = 0
        self._bodies_lock = threading.Lock()
        # the field manager of writes that name none: the master's own (its controllers in
        # thread mode, its bootstrap objects); the API names the request's
        self.field_manager = "dockyard-master"

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _with_rv(kv: KV) -> Obj:
        obj: Obj = clone(kv.value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    @staticmethod
    def _read(kv: KV) -> Obj:
        """Like `_with_rv` for values the store just decoded for this read (no copy needed)."""
        obj = kv.value
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    @staticmethod
    def _strip(obj: Obj) -> Obj:
        value: Obj = clone(obj)
        meta = value.get("metadata")
        if isinstance(meta, dict):
            meta.pop("resourceVersion", None)
            meta.pop("selfLink", None)
        # Go clients serialize empty metadata fields as null (`creationTimestamp: null` in
        # every pod template kubectl sends); the API server drops them when decoding
        spec = value.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        for meta in (value.get("metadata"), template.get("metadata") if isinstance(template, dict) else None):
            if isinstance(meta, dict):
                for key in [k for k, v in meta.items() if v is None]:
                    del meta[key]
        return value

    def _ns(self, kind: Kind, namespace: str | None) -> str | None:
        return namespace if kind.namespaced else None

    def _kv(self, kind: Kind, namespace: str | None, name: str) -> KV:
        kv = self.store.get(kind.key(self._ns(kind, namespace), name))
        if kv is None:
            raise errors.not_found(kind.resource, name, kind.group)
        return kv

    def _validate(self, kind: Kind, obj: Obj, old: Obj | None) -> None:
        errs = validation.validate(kind.kind, obj, old)
        if errs:
            raise errors.invalid(kind.kind, _name_of(obj), [e.cause() for e in errs], kind.group)

    @staticmethod
    def _check_type(kind: Kind, obj: Any) -> None:
        """`obj` is a JSON object of this resource's kind: an apiVersion or kind it names must be
        the resource's (400 BadRequest, as the API server's decoder answers); missing ones are set."""
        if not isinstance(obj, dict):
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {kind.kind}): "
                f"expected a JSON object, got {json_type(obj)}"
            )
        api_version, k = obj.get("apiVersion"), obj.get("kind")
        if api_version is None or api_version == "":
            obj["apiVersion"] = kind.api_version
        elif api_version != kind.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({kind.api_version})"
            )
        if k is None or k == "":
            obj["kind"] = kind.kind
        elif k != kind.kind:
            raise errors.bad_request(
                f'{k} in version "{kind.version}" cannot be handled as a {kind.kind}: the kind in the data '
                f"({k}) does not match the expected kind ({kind.kind})"
            )

    @staticmethod
    def _check_json(kind: Kind, obj: Any) -> None:
        """400 BadRequest for what JSON cannot carry (NaN, YAML dates, absurd nesting)."""
        problem = json_problem(obj)
        if problem:
            raise errors.bad_request(f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
                                     f"{problem}")

    @staticmethod
    def _check_shape(kind: Kind, obj: Any, name: str = "") -> None:
        """422 Invalid naming every field whose value has the wrong type or integer width.

        Runs before defaulting, which (like the semantic rules) assumes well-typed objects.
        """
        errs = validation.type_errors(kind.kind, obj)
        if errs:
            raise errors.invalid(kind.kind, name or _name_of(obj), [e.cause() for e in errs], kind.group)

    @staticmethod
    def _check_name(kind: Kind, namespace: str | None, name: str, obj: Obj, *, patch: bool) -> None:
        """An update or patch names the object on the URL (the API server's checkName): another
        (or no) name is 400, and so is another namespace. Kind and apiVersion are `_check_type`'s,
        the uid `_check_uid`'s; creationTimestamp and the other system fields are kept from the
        stored object whatever the request says (`_merge_update`), as the API server does."""
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        obj_name = meta.get("name")
        if obj_name != name:
            raise errors.bad_request(
                f"the name of the object ({obj_name or ''}) does not match the name on the URL ({name})"
            )
        obj_ns = meta.get("namespace")
        if kind.namespaced and namespace and obj_ns not in (None, "") and obj_ns != namespace:
            if patch:
                raise errors.bad_request(
                    f"the namespace of the provided object ({obj_ns}) does not match the namespace sent on "
                    f"the request ({namespace})"
                )
            raise errors.bad_request(
                f"the namespace of the object ({obj_ns}) does not match the namespace on the request ({namespace})"
            )

    @staticmethod
    def _check_uid(kind: Kind, name: str, obj: Obj, old: Obj, *, patch: bool) -> None:
        """Another uid is 409 Conflict on a PUT (the API server takes it as a failed uid
        precondition) and 422 on a patch (metadata.uid is immutable); no uid keeps the stored one."""
        meta = obj.get("metadata")
        uid = meta.get("uid") if isinstance(meta, dict) else None
        old_uid = (old.get("metadata") or {}).get("uid")
        if uid not in (None, "") and old_uid and uid != old_uid:
            if patch:
                raise errors.invalid(
                    kind.kind, name, [fielderrors.invalid("metadata.uid", uid, "field is immutable").cause()],
                    kind.group,
                )
            res = f"{kind.resource}.{kind.group}" if kind.group else kind.resource
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res} "{name}": Precondition failed: UID in precondition: '
                f"{uid}, UID in object meta: {old_uid}",
                {"name": name, "group": kind.group, "kind": kind.resource},
            )

    def _check_namespace(self, kind: Kind, namespace: str | None) -> None:
        if not kind.namespaced:
            return
        if not namespace:
            raise errors.bad_request(f"a namespace is required for {kind.resource}")
        ns = self.store.get(by_kind("v1", "Namespace").key(None, namespace))
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns.value.get("metadata", {}).get("deletionTimestamp") and not kind.strategy.allowed_in_terminating_namespace:
            raise ApiError(
                403,
                "Forbidden",
                f'{kind.resource} is forbidden: unable to create new content in namespace {namespace} '
                "because it is being terminated",
            )

    # -- reads --------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return self._read(self._kv(kind, namespace, name))

    def get_json(self, kind: Kind, namespace: str | None, name: str) -> bytes:
        """`dumps(get(...))`, byte for byte, from the bodies kept by (key, mod revision)."""
        key = kind.key(self._ns(kind, namespace), name)
        raw = self.store.get_raw(key)
        if raw is None:
            raise errors.not_found(kind.resource, name, kind.group)
        text, rev, _ = raw
        with self._bodies_lock:
            body = self._bodies.get((key, rev))
        if body is None:
            obj: Obj = json.loads(text)
            obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
            body = dumps(obj)
            self._keep_body((key, rev), body)
        return body

    def _keep_body(self, at: tuple[str, int], body: bytes) -> None:
        size = len(body)
        if size > _BODIES_KEPT_BYTES // 16:
            return
        with self._bodies_lock:
            bodies = self._bodies
            if at in bodies:
                return
            while bodies and (len(bodies) >= _BODIES_KEPT or self._bodies_bytes + size > _BODIES_KEPT_BYTES):
                self._bodies_bytes -= len(bodies.pop(next(iter(bodies))))
            bodies[at] = body
            self._bodies_bytes += size

    def try_get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        kv = self.store.get(kind.key(self._ns(kind, namespace), name))
        return self._read(kv) if kv else None

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        *,
        limit: int = 0,
        continue_: str = "",
    ) -> Obj:
        """The objects of a kind (in a namespace), matching the selectors, sorted by key.

        With `limit` (and then the `continue_` token the previous page returned) the list is
        answered in pages, as Kubernetes does: every page lists the store as of the first
        page's revision (the token names it, with the key to go on from), so the pages
        together are one consistent snapshot; `metadata.continue` is set while more remain,
        with `metadata.remainingItemCount` when no selector filters the list. A token whose
        revision has been compacted is 410 Expired."""
        sel = Selectors.parse(label_selector, field_selector)
        prefix = kind.prefix(self._ns(kind, namespace))
        if limit <= 0 and not continue_:
            items, rev = self.store.list(prefix)
            objs = [o for o in (self._read(kv) for kv in items) if sel.matches(o)]
            return {
                "apiVersion": kind.api_version,
                "kind": kind.list_kind,
                "metadata": {"resourceVersion": str(rev)},
                "items": objs,
            }
        return self._list_page(kind, prefix, sel, limit, continue_,
                               filtered=label_selector is not None or field_selector is not None)

    def _list_page(self, kind: Kind, prefix: str, sel: Selectors, limit: int, token: str, *,
                   filtered: bool) -> Obj:
        revision, start = decode_continue(token, prefix) if token else (0, prefix)
        objs: builtins.list[Obj] = []
        more, remaining, last = False, 0, ""
        batch = limit
        try:
            while True:
                kvs, revision, remaining = self.store.list_page(prefix, revision, start, batch)
                for i, kv in enumerate(kvs):
                    obj = self._read(kv)
                    if not sel.matches(obj):
                        continue
                    objs.append(obj)
                    last = kv.key
                    if 0 < limit == len(objs):
                        more = i + 1 < len(kvs) or remaining > 0
                        remaining += len(kvs) - i - 1
                        break
                else:
                    if batch > 0 and remaining > 0:  # the page filled up with objects the selectors left out
                        start = kvs[-1].key + "\x00"
                        batch = min(batch * 2, _PAGE_BATCH_MAX)
                        continue
                break
        except Compacted:
            if token:
                raise errors.gone(CONTINUE_EXPIRED) from None
            raise errors.gone("The resourceVersion for the provided list is too old.") from None
        except ValueError:
            raise errors.too_large_resource_version(revision, self.store.current_revision()) from None
        meta: Obj = {"resourceVersion": str(revision)}
        if more:
            meta["continue"] = encode_continue(revision, last[len(prefix):] + "\x00")
            if not filtered:
                meta["remainingItemCount"] = remaining
        return {"apiVersion": kind.api_version, "kind": kind.list_kind, "metadata": meta, "items": objs}

    def items(self, kind: Kind, namespace: str | None = None) -> builtins.list[Obj]:
        items: builtins.list[Obj] = self.list(kind, namespace)["items"]
        return items

    # -- writes -------------------------------------------------------------------------

    def create(self, kind: Kind, namespace: str | None, body: Obj, *, dry_run: bool = False,
               manager: FieldManager | None = None) -> Obj:
        self._check_type(kind, body)
        self._check_json(kind, body)
        self._check_shape(kind, body)
        obj = self._strip(body)
        schema.normalize(kind.schema, obj)
        if obj.get("metadata") is None:
            obj["metadata"] = {}
        meta = obj["metadata"]
        ns = self._ns(kind, namespace or meta.get("namespace"))
        if kind.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    f"the namespace of the provided object ({meta['namespace']}) does not match "
                    f"the namespace sent on the request ({namespace})"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        kind.strategy.defaults(obj)
        for hook in self.create_hooks.get(kind.kind, []):
            hook(obj)
        self._validate(kind, obj, None)
        self._check_namespace(kind, ns)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock())
        meta["generation"] = 1
        kind.strategy.prepare_for_create(obj)
        self._manage(kind, None, obj, manager, "")
        if dry_run:
            if self.store.get(kind.key(ns, meta["name"])) is not None:
                raise errors.already_exists(kind.resource, meta["name"], kind.group)
            return obj
        try:
            kv = self.store.create(kind.key(ns, meta["name"]), obj)
        except KeyExists:
            raise errors.already_exists(kind.resource, meta["name"], kind.group) from None
        return self._read(kv)

    def update(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str = "",
        *,
        require_rv: bool = False,
        dry_run: bool = False,
        manager: FieldManager | None = None,
    ) -> Obj:
        self._check_type(kind, body)
        self._check_json(kind, body)
        self._check_shape(kind, body, name)
        self._check_name(kind, namespace, name, body, patch=False)
        meta_in = body.get("metadata") or {}
        kv = self._kv(kind, namespace, name)
        self._check_uid(kind, name, body, kv.value, patch=False)
        rv = meta_in.get("resourceVersion")
        if rv not in (None, ""):
            if str(rv) != str(kv.mod_revision):
                raise errors.conflict(kind.resource, name, kind.group)
        elif require_rv:
            raise errors.conflict(kind.resource, name, kind.group)
        new = self._merge_update(kind, kv.value, self._strip(body), subresource)
        self._manage(kind, kv.value, new, manager, subresource)
        return self._write(kind, kv, new, dry_run)

    @staticmethod
    def _scope(kind: Kind, subresource: str) -> managedfields.Scope:
        return managedfields.Scope(kind.kind, kind.schema, kind.has_status, subresource, kind.api_version)

    def _manage(self, kind: Kind, old: Obj | None, new: Obj, manager: FieldManager | None, subresource: str) -> None:
        """Record the write in `new`'s `metadata.managedFields` (`objects.managedfields`);
        raises the 409 of an apply that conflicts."""
        scope = self._scope(kind, subresource)
        meta = new.setdefault("metadata", {})
        request_entries = meta.get("managedFields")
        try:
            entries = managedfields.track(scope, old, new, manager or FieldManager(self.field_manager),
                                          rfc3339(self.clock()), request_entries)
        except managedfields.Conflicts as e:
            raise ApiError(409, "Conflict", e.message, {"causes": e.causes}) from None
        except managedfields.InvalidManagedFields as e:
            raise errors.invalid(kind.kind, _name_of(new), [
                {"field": e.field, "reason": "FieldValueInvalid", "message": f"Invalid value: {e.message}"}],
                kind.group) from None
        if entries is None:
            entries = (old or {}).get("metadata", {}).get("managedFields")
        if entries:
            meta["managedFields"] = entries
        else:
            meta.pop("managedFields", None)

    def _merge_update(self, kind: Kind, old: Obj, new: Obj, subresource: str) -> Obj:
        """Build the stored object of an update from the old one and the request body (a
        well-typed object: `_check_shape` ran on it)."""
        schema.normalize(kind.schema, new)
        if subresource == "status":
            return kind.strategy.prepare_for_status_update(new, old)
        merged = new
        if not isinstance(merged.get("metadata"), dict):
            merged["metadata"] = {}
        meta = merged["metadata"]
        old_meta = old.get("metadata", {})
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation", "deletionTimestamp",
                      "deletionGracePeriodSeconds"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        strategy = kind.strategy
        strategy.prepare_for_update(merged, old, has_status=kind.has_status)
        strategy.defaults(merged)
        if strategy.generation_payload(merged, has_status=kind.has_status) != strategy.generation_payload(
            old, has_status=kind.has_status
        ):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return merged

    def _write(self, kind: Kind, kv: KV, new: Obj, dry_run: bool = False) -> Obj:
        self._validate(kind, new, kv.value)
        meta = new.get("metadata", {})
        if dry_run:
            return self._with_rv(KV(kv.key, new, kv.mod_revision, kv.create_revision))
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and (
                not kind.strategy.waits_for_node(new) or meta.get("deletionGracePeriodSeconds") == 0):
            return self._delete_kv(kind, kv)
        if new == kv.value:
            return self._with_rv(kv)
        try:
            out = self.store.update(kv.key, new, expected_mod_revision=kv.mod_revision)
        except RevisionConflict:
            raise errors.conflict(kind.resource, meta.get("name", ""), kind.group) from None
        except KeyNotFound:
            raise errors.not_found(kind.resource, meta.get("name", ""), kind.group) from None
        return self._read(out)

    def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        subresource: str = "",
        *,
        dry_run: bool = False,
        check_fields: Callable[[Obj], None] | None = None,
        manager: FieldManager | None = None,
    ) -> Obj:
        """Apply a patch to the current object and write the result (again on a conflict
        with a concurrent write, unless the patch names a resourceVersion).

        `check_fields`, when given, sees each patched object before any other check: the
        API's field validation (it may drop unknown fields, or refuse them), applied to the
        result of the patch as the API server applies it, whatever the patch type."""
        problem = json_problem(body)
        if problem:
            raise errors.bad_request(f"the patch is not valid JSON: {problem}")
        for _attempt in range(8):
            kv = self._kv(kind, namespace, name)
            current = self._with_rv(kv)
            patched = apply_patch(kind, current, body, content_type)
            if manager is not None and manager.operation == "Apply" and isinstance(patched, dict):
                try:
                    managedfields.prune_apply(self._scope(kind, subresource), current, patched, manager)
                except managedfields.InvalidManagedFields:
                    pass  # stored entries that do not parse prune nothing; the write replaces them
            if not isinstance(patched, dict):
                raise errors.bad_request(
                    f"the patch did not produce an object: the patched {kind.kind} is a JSON {json_type(patched)}"
                )
            self._check_type(kind, patched)
            self._check_json(kind, patched)
            if check_fields is not None:
                check_fields(patched)
            self._check_shape(kind, patched, name)
            self._check_name(kind, namespace, name, patched, patch=True)
            self._check_uid(kind, name, patched, kv.value, patch=True)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv not in (None, "") and str(rv) != str(kv.mod_revision):
                raise errors.conflict(kind.resource, name, kind.group)
            new = self._merge_update(kind, kv.value, self._strip(patched), subresource)
            self._manage(kind, kv.value, new, manager, subresource)
            try:
                return self._write(kind, kv, new, dry_run)
            except ApiError as e:
                if e.reason == "Conflict" and rv in (None, ""):
                    continue
                raise
        raise errors.conflict(kind.resource, name, kind.group)

    def delete(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        grace_period: int | None = None,
        propagation: str = "Background",
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
        *,
        dry_run: bool = False,
    ) -> Obj:
        for _attempt in range(8):
            kv = self._kv(kind, namespace, name)
            obj = kv.value
            meta = obj.get("metadata", {})
            if precondition_uid and meta.get("uid") != precondition_uid:
                raise errors.conflict(kind.resource, name, kind.group)
            if precondition_rv and str(kv.mod_revision) != str(precondition_rv):
                raise errors.conflict(kind.resource, name, kind.group)
            graceful = self._graceful_seconds(kind, obj, grace_period)
            if dry_run:
                return self._with_rv(kv)
            # the namespace controller empties a Namespace before it goes: foreground already
            foreground = propagation == "Foreground" and not kind.strategy.deleted_by_controller
            if (graceful is None and not meta.get("finalizers") and not kind.strategy.deleted_by_controller
                    and not foreground):
                if propagation == "Orphan":
                    self._orphan_dependents(meta)
                return self._delete_kv(kind, kv)
            # mark for deletion: the node agent, finalizers or the namespace controller finish it
            new = copy.deepcopy(obj)
            nmeta = new["metadata"]
            now = self.clock()
            if not nmeta.get("deletionTimestamp"):
                secs = graceful or 0
                # an int64 grace can reach past any calendar: the timestamp saturates at 100 years
                nmeta["deletionTimestamp"] = rfc3339(now + timedelta(seconds=min(secs, MAX_GRACE_TIMESTAMP)))
                nmeta["deletionGracePeriodSeconds"] = secs
            elif graceful is not None and graceful < int(nmeta.get("deletionGracePeriodSeconds") or 0):
                nmeta["deletionGracePeriodSeconds"] = graceful
            elif graceful is None and int(nmeta.get("deletionGracePeriodSeconds") or 0) > 0:
                # the final delete (the node's agent is done) of an object finalizers still
                # hold: it goes as soon as they are removed, as with a grace period of 0
                nmeta["deletionGracePeriodSeconds"] = 0
            if foreground:
                # the garbage collector deletes the dependents, then removes the finalizer
                finalizers = [f for f in nmeta.get("finalizers") or [] if f != ORPHAN_FINALIZER]
                if FOREGROUND_FINALIZER not in finalizers:
                    finalizers.append(FOREGROUND_FINALIZER)
                nmeta["finalizers"] = finalizers
            kind.strategy.prepare_for_delete(new)
            if propagation == "Orphan":
                self._orphan_dependents(meta)
            if new == obj:
                return self._with_rv(kv)
            try:
                # marking for deletion is part of a delete: accepted on a full disk too
                out = self.store.update(kv.key, new, expected_mod_revision=kv.mod_revision, deleting=True)
            except (RevisionConflict, KeyNotFound):
                continue
            return self._read(out)
        raise errors.conflict(kind.resource, name, kind.group)

    def _graceful_seconds(self, kind: Kind, obj: Obj, grace_period: int | None) -> int | None:
        """Seconds of graceful termination for this delete, or None to delete at once."""
        node_kind = by_kind("v1", "Node")
        return kind.strategy.graceful_seconds(
            obj, grace_period, lambda node: self.store.get(node_kind.key(None, node)) is not None
        )

    def _delete_kv(self, kind: Kind, kv: KV) -> Obj:
        try:
            out = self.store.delete(kv.key, expected_mod_revision=kv.mod_revision)
        except RevisionConflict:
            raise errors.conflict(kind.resource, kv.value["metadata"]["name"], kind.group) from None
        except KeyNotFound:
            raise errors.not_found(kind.resource, kv.value["metadata"]["name"], kind.group) from None
        return self._with_rv(out)

    def _orphan_dependents(self, owner_meta: Obj) -> None:
        uid = owner_meta.get("uid")
        ns = owner_meta.get("namespace")
        for k in KINDS:
            if not k.namespaced or not ns:
                continue
            for kv in self.store.list(k.prefix(ns))[0]:
                refs = kv.value.get("metadata", {}).get("ownerReferences") or []
                if any(r.get("uid") == uid for r in refs):
                    new = copy.deepcopy(kv.value)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    try:
                        self.store.update(kv.key, new, expected_mod_revision=kv.mod_revision)
                    except (RevisionConflict, KeyNotFound):
                        pass

    def finalize_namespace(self, name: str, finalizers: Sequence[str] = ()) -> None:
        """The namespaces/finalize subresource: set the Namespace's `spec.finalizers`; once a
        Namespace marked for deletion has none left (its content is gone: the namespace
        controller says so), it is removed."""
        ns_kind = by_kind("v1", "Namespace")
        for _attempt in range(8):
            kv = self._kv(ns_kind, None, name)
            new = copy.deepcopy(kv.value)
            meta = new.get("metadata") or {}
            if list(finalizers):
                new.setdefault("spec", {})["finalizers"] = list(finalizers)
            else:
                (new.get("spec") or {}).pop("finalizers", None)
            try:
                if meta.get("deletionTimestamp") and not finalizers and not meta.get("finalizers"):
                    self.store.delete(kv.key, expected_mod_revision=kv.mod_revision)
                elif new != kv.value:
                    self.store.update(kv.key, new, expected_mod_revision=kv.mod_revision, deleting=True)
                return
            except RevisionConflict:
                continue
            except KeyNotFound:
                raise errors.not_found(ns_kind.resource, name) from None
        raise errors.conflict(ns_kind.resource, name)

    # -- pods/binding and scale -----------------------------------------------------------

    def bind(self, namespace: str, name: str, node: str, uid: str | None = None) -> Obj:
        pod_kind = by_kind("v1", "Pod")
        kv = self._kv(pod_kind, namespace, name)
        pod = kv.value  # the store hands out a fresh copy on every read
        if uid and pod.get("metadata", {}).get("uid") != uid:
            raise errors.conflict("pods", name)  # recreated under the same name since the decision
        if pod.get("spec", {}).get("nodeName"):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is already '
                f"assigned to node \"{pod['spec']['nodeName']}\"",
            )
        if pod.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(409, "Conflict", f'pod "{name}" is being deleted, cannot be assigned to a host')
        pod["spec"]["nodeName"] = node
        set_condition(pod, "PodScheduled", "True", "", "", self.clock())
        try:
            out = self.store.update(kv.key, pod, expected_mod_revision=kv.mod_revision)
        except RevisionConflict:
            raise errors.conflict("pods", name) from None
        return self._read(out)

    def get_scale(self, kind: Kind, namespace: str, name: str) -> Obj:
        obj = self.get(kind, namespace, name)
        return scale_of(obj)

    def update_scale(self, kind: Kind, namespace: str, name: str, scale: Obj, *, dry_run: bool = False,
                     manager: FieldManager | None = None) -> Obj:
        """Set the replicas of a Deployment or ReplicaSet through an autoscaling/v1 Scale
        (checked and answered, but not stored, with `dry_run`)."""
        replicas = self._scale_replicas(namespace, name, scale)
        for _attempt in range(8):
            obj = self.get(kind, namespace, name)
            rv = (scale.get("metadata") or {}).get("resourceVersion")
            if rv and str(rv) != obj["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.resource, name, kind.group)
            obj["spec"]["replicas"] = replicas
            try:
                return scale_of(self.update(kind, namespace, name, obj, require_rv=True, dry_run=dry_run,
                                            manager=manager))
            except ApiError as e:
                if e.reason == "Conflict" and not rv:
                    continue
                raise
        raise errors.conflict(kind.resource, name, kind.group)

    def patch_scale(self, kind: Kind, namespace: str, name: str, patched: Callable[[Obj], Obj], *,
                    dry_run: bool = False, manager: FieldManager | None = None) -> Obj:
        """Write the Scale `patched(current Scale)` returns (a patch applied to it). A conflict
        with a concurrent write (a controller's) applies the patch again to the new Scale, as
        the API server's update loop does, unless the patched Scale names a resourceVersion
        other than the one it was made from: that precondition failed, and the 409 is the answer."""
        for _attempt in range(8):
            current = self.get_scale(kind, namespace, name)
            scale = patched(current)
            try:
                return self.update_scale(kind, namespace, name, scale, dry_run=dry_run, manager=manager)
            except ApiError as e:
                precondition = (scale.get("metadata") or {}).get("resourceVersion")
                if e.reason != "Conflict" or precondition != current["metadata"].get("resourceVersion"):
                    raise
        raise errors.conflict(kind.resource, name, kind.group)

    @staticmethod
    def _scale_replicas(namespace: str, name: str, scale: Any) -> int:
        """spec.replicas of a Scale body: an int32 >= 0 (ValidateScale); the body must be a
        Scale of this object."""
        if not isinstance(scale, dict):
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type Scale): expected a JSON object, "
                f"got {json_type(scale)}"
            )
        api_version, k = scale.get("apiVersion"), scale.get("kind")
        if api_version not in (None, "") and api_version != "autoscaling/v1":
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                "(autoscaling/v1)"
            )
        if k not in (None, "") and k != "Scale":
            raise errors.bad_request(
                f'{k} in version "v1" cannot be handled as a Scale: the kind in the data ({k}) does not '
                "match the expected kind (Scale)"
            )
        problem = json_problem(scale)
        if problem:
            raise errors.bad_request(f'Scale in version "v1" cannot be handled as a Scale: {problem}')
        errs = validation.type_errors("Scale", scale)
        if errs:
            raise errors.invalid("Scale", name, [e.cause() for e in errs], "autoscaling")
        meta = scale.get("metadata") or {}
        if meta.get("name") not in (None, "", name):
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                f"the namespace of the object ({meta['namespace']}) does not match the namespace on the "
                f"request ({namespace})"
            )
        replicas = (scale.get("spec") or {}).get("replicas")
        if replicas is None:
            cause = fielderrors.required("spec.replicas")
        elif replicas < 0:
            cause = fielderrors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")
        else:
            return int(replicas)
        raise errors.invalid("Scale", name, [cause.cause()], "autoscaling")

    # -- watch ------------------------------------------------------------------------

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout: float | None = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[Obj]:
        """Yield watch events `{"type", "object"}`; an ERROR event with a 410 Status when too old."""
        sel = Selectors.parse(label_selector, field_selector)
        prefix = kind.prefix(self._ns(kind, namespace))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        if resource_version in (None, "", "0"):
            items, rev = self.store.list(prefix)
            for kv in items:
                obj = self._with_rv(kv)
                if sel.matches(obj):
                    yield {"type": "ADDED", "object": obj}
        else:
            try:
                rev = int(resource_version)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {resource_version!r}") from None
        try:
            w = self.store.watch(prefix, rev, loop=loop)
        except Compacted as e:
            yield {"type": "ERROR", "object": errors.gone(
                f"too old resource version: {resource_version} ({e.compact_revision})").status()}
            return
        last_bookmark = loop.time()
        try:
            while True:
                wait = 5.0
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        return
                ev = await w.next(timeout=wait)
                if ev is None and w.closed:
                    return  # the store is closing: end the stream, clients relist
                if ev is None:
                    if bookmarks and loop.time() - last_bookmark >= 5.0:
                        last_bookmark = loop.time()
                        yield {"type": "BOOKMARK", "object": {
                            "apiVersion": kind.api_version, "kind": kind.kind,
                            "metadata": {"resourceVersion": str(self.store.current_revision())}}}
                    continue
                out = self._watch_event(ev, sel)
                if out is not None:
                    yield out
        finally:
            w.close()

    def _watch_event(self, ev: WatchEvent, sel: Selectors) -> Obj | None:
        # Event objects are read-only for their consumers: the value is shared by every
        # watcher, so only the top level and metadata are copied (to set resourceVersion).
        value = ev.kv.value
        obj = {**value, "metadata": {**value.get("metadata", {}), "resourceVersion": str(ev.revision)}}
        now_match = sel.matches(obj)
        prev_match = ev.prev is not None and sel.matches(ev.prev.value)
        if ev.type == "DELETE":
            return {"type": "DELETED", "object": obj} if now_match else None
        if ev.prev is None:
            return {"type": "ADDED", "object": obj} if now_match else None
        if now_match and prev_match:
            return {"type": "MODIFIED", "object": obj}
        if now_match:
            return {"type": "ADDED", "object": obj}
        if prev_match:
            return {"type": "DELETED", "object": obj}
        return None

    # -- bootstrap ----------------------------------------------------------------------

    def ensure_namespaces(self) -> None:
        ns_kind = by_kind("v1", "Namespace")
        for name in SYSTEM_NAMESPACES:
            if self.store.get(ns_kind.key(None, name)) is None:
                try:
                    self.create(ns_kind, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
                except ApiError as e:
                    if e.reason != "AlreadyExists":
                        raise


def scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    sel = obj.get("spec", {}).get("selector") or {}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": selectors.selector_to_string(sel),
        },
    }


def set_condition(obj: Obj, ctype: str, status: str, reason: str, message: str, now: datetime) -> bool:
    """Set a status condition in place; keeps lastTransitionTime when the status is unchanged."""
    conds = obj.setdefault("status", {}).setdefault("conditions", [])
    for c in conds:
        if c.get("type") == ctype:
            changed = bool(
                c.get("status") != status or c.get("reason", "") != reason or c.get("message", "") != message
            )
            if c.get("status") != status:
                c["lastTransitionTime"] = rfc3339(now)
            c["status"] = status
            _set_or_drop(c, "reason", reason)
            _set_or_drop(c, "message", message)
            return changed
    cond = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": rfc3339(now)}
    _set_or_drop(cond, "reason", reason)
    _set_or_drop(cond, "message", message)
    conds.append(cond)
    return True


def _set_or_drop(d: Obj, key: str, value: str) -> None:
    if value:
        d[key] = value
    else:
        d.pop(key, None)


def apply_patch(kind: Kind, current: Obj, body: Any, content_type: str) -> Any:
    ct = content_type.split(";")[0].strip().lower()
    try:
        if ct == "application/merge-patch+json":
            return patch.json_merge_patch(current, body)
        if ct == "application/json-patch+json":
            if not isinstance(body, list):
                raise errors.bad_request("a JSON patch must be a list of operations")
            return patch.json_patch(current, body)
        if ct == "application/strategic-merge-patch+json":
            return patch.strategic_merge_patch(current, body, kind.kind)
        if ct == "application/apply-patch+yaml":
            # server-side apply without field ownership: merged like `kubectl apply`'s patches
            return patch.strategic_merge_patch(current, body, kind.kind)
    except ValueError as e:
        raise ApiError(422, "Invalid", f"the patch could not be applied: {e}") from None
    except RecursionError:
        raise errors.bad_request(f"the patch could not be applied: exceeded max depth of {MAX_DEPTH}") from None
    raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ct}")


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps(obj, separators=(",", ":")) builds an encoder on every call; this one is built once
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # CPython's C accelerator (untyped)
_ENCODER: Any = None if _make_encoder is None else _make_encoder(
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)


def dumps(obj: Any) -> bytes:
    """The JSON of an API response: `json.dumps(obj, separators=(",", ":")).encode()`, byte
    for byte, with the encoder built once (every response goes through here). Without
    circular-reference checks: JSON values from the store and the request decoders cannot
    be circular (a circular one would raise RecursionError rather than ValueError)."""
    if _ENCODER is None:
        return json.dumps(obj, separators=(",", ":")).encode()
    return "".join(_ENCODER(obj, 0)).encode()
