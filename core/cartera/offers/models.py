"""Tables of offers: a tenant's offer policy and the offers made to debtors.

Amounts are integers in the currency's minor unit (``*_minor``); see :mod:`cartera.money`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    JsonType,
    SealedString,
    UtcDateTime,
    debtor_fk,
    utcnow,
)

OFFER_KINDS = ("discount", "settlement", "installments")
LIVE = "status IN ('pending_approval', 'open', 'accepted')"
OFFER_STATUSES = ("pending_approval", "open", "accepted", "applied", "expired", "cancelled")


class OfferPolicy(Base):
    """A tenant's offer policy (one row per tenant; absent means the default policy of
    :mod:`cartera.offers.policy`): ``rules`` as the API takes them."""

    __tablename__ = "offer_policies"

    tenant_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    max_validity_days: Mapped[int] = mapped_column(Integer, default=30)
    max_promise_horizon_days: Mapped[int] = mapped_column(Integer, default=30)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Offer(DebtorOwned, Base):
    """An offer to a debtor: pay ``amount_minor`` (the covered obligations' outstanding
    ``covered_minor`` less ``discount_minor``) by ``expires_at``.

    ``pending_approval`` when the discount is above what the requesting client's role may
    grant alone; ``open`` once within policy or approved by another actor; ``accepted``
    once the debtor accepted it (self-service); ``applied`` once payments not reversed made
    after it was created add up to ``amount_minor`` before it expired: the discount is then
    a credit note (``credit_note_id``) on the covered obligations."""

    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_tenant_debtor_status", "tenant_id", "debtor_id", "status"),
        Index("ix_offers_status_expires", "status", "expires_at"),
        # One live offer per debtor and currency: a second would count the same payments.
        Index("uq_offers_live", "tenant_id", "debtor_id", "currency", unique=True,
              postgresql_where=text(LIVE), sqlite_where=text(LIVE)),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("discount_minor >= 0", name="discount_not_negative"),
        CheckConstraint("status IN ('pending_approval', 'open', 'accepted', 'applied', "
                        "'expired', 'cancelled')", name="status_known"),
        CheckConstraint("kind IN ('discount', 'settlement', 'installments')",
                        name="kind_known"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    obligation_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    covered_minor: Mapped[int] = mapped_column(BigInteger)
    lawful_minor: Mapped[int] = mapped_column(BigInteger)
    """``covered_minor`` less the charges the country pack says may not be collected."""
    discount_minor: Mapped[int] = mapped_column(BigInteger)
    discount_bps: Mapped[int] = mapped_column(Integer)
    """The discount in basis points of ``covered_minor`` (1000 = 10 %), rounded up."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    installments: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    """For an installment proposal: ``[{"due_date": "YYYY-MM-DD", "amount": "10.00"}]``."""
    days_past_due: Mapped[int] = mapped_column(Integer)
    segment_id: Mapped[int | None] = mapped_column(BigId)
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    requested_by: Mapped[str] = mapped_column(String(200))
    requester_limit_bps: Mapped[int] = mapped_column(Integer)
    approval_limit_bps: Mapped[int] = mapped_column(Integer)
    approved_by: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    accepted_by: Mapped[str | None] = mapped_column(String(200))
    accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    arrangement_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("arrangements.id", ondelete="SET NULL"))
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    credit_note_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("obligations.id", ondelete="SET NULL"))
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(SealedString("offers.note"))
    created_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

