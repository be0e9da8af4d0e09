"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is ``whsec_`` and base64 of 32 random bytes; the signed content is
``"{webhook-id}.{webhook-timestamp}.{body}"``, HMAC-SHA256 keyed with the decoded bytes;
``webhook-signature`` is ``v1,<base64 MAC>``, several space-separated during a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<signature>`` of one message under one secret."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    content = f"{message_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secrets_: list[str], message_id: str, timestamp: int,
            body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with each of ``secrets_``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }
