"""`dockyard exec POD [-c C] [-i] [-t] -- COMMAND [ARG...]`: run a command in a container.

Flags may come anywhere before `--` (also after the pod name, as kubectl takes them): the
command line is cut at the first `--` before argparse sees it (`cli.main.parse`), so the
command's own flags are never read as ours. A command without `--` is refused with
kubectl's message. Without `-c`, a pod with several containers gets kubectl's default: the
container its `kubectl.kubernetes.io/default-container` annotation names, else the first,
with the `Defaulted container "c" out of: …` line on stderr.

Speaks the same WebSocket protocol as kubectl (`orchestrator.execproto`, subprotocol
`v5.channel.k8s.io`, falling back to v4) against
`/api/v1/namespaces/{ns}/pods/{pod}/exec`, with the kubeconfig's bearer token and CA.
Output channels go to stdout/stderr as they arrive; with `-i` stdin is copied to the
command and its end is signalled with the v5 close message; with `-t` (and a terminal on
stdin) the terminal is put in raw mode and its size is sent.

The exit code is the command's exit code, read from the final Status on channel 3; an
error before the command ran (no such pod, forbidden, …) is reported like any API error
(exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import urlencode

from .. import execproto
from ..client import Client, ConnectionFailed, ssl_context
from ..errors import ApiError
from ..objects.kinds import resolve
from . import output
from .logs import default_container, pod_for
from .options import global_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("exec", parents=[global_options(suppress=True)],
                              help="run a command in a container of a pod",
                              description="run a command in a container of a pod; its exit code is returned. "
                                          "Flags go anywhere before `--`, the command after it.")
    p.add_argument("pod", metavar="POD", help="pod name (or pod/NAME)")
    p.add_argument("-c", "--container", metavar="C", help="container name (default: the only one)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal for the command")
    p.add_argument("cmd", nargs="*", metavar="-- COMMAND [ARG...]", help="the command, after --")
    p.set_defaults(handler=cmd_exec, trailing="cmd", intermixed="cmd", dashdash=False)


def exec_url(server: str, namespace: str, pod: str, command: list[str], container: str | None,
             stdin: bool, tty: bool) -> str:
    params: list[tuple[str, str]] = [("command", c) for c in command]
    if container:
        params.append(("container", container))
    params += [("stdout", "true"), ("stderr", "false" if tty else "true")]
    if stdin:
        params.append(("stdin", "true"))
    if tty:
        params.append(("tty", "true"))
    base = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/api/v1/namespaces/{namespace}/pods/{pod}/exec?{urlencode(params)}"


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    if not enabled or not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def open_session(client: Client, namespace: str, pod: str, command: list[str], container: str | None,
                 stdin: bool, tty: bool) -> Any:
    """A connected exec WebSocket (a `websockets` sync client connection); API errors raised."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    url = exec_url(client.server, namespace, pod, command, container, stdin, tty)
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    ctx = ssl_context(client.ca_pem) if url.startswith("wss://") else None
    try:
        return connect(url, ssl=ctx, additional_headers=headers,
                       subprotocols=[Subprotocol(p) for p in execproto.SUBPROTOCOLS],
                       max_size=None, compression=None, open_timeout=30, user_agent_header="dockyard")
    except InvalidStatus as e:
        body = e.response.body or b""
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("kind") == "Status":
                raise ApiError.from_status(data, e.response.status_code) from None
        except ValueError:
            pass
        raise ApiError(e.response.status_code, "Unknown", body.decode(errors="replace")[:200]
                       or f"HTTP {e.response.status_code}") from None
    except (OSError, WebSocketException) as e:
        raise ConnectionFailed(client.server, e) from None


def pump(ws: Any, stdout: IO[bytes], stderr: IO[bytes]) -> dict[str, Any] | None:
    """Copy the session's output channels until it ends; the final Status (None: none came)."""
    from websockets.exceptions import ConnectionClosed

    status: dict[str, Any] | None = None
    try:
        for msg in ws:
            channel, payload = execproto.split(msg)
            if channel == execproto.STDOUT:
                stdout.write(payload)
                stdout.flush()
            elif channel == execproto.STDERR:
                stderr.write(payload)
                stderr.flush()
            elif channel == execproto.ERROR and payload:
                with contextlib.suppress(ValueError):
                    status = json.loads(payload)
    except ConnectionClosed:
        pass
    return status


def exit_code_of(status: dict[str, Any] | None) -> int:
    """The command's exit code from the session's final Status; an API error when it did not run."""
    if status is None:
        raise output.CliError("the connection closed before the command's exit status arrived")
    code = execproto.status_exit_code(status)
    if code is None:
        raise ApiError(int(status.get("code") or 500), str(status.get("reason") or "InternalError"),
                       str(status.get("message") or "the command failed"))
    return code


def run(client: Client, pod: str, command: list[str], container: str | None = None,
        stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None, stderr: IO[bytes] | None = None,
        namespace: str | None = None) -> int:
    """Run `command` in the pod without a terminal, feeding `stdin` (if given) and closing it;
    returns the command's exit code (used by `cp`)."""
    ws = open_session(client, namespace or client.namespace, pod, command, container, stdin is not None, False)
    v5 = ws.subprotocol == execproto.V5
    with ws:
        if stdin is not None:
            threading.Thread(target=_copy, args=(ws, v5, stdin), name="exec-stdin", daemon=True).start()
        status = pump(ws, stdout or sys.stdout.buffer, stderr or sys.stderr.buffer)
    return exit_code_of(status)


def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if (command and not args.dashdash) or getattr(args, "before_dash", None):
        raise output.CliError("exec [POD] [COMMAND] is not supported anymore. "
                              "Use exec [POD] -- [COMMAND] instead")
    if not command:
        raise output.CliError("you must specify at least one command for the container (dockyard exec POD -- CMD)")
    with output.connect(args) as client:
        name = pod_for(client, args.pod)
        container = args.container
        if not container:
            container, notice = default_container(client.get(resolve("pods"), name))
            if notice:
                print(notice, file=sys.stderr, flush=True)
        ws = open_session(client, client.namespace, name, command, container, args.stdin, args.tty)
    v5 = ws.subprotocol == execproto.V5
    with ws, raw_terminal(args.tty):
        if args.tty and sys.stdout.isatty():
            with contextlib.suppress(OSError):
                size = os.get_terminal_size()
                ws.send(execproto.frame(execproto.RESIZE, json.dumps(
                    {"Width": size.columns, "Height": size.lines}).encode()))
        if args.stdin:
            threading.Thread(target=_copy_stdin, args=(ws, v5), name="exec-stdin", daemon=True).start()
        status = pump(ws, sys.stdout.buffer, sys.stderr.buffer)
    return exit_code_of(status)


def _copy(ws: Any, v5: bool, source: IO[bytes]) -> None:
    _send_stdin(ws, v5, lambda: source.read(32768))


def _copy_stdin(ws: Any, v5: bool) -> None:
    fd = sys.stdin.fileno()
    _send_stdin(ws, v5, lambda: os.read(fd, 32768))


def _send_stdin(ws: Any, v5: bool, read: Callable[[], bytes]) -> None:
    """Send what `read` returns as stdin frames until it returns nothing, then (v5) close stdin."""
    try:
        while True:
            data = read()
            if not data:
                break
            ws.send(execproto.frame(execproto.STDIN, data))
        if v5:
            ws.send(execproto.frame(execproto.CLOSE, bytes([execproto.STDIN])))
    except Exception:  # the session ended while we were reading
        return
