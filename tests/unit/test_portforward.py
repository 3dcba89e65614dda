"""Port-forward without a cluster: the channel protocol helpers (`orchestrator.execproto`) and
the master's SPDY session (`orchestrator.api.portforward`) against a scripted client and a
fake agent WebSocket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import execproto, spdy
from orchestrator.api.portforward import OpenFailed, SpdySession, stream_problem

# -- the channel protocol --------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "ports"), [
    (["80"], [80]),
    (["80,443"], [80, 443]),
    (["80", "8080,9"], [80, 8080, 9]),
])
def test_parse_ports(values: list[str], ports: list[int]) -> None:
    assert execproto.parse_ports(values) == ports


@pytest.mark.parametrize(("values", "message"), [
    ([], "query parameter 'port' is required"),
    ([""], "cannot be empty"),
    (["http"], "unable to parse 'http' as a port"),
    (["0"], "must be > 0"),
    (["65536"], "must be > 0"),
])
def test_parse_ports_refuses(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        execproto.parse_ports(values)


@pytest.mark.parametrize(("offered", "chosen"), [
    ([], ""),
    (["v5.channel.k8s.io", "v4.channel.k8s.io"], "v4.channel.k8s.io"),  # the Python client's offer
    (["v4.base64.channel.k8s.io"], "v4.base64.channel.k8s.io"),
    (["portforward.k8s.io"], "portforward.k8s.io"),
    (["v5.channel.k8s.io"], None),
])
def test_choose_portforward_subprotocol(offered: list[str], chosen: str | None) -> None:
    assert execproto.choose_portforward_subprotocol(offered) == chosen


def test_port_prefix_and_messages() -> None:
    assert execproto.port_prefix(8080) == b"\x90\x1f"  # little-endian, as the Python client reads it
    assert execproto.encode_message(execproto.V4, 3, b"ab") == b"\x03ab"
    assert execproto.encode_message(execproto.V4_BASE64, 1, b"ab") == "1YWI="
    assert execproto.decode_message(execproto.V4_BASE64, "1YWI=") == (1, b"ab")
    assert execproto.decode_message(execproto.V4_BASE64, "1***") == (-1, b"")
    assert execproto.decode_message(execproto.V4, b"\x00xy") == (0, b"xy")
    assert (execproto.portforward_error(80, "abc", "", "boom")
            == "error forwarding port 80 to pod abc, uid : boom")


def test_stream_problem() -> None:
    assert stream_problem({"streamtype": ["data"], "port": ["80"], "requestid": ["1"]}) is None
    assert "stream type" in (stream_problem({"streamtype": ["x"], "port": ["80"], "requestid": ["1"]}) or "")
    assert "invalid port" in (stream_problem({"streamtype": ["data"], "port": ["0"], "requestid": ["1"]}) or "")
    assert "requestid" in (stream_problem({"streamtype": ["data"], "port": ["80"]}) or "")


# -- the SPDY session -------------------------------------------------------------------------------


class FakeAgent:
    """An agent WebSocket for one port: announces the port on both channels, records what it
    is sent, and answers with `script` (channel, payload) messages once the client half-closes."""

    def __init__(self, port: int, script: list[tuple[int, bytes]]) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.script = script
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        for channel in (0, 1):
            self.inbox.put_nowait(execproto.frame(channel, execproto.port_prefix(port)))

    def __aiter__(self) -> FakeAgent:
        return self

    async def __anext__(self) -> bytes:
        item = await self.inbox.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def send(self, message: bytes) -> None:
        self.sent.append(message)
        if message == bytes([execproto.CLOSE, 0]):
            self.answer()

    def answer(self) -> None:
        for channel, payload in self.script:
            self.inbox.put_nowait(execproto.frame(channel, payload))
        self.inbox.put_nowait(None)

    async def close(self) -> None:
        self.closed = True
        self.inbox.put_nowait(None)


class Harness:
    def __init__(self, agents: list[Any] | None = None, fail: str = "") -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.out = bytearray()
        self.opened: list[int] = []
        self.agents = list(agents or [])
        self.fail = fail
        self.session = SpdySession(self._send, self._open)
        self.writer = spdy.FrameWriter()
        self.reader = spdy.FrameReader()
        self.frames: list[spdy.Frame] = []

    async def _send(self, data: bytes) -> None:
        self.out += data

    async def _open(self, port: int) -> Any:
        self.opened.append(port)
        if self.fail:
            raise OpenFailed(self.fail)
        return self.agents.pop(0)

    def client(self, data: bytes | None) -> None:
        self.inbox.put_nowait(data)

    def received(self) -> list[spdy.Frame]:
        self.reader.feed(bytes(self.out))
        self.out.clear()
        self.frames.extend(self.reader.frames())
        return self.frames

    async def run(self, until: Any = None, timeout: float = 5.0) -> None:
        task = asyncio.create_task(self.session.run(self.inbox.get))
        deadline = asyncio.get_running_loop().time() + timeout
        while until is not None and not until(self.received()):
            assert asyncio.get_running_loop().time() < deadline, self.received()
            await asyncio.sleep(0.01)
        self.client(None)
        await asyncio.wait_for(task, timeout)

    def pair(self, request_id: str = "0", port: int = 80, error_id: int = 1, data_id: int = 3) -> bytes:
        h = {"streamtype": ["error"], "port": [str(port)], "requestid": [request_id]}
        wire = self.writer.syn_stream(error_id, h) + spdy.encode_data(error_id, b"", fin=True)
        return wire + self.writer.syn_stream(data_id, {**h, "streamtype": ["data"]})


def fins(frames: list[spdy.Frame]) -> set[int]:
    return {f.stream_id for f in frames if isinstance(f, spdy.DataFrame) and f.fin}


def test_a_connection_is_relayed_and_both_streams_finish() -> None:
    async def main() -> None:
        agent = FakeAgent(80, [(0, b"HTTP/1.0 200 OK\r\n\r\nhello")])
        h = Harness([agent])
        h.client(h.pair() + spdy.encode_data(3, b"GET / HTTP/1.0\r\n\r\n") + spdy.encode_data(3, b"", fin=True))
        await h.run(until=lambda fs: {1, 3} <= fins(fs))
        frames = h.received()
        assert [f.stream_id for f in frames if isinstance(f, spdy.SynReply)] == [1, 3]
        body = b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame) and f.stream_id == 3)
        assert body == b"HTTP/1.0 200 OK\r\n\r\nhello"
        assert not any(isinstance(f, spdy.DataFrame) and f.stream_id == 1 and f.data for f in frames)
        assert h.opened == [80]
        assert agent.sent == [b"\x00GET / HTTP/1.0\r\n\r\n", bytes([255, 0])]
        assert agent.closed

    asyncio.run(main())


def test_the_agents_error_goes_to_the_error_stream() -> None:
    async def main() -> None:
        message = b"error forwarding port 9999 to pod abc, uid : failed to connect"
        agent = FakeAgent(9999, [(1, message)])
        agent.answer()  # refused at once, before the client sends anything
        h = Harness([agent])
        h.client(h.pair(port=9999))
        await h.run(until=lambda fs: {1, 3} <= fins(fs))
        frames = h.received()
        assert b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame) and f.stream_id == 1) == message
        assert not any(isinstance(f, spdy.DataFrame) and f.stream_id == 3 and f.data for f in frames)

    asyncio.run(main())


def test_an_unreachable_agent_is_reported_on_the_error_stream() -> None:
    async def main() -> None:
        h = Harness(fail="cannot reach the agent")
        h.client(h.pair())
        await h.run(until=lambda fs: {1, 3} <= fins(fs))
        frames = h.received()
        assert b"".join(f.data for f in frames if isinstance(f, spdy.DataFrame)
                        and f.stream_id == 1) == b"cannot reach the agent"

    asyncio.run(main())


def test_pings_are_answered_and_bad_streams_reset() -> None:
    async def main() -> None:
        h = Harness()
        w = h.writer
        h.client(spdy.encode_ping(7) + spdy.encode_ping(8)
                 + w.syn_stream(2, {"streamtype": ["data"], "port": ["80"], "requestid": ["1"]})  # even id
                 + w.syn_stream(5, {"streamtype": ["other"], "port": ["80"], "requestid": ["1"]})
                 + w.syn_stream(7, {"streamtype": ["data"], "port": ["http"], "requestid": ["1"]})
                 + w.syn_stream(9, {"streamtype": ["data"], "port": ["80"], "requestid": ["2"]})
                 + w.syn_stream(11, {"streamtype": ["data"], "port": ["80"], "requestid": ["2"]})  # taken
                 + w.syn_stream(11, {"streamtype": ["error"], "port": ["80"], "requestid": ["3"]})  # reused id
                 + spdy.encode_settings([(0, 4, 100)]) + spdy.encode_window_update(9, 10))
        await h.run(until=lambda fs: sum(isinstance(f, spdy.RstStream) for f in fs) >= 5)
        frames = h.received()
        assert [f for f in frames if isinstance(f, spdy.Ping)] == [spdy.Ping(7)]  # not the server's own (even)
        resets = {(f.stream_id, f.status) for f in frames if isinstance(f, spdy.RstStream)}
        assert resets == {(2, spdy.PROTOCOL_ERROR), (5, spdy.CANCEL), (7, spdy.CANCEL), (11, spdy.CANCEL),
                          (11, spdy.PROTOCOL_ERROR)}
        assert [f.stream_id for f in frames if isinstance(f, spdy.SynReply)] == [9]
        assert h.opened == []  # no pair is complete

    asyncio.run(main())


@pytest.mark.parametrize("garbage", [
    b"\x80\x02\x00\x01\x00\x00\x00\x04abcd",
    b"\x80\x03\x00\x01\x00\x00\x00\x0c" + b"\x00\x00\x00\x01" * 3,
    b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x01",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
])
def test_garbage_ends_the_session_with_goaway_and_no_exception(garbage: bytes) -> None:
    async def main() -> None:
        agent = FakeAgent(80, [])
        h = Harness([agent])
        h.client(h.pair())  # a pair in progress is torn down with the session
        task = asyncio.create_task(h.session.run(h.inbox.get))
        while not h.opened:
            await asyncio.sleep(0.01)
        h.client(garbage)
        await asyncio.wait_for(task, 5)  # returns by itself, without the client's end
        frames = h.received()
        assert spdy.GoAway(3, spdy.GOAWAY_PROTOCOL_ERROR) in frames
        assert agent.closed

    asyncio.run(main())


def test_the_client_leaving_closes_the_agents_connection() -> None:
    async def main() -> None:
        agent = FakeAgent(80, [])
        h = Harness([agent])
        h.client(h.pair())
        await h.run(until=lambda fs: len(h.opened) == 1)
        assert agent.closed

    asyncio.run(main())


def test_a_reset_data_stream_ends_the_pair_and_still_closes_the_error_stream() -> None:
    async def main() -> None:
        agent = FakeAgent(80, [])
        h = Harness([agent])
        h.client(h.pair())
        task = asyncio.create_task(h.session.run(h.inbox.get))
        while not h.opened:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        h.client(spdy.encode_rst_stream(3, spdy.CANCEL))
        for _ in range(200):
            if 1 in fins(h.received()):
                break
            await asyncio.sleep(0.01)
        assert 1 in fins(h.received()) and 3 not in fins(h.received())
        assert agent.closed
        h.client(None)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_a_client_still_sending_after_the_pod_closed_cannot_stall_the_session() -> None:
    async def main() -> None:
        agent = FakeAgent(80, [(0, b"bye")])
        agent.answer()  # the pod answers and closes at once
        h = Harness([agent])
        flood = b"".join(spdy.encode_data(3, b"x" * 100) for _ in range(500))
        h.client(h.pair() + flood + spdy.encode_ping(41))
        await h.run(until=lambda fs: spdy.Ping(41) in fs and {1, 3} <= fins(fs))

    asyncio.run(main())
