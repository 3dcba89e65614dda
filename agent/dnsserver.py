"""The node's cluster DNS server as its own long-lived process, and the agent's handle on it.

Why a process of its own: pods resolve every name through the DNS server on their node's
pod-bridge gateway (see `agent.dns`). Were it a thread of the agent, every agent stop (an
upgrade, a supervisor or systemd restart, a crash) would leave the node's pods without
name resolution until the next agent is up. The node's data plane must keep working while
no agent runs, so the server is started detached (its own session, stdin from /dev/null,
output appended to ``<state dir>/dns.log``) and outlives the agent that started it.

Records: the agent builds the `ClusterIndex` from its watch-fed cluster state and
`NodeDNS.update` writes it as JSON to ``<state dir>/records.json`` (a temporary file
renamed over the old one, and only when the content changed). The server polls the file's
identity (mtime, size, inode) every 0.2 s and swaps in the new index in one assignment; a
file it cannot read keeps the last good index (logged once per bad version). Names outside
the cluster domain are forwarded to the node's resolvers from /etc/resolv.conf (re-read
when it changes), never to the server's own address. The answers are `agent.dns`'s
(`ClusterResolver`, `ClusterIndex`); the server adds only ``id.server. CH TXT`` (RFC 4892),
which names the process that answered, so the agent can tell which server it reached.

Adoption: ``<state dir>/server.json`` records the running server (pid, address, port,
revision, start time). A new agent's `NodeDNS.start` adopts that server when it is alive
(``/proc/<pid>`` is a live ``python -m agent.dnsserver`` of the same state dir, in the
agent's own network and mount namespaces: hosts sharing one PID namespace, such as
containers or a lab of namespaces, each keep their own server under the same path) and
serves the same address, port and `SERVER_REVISION`; the decision is `plan_server`,
pure. Bump `SERVER_REVISION` whenever the server's behaviour or the records format
changes: an agent of a newer revision then replaces the running server instead of
adopting it.

Handover: a replacement binds the same address and port beside the old server (UDP and
TCP sockets set SO_REUSEPORT and SO_REUSEADDR; the kernel then shares the port among the
group). Every server attaches to its socket group a one-instruction classic BPF program,
"the group's second socket": alone, that socket does not exist and the kernel picks the
only one; during a handover it is the replacement, which joined second, so new queries go
to it from the moment it has bound (it loads the records before binding). The agent waits
until the new process answers over UDP and TCP and only then sends SIGTERM to the old one,
which connects its UDP socket to itself (a connected socket leaves the group's hashing,
should the program be missing), stops its loops, answers what is already queued, waits
for the replies still being computed and exits 0. No query is refused or lost.

Teardown is an explicit act: `NodeDNS.stop` or `teardown(state_dir)` (for
``dockyard agent --cleanup``, ``node remove`` and tests) stops every server of the state
dir (SIGTERM, SIGKILL after a deadline) and removes the state files. Dropping a `NodeDNS`
stops nothing, and the server's parent is not the agent (it is started through an
intermediate process that exits at once), so the agent never has to reap it. A server whose
state directory has disappeared exits by itself.

Process entry::

    python -m agent.dnsserver --listen ADDRESS [--port 53] --state-dir DIR
        [--records FILE] [--resolv-conf /etc/resolv.conf] [--detach]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import fcntl
import json
import logging
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from dnslib import CLASS, QTYPE, RR, TXT, DNSRecord
from dnslib.server import DNSHandler

from orchestrator.objects import Obj

from .dns import ClusterIndex, ClusterResolver, QuietLogger, read_upstreams

log = logging.getLogger("dockyard.agent.dnsserver")

SERVER_REVISION = 1  # bump when the server's behaviour or the records format changes
STATE_FILE = "server.json"
RECORDS_FILE = "records.json"
LOG_FILE = "dns.log"
LOG_ROTATE_BYTES = 1 << 20  # at a server start, a bigger log becomes dns.log.1
LOCK_FILE = "lock"
MODULE = "agent.dnsserver"
POLL_INTERVAL = 0.2
TCP_IDLE_TIMEOUT = 5.0  # a TCP client that sends nothing is dropped after this
IDENTITY_NAME = "id.server."
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding the `agent` package

Plan = Literal["adopt", "start", "replace"]


class DNSServerError(OSError):
    """The node's DNS server could not be started."""


