"""What provider events do to interactions: delivery statuses move an interaction forward
(late or repeated events never move it back), replies are recorded, and an opt-out keyword
revokes consent for that channel on that contact point."""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.audit.models import AuditEntry
from cartera.integrations.models import Integration
from cartera.integrations.webhooks import on_event
from cartera.messaging.models import Interaction, OptOutKeyword
from cartera.messaging.sending import add_event, publish_interaction
from cartera.portfolio.models import ContactPoint
from cartera.portfolio.service import resegment_debtor

log = logging.getLogger("cartera.inbound")

DEFAULT_OPT_OUT = ("BAJA", "STOP", "NO MAS", "CANCELAR")
# Provider states mapped onto our interaction statuses, and how far along each one is.
STATUS_MAP = {"queued": "queued", "accepted": "queued", "sent": "sent", "delivered": "delivered",
              "read": "read", "opened": "read", "clicked": "read", "failed": "failed",
              "undelivered": "failed", "bounced": "failed", "dropped": "failed"}
RANK = {"queued": 0, "deferred": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}


def normalise(text: str) -> str:
    """Upper case, no accents, no punctuation, single spaces: "No más." -> "NO MAS"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^\w\s]", " ", plain).upper().split())


def _at(payload: dict[str, Any]) -> datetime:
    raw = payload.get("occurred_at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else clock.now()


@on_event("DeliveryStatusEvent")
async def delivery_status(session: AsyncSession, integration: Integration, provider: Any,
                          payload: dict[str, Any]) -> None:
    interaction = await session.scalar(select(Interaction).where(
        Interaction.integration_id == integration.id,
        Interaction.provider_message_id == payload["provider_message_id"]))
    if interaction is None:
        log.info("status for an unknown message", extra={"integration_id": integration.id})
        return
    state = str(payload["status"])
    add_event(session, interaction, state, "webhook", at=_at(payload),
              code=payload.get("error_code"), reason=payload.get("error_reason"))
    if state == "unsubscribed":
        await _opt_out(session, integration, interaction.address or "", interaction.channel,
                       "provider unsubscribe event")
    new = STATUS_MAP.get(state)
    if new is None or RANK.get(new, -1) <= RANK.get(interaction.status, -1):
        return  # duplicates and out-of-order events never move an interaction back
    interaction.status = new
    if new == "failed":
        interaction.failure_code = payload.get("error_code")
        interaction.failure_reason = payload.get("error_reason")
    cost = payload.get("cost")
    if cost:
        from decimal import Decimal

        from cartera import money

        interaction.cost_minor = money.to_minor(Decimal(str(cost["amount"])), cost["currency"])
        interaction.cost_currency = cost["currency"]


async def _keywords(session: AsyncSession, tenant_id: int) -> set[str]:
    extra = (await session.scalars(select(OptOutKeyword.keyword).where(
        OptOutKeyword.tenant_id == tenant_id))).all()
    return {normalise(k) for k in (*DEFAULT_OPT_OUT, *extra)}


def _addresses(address: str) -> list[str]:
    """Forms one address takes: WhatsApp sends phone numbers without the leading +."""
    digits = address.lstrip("+")
    return [address, "+" + digits] if digits.isdigit() else [address]


async def _points(session: AsyncSession, tenant_id: int, address: str) -> list[ContactPoint]:
    return list((await session.scalars(select(ContactPoint).where(
        ContactPoint.tenant_id == tenant_id, ContactPoint.value.in_(_addresses(address)))
        .order_by(ContactPoint.id))).all())


async def _opt_out(session: AsyncSession, integration: Integration, address: str,
                   channel: str, why: str) -> list[ContactPoint]:
    points = await _points(session, integration.tenant_id, address)
    changed: set[int] = set()
    for cp in points:
        if channel not in (cp.opted_out_channels or []):
            changed.add(cp.debtor_id)
            cp.opted_out_channels = sorted({*(cp.opted_out_channels or []), channel})
            session.add(AuditEntry(tenant_id=cp.tenant_id, actor="system", client_id=None,
                                   request_id=None, action="contact_point.opted_out",
                                   resource_type="debtor", resource_id=str(cp.debtor_id),
                                   changes={"contact_point_id": cp.id, "channel": channel,
                                            "why": why}))
    for debtor_id in sorted(changed):  # consent is a segmentation feature
        await resegment_debtor(session, integration.tenant_id, debtor_id)
    return points


@on_event("InboundMessage")
async def inbound_message(session: AsyncSession, integration: Integration, provider: Any,
                          payload: dict[str, Any]) -> None:
    address = str(payload["from_address"])
    channel = str(getattr(provider, "channel", "sms"))
    text = payload.get("text") or payload.get("button_payload") or ""
    points = await _points(session, integration.tenant_id, address)
    interaction = Interaction(
        tenant_id=integration.tenant_id, debtor_id=points[0].debtor_id if points else None,
        direction="inbound", channel=channel, status="received",
        integration_id=integration.id, contact_point_id=points[0].id if points else None,
        address=address, provider_message_id=payload.get("provider_message_id"),
        content={"text": text}, trigger={"source": "webhook"})
    session.add(interaction)
    await session.flush()
    add_event(session, interaction, "received", "webhook", at=_at(payload))
    await publish_interaction(session, interaction)
    if normalise(text) in await _keywords(session, integration.tenant_id):
        await _opt_out(session, integration, address, channel, f"keyword {text!r}")
        add_event(session, interaction, "opted_out", "keyword", keyword=normalise(text))
