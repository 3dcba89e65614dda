"""Label and field selectors, with Kubernetes semantics.

Label selectors come in two spellings that compile to the same `LabelSelector`:

* the string syntax of `?labelSelector=` and `kubectl -l`: comma-separated requirements
  `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a` (exists), `!a` (does not exist);
  parsed by a small tokenizer + recursive-descent parser (`parse_label_selector`);
* the `metav1.LabelSelector` object of workload specs (`matchLabels` + `matchExpressions`
  with In/NotIn/Exists/DoesNotExist), via `selector_from_spec`.

A selector is a conjunction of `Requirement`s. The empty selector matches everything; a null
(`None`) selector object matches nothing, as in Kubernetes. Note that `a!=b` and `a notin (b)`
also match objects without the label `a`.

Field selectors (`?fieldSelector=`) support `=`, `==` and `!=` on a fixed set of dotted paths
per kind (`FIELD_SELECTOR_FIELDS`); anything else is a `SelectorError` that names the field.
The syntax checks for label keys and values live here too (`label_key_error`,
`label_value_error`) because validation and selectors must agree on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class SelectorError(ValueError):
    """A selector that cannot be parsed or is not supported."""


# --- label key / value syntax -----------------------------------------------------------------

_QUALIFIED_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_PART}$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid qualified name (`[prefix/]name`), or None if it is."""
    if not isinstance(key, str) or not key:
        return "name part must be non-empty"
    parts = key.split("/")
    if len(parts) > 2:
        return (
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character, with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"
        )
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix):
            return (
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character"
            )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME_RE.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc')"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why `value` is not a valid label value (empty is valid), or None if it is."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE_RE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
            "'my_value',  or '12345')"
        )
    return None


# --- label selectors --------------------------------------------------------------------------

OPERATORS = ("=", "!=", "in", "notin", "exists", "!")
_SPEC_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


@dataclass(frozen=True)
class Requirement:
    """One clause: `key <op> values`; `op` is one of OPERATORS ("!" = does not exist)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match when the label is absent, as in Kubernetes
        return not present or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        return f"{self.key} {self.op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements. `nothing=True` is the null selector (matches nothing)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True if this selector matches every object."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


_TOKEN_RE = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!)|(?P<word>[^\s=!(),]+))")


def _tokenize(s: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    s = s.rstrip()
    while pos < len(s):
        m = _TOKEN_RE.match(s, pos)
        if m is None or m.end() == pos:
            raise SelectorError(
                f"unable to parse requirement: unexpected character at position {pos} in {s!r}"
            )
        tokens.append(m.group("op") or m.group("word"))
        pos = m.end()
    return tokens


def _check_key(key: str, source: str) -> None:
    if key in ("==", "!=", "=", "(", ")", ",", "!", "in", "notin"):
        raise SelectorError(f"unable to parse requirement: expected a label key, found {key!r} in {source!r}")
    err = label_key_error(key)
    if err:
        raise SelectorError(f"invalid label key {key!r}: {err}")


def _check_value(value: str) -> None:
    err = label_value_error(value)
    if err:
        raise SelectorError(f"invalid label value {value!r}: {err}")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok

    def fail(self, what: str) -> SelectorError:
        found = self.peek()
        where = f"found {found!r}" if found is not None else "reached end of selector"
        return SelectorError(f"unable to parse requirement: expected {what}, {where} in {self.source!r}")

    def parse(self) -> LabelSelector:
        reqs: list[Requirement] = []
        if self.peek() is None:
            return EVERYTHING
        while True:
            reqs.append(self.requirement())
            tok = self.take()
            if tok is None:
                break
            if tok != ",":
                self.pos -= 1
                raise self.fail("',' between requirements")
        return LabelSelector(tuple(reqs))

    def requirement(self) -> Requirement:
        tok = self.peek()
        if tok == "!":
            self.take()
            key = self.take()
            if key is None:
                raise self.fail("a label key after '!'")
            _check_key(key, self.source)
            return Requirement(key, "!")
        key = self.take()
        if key is None or key == ",":
            self.pos -= 1
            raise self.fail("a label key")
        _check_key(key, self.source)
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "=="):
            return Requirement(key, "=", (self.value(),))
        if op == "!=":
            return Requirement(key, "!=", (self.value(),))
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        self.pos -= 1
        raise self.fail("one of '=', '==', '!=', 'in', 'notin'")

    def value(self) -> str:
        tok = self.peek()
        if tok is None or tok == ",":
            return ""  # `a=` selects the empty value, as in Kubernetes
        if tok in ("(", ")", "=", "==", "!=", "!"):
            raise self.fail("a label value")
        self.take()
        _check_value(tok)
        return tok

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            self.pos -= 1
            raise self.fail("'(' to open a set of values")
        values: list[str] = []
        expect_value = True
        while True:
            tok = self.take()
            if tok is None:
                raise self.fail("')' to close the set of values")
            if tok == ")":
                if expect_value and values:
                    values.append("")  # trailing comma: `(a,)` includes the empty value
                break
            if tok == ",":
                if expect_value:
                    values.append("")
                expect_value = True
                continue
            if not expect_value or tok in ("(", "=", "==", "!=", "!"):
                self.pos -= 1
                raise self.fail("',' or ')' in a set of values")
            _check_value(tok)
            values.append(tok)
            expect_value = False
        if not values:
            raise SelectorError(
                f"unable to parse requirement: a set of values must not be empty in {self.source!r}"
            )
        return tuple(values)


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse the Kubernetes string syntax (`app=web,tier in (a,b),!legacy`)."""
    if s is None:
        return EVERYTHING
    return _Parser(s).parse()


def selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Compile a metav1.LabelSelector object. `None` matches nothing; `{}` matches everything."""
    if spec is None:
        return NOTHING
    if not isinstance(spec, Mapping):
        raise SelectorError("a label selector must be an object with matchLabels and/or matchExpressions")
    reqs: list[Requirement] = []
    for key, value in sorted((spec.get("matchLabels") or {}).items()):
        _check_key(key, "matchLabels")
        _check_value(value)
        reqs.append(Requirement(key, "=", (value,)))
    for i, expr in enumerate(spec.get("matchExpressions") or []):
        where = f"matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            raise SelectorError(f"{where}: must be an object with key, operator and values")
        key = expr.get("key") or ""
        _check_key(key, where)
        operator = expr.get("operator")
        op = _SPEC_OPERATORS.get(operator)  # type: ignore[arg-type]
        if op is None:
            raise SelectorError(
                f'{where}.operator: unsupported value "{operator}": supported values: '
                '"DoesNotExist", "Exists", "In", "NotIn"'
            )
        values = tuple(expr.get("values") or ())
        if op in ("in", "notin") and not values:
            raise SelectorError(f"{where}.values: must be specified when `operator` is 'In' or 'NotIn'")
        if op in ("exists", "!") and values:
            raise SelectorError(
                f"{where}.values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            )
        for v in values:
            _check_value(v)
        reqs.append(Requirement(key, op, values))
    return LabelSelector(tuple(reqs))


def selector_to_string(spec: Mapping[str, Any] | None) -> str:
    """Render a metav1.LabelSelector in the string syntax (as `kubectl get -o wide` shows it)."""
    if spec is None:
        return "<none>"
    return str(selector_from_spec(spec))


def match_labels(
    selector: LabelSelector | str | Mapping[str, Any] | None, labels: Mapping[str, str] | None
) -> bool:
    """Convenience: match `labels` against a selector in any of its three forms."""
    if isinstance(selector, LabelSelector):
        sel = selector
    elif isinstance(selector, str):
        sel = parse_label_selector(selector)
    else:
        sel = selector_from_spec(selector)
    return sel.matches(labels)


# --- field selectors --------------------------------------------------------------------------

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")

# The fields each kind may be filtered on (besides metadata.name and metadata.namespace).
FIELD_SELECTOR_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "Secret": ("type",),
    "ConfigMap": (),
    "ReplicaSet": ("status.replicas",),
    "Deployment": (),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}


def supported_fields(kind: str | None = None) -> tuple[str, ...]:
    """Field-selector fields of `kind`, or of any kind when `kind` is None."""
    if kind is None:
        extra = sorted({f for fields in FIELD_SELECTOR_FIELDS.values() for f in fields})
        return _COMMON_FIELDS + tuple(extra)
    return _COMMON_FIELDS + FIELD_SELECTOR_FIELDS.get(kind, ())


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field, "" when absent (as field selectors compare it)."""
    if path == "source":  # events: `source` selects on source.component
        path = "source.component"
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        equal = field_value(obj, self.field) == self.value
        return equal if self.op == "=" else not equal

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{self.op}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = field(default_factory=tuple)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_for(self, field_name: str) -> str | None:
        """The value required by an `=` clause on `field_name` (lets a store narrow a scan)."""
        for r in self.requirements:
            if r.field == field_name and r.op == "=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_unescaped(s: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            cur.append(s[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] == "\\":
            if i + 1 >= len(s) or s[i + 1] not in "\\,=":
                raise SelectorError(f"invalid escape sequence in field selector value {s!r}")
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _find_operator(term: str) -> tuple[int, str] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return i, op
        i += 1
    return None


def parse_field_selector(s: str | None, kind: str | None = None) -> FieldSelector:
    """Parse `metadata.name=x,spec.nodeName!=y`. With `kind`, only that kind's fields are allowed."""
    if s is None or not s.strip():
        return FieldSelector()
    allowed = supported_fields(kind)
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(s, ","):
        term = term.strip()
        if not term:
            raise SelectorError(f"invalid field selector {s!r}: empty requirement")
        found = _find_operator(term)
        if found is None:
            raise SelectorError(
                f"invalid selector: {term!r}; can't understand {term!r} (expected field=value or field!=value)"
            )
        idx, op = found
        name = term[:idx].strip()
        value = _unescape(term[idx + len(op) :].strip())
        if not name:
            raise SelectorError(f"invalid field selector {term!r}: missing field name")
        if name not in allowed:
            what = f'"{kind}"' if kind else "any served kind"
            raise SelectorError(
                f'field label not supported: "{name}" is not a supported field selector for {what} '
                f"(supported: {', '.join(allowed)})"
            )
        reqs.append(FieldRequirement(name, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))


def matches_all(
    objects: Iterable[Mapping[str, Any]],
    label_selector: LabelSelector | None = None,
    field_selector: FieldSelector | None = None,
) -> list[Mapping[str, Any]]:
    """Filter objects by both selectors (either may be None)."""
    out = []
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if label_selector is not None and not label_selector.matches(labels):
            continue
        if field_selector is not None and not field_selector.matches(obj):
            continue
        out.append(obj)
    return out
