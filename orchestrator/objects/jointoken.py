"""Join tokens: `K10<sha256 of the CA PEM>::node:<secret>`, as k3s writes them.

One parser for both halves: the master checks a joining agent's token with it, the agent
takes the CA hash from it to verify the master before it sends anything.
"""

from __future__ import annotations

import hashlib
import hmac
import re

JOIN_TOKEN_PREFIX = "K10"
JOIN_TOKEN_USER = "node"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class PKIError(Exception):
    """The PKI directory or a token/kubeconfig is unusable."""


def ca_hash(ca_pem: bytes) -> str:
    """SHA-256 hex digest of the CA bundle's PEM bytes, as carried in join tokens."""
    return hashlib.sha256(ca_pem).hexdigest()


def verify_ca(ca_pem: bytes, expected_hash: str) -> bool:
    return hmac.compare_digest(ca_hash(ca_pem).encode(), expected_hash.strip().lower().encode())


def make_join_token(ca_pem: bytes, secret: str) -> str:
    if not secret or ":" in secret or any(c.isspace() for c in secret):
        raise PKIError("a join secret must be non-empty and contain no ':' or whitespace")
    return f"{JOIN_TOKEN_PREFIX}{ca_hash(ca_pem)}::{JOIN_TOKEN_USER}:{secret}"


def parse_join_token(token: str) -> tuple[str | None, str]:
    """(CA hash or None, secret) of a join token.

    Accepts the full form `K10<hash>::node:<secret>` (also `K10<hash>::<secret>`) and a bare
    secret. Raises PKIError for an empty token or a malformed full form.
    """
    token = token.strip()
    if not token:
        raise PKIError("empty join token")
    if not token.startswith(JOIN_TOKEN_PREFIX) or "::" not in token:
        if ":" in token or any(c.isspace() for c in token):
            raise PKIError("malformed join token")
        return None, token
    head, _, rest = token.partition("::")
    digest = head[len(JOIN_TOKEN_PREFIX) :].lower()
    if not _HEX64.fullmatch(digest):
        raise PKIError("malformed join token: the CA hash after 'K10' must be 64 hex digits")
    user, sep, secret = rest.partition(":")
    if not sep:
        user, secret = JOIN_TOKEN_USER, rest
    if user != JOIN_TOKEN_USER or not secret or ":" in secret:
        raise PKIError("malformed join token: expected K10<ca-hash>::node:<secret>")
    return digest, secret
