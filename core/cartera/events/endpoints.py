"""Webhook endpoints: URLs checked against the egress rules, filters, sealed secrets."""

from __future__ import annotations

import asyncio
import fnmatch
from datetime import timedelta
from urllib.parse import urlsplit

from cartera_sdk.egress import EgressRefused
from msgspec import UnsetType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.crypto import keyring
from cartera.errors import Invalid, NotFound
from cartera.events import schemas, signing
from cartera.events.models import WebhookEndpoint
from cartera.events.outbox import EVENT_TYPES
from cartera.integrations.service import egress_policy

RESOLVE_TIMEOUT = 3.0


def secret_context(tenant_id: int) -> bytes:
    return f"webhook-endpoint-secret:{tenant_id}".encode()


def seal(tenant_id: int, secret: str) -> bytes:
    return keyring().seal(secret.encode(), context=secret_context(tenant_id))


def signing_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one
    during its grace period."""
    found = [keyring().open(endpoint.secret_sealed, context=secret_context(endpoint.tenant_id))]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_sealed and expires and expires > clock.now():
        found.append(keyring().open(endpoint.previous_secret_sealed,
                                    context=secret_context(endpoint.tenant_id)))
    return [s.decode() for s in found]


def matches(filters: list[str], event_type: str) -> bool:
    """Does an endpoint with these filters (``payment.*``, ``*``, exact types) want it?"""
    return any(fnmatch.fnmatchcase(event_type, f) for f in filters)


def check_filters(filters: list[str], param: str = "event_types") -> list[str]:
    """422 for a filter no event can ever match (a typo would silently receive nothing)."""
    for i, f in enumerate(filters):
        if not any(matches([f], t) for t in EVENT_TYPES):
            raise Invalid(f"no event type matches {f!r} (see GET /v1/events for the types)",
                          code="unknown_event_type", param=f"{param}[{i}]")
    return sorted(set(filters))


async def check_url(url: str) -> str:
    """422 naming ``url`` unless it is https (or http to an allow-listed host) and its
    host is one the egress rules let deliveries reach (not a private address)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Invalid("url must be an absolute https URL", code="invalid_url", param="url")
    if parts.username or parts.password:
        raise Invalid("url must not carry credentials", code="invalid_url", param="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Invalid("url has an invalid port", code="invalid_url", param="url") from None
    policy = egress_policy()
    try:
        if parts.scheme == "http":
            policy.check_plaintext(parts.hostname, port, "a webhook endpoint")
        await asyncio.wait_for(policy.resolve(parts.hostname, port), RESOLVE_TIMEOUT)
    except EgressRefused as exc:
        raise Invalid(str(exc), code="egress_refused", param="url") from None
    except (OSError, TimeoutError):
        pass  # a name that does not resolve yet: deliveries fail and retry meanwhile
    return url


async def create(session: AsyncSession, tenant_id: int, data: schemas.EndpointCreate
                 ) -> tuple[WebhookEndpoint, str]:
    secret = signing.new_secret()
    now = clock.now()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id, url=await check_url(data.url), description=data.description,
        event_types=check_filters(data.event_types), enabled=True,
        secret_sealed=seal(tenant_id, secret), created_at=now, updated_at=now)
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get(session: AsyncSession, tenant_id: int, endpoint_id: int) -> WebhookEndpoint:
    found = await session.scalar(select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id))
    if found is None:
        raise NotFound("no such webhook endpoint", code="webhook_endpoint_not_found")
    return found


async def update(session: AsyncSession, tenant_id: int, endpoint_id: int,
                 data: schemas.EndpointUpdate) -> WebhookEndpoint:
    endpoint = await get(session, tenant_id, endpoint_id)
    if isinstance(data.url, str):
        endpoint.url = await check_url(data.url)
    if isinstance(data.event_types, list):
        endpoint.event_types = check_filters(data.event_types)
    if not isinstance(data.description, UnsetType):
        endpoint.description = data.description
    if isinstance(data.enabled, bool) and data.enabled != endpoint.enabled:
        endpoint.enabled = data.enabled
        endpoint.disabled_reason = None if data.enabled else "disabled_by_user"
        endpoint.failing_since = None
    endpoint.updated_at = clock.now()
    return endpoint


async def rotate(session: AsyncSession, tenant_id: int, endpoint_id: int,
                 grace_seconds: int) -> tuple[WebhookEndpoint, str]:
    endpoint = await get(session, tenant_id, endpoint_id)
    secret = signing.new_secret()
    now = clock.now()
    endpoint.previous_secret_sealed = endpoint.secret_sealed if grace_seconds else None
    endpoint.previous_secret_expires_at = (now + timedelta(seconds=grace_seconds)
                                           if grace_seconds else None)
    endpoint.secret_sealed = seal(tenant_id, secret)
    endpoint.updated_at = now
    return endpoint, secret


async def delete(session: AsyncSession, tenant_id: int, endpoint_id: int) -> None:
    await session.delete(await get(session, tenant_id, endpoint_id))


def out(e: WebhookEndpoint) -> schemas.EndpointOut:
    return schemas.EndpointOut(
        id=e.id, url=e.url, description=e.description, event_types=list(e.event_types),
        enabled=e.enabled, disabled_reason=e.disabled_reason, failing_since=e.failing_since,
        created_at=e.created_at, updated_at=e.updated_at)
