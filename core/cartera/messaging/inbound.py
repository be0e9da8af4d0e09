"""What provider events do to interactions: delivery statuses are kept in a timeline
ordered by the provider's event time, and the interaction's status is derived from that
story (:data:`PRECEDENCE`: late or repeated events never move it back); suppressions
(hard bounces, spam complaints, carrier opt-outs) make the address unusable for the
channel; replies are recorded, and an opt-out keyword revokes consent for that channel on
the contact points the sender's address reaches."""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock, money
from cartera.audit.models import AuditEntry
from cartera.events.outbox import emit_interaction
from cartera.integrations.models import Integration, WebhookEvent
from cartera.integrations.webhooks import on_event
from cartera.jobs.registry import every_minute
from cartera.messaging import suppression
from cartera.messaging.models import (
    Interaction,
    InteractionEvent,
    MessagePartId,
    OptOutKeyword,
)
from cartera.messaging.parts import part_of
from cartera.messaging.sending import add_event, publish_interaction
from cartera.portfolio.models import ContactPoint
from cartera.portfolio.service import resegment_debtor

log = logging.getLogger("cartera.inbound")

DEFAULT_OPT_OUT = ("BAJA", "STOP", "NO MAS", "CANCELAR")
# Provider states mapped onto our interaction statuses.
STATUS_MAP = {"queued": "queued", "accepted": "queued", "sent": "sent", "delivered": "delivered",
              "read": "read", "opened": "read", "clicked": "read", "failed": "failed",
              "undelivered": "failed", "bounced": "failed", "dropped": "failed",
              "buffered": "sent", "expired": "failed", "rejected": "failed",
              "undeliverable": "failed"}
"""``unknown`` (a provider status the plugin does not map) is kept in the timeline with the
raw ``provider_status`` but, being outside :data:`PRECEDENCE`, never moves the status."""
PRECEDENCE = {"queued": 0, "sent": 1, "failed": 2, "delivered": 3, "read": 4}
"""Which status an interaction's delivery story ends in: the highest here, and among equals
the latest by the provider's event time. A receipt (delivered, read) outranks a failure
whatever the order they arrive or happened in: a handset cannot confirm what it did not
receive, while providers do report failures that a later carrier receipt contradicts
(Twilio ``undelivered`` then a late ``delivered``). A failure outranks ``sent``, which
outranks the provider's own queueing states."""


