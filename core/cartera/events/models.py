"""Tables of outbound events: the outbox, webhook endpoints, deliveries and their attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    JsonType,
    SealedJson,
    SealedString,
    TenantScoped,
    UtcDateTime,
    utcnow,
)

DeliveryStatus = Literal["pending", "delivering", "succeeded", "failed"]
DELIVERY_STATUSES = get_args(DeliveryStatus)


class OutboxEvent(TenantScoped, Base):
    """One state change, written in the transaction of the change. ``seq`` orders events
    (and is the cursor); ``id`` (``evt_...``) is the public, unguessable name."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_tenant_seq", "tenant_id", "seq"),
        Index("ix_outbox_events_created_at", "created_at"),
        Index("ix_outbox_events_undispatched", "seq",
              postgresql_where=text("NOT dispatched"), sqlite_where=text("NOT dispatched")),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64))
    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    """No foreign key: an event outlives the debtor it is about (``debtor.deleted``)."""
    public_data: Mapped[dict[str, Any]] = mapped_column("data", JsonType, default=dict)
    """Column ``data``: the data of events that carry no personal data, written set-based
    in SQL (statuses, stage codes and segment ids of moves: ``insert_from_select``,
    ``emit_interactions``, ``emit_settled``). ``{}`` when :attr:`sealed_data` holds it."""
    sealed_data: Mapped[dict[str, Any] | None] = mapped_column(
        "data_sealed", SealedJson("outbox_events.data_sealed"))
    """The data of events that may carry personal data (an audited change's fields: names,
    contact values), sealed at rest: every event made through :func:`emit` (and so every
    audited change's). Never queried in SQL."""

    @property
    def data(self) -> dict[str, Any]:
        """The event's data, from whichever column holds it."""
        return self.sealed_data if self.sealed_data is not None else (self.public_data or {})

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self.sealed_data, self.public_data = dict(value), {}

    dispatched: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Fanned out to the matching endpoints' deliveries."""


class WebhookEndpoint(TenantScoped, Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500))
    event_types: Mapped[list[str]] = mapped_column(JsonType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """The first failed attempt since the last success (None while deliveries succeed)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class EventDelivery(TenantScoped, Base):
    """One event to one endpoint, retried until delivered or the retry horizon passes."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "next_attempt_at",
              postgresql_where=text("status IN ('pending', 'delivering')"),
              sqlite_where=text("status IN ('pending', 'delivering')")),
        Index("ix_event_deliveries_debtor_order", "endpoint_id", "debtor_id", "id",
              postgresql_where=text("status IN ('pending', 'delivering')"),
              sqlite_where=text("status IN ('pending', 'delivering')")),
        Index("ix_event_deliveries_event_seq", "event_seq"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_seq: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox_events.seq", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    """When pending: not before; when delivering: the claim lapses then (a crashed worker)."""
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DeliveryAttempt(TenantScoped, Base):
    """One HTTP attempt of a delivery: an endpoint's delivery log. Kept as long as its
    delivery, which goes with its event (:data:`cartera.events.jobs.RETENTION`)."""

    __tablename__ = "event_delivery_attempts"
    __table_args__ = (
        Index("ix_event_delivery_attempts_endpoint", "endpoint_id", "id"),
        Index("ix_event_delivery_attempts_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("event_deliveries.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(
        SealedString("event_delivery_attempts.response_excerpt"))
