"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A message is signed as ``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))``
where the key is the base64-decoded part of a ``whsec_...`` secret. The
``webhook-signature`` header holds one such signature per active secret, separated by
spaces, so that a receiver still holding the previous secret during a rotation keeps
verifying. Receivers check with any Standard Webhooks library (the tests use the
``standardwebhooks`` package from PyPI).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"
#: 32 random bytes: above the spec's 24-byte minimum.
SECRET_BYTES = 32


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is base64 after 'whsec_': {exc}") from None
    if len(key) < 24:
        raise ValueError("a webhook secret holds at least 24 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One ``v1,<base64>`` signature of a message."""
    digest = hmac.new(
        secret_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets_in_use: Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header: a signature per secret, space-separated."""
    if not secrets_in_use:
        raise ValueError("no webhook secret to sign with")
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_in_use)


def webhook_headers(
    secrets_in_use: Sequence[str], msg_id: str, timestamp: int, body: str
) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_in_use, msg_id, timestamp, body),
    }
