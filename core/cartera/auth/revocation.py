"""Whether a verified access token still stands (its client exists and is enabled, its
``jti`` is not revoked), and RFC 7009 revocations stored until the token expires."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.auth.models import OAuthClient, RevokedToken

_MAX_CACHED = 10_000


class TokenState:
    """Consults the database for each token, remembering an answer for ``cache_seconds``
    (0: never). :meth:`forget` drops what this process remembers, so a change made here
    (disable, delete, revoke) takes effect on the next request; other processes see it
    within ``cache_seconds``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession],
                 cache_seconds: float) -> None:
        self._sessionmaker = sessionmaker
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def active(self, client_id: str, jti: str) -> bool:
        key = (client_id, jti)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self._sessionmaker() as session:
            stands = await token_stands(session, client_id, jti)
        if self._cache_seconds > 0:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self._cache_seconds, stands)
        return stands

    def forget(self) -> None:
        self._cache.clear()


async def token_stands(session: AsyncSession, client_id: str, jti: str) -> bool:
    """True when the client exists, is enabled and has not revoked the token ``jti``."""
    revoked = exists().where(RevokedToken.jti == jti)
    row = (await session.execute(
        select(OAuthClient.disabled, revoked).where(OAuthClient.client_id == client_id)
    )).first()
    return row is not None and not row[0] and not row[1]


async def revoke(session: AsyncSession, jti: str, client_id: str,
                 expires_at: datetime) -> None:
    """Record the revocation of token ``jti`` (idempotent) and drop revocations of tokens
    that have expired anyway."""
    await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < clock.now()))
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(module.insert(RevokedToken).values(
        jti=jti, client_id=client_id, expires_at=expires_at,
    ).on_conflict_do_nothing(index_elements=["jti"]))
