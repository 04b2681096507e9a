"""Standard Webhooks v1 signatures (symmetric): `whsec_` secrets and the three headers.

Usage:
    secret = generate_secret()                                   # "whsec_" + base64(32 random bytes)
    headers = signed_headers(secret, "msg_...", 1700000000, body)

The signed content is `{webhook-id}.{webhook-timestamp}.{body}` and the signature
`v1,<base64 HMAC-SHA256>` keyed with the base64-decoded secret (standard-webhooks spec v1.0.0).
Written here with hmac (a few lines); the tests verify it with the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def generate_secret(n_bytes: int = 32) -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(n_bytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; ValueError names what is wrong."""
    if not secret.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with {PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a webhook secret is {PREFIX!r} + base64: {exc}") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret holds 24 to 64 bytes, this one {len(key)}")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
