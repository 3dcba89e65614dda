"""The cluster's PKI: a CA, the API server's serving certificate, tokens, kubeconfig files.

Everything lives under `<data_dir>/pki/` (directory mode 0700, private files 0600):

    ca.crt, ca.key          self-signed EC P-256 CA ("dockyard-ca"), valid 10 years
    server.crt, server.key  serving certificate signed by the CA, valid 1 year,
                            EKU serverAuth, SANs for every name and address of the master
    tokens.json             admin token, join secret, node secret (hex)
    join-token              the full join token, for operators to copy (derived, rewritten)

`load_or_create_pki` is idempotent: the first call creates what is missing, later calls load
it. The CA and the tokens are never replaced once they exist. The server certificate is
re-issued (with a fresh key) when it lacks a wanted SAN, is close to expiry, or was not
signed by the current CA; the new certificate keeps the old SANs as well, so clients that
reached the master by an older address keep working.

Tokens:
- the admin token is an opaque random string (the `system:masters` identity);
- the join token follows k3s: `K10<sha256 hex of ca.crt bytes>::node:<secret>`. The hash lets a
  joining agent fetch the CA over an unverified connection and check it before trusting the
  master; the secret authenticates the agent as a bootstrapper. The CA hash is over the exact
  PEM bytes of `ca.crt`, so whatever serves the CA to agents must serve those bytes unchanged;
- per-node tokens need no storage: `node:<name>:<hex HMAC-SHA256(node_secret, name)>`. The
  master verifies them by recomputing the MAC; revoking them all means rotating the node
  secret (there is no per-node revocation list).

`write_kubeconfig` writes (or merges into) a kubeconfig v1 file usable by both the Dockyard
client and kubectl.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .objects.files import write_private as _write_file
from .objects.jointoken import (  # noqa: F401  (the join-token API is part of the PKI's)
    JOIN_TOKEN_PREFIX,
    JOIN_TOKEN_USER,
    PKIError,
    ca_hash,
    make_join_token,
    parse_join_token,
    verify_ca,
)

CA_COMMON_NAME = "dockyard-ca"
SERVER_COMMON_NAME = "dockyard-apiserver"
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
# Re-issue the serving certificate when less than this is left of it.
SERVER_RENEW_BEFORE = dt.timedelta(days=30)
# Backdate certificates a little so that hosts with slightly slow clocks accept them.
CLOCK_SKEW = dt.timedelta(minutes=5)

NODE_TOKEN_PREFIX = "node:"

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Host names in the wild may contain underscores; certificates carry them as plain strings.
_SAN_LABEL = r"[a-z0-9_]([-a-z0-9_]*[a-z0-9_])?"
_SAN_DNS = re.compile(rf"{_SAN_LABEL}(\.{_SAN_LABEL})*")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- the cluster PKI --------------------------------------------------------------------------


@dataclass
class ClusterPKI:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    admin_token: str
    join_token: str
    node_secret: bytes  # 32 random bytes; the HMAC key of per-node tokens
    data_dir: Path

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def ca_cert_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.pki_dir / "ca.key"

    @property
    def server_cert_path(self) -> Path:
        return self.pki_dir / "server.crt"

    @property
    def server_key_path(self) -> Path:
        return self.pki_dir / "server.key"

    @property
    def tokens_path(self) -> Path:
        return self.pki_dir / "tokens.json"

    @property
    def ca_hash(self) -> str:
        return ca_hash(self.ca_cert_pem)


def load_or_create_pki(data_dir: Path, sans: list[str], *, discover: bool = True) -> ClusterPKI:
    """Load the PKI under `data_dir/pki`, creating whatever is missing.

    `sans` are extra DNS names / IP addresses for the serving certificate. "localhost",
    "127.0.0.1", "::1" and (with `discover`) the host name and the host's IPv4 addresses are
    always added.
    """
    data_dir = Path(data_dir)
    pki_dir = data_dir / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(pki_dir, 0o700)

    ca_cert_path, ca_key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    if ca_cert_path.exists():
        if not ca_key_path.exists():
            raise PKIError(f"{ca_cert_path} exists but {ca_key_path} is missing; cannot sign certificates")
        ca_cert_pem, ca_key_pem = ca_cert_path.read_bytes(), ca_key_path.read_bytes()
        ca_cert, ca_key = _load_cert(ca_cert_pem, ca_cert_path), _load_key(ca_key_pem, ca_key_path)
        if not _same_public_key(ca_cert, ca_key):
            raise PKIError(f"{ca_key_path} does not match {ca_cert_path}")
    else:
        # The key is written first: an existing ca.crt always has its key next to it.
        ca_cert, ca_key = _issue_ca()
        ca_cert_pem, ca_key_pem = _cert_pem(ca_cert), _key_pem(ca_key)
        _write_file(ca_key_path, ca_key_pem, 0o600)
        _write_file(ca_cert_path, ca_cert_pem, 0o644)

    wanted_dns, wanted_ips = split_sans(default_sans(discover) + list(sans))
    server_cert_path, server_key_path = pki_dir / "server.crt", pki_dir / "server.key"
    server_cert, usable = _load_server_cert(server_cert_path, server_key_path, ca_cert)
    if not usable or server_cert is None or _needs_reissue(server_cert, wanted_dns, wanted_ips):
        if server_cert is not None:
            old_dns, old_ips = cert_sans(server_cert)
            wanted_dns, wanted_ips = _union(old_dns, wanted_dns), _union(old_ips, wanted_ips)
        server_cert, server_key = _issue_server_cert(ca_cert, ca_key, wanted_dns, wanted_ips)
        _write_file(server_key_path, _key_pem(server_key), 0o600)
        _write_file(server_cert_path, _cert_pem(server_cert), 0o644)

    admin_token, join_secret, node_secret = _load_or_create_tokens(pki_dir / "tokens.json")
    join_token = make_join_token(ca_cert_pem, join_secret)
    join_token_path = pki_dir / "join-token"
    if not join_token_path.exists() or join_token_path.read_text().strip() != join_token:
        _write_file(join_token_path, (join_token + "\n").encode(), 0o600)

    return ClusterPKI(
        ca_cert_pem=ca_cert_pem,
        ca_key_pem=ca_key_pem,
        server_cert_pem=server_cert_path.read_bytes(),
        server_key_pem=server_key_path.read_bytes(),
        admin_token=admin_token,
        join_token=join_token,
        node_secret=node_secret,
        data_dir=data_dir,
    )


def _load_server_cert(
    cert_path: Path, key_path: Path, ca_cert: x509.Certificate
) -> tuple[x509.Certificate | None, bool]:
    """(the existing serving certificate if the current CA issued it, whether it is usable).

    A certificate whose key is lost is returned as unusable, so that its SANs carry over.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None, False
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return cert, False
    return cert, _same_public_key(cert, key)


