"""Tests for the cluster PKI: CA and serving certificate, tokens, kubeconfig files."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from orchestrator import pki
from orchestrator.client import Client, ssl_context
from orchestrator.pki import (
    PKIError,
    ca_hash,
    load_or_create_pki,
    make_join_token,
    node_token,
    parse_join_token,
    split_sans,
    verify_ca,
    verify_node_token,
    write_kubeconfig,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tls_handshake(p: pki.ClusterPKI, hostname: str) -> None:
    """Run a full TLS handshake in memory: our client's SSL context against the server cert."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(p.server_cert_path, p.server_key_path)
    client_ctx = ssl_context(p.ca_cert_pem)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not complete")


def _verify_with_policy(p: pki.ClusterPKI, san: x509.GeneralName) -> None:
    """Verify the serving cert with cryptography's RFC 5280 / CA-B-Forum path validation."""
    store = Store([x509.load_pem_x509_certificate(p.ca_cert_pem)])
    verifier = PolicyBuilder().store(store).build_server_verifier(san)
    verifier.verify(x509.load_pem_x509_certificate(p.server_cert_pem), [])


@pytest.fixture
def cluster(tmp_path: Path) -> pki.ClusterPKI:
    return load_or_create_pki(tmp_path / "data", ["master.example.com", "10.1.2.3"], discover=False)


# -- creation ------------------------------------------------------------------------------


def test_creates_files_with_private_modes(cluster: pki.ClusterPKI) -> None:
    d = cluster.pki_dir
    assert _mode(d) == 0o700
    for name in ("ca.key", "server.key", "tokens.json", "join-token"):
        assert _mode(d / name) == 0o600, name
    for name in ("ca.crt", "server.crt"):
        assert (d / name).is_file()
    assert cluster.ca_cert_path.read_bytes() == cluster.ca_cert_pem
    assert cluster.server_cert_path.read_bytes() == cluster.server_cert_pem
    assert cluster.server_key_path.read_bytes() == cluster.server_key_pem
    assert not list(d.glob(".*.tmp"))


def test_ca_certificate(cluster: pki.ClusterPKI) -> None:
    ca = x509.load_pem_x509_certificate(cluster.ca_cert_pem)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dockyard-ca"
    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime >= dt.timedelta(days=3650)
    ca.verify_directly_issued_by(ca)


def test_server_certificate_signed_by_ca_with_sans(cluster: pki.ClusterPKI) -> None:
    ca = x509.load_pem_x509_certificate(cluster.ca_cert_pem)
    cert = x509.load_pem_x509_certificate(cluster.server_cert_pem)
    cert.verify_directly_issued_by(ca)  # signature checked with the CA public key
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in list(eku)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=366)
    dns, ips = pki.cert_sans(cert)
    assert {"localhost", "master.example.com"} <= set(dns)
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3")} <= set(ips)


@pytest.mark.parametrize(
    "san",
    [
        x509.DNSName("localhost"),
        x509.DNSName("master.example.com"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
    ],
)
def test_server_certificate_passes_path_validation(cluster: pki.ClusterPKI, san: x509.GeneralName) -> None:
    _verify_with_policy(cluster, san)


def test_path_validation_rejects_unknown_name(cluster: pki.ClusterPKI) -> None:
    with pytest.raises(x509.verification.VerificationError):
        _verify_with_policy(cluster, x509.DNSName("other.example.com"))


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "master.example.com", "10.1.2.3"])
def test_tls_handshake_with_client_context(cluster: pki.ClusterPKI, hostname: str) -> None:
    _tls_handshake(cluster, hostname)


def test_tls_handshake_rejects_wrong_hostname(cluster: pki.ClusterPKI) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_handshake(cluster, "10.9.9.9")


def test_discovered_names_are_included(tmp_path: Path) -> None:
    p = load_or_create_pki(tmp_path, [])
    dns, ips = pki.cert_sans(x509.load_pem_x509_certificate(p.server_cert_pem))
    assert socket.gethostname().lower() in dns
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert all(ip.version in (4, 6) for ip in ips)


