"""The Kubernetes stream protocols over WebSocket: exec (`v4.channel.k8s.io`,
`v5.channel.k8s.io`) and port-forward (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`).

Every WebSocket message is binary; its first byte names a channel and the rest is the
payload: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error (the final `metav1.Status`
of the command, server to client), 4 resize (`{"Width": w, "Height": h}`, client to server).
v5 adds channel 255 "close": a client sends `[255, 0]` to close the command's stdin while
still reading its output (v4 clients can only close the whole connection).

The status on channel 3 is what kubectl reads to choose its exit code: `Success`, or
`Failure` with reason `NonZeroExitCode` and a cause `{reason: ExitCode, message: "<n>"}`.

**Port-forward** (kubelet's WebSocket port-forward, what the official Python client
speaks): the ports come from the request (``port`` on the agent, ``ports`` on the API,
repeated or comma-separated); port *i* gets channel ``2i`` (data, both ways) and ``2i+1``
(error, server to client). The server's first message on each of the two channels is the
port number, 2 bytes little-endian; after that the error channel carries at most one
message, kubelet's ``error forwarding port P to pod ..., uid ...: ...``. Under
``v4.base64.channel.k8s.io`` messages are text: the channel as an ASCII digit, then the
payload in base64. One TCP connection to the pod per port and WebSocket: when every port
is done the server closes the WebSocket. Between Dockyard's own ends a client may also
send ``[255, 2i]`` (v5's close message) to half-close port *i*'s data channel: the pod's
end of the TCP connection then reads end-of-file while its answer still flows back.

Used by the agent (server end), the master (which relays messages unchanged between the
client and the agent), `dockyard exec` and `dockyard port-forward` (client ends). Pure
functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
SUBPROTOCOLS = (V5, V4)  # in order of preference

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def choose_subprotocol(offered: list[str] | tuple[str, ...]) -> str | None:
    for p in SUBPROTOCOLS:
        if p in offered:
            return p
    return None


def frame(channel: int, payload: bytes = b"") -> bytes:
    return bytes([channel]) + payload


def split(message: bytes | str) -> tuple[int, bytes]:
    """(channel, payload) of one message; text messages are taken as UTF-8."""
    data = message.encode() if isinstance(message, str) else bytes(message)
    if not data:
        return -1, b""
    return data[0], data[1:]


def exit_status(code: int) -> dict[str, Any]:
    """The channel-3 Status for a command that exited with `code`."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command, exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def error_status(message: str, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def status_exit_code(status: dict[str, Any]) -> int | None:
    """The command's exit code from a channel-3 Status; None when it says something else failed."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    return None
    return None


def encode_status(status: dict[str, Any]) -> bytes:
    return frame(ERROR, json.dumps(status).encode())


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


# -- port-forward ------------------------------------------------------------------------------

V4_BASE64 = "v4.base64.channel.k8s.io"
PORTFORWARD = "portforward.k8s.io"  # kubelet's protocol name, also taken as a binary subprotocol
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"  # kubectl >= 1.31: SPDY frames inside WebSocket messages
# in order of preference ("" is a WebSocket without a subprotocol: binary, as kubelet allows)
PORTFORWARD_SUBPROTOCOLS = (V4, V4_BASE64, PORTFORWARD)
PORT_HEADER = "port"  # the agent's query parameter (kubelet's), repeatable and comma-separated
PORTS_PARAM = "ports"  # the API's (PodPortForwardOptions.ports)


def choose_portforward_subprotocol(offered: list[str] | tuple[str, ...]) -> str | None:
    """The channel subprotocol to answer with: "" when none was offered, None when none fits."""
    if not offered:
        return ""
    for p in PORTFORWARD_SUBPROTOCOLS:
        if p in offered:
            return p
    return None


def parse_ports(values: list[str], name: str = PORT_HEADER) -> list[int]:
    """Ports from repeated and/or comma-separated query values; ValueError with kubelet's words."""
    if not values:
        raise ValueError(f"query parameter {name!r} is required")
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError(f"query parameter {name!r} cannot be empty")
        for item in value.split(","):
            try:
                port = int(item, 10)
            except ValueError:
                raise ValueError(f"unable to parse {item!r} as a port: invalid syntax") from None
            if not 0 < port < 65536:
                raise ValueError(f"port {item!r} must be > 0 and < 65536")
            ports.append(port)
    return ports


def port_prefix(port: int) -> bytes:
    """The first payload on a port's data and error channels: the port, little-endian."""
    return struct.pack("<H", port)


def data_channel(index: int) -> int:
    return 2 * index


def error_channel(index: int) -> int:
    return 2 * index + 1


def encode_message(subprotocol: str, channel: int, payload: bytes = b"") -> bytes | str:
    """One WebSocket message of a channel subprotocol (text for the base64 one)."""
    if subprotocol == V4_BASE64:
        return chr(ord("0") + channel) + base64.b64encode(payload).decode()
    return frame(channel, payload)


def decode_message(subprotocol: str, message: bytes | str) -> tuple[int, bytes]:
    """(channel, payload); (-1, b"") for a message that cannot be read."""
    if subprotocol != V4_BASE64:
        return split(message)
    text = message.decode(errors="replace") if isinstance(message, (bytes, bytearray)) else message
    if not text:
        return -1, b""
    try:
        return ord(text[0]) - ord("0"), base64.b64decode(text[1:], validate=True)
    except (binascii.Error, ValueError):
        return -1, b""


def portforward_error(port: int, pod: str, uid: str, cause: str) -> str:
    """kubelet's message on a port's error channel/stream."""
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {cause}"
