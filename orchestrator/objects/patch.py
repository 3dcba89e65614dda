"""The three patch formats of `kubectl patch` / PATCH requests.

* `json_merge_patch` — RFC 7386 (`application/merge-patch+json`): objects merge recursively,
  `null` deletes a key, anything else (lists included) replaces.
* `json_patch` — RFC 6902 (`application/json-patch+json`): a list of add/remove/replace/
  move/copy/test operations addressed by RFC 6901 JSON pointers (`~0` = `~`, `~1` = `/`,
  `-` = past the end of an array). All-or-nothing: the target is never mutated.
* `strategic_merge_patch` — Kubernetes' strategic merge (`application/strategic-merge-patch+json`,
  what `kubectl apply` sends): like a merge patch, except that some lists are merged element by
  element, identified by a merge key (containers by `name`, ports by `containerPort`, conditions
  by `type`, ...), and some primitive lists are merged as sets (finalizers). Lists that are not
  in the table are replaced whole, as in Kubernetes (e.g. tolerations, args, taints).

  Kubernetes derives the merge keys from Go struct tags; here they are a table per kind,
  `MERGE_KEYS`, keyed by the dotted path of the list with list indices left out
  (`spec.template.spec.containers.ports`). Fragments shared between kinds (the pod spec, which
  sits at `spec` in a Pod and at `spec.template.spec` in a workload) are built by functions,
  so adding a kind is adding one entry.

  Directives honoured: `$patch: replace|merge|delete` in a map or as a list element,
  `$retainKeys` (fields to keep in a map), `$deleteFromPrimitiveList/<field>`,
  `$setElementOrder/<field>`, and `null` to delete a key. With `$setElementOrder`, the listed
  elements come first in the given order and elements it does not mention follow in their
  previous relative order.

Every function returns a new object and leaves its inputs untouched; malformed patches raise
`PatchError` (a ValueError) with a message naming the offending path.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied."""


# --- RFC 7386 ---------------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ---------------------------------------------------------------------------------

