"""Issuing and checking RFC 9068 JWT access tokens with authlib."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator, JWTBearerTokenValidator
from joserfc.errors import JoseError

from cartera.auth.keys import SigningKeys

AUDIENCE = "cartera-api"


@dataclass(frozen=True)
class ClientPrincipal:
    """What a verified access token says about its caller."""

    client_id: str
    tenant_id: int
    scopes: frozenset[str]
    token_id: str


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
    def __init__(self, issuer: str, keys: SigningKeys, ttl: int) -> None:
        super().__init__(issuer=issuer, alg="RS256", expires_generator=ttl)
        self._keys = keys

    def get_jwks(self) -> Any:
        return self._keys.private_set

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return AUDIENCE

    def get_extra_claims(self, client: Any, grant_type: Any, user: Any, scope: Any) -> Any:
        return {"tenant_id": client.tenant_id}


class _Validator(JWTBearerTokenValidator):  # type: ignore[misc]
    def __init__(self, issuer: str, keys: SigningKeys) -> None:
        super().__init__(issuer=issuer, resource_server=AUDIENCE)
        self._keys = keys

    def get_jwks(self) -> Any:
        return self._keys.public_set


class TokenService:
    """Issues tokens for authenticated clients and verifies bearer tokens on requests."""

    def __init__(self, issuer: str, keys: SigningKeys, ttl_seconds: int) -> None:
        self.issuer = issuer
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self._generator = _Generator(issuer, keys, ttl_seconds)
        self._validator = _Validator(issuer, keys)

    def issue(self, client: TokenClient, scope: str | None) -> dict[str, Any]:
        token: dict[str, Any] = self._generator.generate(
            grant_type="client_credentials", client=client, scope=scope,
            include_refresh_token=False,
        )
        return token

    def verify(self, token: str) -> ClientPrincipal:
        """Return the principal, or raise ``InvalidTokenError`` (bad, expired, wrong issuer)."""
        try:
            claims = self._validator.authenticate_token(token)
            claims.validate(now=int(time.time()))
        except JoseError as exc:
            raise InvalidTokenError() from exc
        if claims.header.get("typ") != "at+jwt" or not isinstance(claims.get("tenant_id"), int):
            raise InvalidTokenError()
        return ClientPrincipal(
            client_id=claims["client_id"],
            tenant_id=claims["tenant_id"],
            scopes=frozenset(str(claims.get("scope") or "").split()),
            token_id=claims["jti"],
        )