def _needs_reissue(cert: x509.Certificate, dns: list[str], ips: list[IPAddress]) -> bool:
    if cert.not_valid_after_utc - _now() < SERVER_RENEW_BEFORE:
        return True
    have_dns, have_ips = cert_sans(cert)
    return bool(set(dns) - set(have_dns) or set(ips) - set(have_ips))


def _union(old: list[Any], new: list[Any]) -> list[Any]:
    return list(dict.fromkeys([*old, *new]))


def _load_or_create_tokens(path: Path) -> tuple[str, str, bytes]:
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise PKIError(f"{path}: not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise PKIError(f"{path}: expected a JSON object")
    changed = False
    if not isinstance(data.get("admin_token"), str) or not data["admin_token"]:
        data["admin_token"] = secrets.token_hex(16)
        changed = True
    if not isinstance(data.get("join_secret"), str) or not data["join_secret"]:
        data["join_secret"] = secrets.token_hex(16)
        changed = True
    try:
        node_secret = bytes.fromhex(data.get("node_secret") or "")
    except (TypeError, ValueError):
        raise PKIError(f"{path}: node_secret is not hex") from None
    if len(node_secret) < 32:
        if "node_secret" in data and data["node_secret"]:
            raise PKIError(f"{path}: node_secret is shorter than 32 bytes")
        node_secret = secrets.token_bytes(32)
        data["node_secret"] = node_secret.hex()
        changed = True
    if changed:
        _write_file(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)
    return data["admin_token"], data["join_secret"], node_secret


# -- certificates --------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _issue_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_server_cert(
    ca_cert: x509.Certificate,
    ca_key: Any,
    dns: list[str],
    ips: list[IPAddress],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    san = x509.SubjectAlternativeName([x509.DNSName(d) for d in dns] + [x509.IPAddress(ip) for ip in ips])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def cert_sans(cert: x509.Certificate) -> tuple[list[str], list[IPAddress]]:
    """The DNS names (lower-cased) and IP addresses in a certificate's SAN extension."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [d.lower() for d in ext.get_values_for_type(x509.DNSName)]
    # an IPAddress general name may also hold a network (in name constraints); a SAN holds addresses
    ips = [ip for ip in ext.get_values_for_type(x509.IPAddress)
           if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))]
    return dns, ips


def split_sans(names: list[str]) -> tuple[list[str], list[IPAddress]]:
    """Split names into (DNS names, IP addresses), normalized and de-duplicated, order kept.

    "[::1]" is accepted for an IPv6 address; empty entries are skipped; anything that is
    neither an IP address nor a plausible DNS name raises PKIError.
    """
    dns: dict[str, None] = {}
    ips: dict[IPAddress, None] = {}
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            ips[ipaddress.ip_address(name.strip("[]"))] = None
            continue
        except ValueError:
            pass
        name = name.lower().rstrip(".")
        if not _valid_dns_san(name):
            raise PKIError(f"{raw!r} is neither an IP address nor a DNS name")
        dns[name] = None
    return list(dns), list(ips)


def _valid_dns_san(name: str) -> bool:
    if name.startswith("*."):
        name = name[2:]
    return len(name) <= 253 and _SAN_DNS.fullmatch(name) is not None


def default_sans(discover: bool = True) -> list[str]:
    """Names the serving certificate always carries; with `discover`, the host's own too."""
    names = ["localhost", "127.0.0.1", "::1"]
    if discover:
        names += discover_host_names()
    return names


def discover_host_names() -> list[str]:
    """The host name and the IPv4 addresses of this machine that are cheap to find.

    Uses the resolver for the host name and `ip -4 -o addr` when it is installed; any
    failure just yields fewer names.
    """
    found: list[str] = []
    hostname = ""
    with contextlib.suppress(OSError):
        hostname = socket.gethostname()
    if hostname:
        found.append(hostname)
        with contextlib.suppress(OSError, UnicodeError):
            for info in socket.getaddrinfo(hostname, None, socket.AF_INET):
                found.append(str(info[4][0]))
    try:
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=2, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for match in re.finditer(r"\binet\s+(\d+\.\d+\.\d+\.\d+)", out):
        found.append(match.group(1))
    result: list[str] = []
    for name in dict.fromkeys(found):
        with contextlib.suppress(PKIError):
            split_sans([name])
            result.append(name)
    return result


def _same_public_key(cert: x509.Certificate, key: Any) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def _load_cert(pem: bytes, path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise PKIError(f"{path}: not a PEM certificate: {e}") from None


def _load_key(pem: bytes, path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise PKIError(f"{path}: not an unencrypted PEM private key: {e}") from None


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- join tokens ------------------------------------------------------------------------------


# -- per-node tokens --------------------------------------------------------------------------


def valid_node_name(name: str) -> bool:
    """Node names are DNS-1123 subdomains (lower case, digits, '-', '.'; at most 253 chars)."""
    return 0 < len(name) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(name) is not None


def _node_mac(node_secret: bytes, node_name: str) -> str:
    return hmac.new(node_secret, node_name.encode(), hashlib.sha256).hexdigest()


def node_token(node_secret: bytes, node_name: str) -> str:
    """The bearer token of node `node_name`: `node:<name>:<hex HMAC-SHA256(secret, name)>`."""
    if not valid_node_name(node_name):
        raise PKIError(f"invalid node name {node_name!r}: must be a DNS-1123 subdomain")
    return f"{NODE_TOKEN_PREFIX}{node_name}:{_node_mac(node_secret, node_name)}"


def verify_node_token(node_secret: bytes, token: str) -> str | None:
    """The node name a token was minted for, or None if it is not a valid node token."""
    if not token.startswith(NODE_TOKEN_PREFIX):
        return None
    name, sep, mac = token[len(NODE_TOKEN_PREFIX) :].rpartition(":")
    if not sep or not valid_node_name(name) or not _HEX64.fullmatch(mac):
        return None
    if not hmac.compare_digest(_node_mac(node_secret, name).encode(), mac.encode()):
        return None
    return name


# -- kubeconfig -------------------------------------------------------------------------------


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    token: str,
    cluster_name: str = "dockyard",
    user: str = "admin",
    namespace: str = "default",
) -> None:
    """Write a kubeconfig (mode 0600) for `server`, merging into an existing one.

    Entries named `cluster_name` (cluster and context) and `user` are replaced, all others
    are kept, and current-context becomes `cluster_name`. An existing file that is not a
    kubeconfig raises PKIError rather than being overwritten.
    """
    path = Path(path).expanduser()
    config = _read_kubeconfig(path)
    config["apiVersion"] = "v1"
    config["kind"] = "Config"
    config.setdefault("preferences", {})
    _upsert(
        config,
        "clusters",
        {
            "name": cluster_name,
            "cluster": {
                "server": server,
                "certificate-authority-data": base64.b64encode(ca_pem).decode(),
            },
        },
    )
    _upsert(config, "users", {"name": user, "user": {"token": token}})
    _upsert(
        config,
        "contexts",
        {"name": cluster_name, "context": {"cluster": cluster_name, "user": user, "namespace": namespace}},
    )
    config["current-context"] = cluster_name
    ordered = {
        k: config[k]
        for k in ("apiVersion", "kind", "preferences", "clusters", "users", "contexts", "current-context")
    }
    ordered.update((k, v) for k, v in config.items() if k not in ordered)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_file(path, yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False).encode(), 0o600)


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PKIError(
            f"{path} exists and is not a kubeconfig (invalid YAML: {e}); not overwriting it"
        ) from None
    if data is None:
        return {}
    if (
        not isinstance(data, dict)
        or data.get("kind", "Config") != "Config"
        or not all(isinstance(data.get(k) or [], list) for k in ("clusters", "users", "contexts"))
    ):
        raise PKIError(f"{path} exists and is not a kubeconfig; not overwriting it")
    return data


def _upsert(config: dict[str, Any], section: str, entry: dict[str, Any]) -> None:
    items: list[Any] = list(config.get(section) or [])
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == entry["name"]:
            items[i] = entry
            break
    else:
        items.append(entry)
    config[section] = items
