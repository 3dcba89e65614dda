"""Field ownership (`metadata.managedFields`) for server-side apply, as Kubernetes keeps it.

Every write records which *manager* (the request's `fieldManager`, else the first word of
its User-Agent) set which fields, with which *operation* (`Apply` for server-side apply
patches, `Update` for everything else) and through which subresource. The set of fields is
kept in Kubernetes' `FieldsV1` encoding, so kubectl and client libraries can read and even
rewrite it (kubectl's upgrade from client-side to server-side apply does):

* `f:<name>` a field of a struct or a key of a map; `k:{"name":"web"}` an element of a list
  keyed by its merge keys (containers by name, container ports by containerPort and
  protocol, ...); `v:"finalizer"` an element of a set; `.` the node itself when it is owned
  *and* has owned children (a map, a keyed list element).
* A set of fields is held here as a frozenset of paths (tuples of those elements); a path is
  in the set when the manager owns that node. Structs are never members themselves (only
  their fields), maps and keyed elements are; lists without keys are atomic (one leaf).

The rules (structured-merge-diff's, which kube-apiserver applies):

* **Update**: the fields the write changed (added or given another value) move to the
  writer's `Update` entry and out of every other entry; fields the write removed leave
  every entry.
* **Apply**: the applier's `Apply` entry becomes exactly the fields of its configuration.
  A field the configuration sets to another value than the live one, owned by another
  manager, is a *conflict*: 409 naming each field and its manager, unless `force=true`, which
  takes the fields over. Fields the applier applied before and no longer applies are removed
  from the object when no other manager owns them (or anything under them): `prune_apply`.
* Writes to the main resource of a kind with a `status` subresource do not track `status`;
  writes to `/status` track only `status`. `apiVersion`, `kind` and the metadata the server
  owns (name, namespace, uid, resourceVersion, generation, timestamps, managedFields) are
  never tracked.
* A request that carries `managedFields` different from the stored ones sets them as given
  (validated) and is not tracked itself; `[{}]` clears them. Leaving them out keeps them.

`track(...)` is the one entry point of the registry's write path: a pure function of the old
object, the new one and the manager, returning the new entries or raising the conflict.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .patch import MERGE_KEYS, SET
from .schema import ListOf, MapOf, Node, Scalar, Struct

Path = tuple[str, ...]
FieldSet = frozenset[Path]

_MEMBER = object()  # the value of a non-leaf member (a map, a keyed list element)
_MISSING = object()

# lists keyed by more than one field in Kubernetes' list-map-keys (the strategic merge table
# keys them by the first only): the dotted path's ending -> its keys
_MULTI_KEYS: dict[str, tuple[str, ...]] = {
    "containers.ports": ("containerPort", "protocol"),
    "initContainers.ports": ("containerPort", "protocol"),
    "ephemeralContainers.ports": ("containerPort", "protocol"),
}
_SERVICE_PORTS = ("port", "protocol")
_KEY_DEFAULTS = {"protocol": "TCP"}

# the server's own metadata, never tracked (structured-merge-diff strips the same)
_UNTRACKED_META = frozenset({
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink",
    "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName",
})

MAX_MANAGER_LENGTH = 128


@dataclass(frozen=True)
class FieldManager:
    """Who writes, and how: `operation` is "Apply" (with the applied `config`) or "Update"."""

    name: str
    operation: str = "Update"
    config: Mapping[str, Any] | None = None
    force: bool = False


@dataclass(frozen=True)
class Scope:
    """What a write tracks: the kind (for list keys and schema), and which part of the object."""

    kind: str
    schema: Struct | None
    has_status: bool
    subresource: str = ""
    api_version: str = ""

    def tracks(self, path: Path) -> bool:
        if not path:
            return False
        on_status = path[0] == "f:status"
        if self.subresource == "status":
            return on_status
        return not (on_status and self.has_status)


# --- field sets of objects --------------------------------------------------------------------


def _list_keys(kind: str, dotted: str) -> tuple[str, ...] | str | None:
    """The keys of the list at `dotted` (no indices), SET for a set, None for an atomic list."""
    table = MERGE_KEYS.get(kind, {})
    key = table.get(dotted)
    if key is None:
        return None
    if key == SET:
        return SET
    if kind == "Service" and dotted == "spec.ports":
        return _SERVICE_PORTS
    for ending, keys in _MULTI_KEYS.items():
        if dotted == ending or dotted.endswith("." + ending):
            return keys
    return (key,)


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def element_key(item: Any, keys: tuple[str, ...], index: int) -> str:
    """The path element of a keyed list's element: `k:{"name":"web"}`, or `i:<index>` for an
    element that lacks its key (structured-merge-diff refuses those; they are kept by place)."""
    if not isinstance(item, dict):
        return f"i:{index}"
    fields: dict[str, Any] = {}
    for k in keys:
        value = item.get(k, _KEY_DEFAULTS.get(k) if len(keys) > 1 else None)
        if value is None:
            if len(keys) == 1:
                return f"i:{index}"
            continue
        fields[k] = value
    return "k:" + _encode(fields)


def _walk(kind: str, node: Node | None, value: Any, path: Path, dotted: str, out: dict[Path, Any]) -> None:
    if isinstance(node, Scalar) or value is None or not isinstance(value, (dict, list)):
        out[path] = value
        return
    if isinstance(value, list):
        keys = _list_keys(kind, dotted)
        if keys is None or not isinstance(node, (ListOf, type(None))):
            out[path] = value  # atomic
            return
        item_node = node.item if isinstance(node, ListOf) else None
        if not value:
            out[path] = value
            return
        if path[-1] != "f:containers":
            out[path] = _MEMBER
        for i, item in enumerate(value):
            if keys == SET:
                out[(*path, "v:" + _encode(item))] = _MEMBER
                continue
            at = (*path, element_key(item, keys, i))  # type: ignore[arg-type]
            if isinstance(item, dict) and item:
                out[at] = _MEMBER
                _walk_fields(kind, item_node, item, at, dotted, out)
            else:
                out[at] = item
        return
    if not value:
        out[path] = value
        return
    if isinstance(node, MapOf):
        out[path] = _MEMBER
        for key, item in value.items():
            if item is not None:
                _walk(kind, node.value, item, (*path, f"f:{key}"), f"{dotted}.{key}", out)
        return
    if isinstance(node, ListOf):
        out[path] = value  # a mistyped value: a leaf
        return
    _walk_fields(kind, node, value, path, dotted, out)


def _walk_fields(kind: str, node: Node | None, value: dict[str, Any], path: Path, dotted: str,
                 out: dict[Path, Any]) -> None:
    fields = node.fields if isinstance(node, Struct) else None
    for key, item in value.items():
        if item is None:
            continue
        child = fields.get(key) if fields is not None else None
        _walk(kind, child, item, (*path, f"f:{key}"), f"{dotted}.{key}" if dotted else key, out)


Section = tuple[str, ...]  # ("f:spec",), ("f:metadata", "f:labels"): a part of an object walked alone


def sections(scope: Scope, obj: Mapping[str, Any] | None) -> dict[Section, Any]:
    """The tracked parts of `obj`: each top-level field in scope, and each tracked field of
    its metadata, with their values. A write can only change fields inside the sections
    whose values differ, so only those are walked."""
    out: dict[Section, Any] = {}
    for key, value in (obj or {}).items():
        if value is None or key in ("apiVersion", "kind"):
            continue
        if key == "metadata" and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mvalue is not None and mkey not in _UNTRACKED_META:
                    out[("f:metadata", f"f:{mkey}")] = mvalue
            continue
        if scope.tracks((f"f:{key}",)):
            out[(f"f:{key}",)] = value
    return out


def _section_leaves(scope: Scope, section: Section, value: Any, out: dict[Path, Any]) -> None:
    fields = scope.schema.fields if scope.schema is not None else {}
    names = [element[2:] for element in section]
    node = fields.get(names[0])
    if len(names) > 1:
        node = node.fields.get(names[1]) if isinstance(node, Struct) else None
    _walk(scope.kind, node, value, section, ".".join(names), out)


def leaves(scope: Scope, obj: Mapping[str, Any] | None, only: Iterable[Section] | None = None) -> dict[Path, Any]:
    """Every tracked member of `obj` with its value (`_MEMBER` for maps and keyed elements),
    in all its sections or `only` those."""
    out: dict[Path, Any] = {}
    parts = sections(scope, obj)
    for section in (parts if only is None else only):
        if section in parts:
            _section_leaves(scope, section, parts[section], out)
    return out


def section_of(path: Path) -> Section:
    return path[:2] if path and path[0] == "f:metadata" else path[:1]


# --- FieldsV1 ---------------------------------------------------------------------------------


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 JSON of a set of paths."""
    root: dict[str, Any] = {}
    members = sorted(fields)
    for path in members:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = root
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    # "." first, then the children in byte order, as Kubernetes writes them
    return {k: _sorted(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}


def from_fields_v1(value: Any) -> FieldSet:
    """The set of paths a FieldsV1 JSON holds; ValueError when it is not one."""
    out: set[Path] = set()

    def visit(node: Any, path: Path) -> None:
        if not isinstance(node, dict):
            raise ValueError("must be an object of path elements")
        if not node and path:
            out.add(path)
            return
        for element, child in node.items():
            if element == ".":
                if path:
                    out.add(path)
                continue
            if not isinstance(element, str) or element[:2] not in ("f:", "k:", "v:", "i:"):
                raise ValueError(f"unknown path element {element!r}: expected f:, k:, v:, i: or .")
            visit(child, (*path, element))

    visit(value, ())
    return frozenset(out)


def display(path: Path) -> str:
    """A path as structured-merge-diff prints it in conflict messages: `.spec.replicas`,
    `.spec.template.spec.containers[name="web"].image`."""
    out = ""
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            out += f".{rest}"
        elif kind == "k:":
            try:
                keys = json.loads(rest)
                out += "[" + ",".join(f"{k}={_encode(v)}" for k, v in keys.items()) + "]"
            except ValueError:
                out += f"[{rest}]"
        elif kind == "v:":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


# --- entries ----------------------------------------------------------------------------------


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""
    raw: dict[str, Any] | None = None  # the JSON it was read from (answered as is while unchanged)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        if self.raw is not None:
            return self.raw
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            out["apiVersion"] = self.api_version
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def parse_entries(value: Any, where: str = "metadata.managedFields") -> list[Entry]:
    """Entries from their JSON; `InvalidManagedFields` naming the field when one is malformed."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(where, "must be a list of managed fields entries")
    out: list[Entry] = []
    for i, raw in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(raw, dict):
            raise _invalid(at, "must be an object")
        manager = raw.get("manager", "")
        operation = raw.get("operation", "")
        if not isinstance(manager, str) or not isinstance(operation, str):
            raise _invalid(at, "manager and operation must be strings")
        if operation not in ("Apply", "Update"):
            raise _invalid(f"{at}.operation", f'unsupported value "{operation}": must be "Apply" or "Update"')
        if raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise _invalid(f"{at}.fieldsType", 'must be "FieldsV1"')
        try:
            fields = from_fields_v1(raw.get("fieldsV1") or {})
        except ValueError as e:
            raise _invalid(f"{at}.fieldsV1", str(e)) from None
        out.append(Entry(manager, operation, str(raw.get("apiVersion") or ""), str(raw.get("time") or ""),
                         fields, str(raw.get("subresource") or ""), raw))
    return out


class InvalidManagedFields(ValueError):
    """Malformed `managedFields` in a request (the registry answers 422 naming `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: Invalid value: {message}")
        self.field = field
        self.message = message


def _invalid(field: str, message: str) -> InvalidManagedFields:
    return InvalidManagedFields(field, message)


def manager_problem(name: str) -> str | None:
    """Why Kubernetes refuses this `fieldManager` (at most 128 printable characters), or None."""
    if len(name) > MAX_MANAGER_LENGTH:
        return f"may not be longer than {MAX_MANAGER_LENGTH}"
    if not name.isprintable():
        return "must only contain printable characters"
    return None


def manager_from_user_agent(user_agent: str) -> str:
    """Kubernetes' default manager: the User-Agent up to its first `/` (`kubectl/v1.32 ...` ->
    `kubectl`), cut to 128 characters."""
    return user_agent.split("/", 1)[0].strip()[:MAX_MANAGER_LENGTH]


# --- the write path ---------------------------------------------------------------------------


class Conflicts(Exception):
    """An apply that would change fields other managers own (the registry answers 409 with
    `message` and `causes`)."""

    def __init__(self, conflicts: list[tuple[str, str, Path]]) -> None:
        n = len(conflicts)
        by_manager: dict[tuple[str, str], list[Path]] = {}
        for manager, api_version, path in conflicts:
            by_manager.setdefault((manager, api_version), []).append(path)
        parts = []
        for (manager, api_version), paths in by_manager.items():
            using = f" using {api_version}" if api_version else ""
            if len(paths) == 1:
                parts.append(f'conflict with "{manager}"{using}: {display(paths[0])}')
            else:
                parts.append(f'conflicts with "{manager}"{using}:\n'
                             + "\n".join(f"- {display(p)}" for p in sorted(paths)))
        message = f"Apply failed with {n} conflict{'s' if n != 1 else ''}: " + "\n".join(parts)
        causes = [{"reason": "FieldManagerConflict",
                   "message": f'conflict with "{manager}"' + (f" using {api}" if api else ""),
                   "field": display(path)} for manager, api, path in conflicts]
        super().__init__(message)
        self.message = message
        self.causes = causes
        self.conflicts = conflicts


def _owned_under(entries: Iterable[Entry], path: Path) -> bool:
    n = len(path)
    return any(p[:n] == path for e in entries for p in e.fields)


def prune_apply(scope: Scope, live: Mapping[str, Any], merged: dict[str, Any], manager: FieldManager) -> None:
    """Remove from `merged` (the live object with the configuration merged in) the fields the
    applier applied before, does not apply now, and that no other manager owns (in place)."""
    if manager.config is None:
        return
    entries = parse_entries((live.get("metadata") or {}).get("managedFields"))
    mine = next((e for e in entries if e.identity == (manager.name, "Apply", scope.subresource)), None)
    if mine is None:
        return
    applied = frozenset(p for p in leaves(scope, manager.config) if scope.tracks(p) or p[0] == "f:metadata")
    others = [e for e in entries if e is not mine]
    gone = sorted((p for p in mine.fields - applied if not _owned_under(others, p)), key=len)
    removed: list[Path] = []
    for path in gone:
        if any(path[:len(r)] == r for r in removed):
            continue
        if _remove(scope.kind, merged, path):
            removed.append(path)


def _remove(kind: str, obj: Any, path: Path) -> bool:
    """Remove the node at `path` from `obj`; False when it is not there."""
    node = obj
    dotted = ""
    for depth, element in enumerate(path):
        last = depth == len(path) - 1
        tag, rest = element[:2], element[2:]
        if tag == "f:":
            if not isinstance(node, dict) or rest not in node:
                return False
            dotted = f"{dotted}.{rest}" if dotted else rest
            if last:
                del node[rest]
                return True
            node = node[rest]
            continue
        if not isinstance(node, list):
            return False
        index = _find(kind, node, dotted, element)
        if index is None:
            return False
        if last:
            del node[index]
            return True
        node = node[index]
    return False


def _find(kind: str, items: list[Any], dotted: str, element: str) -> int | None:
    tag, rest = element[:2], element[2:]
    if tag == "i:":
        i = int(rest) if rest.isdigit() else -1
        return i if 0 <= i < len(items) else None
    if tag == "v:":
        try:
            wanted = json.loads(rest)
        except ValueError:
            return None
        return next((i for i, v in enumerate(items) if v == wanted), None)
    keys = _list_keys(kind, dotted)
    if not isinstance(keys, tuple):
        return None
    return next((i for i, item in enumerate(items) if element_key(item, keys, i) == element), None)


def _changed(old: Mapping[Path, Any], new: Mapping[Path, Any], within: Iterable[Path]) -> set[Path]:
    return {p for p in within if old.get(p, _MISSING) != new.get(p, _MISSING) and p in new}


def track(scope: Scope, old: Mapping[str, Any] | None, new: dict[str, Any], manager: FieldManager,
          now: str, request_entries: Any = None) -> list[dict[str, Any]] | None:
    """The `managedFields` of `new` after this write, or None when the write changes none.

    `old` is the stored object (None on create); `new` the object about to be stored;
    `request_entries` the managedFields the request carried (after its patch, if any; None
    or `[]` when it carried none: the stored ones are kept). Raises `Conflicts` for an apply
    that changes fields others own.

    Only the sections (`sections`) whose values differ between `old` and `new` are walked:
    the cost of a write is the size of what it changed, not of the object."""
    prior = (old or {}).get("metadata", {}).get("managedFields") or []
    if request_entries not in (None, []) and request_entries != prior:
        if request_entries == [{}]:
            return []
        return [e.to_json() for e in parse_entries(request_entries)]
    old_parts, new_parts = sections(scope, old), sections(scope, new)
    differing = {s for s in old_parts.keys() | new_parts.keys() if old_parts.get(s, _MISSING) != new_parts.get(s, _MISSING)}
    applying = manager.operation == "Apply"
    if not differing and not applying:
        return None
    old_leaves = leaves(scope, old, differing)
    new_leaves = leaves(scope, new, differing)
    entries = parse_entries(prior)
    if applying:
        applied = frozenset(leaves(scope, manager.config))
        changed = _changed(old_leaves, new_leaves, applied)
        identity = (manager.name, "Apply", scope.subresource)
        conflicts = [(e.manager, e.api_version, p) for e in entries if e.identity != identity
                     for p in sorted(e.fields & changed)]
        if conflicts and not manager.force:
            raise Conflicts(conflicts)
        taken = changed if manager.force else set()
        mine_fields = applied
    else:
        taken = _changed(old_leaves, new_leaves, new_leaves)
        identity = (manager.name, "Update", scope.subresource)
        current = next((e for e in entries if e.identity == identity), None)
        mine_fields = (current.fields if current else frozenset()) | taken

    def kept(fields: frozenset[Path]) -> frozenset[Path]:
        # fields of the sections this write changed survive only if still in the object
        return frozenset(p for p in fields if section_of(p) not in differing or p in new_leaves)

    out: list[Entry] = []
    touched = False
    found = False
    for e in entries:
        if e.identity == identity:
            found = True
            fields = kept(frozenset(mine_fields)) if not applying else frozenset(mine_fields)
            if fields != e.fields:
                touched = True
                e = Entry(e.manager, e.operation, scope.api_version, now, fields, e.subresource)
        elif _tracked_by(scope, e):
            fields = kept(e.fields - taken)
            if fields != e.fields:
                touched = True
                e = Entry(e.manager, e.operation, e.api_version, e.time, fields, e.subresource)
        if e.fields:
            out.append(e)
        else:
            touched = True
    if not found and mine_fields:
        touched = True
        out.append(Entry(manager.name, manager.operation, scope.api_version, now, frozenset(mine_fields),
                         scope.subresource))
    if not touched:
        return None
    return [e.to_json() for e in out]


def _tracked_by(scope: Scope, entry: Entry) -> bool:
    """Whether this write may take fields from `entry`: it only sees the fields in its scope
    (status for /status, the rest for the main resource), plus metadata."""
    return all(p[0] == "f:metadata" or scope.tracks(p) for p in entry.fields)


def members(fields: Iterable[Path]) -> Iterator[str]:
    """The display form of each path (for tests and messages)."""
    return (display(p) for p in sorted(fields))
