"""Templates, interactions (every contact and reply) with their status timeline, and the
tenant's extra opt-out keywords."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    JsonType,
    SealedJson,
    SealedString,
    SealedText,
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    utcnow,
)


class MessageTemplate(TenantScoped, Base):
    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "code", "channel", "locale",
                                       name="uq_message_templates_tenant_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    whatsapp: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """``{"name", "language", "parameters": [{"type", "value"}], "buttons": [...]}``."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Interaction(DebtorOwned, Base):
    """One contact attempt or reply: outbound message, call, visit, letter, or inbound.

    Its tenant is checked through its debtor (``(tenant_id, debtor_id)`` references
    ``debtors (tenant_id, id)``, migration 0048): no reference to ``tenants`` of its own, one
    check less per enqueued message. A reply from an unknown sender has no debtor: its
    ``tenant_id``, the receiving integration's, is then checked by no reference (nothing
    deletes a tenant)."""

    __tablename__ = "interactions"
    __table_args__ = (
        debtor_fk(),
        UniqueConstraint("id", "tenant_id"),  # target of the events' (interaction_id, tenant_id)
        Index("ix_interactions_debtor", "debtor_id", "id"),
        Index("ix_interactions_provider_message", "integration_id", "provider_message_id",
              postgresql_where=text("provider_message_id IS NOT NULL"),
              sqlite_where=text("provider_message_id IS NOT NULL")),
        Index("ix_interactions_sendable", "integration_id", "status", "id"),
        Index("uq_interactions_action", "action_id", unique=True,
              postgresql_where=text("action_id IS NOT NULL"),
              sqlite_where=text("action_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int | None] = mapped_column(BigId)
    direction: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    integration_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="SET NULL"))
    template_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("message_templates.id", ondelete="SET NULL"))
    contact_point_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contact_points.id", ondelete="SET NULL"))
    address: Mapped[str | None] = mapped_column(SealedText("interactions.address"))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    obligation_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    variables: Mapped[dict[str, Any]] = mapped_column(SealedJson("interactions.variables"),
                                                      default=dict)
    """Extra template variables (a payment link's URL, a self-service link): sealed."""
    content: Mapped[dict[str, Any] | None] = mapped_column(SealedJson("interactions.content"))
    """The rendered message (text, subject, HTML, a reply's text): sealed, never in SQL."""
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """The contact gate's decision and its reason codes."""
    trigger: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    action_id: Mapped[int | None] = mapped_column(BigId)
    """The strategy action that queued it (``trigger.action_id``): at most one interaction
    per action (a unique index), whatever runs at the same time. No foreign key: actions
    belong to a domain above messaging."""
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Not sent before this instant: a deferral by the gate, or the next retry's time."""
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Provider attempts so far; also the token of the current ``sending`` claim."""
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """While ``sending``: the claim's lease; an expired one is taken again (a crash)."""
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(
        SealedString("interactions.failure_reason"))
    """The provider's or the job's words (they may quote the address): sealed."""
    cost_minor: Mapped[int | None] = mapped_column(BigInteger)
    cost_currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class InteractionEvent(TenantScoped, Base):
    """One step of an interaction's status timeline (kept even when it arrived late).

    ``(interaction_id, tenant_id)`` references ``interactions (id, tenant_id)`` (migration
    0048): an event is of its interaction's tenant, checked with one reference, not two."""

    __tablename__ = "interaction_events"
    __table_args__ = (
        ForeignKeyConstraint(["interaction_id", "tenant_id"],
                             ["interactions.id", "interactions.tenant_id"], ondelete="CASCADE"),
        Index("ix_interaction_events_interaction", "interaction_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId, nullable=False)
    interaction_id: Mapped[int] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    """When Cartera recorded the event."""
    occurred_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the provider says it happened (provider events only); the timeline is ordered
    by it, falling back to ``at``."""
    source: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(SealedJson("interaction_events.detail"),
                                                   default=dict)
    """What the provider or the job said (error texts echoing an address, prices, parts):
    sealed, never queried in SQL."""


class OptOutKeyword(TenantScoped, Base):
    __tablename__ = "opt_out_keywords"
    __table_args__ = (UniqueConstraint("tenant_id", "keyword",
                                       name="uq_opt_out_keywords_tenant_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    keyword: Mapped[str] = mapped_column(String(64))


class MessagePartId(TenantScoped, Base):
    """The provider's id of one part of a long SMS we sent, so a receipt that names only
    its part (no outbox id: Vonage gives each part its own ``message-id``) finds its
    message. Written with the ``sent`` outcome, for messages sent in several parts."""

    __tablename__ = "message_part_ids"
    __table_args__ = (
        Index("ix_message_part_ids_provider", "integration_id", "provider_message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    interaction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("interactions.id", ondelete="CASCADE"))
    provider_message_id: Mapped[str] = mapped_column(String(255))
    part_index: Mapped[int] = mapped_column(Integer)
    part_count: Mapped[int] = mapped_column(Integer)
