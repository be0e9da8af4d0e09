"""Writing events into the outbox, in the caller's transaction.

Every audited write passes through :func:`cartera.audit.service.record`, which calls
:func:`from_audit`: the audit action names the event (:data:`AUDIT_EVENTS`), so one table
here decides which changes ISVs see, without touching each domain. Changes that are not
audited one by one (set-based segment and stage moves, settled promises) write their
events with :func:`insert_from_select`, one ``INSERT ... SELECT`` per statement.

Personal data: :func:`emit` (so every audited change's event) keeps the data sealed at rest
(``outbox_events.data_sealed``); the set-based writers here put data that carries none
(statuses, stage codes, segment ids) in the plain ``data`` column, which SQL may build.
A writer whose data can carry personal data goes through :func:`emit`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, String, cast, func, insert, literal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from cartera import clock
from cartera.db.base import UtcDateTime, table_of
from cartera.events.models import OutboxEvent

AUDIT_EVENTS: dict[str, str] = {
    "portfolio.created": "portfolio.created",
    "portfolio.updated": "portfolio.updated",
    "debtor.created": "debtor.created",
    "debtor.updated": "debtor.updated",
    "debtor.deleted": "debtor.deleted",
    "contact_point.created": "contact_point.created",
    "contact_point.updated": "contact_point.updated",
    "contact_point.deleted": "contact_point.deleted",
    "related_party.created": "related_party.created",
    "related_party.deleted": "related_party.deleted",
    "obligation.created": "obligation.created",
    "obligation.updated": "obligation.updated",
    "payment.received": "payment.created",
    "payment.reversed": "payment.reversed",
    "import.completed": "import.succeeded",
    "import.failed": "import.failed",
    "promise.created": "promise.created",
    "promise.cancelled": "promise.cancelled",
    "arrangement.created": "arrangement.created",
    "arrangement.cancelled": "arrangement.cancelled",
    "interaction.recorded": "interaction.created",
    "payment_link.created": "payment_link.created",
    "payment_link.cancelled": "payment_link.cancelled",
    "payment.refund_requested": "payment.refund_requested",
    "reconciliation_exception.resolved": "reconciliation_exception.resolved",
}
"""Audit action -> event type. ``message.<status>`` becomes ``interaction.<status>``."""

EVENT_TYPES: tuple[str, ...] = (
    *sorted(set(AUDIT_EVENTS.values())),
    "interaction.queued", "interaction.sent", "interaction.delivered", "interaction.read",
    "interaction.failed", "interaction.replied", "interaction.opted_out",
    "interaction.suppressed", "interaction.blocked",
    "promise.kept", "promise.partly_kept", "promise.broken", "promise.reopened",
    "payment_link.paid", "payment_link.expired",
    "arrangement.completed", "arrangement.broken", "arrangement.reopened",
    "debtor.stage_changed", "debtor.segment_changed",
    "webhook_endpoint.disabled",
    "action.requested",
)
"""Every type an event can have (the documented catalogue; filters are checked against it)."""


def new_event_id() -> str:
    """``evt_`` and 30 random hex characters (120 bits): unguessable, URL-safe."""
    return "evt_" + secrets.token_hex(15)


def event_type_of(action: str) -> str | None:
    """The event type an audit action produces, or None for one ISVs are not sent."""
    if action.startswith("message."):
        return "interaction." + action.removeprefix("message.")
    return AUDIT_EVENTS.get(action)


def _resource_of(event_type: str, resource_type: str, resource_id: str,
                 changes: Mapping[str, Any]) -> tuple[str, str]:
    """The object an event is about: ``contact_point.updated`` is audited on its debtor
    with ``contact_point_id`` in the changes; the event names the contact point."""
    entity = event_type.split(".", 1)[0]
    own = changes.get(f"{entity}_id")
    if entity != resource_type and own is not None:
        return entity, str(own)
    return resource_type, resource_id


def _debtor_of(resource_type: str, resource_id: str, changes: Mapping[str, Any]) -> int | None:
    if resource_type == "debtor" and resource_id.isdigit():
        return int(resource_id)
    found = changes.get("debtor_id")
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def emit(session: AsyncSession | Session, tenant_id: int, event_type: str,
         resource_type: str, resource_id: object, *, debtor_id: int | None = None,
         data: Mapping[str, Any] | None = None) -> OutboxEvent:
    """Add one event to the session: it commits, or rolls back, with the change."""
    event = OutboxEvent(id=new_event_id(), tenant_id=tenant_id, type=event_type,
                        created_at=clock.now(), resource_type=resource_type,
                        resource_id=str(resource_id), debtor_id=debtor_id,
                        data=dict(data or {}))
    session.add(event)
    return event


def emit_interaction(session: AsyncSession | Session, interaction: Any, status: str) -> None:
    """``interaction.<status>`` for a status an interaction reached outside an audited
    write (provider receipts, replies, opt-outs by keyword)."""
    emit(session, interaction.tenant_id, f"interaction.{status}", "interaction",
         interaction.id, debtor_id=interaction.debtor_id,
         data={"status": status, "channel": interaction.channel,
               "direction": interaction.direction})


async def emit_interactions(session: AsyncSession,
                            changes: Sequence[tuple[Any, int, str]]) -> None:
    """``interaction.<status>`` for each ``(interaction, debtor_id, status)`` a set-based
    writer moved (the batch sender's ``sent`` and ``failed``), in one INSERT; each
    ``interaction`` has ``tenant_id``, ``id`` and ``channel``."""
    if not changes:
        return
    now = clock.now()
    await session.execute(insert(table_of(OutboxEvent)), [{
        "id": new_event_id(), "tenant_id": i.tenant_id, "type": f"interaction.{status}",
        "created_at": now, "resource_type": "interaction", "resource_id": str(i.id),
        "debtor_id": debtor_id, "dispatched": False,
        "data": {"status": status, "channel": i.channel, "direction": "outbound"},
    } for i, debtor_id, status in changes])


def from_audit(session: AsyncSession | Session, tenant_id: int, action: str,
               resource_type: str, resource_id: str, changes: Mapping[str, Any]) -> None:
    """The event of an audited change, if ISVs are sent one (see :data:`AUDIT_EVENTS`)."""
    event_type = event_type_of(action)
    if event_type is None:
        return
    debtor_id = _debtor_of(resource_type, resource_id, changes)
    kind, own_id = _resource_of(event_type, resource_type, resource_id, changes)
    emit(session, tenant_id, event_type, kind, own_id, debtor_id=debtor_id, data=changes)


REOPENED = {"pending", "active"}
"""A settled promise or plan whose status goes back to these (a payment reversed) is
``reopened``."""


async def emit_settled(session: AsyncSession, kind: str,
                       rows: Sequence[Mapping[str, Any]]) -> None:
    """One ``promise.*`` / ``arrangement.*`` event per row a set-based settlement changed
    (rows with ``id``, ``tenant_id``, ``debtor_id``, ``status``), in one INSERT."""
    if not rows:
        return
    now = clock.now()
    await session.execute(insert(table_of(OutboxEvent)), [{
        "id": new_event_id(), "tenant_id": int(r["tenant_id"]),
        "type": f"{kind}.{'reopened' if r['status'] in REOPENED else r['status']}",
        "created_at": now, "resource_type": kind, "resource_id": str(r["id"]),
        "debtor_id": int(r["debtor_id"]), "data": {"status": str(r["status"])},
        "dispatched": False} for r in rows])


def random_id_sql(session: AsyncSession) -> Any:
    """A SQL expression giving each inserted row its own ``evt_...`` id."""
    if session.get_bind().dialect.name == "postgresql":
        return literal("evt_") + func.substr(
            func.replace(func.gen_random_uuid().cast(String), "-", ""), 1, 30)
    return literal("evt_") + func.lower(func.hex(func.randomblob(15)))


async def insert_from_select(session: AsyncSession, rows: Select[Any]) -> None:
    """Write one event per row of ``rows``, set-based. ``rows`` selects, in this order:
    tenant_id, type, resource_type, resource_id, debtor_id, data (JSON)."""
    t = table_of(OutboxEvent)
    sub = rows.subquery()
    c = list(sub.c)
    await session.execute(insert(t).from_select(
        ["id", "tenant_id", "type", "created_at", "resource_type", "resource_id",
         "debtor_id", "data", "dispatched"],
        Select(random_id_sql(session), c[0], c[1], literal(clock.now(), UtcDateTime()), c[2],
               cast(c[3], String), c[4], c[5], literal(False))))