def plan_server(state: Mapping[str, Any] | None, alive: bool, want: tuple[str, int, int]) -> Plan:
    """What `NodeDNS.start` does, from the state file, whether its process is one of our
    live servers, and the wanted (address, port, revision).

    ``adopt`` the running server; ``start`` a new one (no server runs); ``replace`` the
    running one: start a new one, then stop the old once the new one answers."""
    if state is None or not alive:
        return "start"
    if (state.get("address"), state.get("port"), state.get("revision")) == want:
        return "adopt"
    return "replace"


# -- the server process ---------------------------------------------------------------------

_SO_ATTACH_REUSEPORT_CBPF = getattr(socket, "SO_ATTACH_REUSEPORT_CBPF", 51)
_BPF_RET_K = 0x06


def steer_to_second(sock: socket.socket) -> bool:
    """Attach "return 1" as the reuseport program of `sock`'s group: new packets (and TCP
    connections) go to the group's second socket, or by hash when there is none. False
    when the kernel refuses (the handover then relies on hashing and draining)."""
    insn = (ctypes.c_ubyte * 8).from_buffer_copy(struct.pack("=HBBI", _BPF_RET_K, 0, 0, 1))
    prog = struct.pack("@HP", 1, ctypes.addressof(insn))  # struct sock_fprog {len; filter*}
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_REUSEPORT_CBPF, prog)
    except OSError as e:
        log.debug("no reuseport steering: %s", e)
        return False
    return True


