"""Token-signing keys: an RSA key pair kept in the database, private half sealed at rest."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.auth.models import SigningKey
from cartera.crypto import Keyring

SIGNING_KEY_CONTEXT = b"signing-key"


class SigningKeys:
    """The active private key (to sign) and every public key (to verify, and to publish)."""

    def __init__(self, private: RSAKey, public: list[dict[str, Any]]) -> None:
        self.private = private
        self.public_jwks: dict[str, Any] = {"keys": public}
        self.public_set = KeySet.import_key_set({"keys": public})
        self.private_set = KeySet([private])


def _new_key() -> tuple[RSAKey, bytes]:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = RSAKey.import_key(pem, {"use": "sig", "alg": "RS256"})
    key.ensure_kid()
    return key, pem


async def load_or_create(session: AsyncSession, keyring: Keyring) -> SigningKeys:
    """Load the signing keys, creating the first one on a fresh database."""
    rows = (await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all()
    active = [r for r in rows if r.active]
    if not active:
        key, pem = _new_key()
        public = key.as_dict(private=False)
        row = SigningKey(
            kid=key.kid,
            private_key_encrypted=keyring.seal(pem, context=SIGNING_KEY_CONTEXT),
            public_jwk=public,
        )
        session.add(row)
        await session.flush()
        rows = [*rows, row]
        active = [row]
    current = active[-1]
    pem = keyring.open(current.private_key_encrypted, context=SIGNING_KEY_CONTEXT)
    private = RSAKey.import_key(pem, {"kid": current.kid, "use": "sig", "alg": "RS256"})
    return SigningKeys(private, [r.public_jwk for r in rows])