def test_tokens(cluster: pki.ClusterPKI) -> None:
    assert len(cluster.admin_token) == 32
    int(cluster.admin_token, 16)
    assert len(cluster.node_secret) == 32
    digest, secret = parse_join_token(cluster.join_token)
    assert digest == ca_hash(cluster.ca_cert_pem) == cluster.ca_hash
    assert cluster.join_token == f"K10{digest}::node:{secret}"
    assert (cluster.pki_dir / "join-token").read_text().strip() == cluster.join_token
    stored = json.loads(cluster.tokens_path.read_text())
    assert stored["admin_token"] == cluster.admin_token
    assert bytes.fromhex(stored["node_secret"]) == cluster.node_secret


# -- reload and re-issue ------------------------------------------------------------------


def test_load_is_idempotent(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    again = load_or_create_pki(cluster.data_dir, ["master.example.com", "10.1.2.3"], discover=False)
    assert again == cluster
    # Asking for a subset (or nothing) changes nothing either.
    assert load_or_create_pki(cluster.data_dir, [], discover=False) == cluster


def test_missing_san_reissues_server_cert_only(cluster: pki.ClusterPKI) -> None:
    again = load_or_create_pki(cluster.data_dir, ["new.example.com", "192.0.2.77"], discover=False)
    assert again.server_cert_pem != cluster.server_cert_pem
    assert again.server_key_pem != cluster.server_key_pem
    for field in ("ca_cert_pem", "ca_key_pem", "admin_token", "join_token", "node_secret"):
        assert getattr(again, field) == getattr(cluster, field), field
    for name in ("new.example.com", "master.example.com", "localhost"):  # old SANs kept
        _verify_with_policy(again, x509.DNSName(name))
    for ip in ("192.0.2.77", "10.1.2.3", "127.0.0.1"):
        _verify_with_policy(again, x509.IPAddress(ipaddress.ip_address(ip)))
    assert load_or_create_pki(cluster.data_dir, ["new.example.com"], discover=False) == again


def test_missing_server_key_reissues(cluster: pki.ClusterPKI) -> None:
    cluster.server_key_path.unlink()
    again = load_or_create_pki(cluster.data_dir, [], discover=False)
    assert again.server_cert_pem != cluster.server_cert_pem
    assert again.ca_cert_pem == cluster.ca_cert_pem
    _tls_handshake(again, "master.example.com")


def test_server_cert_from_another_ca_is_reissued(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    other = load_or_create_pki(tmp_path / "other", [], discover=False)
    shutil.copy(other.server_cert_path, cluster.server_cert_path)
    shutil.copy(other.server_key_path, cluster.server_key_path)
    again = load_or_create_pki(cluster.data_dir, [], discover=False)
    assert again.server_cert_pem != other.server_cert_pem
    _verify_with_policy(again, x509.DNSName("localhost"))


def test_expiring_server_cert_is_reissued(cluster: pki.ClusterPKI) -> None:
    ca = x509.load_pem_x509_certificate(cluster.ca_cert_pem)
    ca_key = pki._load_key(cluster.ca_key_pem, cluster.ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    short = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki._write_file(cluster.server_cert_path, pki._cert_pem(short), 0o644)
    pki._write_file(cluster.server_key_path, pki._key_pem(key), 0o600)
    again = load_or_create_pki(cluster.data_dir, [], discover=False)
    cert = x509.load_pem_x509_certificate(again.server_cert_pem)
    assert cert.not_valid_after_utc - now > dt.timedelta(days=300)


def test_missing_ca_key_is_an_error(cluster: pki.ClusterPKI) -> None:
    cluster.ca_key_path.unlink()
    with pytest.raises(PKIError, match="ca.key"):
        load_or_create_pki(cluster.data_dir, [], discover=False)


def test_mismatched_ca_key_is_an_error(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    other = load_or_create_pki(tmp_path / "other", [], discover=False)
    shutil.copy(other.ca_key_path, cluster.ca_key_path)
    with pytest.raises(PKIError, match="does not match"):
        load_or_create_pki(cluster.data_dir, [], discover=False)


@pytest.mark.parametrize(
    "names, dns, ips",
    [
        (["Master.Example.COM."], ["master.example.com"], []),
        (["10.0.0.1", "[::1]", " ", "10.0.0.1"], [], ["10.0.0.1", "::1"]),
        (["host_1", "*.svc.local"], ["host_1", "*.svc.local"], []),
    ],
)
def test_split_sans(names: list[str], dns: list[str], ips: list[str]) -> None:
    assert split_sans(names) == (dns, [ipaddress.ip_address(i) for i in ips])


@pytest.mark.parametrize("bad", ["has space", "a..b", "-lead", "x:y", "ü.example"])
def test_split_sans_rejects_garbage(bad: str) -> None:
    with pytest.raises(PKIError):
        split_sans([bad])


# -- join tokens ---------------------------------------------------------------------------

HASH = "ab" * 32


@pytest.mark.parametrize(
    "token, expected",
    [
        (f"K10{HASH}::node:s3cret", (HASH, "s3cret")),
        (f"K10{HASH.upper()}::node:s3cret", (HASH, "s3cret")),
        (f"K10{HASH}::s3cret", (HASH, "s3cret")),
        ("s3cret", (None, "s3cret")),
        ("  s3cret\n", (None, "s3cret")),
    ],
)
def test_parse_join_token(token: str, expected: tuple[str | None, str]) -> None:
    assert parse_join_token(token) == expected


@pytest.mark.parametrize(
    "token",
    [
        "",
        "   ",
        "K10abc::node:x",
        f"K10{HASH}::server:x",
        f"K10{HASH}::node:",
        f"K10{HASH}::node:a:b",
        "a:b",
        "a b",
    ],
)
def test_parse_join_token_rejects(token: str) -> None:
    with pytest.raises(PKIError):
        parse_join_token(token)


def test_join_token_round_trip_and_ca_verification(cluster: pki.ClusterPKI, tmp_path: Path) -> None:
    token = make_join_token(cluster.ca_cert_pem, "abc123")
    digest, secret = parse_join_token(token)
    assert secret == "abc123"
    assert digest is not None and verify_ca(cluster.ca_cert_pem, digest)
    assert verify_ca(cluster.ca_cert_pem, digest.upper())
    other = load_or_create_pki(tmp_path / "other", [], discover=False)
    assert not verify_ca(other.ca_cert_pem, digest)
    assert not verify_ca(cluster.ca_cert_pem + b"\n", digest)  # exact bytes matter
    assert not verify_ca(cluster.ca_cert_pem, "not-a-hash")


# -- node tokens ---------------------------------------------------------------------------

SECRET = bytes(range(32))


def test_node_token_round_trip() -> None:
    token = node_token(SECRET, "worker-1.lab")
    assert token.startswith("node:worker-1.lab:")
    assert verify_node_token(SECRET, token) == "worker-1.lab"


def _tamper(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("0" if last != "0" else "1")


@pytest.mark.parametrize(
    "token",
    [
        _tamper(node_token(SECRET, "worker-1")),
        node_token(SECRET, "worker-1").replace("worker-1", "worker-2"),
        node_token(bytes(32), "worker-1"),  # minted with another secret
        node_token(SECRET, "worker-1").upper(),
        "node:worker-1",
        "node::" + "0" * 64,
        "node:Worker-1:" + "0" * 64,
        "garbage",
        "",
        "node:worker-1:" + "zz" * 32,
    ],
)
def test_node_token_rejects(token: str) -> None:
    assert verify_node_token(SECRET, token) is None


@pytest.mark.parametrize("name", ["", "Worker", "a:b", "a_b", "-a", "a-", "a..b", "x" * 254, "a b"])
def test_node_token_rejects_invalid_names(name: str) -> None:
    with pytest.raises(PKIError):
        node_token(SECRET, name)


# -- kubeconfig ----------------------------------------------------------------------------


def _ctx(cfg: dict, section: str, name: str) -> dict:
    return next(i for i in cfg[section] if i["name"] == name)


def test_write_kubeconfig_fresh(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    path = tmp_path / "home" / ".dockyard" / "config"
    write_kubeconfig(path, "https://127.0.0.1:6443", cluster.ca_cert_pem, cluster.admin_token)
    assert _mode(path) == 0o600
    cfg = yaml.safe_load(path.read_text())
    assert cfg["apiVersion"] == "v1" and cfg["kind"] == "Config"
    assert cfg["current-context"] == "dockyard"
    cl = _ctx(cfg, "clusters", "dockyard")["cluster"]
    assert cl["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cl["certificate-authority-data"]) == cluster.ca_cert_pem
    assert _ctx(cfg, "users", "admin")["user"] == {"token": cluster.admin_token}
    assert _ctx(cfg, "contexts", "dockyard")["context"] == {
        "cluster": "dockyard",
        "user": "admin",
        "namespace": "default",
    }

    client = Client.from_kubeconfig(str(path))
    try:
        assert client.server == "https://127.0.0.1:6443"
        assert client.token == cluster.admin_token
        assert client.ca_pem == cluster.ca_cert_pem
        assert client.namespace == "default"
    finally:
        client.close()


def test_write_kubeconfig_merges(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    path = tmp_path / "config"
    existing = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {"colors": True},
        "clusters": [
            {"name": "prod", "cluster": {"server": "https://prod:6443"}},
            {"name": "dockyard", "cluster": {"server": "https://old:6443"}},
        ],
        "users": [
            {"name": "prod-admin", "user": {"token": "p"}},
            {"name": "admin", "user": {"token": "old"}},
        ],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
        "current-context": "prod",
    }
    path.write_text(yaml.safe_dump(existing))
    write_kubeconfig(path, "https://new:6443", cluster.ca_cert_pem, "tok", namespace="apps")
    write_kubeconfig(
        path, "https://lab:6443", cluster.ca_cert_pem, "labtok", cluster_name="lab", user="lab-admin"
    )
    write_kubeconfig(path, "https://new:6443", cluster.ca_cert_pem, "tok2")
    cfg = yaml.safe_load(path.read_text())
    assert [c["name"] for c in cfg["clusters"]] == ["prod", "dockyard", "lab"]
    assert [u["name"] for u in cfg["users"]] == ["prod-admin", "admin", "lab-admin"]
    assert [c["name"] for c in cfg["contexts"]] == ["prod", "dockyard", "lab"]
    assert _ctx(cfg, "clusters", "prod")["cluster"] == {"server": "https://prod:6443"}
    assert _ctx(cfg, "clusters", "dockyard")["cluster"]["server"] == "https://new:6443"
    assert _ctx(cfg, "users", "admin")["user"] == {"token": "tok2"}
    assert _ctx(cfg, "contexts", "dockyard")["context"]["namespace"] == "default"
    assert cfg["preferences"] == {"colors": True}
    assert cfg["current-context"] == "dockyard"
    assert _mode(path) == 0o600
    lab = Client.from_kubeconfig(str(path), context="lab")
    try:
        assert (lab.server, lab.token) == ("https://lab:6443", "labtok")
    finally:
        lab.close()


@pytest.mark.parametrize("content", ["just: [unbalanced", "- a\n- list\n", "kind: Pod\n", "clusters: 3\n"])
def test_write_kubeconfig_refuses_to_clobber_other_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config"
    path.write_text(content)
    with pytest.raises(PKIError, match="not a kubeconfig"):
        write_kubeconfig(path, "https://x:6443", b"ca", "t")
    assert path.read_text() == content


def test_write_kubeconfig_over_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("")
    write_kubeconfig(path, "https://x:6443", b"ca", "t")
    assert yaml.safe_load(path.read_text())["current-context"] == "dockyard"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_reads_kubeconfig(tmp_path: Path, cluster: pki.ClusterPKI) -> None:
    path = tmp_path / "config"
    write_kubeconfig(path, "https://127.0.0.1:6443", cluster.ca_cert_pem, cluster.admin_token)
    write_kubeconfig(path, "https://lab:6443", cluster.ca_cert_pem, "t", cluster_name="lab", user="lab")
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(path), "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    view = json.loads(out)
    assert view["current-context"] == "lab"
    assert {c["name"] for c in view["contexts"]} == {"dockyard", "lab"}
    token = next(u for u in view["users"] if u["name"] == "admin")["user"]["token"]
    assert token == cluster.admin_token
    names = subprocess.run(
        ["kubectl", "--kubeconfig", str(path), "config", "get-contexts", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert sorted(names) == ["dockyard", "lab"]
