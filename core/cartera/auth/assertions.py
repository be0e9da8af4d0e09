"""``private_key_jwt`` client authentication (RFC 7523 §2.2 client assertions).

A client registers its public keys inline (``jwks``) or as a URL (``jwks_uri``, fetched
through the host's egress-aware HTTP client and cached). An assertion is accepted when it
is signed by one of those keys with an asymmetric algorithm, ``iss`` and ``sub`` are the
client id, ``aud`` names the token endpoint URL (``{public_base}/oauth/token``), ``exp`` is
in the future (and at most :data:`MAX_LIFETIME_SECONDS` away), and its ``jti`` was never
used before by this client (kept until the assertion expires).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.auth.models import OAuthClient, UsedAssertion
from cartera.errors import Invalid

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA"]
"""Asymmetric algorithms only: a client's registered keys are public."""
MAX_LIFETIME_SECONDS = 3600
"""An assertion expiring later than this is refused (it bounds the replay table)."""
LEEWAY_SECONDS = 30
MAX_JWKS_BYTES = 65_536


class AssertionRejected(Exception):
    """The assertion does not authenticate the client (the reason is for logs only)."""


def check_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    """A registrable JWK Set: parses, has keys, and every key is public and asymmetric."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise Invalid("jwks must be a JWK Set with at least one key", code="invalid_jwks",
                      param="jwks")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in {"RSA", "EC", "OKP"}:
            raise Invalid("jwks keys must be RSA, EC or OKP public keys", code="invalid_jwks",
                          param="jwks")
        if "d" in key or any(k in key for k in ("p", "q", "dp", "dq", "qi")):
            raise Invalid("jwks must hold public keys only: a private key was sent",
                          code="invalid_jwks", param="jwks")
    try:
        KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise Invalid(f"jwks does not parse: {exc}", code="invalid_jwks",
                      param="jwks") from None
    return {"keys": keys}


def check_jwks_uri(uri: str) -> str:
    """An https URL (plain http only for hosts the operator's egress rules allow, which the
    fetch checks again)."""
    parts = urlsplit(uri)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise Invalid("jwks_uri must be an absolute https URL", code="invalid_jwks_uri",
                      param="jwks_uri")
    if parts.scheme == "http":
        from cartera.integrations.service import egress_policy

        if not egress_policy().allowed_name(parts.hostname, parts.port or 80):
            raise Invalid("jwks_uri must use https", code="invalid_jwks_uri",
                          param="jwks_uri")
    return uri


async def fetch_jwks(uri: str, timeout_seconds: float) -> dict[str, Any]:
    """GET a JWK Set through the host's egress-aware client (private addresses refused
    unless the operator allows them)."""
    from cartera.integrations.service import egress_client

    async with egress_client(uri, timeout_seconds) as http:
        response = await http.get(uri, headers={"Accept": "application/json"})
    if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
        raise AssertionRejected(f"jwks_uri answered {response.status_code}")
    try:
        document = json.loads(response.content)
        return check_jwks(document if isinstance(document, dict) else {})
    except (ValueError, Invalid) as exc:
        raise AssertionRejected("jwks_uri did not answer a JWK Set") from exc


class JwksCache:
    """JWK Sets fetched from ``jwks_uri``s, kept ``ttl_seconds``; a key id the cached set
    lacks refetches it, at most every ``refetch_seconds`` (the client rotated its keys)."""

    def __init__(self, ttl_seconds: float = 300.0, refetch_seconds: float = 10.0,
                 timeout: float = 5.0) -> None:
        self._ttl = ttl_seconds
        self._refetch = refetch_seconds
        self._timeout = timeout
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    async def get(self, uri: str, kid: str | None) -> dict[str, Any]:
        async with self._lock:
            cached = self._sets.get(uri)
            age = time.monotonic() - cached[0] if cached else None
            known = cached is not None and (kid is None or any(
                k.get("kid") == kid for k in cached[1]["keys"]))
            if cached and age is not None and age < self._ttl and (known or age < self._refetch):
                return cached[1]
            try:
                jwks = await fetch_jwks(uri, self._timeout)
            except AssertionRejected:
                raise
            except Exception as exc:  # network, egress refusal: the client is not verified
                raise AssertionRejected(f"jwks_uri could not be fetched: {exc}") from exc
            self._sets[uri] = (time.monotonic(), jwks)
            return jwks


def claimed_client_id(assertion: str) -> str | None:
    """The ``sub`` an assertion claims (unverified: only to find the client to verify it)."""
    try:
        payload = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeEncodeError):
        return None
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return sub if isinstance(sub, str) else None


async def verify(client: OAuthClient, assertion: str, audience: str,
                 cache: JwksCache) -> tuple[str, datetime]:
    """The assertion's ``jti`` and expiry when it authenticates ``client``; raises
    :class:`AssertionRejected` otherwise. Does not record the ``jti`` (:func:`record`)."""
    try:
        kid = jws.extract_compact(assertion.encode("ascii")).headers().get("kid")
    except (JoseError, ValueError, UnicodeEncodeError) as exc:
        raise AssertionRejected("not a compact JWS") from exc
    if client.jwks is not None:
        jwks = client.jwks
    elif client.jwks_uri is not None:
        jwks = await cache.get(client.jwks_uri, kid)
    else:
        raise AssertionRejected("the client has no keys")
    now = int(time.time())
    registry = jwt.JWTClaimsRegistry(
        now=now, leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": client.client_id},
        sub={"essential": True, "value": client.client_id},
        aud={"essential": True, "value": audience},
        exp={"essential": True}, jti={"essential": True})
    try:
        decoded = jwt.decode(assertion, KeySet.import_key_set(jwks),  # type: ignore[arg-type]
                             algorithms=ALGORITHMS)
        registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRejected(f"assertion refused: {exc}") from exc
    exp, jti = decoded.claims["exp"], decoded.claims["jti"]
    if exp > now + MAX_LIFETIME_SECONDS or not isinstance(jti, str) or not jti:
        raise AssertionRejected("assertion lives too long or has no jti")
    return jti, datetime.fromtimestamp(exp, UTC)


async def record(session: AsyncSession, client_id: str, jti: str,
                 expires_at: datetime) -> bool:
    """Remember an accepted assertion's ``jti``; False when it was already used (a replay).
    Expired entries are dropped on the way."""
    await session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < clock.now()))
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    inserted = await session.execute(module.insert(UsedAssertion).values(
        client_id=client_id, jti=jti, expires_at=expires_at,
    ).on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(UsedAssertion.jti))
    return inserted.scalar_one_or_none() is not None
