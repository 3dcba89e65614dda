"""Agent serving certificates: what the master signs for a CSR, and when an agent renews."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from orchestrator import nodecerts
from orchestrator.pki import load_or_create_pki


def test_signed_for_the_requested_node_only(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    csr, _key = nodecerts.make_csr("attacker-wants-this")
    pem = nodecerts.sign_csr(pki.ca_cert_pem, pki.ca_key_pem, "n1", csr)
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca_cert_pem))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1"]  # the name of the request, not the CSR's
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert not nodecerts.needs_renewal(pem, "n1", pki.ca_cert_pem)


@pytest.mark.parametrize("csr", [b"garbage", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"])
def test_bad_csrs_are_refused(tmp_path: Path, csr: bytes) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    with pytest.raises(nodecerts.NodeCertError):
        nodecerts.sign_csr(pki.ca_cert_pem, pki.ca_key_pem, "n1", csr)


def test_renewal_rules(tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path, [], discover=False)
    other = load_or_create_pki(tmp_path / "other", [], discover=False)
    cert, _ = nodecerts.issue(pki.ca_cert_pem, pki.ca_key_pem, "n1")
    assert not nodecerts.needs_renewal(cert, "n1", pki.ca_cert_pem)
    assert nodecerts.needs_renewal(cert, "n2", pki.ca_cert_pem)  # another node's
    assert nodecerts.needs_renewal(cert, "n1", other.ca_cert_pem)  # another cluster's
    assert nodecerts.needs_renewal(b"not a cert", "n1", pki.ca_cert_pem)
    csr, _ = nodecerts.make_csr("n1")
    short = nodecerts.sign_csr(pki.ca_cert_pem, pki.ca_key_pem, "n1", csr, validity=dt.timedelta(days=10))
    assert nodecerts.needs_renewal(short, "n1", pki.ca_cert_pem)  # < 30 days left
