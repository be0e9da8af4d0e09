"""The verified-token cache of :class:`TokenService`: a token's signature is checked once
per key set, but its expiry on every use, and a new key set checks it again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from joserfc.jwk import RSAKey

from cartera.auth import revocation
from cartera.auth import tokens as tokens_module
from cartera.auth.keys import SigningKeys
from cartera.auth.tokens import TokenClient, TokenService


def _keys(kid: str) -> SigningKeys:
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"},
                              private=True)
    return SigningKeys(key, [key.as_dict(private=False)])


async def test_cached_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService("http://issuer", _keys("k1"), 60)
    token = service.issue(TokenClient("c1", 1, ["portfolio:read"]), None)["access_token"]
    first = await service.verify(token)
    assert await service.verify(token) is first  # second use: from the cache
    later = time.time() + 120
    monkeypatch.setattr(tokens_module.time, "time", lambda: later)
    with pytest.raises(InvalidTokenError):
        await service.verify(token)


async def test_new_key_set_checks_cached_tokens_again() -> None:
    old = _keys("old")
    service = TokenService("http://issuer", old, 60)
    token = service.issue(TokenClient("c1", 1, ["portfolio:read"]), None)["access_token"]
    await service.verify(token)
    service.keys = _keys("new")  # a rotation that no longer publishes the old key
    with pytest.raises(InvalidTokenError):
        await service.verify(token)


class _Lookups:
    """A stand-in for the database of :class:`TokenState`: counts lookups, answers ``stands``
    once ``release`` is set."""

    def __init__(self) -> None:
        self.count = 0
        self.stands = True
        self.release = asyncio.Event()

    def sessionmaker(self) -> Any:
        @asynccontextmanager
        async def session() -> AsyncIterator[None]:
            yield None

        return session()

    async def token_stands(self, _session: Any, _client_id: str, _jti: str) -> bool:
        self.count += 1
        answer = self.stands  # what the database holds when the lookup reads it
        await self.release.wait()
        return answer


async def test_concurrent_requests_share_one_state_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When a token's remembered state lapses under load, the requests carrying it wait for
    one lookup instead of each making its own."""
    db = _Lookups()
    monkeypatch.setattr(revocation, "token_stands", db.token_stands)
    state = revocation.TokenState(cast(Any, db.sessionmaker), 60)
    waiting = [asyncio.create_task(state.active("c1", "j1")) for _ in range(20)]
    await asyncio.sleep(0)
    db.release.set()
    assert await asyncio.gather(*waiting) == [True] * 20
    assert db.count == 1
    assert await state.active("c1", "j1") is True and db.count == 1  # remembered


async def test_forget_during_a_lookup_keeps_not_its_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A client disabled while a lookup of its token is in flight: the lookup may have read
    the client before the change, so its answer is not remembered."""
    db = _Lookups()
    monkeypatch.setattr(revocation, "token_stands", db.token_stands)
    state = revocation.TokenState(cast(Any, db.sessionmaker), 60)
    stale = asyncio.create_task(state.active("c1", "j1"))
    await asyncio.sleep(0)
    state.forget()  # the client was disabled here
    db.stands = False
    db.release.set()
    assert await stale is True  # read before the change
    assert await state.active("c1", "j1") is False and db.count == 2


async def test_a_failed_lookup_is_retried_by_its_waiters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = _Lookups()
    monkeypatch.setattr(revocation, "token_stands", db.token_stands)
    state = revocation.TokenState(cast(Any, db.sessionmaker), 60)
    first = asyncio.create_task(state.active("c1", "j1"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(state.active("c1", "j1"))
    await asyncio.sleep(0)
    first.cancel()
    db.release.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await waiter is True and db.count == 2
