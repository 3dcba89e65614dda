"""SPDY/3 framing, as kubectl's port-forward speaks it (`SPDY/3.1` upgrades, `portforward.k8s.io`).

Only the wire format, no I/O: `FrameReader` turns bytes (fed in any slicing) into frame
objects, the `encode_*` functions and `FrameWriter` turn frames into bytes. Sessions (who
answers what) live with their users (`orchestrator.api.portforward`).

Wire format (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol - Draft 3"):

* every frame has an 8-byte header. A *control* frame: bit 1, a 15-bit version (3), a
  16-bit type, then 8 bits of flags and a 24-bit length. A *data* frame: bit 0, a 31-bit
  stream id, 8 bits of flags (FIN = 1) and a 24-bit length. Integers are big-endian.
* SYN_STREAM (1): stream id, associated-to stream id (31 bits each), a 3-bit priority and
  5 unused bits, an 8-bit credential slot, then a header block; flags FIN, UNIDIRECTIONAL.
  SYN_REPLY (2) and HEADERS (8): stream id, header block; flag FIN. RST_STREAM (3): stream
  id, status. SETTINGS (4): a count, then entries of 8-bit flags, 24-bit id, 32-bit value.
  PING (6): a 32-bit id (clients use odd ids, servers even; the receiver of the other
  side's ping sends it back unchanged). GOAWAY (7): last good stream id, status.
  WINDOW_UPDATE (9): stream id, delta. Unknown control types are skipped, as the draft says.
* a header block is a 32-bit count of pairs, each a 32-bit length and a lower-case name,
  then a 32-bit length and a value (several values are joined by NUL). Blocks are zlib
  compressed, each direction with its own stream that lasts the whole connection and
  starts from the SPDY/3 dictionary (`DICTIONARY`); every block ends with a sync flush.

Malformed input raises `SpdyError`: a session answers it with GOAWAY (PROTOCOL_ERROR) and
closes the connection; it never escapes as another exception. Frames are bounded
(`MAX_FRAME`), and so is a decompressed header block (`MAX_HEADER_BLOCK`), so a peer cannot
make the reader hold more than that.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 7, 8, 9
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2

MAX_FRAME = (1 << 24) - 1  # a 24-bit length
MAX_HEADER_BLOCK = 1 << 20  # decompressed; kubectl's blocks are a few dozen bytes
HEADER = 8

# The SPDY/3 zlib dictionary: these names, each preceded by its length as 4 big-endian
# bytes, then the text of `_DICTIONARY_TAIL`, in this order (the draft, section 2.6.10.1).
_DICTIONARY_WORDS = (
    *"options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges "
     "age allow authorization cache-control connection content-base content-encoding content-language "
     "content-length content-location content-md5 content-range content-type date etag expect expires from "
     "host if-match if-modified-since if-none-match if-range if-unmodified-since last-modified location "
     "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after server te trailer "
     "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status".split(),
    "200 OK",
    *"version HTTP/1.1 url public set-cookie keep-alive origin".split(),
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    out = bytearray()
    for word in _DICTIONARY_WORDS:
        out += struct.pack(">I", len(word)) + word.encode()
    return bytes(out + _DICTIONARY_TAIL.encode())


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class SpdyError(Exception):
    """The peer sent something that is not SPDY/3: the connection cannot go on."""


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated_id: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)  # (flags, id, value)


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway
         | WindowUpdate)


def header_value(headers: Mapping[str, Sequence[str]], name: str) -> str:
    """The first value of a header ("" when absent)."""
    values = headers.get(name.lower()) or []
    return values[0] if values else ""


# -- header blocks --------------------------------------------------------------------------------


def pack_header_block(headers: Mapping[str, Sequence[str]]) -> bytes:
    """The uncompressed block: names lower-cased, several values joined by NUL."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
    return bytes(out)


def unpack_header_block(block: bytes) -> Headers:
    """Read an uncompressed block; SpdyError when it is truncated, padded or otherwise wrong."""
    if len(block) < 4:
        raise SpdyError("header block too short")
    (count,) = struct.unpack_from(">I", block)
    if count > (len(block) - 4) // 8:  # each pair takes 8 bytes at least
        raise SpdyError(f"header block claims {count} headers in {len(block)} bytes")
    headers: Headers = {}
    pos = 4
    for _ in range(count):
        parts: list[bytes] = []
        for _ in range(2):
            if pos + 4 > len(block):
                raise SpdyError("header block truncated")
            (size,) = struct.unpack_from(">I", block, pos)
            pos += 4
            if pos + size > len(block):
                raise SpdyError("header block truncated")
            parts.append(block[pos:pos + size])
            pos += size
        try:
            name, value = parts[0].decode().lower(), parts[1].decode()
        except UnicodeDecodeError:
            raise SpdyError("header block is not UTF-8") from None
        if not name:
            raise SpdyError("empty header name")
        headers.setdefault(name, []).extend(value.split("\x00"))
    if pos != len(block):
        raise SpdyError("trailing bytes after the header block")
    return headers


class HeaderCompressor:
    """One direction's compression context (it lasts the whole connection)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY,
                                   zdict=DICTIONARY)

    def compress(self, headers: Mapping[str, Sequence[str]]) -> bytes:
        return self._z.compress(pack_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The other direction's context; each call takes one frame's compressed block."""

    def __init__(self, limit: int = MAX_HEADER_BLOCK) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)
        self._limit = limit

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data, self._limit + 1)
        except zlib.error as e:
            raise SpdyError(f"cannot decompress a header block: {e}") from None
        if len(block) > self._limit or self._z.unconsumed_tail:
            raise SpdyError(f"header block larger than {self._limit} bytes")
        return unpack_header_block(block)


