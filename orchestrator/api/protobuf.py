"""Kubernetes protobuf bodies: read them into the JSON shape, write the JSON shape back out.

kube-apiserver speaks `application/vnd.kubernetes.protobuf` besides JSON, and client-go's
typed clients (kubectl's `create namespace|deployment|configmap|secret|service`,
`autoscale`, `drain`'s DELETE) send it. A body is the magic `k8s\\x00` followed by a
`runtime.Unknown` message: `typeMeta` (1: `apiVersion` 1, `kind` 2), `raw` (2: the object's
own message), `contentEncoding` (3), `contentType` (4).

Design:

* The message tables are data (`protoschema.MESSAGES`, from the API's published
  `generated.proto` files and the Go types' JSON tags); this module is the one codec that
  walks them. Nothing here knows a kind by name, except the few messages whose JSON form
  is not an object: `Time` (RFC 3339, seconds; a zero Time is `null`), `MicroTime` (RFC 3339
  with microseconds), `Quantity` (its string), `IntOrString` (a number or a string by its
  type), `FieldsV1` and `RawExtension` (raw JSON).
* `decode` yields exactly what Go's JSON encoding of the decoded Go object would be, so the
  JSON and protobuf paths feed the registry the same dict: a scalar field that is absent or
  zero is left out when its JSON name is `omitempty` and the Go field is not a pointer
  (Go's encoder writes every non-pointer scalar, zero or not), kept when it is a pointer
  (a `replicas: 0` that was sent); structs that are not pointers are always present (`{}`);
  `[]byte` fields (Secret `data`) are base64 strings; inlined structs (`Volume`'s source,
  `Probe`'s handler) merge into their parent's object. `apiVersion` and `kind` come from
  the envelope.
* `encode` is the inverse and writes what Go's marshaller writes (every non-pointer field,
  zero or not, fields in number order, map entries sorted by key), so a body kubectl sent
  is re-encoded byte for byte from its decoded dict. JSON keys without a field are dropped.
* Hostile input is an error, never an exception of another kind: every length is checked
  against what is left, varints are at most ten bytes, nesting (messages and groups) is
  bounded by `MAX_DEPTH`, field numbers and wire types are checked against the table.
  Fields whose numbers the table does not know are skipped, as protobuf readers do. All
  failures are `ProtobufError` (the request layer answers 400); values that cannot be
  written are `NotEncodable` (the response layer answers JSON instead).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from .protoschema import ANY_VERSION, KINDS, MESSAGES, Field

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAX_DEPTH = 100  # levels of nested messages (and groups) in a body
VALUES_BASE, VALUES_PER_BYTE = 10_000, 1  # JSON values a body may decode into: base + per byte

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LEN: "length-delimited", START_GROUP: "start-group",
               END_GROUP: "end-group", FIXED32: "fixed32"}
_MAX_FIELD = 2**29 - 1
_U64 = 2**64

_INTS = ("int32", "int64")
_SCALARS = ("string", "bytes", "bool", *_INTS)
_TIME, _MICRO_TIME = "meta.v1.Time", "meta.v1.MicroTime"
_QUANTITY, _INT_OR_STRING = "resource.Quantity", "intstr.IntOrString"
_FIELDS_V1, _RAW_EXTENSION = "meta.v1.FieldsV1", "runtime.RawExtension"
SPECIAL = frozenset({_TIME, _MICRO_TIME, _QUANTITY, _INT_OR_STRING, _FIELDS_V1, _RAW_EXTENSION})


class ProtobufError(ValueError):
    """A body that is not a well-formed protobuf message of the kind it names."""


class NotEncodable(ValueError):
    """An object that has no protobuf table, or a value that does not fit its field."""


# field tables by number (decode) and in number order (encode)
_BY_NUMBER: dict[str, dict[int, Field]] = {name: {f[0]: f for f in fields} for name, fields in MESSAGES.items()}


def message_for(api_version: str, kind: str) -> str | None:
    """The message of `kind` in `api_version`, or None when it has no table."""
    return KINDS.get((api_version, kind)) or ANY_VERSION.get(kind)


# -- reading the wire format -------------------------------------------------------------


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos < end and data[pos] < 0x80:  # the common case: one byte
        return data[pos], pos + 1
    value = shift = 0
    for i in range(pos, min(end, pos + 10)):
        b = data[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if value >= _U64:
                raise ProtobufError("a varint overflows 64 bits")
            return value, i + 1
        shift += 7
    if end - pos >= 10:
        raise ProtobufError("a varint is longer than 10 bytes")
    raise ProtobufError("truncated varint")


def _fields(data: bytes, pos: int, end: int, depth: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) of each field in data[pos:end]; the
    value of a varint or fixed field is in the third slot (the fourth is where it ends), a
    length-delimited field's bytes are data[start:end]. Groups are skipped whole (no table
    has one)."""
    while pos < end:
        number, wire, a, b, pos = _field(data, pos, end, depth)
        yield number, wire, a, b


