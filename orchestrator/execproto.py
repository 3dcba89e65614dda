"""The Kubernetes exec stream protocol over WebSocket (`v4.channel.k8s.io`, `v5.channel.k8s.io`).

Every WebSocket message is binary; its first byte names a channel and the rest is the
payload: 0 stdin (client to server), 1 stdout, 2 stderr, 3 error (the final `metav1.Status`
of the command, server to client), 4 resize (`{"Width": w, "Height": h}`, client to server).
v5 adds channel 255 "close": a client sends `[255, 0]` to close the command's stdin while
still reading its output (v4 clients can only close the whole connection).

The status on channel 3 is what kubectl reads to choose its exit code: `Success`, or
`Failure` with reason `NonZeroExitCode` and a cause `{reason: ExitCode, message: "<n>"}`.

Used by the agent (server end), the master (which relays messages unchanged between the
client and the agent) and `dockyard exec` (client end). Pure functions, no I/O.
"""

from __future__ import annotations

import json
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
