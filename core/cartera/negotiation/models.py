"""Tables of the negotiation domain: promises to pay and installment plans.

Amounts are integers in the currency's minor unit (``*_minor``); see :mod:`cartera.money`.
Statuses are kept current by :mod:`cartera.negotiation.status` (on every payment and
reversal of the debtor, and by a periodic job as the calendar moves); ``paid_minor`` is what
the last settlement counted toward the promise or plan.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    DebtorOwned,
    SealedString,
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    utcnow,
)

PROMISE_STATUSES = ("pending", "kept", "partly_kept", "broken", "cancelled")
ARRANGEMENT_STATUSES = ("active", "completed", "broken", "cancelled")


class Promise(DebtorOwned, Base):
    """A debtor's promise to pay ``amount`` by ``promised_date`` (a compromiso de pago).

    Kept when the debtor's payments not reversed, in the promise's currency, dated from
    ``created_on`` through ``promised_date``, add up to the amount; once the tenant's
    business day has passed ``promised_date`` without that, partly kept when some of it was
    paid in that window, else broken; cancelled by hand (final).
    """

    __tablename__ = "promises"
    __table_args__ = (
        # The periodic job: pending promises whose promised date has passed.
        Index("ix_promises_status_promised_date", "status", "promised_date"),
        # The segmentation feature (a GROUP BY debtor_id per tenant) and per-debtor settling.
        Index("ix_promises_tenant_debtor", "tenant_id", "debtor_id"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'kept', 'partly_kept', 'broken', 'cancelled')",
                        name="status_known"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    promised_date: Mapped[date] = mapped_column(Date)
    created_on: Mapped[date] = mapped_column(Date)
    """The tenant's business day when the promise was made: payments count from it."""
    channel: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(SealedString("promises.note"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_by: Mapped[str] = mapped_column(String(200))
    kept_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    broken_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(SealedString("promises.cancel_reason"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Arrangement(DebtorOwned, Base):
    """An installment plan (acuerdo / convenio de pagos): ``total`` in one currency, due in
    installments (:class:`Installment`).

    Completed when the debtor's payments not reversed in that currency dated from
    ``created_on`` reach the total; broken when an installment is more than the grace
    period past due and the payments dated up to the end of its grace period do not cover
    the installments due up to it; cancelled by hand (final).
    """

    __tablename__ = "arrangements"
    __table_args__ = (
        # The periodic job: active plans whose next grace deadline has passed.
        Index("ix_arrangements_status_next_deadline", "status", "next_deadline"),
        # The segmentation feature and per-debtor settling.
        Index("ix_arrangements_tenant_debtor", "tenant_id", "debtor_id"),
        CheckConstraint("total_minor > 0", name="total_positive"),
        CheckConstraint("status IN ('active', 'completed', 'broken', 'cancelled')",
                        name="status_known"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_on: Mapped[date] = mapped_column(Date)
    """The tenant's business day when the plan was made: payments count from it."""
    grace_days: Mapped[int] = mapped_column(Integer)
    """The grace period in force when the plan was made (its installments' deadlines)."""
    next_deadline: Mapped[date | None] = mapped_column(Date)
    """The earliest grace deadline not yet passed when the plan was last settled (NULL when
    the plan is no longer active): the periodic job looks again once it has passed."""
    note: Mapped[str | None] = mapped_column(SealedString("arrangements.note"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_by: Mapped[str] = mapped_column(String(200))
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    broken_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(SealedString("arrangements.cancel_reason"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Installment(TenantScoped, Base):
    """One installment of an arrangement, with the running total due through it."""

    __tablename__ = "arrangement_installments"
    __table_args__ = (
        UniqueConstraint("arrangement_id", "number"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    arrangement_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("arrangements.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    """1, 2, ... in due-date order."""
    due_date: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    cumulative_minor: Mapped[int] = mapped_column(BigInteger)
    """This installment plus every earlier one: what must be paid by ``deadline``."""
    deadline: Mapped[date] = mapped_column(Date)
    """``due_date`` plus the plan's grace days: the last day a payment counts toward it."""
