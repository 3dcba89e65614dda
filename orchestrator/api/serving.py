"""How uvicorn serves the API: event loop, HTTP protocol, TLS files and the request-header deadline.

The master, the API benchmark's bare baseline and tests on loopback all build their server
here, so the protocol settings (and the deadline on slow headers, kube-apiserver's
ReadHeaderTimeout) are the same everywhere.

Speed: when `uvloop` and `httptools` are installed (they are dependencies) the master runs
on uvloop's event loop (`run`) and parses HTTP/1.1 with httptools (`HttpToolsProtocol`,
uvicorn's faster protocol); without them it falls back to asyncio's loop and h11. The
header deadline is one mixin (`HeaderDeadline`) over either protocol, so it holds the same
on both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .wsprotocol import WebSocketProtocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 only
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

try:
    import uvloop
except ImportError:  # asyncio's own loop
    uvloop = None  # type: ignore[assignment]

log = logging.getLogger("dockyard.master")

HEADER_TIMEOUT = 32.0  # seconds to send a request's headers: kube-apiserver's ReadHeaderTimeout

T = TypeVar("T")


class HeaderDeadline:
    """A deadline on each request's headers, for uvicorn's HTTP/1.1 protocols.

    uvicorn bounds idle keep-alive connections only: a client that sends its headers a byte
    at a time (or never finishes the body of a request already answered) would hold a
    connection forever. The deadline runs from the connection (after the TLS handshake) and
    from the end of each response until the next request's headers are complete; when it
    passes, the connection is closed without an answer, as Go's ReadHeaderTimeout does.
    The protocol classes below say when headers are complete and when a response ended.
    """

    header_timeout: float = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_received()
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_headers(self) -> None:
        self._headers_received()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_passed)

    def _headers_received(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_passed(self) -> None:
        self._header_timer = None
        protocol: object = self.transport.get_protocol()
        if self.transport.is_closing() or protocol is not self:
            return
        log.debug("closing a connection that sent no complete request headers in %ss", self.header_timeout,
                  extra={"client": f"{self.client[0]}:{self.client[1]}" if self.client else ""})
        self.transport.close()


class H11HeaderTimeoutProtocol(HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline."""

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle or self.transport.get_protocol() is not self:
            self._headers_received()  # a request started, or the connection became a WebSocket

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._await_headers()


ProtocolClass: type[HeaderDeadline]

if HttpToolsProtocol is not None:

    class HttpToolsHeaderTimeoutProtocol(HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the header deadline."""

        def on_headers_complete(self) -> None:
            self._headers_received()  # a request started (or the connection becomes a WebSocket)
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # a request whose headers are complete already waits
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._await_headers()

    ProtocolClass = HttpToolsHeaderTimeoutProtocol
else:
    ProtocolClass = H11HeaderTimeoutProtocol

HeaderTimeoutProtocol = ProtocolClass  # the protocol the API is served with


def api_server_config(app: Any, host: str, port: int, *, ssl_certfile: str | None = None,
                      ssl_keyfile: str | None = None, header_timeout: float = HEADER_TIMEOUT) -> uvicorn.Config:
    """How uvicorn serves the API (the master's, the benchmark's baseline, tests' on loopback)."""
    protocol = type("ApiHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        http=protocol,
        ws=WebSocketProtocol,  # takes kubectl's port-forward subprotocol (see .wsprotocol)
        loop="uvloop" if uvloop is not None else "asyncio",
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def event_loop_name() -> str:
    return "uvloop" if uvloop is not None else "asyncio"


def http_protocol_name() -> str:
    return "httptools" if HttpToolsProtocol is not None else "h11"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the master's top-level coroutine on the event loop the API is served with
    (uvloop's when installed, else asyncio's)."""
    if uvloop is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
