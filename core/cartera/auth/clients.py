"""Tenants' OAuth2 clients: creation (the secret is shown once), granting scopes, and
authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.auth import scopes as scope_catalogue
from cartera.auth.models import OAuthClient
from cartera.errors import Invalid


def hash_secret(secret: str) -> str:
    # Secrets are 256-bit random strings, so a fast hash is enough (no dictionary to attack);
    # the prefix makes the scheme explicit should it ever change.
    return "sha256$" + hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored)


async def create_client(
    session: AsyncSession, tenant_id: int, name: str, scopes: list[str] | None = None
) -> tuple[OAuthClient, str]:
    """Create a client for a tenant; returns the row and the plain secret (never stored)."""
    chosen = list(scopes or scope_catalogue.DEFAULT_CLIENT_SCOPES)
    bad = scope_catalogue.unknown(chosen)
    if bad:
        raise Invalid(f"unknown scopes: {', '.join(bad)}", code="unknown_scope", param="scopes")
    secret = secrets.token_urlsafe(32)
    client = OAuthClient(
        tenant_id=tenant_id,
        client_id="cli_" + secrets.token_hex(12),
        secret_hash=hash_secret(secret),
        name=name,
        scopes=" ".join(chosen),
    )
    session.add(client)
    await session.flush()
    return client, secret


async def grant_scopes(session: AsyncSession, client_id: str,
                       scopes: list[str]) -> OAuthClient:
    """Add ``scopes`` to a client's (e.g. the scopes of a domain added after it was made);
    tokens issued from then on carry them. Unknown scopes or client: 422 / LookupError."""
    bad = scope_catalogue.unknown(scopes)
    if bad:
        raise Invalid(f"unknown scopes: {', '.join(bad)}", code="unknown_scope", param="scopes")
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        raise LookupError(f"no client {client_id!r}")
    held = client.scopes.split()
    client.scopes = " ".join([*held, *[s for s in scopes if s not in held]])
    await session.flush()
    return client


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> OAuthClient | None:
    """The enabled client with this id and secret, or None (same answer for every failure)."""
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None:
        secret_matches(secret, hash_secret("timing-equaliser"))
        return None
    if not secret_matches(secret, client.secret_hash) or client.disabled:
        return None
    return client
