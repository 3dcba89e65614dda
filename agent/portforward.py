"""Port-forward on the agent: a WebSocket from the master piped to TCP connections in a pod.

``/portForward/{namespace}/{pod}?port=P[&port=Q]&podUID=U`` on the kubelet port (mutual TLS:
only the master gets there, after it authorized the user) speaks kubelet's WebSocket
port-forward protocol (``orchestrator.execproto``): for each requested port the agent
connects to the pod's address on the pod network (``PodTarget.ip``; the node's loopback
for hostNetwork pods) and copies bytes both ways, data on channel ``2i``, kubelet's error
message on channel ``2i+1``. The master relays this protocol unchanged for clients that
speak it (the Python client) and opens one such WebSocket per SPDY stream pair for
kubectl (``orchestrator.api.portforward``).

Lifecycle of one port: connect (a refused or timed-out connection is reported on the error
channel, and that port is done); then pod → client until the pod closes its end;
client → pod until the client closes the WebSocket or half-closes the port with
``[255, 2i]``, which shuts the pod connection's write side. The WebSocket is closed (1000)
once every port is done; a client that goes away closes every pod connection.

Everything here runs on the agent server's event loop (asyncio streams, no threads); the
lookup of the pod's sandbox and address is the caller's (`agent.server`, through
`agent.runtime`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from orchestrator import execproto

log = logging.getLogger("dockyard.agent.portforward")

CONNECT_TIMEOUT = 10.0
CHUNK = 32 * 1024


@dataclass(frozen=True)
class PodTarget:
    """Where a pod's ports are: its sandbox (named in error messages, as kubelet names it) and address."""

    sandbox_id: str
    ip: str


@dataclass
class _Port:
    index: int
    port: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    writer: asyncio.StreamWriter | None = None


def connect_error(target: PodTarget, port: int, e: BaseException) -> str:
    """What failed, worded like kubelet's runtime ("failed to connect to ... inside namespace ...")."""
    if isinstance(e, TimeoutError):
        reason = "i/o timeout"
    elif isinstance(e, OSError) and (e.errno or e.strerror):
        text = os.strerror(e.errno) if e.errno else str(e.strerror)  # asyncio words a refusal its own way
        reason = text[:1].lower() + text[1:]
    else:
        reason = str(e) or type(e).__name__
    where = f"{target.ip}:{port}"
    return (f'failed to connect to {where} inside namespace "{target.sandbox_id}", '
            f"IPv4: dial tcp4 {where}: connect: {reason}")


async def serve(ws: WebSocket, subprotocol: str, ports: list[int], target: PodTarget,
                connect_timeout: float = CONNECT_TIMEOUT) -> None:
    """Run one accepted port-forward WebSocket to its end."""
    send_lock = asyncio.Lock()

    async def send(channel: int, payload: bytes) -> None:
        message = execproto.encode_message(subprotocol, channel, payload)
        async with send_lock:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)

    state = [_Port(i, p) for i, p in enumerate(ports)]
    for st in state:
        await send(execproto.data_channel(st.index), execproto.port_prefix(st.port))
        await send(execproto.error_channel(st.index), execproto.port_prefix(st.port))

    async def forward(st: _Port) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(target.ip, st.port), connect_timeout)
        except (OSError, TimeoutError) as e:
            message = execproto.portforward_error(st.port, target.sandbox_id, "", connect_error(target, st.port, e))
            log.info("%s", message)
            st.ready.set()
            await send(execproto.error_channel(st.index), message.encode())
            return
        st.writer = writer
        st.ready.set()
        try:
            while chunk := await reader.read(CHUNK):
                await send(execproto.data_channel(st.index), chunk)
        except OSError:
            pass

    async def from_client() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            raw = msg.get("bytes")
            channel, payload = execproto.decode_message(subprotocol, raw if raw is not None else msg.get("text") or "")
            if channel == execproto.CLOSE and payload:
                target_channel, data = payload[0], b""
                half_close = True
            else:
                target_channel, data, half_close = channel, payload, False
            if target_channel < 0 or target_channel % 2 or target_channel // 2 >= len(state):
                continue  # error channels are server-to-client; unknown channels are ignored
            st = state[target_channel // 2]
            await st.ready.wait()
            if st.writer is None or st.writer.is_closing():
                continue
            try:
                if half_close:
                    if st.writer.can_write_eof():
                        st.writer.write_eof()
                elif data:
                    st.writer.write(data)
                    await st.writer.drain()
            except OSError:
                continue

    forwards = [asyncio.create_task(forward(st)) for st in state]
    reader_task = asyncio.create_task(from_client())

    async def every_port() -> None:
        await asyncio.gather(*forwards, return_exceptions=True)

    all_done = asyncio.create_task(every_port())
    try:
        await asyncio.wait({all_done, reader_task}, return_when=asyncio.FIRST_COMPLETED)
        if all_done.done():
            with contextlib.suppress(Exception):
                await ws.close(1000)
    finally:
        for t in [*forwards, reader_task]:
            t.cancel()
        for st in state:
            if st.writer is not None:
                st.writer.close()
        for t in [*forwards, reader_task, all_done]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
