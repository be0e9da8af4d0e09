"""Secrets at rest: AES-256-GCM under the master key, with rotation.

A ciphertext starts with the 8-byte fingerprint of the key that sealed it, so several keys
can be live at once: the first key of ``CARTERA_MASTER_KEY`` seals, every key listed in
``CARTERA_OLD_MASTER_KEYS`` (comma-separated) still opens. ``reseal`` moves data forward.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cartera.settings import get_settings


def _fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"cartera-key-id" + key).digest()[:8]


class Keyring:
    def __init__(self, primary: bytes, old: list[bytes] | None = None) -> None:
        if len(primary) != 32:
            raise ValueError("the master key must be 32 bytes (base64url-encoded)")
        self._primary = primary
        self._keys = {_fingerprint(k): k for k in [primary, *(old or [])]}

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._primary).encrypt(nonce, plaintext, context)
        return _fingerprint(self._primary) + nonce + sealed

    def open(self, token: bytes, *, context: bytes = b"") -> bytes:
        key = self._keys.get(token[:8])
        if key is None:
            raise ValueError("sealed with a key this keyring does not hold")
        return AESGCM(key).decrypt(token[8:20], token[20:], context)

    def reseal(self, token: bytes, *, context: bytes = b"") -> bytes:
        return self.seal(self.open(token, context=context), context=context)


def keyring() -> Keyring:
    """The process keyring from settings and ``CARTERA_OLD_MASTER_KEYS``."""
    old = [
        base64.urlsafe_b64decode(item)
        for item in os.environ.get("CARTERA_OLD_MASTER_KEYS", "").split(",")
        if item.strip()
    ]
    return Keyring(get_settings().master_key(), old)