def _reuse(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


class _Server(socketserver.ThreadingMixIn):
    """Shared by the UDP and TCP servers: one thread per query, and a close that lets the
    replies of queries in flight leave through the still-open socket."""

    daemon_threads = False
    block_on_close = True
    socket: socket.socket
    resolver: ClusterResolver
    logger: QuietLogger

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("query from %s failed: %s", client_address, sys.exc_info()[1])

    def drain(self) -> int:
        """Serve what is queued on the socket now (the serve loop must have stopped)."""
        self.socket.setblocking(False)
        n = 0
        while True:
            try:
                request, client = self._take()
            except OSError:  # empty (or closed)
                return n
            self.process_request(request, client)
            n += 1

    def _take(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def server_close(self) -> None:
        # ThreadingMixIn's private list of query threads, which its stubs do not declare
        self._threads.join()  # type: ignore[attr-defined]
        self.socket.close()


class _UDPServer(_Server, socketserver.UDPServer):
    max_packet_size = 65535

    def server_bind(self) -> None:
        _reuse(self.socket)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        steer_to_second(self.socket)

    def leave_group(self) -> None:
        """Take this socket out of the port group's hashing: a connected UDP socket only
        receives from its peer, here itself. What is already queued stays readable."""
        host, port = self.server_address[:2]
        with contextlib.suppress(OSError):
            self.socket.connect((host if host != "0.0.0.0" else "127.0.0.1", port))

    def _take(self) -> tuple[Any, Any]:
        data, client = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client


class _TCPServer(_Server, socketserver.TCPServer):
    def server_bind(self) -> None:
        _reuse(self.socket)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        super().server_activate()
        steer_to_second(self.socket)  # a TCP socket joins its group when it listens

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, client = self.socket.accept()
        conn.settimeout(TCP_IDLE_TIMEOUT)
        return conn, client

    def _take(self) -> tuple[Any, Any]:
        return self.get_request()


class ServerResolver(ClusterResolver):
    """`ClusterResolver`, plus ``id.server. CH TXT`` naming this process."""

    def __init__(self, upstreams: list[str], identity: str, timeout: float = 2.0) -> None:
        super().__init__(upstreams, timeout)
        self.identity = identity

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        q = request.q
        if q.qclass == CLASS.CH and str(q.qname).lower() == IDENTITY_NAME and q.qtype in (QTYPE.TXT, QTYPE.ANY):
            reply = request.reply()
            reply.header.aa = 1
            reply.add_answer(RR(q.qname, QTYPE.TXT, rclass=CLASS.CH, ttl=0, rdata=TXT(self.identity)))
            return reply
        return super().resolve(request, handler)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatch:
    """Calls `load(path)` when the file's identity (mtime, size, inode) changes; a load
    that raises ValueError or OSError keeps the last good value and is logged once per
    file version."""

    def __init__(self, path: Path, load: Callable[[Path], None], what: str, *, loaded: bool = False) -> None:
        """`loaded`: the caller has just read the file itself; only later versions load."""
        self.path = path
        self.load = load
        self.what = what
        self.seen: tuple[int, int, int] | None = _signature(path) if loaded else None
        self.first = not loaded

    def poll(self) -> bool:
        """True when a new version was loaded."""
        sig = _signature(self.path)
        if sig == self.seen and not self.first:
            return False
        first, self.first, self.seen = self.first, False, sig
        if sig is None:
            if first:
                log.info("no %s at %s yet", self.what, self.path)
            else:
                log.warning("%s %s disappeared; keeping the last one read", self.what, self.path)
            return False
        try:
            self.load(self.path)
        except (ValueError, OSError) as e:
            log.warning("ignoring %s %s (keeping the last good one): %s", self.what, self.path, e)
            return False
        return True


class DNSServerProcess:
    """What ``python -m agent.dnsserver`` runs: UDP and TCP servers on address:port over
    one `ServerResolver`, its index reloaded from the records file."""

    def __init__(self, address: str, port: int, records: Path, state_dir: Path,
                 resolv_conf: str = "/etc/resolv.conf") -> None:
        self.address = address
        self.port = port
        self.state_dir = state_dir
        self.resolv_conf = resolv_conf
        self.resolver = ServerResolver(self._upstreams(), f"dockyard-dns pid={os.getpid()} revision={SERVER_REVISION}")
        self.records = FileWatch(records, self._load_records, "records")
        self.resolv = FileWatch(Path(resolv_conf), self._load_resolv, "resolver configuration", loaded=True)
        self.loads = 0
        self.servers: list[_UDPServer | _TCPServer] = []
        self.threads: list[threading.Thread] = []

    def _upstreams(self) -> list[str]:
        return read_upstreams(self.resolv_conf, exclude=[self.address])

    def _load_records(self, path: Path) -> None:
        index = ClusterIndex.from_json(path.read_bytes())
        self.resolver.index = index  # one assignment: each query sees one whole index
        self.loads += 1
        # the first load at info, later ones (every Service or Endpoints change) at debug
        log.log(logging.INFO if self.loads == 1 else logging.DEBUG, "records loaded: %d names",
                len(index.a) + len(index.cname) + len(index.srv))

    def _load_resolv(self, path: Path) -> None:
        self.resolver.upstreams = self._upstreams()
        log.info("forwarding to %s", ", ".join(self.resolver.upstreams) or "nobody")

    def start(self) -> None:
        """Load the records, then bind (a replacement takes queries from the moment it binds)."""
        self.records.poll()
        udp = _UDPServer((self.address, self.port), DNSHandler)
        try:
            tcp = _TCPServer((self.address, self.port), DNSHandler)
        except OSError:
            udp.socket.close()
            raise
        for server in (udp, tcp):
            server.resolver = self.resolver
            server.logger = QuietLogger()
            t = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,),
                                 name=f"dns-{type(server).__name__[1:4].lower()}", daemon=True)
            t.start()
            self.servers.append(server)
            self.threads.append(t)
        log.info("cluster DNS serving %s:%d (pid %d, revision %d, forwarding to %s)", self.address, self.port,
                 os.getpid(), SERVER_REVISION, ", ".join(self.resolver.upstreams) or "nobody")

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_INTERVAL):
            if not self.state_dir.is_dir():
                log.warning("state directory %s is gone; exiting", self.state_dir)
                return
            self.records.poll()
            self.resolv.poll()

    def close(self) -> None:
        for server in self.servers:
            if isinstance(server, _UDPServer):
                server.leave_group()
        for server in self.servers:
            server.shutdown()
        drained = sum(server.drain() for server in self.servers)
        for server in self.servers:
            server.server_close()
        self.servers.clear()
        log.info("cluster DNS on %s:%d stopped (%d queued queries answered on the way out)",
                 self.address, self.port, drained)


