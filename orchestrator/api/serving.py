"""How uvicorn serves the API: HTTP protocol, TLS files and the request-header deadline.

The master and tests on loopback both build their server here, so the protocol settings
(and the deadline on slow headers, kube-apiserver's ReadHeaderTimeout) are the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("dockyard.master")

HEADER_TIMEOUT = 32.0  # seconds to send a request's headers: kube-apiserver's ReadHeaderTimeout


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's headers.

    uvicorn bounds idle keep-alive connections only: a client that sends its headers a byte
    at a time (or never finishes the body of a request already answered) would hold a
    connection forever. The deadline runs from the connection (after the TLS handshake) and
    from the end of each response until the next request's headers are complete; when it
    passes, the connection is closed without an answer, as Go's ReadHeaderTimeout does.
    """

    header_timeout: float = HEADER_TIMEOUT
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_received()
        super().connection_lost(exc)

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

    def _await_headers(self) -> None:
        self._headers_received()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_passed)

    def _headers_received(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_passed(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        log.debug("closing a connection that sent no complete request headers in %ss", self.header_timeout,
                  extra={"client": f"{self.client[0]}:{self.client[1]}" if self.client else ""})
        self.transport.close()


def api_server_config(app: Any, host: str, port: int, *, ssl_certfile: str | None = None,
                      ssl_keyfile: str | None = None, header_timeout: float = HEADER_TIMEOUT) -> uvicorn.Config:
    """How uvicorn serves the API (the master's, and tests' on loopback)."""
    protocol = type("ApiHttpProtocol", (HeaderTimeoutProtocol,), {"header_timeout": header_timeout})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        http=protocol,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


def run(main: Any) -> Any:
    """Run the master's top-level coroutine on the event loop the API is served with."""
    return asyncio.run(main)
