"""SSH to nodes: verified host keys, key/agent authentication, sudo, commands and uploads.

The only paramiko user of the project. A connection is built by hand on a
`paramiko.Transport` so the host key can be checked *before* any credential is offered:

* the key is compared with a fingerprint pinned in the inventory
  (`hostKeyFingerprint: SHA256:…`) when there is one, else with the known_hosts files
  (default `~/.dockyard/known_hosts`, then `~/.ssh/known_hosts`; hashed entries and
  `[host]:port` entries are understood);
* an unknown key is refused with its SHA256 fingerprint and how to accept it; with
  `accept_new=True` (CLI `--accept-new-host-keys`, trust on first use) it is appended to the
  first known_hosts file instead;
* a *changed* key (a known key of the same type that differs, or a pin that does not match)
  is refused loudly, naming the host and both fingerprints. There is no option to skip this.

Authentication: a key file, the ssh-agent, or the default keys under `~/.ssh`. Non-root users
run commands through `sudo -n` (passwordless) or `sudo -S` with a password fed on stdin.

Only connection-level failures (refused, timed out, reset, banner errors) are retried, with
tenacity and exponential backoff; authentication and host-key errors are final. Every error
is an `SSHError` whose message starts with the host.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from . import BootstrapError

DEFAULT_KNOWN_HOSTS = ("~/.dockyard/known_hosts", "~/.ssh/known_hosts")
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")


class SSHError(BootstrapError):
    """An SSH failure; the message always names the host."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host


class ConnectError(SSHError):
    """The TCP/SSH connection could not be established (retried)."""


class AuthError(SSHError):
    """The server refused every credential offered."""


class HostKeyUnknown(SSHError):
    """No known_hosts entry and no pinned fingerprint for the host."""


