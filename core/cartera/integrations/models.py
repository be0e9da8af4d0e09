"""Integrations and the inbound webhook requests and events they receive."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    JsonType,
    SealedBytes,
    SealedJson,
    SealedString,
    TenantScoped,
    UtcDateTime,
    utcnow,
)


class Integration(TenantScoped, Base):
    """One configured provider. ``secrets_sealed`` is AES-GCM under the master key."""

    __tablename__ = "integrations"
    __table_args__ = (Index("ix_integrations_tenant_kind", "tenant_id", "provider_kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    provider_kind: Mapped[str] = mapped_column(String(16))
    provider_name: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    secrets_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    secret_names: Mapped[list[str]] = mapped_column(JsonType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    webhook_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    """SHA-256 (hex) of the token in this integration's public webhook path."""
    webhook_token_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The token itself, sealed under the master key (to show the integration's URL)."""


class WebhookDelivery(TenantScoped, Base):
    """An accepted inbound webhook request: raw body kept for processing and replay,
    credentials (``Authorization``, signatures, token parameters) redacted. The request
    (URL, headers, body) carries personal data (senders' numbers, message text, addresses)
    and is sealed at rest (:class:`~cartera.db.base.SealedJson`, ``SealedBytes``)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_integration", "integration_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(SealedString("webhook_deliveries.url"))
    headers: Mapped[dict[str, str]] = mapped_column(SealedJson("webhook_deliveries.headers"),
                                                    default=dict)
    body: Mapped[bytes] = mapped_column(SealedBytes("webhook_deliveries.body"))
    signature_valid: Mapped[bool] = mapped_column(Boolean)
    rejection: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    events_new: Mapped[int] = mapped_column(Integer, default=0)
    events_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class WebhookEvent(TenantScoped, Base):
    """One provider event parsed from a delivery; unique per integration and event id."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("uq_webhook_events_integration_event", "integration_id", "event_id", unique=True),
        Index("ix_webhook_events_fragments_waiting", "received_at",
              postgresql_where=text("reason = 'fragment_waiting'"),
              sqlite_where=text("reason = 'fragment_waiting'")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(SealedJson("webhook_events.payload"))
    """The parsed event (a sender's number, a reply's text): sealed, never queried in SQL."""
    status: Mapped[str] = mapped_column(String(16), default="received")
    """received, then processed (a domain handler took it) or ignored (see ``reason``)."""
    reason: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookRejection(TenantScoped, Base):
    """Refused webhook requests of one integration for one reason: a counter with the first
    and last time seen. Bounded (reasons are codes) and without bodies."""

    __tablename__ = "webhook_rejections"

    integration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
