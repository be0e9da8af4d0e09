"""Secrets and personal data at rest, with rotation.

Secrets: AES-256-GCM under the master key (:class:`Keyring`). Personal data: deterministic
AES-SIV under keys derived from the master keys (:class:`PiiCipher`).

A ciphertext starts with the 8-byte fingerprint of the key that sealed it, so several keys
can be live at once: the first key of ``CARTERA_MASTER_KEY`` seals, every key listed in
``CARTERA_OLD_MASTER_KEYS`` (comma-separated) still opens. ``reseal`` moves data forward.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cartera.settings import get_settings


def _fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"cartera-key-id" + key).digest()[:8]


class Keyring:
    def __init__(self, primary: bytes, old: list[bytes] | None = None) -> None:
        if len(primary) != 32:
            raise ValueError("the master key must be 32 bytes (base64url-encoded)")
        self._primary = primary
        self._old = list(old or [])
        self._keys = {_fingerprint(k): k for k in [primary, *self._old]}
        self._primary_id = _fingerprint(primary)
        self._ciphers = {key_id: AESGCM(k) for key_id, k in self._keys.items()}

    @property
    def primary_key(self) -> bytes:
        return self._primary

    @property
    def old_keys(self) -> list[bytes]:
        return list(self._old)

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = self._ciphers[self._primary_id].encrypt(nonce, plaintext, context)
        return self._primary_id + nonce + sealed

    def open(self, token: bytes, *, context: bytes = b"") -> bytes:
        cipher = self._ciphers.get(token[:8])
        if cipher is None:
            raise ValueError("sealed with a key this keyring does not hold")
        return cipher.decrypt(token[8:20], token[20:], context)

    def reseal(self, token: bytes, *, context: bytes = b"") -> bytes:
        return self.seal(self.open(token, context=context), context=context)

    def sealed_by_primary(self, token: bytes) -> bool:
        """Whether ``token`` was sealed under the primary key (a rotation can skip it)."""
        return token[:8] == self._primary_id


def keyring() -> Keyring:
    """The process keyring from settings and ``CARTERA_OLD_MASTER_KEYS``."""
    old = [
        base64.urlsafe_b64decode(item)
        for item in os.environ.get("CARTERA_OLD_MASTER_KEYS", "").split(",")
        if item.strip()
    ]
    return Keyring(get_settings().master_key(), old)


_keyrings: dict[tuple[str | None, ...], Keyring] = {}


def _key_config() -> tuple[str | None, ...]:
    env = os.environ
    return (env.get("CARTERA_MASTER_KEY"), env.get("CARTERA_OLD_MASTER_KEYS"),
            env.get("CARTERA_HOME"))


def payload_keyring() -> Keyring:
    """:func:`keyring`, cached per key configuration (the master key, the old keys and the
    embedded home they may come from): what the sealed payload column types use for every
    value they bind or read."""
    config = _key_config()
    ring = _keyrings.get(config)
    if ring is None:
        ring = keyring()
        _keyrings.clear()
        _keyrings[config] = ring
    return ring


# --- personal data -----------------------------------------------------------------------


class PiiCipher:
    """Personal data at rest: deterministic AES-SIV (RFC 5297) under keys derived from the
    master keys.

    Deterministic on purpose: the same plaintext in the same field always seals to the same
    text, so equality still works in SQL (search by national id or e-mail, the import's
    upsert, matching an inbound sender to a contact point, unique indexes) while nothing
    readable is stored. What leaks is only that two rows hold the same value in the same
    field. The field name is the associated data, so a sealed phone moved into another
    column does not open. A sealed value is text: ``p1.`` + base64url(key fingerprint (4
    bytes) + SIV tag and ciphertext).
    """

    MARKER = "p1."
    OPENED_PER_FIELD = 65_536
    """How many opened values :meth:`open` remembers per field."""

    def __init__(self, primary: bytes, old: list[bytes] | None = None) -> None:
        derived = [_pii_key(key) for key in [primary, *(old or [])]]
        self._primary_id = _fingerprint(derived[0])[:4]
        self._siv = {_fingerprint(key)[:4]: AESSIV(key) for key in derived}
        self._opened: dict[str, dict[str, str]] = {}

    def seal(self, text: str, field: str) -> str:
        """``text`` sealed for ``field`` (e.g. ``"contact_points.value"``) under the primary key."""
        return self._seal(self._primary_id, text, field)

    def open(self, sealed: str, field: str) -> str:
        """The plaintext of :meth:`seal`'s output; ``ValueError`` for anything else (a
        plaintext, a value of another field, a key this cipher does not hold).

        Values opened are remembered per field (at most :data:`OPENED_PER_FIELD`; a full
        field's memo is emptied whole), so the reads that open the same debtors again and
        again (a debtor's page, a list) pay a dictionary lookup, not a decryption. The memo
        holds only plaintext this process has already opened to answer with, in its own
        memory, and goes with the cipher when the keys change (:func:`pii_cipher`)."""
        memo = self._opened.get(field)
        if memo is None:
            memo = self._opened.setdefault(field, {})
        plain = memo.get(sealed)
        if plain is None:
            plain = self._open(sealed, field)
            if len(memo) >= self.OPENED_PER_FIELD:
                memo.clear()
            memo[sealed] = plain
        return plain

    def _open(self, sealed: str, field: str) -> str:
        if not sealed.startswith(self.MARKER):
            raise ValueError(f"{field}: the stored value is not sealed")
        raw = base64.urlsafe_b64decode(sealed[len(self.MARKER):] + "=" * (-len(sealed) % 4))
        siv = self._siv.get(raw[:4])
        if siv is None:
            raise ValueError(f"{field}: sealed with a key this keyring does not hold")
        try:
            return siv.decrypt(raw[4:], [field.encode()]).decode()
        except InvalidTag:
            raise ValueError(f"{field}: the sealed value does not open") from None

    def lookup_forms(self, text: str, field: str) -> list[str]:
        """``text`` sealed under every live key (the primary first): what an equality lookup
        must match while rows sealed under an old key are not yet resealed."""
        return [self._seal(key_id, text, field) for key_id in self._siv]

    @property
    def single_key(self) -> bool:
        return len(self._siv) == 1

    def reseal(self, sealed: str, field: str) -> str:
        return self.seal(self.open(sealed, field), field)

    def under_primary(self, sealed: str) -> bool:
        """Whether ``sealed`` (a :meth:`seal` output) names the primary key (no reseal
        needed), read from its key fingerprint without opening it."""
        head = sealed[len(self.MARKER):len(self.MARKER) + 8]
        try:
            return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))[:4] == \
                self._primary_id
        except ValueError:
            return False

    def _seal(self, key_id: bytes, text: str, field: str) -> str:
        sealed = self._siv[key_id].encrypt(text.encode(), [field.encode()])
        return self.MARKER + base64.urlsafe_b64encode(key_id + sealed).rstrip(b"=").decode()


def _pii_key(master: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=None,
                info=b"cartera-personal-data-aes-siv").derive(master)


_pii_ciphers: dict[tuple[str | None, ...], PiiCipher] = {}


def pii_cipher() -> PiiCipher:
    """The process's :class:`PiiCipher` for the configured master keys (cached per key
    configuration: the master key, the old keys and the embedded home they may come from)."""
    config = _key_config()
    cipher = _pii_ciphers.get(config)
    if cipher is None:
        ring = payload_keyring()
        cipher = PiiCipher(ring.primary_key, ring.old_keys)
        _pii_ciphers.clear()
        _pii_ciphers[config] = cipher
    return cipher