def _field(data: bytes, pos: int, end: int, depth: int) -> tuple[int, int, int, int, int]:
    """The field that starts at `pos`: (number, wire type, value or start, end, next position)."""
    key, pos = _varint(data, pos, end)
    number, wire = key >> 3, key & 7
    if number < 1 or number > _MAX_FIELD:
        raise ProtobufError(f"invalid field number {number}")
    if wire == VARINT:
        value, pos = _varint(data, pos, end)
        return number, wire, value, pos, pos
    if wire == LEN:
        length, pos = _varint(data, pos, end)
        if length > end - pos:
            raise ProtobufError(f"field {number}: length {length} runs past the end of its message "
                                f"({end - pos} bytes left)")
        return number, wire, pos, pos + length, pos + length
    if wire in (FIXED64, FIXED32):
        size = 8 if wire == FIXED64 else 4
        if end - pos < size:
            raise ProtobufError(f"field {number}: truncated {_WIRE_NAMES[wire]} value")
        return number, wire, int.from_bytes(data[pos:pos + size], "little"), pos + size, pos + size
    if wire == START_GROUP:
        pos = _skip_group(data, pos, end, number, depth + 1)
        return number, wire, 0, pos, pos
    if wire == END_GROUP:
        raise ProtobufError(f"field {number}: end-group without a start-group")
    raise ProtobufError(f"field {number}: illegal wire type {wire}")


def _skip_group(data: bytes, pos: int, end: int, number: int, depth: int) -> int:
    """The position after the end-group of a group `number` whose fields start at `pos`."""
    if depth > MAX_DEPTH:
        raise ProtobufError(f"nested more than {MAX_DEPTH} levels deep")
    while pos < end:
        key, after = _varint(data, pos, end)
        if key & 7 == END_GROUP:
            if key >> 3 != number:
                raise ProtobufError(f"group {number} ends with the end-group of field {key >> 3}")
            return after
        pos = _field(data, pos, end, depth)[4]
    raise ProtobufError(f"group {number} has no end-group")


def _int(value: int, type_name: str) -> int:
    if type_name == "int32":  # Go writes a negative int32 as its 64-bit sign extension
        value &= 0xFFFFFFFF
        return value - 2**32 if value >= 2**31 else value
    return value - _U64 if value >= 2**63 else value


def _text(data: bytes) -> str:
    # Go keeps the bytes; its JSON encoder replaces invalid UTF-8 with U+FFFD
    return data.decode("utf-8", errors="replace")


# -- decoding ----------------------------------------------------------------------------


class _Budget:
    """How many more JSON values a decode may produce: a small body cannot unfold into a
    huge one (every field a Go encoder writes takes at least a byte or two; zero values of
    absent structs are filled in, and would otherwise multiply)."""

    def __init__(self, size: int) -> None:
        self.limit = self.left = VALUES_BASE + VALUES_PER_BYTE * size

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise ProtobufError(f"the body unfolds into more than {self.limit} values")