_MISSING = object()


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped reference tokens."""
    if not isinstance(pointer, str):
        raise PatchError(f"a JSON pointer must be a string, got {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'invalid JSON pointer "{pointer}": must be empty or start with "/"')
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _array_index(token: str, length: int, pointer: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError(f'invalid array index "{token}" in path "{pointer}"')
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise PatchError(f'array index {index} out of range (length {length}) in path "{pointer}"')
    return index


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    cur = doc
    for i, token in enumerate(tokens):
        where = "/" + "/".join(tokens[: i + 1])
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f'path "{pointer}" does not exist (missing key at "{where}")')
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_array_index(token, len(cur), pointer, allow_end=False)]
        else:
            raise PatchError(f'path "{pointer}" does not exist ("{where}" is inside a scalar)')
    return cur


def _add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), pointer, allow_end=True), value)
    else:
        raise PatchError(f'cannot add at "{pointer}": parent is not an object or array')
    return doc


def _remove(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'cannot remove "{pointer}": it does not exist')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), pointer, allow_end=False))
    raise PatchError(f'cannot remove "{pointer}": parent is not an object or array')


def _op_field(op: dict[str, Any], name: str, index: int) -> Any:
    if name not in op:
        raise PatchError(f'operation {index} ({op.get("op")}) is missing "{name}"')
    return op[name]


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply RFC 6902 operations in order; returns a new value, or raises PatchError."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"operation {i} must be an object, got {op!r}")
        kind = op.get("op")
        pointer = _op_field(op, "path", i)
        tokens = parse_pointer(pointer)
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(_op_field(op, "value", i)), pointer)
        elif kind == "remove":
            doc, _ = _remove(doc, tokens, pointer)
        elif kind == "replace":
            value = copy.deepcopy(_op_field(op, "value", i))
            if not tokens:
                doc = value
            else:
                _resolve(doc, tokens, pointer)  # must exist
                doc, _ = _remove(doc, tokens, pointer)
                doc = _add(doc, tokens, value, pointer)
        elif kind in ("move", "copy"):
            source = _op_field(op, "from", i)
            from_tokens = parse_pointer(source)
            if kind == "move":
                if tokens[: len(from_tokens)] == from_tokens and len(tokens) > len(from_tokens):
                    raise PatchError(f'cannot move "{source}" into its own child "{pointer}"')
                if from_tokens == tokens:
                    _resolve(doc, tokens, pointer)
                    continue
                doc, value = _remove(doc, from_tokens, source)
            else:
                value = copy.deepcopy(_resolve(doc, from_tokens, source))
            doc = _add(doc, tokens, value, pointer)
        elif kind == "test":
            expected = _op_field(op, "value", i)
            actual = _resolve(doc, tokens, pointer)
            if not _json_equal(actual, expected):
                raise PatchError(
                    f'test operation failed at "{pointer}": expected {expected!r}, found {actual!r}'
                )
        else:
            raise PatchError(
                f'operation {i} has unsupported op "{kind}" (expected add, remove, replace, move, copy or test)'
            )
    return doc


# --- strategic merge --------------------------------------------------------------------------

SET = "<set>"  # a primitive list merged as a set (e.g. finalizers)


def _pod_spec_keys(at: str) -> dict[str, str]:
    keys: dict[str, str] = {
        "volumes": "name",
        "imagePullSecrets": "name",
        "hostAliases": "ip",
    }
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        keys[containers] = "name"
        keys[f"{containers}.ports"] = "containerPort"
        keys[f"{containers}.env"] = "name"
        keys[f"{containers}.volumeMounts"] = "mountPath"
        keys[f"{containers}.volumeDevices"] = "devicePath"
    return {f"{at}.{path}": key for path, key in keys.items()}


def _template_keys(at: str) -> dict[str, str]:
    return {
        f"{at}.metadata.ownerReferences": "uid",
        f"{at}.metadata.finalizers": SET,
        **_pod_spec_keys(f"{at}.spec"),
    }


_METADATA_KEYS = {"metadata.ownerReferences": "uid", "metadata.finalizers": SET}
_STATUS_CONDITIONS = {"status.conditions": "type"}

# kind -> {dotted list path (no indices): merge key, or SET for primitive set-merge}
MERGE_KEYS: dict[str, dict[str, str]] = {
    "Pod": {
        **_METADATA_KEYS,
        **_pod_spec_keys("spec"),
        **_STATUS_CONDITIONS,
        "status.podIPs": "ip",
        "status.hostIPs": "ip",
    },
    "ReplicaSet": {**_METADATA_KEYS, **_template_keys("spec.template"), **_STATUS_CONDITIONS},
    "Deployment": {**_METADATA_KEYS, **_template_keys("spec.template"), **_STATUS_CONDITIONS},
    "Node": {
        **_METADATA_KEYS,
        "spec.podCIDRs": SET,
        **_STATUS_CONDITIONS,
        "status.addresses": "type",
    },
    "Namespace": {**_METADATA_KEYS, **_STATUS_CONDITIONS},
    "ConfigMap": dict(_METADATA_KEYS),
    "Secret": dict(_METADATA_KEYS),
    "Event": dict(_METADATA_KEYS),
    "Service": {**_METADATA_KEYS, "spec.ports": "port", "spec.clusterIPs": SET, **_STATUS_CONDITIONS},
    "Endpoints": dict(_METADATA_KEYS),
    "EndpointSlice": dict(_METADATA_KEYS),  # endpoints and ports are atomic lists, as in Kubernetes
}

_DELETE = object()  # a map that `$patch: delete` removed


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _display(path: str) -> str:
    return path or "<root>"


def strategic_merge_patch(target: Any, patch: Any, kind: str) -> Any:
    """Apply a Kubernetes strategic merge patch to an object of `kind`; returns a new object.

    Kinds without an entry in MERGE_KEYS get object-metadata merge keys only.
    """
    keys = MERGE_KEYS.get(kind, _METADATA_KEYS)
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    result = _merge_map(target if isinstance(target, dict) else {}, patch, "", keys)
    return {} if result is _DELETE else result


def _merge_value(current: Any, value: Any, path: str, keys: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return _merge_map(current if isinstance(current, dict) else {}, value, path, keys)
    if isinstance(value, list):
        return _merge_list(current if isinstance(current, list) else [], value, path, keys)
    return copy.deepcopy(value)


def _merge_map(current: dict[str, Any], patch: dict[str, Any], path: str, keys: dict[str, str]) -> Any:
    directive = patch.get("$patch", "merge")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        rest = {k: v for k, v in patch.items() if k != "$patch"}
        return _merge_map({}, rest, path, keys)
    if directive != "merge":
        raise PatchError(
            f'{_display(path)}: unknown $patch directive "{directive}" (expected replace, merge or delete)'
        )

    result = copy.deepcopy(current)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(f"{_display(path)}: $retainKeys must be a list of field names")
        for key in patch:
            if not key.startswith("$") and key not in retain:
                raise PatchError(f'{_display(path)}: field "{key}" is in the patch but not in $retainKeys')
        result = {k: v for k, v in result.items() if k in retain}

    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if not isinstance(value, list):
                raise PatchError(f"{_join(path, key)}: must be a list of values to delete")
            existing = result.get(name)
            if isinstance(existing, list):
                result[name] = [x for x in existing if not any(_json_equal(x, v) for v in value)]
        elif (
            key.startswith("$")
            and key not in ("$patch", "$retainKeys")
            and not key.startswith("$setElementOrder/")
        ):
            raise PatchError(f'{_join(path, key)}: unknown directive "{key}"')

    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = _join(path, key)
        if value is None:
            result.pop(key, None)
            continue
        merged = _merge_value(result.get(key), value, child, keys)
        if merged is _DELETE:
            result.pop(key, None)
        else:
            result[key] = merged

    for key, order in patch.items():
        if key.startswith("$setElementOrder/"):
            name = key.split("/", 1)[1]
            if not isinstance(order, list):
                raise PatchError(f"{_join(path, key)}: must be a list")
            if isinstance(result.get(name), list):
                result[name] = _reorder(result[name], order, keys.get(_join(path, name)), _join(path, name))
    return result


def _merge_list(current: list[Any], patch: list[Any], path: str, keys: dict[str, str]) -> list[Any]:
    # A bare {"$patch": "replace"} element replaces the whole list; with other keys it is
    # a map directive for that one element.
    replace = [i for i, item in enumerate(patch) if item == {"$patch": "replace"}]
    if replace:
        rest = [item for i, item in enumerate(patch) if i not in replace]
        return _merge_list([], rest, path, keys) if path in keys else copy.deepcopy(rest)
    strategy = keys.get(path)
    if strategy is None:
        return copy.deepcopy(patch)
    if strategy == SET:
        result = copy.deepcopy(current)
        for item in patch:
            if isinstance(item, (dict, list)):
                raise PatchError(f"{path}: expected a list of primitive values, found {item!r}")
            if not any(_json_equal(item, x) for x in result):
                result.append(item)
        return result
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f'{path}: expected objects with merge key "{strategy}", found {item!r}')
        if strategy not in item:
            raise PatchError(f'{path}: list element {item!r} does not have the merge key "{strategy}"')
        key_value = item[strategy]
        matches = [
            i
            for i, existing in enumerate(result)
            if isinstance(existing, dict) and _json_equal(existing.get(strategy), key_value)
        ]
        if item.get("$patch") == "delete":
            result = [x for i, x in enumerate(result) if i not in matches]
            continue
        if matches:
            merged = _merge_map(result[matches[0]], item, path, keys)
        else:
            merged = _merge_map({}, item, path, keys)
        if merged is _DELETE:
            result = [x for i, x in enumerate(result) if i not in matches]
        elif matches:
            result[matches[0]] = merged
        else:
            result.append(merged)
    return result


def _reorder(items: list[Any], order: list[Any], strategy: str | None, path: str) -> list[Any]:
    """Put `items` in the order of `$setElementOrder`; unmentioned items follow, in their order."""

    def identity(item: Any) -> Any:
        if strategy and strategy != SET:
            return item.get(strategy) if isinstance(item, dict) else item
        return item

    wanted: list[Any] = []
    for entry in order:
        if strategy and strategy != SET:
            if not isinstance(entry, dict) or strategy not in entry:
                raise PatchError(f'$setElementOrder/{path}: each entry must be an object with "{strategy}"')
            wanted.append(entry[strategy])
        else:
            wanted.append(entry)
    placed: list[Any] = []
    used: set[int] = set()
    for want in wanted:
        for i, item in enumerate(items):
            if i not in used and _json_equal(identity(item), want):
                placed.append(item)
                used.add(i)
                break
    return placed + [item for i, item in enumerate(items) if i not in used]