def normalise(text: str) -> str:
    """Upper case, no accents, no punctuation, single spaces: "No más." -> "NO MAS"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^\w\s]", " ", plain).upper().split())


def _at(payload: dict[str, Any]) -> datetime:
    raw = payload.get("occurred_at")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else clock.now()


def story_order(events: list[InteractionEvent]) -> list[InteractionEvent]:
    """Recorded events (in id order) with the provider's events among them reordered by
    the provider's event time, each in a slot a provider event held: Cartera's own steps
    (queued, sent...) keep their place, and provider clocks (often whole seconds) are never
    compared with ours."""
    slots = [i for i, e in enumerate(events) if e.occurred_at is not None]
    by_time = sorted((events[i] for i in slots), key=lambda e: (e.occurred_at or e.at, e.id))
    ordered = list(events)
    for slot, event in zip(slots, by_time, strict=True):
        ordered[slot] = event
    return ordered


def derive_status(story: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """The status (with its event's detail) a delivery story ends in, by
    :data:`PRECEDENCE`; ``story`` is in provider event-time order and starts from ``sent``
    (statuses outside :data:`PRECEDENCE` are ignored)."""
    best: tuple[str, dict[str, Any]] = ("sent", {})
    for status, detail in story:
        if status in PRECEDENCE and PRECEDENCE[status] >= PRECEDENCE[best[0]]:
            best = (status, detail)
    return best


async def _delivery_story(session: AsyncSession,
                          interaction: Interaction) -> list[tuple[str, dict[str, Any]]]:
    events = (await session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.source == "webhook")
        .order_by(InteractionEvent.id))).all()
    return [(STATUS_MAP.get(e.status, e.status), dict(e.detail))
            for e in story_order(list(events))]


def derive_parts_status(story: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """Like :func:`derive_status`, for a long SMS whose receipts come per part: each part's
    story is derived on its own (a part without a receipt yet is ``sent``) and the message
    is as far as its least advanced part: delivered once every part is, failed when a part
    failed and none is behind it. A story without part receipts is :func:`derive_status`."""
    count = max((int(d["part"]["count"]) for _, d in story if d.get("part")), default=0)
    if count <= 1:
        return derive_status(story)
    whole = [(status, d) for status, d in story if not d.get("part")]
    per_part = [derive_status(whole + [(status, d) for status, d in story
                                      if d.get("part") and d["part"]["index"] == index])
                for index in range(1, count + 1)]
    return min(per_part, key=lambda result: PRECEDENCE[result[0]])


async def _interaction_for(session: AsyncSession, integration: Integration,
                           payload: dict[str, Any]) -> Interaction | None:
    """The interaction an event is about: by the provider's message id, else (receipts for
    parts 2..n of a long SMS carry their own ids) by our outbox id ``int_<id>`` the plugin
    passed through the provider's correlation field, else by the part ids the provider gave
    when it accepted the message (receipts without any outbox id), within the same
    integration."""
    interaction = await session.scalar(select(Interaction).where(
        Interaction.integration_id == integration.id,
        Interaction.provider_message_id == payload["provider_message_id"]))
    ours = str(payload.get("message_id") or "")
    if interaction is None and ours.startswith("int_") and ours[4:].isdigit():
        interaction = await session.scalar(select(Interaction).where(
            Interaction.integration_id == integration.id, Interaction.id == int(ours[4:])))
    if interaction is None:  # a part's own id only: the part ids stored at send
        interaction = await session.scalar(select(Interaction).join(
            MessagePartId, MessagePartId.interaction_id == Interaction.id).where(
            MessagePartId.integration_id == integration.id,
            MessagePartId.provider_message_id == payload["provider_message_id"]).limit(1))
    return interaction


@on_event("DeliveryStatusEvent")
async def delivery_status(session: AsyncSession, integration: Integration, provider: Any,
                          payload: dict[str, Any]) -> None:
    """Record the event in the timeline (with the provider's raw status, the part of a long
    SMS it is about and the provider's price at its own precision), then re-derive the
    interaction's status (and its failure code, which only a ``failed`` status carries)
    from the whole ordered story."""
    interaction = await _interaction_for(session, integration, payload)
    if interaction is None:
        log.info("status for an unknown message", extra={"integration_id": integration.id})
        return
    if not payload.get("part"):
        payload = {**payload, "part": await _part(session, interaction,
                                                  str(payload["provider_message_id"]))}
    state = str(payload["status"])
    occurred = _at(payload)
    extra = {key: payload[key] for key in ("provider_status", "part", "price")
             if payload.get(key) is not None}
    add_event(session, interaction, state, "webhook", occurred_at=occurred,
              code=payload.get("error_code"), reason=payload.get("error_reason"), **extra)
    if state == "unsubscribed":
        await _opt_out(session, integration, interaction.address or "", interaction.channel,
                       "provider unsubscribe event")
    if payload.get("suppress") and interaction.address:
        await suppression.suppress(
            session, interaction.tenant_id, interaction.address, interaction.channel,
            str(payload["suppress"]), code=payload.get("error_code"),
            interaction_id=interaction.id, at=occurred)
    if not payload.get("part"):
        _record_cost(interaction, payload.get("cost") or payload.get("price"))
    if interaction.status not in PRECEDENCE:
        return  # not sent (yet): refused, deferred... a stray status does not change that
    await session.flush()
    status, detail = derive_parts_status(await _delivery_story(session, interaction))
    if status != interaction.status:
        emit_interaction(session, interaction, status)
    interaction.status = status
    interaction.failure_code = detail.get("code") if status == "failed" else None
    interaction.failure_reason = detail.get("reason") if status == "failed" else None


async def _part(session: AsyncSession, interaction: Interaction,
                provider_message_id: str) -> dict[str, Any] | None:
    """The part of a long SMS a receipt names by its part id (from the ``sent`` event)."""
    sent = await session.scalar(select(InteractionEvent.detail).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.status == "sent",
        InteractionEvent.source == "provider").order_by(InteractionEvent.id.desc()).limit(1))
    return part_of(dict(sent), provider_message_id) if sent else None


def _record_cost(interaction: Interaction, cost: dict[str, Any] | None) -> None:
    """Keep the cost in whole minor units; a finer provider price (0.0333 EUR) stays in the
    event's detail only, since ``cost_minor`` cannot hold it without rounding."""
    if not cost:
        return
    try:
        interaction.cost_minor = money.to_minor(Decimal(str(cost["amount"])), cost["currency"])
    except money.MoneyError:
        return
    interaction.cost_currency = cost["currency"]


FRAGMENT_WINDOW = timedelta(hours=1)
"""How long the parts of a long inbound SMS may take to arrive, from the first one
received. A message still missing parts after that is recorded with the parts that did
arrive, marked incomplete (``content.incomplete``, ``parts_received``, ``parts_expected``;
a missing part shows as ``[...]`` in the text): a debtor's reply is never lost to a
dropped part. A part arriving after its message expired is recorded on its own, the same
way, once its window ends."""
FRAGMENT_WAITING = "fragment_waiting"
"""The reason on a fragment's webhook event until its message is recorded (a partial
index finds the waiting ones without scanning every event)."""
FRAGMENT_JOINED, FRAGMENT_EXPIRED = "fragment_joined", "fragment_expired"
"""Reasons kept on a fragment's webhook event once its message was recorded (whole, or
incomplete after :data:`FRAGMENT_WINDOW`): such a part never joins a later message
(concatenation references are small numbers providers reuse)."""
GAP = "[...]"


async def _fragment_rows(session: AsyncSession, integration_id: int,
                         reference: str) -> list[Any]:
    """The integration's waiting fragments of concatenation ``reference``, in id order. The
    payload is sealed at rest, so the reference is matched here, over the integration's
    waiting fragments (parts of messages less than :data:`FRAGMENT_WINDOW` old: few)."""
    rows = (await session.execute(select(
        WebhookEvent.id, WebhookEvent.event_id, WebhookEvent.payload).where(
        WebhookEvent.integration_id == integration_id,
        WebhookEvent.event_type == "InboundMessage",
        WebhookEvent.reason == FRAGMENT_WAITING,
    ).order_by(WebhookEvent.id))).all()
    return [row for row in rows
            if str((row.payload.get("fragment") or {}).get("reference")) == reference]


def _joined_text(parts: dict[int, str], count: int) -> str:
    """The parts in index order, missing ones as one :data:`GAP` per run of them."""
    text, gap = "", False
    for index in range(1, count + 1):
        if index in parts:
            text, gap = text + parts[index], False
        elif not gap:
            text = text + ("" if not text or text.endswith(" ") else " ") + GAP + " "
            gap = True
    return text.strip()


async def _joined_fragments(session: AsyncSession, integration: Integration,
                            payload: dict[str, Any]) -> str | None:
    """The whole text of a long inbound SMS once every part sharing this fragment's
    concatenation reference (and sender) has arrived, joined in part order; ``None`` while
    parts are missing, and for every part but the last stored (so the message is recorded
    once). The parts are the integration's stored webhook events (this one included), so
    they may come in any order and in different deliveries; once joined they are marked
    (:data:`FRAGMENT_JOINED`)."""
    fragment = payload["fragment"]
    await session.execute(update(WebhookEvent).where(
        WebhookEvent.integration_id == integration.id,
        WebhookEvent.event_id == payload["event_id"], WebhookEvent.reason.is_(None))
        .values(reason=FRAGMENT_WAITING))
    rows = await _fragment_rows(session, integration.id, str(fragment["reference"]))
    mine = [row for row in rows if row.payload.get("from_address") == payload["from_address"]]
    parts = {int(row.payload["fragment"]["index"]): row.payload.get("text") or ""
             for row in mine}
    if set(parts) != set(range(1, int(fragment["count"]) + 1)):
        return None
    if mine[-1].event_id != payload["event_id"]:
        return None  # complete, but a later-stored part of the same delivery records it
    if not await _claim_fragments(session, [row.id for row in mine], FRAGMENT_JOINED):
        return None  # the expiry took them meanwhile: it records the message
    return _joined_text(parts, int(fragment["count"]))


async def _claim_fragments(session: AsyncSession, ids: list[int], reason: str) -> bool:
    """Mark waiting fragments as used (``reason``); ``False`` when some already were: a
    concurrent join or expiry took them (the row locks make the second one wait, then see
    them taken), so each message is recorded once."""
    result = await session.execute(update(WebhookEvent).where(
        WebhookEvent.id.in_(ids), WebhookEvent.reason == FRAGMENT_WAITING)
        .values(reason=reason))
    return int(getattr(result, "rowcount", 0) or 0) == len(ids)


async def expire_fragments(session: AsyncSession, now: datetime,
                           channels: dict[str, str]) -> int:
    """Record every long inbound SMS whose first waiting part arrived more than
    :data:`FRAGMENT_WINDOW` before ``now`` with the parts it has, marked incomplete, and
    mark those parts :data:`FRAGMENT_EXPIRED`. ``channels`` gives a provider's channel by
    name (``sms`` when unknown). All tenants; returns how many messages were recorded."""
    old = (await session.execute(select(
        WebhookEvent.integration_id, WebhookEvent.payload).where(
        # a literal, not a bound value, so the planner matches the partial index
        WebhookEvent.reason == literal_column(f"'{FRAGMENT_WAITING}'"),
        WebhookEvent.received_at < now - FRAGMENT_WINDOW))).all()
    groups = sorted({(row.integration_id, str(row.payload["fragment"]["reference"]),
                      str(row.payload.get("from_address"))) for row in old})
    recorded = 0
    for integration_id, reference, sender in groups:
        integration = await session.get(Integration, integration_id)
        if integration is None:
            continue
        rows = [row for row in await _fragment_rows(session, integration_id, reference)
                if str(row.payload.get("from_address")) == sender]
        if not rows:
            continue
        count = max(int(row.payload["fragment"]["count"]) for row in rows)
        parts = {int(row.payload["fragment"]["index"]): row.payload.get("text") or ""
                 for row in rows}
        if not await _claim_fragments(session, [row.id for row in rows], FRAGMENT_EXPIRED):
            continue  # joined or expired by someone else meanwhile
        await _record_inbound(session, integration,
                              channels.get(integration.provider_name, "sms"),
                              rows[0].payload, _joined_text(parts, count),
                              {"incomplete": True, "parts_received": sorted(parts),
                               "parts_expected": count})
        recorded += 1
    return recorded


@every_minute
async def expire_inbound_fragments(sessionmaker: async_sessionmaker[AsyncSession],
                                   runner: Any) -> None:
    """Housekeeping: :func:`expire_fragments` (idempotent: expired parts are marked)."""
    from cartera.plugins.registry import current_host

    channels = {name: str(getattr(entry.provider, "channel", "sms"))
                for name, entry in current_host().providers["channel"].items()}
    async with sessionmaker() as session:
        await expire_fragments(session, clock.now(), channels)
        await session.commit()


async def _keywords(session: AsyncSession, tenant_id: int) -> set[str]:
    extra = (await session.scalars(select(OptOutKeyword.keyword).where(
        OptOutKeyword.tenant_id == tenant_id))).all()
    return {normalise(k) for k in (*DEFAULT_OPT_OUT, *extra)}


async def _opt_out(session: AsyncSession, integration: Integration, address: str,
                   channel: str, why: str) -> list[ContactPoint]:
    """Opt every contact point ``address`` reaches out of ``channel``; returns them (empty
    when the address matches none: nothing was applied)."""
    points = await suppression.matching_points(session, integration.tenant_id, address)
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
        await resegment_debtor(session, integration.tenant_id, debtor_id, "opt_out")
    return points


@on_event("InboundMessage")
async def inbound_message(session: AsyncSession, integration: Integration, provider: Any,
                          payload: dict[str, Any]) -> None:
    """Record a reply (a long SMS once its parts are joined, see :data:`FRAGMENT_WINDOW`)."""
    channel = str(getattr(provider, "channel", "sms"))
    text = payload.get("text") or payload.get("button_payload") or ""
    if payload.get("fragment"):
        joined = await _joined_fragments(session, integration, payload)
        if joined is None:
            return  # more parts to come: the last one to arrive records the message
        text = joined
    await _record_inbound(session, integration, channel, payload, text, {})


async def _record_inbound(session: AsyncSession, integration: Integration, channel: str,
                          payload: dict[str, Any], text: str,
                          content: dict[str, Any]) -> None:
    """Record a reply; an opt-out keyword opts the sender's contact points out of the
    channel, and the timeline says ``opted_out`` only when some contact point matched
    (``unmatched`` otherwise: nothing was applied)."""
    address = str(payload["from_address"])
    points = await suppression.matching_points(session, integration.tenant_id, address)
    interaction = Interaction(
        tenant_id=integration.tenant_id, debtor_id=points[0].debtor_id if points else None,
        direction="inbound", channel=channel, status="received",
        integration_id=integration.id, contact_point_id=points[0].id if points else None,
        address=address, provider_message_id=payload.get("provider_message_id"),
        content={"text": text, **content}, trigger={"source": "webhook"})
    session.add(interaction)
    await session.flush()
    marks: dict[str, Any] = {"incomplete": True} if content.get("incomplete") else {}
    add_event(session, interaction, "received", "webhook", occurred_at=_at(payload), **marks)
    emit_interaction(session, interaction, "replied")
    await publish_interaction(session, interaction)
    if normalise(text) in await _keywords(session, integration.tenant_id):
        applied = await _opt_out(session, integration, address, channel, f"keyword {text!r}")
        add_event(session, interaction, "opted_out" if applied else "unmatched", "keyword",
                  keyword=normalise(text), contact_point_ids=[cp.id for cp in applied])
        if applied:
            emit_interaction(session, interaction, "opted_out")
        return  # the opt-out re-derived the debtors it reached
    for debtor_id in sorted({cp.debtor_id for cp in points}):
        # A reply: the stop conditions (say, "replied" or a promise it leads to) and the
        # plan of the debtor are evaluated at once.
        await resegment_debtor(session, integration.tenant_id, debtor_id, "reply")