def decode(body: bytes, budget: _Budget | None = None) -> dict[str, Any]:
    """A protobuf body (envelope and message) as the JSON object Kubernetes would read it as."""
    budget = budget or _Budget(len(body))
    api_version, kind, raw = decode_envelope(body)
    message = message_for(api_version, kind)
    if message is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    out: dict[str, Any] = {}
    if kind:
        out["kind"] = kind
    if api_version:
        out["apiVersion"] = api_version
    out.update(decode_message(message, raw, budget=budget))
    return out


def decode_envelope(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a `k8s\\x00` + runtime.Unknown body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf prefix k8s\\x00")
    api_version = kind = encoding = ""
    raw = b""
    saw_type = False
    for number, wire, a, b in _fields(body, len(MAGIC), len(body), 0):
        if number in (1, 2, 3, 4) and wire != LEN:
            raise ProtobufError(f"runtime.Unknown field {number}: wire type {_WIRE_NAMES[wire]}, "
                                "expected length-delimited")
        if number == 1:
            saw_type = True
            for n, w, c, d in _fields(body, a, b, 1):
                if n in (1, 2) and w != LEN:
                    raise ProtobufError(f"runtime.TypeMeta field {n}: wire type {_WIRE_NAMES[w]}, "
                                        "expected length-delimited")
                if n == 1:
                    api_version = _text(body[c:d])
                elif n == 2:
                    kind = _text(body[c:d])
        elif number == 2:
            raw = body[a:b]
        elif number == 3:
            encoding = _text(body[a:b])
    if not saw_type or not kind:
        raise ProtobufError("the envelope names no kind (runtime.Unknown without typeMeta.kind)")
    if encoding:
        raise ProtobufError(f"content encoding {encoding!r} is not supported")
    return api_version, kind, raw


def decode_message(message: str, data: bytes, depth: int = 1, budget: _Budget | None = None) -> dict[str, Any]:
    """`data` (a `message`) as its JSON object."""
    value = _decode(message, data, 0, len(data), depth, budget or _Budget(len(data)))
    if not isinstance(value, dict):
        raise ProtobufError(f"{message} is not an object")
    return value


def _decode(message: str, data: bytes, pos: int, end: int, depth: int, budget: _Budget) -> Any:
    budget.spend(1)
    if depth > MAX_DEPTH:
        raise ProtobufError(f"nested more than {MAX_DEPTH} levels deep")
    if message in SPECIAL:
        return _decode_special(message, data, pos, end, depth, budget)
    table = _BY_NUMBER[message]
    present: dict[int, Any] = {}
    chunks: dict[int, list[tuple[int, int]]] = {}  # message fields: their pieces, merged
    for number, wire, a, b in _fields(data, pos, end, depth):
        field = table.get(number)
        if field is None:
            continue  # a field this table does not know: skipped
        _, json_name, type_name, flags = field
        if "m" in flags:
            if wire != LEN:
                raise _wrong_wire(message, field, wire, LEN)
            key, val = _map_entry(type_name, data, a, b, depth + 1, _where(message, field), budget)
            present.setdefault(number, {})[key] = val
        elif type_name in _SCALARS:
            if wire != _SCALAR_WIRE[type_name] and not (wire == LEN and "r" in flags):
                raise _wrong_wire(message, field, wire, _SCALAR_WIRE[type_name])
            values = _scalars(type_name, wire, data, a, b, "r" in flags, "")
            budget.spend(len(values))
            if "r" in flags:
                present.setdefault(number, []).extend(values)
            else:
                present[number] = values[-1]
        else:
            if wire != LEN:
                raise _wrong_wire(message, field, wire, LEN)
            if "r" in flags:
                present.setdefault(number, []).append(_decode(type_name, data, a, b, depth + 1, budget))
            else:
                budget.spend(1)
                chunks.setdefault(number, []).append((a, b))
    for number, pieces in chunks.items():
        type_name = table[number][2]
        if len(pieces) == 1:
            present[number] = _decode(type_name, data, pieces[0][0], pieces[0][1], depth + 1, budget)
        else:  # a message field sent more than once: its pieces merge, as protobuf says
            joined = b"".join(data[a:b] for a, b in pieces)
            present[number] = _decode(type_name, joined, 0, len(joined), depth + 1, budget)
    return _as_json(table, present, depth, budget)


_SCALAR_WIRE = {"string": LEN, "bytes": LEN, "bool": VARINT, "int32": VARINT, "int64": VARINT}


def _where(message: str, field: Field) -> str:
    return f"{message} field {field[0]} ({field[1] or field[2]})"


def _wrong_wire(message: str, field: Field, wire: int, expected: int) -> ProtobufError:
    return ProtobufError(f"{_where(message, field)}: wire type {_WIRE_NAMES[wire]}, expected {_WIRE_NAMES[expected]}")


def _scalars(type_name: str, wire: int, data: bytes, a: int, b: int, repeated: bool, where: str) -> list[Any]:
    if type_name in ("string", "bytes"):
        if wire != LEN:
            raise ProtobufError(f"{where}: wire type {_WIRE_NAMES[wire]}, expected length-delimited")
        chunk = data[a:b]
        return [_text(chunk) if type_name == "string" else base64.b64encode(chunk).decode("ascii")]
    if wire == VARINT:
        raw = [a]
    elif wire == LEN and repeated:  # packed
        raw = []
        pos = a
        while pos < b:
            v, pos = _varint(data, pos, b)
            raw.append(v)
    else:
        raise ProtobufError(f"{where}: wire type {_WIRE_NAMES[wire]}, expected varint")
    if type_name == "bool":
        return [v != 0 for v in raw]
    return [_int(v, type_name) for v in raw]


def _map_entry(type_name: str, data: bytes, a: int, b: int, depth: int, where: str,
               budget: _Budget) -> tuple[str, Any]:
    budget.spend(1)
    if depth > MAX_DEPTH:
        raise ProtobufError(f"nested more than {MAX_DEPTH} levels deep")
    key = ""
    value: Any = None
    pieces: list[tuple[int, int]] = []
    for number, wire, c, d in _fields(data, a, b, depth):
        if number == 1:
            key = _scalars("string", wire, data, c, d, False, f"{where} key")[0]
        elif number == 2:
            if type_name in _SCALARS:
                value = _scalars(type_name, wire, data, c, d, False, f"{where}[{key!r}]")[0]
            elif wire != LEN:
                raise ProtobufError(f"{where}[{key!r}]: wire type {_WIRE_NAMES[wire]}, expected length-delimited")
            else:
                pieces.append((c, d))
    if type_name not in _SCALARS:
        joined = b"".join(data[c:d] for c, d in pieces)
        value = _decode(type_name, joined, 0, len(joined), depth + 1, budget)
    elif value is None:
        value = _zero(type_name)
    return key, value


def _zero(type_name: str) -> Any:
    return {"string": "", "bytes": "", "bool": False}.get(type_name, 0)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (value == 0 and not isinstance(value, bool))


def _as_json(table: dict[int, Field], present: dict[int, Any], depth: int, budget: _Budget) -> dict[str, Any]:
    """The fields of a decoded message as Go's JSON encoder writes the Go struct."""
    out: dict[str, Any] = {}
    for number, json_name, type_name, flags in table.values():
        value = present.get(number, _ABSENT)
        if "i" in flags:  # inlined struct: its fields are the parent's
            if value is _ABSENT:
                value = _decode(type_name, b"", 0, 0, depth + 1, budget)
            out.update(value)
            continue
        pointer, omitempty = "p" in flags, "o" in flags
        if "r" in flags or "m" in flags:
            if value is not _ABSENT and value:
                out[json_name] = value
            elif not omitempty:
                out[json_name] = None
        elif type_name in _SCALARS:
            if value is _ABSENT:
                if pointer:
                    if not omitempty:
                        out[json_name] = None
                    continue
                value = _zero(type_name)
            if omitempty and not pointer and _is_zero(value):
                continue
            out[json_name] = value
        else:  # a struct
            if value is _ABSENT:
                if pointer:
                    if not omitempty:
                        out[json_name] = None
                    continue
                value = _decode(type_name, b"", 0, 0, depth + 1, budget)
            out[json_name] = value
    budget.spend(len(out))
    return out


_ABSENT: Any = object()


# the fields of the messages with a JSON form of their own, and their wire types
_SPECIAL_WIRES: dict[str, dict[int, int]] = {
    _TIME: {1: VARINT, 2: VARINT},
    _MICRO_TIME: {1: VARINT, 2: VARINT},
    _QUANTITY: {1: LEN},
    _INT_OR_STRING: {1: VARINT, 2: VARINT, 3: LEN},
    _FIELDS_V1: {1: LEN},
    _RAW_EXTENSION: {1: LEN},
}


def _decode_special(message: str, data: bytes, pos: int, end: int, depth: int, budget: _Budget) -> Any:
    wires = _SPECIAL_WIRES[message]
    ints: dict[int, int] = {}
    text: dict[int, bytes] = {}
    for number, wire, a, b in _fields(data, pos, end, depth):
        expected = wires.get(number)
        if expected is None:
            continue  # not one of its fields: skipped
        if wire != expected:
            raise ProtobufError(f"{message} field {number}: wire type {_WIRE_NAMES[wire]}, "
                                f"expected {_WIRE_NAMES[expected]}")
        if wire == VARINT:
            ints[number] = a
        else:
            text[number] = data[a:b]
    if message in (_TIME, _MICRO_TIME):
        if pos == end:
            return None  # the zero Time
        seconds = _int(ints.get(1, 0), "int64")
        nanos = _int(ints.get(2, 0), "int32") if message == _MICRO_TIME else 0
        return _format_time(seconds, nanos, message == _MICRO_TIME)
    if message == _QUANTITY:
        return _text(text.get(1, b"")) or "0"
    if message == _INT_OR_STRING:
        kind = _int(ints.get(1, 0), "int64")
        if kind == 0:
            return _int(ints.get(2, 0), "int32")
        if kind == 1:
            return _text(text.get(3, b""))
        raise ProtobufError(f"IntOrString has an impossible type {kind}")
    # FieldsV1, RawExtension: JSON, kept as it is (the request layer bounds its nesting)
    raw = text.get(1)
    if raw is None:
        return None
    budget.spend(len(raw) // 2)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtobufError(f"{message} does not hold JSON") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _format_time(seconds: int, nanos: int, micro: bool) -> str:
    if micro and not 0 <= nanos < 1_000_000_000:
        raise ProtobufError(f"MicroTime nanos {nanos} out of range")
    try:
        t = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise ProtobufError(f"time {seconds} seconds is out of range") from None
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- encoding ----------------------------------------------------------------------------


def encode_response(obj: Any) -> bytes:
    """The protobuf body (envelope and message) of a response object, list or Status;
    `NotEncodable` when it has no table or a value does not fit its field."""
    if not isinstance(obj, dict):
        raise NotEncodable("only objects are written as protobuf")
    return encode(obj)


def encode(obj: dict[str, Any]) -> bytes:
    """`obj` (a JSON object with apiVersion and kind) as a protobuf body: envelope and message."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise NotEncodable("the object has no apiVersion or kind")
    message = message_for(api_version, kind)
    if message is None:
        raise NotEncodable(f"{api_version} {kind} has no protobuf table")
    raw = encode_message(message, obj)
    type_meta = _len_field(1, api_version.encode()) + _len_field(2, kind.encode())
    return MAGIC + _len_field(1, type_meta) + _len_field(2, raw) + _len_field(3, b"") + _len_field(4, b"")


def encode_message(message: str, obj: Any, depth: int = 1) -> bytes:
    """`obj` (the JSON form of a `message`) in the wire format."""
    if depth > MAX_DEPTH:
        raise NotEncodable(f"nested more than {MAX_DEPTH} levels deep")
    if message in SPECIAL:
        return _encode_special(message, obj)
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise NotEncodable(f"{message} must be an object, not {type(obj).__name__}")
    out = bytearray()
    for number, json_name, type_name, flags in MESSAGES[message]:
        if "i" in flags:
            out += _len_field(number, encode_message(type_name, obj, depth + 1))
            continue
        value = obj.get(json_name)
        if "m" in flags:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise NotEncodable(f"{json_name} must be an object")
            for key in sorted(value):
                entry = _len_field(1, key.encode()) + _value(2, type_name, value[key], False, depth)
                out += _len_field(number, entry)
        elif "r" in flags:
            if value is None:
                continue
            if not isinstance(value, list):
                raise NotEncodable(f"{json_name} must be an array")
            for item in value:
                out += _value(number, type_name, item, False, depth)
        else:
            out += _value(number, type_name, value, "p" in flags, depth)
    return bytes(out)


def _value(number: int, type_name: str, value: Any, pointer: bool, depth: int) -> bytes:
    if value is None and pointer:
        return b""
    if type_name == "string":
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise NotEncodable(f"field {number} must be a string")
        return _len_field(number, value.encode())
    if type_name == "bytes":
        if value is None:
            return b""
        if not isinstance(value, str):
            raise NotEncodable(f"field {number} must be a base64 string")
        try:
            return _len_field(number, base64.b64decode(value, validate=True))
        except binascii.Error:
            raise NotEncodable(f"field {number} is not base64") from None
    if type_name == "bool":
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise NotEncodable(f"field {number} must be a boolean")
        return _key(number, VARINT) + _uvarint(int(value))
    if type_name in _INTS:
        if value is None:
            value = 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise NotEncodable(f"field {number} must be an integer")
        bits = 32 if type_name == "int32" else 64
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise NotEncodable(f"field {number} is out of range for {type_name}")
        return _key(number, VARINT) + _uvarint(value % _U64)
    return _len_field(number, encode_message(type_name, value, depth + 1))


def _encode_special(message: str, value: Any) -> bytes:
    if message in (_TIME, _MICRO_TIME):
        if value is None or value == "":
            return b""
        seconds, nanos = _parse_time(value, message == _MICRO_TIME)
        return _key(1, VARINT) + _uvarint(seconds % _U64) + _key(2, VARINT) + _uvarint(nanos)
    if message == _QUANTITY:
        if value is None:
            value = "0"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = json.dumps(value)
        if not isinstance(value, str):
            raise NotEncodable("a quantity must be a string or a number")
        return _len_field(1, value.encode())
    if message == _INT_OR_STRING:
        if value is None:
            value = 0
        if isinstance(value, str):
            return (_key(1, VARINT) + _uvarint(1) + _key(2, VARINT) + _uvarint(0) + _len_field(3, value.encode()))
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) <= value < 2**31:
            raise NotEncodable("an int-or-string must be a string or a 32-bit integer")
        return _key(1, VARINT) + _uvarint(0) + _key(2, VARINT) + _uvarint(value % _U64) + _len_field(3, b"")
    if value is None:  # FieldsV1, RawExtension
        return b""
    return _len_field(1, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))")


def _parse_time(value: Any, micro: bool) -> tuple[int, int]:
    m = _TIME_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise NotEncodable(f"{value!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        t = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise NotEncodable(f"{value!r} is not an RFC 3339 time") from None
    if m.group(8):
        offset = (int(m.group(9)) * 60 + int(m.group(10))) * 60
        t -= timedelta(seconds=offset if m.group(8) == "+" else -offset)
    seconds = (t - _EPOCH) // timedelta(seconds=1)
    nanos = int((m.group(7) or "0").ljust(9, "0")) if micro else 0
    if micro:
        nanos -= nanos % 1000
    return seconds, nanos


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, LEN) + _uvarint(len(payload)) + payload