def _detach() -> None:
    """Fork: the parent prints the child's pid and exits, the child (no longer the
    caller's child, not a session leader) goes on with stdout sent to stderr."""
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        os.write(1, f"{pid}\n".encode())
        os._exit(0)
    os.dup2(2, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.dnsserver", description="The node's cluster DNS server.")
    parser.add_argument("--listen", required=True, help="address to serve on (the pod bridge's gateway)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--state-dir", required=True, type=Path, help="the server exits when it disappears")
    parser.add_argument("--records", type=Path, help=f"the index as JSON (default: <state-dir>/{RECORDS_FILE})")
    parser.add_argument("--resolv-conf", default="/etc/resolv.conf", help="where the node's resolvers are")
    parser.add_argument("--detach", action="store_true", help="fork, print the server's pid, and return")
    args = parser.parse_args(argv)
    if args.detach:
        _detach()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    server = DNSServerProcess(args.listen, args.port, args.records or args.state_dir / RECORDS_FILE,
                              args.state_dir, args.resolv_conf)
    try:
        server.start()
    except OSError as e:
        log.error("cannot serve DNS on %s:%d: %s", args.listen, args.port, e)
        return 1
    try:
        server.run(stop)
    finally:
        server.close()
    return 0


# -- the agent's side -----------------------------------------------------------------------


def ask(address: str, port: int, name: str, qtype: str = "A", *, tcp: bool = False,
        timeout: float = 1.0, qclass: str = "IN") -> DNSRecord:
    """One query to address:port over UDP or TCP (raises OSError/TimeoutError)."""
    data = DNSRecord.question(name, qtype, qclass).send(address, port, tcp=tcp, timeout=timeout)
    return DNSRecord.parse(data)


def serving_pid(address: str, port: int, *, tcp: bool = False, timeout: float = 0.5) -> int | None:
    """The pid of the server that answered ``id.server. CH TXT``, None without an answer."""
    try:
        reply = ask(address, port, IDENTITY_NAME, "TXT", tcp=tcp, timeout=timeout, qclass="CH")
    except (OSError, ValueError):
        return None
    for rr in reply.rr:
        for word in str(rr.rdata).strip('"').split():
            if word.startswith("pid=") and word[4:].isdigit():
                return int(word[4:])
    return None


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = stat[stat.rfind(")") + 2:]
    return rest[:1] or None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie's parent may never reap it)."""
    return _proc_state(pid) not in (None, "Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _serves(cmdline: list[str], state_dir: Path) -> bool:
    if MODULE not in cmdline:
        return False
    for i, arg in enumerate(cmdline):
        if arg == "--state-dir" and i + 1 < len(cmdline):
            return cmdline[i + 1] == str(state_dir)
        if arg.startswith("--state-dir="):
            return arg.split("=", 1)[1] == str(state_dir)
    return False


def _namespaces(pid: int | str) -> tuple[int, int] | None:
    """(network, mount) namespace inodes of a process."""
    try:
        return (os.stat(f"/proc/{pid}/ns/net").st_ino, os.stat(f"/proc/{pid}/ns/mnt").st_ino)
    except OSError:
        return None


def _same_host(pid: int) -> bool:
    """`pid` lives in our network and mount namespaces: hosts that share one PID namespace
    (containers, a lab of namespaces) each have their own server under the same path."""
    return _namespaces(pid) == _namespaces("self")


def is_server(pid: int, state_dir: Path) -> bool:
    """`pid` is a live ``python -m agent.dnsserver`` of this host serving `state_dir`."""
    return alive(pid) and _serves(_cmdline(pid), _absolute(state_dir)) and _same_host(pid)


def server_pids(state_dir: Path) -> list[int]:
    """Every live server process of `state_dir` on this host (normally one; two during a handover)."""
    state_dir = _absolute(state_dir)
    pids = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and is_server(int(entry.name), state_dir):
                pids.append(int(entry.name))
    return sorted(pids)


def terminate(pid: int, timeout: float = 10.0) -> bool:
    """SIGTERM, SIGKILL after `timeout`; True once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while alive(pid):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        else:
            return True
        if sig == signal.SIGTERM:
            log.warning("cluster DNS server %d ignored SIGTERM for %.0fs; killing it", pid, timeout)
    return not alive(pid)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def read_state(state_dir: Path) -> Obj | None:
    """The state file, None when missing or unreadable."""
    try:
        state = json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("pid"), int) or isinstance(state["pid"], bool):
        return None
    return state


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One start/stop at a time per state dir, across processes."""
    with open(state_dir / LOCK_FILE, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class NodeDNS:
    """The agent's handle on the node's DNS server process (see the module docstring).

    `start` adopts or (re)starts the server, `update` publishes records, `stop` tears it
    down. Nothing here stops the server implicitly: not the object's end, not the agent's."""

    def __init__(self, state_dir: Path, address: str, port: int = 53, python: str = sys.executable, *,
                 resolv_conf: str = "/etc/resolv.conf", start_timeout: float = 10.0,
                 stop_timeout: float = 10.0) -> None:
        self.state_dir = _absolute(state_dir)
        self.address = address
        self.port = port
        self.python = python
        self.resolv_conf = resolv_conf
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.pid: int | None = None
        self._lock = threading.Lock()
        self._written: str | None = None  # records text last written or found on disk

    @property
    def records_path(self) -> Path:
        return self.state_dir / RECORDS_FILE

    def start(self) -> int:
        """Adopt the running server or start one (handing over from a server of another
        revision or address without a gap); returns its pid. DNSServerError when the new
        server does not answer within `start_timeout` (a server that was running stays)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        want = (self.address, self.port, SERVER_REVISION)
        with _locked(self.state_dir):
            state = read_state(self.state_dir)
            running = state is not None and is_server(state["pid"], self.state_dir)
            plan = plan_server(state, running, want)
            if plan == "adopt":
                assert state is not None
                pid = int(state["pid"])
                log.info("adopting cluster DNS server %d on %s:%d", pid, self.address, self.port)
            else:
                if plan == "replace":
                    assert state is not None
                    log.info("replacing cluster DNS server %d (%s:%s, revision %s) with revision %d on %s:%d",
                             state["pid"], state.get("address"), state.get("port"), state.get("revision"),
                             SERVER_REVISION, self.address, self.port)
                pid = self._spawn()
                self._wait_answering(pid)
                _write_atomic(self.state_dir / STATE_FILE, json.dumps({
                    "pid": pid, "address": self.address, "port": self.port, "revision": SERVER_REVISION,
                    "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                }) + "\n")
                log.info("cluster DNS server %d answers on %s:%d", pid, self.address, self.port)
            for other in server_pids(self.state_dir):  # the replaced one, and any stray
                if other != pid:
                    log.info("stopping cluster DNS server %d", other)
                    terminate(other, self.stop_timeout)
        self.pid = pid
        return pid

    def _spawn(self) -> int:
        cmd = [self.python, "-m", MODULE, "--listen", self.address, "--port", str(self.port),
               "--state-dir", str(self.state_dir), "--records", str(self.records_path),
               "--resolv-conf", self.resolv_conf, "--detach"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        logfile = self.state_dir / LOG_FILE
        with contextlib.suppress(OSError):
            if logfile.stat().st_size > LOG_ROTATE_BYTES:
                os.replace(logfile, logfile.with_name(LOG_FILE + ".1"))
        with open(logfile, "ab") as out:
            try:
                done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=out, env=env,
                                      cwd="/", start_new_session=True, timeout=self.start_timeout, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise DNSServerError(f"cannot start the cluster DNS server: {e}") from None
        text = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 or not text.isdigit():
            raise DNSServerError(f"cannot start the cluster DNS server (exit {done.returncode}): "
                                 f"{_log_tail(self.state_dir / LOG_FILE)}")
        return int(text)

    def _wait_answering(self, pid: int) -> None:
        """Until `pid` itself answers over UDP and over TCP."""
        deadline = time.monotonic() + self.start_timeout
        need = {False, True}  # tcp?
        while need:
            if not alive(pid):
                raise DNSServerError(f"the cluster DNS server exited at start: {_log_tail(self.state_dir / LOG_FILE)}")
            if time.monotonic() >= deadline:
                terminate(pid, 2.0)
                raise DNSServerError(f"the cluster DNS server did not answer on {self.address}:{self.port} "
                                     f"within {self.start_timeout:.0f}s: {_log_tail(self.state_dir / LOG_FILE)}")
            for tcp in sorted(need):
                if serving_pid(self.address, self.port, tcp=tcp, timeout=0.25) == pid:
                    need.discard(tcp)
            if need:
                time.sleep(0.02)

    def update(self, services: Iterable[Obj], endpoints: Iterable[Obj]) -> bool:
        """Publish the records for these Services and Endpoints; True when the file changed."""
        text = ClusterIndex.build(services, endpoints).to_json()
        with self._lock:
            if self._written is None:
                with contextlib.suppress(OSError):
                    self._written = self.records_path.read_text()
            if text == self._written:
                return False
            self.state_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.records_path, text)
            self._written = text
        return True

    def stop(self) -> bool:
        """Explicit teardown: see `teardown`."""
        self.pid = None
        with self._lock:
            self._written = None
        return teardown(self.state_dir, self.stop_timeout)


def teardown(state_dir: Path, timeout: float = 10.0) -> bool:
    """Stop every DNS server of `state_dir` and remove its state files (and the directory,
    when nothing else is left in it). True when a server was running."""
    state_dir = _absolute(state_dir)
    if not state_dir.is_dir():
        return False
    with _locked(state_dir):
        state = read_state(state_dir)
        pids = set(server_pids(state_dir))
        if state is not None and is_server(state["pid"], state_dir):
            pids.add(state["pid"])
        for pid in sorted(pids):
            log.info("stopping cluster DNS server %d", pid)
            if not terminate(pid, timeout):
                log.warning("cluster DNS server %d did not exit", pid)
        for entry in state_dir.iterdir():
            if entry.name in (STATE_FILE, RECORDS_FILE, LOG_FILE, LOG_FILE + ".1") or (
                entry.name.startswith(".") and entry.name.endswith(".tmp")
            ):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
    with contextlib.suppress(OSError):
        (state_dir / LOCK_FILE).unlink()
        state_dir.rmdir()
    return bool(pids)


__all__ = [
    "DNSServerError", "DNSServerProcess", "NodeDNS", "SERVER_REVISION", "alive", "ask", "is_server", "main",
    "plan_server", "read_state", "server_pids", "serving_pid", "teardown",
]


if __name__ == "__main__":
    sys.exit(main())