class HostKeyChanged(SSHError):
    """The host presented a key different from the one recorded or pinned."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style `SHA256:<base64 without padding>` of the public key blob."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_entry(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class HostKeyVerdict:
    ok: bool
    problem: str = ""  # "" | "unknown" | "changed"
    expected: tuple[str, ...] = ()  # fingerprints on record (for messages)


def check_host_key(
    host: str, port: int, key: paramiko.PKey, known: Iterable[paramiko.HostKeys], pinned: str | None = None
) -> HostKeyVerdict:
    """Compare a presented key with a pinned fingerprint or the known_hosts entries."""
    got = fingerprint(key)
    if pinned:
        want = pinned if pinned.startswith("SHA256:") else "SHA256:" + pinned
        return HostKeyVerdict(True) if want.rstrip("=") == got else HostKeyVerdict(False, "changed", (want,))
    same_type: list[str] = []
    entry = host_entry(host, port)
    for hk in known:
        found = hk.lookup(entry)
        if not found:
            continue
        for ktype in found.keys():
            k = found[ktype]
            if k.asbytes() == key.asbytes():
                return HostKeyVerdict(True)
            if ktype == key.get_name():
                same_type.append(fingerprint(k))
    if same_type:
        return HostKeyVerdict(False, "changed", tuple(same_type))
    return HostKeyVerdict(False, "unknown")


def load_known_hosts(paths: Iterable[str | Path]) -> list[paramiko.HostKeys]:
    out: list[paramiko.HostKeys] = []
    for p in paths:
        path = Path(os.path.expanduser(str(p)))
        if path.is_file():
            hk = paramiko.HostKeys()
            try:
                hk.load(str(path))
            except (OSError, paramiko.SSHException):
                continue
            out.append(hk)
    return out


def append_known_host(path: str | Path, host: str, port: int, key: paramiko.PKey) -> None:
    p = Path(os.path.expanduser(str(path)))
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(f"{host_entry(host, port)} {key.get_name()} {key.get_base64()}\n")
    os.chmod(p, 0o600)


def sudo_wrap(cmd: str, user: str, sudo: bool, password: str | None) -> tuple[str, str]:
    """The command line to run and the stdin prefix it needs (the sudo password)."""
    if user == "root" or not sudo:
        return cmd, ""
    inner = "sh -c " + shlex.quote(cmd)
    if password is None:
        return f"sudo -n -- {inner}", ""
    return f"sudo -S -p '' -- {inner}", password + "\n"


@dataclass
class SSHTarget:
    host: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    use_agent: bool = False
    sudo: bool = False
    sudo_password: str | None = None
    host_key_fingerprint: str | None = None
    known_hosts: tuple[str, ...] = DEFAULT_KNOWN_HOSTS
    accept_new: bool = False
    connect_timeout: float = 10.0
    attempts: int = 4
    label: str = ""  # how the host is named in messages (default "user@host:port")
    extra_keys: list[paramiko.PKey] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label or f"{self.user}@{self.host}" + (f":{self.port}" if self.port != 22 else "")


class SSHConnection:
    """One authenticated SSH transport to a node; `run` and `put` use it."""

    def __init__(self, target: SSHTarget) -> None:
        self.t = target
        self.transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connecting --------------------------------------------------------------------

    def connect(self) -> SSHConnection:
        attempt = retry(
            retry=retry_if_exception_type(ConnectError),
            stop=stop_after_attempt(max(1, self.t.attempts)),
            wait=wait_exponential(multiplier=0.5, max=5),
            reraise=True,
        )(self._connect_once)
        attempt()
        return self

    def _connect_once(self) -> None:
        t = self.t
        try:
            sock = socket.create_connection((t.host, t.port), timeout=t.connect_timeout)
        except OSError as e:
            raise ConnectError(t.name, f"cannot connect to port {t.port}: {e}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=t.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as e:
            transport.close()
            raise ConnectError(t.name, f"SSH handshake failed: {e}") from None
        try:
            self._verify_host_key(transport)
            self._authenticate(transport)
        except BaseException:
            transport.close()
            raise
        transport.set_keepalive(15)
        self.transport = transport

    def _verify_host_key(self, transport: paramiko.Transport) -> None:
        t = self.t
        key = transport.get_remote_server_key()
        got = fingerprint(key)
        verdict = check_host_key(t.host, t.port, key, load_known_hosts(t.known_hosts), t.host_key_fingerprint)
        if verdict.ok:
            return
        if verdict.problem == "changed":
            source = "the inventory's hostKeyFingerprint" if t.host_key_fingerprint else "known_hosts"
            raise HostKeyChanged(
                t.name,
                "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! Refusing to connect. "
                f"{t.host} presented a {key.get_name()} key with fingerprint {got}, but {source} "
                f"expects {', '.join(verdict.expected)}. Someone could be intercepting the connection, "
                "or the host was reinstalled. If the change is expected, remove the old entry "
                f"(ssh-keygen -R {shlex.quote(host_entry(t.host, t.port))} -f {t.known_hosts[0]}) "
                "or update hostKeyFingerprint, then retry.",
            )
        if t.accept_new:
            append_known_host(t.known_hosts[0], t.host, t.port, key)
            return
        raise HostKeyUnknown(
            t.name,
            f"unknown host key: {t.host} presented a {key.get_name()} key with fingerprint {got}. "
            "Verify it out of band, then accept it with --accept-new-host-keys (adds it to "
            f"{t.known_hosts[0]}) or pin it in the inventory as hostKeyFingerprint: {got}",
        )

    def _candidate_keys(self) -> list[paramiko.PKey]:
        t = self.t
        keys: list[paramiko.PKey] = list(t.extra_keys)
        if t.key_file:
            path = os.path.expanduser(t.key_file)
            try:
                keys.append(paramiko.PKey.from_path(path, os.environ.get("DOCKYARD_SSH_KEY_PASSPHRASE")))
            except (OSError, paramiko.SSHException, ValueError) as e:
                raise AuthError(t.name, f"cannot read key file {path}: {e}") from None
            return keys
        if t.use_agent or not keys:
            try:
                keys.extend(paramiko.Agent().get_keys())
            except paramiko.SSHException:
                pass
        if not t.use_agent:
            for p in DEFAULT_KEYS:
                path = os.path.expanduser(p)
                if os.path.isfile(path):
                    try:
                        keys.append(paramiko.PKey.from_path(path))
                    except (paramiko.SSHException, ValueError, OSError):
                        continue
        return keys

    def _authenticate(self, transport: paramiko.Transport) -> None:
        t = self.t
        keys = self._candidate_keys()
        if not keys:
            how = "the ssh-agent has no keys" if t.use_agent else "no keyFile given and no default key in ~/.ssh"
            raise AuthError(t.name, f"no credential to offer: {how}")
        last = ""
        for key in keys:
            try:
                transport.auth_publickey(t.user, key)
            except paramiko.AuthenticationException as e:
                last = str(e) or "refused"
                continue
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise ConnectError(t.name, f"connection lost during authentication: {e}") from None
            if transport.is_authenticated():
                return
        raise AuthError(t.name, f"authentication as {t.user} failed ({len(keys)} key(s) tried: {last})")

    # -- using -------------------------------------------------------------------------

    def _require(self) -> paramiko.Transport:
        if self.transport is None or not self.transport.is_active():
            self.transport = None
            self.connect()
        assert self.transport is not None
        return self.transport

    def run(self, cmd: str, input: str | bytes | None = None, timeout: float | None = 600,
            sudo: bool = True) -> tuple[int, str, str]:
        """Run a shell command; returns (exit status, stdout, stderr). Non-zero exits are not errors."""
        t = self.t
        line, prefix = sudo_wrap(cmd, t.user, t.sudo and sudo, t.sudo_password)
        transport = self._require()
        try:
            chan = transport.open_session()
            chan.exec_command(line)
            data = prefix.encode() + (input.encode() if isinstance(input, str) else (input or b""))
            if data:
                chan.sendall(data)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                busy = False
                while chan.recv_ready():
                    out += chan.recv(65536)
                    busy = True
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    busy = True
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    chan.close()
                    raise SSHError(t.name, f"command timed out after {timeout:g}s: {cmd[:80]}")
                if not busy:
                    time.sleep(0.01)
            code = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise SSHError(t.name, f"running a command failed: {e}") from None
        stderr = err.decode(errors="replace")
        if code == 1 and t.sudo and t.user != "root" and "a password is required" in stderr:
            raise AuthError(t.name, "sudo needs a password: set sudo: password in the inventory "
                                    "or configure passwordless sudo (NOPASSWD)")
        return code, out.decode(errors="replace"), stderr

    def check(self, cmd: str, input: str | bytes | None = None, timeout: float | None = 600) -> str:
        """Run a command that must succeed; returns its stdout."""
        code, out, err = self.run(cmd, input=input, timeout=timeout)
        if code != 0:
            raise SSHError(self.t.name, f"`{cmd[:120]}` exited with {code}: {(err or out).strip()[-400:]}")
        return out

    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None:
        """Upload one file with SFTP (as the login user; move it with sudo when needed)."""
        self._require()
        try:
            if self._sftp is None:
                assert self.transport is not None
                self._sftp = paramiko.SFTPClient.from_transport(self.transport)
            assert self._sftp is not None
            self._sftp.put(str(local), remote)
            if mode is not None:
                self._sftp.chmod(remote, mode)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise SSHError(self.t.name, f"uploading {local} to {remote} failed: {e}") from None

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def __enter__(self) -> SSHConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(target: SSHTarget) -> SSHConnection:
    return SSHConnection(target).connect()
