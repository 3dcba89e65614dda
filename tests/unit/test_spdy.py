"""SPDY/3 framing (`orchestrator.spdy`): round trips, any slicing of the input, and malformed
frames that must end in `SpdyError`, never in another exception."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from orchestrator import spdy

# kubectl's stream headers, as Go's http.Header hands them to its SPDY library
ERROR_HEADERS = {"Streamtype": ["error"], "Port": ["80"], "Requestid": ["0"]}
DATA_HEADERS = {"Streamtype": ["data"], "Port": ["80"], "Requestid": ["0"]}


def read_all(data: bytes, step: int | None = None) -> list[spdy.Frame]:
    reader = spdy.FrameReader()
    frames: list[spdy.Frame] = []
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        reader.feed(chunk)
        frames.extend(reader.frames())
    return frames


def test_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b",*,enq=0.")
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_a_kubectl_session_round_trips_in_any_slicing() -> None:
    client = spdy.FrameWriter()
    wire = (client.syn_stream(1, ERROR_HEADERS) + spdy.encode_data(1, b"", fin=True)
            + client.syn_stream(3, DATA_HEADERS) + spdy.encode_data(3, b"GET / HTTP/1.0\r\n\r\n")
            + spdy.encode_ping(1) + spdy.encode_settings([(0, 7, 65536)]) + spdy.encode_window_update(3, 1000)
            + spdy.encode_rst_stream(3, spdy.CANCEL) + spdy.encode_goaway(3))
    expected = [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}),
        spdy.DataFrame(1, b"", fin=True),
        spdy.SynStream(3, {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}),
        spdy.DataFrame(3, b"GET / HTTP/1.0\r\n\r\n"),
        spdy.Ping(1),
        spdy.Settings(((0, 7, 65536),)),
        spdy.WindowUpdate(3, 1000),
        spdy.RstStream(3, spdy.CANCEL),
        spdy.GoAway(3, spdy.GOAWAY_OK),
    ]
    for step in (None, 1, 3, 7, 64):
        assert read_all(wire, step) == expected


def test_header_blocks_share_one_compression_context_per_direction() -> None:
    server = spdy.FrameWriter()
    wire = server.syn_reply(1, {}) + server.syn_reply(3, {}) + server.headers(3, {"a": ["1", "2"]}, fin=True)
    assert read_all(wire) == [spdy.SynReply(1, {}), spdy.SynReply(3, {}),
                              spdy.HeadersFrame(3, {"a": ["1", "2"]}, fin=True)]
    # the second block cannot be read without the first: the context goes on across frames
    fresh = spdy.FrameWriter()
    first_len = len(fresh.syn_reply(1, {}))
    with pytest.raises(spdy.SpdyError):
        read_all(wire[first_len:])


def test_flags_priority_and_fin() -> None:
    w = spdy.FrameWriter()
    [frame] = read_all(w.syn_stream(5, {"x": ["y"]}, fin=True, priority=7, associated_id=3))
    assert frame == spdy.SynStream(5, {"x": ["y"]}, associated_id=3, priority=7, fin=True)
    assert read_all(spdy.encode_data(9, b"abc", fin=True)) == [spdy.DataFrame(9, b"abc", fin=True)]


def test_unknown_control_frames_are_skipped() -> None:
    unknown = struct.pack(">HHI", 0x8003, 0x00FF, 2) + b"zz"
    assert read_all(unknown + spdy.encode_ping(3)) == [spdy.Ping(3)]


def _control(frame_type: int, payload: bytes, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, frame_type, (flags << 24) | len(payload)) + payload


def _compressed(block: bytes) -> bytes:
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    return z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)


MALFORMED = [
    ("SPDY/2", _control(spdy.PING, b"\x00\x00\x00\x01", version=2)),
    ("data on stream 0", struct.pack(">II", 0, 1) + b"x"),
    ("SYN_STREAM for stream 0", _control(spdy.SYN_STREAM, b"\x00" * 10 + _compressed(b"\x00\x00\x00\x00"))),
    ("SYN_STREAM too short", _control(spdy.SYN_STREAM, b"\x00\x00\x00\x01")),
    ("header block not zlib", _control(spdy.SYN_STREAM, b"\x00\x00\x00\x01" + b"\x00" * 6 + b"garbage!")),
    ("header block truncated", _control(spdy.SYN_STREAM, b"\x00\x00\x00\x01" + b"\x00" * 6
                                        + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x04ab"))),
    ("header count beyond the block", _control(spdy.SYN_REPLY, b"\x00\x00\x00\x01"
                                               + _compressed(b"\xff\xff\xff\xff"))),
    ("trailing bytes in a block", _control(spdy.SYN_REPLY, b"\x00\x00\x00\x01"
                                           + _compressed(b"\x00\x00\x00\x00junk"))),
    ("empty header name", _control(spdy.SYN_REPLY, b"\x00\x00\x00\x01"
                                   + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01v"))),
    ("non-UTF-8 name", _control(spdy.SYN_REPLY, b"\x00\x00\x00\x01"
                                + _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\x00\x00\x00\x00"))),
    ("RST_STREAM of 4 bytes", _control(spdy.RST_STREAM, b"\x00\x00\x00\x01")),
    ("RST_STREAM status 0", _control(spdy.RST_STREAM, b"\x00\x00\x00\x01\x00\x00\x00\x00")),
    ("PING of 2 bytes", _control(spdy.PING, b"\x00\x01")),
    ("GOAWAY of 4 bytes", _control(spdy.GOAWAY, b"\x00\x00\x00\x01")),
    ("SETTINGS count mismatch", _control(spdy.SETTINGS, b"\x00\x00\x00\x02" + b"\x00" * 8)),
    ("WINDOW_UPDATE of 9 bytes", _control(spdy.WINDOW_UPDATE, b"\x00" * 9)),
]


@pytest.mark.parametrize(("what", "wire"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames_raise_spdy_error(what: str, wire: bytes) -> None:
    reader = spdy.FrameReader()
    reader.feed(wire)
    with pytest.raises(spdy.SpdyError):
        list(reader.frames())
    with pytest.raises(spdy.SpdyError):  # and the reader stays failed
        list(reader.frames())


def test_oversized_frames_and_header_blocks_are_refused_before_buffering() -> None:
    reader = spdy.FrameReader(max_frame=1024)
    reader.feed(struct.pack(">II", 1, 1025))  # only the header has arrived
    with pytest.raises(spdy.SpdyError, match="exceeds"):
        list(reader.frames())
    bomb = _compressed(b"\x00\x00\x00\x01\x00\x00\x00\x01a" + struct.pack(">I", 2 << 20) + b"b" * (2 << 20))
    reader = spdy.FrameReader()
    reader.feed(_control(spdy.SYN_REPLY, b"\x00\x00\x00\x01" + bomb))
    with pytest.raises(spdy.SpdyError, match="larger than"):
        list(reader.frames())


def test_incomplete_frames_wait_for_more() -> None:
    wire = spdy.encode_data(1, b"hello")
    reader = spdy.FrameReader()
    reader.feed(wire[:-1])
    assert list(reader.frames()) == []
    reader.feed(wire[-1:])
    assert list(reader.frames()) == [spdy.DataFrame(1, b"hello")]


def test_encoders_refuse_what_the_format_cannot_carry() -> None:
    with pytest.raises(ValueError):
        spdy.encode_data(0, b"x")
    with pytest.raises(ValueError):
        spdy.encode_data(1, b"x" * (spdy.MAX_FRAME + 1))


def test_header_value_helper() -> None:
    assert spdy.header_value({"port": ["80", "81"]}, "Port") == "80"
    assert spdy.header_value({}, "port") == ""
