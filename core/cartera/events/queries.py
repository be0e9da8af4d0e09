"""Reading events and delivery logs, and queueing redeliveries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.errors import Invalid, NotFound
from cartera.events import schemas
from cartera.events.endpoints import check_filters, matches
from cartera.events.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    OutboxEvent,
    WebhookEndpoint,
)

_FILTER = re.compile(r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")


@dataclass(frozen=True)
class EventFilter:
    """Which events to list: of these ``types`` (families like ``payment.*`` allowed),
    created at or after ``created_from`` and before ``created_to``, about ``debtor_id``."""

    types: list[str] = field(default_factory=list)
    created_from: datetime | None = None
    created_to: datetime | None = None
    debtor_id: int | None = None

    def check(self) -> None:
        """422 naming the parameter for a filter that is malformed or can match nothing."""
        for f in self.types:
            if not _FILTER.match(f):
                raise Invalid(f"{f!r} is not an event type or family (like payment.*)",
                              code="invalid_value", param="type")
        check_filters(self.types, param="type")
        for name in ("created_from", "created_to"):
            value: datetime | None = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise Invalid(f"{name} must carry a time zone (e.g. 2026-03-01T00:00:00Z)",
                              code="naive_datetime", param=name)
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise Invalid("created_from must be before created_to", code="empty_range",
                          param="created_to")

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        e = OutboxEvent
        if self.types:
            exact = [t for t in self.types if "*" not in t]
            families = [t.removesuffix("*") for t in self.types if t.endswith(".*")]
            if "*" not in self.types:
                stmt = stmt.where(or_(e.type.in_(exact),
                                      *(e.type.startswith(f, autoescape=True)
                                        for f in families)))
        if self.created_from is not None:
            stmt = stmt.where(e.created_at >= self.created_from)
        if self.created_to is not None:
            stmt = stmt.where(e.created_at < self.created_to)
        if self.debtor_id is not None:
            stmt = stmt.where(e.debtor_id == self.debtor_id)
        return stmt


def event_out(e: OutboxEvent) -> schemas.EventOut:
    return schemas.EventOut(id=e.id, type=e.type, created_at=e.created_at,
                            resource=schemas.EventResource(type=e.resource_type,
                                                           id=e.resource_id),
                            debtor_id=e.debtor_id, data=dict(e.data))


async def get_event(session: AsyncSession, tenant_id: int, event_id: str) -> OutboxEvent:
    found = await session.scalar(select(OutboxEvent).where(
        OutboxEvent.id == event_id, OutboxEvent.tenant_id == tenant_id))
    if found is None:
        raise NotFound("no such event (events are kept 30 days)", code="event_not_found")
    return found


async def list_events(session: AsyncSession, tenant_id: int, found: EventFilter, limit: int,
                      starting_after: str | None) -> schemas.EventPage:
    found.check()
    e = OutboxEvent
    stmt = found.apply(select(e).where(e.tenant_id == tenant_id))
    if starting_after is not None:
        after = await session.scalar(select(e.seq).where(e.id == starting_after,
                                                         e.tenant_id == tenant_id))
        if after is None:
            raise Invalid("starting_after names no event of yours", code="invalid_cursor",
                          param="starting_after")
        stmt = stmt.where(e.seq > after)
    rows = (await session.scalars(stmt.order_by(e.seq).limit(limit + 1))).all()
    has_more = len(rows) > limit
    return schemas.EventPage(data=[event_out(r) for r in rows[:limit]], has_more=has_more,
                             next_cursor=rows[limit - 1].id if has_more else None)


async def redeliver(session: AsyncSession, tenant_id: int, event: OutboxEvent,
                    endpoint_id: int | None) -> list[EventDelivery]:
    """A new delivery of ``event`` to each enabled matching endpoint (or to one)."""
    w = WebhookEndpoint
    stmt = select(w).where(w.tenant_id == tenant_id, w.enabled.is_(True))
    if endpoint_id is not None:
        stmt = stmt.where(w.id == endpoint_id)
    targets = (await session.scalars(stmt.order_by(w.id))).all()
    if endpoint_id is not None and not targets:
        raise Invalid("endpoint_id names no enabled webhook endpoint of yours",
                      code="webhook_endpoint_not_found", param="endpoint_id")
    now = clock.now()
    rows = [EventDelivery(tenant_id=tenant_id, event_seq=event.seq, endpoint_id=t.id,
                          debtor_id=event.debtor_id, status="pending", attempts=0,
                          next_attempt_at=now, created_at=now)
            for t in targets if endpoint_id is not None or matches(list(t.event_types),
                                                                   event.type)]
    session.add_all(rows)
    await session.flush()
    return rows


def delivery_out(d: EventDelivery, event_id: str) -> schemas.DeliveryOut:
    return schemas.DeliveryOut(id=d.id, event_id=event_id, endpoint_id=d.endpoint_id,
                               status=cast(DeliveryStatus, d.status), attempts=d.attempts,
                               next_attempt_at=d.next_attempt_at)


def endpoints_of(tenant_id: int) -> Select[Any]:
    return select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)


def endpoint_id_column() -> Any:
    return WebhookEndpoint.id


def attempt_out(a: DeliveryAttempt) -> schemas.AttemptOut:
    return schemas.AttemptOut(id=a.id, delivery_id=a.delivery_id, event_id=a.event_id,
                              event_type=a.event_type, attempt=a.attempt, at=a.at,
                              succeeded=a.succeeded, status_code=a.status_code,
                              latency_ms=a.latency_ms, error=a.error,
                              response_excerpt=a.response_excerpt)
