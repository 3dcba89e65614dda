"""A small Kubernetes JSONPath evaluator: what `wait --for=jsonpath=…` needs.

Supported, as in kubectl's templates: `{.a.b}`, `{.a['b.c']}` (quoted keys, for
annotations with dots), `{.items[0]}`, `{.items[-1]}`, `{.items[*].name}`, `{..name}`
(recursive descent), and filters `[?(@.type=="Ready")]` / `[?(@.x!=1)]` / `[?(@.x)]`
(comparison with a quoted string or a number). The braces are optional and a leading `$`
is accepted. `find` returns every value the path reaches (a list: paths through `[*]` or
filters reach several); `text` renders a value as kubectl prints it (strings bare,
everything else as compact JSON).
"""

from __future__ import annotations

import json
import re
from typing import Any


class JsonPathError(ValueError):
    pass


_FILTER = re.compile(r"^\?\(\s*@((?:\.[\w.-]+|\[['\"][^'\"]+['\"]\])+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _tokens(expr: str) -> list[tuple[str, str]]:
    """`.a[0]['b.c']..d[*]` → [("key","a"), ("index","0"), ("key","b.c"), ("descend","d"), ("index","*")]."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if expr.startswith("..", i):
            m = re.match(r"[\w-]+|\*", expr[i + 2:])
            if not m:
                raise JsonPathError(f"expected a field name after '..' in {expr!r}")
            out.append(("descend", m.group()))
            i += 2 + m.end()
        elif c == ".":
            m = re.match(r"[\w-]+|\*", expr[i + 1:])
            if not m:
                if i + 1 == len(expr):
                    i += 1
                    continue
                raise JsonPathError(f"expected a field name after '.' at offset {i} of {expr!r}")
            out.append(("key", m.group()))
            i += 1 + m.end()
        elif c == "[":
            depth, j = 0, i
            while j < len(expr):
                if expr[j] == "[":
                    depth += 1
                elif expr[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(expr):
                raise JsonPathError(f"unclosed '[' in {expr!r}")
            inner = expr[i + 1:j].strip()
            if inner[:1] in "'\"" and inner[-1:] == inner[:1]:
                out.append(("key", inner[1:-1]))
            elif inner.startswith("?"):
                out.append(("filter", inner))
            else:
                out.append(("index", inner))
            i = j + 1
        else:
            raise JsonPathError(f"unexpected {c!r} at offset {i} of {expr!r}")
    return out


def strip_braces(expr: str) -> str:
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    return text


def _descend(value: Any, name: str) -> list[Any]:
    out: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if name in ("*", k):
                out.append(v)
            out.extend(_descend(v, name))
    elif isinstance(value, list):
        for v in value:
            out.extend(_descend(v, name))
    return out


def _literal(text: str) -> Any:
    text = text.strip()
    if text[:1] in "'\"" and text[-1:] == text[:1]:
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _matches(item: Any, cond: str) -> bool:
    m = _FILTER.match(cond)
    if not m:
        raise JsonPathError(f"unsupported filter [{cond}]: use ?(@.field==\"value\")")
    found = find(item, m.group(1))
    if m.group(2) is None:
        return bool(found) and found[0] not in (None, False, "")
    if not found:
        return False
    left, right = found[0], _literal(m.group(3))
    op = m.group(2)
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    try:
        return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])
    except TypeError:
        return False


def find(data: Any, expr: str) -> list[Any]:
    """Every value `expr` reaches in `data` (empty: nothing there)."""
    current = [data]
    for kind, arg in _tokens(strip_braces(expr)):
        nxt: list[Any] = []
        for value in current:
            if kind == "key":
                if arg == "*":
                    if isinstance(value, dict):
                        nxt.extend(value.values())
                    elif isinstance(value, list):
                        nxt.extend(value)
                elif isinstance(value, dict) and arg in value:
                    nxt.append(value[arg])
            elif kind == "descend":
                nxt.extend(_descend(value, arg))
            elif kind == "index":
                if not isinstance(value, list):
                    continue
                if arg == "*":
                    nxt.extend(value)
                elif ":" in arg:
                    parts = [int(p) if p.strip() else None for p in arg.split(":")[:2]]
                    nxt.extend(value[slice(*parts)])
                else:
                    try:
                        n = int(arg)
                    except ValueError:
                        raise JsonPathError(f"bad index [{arg}]") from None
                    if -len(value) <= n < len(value):
                        nxt.append(value[n])
            else:
                if isinstance(value, list):
                    nxt.extend(v for v in value if _matches(v, arg))
        current = nxt
    return current


def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


# -- templates: `get -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'` ------------------

_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\\\": "\\"}


def _template_nodes(template: str) -> list[tuple[str, str]]:
    """("text", literal) | ("expr", path) | ("range", path) | ("end", "") | ("literal", text)."""
    nodes: list[tuple[str, str]] = []
    i = 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            nodes.append(("text", template[i:]))
            break
        if start > i:
            nodes.append(("text", template[i:start]))
        depth, j, quote = 0, start, ""
        while j < len(template):
            c = template[j]
            if quote:
                if c == quote and template[j - 1] != "\\":
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(template):
            raise JsonPathError(f"unclosed '{{' in the template {template!r}")
        inner = template[start + 1:j].strip()
        if inner.startswith("range "):
            nodes.append(("range", inner[len("range "):].strip()))
        elif inner == "end":
            nodes.append(("end", ""))
        elif inner[:1] in "'\"" and inner[-1:] == inner[:1] and len(inner) >= 2:
            text = inner[1:-1]
            for k, v in _ESCAPES.items():
                text = text.replace(k, v)
            nodes.append(("literal", text))
        else:
            nodes.append(("expr", inner))
        i = j + 1
    return nodes


def _render(nodes: list[tuple[str, str]], data: Any, out: list[str]) -> None:
    i = 0
    while i < len(nodes):
        kind, arg = nodes[i]
        if kind in ("text", "literal"):
            out.append(arg)
        elif kind == "expr":
            values = [data] if arg in ("@", "$", ".") else find(data, arg if not arg.startswith("@") else arg[1:])
            out.append(" ".join(text(v) for v in values))
        elif kind == "range":
            depth, j = 1, i + 1
            while j < len(nodes) and depth:
                depth += nodes[j][0] == "range"
                depth -= nodes[j][0] == "end"
                j += 1
            if depth:
                raise JsonPathError("a {range} has no matching {end}")
            body = nodes[i + 1:j - 1]
            for item in find(data, arg):
                _render(body, item, out)
            i = j
            continue
        else:
            raise JsonPathError("an {end} without a {range}")
        i += 1


def render(template: str, data: Any) -> str:
    """kubectl's `-o jsonpath=TEMPLATE` output for `data` (no newline added)."""
    out: list[str] = []
    _render(_template_nodes(template), data, out)
    return "".join(out)
