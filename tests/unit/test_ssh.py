"""Host-key decisions, fingerprints, sudo wrapping and retry classification, without a network."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko
import pytest

from orchestrator.bootstrap import ssh
from orchestrator.bootstrap.ssh import (
    AuthError,
    ConnectError,
    SSHConnection,
    SSHTarget,
    append_known_host,
    check_host_key,
    fingerprint,
    load_known_hosts,
    sudo_wrap,
)


def _key() -> paramiko.PKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    kind, data = raw.decode().split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def test_fingerprint_is_openssh_sha256() -> None:
    k = _key()
    want = "SHA256:" + base64.b64encode(hashlib.sha256(k.asbytes()).digest()).decode().rstrip("=")
    assert fingerprint(k) == want


def test_known_unknown_changed(tmp_path: Path) -> None:
    a, b = _key(), _key()
    kh = tmp_path / "known_hosts"
    append_known_host(kh, "10.0.0.5", 22, a)
    append_known_host(kh, "10.0.0.6", 2222, a)
    known = load_known_hosts([kh, tmp_path / "missing"])
    assert check_host_key("10.0.0.5", 22, a, known).ok
    assert check_host_key("10.0.0.6", 2222, a, known).ok
    assert check_host_key("10.0.0.6", 22, a, known).problem == "unknown"  # port matters
    assert check_host_key("10.0.0.7", 22, a, known).problem == "unknown"
    changed = check_host_key("10.0.0.5", 22, b, known)
    assert changed.problem == "changed" and changed.expected == (fingerprint(a),)


def test_pinned_fingerprint_wins_over_known_hosts() -> None:
    a, b = _key(), _key()
    assert check_host_key("h", 22, a, [], pinned=fingerprint(a)).ok
    v = check_host_key("h", 22, b, [], pinned=fingerprint(a))
    assert v.problem == "changed" and v.expected == (fingerprint(a),)


@pytest.mark.parametrize(
    ("user", "sudo", "password", "line", "stdin"),
    [
        ("root", True, None, "ls", ""),
        ("ops", False, None, "ls", ""),
        ("ops", True, None, "sudo -n -- sh -c ls", ""),
        ("ops", True, "pw", "sudo -S -p '' -- sh -c 'ls -l'", "pw\n"),
    ],
)
def test_sudo_wrap(user: str, sudo: bool, password: str | None, line: str, stdin: str) -> None:
    cmd = "ls -l" if password else "ls"
    assert sudo_wrap(cmd, user, sudo, password) == (line, stdin)


def test_connection_errors_are_retried_and_auth_errors_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def flaky(self: SSHConnection) -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectError(self.t.name, "refused")

    monkeypatch.setattr(SSHConnection, "_connect_once", flaky)
    monkeypatch.setattr(ssh, "wait_exponential", lambda **_: (lambda _state: 0))
    SSHConnection(SSHTarget("h", attempts=4)).connect()
    assert len(calls) == 3

    calls.clear()

    def denied(self: SSHConnection) -> None:
        calls.append(1)
        raise AuthError(self.t.name, "denied")

    monkeypatch.setattr(SSHConnection, "_connect_once", denied)
    with pytest.raises(AuthError) as e:
        SSHConnection(SSHTarget("h", user="ops", attempts=4)).connect()
    assert len(calls) == 1
    assert str(e.value).startswith("ops@h:")
