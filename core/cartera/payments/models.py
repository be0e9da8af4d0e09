"""Payment and allocation tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
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
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    utcnow,
)

PaymentStatus = Literal["applied", "held", "reversed"]
"""``held``: received but not matched to the debt (an amount or currency a payment link did
not ask for): kept as unapplied credit until a person resolves its reconciliation
exception; allocation leaves it alone."""
PAYMENT_STATUSES = get_args(PaymentStatus)


class Payment(DebtorOwned, Base):
    """Money received from a debtor. Reversal keeps the row and releases its allocations."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("uq_payments_tenant_external_ref", "tenant_id", "external_ref", unique=True),
        Index("ix_payments_debtor_currency", "debtor_id", "currency"),
        # Exactly one Cartera payment per provider-side payment (reconciliation).
        Index("uq_payments_provider_payment", "tenant_id", "provider", "provider_payment_id",
              unique=True),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor",
                        name="refund_within_amount"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_ref: Mapped[str | None] = mapped_column(String(128))
    debtor_id: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    unapplied_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="applied")
    reversed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reversal_reason: Mapped[str | None] = mapped_column(
        SealedString("payments.reversal_reason"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Refunded so far (a partial refund): what is applied is ``amount - refunded``; a full
    refund reverses the payment."""
    provider: Mapped[str | None] = mapped_column(String(100))
    """The payment provider's name for a payment reconciled from one (``mercadopago``)."""
    provider_payment_id: Mapped[str | None] = mapped_column(String(64))
    integration_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="SET NULL"))
    payment_link_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("payment_links.id", ondelete="SET NULL"))
    disputed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Since when the payer disputes it (a chargeback or mediation open at the provider). A
    disputed payment stays applied; lost (charged back) it is reversed and keeps the mark;
    won (approved again) the mark is cleared."""


LINK_STATUSES = ("open", "paid", "expired", "cancelled")
OPEN_LINK = "status = 'open'"


class PaymentLink(DebtorOwned, Base):
    """A hosted checkout link for one debtor, made through a payment integration.

    One open link per (debtor, purpose): the partial unique index is what makes concurrent
    requests reuse one link instead of multiplying them. The row is reserved (open, no
    ``url``) before the provider is called, outside any transaction, with the stable
    ``provider_idempotency_key``; a retry after a failed call reuses the row and the key."""

    __tablename__ = "payment_links"
    __table_args__ = (
        Index("uq_payment_links_open_purpose", "tenant_id", "debtor_id", "purpose",
              unique=True, postgresql_where=text(OPEN_LINK), sqlite_where=text(OPEN_LINK)),
        Index("ix_payment_links_tenant_debtor", "tenant_id", "debtor_id", "id"),
        Index("ix_payment_links_open_expiry", "expires_at",
              postgresql_where=text(OPEN_LINK), sqlite_where=text(OPEN_LINK)),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("status IN ('open', 'paid', 'expired', 'cancelled')",
                        name="status_known"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    integration_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(64))
    amount_kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    obligation_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    description: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    provider_idempotency_key: Mapped[str] = mapped_column(String(64))
    provider_link_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(String(2048))
    provider_payment_id: Mapped[str | None] = mapped_column(String(64))
    """The last provider-side payment seen against the link (still pending, say): the
    daily recovery re-fetches it in case its webhook was lost."""
    payment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("payments.id", ondelete="SET NULL", use_alter=True))
    checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    calling_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """While a request is calling the provider for this reserved link: the others wait for
    its URL instead of calling too (a second call with the same key would carry another
    body); after this instant the call counts as abandoned and the next request makes it."""
    status_reason: Mapped[str | None] = mapped_column(
        SealedString("payment_links.status_reason"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


EXCEPTION_KINDS = ("unknown_payment", "unknown_link", "amount_mismatch", "currency_mismatch",
                   "disputed", "reversed_unapplied")


class ReconciliationException(TenantScoped, Base):
    """Something a provider reported that could not be applied as it stands, for a person.

    One per (provider, provider payment id, kind): a redelivered notification finds it."""

    __tablename__ = "reconciliation_exceptions"
    __table_args__ = (
        Index("uq_reconciliation_exceptions_key", "tenant_id", "provider",
              "provider_payment_id", "kind", unique=True),
        Index("ix_reconciliation_exceptions_tenant_status", "tenant_id", "status", "id"),
        CheckConstraint("status IN ('open', 'resolved')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("integrations.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(100))
    provider_payment_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500))
    debtor_id: Mapped[int | None] = mapped_column(BigId)
    payment_link_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("payment_links.id", ondelete="SET NULL"))
    payment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("payments.id", ondelete="SET NULL"))
    provider_view: Mapped[dict[str, Any]] = mapped_column(
        SealedJson("reconciliation_exceptions.provider_view"), default=dict)
    """What the provider's API said about the payment when the exception was raised (the
    payer's name, e-mail, document): sealed, never queried in SQL."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(SealedString("reconciliation_exceptions.note"))
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Allocation(DebtorOwned, Base):
    """Part of a credit (a payment or a credit note) applied to one obligation.

    ``explicit`` rows were chosen by the payer and are kept; the others are recomputed,
    oldest due first, whenever the debtor's balance in that currency changes.
    """

    __tablename__ = "allocations"
    __table_args__ = (
        Index("ix_allocations_obligation", "obligation_id"),
        Index("ix_allocations_payment", "payment_id"),
        Index("ix_allocations_credit_note", "credit_note_id"),
        Index("ix_allocations_debtor_currency", "debtor_id", "currency"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    obligation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("obligations.id", ondelete="CASCADE")
    )
    payment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("payments.id", ondelete="CASCADE")
    )
    credit_note_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("obligations.id", ondelete="CASCADE")
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    explicit: Mapped[bool] = mapped_column(Boolean, default=False)
