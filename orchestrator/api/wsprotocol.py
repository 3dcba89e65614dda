"""uvicorn's WebSocket protocol for the API, tolerant of subprotocol names that are not tokens.

kubectl (1.31+) opens ``pods/portforward`` offering the subprotocol
``SPDY/3.1+portforward.k8s.io``. ``/`` is not an HTTP token character, and the
``websockets`` library behind uvicorn refuses such a ``Sec-WebSocket-Protocol`` header with
400 before the application sees the request (Go's servers, kube-apiserver's among them,
take any comma-separated names). uvicorn already splits the header on commas itself for the
ASGI scope and answers with whichever subprotocol the application accepts, so the
library's own parsing only validates: `WebSocketProtocol` skips that step and changes
nothing else.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol


class _TolerantServerProtocol(ServerProtocol):
    def process_subprotocol(self, headers: Headers) -> Subprotocol | None:
        return None  # the application picks one from the ASGI scope's list (uvicorn's split)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.__class__ = _TolerantServerProtocol
