"""kubectl's port-forward protocol on the master: a SPDY/3.1 session bridged to the node agent.

kubectl (1.31+) opens ``pods/portforward`` as a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` and speaks SPDY inside its binary messages (its fallback,
and older kubectls, upgrade the HTTP connection itself to ``SPDY/3.1``: the same bytes, but
the API's HTTP server cannot hand a connection over, so that request is answered 400). For every
local connection it creates two streams, an *error* stream and then a *data* stream, whose
headers name them (``streamtype: error|data``), the pod's ``port`` and a ``requestid``
that pairs them (protocol ``portforward.k8s.io``, as kubelet serves it).

`SpdySession` answers each stream with SYN_REPLY (or RST_STREAM CANCEL when its headers are
wrong, as kubelet rejects one), pairs them, and for each pair opens one agent WebSocket
for that port (``agent.portforward``, through `open_port`), then relays: the data stream's
DATA frames to channel 0, the client's FIN on the data stream as the half-close message
``[255, 0]``; channel 0 back as DATA on the data stream, channel 1 (kubelet's error
message) as DATA on the error stream. When the agent closes (the pod's connection ended,
or it could not be opened) both streams get FIN, which is what kubectl waits for before
it closes the local connection. PINGs from the client are answered; SETTINGS,
WINDOW_UPDATE and HEADERS are accepted and ignored (kubectl's SPDY library does no flow
control). A frame that is not SPDY/3 ends the session with GOAWAY PROTOCOL_ERROR; it is
logged and never raised further. When the client goes away every agent WebSocket of the
session is closed.

The transport is two callables (`recv` bytes or None at the end, `send` bytes), so the
same session runs over a WebSocket or a raw upgraded connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import execproto, spdy

log = logging.getLogger("dockyard.api.portforward")

STREAM_TYPE, PORT, REQUEST_ID = "streamtype", "port", "requestid"
DATA, ERROR = "data", "error"
CHUNK = 64 * 1024
QUEUE_DEPTH = 64

OpenPort = Callable[[int], Awaitable[Any]]  # an agent WebSocket for one port (websockets' client connection)


class OpenFailed(Exception):
    """The agent WebSocket for a port could not be opened; the text goes to the error stream."""


@dataclass
class _Stream:
    stream_id: int
    kind: str
    port: int
    request_id: str
    reset: bool = False
    fin_sent: bool = False


@dataclass
class _Pair:
    request_id: str
    port: int
    data: _Stream | None = None
    error: _Stream | None = None
    to_agent: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_DEPTH))
    task: asyncio.Task[None] | None = None
    finished: bool = False

    def finish(self) -> None:
        """Nothing more goes to the agent: drop what waits (and wake a reader blocked on a full queue)."""
        self.finished = True
        while not self.to_agent.empty():
            self.to_agent.get_nowait()


def stream_problem(headers: dict[str, list[str]]) -> str | None:
    """Why a stream's headers cannot be served (None when they can), in kubelet's words."""
    kind = spdy.header_value(headers, STREAM_TYPE)
    if kind not in (DATA, ERROR):
        return f"invalid stream type {kind!r}"
    port = spdy.header_value(headers, PORT)
    try:
        if not 0 < int(port) < 65536:
            raise ValueError
    except ValueError:
        return f"invalid port {port!r}: must be a number between 1 and 65535"
    if not spdy.header_value(headers, REQUEST_ID):
        return f"{REQUEST_ID!r} header is required"
    return None


class SpdySession:
    def __init__(self, send: Callable[[bytes], Awaitable[None]], open_port: OpenPort, name: str = "") -> None:
        self._send_raw = send
        self._open_port = open_port
        self._name = name
        self._lock = asyncio.Lock()
        self._writer = spdy.FrameWriter()
        self._streams: dict[int, _Stream] = {}
        self._pairs: dict[str, _Pair] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_stream = 0
        self._going_away = False

    # -- sending --------------------------------------------------------------------------------

    async def _send(self, frame: bytes | Callable[[], bytes]) -> None:
        """Send one frame; a callable is called under the lock (for frames whose header
        blocks must be compressed in the order they are sent)."""
        async with self._lock:
            await self._send_raw(frame() if callable(frame) else frame)

    async def _data(self, stream: _Stream, payload: bytes) -> None:
        for i in range(0, len(payload), CHUNK):
            if stream.reset or stream.fin_sent:
                return
            await self._send(spdy.encode_data(stream.stream_id, payload[i:i + CHUNK]))

    async def _fin(self, stream: _Stream | None) -> None:
        if stream is None or stream.reset or stream.fin_sent:
            return
        stream.fin_sent = True
        await self._send(spdy.encode_data(stream.stream_id, b"", fin=True))

    # -- the session ----------------------------------------------------------------------------

    async def run(self, recv: Callable[[], Awaitable[bytes | None]]) -> None:
        """Serve until the client's connection ends (or breaks the protocol)."""
        reader = spdy.FrameReader()
        try:
            while True:
                data = await recv()
                if data is None:
                    return
                reader.feed(data)
                for frame in reader.frames():
                    await self._handle(frame)
        except spdy.SpdyError as e:
            log.info("port-forward%s: closing a connection that broke the protocol: %s", self._name, e)
            with contextlib.suppress(Exception):
                await self._send(spdy.encode_goaway(self._last_stream, spdy.GOAWAY_PROTOCOL_ERROR))
        finally:
            await self.close()

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _handle(self, frame: spdy.Frame) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._syn_stream(frame)
        elif isinstance(frame, spdy.DataFrame):
            await self._client_data(frame)
        elif isinstance(frame, spdy.RstStream):
            self._client_reset(frame.stream_id)
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2:  # the client's (odd) ping: send it back
                await self._send(spdy.encode_ping(frame.ping_id))
        elif isinstance(frame, spdy.GoAway):
            self._going_away = True
        # SETTINGS, WINDOW_UPDATE, HEADERS and SYN_REPLY change nothing here

    async def _syn_stream(self, frame: spdy.SynStream) -> None:
        sid = frame.stream_id
        if sid % 2 == 0 or sid <= self._last_stream:
            await self._send(spdy.encode_rst_stream(sid, spdy.PROTOCOL_ERROR))
            return
        self._last_stream = sid
        if self._going_away:
            await self._send(spdy.encode_rst_stream(sid, spdy.REFUSED_STREAM))
            return
        problem = stream_problem(frame.headers)
        rid = spdy.header_value(frame.headers, REQUEST_ID)
        kind = spdy.header_value(frame.headers, STREAM_TYPE)
        pair = self._pairs.get(rid)
        if problem is None and pair is not None and getattr(pair, kind) is not None:
            problem = f"{kind} stream already assigned for request {rid}"
        if problem is None and pair is not None and pair.port != int(spdy.header_value(frame.headers, PORT)):
            problem = f"the {kind} stream of request {rid} names another port"
        if problem is not None:
            log.info("port-forward%s: rejecting stream %d: %s", self._name, sid, problem)
            await self._send(spdy.encode_rst_stream(sid, spdy.CANCEL))
            return
        port = int(spdy.header_value(frame.headers, PORT))
        stream = _Stream(sid, kind, port, rid)
        self._streams[sid] = stream
        if pair is None:
            pair = self._pairs[rid] = _Pair(rid, port)
        setattr(pair, kind, stream)
        await self._send(lambda: self._writer.syn_reply(sid, {}))
        if frame.fin and kind == DATA:
            await pair.to_agent.put(None)
        if pair.data is not None and pair.error is not None:
            task = asyncio.create_task(self._forward(pair))
            pair.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _client_data(self, frame: spdy.DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream.kind != DATA:
            return  # the error stream carries nothing from the client; unknown streams are gone
        pair = self._pairs.get(stream.request_id)
        if pair is None or pair.finished:
            return
        if frame.data:
            await pair.to_agent.put(frame.data)
        if frame.fin:
            await pair.to_agent.put(None)

    def _client_reset(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.reset = True
        pair = self._pairs.get(stream.request_id)
        if pair is not None and stream.kind == DATA:
            with contextlib.suppress(asyncio.QueueFull):
                pair.to_agent.put_nowait(None)
            if pair.task is not None and not stream.fin_sent:
                # nothing more can reach the client: end the agent's connection too (once the
                # data stream has its FIN the pair is winding down and must still close the
                # error stream, which the client waits for)
                pair.task.cancel()

    # -- one local connection ----------------------------------------------------------------

    async def _forward(self, pair: _Pair) -> None:
        assert pair.data is not None and pair.error is not None
        data, error = pair.data, pair.error
        upstream: Any = None
        try:
            try:
                upstream = await self._open_port(pair.port)
            except OpenFailed as e:
                await self._data(error, str(e).encode())
                return
            uploader = asyncio.create_task(self._upload(pair, upstream))
            try:
                await self._download(data, error, upstream)
            finally:
                uploader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await uploader
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the client or the agent went away mid-copy
            log.debug("port-forward%s: request %s ended: %s", self._name, pair.request_id, e)
        finally:
            pair.finish()
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()
            with contextlib.suppress(Exception):
                await self._fin(data)
                await self._fin(error)
            self._pairs.pop(pair.request_id, None)
            self._streams.pop(data.stream_id, None)
            self._streams.pop(error.stream_id, None)

    async def _download(self, data: _Stream, error: _Stream, upstream: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        seen: set[int] = set()
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                channel, payload = execproto.split(message)
                if channel not in seen:  # each channel's first message is the port number
                    seen.add(channel)
                    continue
                if channel == 0:
                    await self._data(data, payload)
                elif channel == 1:
                    await self._data(error, payload)

    @staticmethod
    async def _upload(pair: _Pair, upstream: Any) -> None:
        while True:
            item = await pair.to_agent.get()
            if item is None:
                await upstream.send(bytes([execproto.CLOSE, execproto.data_channel(0)]))
                return
            await upstream.send(execproto.frame(execproto.data_channel(0), item))
