"""The request-header deadline holds on both HTTP protocols the API can be served with
(httptools, used when installed, and h11), and the master's loop is uvloop's when installed."""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from orchestrator.api import serving

DEADLINE = 1.0
PROTOCOLS = [serving.H11HeaderTimeoutProtocol]
if serving.HttpToolsProtocol is not None:
    PROTOCOLS.append(serving.HttpToolsHeaderTimeoutProtocol)


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.__name__)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    config = serving.api_server_config(Starlette(routes=[Route("/", ok)]), "127.0.0.1", free,
                                       header_timeout=DEADLINE)
    config.http = type("P", (request.param,), {"header_timeout": DEADLINE})  # type: ignore[assignment]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    yield free
    server.should_exit = True
    thread.join(10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    got = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if select.select([sock], [], [], 0.1)[0]:
            data = sock.recv(65536)
            if not data:
                return True, got
            got += data
    return False, got


def test_the_api_uses_the_fast_protocol_and_loop_when_installed() -> None:
    config = serving.api_server_config(object(), "127.0.0.1", 6443)
    http = config.http
    assert isinstance(http, type) and issubclass(http, serving.HeaderDeadline)
    if serving.HttpToolsProtocol is not None:
        assert issubclass(http, serving.HttpToolsProtocol)

    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert serving.run(loop_type()).startswith("uvloop" if serving.uvloop is not None else "asyncio")


def test_a_silent_connection_is_closed_at_the_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        started = time.monotonic()
        closed, got = closed_within(sock, DEADLINE + 3)
    assert closed and got == b"" and DEADLINE - 0.3 <= time.monotonic() - started <= DEADLINE + 2


def test_half_sent_headers_after_a_response_are_cut_off(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, got = closed_within(sock, 0.5)
        assert not closed and got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok")
        sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: a")
        started = time.monotonic()
        closed, got = closed_within(sock, DEADLINE + 3)
    assert closed and got == b"" and time.monotonic() - started <= DEADLINE + 2


def test_requests_within_the_deadline_keep_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(3):
            time.sleep(DEADLINE * 0.6)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            closed, got = closed_within(sock, 0.3)
            assert not closed and got.endswith(b"ok")


def test_pipelined_requests_are_all_answered(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        got = b""
        end = time.monotonic() + 3
        while got.count(b"ok") < 3 and time.monotonic() < end:
            if select.select([sock], [], [], 0.1)[0]:
                got += sock.recv(65536)
    assert got.count(b"HTTP/1.1 200") == 3
