"""Issuing and checking RFC 9068 JWT access tokens with authlib."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jws, jwt
from joserfc.errors import JoseError

from cartera.auth.keys import ALGORITHM, SigningKeys

if TYPE_CHECKING:
    from cartera.auth.revocation import TokenState

AUDIENCE = "cartera-api"


@dataclass(frozen=True)
class ClientPrincipal:
    """What a verified access token says about its caller."""

    client_id: str
    tenant_id: int
    scopes: frozenset[str]
    token_id: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.claims["exp"]), UTC)


@dataclass
class TokenClient:
    """Adapter giving authlib the client interface it expects."""

    client_id: str
    tenant_id: int
    allowed_scopes: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.allowed_scopes)
        return " ".join(s for s in scope.split() if s in self.allowed_scopes)


class _Generator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, issuer: str, service: TokenService, ttl: int) -> None:
        super().__init__(issuer=issuer, alg=ALGORITHM, expires_generator=ttl)
        self._service = service

    def get_jwks(self) -> Any:
        return self._service.keys.private_set

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return AUDIENCE

    def get_extra_claims(self, client: Any, grant_type: Any, user: Any, scope: Any) -> Any:
        return {"tenant_id": client.tenant_id}


_MAX_VERIFIED = 10_000
_REQUIRED_CLAIMS = ("exp", "sub", "client_id", "iat", "jti")
KeyLoader = Callable[[], Awaitable[SigningKeys]]


class TokenService:
    """Issues tokens for authenticated clients and verifies bearer tokens on requests.

    Verification accepts only :data:`~cartera.auth.keys.ALGORITHM` (no ``none``, no HMAC
    with the public key as secret) and only the published keys. With a ``loader``, the keys
    are re-read from the database every ``refresh_seconds`` (so a rotation made by
    ``cartera keys rotate`` reaches a running app) and at once, at most every
    ``unknown_kid_seconds``, when a token names a key this process does not know. With a
    ``state``, a token whose client is disabled or deleted, or which was revoked, fails
    too (see :class:`~cartera.auth.revocation.TokenState`).
    """

    def __init__(self, issuer: str, keys: SigningKeys, ttl_seconds: int, *,
                 loader: KeyLoader | None = None, refresh_seconds: float = 60.0,
                 unknown_kid_seconds: float = 5.0, state: TokenState | None = None) -> None:
        self._state = state
        self.issuer = issuer
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._loader = loader
        self._refresh_seconds = refresh_seconds
        self._unknown_kid_seconds = unknown_kid_seconds
        self._loaded_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._verified_cache: dict[str, tuple[SigningKeys, ClientPrincipal]] = {}
        self._generator = _Generator(issuer, self, ttl_seconds)

    async def refresh(self, *, older_than: float | None = None) -> None:
        """Re-read the keys (when there is a loader and they are ``older_than`` seconds)."""
        if self._loader is None:
            return
        if older_than is not None and time.monotonic() - self._loaded_at < older_than:
            return  # the common case: no lock taken on the request path
        async with self._lock:
            age = time.monotonic() - self._loaded_at
            if older_than is not None and age < older_than:
                return
            self.keys = await self._loader()
            self._loaded_at = time.monotonic()

    async def current(self) -> SigningKeys:
        """The keys, re-read first when older than ``refresh_seconds``."""
        await self.refresh(older_than=self._refresh_seconds)
        return self.keys

    def issue(self, client: TokenClient, scope: str | None) -> dict[str, Any]:
        token: dict[str, Any] = self._generator.generate(
            grant_type="client_credentials", client=client, scope=scope,
            include_refresh_token=False,
        )
        return token

    async def verify(self, token: str) -> ClientPrincipal:
        """Return the principal, or raise ``InvalidTokenError`` (bad, expired, wrong issuer,
        another algorithm than ours, a key we do not publish)."""
        keys = await self.current()
        hit = self._verified_cache.get(token)
        if hit is not None and hit[0] is keys and int(hit[1].claims["exp"]) > time.time():
            principal = hit[1]
        else:
            kid = self._kid(token)
            if kid not in keys.kids:
                await self.refresh(older_than=self._unknown_kid_seconds)
                keys = self.keys
            principal = self._verified(token, keys)
            if len(self._verified_cache) >= _MAX_VERIFIED:
                self._verified_cache.clear()
            # Remembered for this key set only: a refresh or rotation checks every token
            # again; expiry is re-checked on each use, revocation by the state below.
            self._verified_cache[token] = (keys, principal)
        if self._state is not None and not await self._state.active(principal.client_id,
                                                                    principal.token_id):
            raise InvalidTokenError()
        return principal

    @staticmethod
    def _kid(token: str) -> Any:
        try:
            return jws.extract_compact(token.encode("ascii")).headers().get("kid")
        except (JoseError, ValueError, UnicodeEncodeError) as exc:
            raise InvalidTokenError() from exc

    def forget_state(self) -> None:
        """Drop cached client and revocation state (after a change made in this process)."""
        if self._state is not None:
            self._state.forget()

    def _verified(self, token: str, keys: SigningKeys) -> ClientPrincipal:
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()), iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": AUDIENCE},
            **{name: {"essential": True} for name in _REQUIRED_CLAIMS})  # type: ignore[arg-type]
        try:
            decoded = jwt.decode(token, keys.public_set, algorithms=[ALGORITHM])
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise InvalidTokenError() from exc
        claims, header = decoded.claims, decoded.header
        if header.get("typ") != "at+jwt" or not isinstance(claims.get("tenant_id"), int):
            raise InvalidTokenError()
        return ClientPrincipal(
            client_id=claims["client_id"],
            tenant_id=claims["tenant_id"],
            scopes=frozenset(str(claims.get("scope") or "").split()),
            token_id=claims["jti"],
            claims=dict(claims),
        )
