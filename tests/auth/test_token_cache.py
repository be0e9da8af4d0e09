"""The verified-token cache of :class:`TokenService`: a token's signature is checked once
per key set, but its expiry on every use, and a new key set checks it again."""

from __future__ import annotations

import time

import pytest
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from joserfc.jwk import RSAKey

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
