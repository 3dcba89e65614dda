"""Agent serving certificates: signed by the cluster CA for the node's name, checked by the master.

The master reaches each agent's logs/exec endpoint at the address the node publishes in its
own Node status, which the node itself writes. So the master must not trust the address
alone: like a Kubernetes API server run with ``--kubelet-certificate-authority``, it
verifies the agent's serving certificate against the cluster CA *and* checks that it was
issued for the node it means to reach (DNS SAN = node name, sent as the TLS server name).
A node pointing its address at another node's agent, or at anything else, then fails the
handshake instead of receiving the master's requests.

How an agent gets one: at join it makes a P-256 key and a CSR (`make_csr`) and sends the CSR
with its node credential request; the master signs it for the node name of the request
(`sign_csr`, never for a name the CSR asks for), which is bound to the agent's node
password (see ``orchestrator.registry.nodepasswords``). The agent keeps ``serving.crt`` and
``serving.key`` (0600) in its data directory and joins again for a fresh one when less than
`RENEW_BEFORE` is left. The master's own in-process agent (`dockyard up`) gets its pair from
`issue` directly.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)
NODES_GROUP = "system:nodes"


class NodeCertError(Exception):
    """A CSR that cannot be signed (unparseable, bad signature, wrong key type)."""


def make_csr(node_name: str) -> tuple[bytes, bytes]:
    """(CSR PEM, private key PEM) for `node_name`'s serving certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def sign_csr(ca_cert_pem: bytes, ca_key_pem: bytes, node_name: str, csr_pem: bytes,
             validity: dt.timedelta = VALIDITY) -> bytes:
    """The serving certificate (PEM) for `node_name` over the CSR's public key.

    Only the key is taken from the CSR: subject, SAN and usages are the master's choice."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as e:
        raise NodeCertError(f"not a PEM certificate signing request: {e}") from None
    if not csr.is_signature_valid:
        raise NodeCertError("the certificate signing request's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise NodeCertError("the certificate signing request must carry an EC key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def issue(ca_cert_pem: bytes, ca_key_pem: bytes, node_name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `node_name`, made and signed in one go."""
    csr, key = make_csr(node_name)
    return sign_csr(ca_cert_pem, ca_key_pem, node_name, csr), key


def needs_renewal(cert_pem: bytes, node_name: str, ca_cert_pem: bytes,
                  renew_before: dt.timedelta = RENEW_BEFORE) -> bool:
    """True when the certificate is unreadable, for another name or CA, or expires soon."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return True
    if node_name not in names.get_values_for_type(x509.DNSName):
        return True
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < renew_before
