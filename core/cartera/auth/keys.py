"""Token-signing keys: RSA key pairs kept in the database, private halves sealed at rest.

Exactly one key is *active* (it signs; a partial unique index holds it to one, so two
instances starting on an empty database create one key between them). :func:`rotate`
makes a new active key and *retires* the old one: a retired key still verifies (and is
published in the JWKS) for one token lifetime after its retirement, then it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring

SIGNING_KEY_CONTEXT = b"signing-key"
ALGORITHM = "RS256"
"""The only algorithm Cartera signs with, and so the only one it accepts."""


class SigningKeys:
    """The active private key (to sign) and every public key that verifies (to publish)."""

    def __init__(self, private: RSAKey, public: list[dict[str, Any]]) -> None:
        self.private = private
        self.public_jwks: dict[str, Any] = {"keys": public}
        self.public_set = KeySet.import_key_set({"keys": public})
        self.private_set = KeySet([private])
        self.kids = frozenset(str(k["kid"]) for k in public)


def _new_key() -> tuple[RSAKey, bytes]:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = RSAKey.import_key(pem, {"use": "sig", "alg": ALGORITHM})
    key.ensure_kid()
    return key, pem


async def _insert_active(session: AsyncSession, keyring: Keyring) -> str | None:
    """Insert a new active key unless one already is; its kid, or None if one was."""
    key, pem = _new_key()
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = module.insert(SigningKey).values(
        kid=key.kid, private_key_encrypted=keyring.seal(pem, context=SIGNING_KEY_CONTEXT),
        public_jwk=key.as_dict(private=False), active=True, created_at=clock.now(),
    ).on_conflict_do_nothing(index_elements=["active"], index_where=SigningKey.active)
    result = await session.execute(statement.returning(SigningKey.kid))
    return result.scalar_one_or_none()


def _verifies(row: SigningKey, now: datetime, lifetime: timedelta) -> bool:
    return row.active or (row.retired_at is not None and row.retired_at + lifetime > now)


async def load(session: AsyncSession, keyring: Keyring, *, ttl_seconds: int) -> SigningKeys:
    """The active key and the keys retired less than ``ttl_seconds`` ago. Never writes."""
    rows = (await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all()
    now, lifetime = clock.now(), timedelta(seconds=max(ttl_seconds, 0))
    active = [r for r in rows if r.active]
    if not active:
        raise LookupError("there is no active signing key")
    current = active[-1]
    pem = keyring.open(current.private_key_encrypted, context=SIGNING_KEY_CONTEXT)
    private = RSAKey.import_key(pem, {"kid": current.kid, "use": "sig", "alg": ALGORITHM})
    return SigningKeys(private, [r.public_jwk for r in rows if _verifies(r, now, lifetime)])


async def load_or_create(session: AsyncSession, keyring: Keyring, *,
                         ttl_seconds: int = 900) -> SigningKeys:
    """Load the signing keys, creating the first one on a fresh database (once, even when
    several instances start at the same time: the loser of the race loads the winner's)."""
    if await session.scalar(select(SigningKey.kid).where(SigningKey.active)) is None:
        await _insert_active(session, keyring)
    return await load(session, keyring, ttl_seconds=ttl_seconds)


@dataclass(frozen=True)
class Rotation:
    new_kid: str | None
    """None when a concurrent rotation made the new key first."""
    retired: list[str]
    dropped: list[str]


async def rotate(session: AsyncSession, keyring: Keyring, *, ttl_seconds: int) -> Rotation:
    """Retire the active key, drop keys retired over a token lifetime ago, make a new one."""
    now = clock.now()
    retired = list((await session.scalars(
        update(SigningKey).where(SigningKey.active).values(active=False, retired_at=now)
        .returning(SigningKey.kid))).all())
    dropped = list((await session.scalars(
        delete(SigningKey).where(~SigningKey.active,
                                 SigningKey.retired_at <= now - timedelta(seconds=ttl_seconds))
        .returning(SigningKey.kid))).all())
    return Rotation(await _insert_active(session, keyring), retired, dropped)
