"""Re-sealing secrets at rest under the current master key (``cartera secrets rotate``).

Rotation: set the new key as ``CARTERA_MASTER_KEY`` and the old one in
``CARTERA_OLD_MASTER_KEYS``, run this command, then drop the old key. Every sealed value
(token-signing keys, integration secrets, webhook path tokens, webhook endpoints' signing
secrets and stored idempotent responses) is opened with whichever
key sealed it and sealed again with the new one, in one transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.idempotency import body_context
from cartera.api.models import IdempotencyRecord
from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring
from cartera.events.endpoints import secret_context
from cartera.events.models import WebhookEndpoint
from cartera.integrations.models import Integration
from cartera.integrations.service import reseal_webhook_token, secrets_context


async def reseal_all(session: AsyncSession, keyring: Keyring) -> dict[str, int]:
    """Re-seal every secret; returns how many of each kind were re-sealed."""
    keys = (await session.scalars(select(SigningKey))).all()
    for key in keys:
        key.private_key_encrypted = keyring.reseal(key.private_key_encrypted,
                                                   context=SIGNING_KEY_CONTEXT)
    integrations = (await session.scalars(select(Integration).where(
        Integration.secrets_sealed.is_not(None) | Integration.webhook_token_sealed.is_not(None)
    ))).all()
    for integration in integrations:
        if integration.secrets_sealed is not None:
            integration.secrets_sealed = keyring.reseal(
                integration.secrets_sealed, context=secrets_context(integration.tenant_id))
        reseal_webhook_token(integration, keyring)
    endpoints = (await session.scalars(select(WebhookEndpoint))).all()
    for endpoint in endpoints:
        context = secret_context(endpoint.tenant_id)
        endpoint.secret_sealed = keyring.reseal(endpoint.secret_sealed, context=context)
        if endpoint.previous_secret_sealed is not None:
            endpoint.previous_secret_sealed = keyring.reseal(endpoint.previous_secret_sealed,
                                                             context=context)
    responses = (await session.scalars(select(IdempotencyRecord).where(
        IdempotencyRecord.body.is_not(None)))).all()
    for response in responses:
        assert response.body is not None
        response.body = keyring.reseal(response.body, context=body_context(response))
    await session.flush()
    return {"signing_keys": len(keys), "integrations": len(integrations),
            "webhook_endpoints": len(endpoints), "idempotent_responses": len(responses)}
