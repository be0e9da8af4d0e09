"""Whether a verified access token still stands (its client exists and is enabled, its
``jti`` is not revoked), and RFC 7009 revocations stored until the token expires."""

from __future__ import annotations

import asyncio
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
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._generation = 0

    async def active(self, client_id: str, jti: str) -> bool:
        key = (client_id, jti)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        # One lookup per token at a time: when the answer expires under load, the requests
        # that carry the token wait for the one lookup instead of each making its own.
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except Exception:
                pass
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        generation = self._generation
        try:
            async with self._sessionmaker() as session:
                stands = await token_stands(session, client_id, jti)
        except BaseException as exc:
            self._settle(key, pending)
            pending.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            pending.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        self._settle(key, pending)
        pending.set_result(stands)
        # A forget() meanwhile (a disable or revocation here) may postdate what was read.
        if self._cache_seconds > 0 and generation == self._generation:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self._cache_seconds, stands)
        return stands

    def _settle(self, key: tuple[str, str], pending: asyncio.Future[bool]) -> None:
        if self._pending.get(key) is pending:
            del self._pending[key]

    def forget(self) -> None:
        """Drop every remembered answer; lookups in flight are neither joined nor kept."""
        self._generation += 1
        self._cache.clear()
        self._pending.clear()


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