# -- encoding -------------------------------------------------------------------------------------


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"control frame of {len(payload)} bytes is too large")
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes = b"", fin: bool = False) -> bytes:
    if not 0 < stream_id < 1 << 31:
        raise ValueError(f"invalid stream id {stream_id}")
    if len(data) > MAX_FRAME:
        raise ValueError(f"data frame of {len(data)} bytes is too large")
    return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, status))


def encode_ping(ping_id: int) -> bytes:
    return _control(PING, 0, struct.pack(">I", ping_id))


def encode_goaway(last_good_stream_id: int, status: int = GOAWAY_OK) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_good_stream_id & 0x7FFFFFFF, status))


def encode_settings(entries: Sequence[tuple[int, int, int]] = ()) -> bytes:
    body = struct.pack(">I", len(entries))
    for flags, ident, value in entries:
        body += struct.pack(">II", (flags << 24) | (ident & 0xFFFFFF), value)
    return _control(SETTINGS, 0, body)


def encode_window_update(stream_id: int, delta: int) -> bytes:
    return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF))


class FrameWriter:
    """Encodes frames that carry header blocks (they share one compression context)."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def syn_stream(self, stream_id: int, headers: Mapping[str, Sequence[str]], fin: bool = False,
                   associated_id: int = 0, priority: int = 0) -> bytes:
        flags = FLAG_FIN if fin else 0
        body = struct.pack(">IIBB", stream_id & 0x7FFFFFFF, associated_id & 0x7FFFFFFF, (priority & 7) << 5, 0)
        return _control(SYN_STREAM, flags, body + self._headers.compress(headers))

    def syn_reply(self, stream_id: int, headers: Mapping[str, Sequence[str]] | None = None,
                  fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id & 0x7FFFFFFF) + self._headers.compress(headers or {})
        return _control(SYN_REPLY, FLAG_FIN if fin else 0, body)

    def headers(self, stream_id: int, headers: Mapping[str, Sequence[str]], fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id & 0x7FFFFFFF) + self._headers.compress(headers)
        return _control(HEADERS, FLAG_FIN if fin else 0, body)


# -- decoding -------------------------------------------------------------------------------------


class FrameReader:
    """Bytes in (`feed`), frames out (`frames`); holds at most one incomplete frame."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._headers = HeaderDecompressor()
        self._max = max_frame
        self._broken = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    def frames(self) -> Iterator[Frame]:
        """Every complete frame fed so far; SpdyError on malformed input (and after it)."""
        while True:
            if self._broken:
                raise SpdyError("the connection already failed")
            if len(self._buf) < HEADER:
                return
            first, second = struct.unpack_from(">II", self._buf)
            length = second & 0xFFFFFF
            if length > self._max:
                self._broken = True
                raise SpdyError(f"frame of {length} bytes exceeds the limit of {self._max}")
            if len(self._buf) < HEADER + length:
                return
            payload = bytes(self._buf[HEADER:HEADER + length])
            del self._buf[:HEADER + length]
            flags = second >> 24
            try:
                if first & 0x80000000:
                    frame = self._control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                else:
                    frame = self._data(first & 0x7FFFFFFF, flags, payload)
            except SpdyError:
                self._broken = True
                raise
            if frame is not None:
                yield frame

    @staticmethod
    def _data(stream_id: int, flags: int, payload: bytes) -> DataFrame:
        if stream_id == 0:
            raise SpdyError("data frame on stream 0")
        return DataFrame(stream_id, payload, bool(flags & FLAG_FIN))

    def _control(self, version: int, frame_type: int, flags: int, p: bytes) -> Frame | None:
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")

        def need(n: int, exact: bool = False) -> None:
            if len(p) < n or (exact and len(p) != n):
                raise SpdyError(f"control frame of type {frame_type} has a bad length {len(p)}")

        if frame_type == SYN_STREAM:
            need(10)
            sid, assoc, prio, _slot = struct.unpack_from(">IIBB", p)
            sid &= 0x7FFFFFFF
            if sid == 0:
                raise SpdyError("SYN_STREAM for stream 0")
            return SynStream(sid, self._headers.decompress(p[10:]), assoc & 0x7FFFFFFF, prio >> 5,
                             bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL))
        if frame_type in (SYN_REPLY, HEADERS):
            need(4)
            sid = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
            if sid == 0:
                raise SpdyError("header frame for stream 0")
            headers = self._headers.decompress(p[4:])
            if frame_type == SYN_REPLY:
                return SynReply(sid, headers, bool(flags & FLAG_FIN))
            return HeadersFrame(sid, headers, bool(flags & FLAG_FIN))
        if frame_type == RST_STREAM:
            need(8, exact=True)
            sid, status = struct.unpack(">II", p)
            if sid & 0x7FFFFFFF == 0 or status == 0:
                raise SpdyError("RST_STREAM for stream 0 or with status 0")
            return RstStream(sid & 0x7FFFFFFF, status)
        if frame_type == SETTINGS:
            need(4)
            (count,) = struct.unpack_from(">I", p)
            if len(p) != 4 + 8 * count:
                raise SpdyError(f"SETTINGS of {len(p)} bytes cannot hold {count} entries")
            entries = []
            for i in range(count):
                fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(tuple(entries))
        if frame_type == PING:
            need(4, exact=True)
            return Ping(struct.unpack(">I", p)[0])
        if frame_type == GOAWAY:
            need(8, exact=True)
            last, status = struct.unpack(">II", p)
            return GoAway(last & 0x7FFFFFFF, status)
        if frame_type == WINDOW_UPDATE:
            need(8, exact=True)
            sid, delta = struct.unpack(">II", p)
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return None  # unknown control frame types are ignored
