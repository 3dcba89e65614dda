"""The API behind a real uvicorn server on 127.0.0.1, driven over raw sockets: slow clients are
cut off after the request-header deadline, and bodies over the size limit are refused at the
limit with a 413 Status (the rest is never read)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.api.requests import MAX_BODY_BYTES
from orchestrator.api.serving import HEADER_TIMEOUT, api_server_config
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

ADMIN = "admin-token-0123456789"
SECRET = b"n" * 32
DEADLINE = 2.0  # the header deadline of the test server (the master's is HEADER_TIMEOUT)
CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Registry]]:
    reg = Registry(SQLiteStore(str(Path(tmp_path_factory.mktemp("limits")) / "s.db")))
    reg.ensure_namespaces()
    api = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", SECRET), b"PEM",
                    lambda n: node_token(SECRET, n))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(api_server_config(api.app, "127.0.0.1", port, header_timeout=DEADLINE))
    thread = threading.Thread(target=srv.run, name="api-limits", daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "the test API server did not start"
    yield port, reg
    srv.should_exit = True
    thread.join(10)
    reg.store.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> tuple[bool, bytes]:
    """Send `trickle` a byte every 0.2 s until the server closes (True) or `seconds` pass."""
    got = b""
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        if i < len(trickle):
            try:
                sock.send(trickle[i:i + 1])
            except OSError:
                return True, got
            i += 1
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return True, got
            if not data:
                return True, got
            got += data
    return False, got


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response (Content-Length or until EOF)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    code = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(body) < length:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        body += chunk
    return code, headers, body


def request(method: str, path: str, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN}\r\n{extra}\r\n").encode()


def test_the_master_waits_as_long_as_kube_apiserver_for_headers() -> None:
    config = api_server_config(object(), "127.0.0.1", 6443)
    assert HEADER_TIMEOUT == 32.0 and config.http.header_timeout == HEADER_TIMEOUT  # type: ignore[union-attr]


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: tuple[int, Registry]) -> None:
    port, _ = server
    with connect(port) as sock:
        started = time.monotonic()
        closed, got = closed_within(sock, DEADLINE + 5, b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100)
        took = time.monotonic() - started
    assert closed and got == b"", got
    assert DEADLINE - 0.5 <= took <= DEADLINE + 2, took


def test_a_connection_that_never_sends_a_request_is_closed(server: tuple[int, Registry]) -> None:
    port, _ = server
    with connect(port) as sock:
        started = time.monotonic()
        closed, got = closed_within(sock, DEADLINE + 5)
    assert closed and got == b"" and time.monotonic() - started <= DEADLINE + 2


def test_slow_headers_after_a_response_are_cut_off(server: tuple[int, Registry]) -> None:
    port, _ = server
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        code, _, body = read_response(sock)
        assert (code, body) == (200, b"ok")
        started = time.monotonic()
        closed, got = closed_within(sock, DEADLINE + 5, b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100)
    assert closed and got == b"" and time.monotonic() - started <= DEADLINE + 2


def test_a_client_within_the_deadline_is_served(server: tuple[int, Registry]) -> None:
    port, _ = server
    with connect(port) as sock:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(part)
            time.sleep(DEADLINE / 4)
        assert read_response(sock)[::2] == (200, b"ok")
        # the same connection again, each request within its own deadline
        for _ in range(2):
            time.sleep(DEADLINE * 0.6)
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_response(sock)[::2] == (200, b"ok")


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: tuple[int, Registry]) -> None:
    port, reg = server
    rev = reg.store.current_revision()
    with connect(port) as sock:
        sock.sendall(request("POST", CMS, f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n"))
        code, headers, body = read_response(sock)
        closed, _ = closed_within(sock, 5)
    assert code == 413 and headers.get("connection") == "close" and closed
    status = json.loads(body)
    assert (status["code"], status["reason"]) == (413, "RequestEntityTooLarge")
    assert f"limit is {MAX_BODY_BYTES}" in status["message"]
    assert reg.store.current_revision() == rev


def test_a_chunked_body_is_refused_at_the_limit(server: tuple[int, Registry]) -> None:
    port, reg = server
    rev = reg.store.current_revision()
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with connect(port) as sock:
        sock.sendall(request("POST", CMS, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"))
        answered = False
        while sent < 100 * 1024 * 1024:  # a client that would send 100 MiB
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
            try:
                sock.sendall(frame)
            except OSError:
                break
            sent += len(chunk)
        code, headers, body = read_response(sock)
    assert answered or sent < 100 * 1024 * 1024
    assert sent <= MAX_BODY_BYTES + 8 * 1024 * 1024, sent  # stopped near the limit (socket buffers aside)
    assert code == 413 and json.loads(body)["reason"] == "RequestEntityTooLarge"
    assert reg.store.current_revision() == rev


def test_a_body_within_the_limit_is_served(server: tuple[int, Registry]) -> None:
    port, reg = server
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}, "data": {"a": "1"}})
    with connect(port) as sock:
        sock.sendall(request("POST", CMS, f"Content-Type: application/json\r\nContent-Length: {len(cm)}\r\n")
                     + cm.encode())
        code, _, body = read_response(sock)
    assert code == 201, body
    assert json.loads(body)["metadata"]["name"] == "ok"
