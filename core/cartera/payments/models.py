"""Payment and allocation tables."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, get_args

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, DebtorOwned, UtcDateTime, debtor_fk, utcnow

PaymentStatus = Literal["applied", "reversed"]
PAYMENT_STATUSES = get_args(PaymentStatus)


class Payment(DebtorOwned, Base):
    """Money received from a debtor. Reversal keeps the row and releases its allocations."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("uq_payments_tenant_external_ref", "tenant_id", "external_ref", unique=True),
        Index("ix_payments_debtor_currency", "debtor_id", "currency"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
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
    reversal_reason: Mapped[str | None] = mapped_column(String(500))
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
