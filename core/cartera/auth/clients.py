"""Tenants' OAuth2 clients: creation (the secret is shown once), scopes, disabling, secret
rotation with a grace period, deletion, and secret authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.auth import scopes as scope_catalogue
from cartera.auth.models import OAuthClient
from cartera.errors import Invalid, NotFound

CLIENT_SECRET = "client_secret"
PRIVATE_KEY_JWT = "private_key_jwt"


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random strings, so a fast hash is enough (no dictionary to attack);
    # the prefix makes the scheme explicit should it ever change.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored: str | None) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored or hash_secret("no-secret"))


def check_scopes(scopes: list[str]) -> list[str]:
    bad = scope_catalogue.unknown(scopes)
    if bad:
        raise Invalid(f"unknown scopes: {', '.join(bad)}", code="unknown_scope", param="scopes")
    return list(dict.fromkeys(scopes))


def _new_client(tenant_id: int, name: str, scopes: list[str] | None, *,
                secret_hash: str | None = None, jwks: dict[str, Any] | None = None,
                jwks_uri: str | None = None) -> OAuthClient:
    chosen = check_scopes(list(scopes or scope_catalogue.DEFAULT_CLIENT_SCOPES))
    return OAuthClient(
        tenant_id=tenant_id, client_id="cli_" + secrets.token_hex(12),
        secret_hash=secret_hash, name=name, scopes=" ".join(chosen),
        auth_method=CLIENT_SECRET if secret_hash else PRIVATE_KEY_JWT,
        jwks=jwks, jwks_uri=jwks_uri)


async def create_client(session: AsyncSession, tenant_id: int, name: str,
                        scopes: list[str] | None = None) -> tuple[OAuthClient, str]:
    """Create a ``client_secret`` client for a tenant; returns the row and the plain secret
    (never stored). Without ``scopes``: every tenant scope
    (:data:`~cartera.auth.scopes.DEFAULT_CLIENT_SCOPES`; the API passes its own default)."""
    secret = secrets.token_urlsafe(32)
    client = _new_client(tenant_id, name, scopes, secret_hash=hash_secret(secret))
    session.add(client)
    await session.flush()
    return client, secret


async def create_key_client(session: AsyncSession, tenant_id: int, name: str,
                            scopes: list[str], *, jwks: dict[str, Any] | None = None,
                            jwks_uri: str | None = None) -> OAuthClient:
    """Create a ``private_key_jwt`` client (no secret) verified with ``jwks`` or the keys
    at ``jwks_uri`` (checked by the caller: :mod:`cartera.auth.assertions`)."""
    client = _new_client(tenant_id, name, scopes, jwks=jwks, jwks_uri=jwks_uri)
    session.add(client)
    await session.flush()
    return client


async def grant_scopes(session: AsyncSession, client_id: str,
                       scopes: list[str]) -> OAuthClient:
    """Add ``scopes`` to a client's (e.g. the scopes of a domain added after it was made);
    tokens issued from then on carry them. Unknown scopes or client: 422 / LookupError."""
    check_scopes(scopes)
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    held = client.scopes.split()
    client.scopes = " ".join([*held, *[s for s in scopes if s not in held]])
    await session.flush()
    return client


async def get_client(session: AsyncSession, client_id: str) -> OAuthClient:
    """The client (of the session's tenant, in a tenant session), else 404."""
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        raise NotFound(f"no client {client_id!r}", param="client_id")
    return client


def rotate_secret(client: OAuthClient, grace_seconds: int) -> str:
    """Give ``client`` a new secret (returned, never stored); the current one keeps working
    for ``grace_seconds`` more (0: it stops at once). A rotation during a grace period
    ends the older secret's grace: only the last two secrets ever work."""
    if client.auth_method != CLIENT_SECRET:
        raise Invalid("a private_key_jwt client has no secret to rotate",
                      code="no_client_secret", param="client_id")
    secret = secrets.token_urlsafe(32)
    client.previous_secret_hash = client.secret_hash if grace_seconds > 0 else None
    client.previous_secret_expires_at = (clock.now() + timedelta(seconds=grace_seconds)
                                         if grace_seconds > 0 else None)
    client.secret_hash = hash_secret(secret)
    return secret


def _secret_valid(client: OAuthClient, secret: str) -> bool:
    current = secret_matches(secret, client.secret_hash)
    previous = secret_matches(secret, client.previous_secret_hash)
    expires = client.previous_secret_expires_at
    return current or (previous and expires is not None and expires > clock.now())


async def find_enabled(session: AsyncSession, client_id: str) -> OAuthClient | None:
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    return None if client is None or client.disabled else client


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> OAuthClient | None:
    """The enabled ``client_secret`` client with this id and secret (or its previous secret
    within the rotation grace period), or None (same answer for every failure)."""
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        secret_matches(secret, hash_secret("timing-equaliser"))
        return None
    if (not _secret_valid(client, secret) or client.disabled
            or client.auth_method != CLIENT_SECRET):
        return None
    return client
