"""Tables of the portfolio domain.

Amounts are integers in the currency's minor unit (``*_minor``); see :mod:`cartera.money`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
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
    SealedText,
    TenantScoped,
    UtcDateTime,
    debtor_fk,
    utcnow,
)

OBLIGATION_KINDS = (
    "invoice",
    "installment",
    "loan",
    "credit_card_balance",
    "fee",
    "credit_note",
    "debit_note",
)
OBLIGATION_STATUSES = ("open", "paid", "disputed", "written_off", "cancelled")
CONTACT_KINDS = ("phone", "email", "whatsapp", "address")
CONSENT_STATES = ("granted", "unknown", "revoked")
CONTACT_ORIGINS = ("debtor_provided", "found")
RELATED_ROLES = ("guarantor", "co_debtor", "reference")
DEBTOR_KINDS = ("person", "company")


class Portfolio(TenantScoped, Base):
    """A named portfolio (cartera) that groups obligations."""

    __tablename__ = "portfolios"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Debtor(TenantScoped, Base):
    """A person or company that owes the tenant money."""

    __tablename__ = "debtors"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_ref"),
        UniqueConstraint("tenant_id", "id"),  # target of the (tenant_id, debtor_id) references
        Index("ix_debtors_tenant_zone_id", "tenant_id", "zone", "id"),
        Index("ix_debtors_tenant_national_id", "tenant_id", "national_id"),
        Index("ix_debtors_tenant_name", "tenant_id", "name"),  # q= by the whole name (0043)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="person")
    name: Mapped[str] = mapped_column(SealedText("debtors.name"))
    national_id: Mapped[str | None] = mapped_column(SealedText("debtors.national_id"))
    country: Mapped[str] = mapped_column(String(2))
    subdivision: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(128))
    risk_score: Mapped[int | None] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DebtorTag(DebtorOwned, Base):
    """One tag on a debtor; a table (not a JSON array) so filters are plain indexed SQL."""

    __tablename__ = "debtor_tags"
    __table_args__ = (Index("ix_debtor_tags_tenant_tag", "tenant_id", "tag"), debtor_fk())

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class DebtorDoc(DebtorOwned, Base):
    """A debtor's JSON as the debtor list answers it (personal data sealed, as stored),
    kept by PostgreSQL so that a page of the list is read, not built
    (:mod:`cartera.portfolio.documents`).

    Triggers of migration 0051 give every debtor a row when it is inserted and, in the same
    statement as any change to the debtor, its contact points, related parties or tags, bump
    ``stamp`` (a count of changes) and clear ``body``. A row whose body is NULL is answered
    from the tables. SQLite keeps no rows (no triggers)."""

    __tablename__ = "debtor_docs"
    __table_args__ = (
        Index("ix_debtor_docs_unbuilt", "debtor_id", postgresql_where=text("body IS NULL"),
              sqlite_where=text("body IS NULL")),
        debtor_fk(),
    )

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger, default=1, server_default=text("1"))
    body: Mapped[str | None] = mapped_column(Text)


class ContactPoint(TenantScoped, Base):
    """A way to reach a debtor, with its consent state and where we got it from."""

    __tablename__ = "contact_points"
    __table_args__ = (
        Index("ix_contact_points_debtor", "debtor_id"),
        Index("ix_contact_points_tenant_value", "tenant_id", "value"),
        UniqueConstraint("debtor_id", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId, ForeignKey("debtors.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(SealedText("contact_points.value"))
    label: Mapped[str | None] = mapped_column(String(64))
    consent: Mapped[str] = mapped_column(String(16), default="unknown")
    opted_out_channels: Mapped[list[str]] = mapped_column(JsonType, default=list)
    suppressions: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict,
                                                         server_default=text("'{}'"))
    """Channels the provider says this contact point cannot receive any more, each with
    ``{"reason", "code", "interaction_id", "at"}`` (see ``cartera.messaging.suppression``)."""
    origin: Mapped[str] = mapped_column(String(32), default="debtor_provided")
    preferred: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class RelatedParty(TenantScoped, Base):
    """A guarantor, co-debtor or reference of a debtor."""

    __tablename__ = "related_parties"
    __table_args__ = (Index("ix_related_parties_debtor", "debtor_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId, ForeignKey("debtors.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(SealedText("related_parties.name"))
    national_id: Mapped[str | None] = mapped_column(SealedText("related_parties.national_id"))
    phone: Mapped[str | None] = mapped_column(SealedText("related_parties.phone"))
    email: Mapped[str | None] = mapped_column(SealedText("related_parties.email"))
    related_debtor_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("debtors.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Obligation(DebtorOwned, Base):
    """Something the debtor owes (or, for a credit note, a credit in their favour).

    ``outstanding_minor`` is what is still unpaid; for a credit note it is the part of the
    credit not yet applied to other obligations.
    """

    __tablename__ = "obligations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_ref"),
        Index("ix_obligations_debtor_currency", "debtor_id", "currency"),
        Index("ix_obligations_tenant_status_due", "tenant_id", "status", "due_date"),
        CheckConstraint("original_minor >= 0", name="original_not_negative"),
        CheckConstraint("outstanding_minor >= 0", name="outstanding_not_negative"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(128))
    debtor_id: Mapped[int] = mapped_column(BigId)
    portfolio_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("portfolios.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(32))
    product: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    original_minor: Mapped[int] = mapped_column(BigInteger)
    prior_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    """Paid before or outside Cartera (the creditor loaded a reduced outstanding amount)."""
    outstanding_minor: Mapped[int] = mapped_column(BigInteger)
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class DebtorBalance(DebtorOwned, Base):
    """Per-debtor, per-currency summary kept current by every write, in the same transaction.

    Days past due are derived at read time from ``oldest_unpaid_due_date``. ``overdue_minor``
    is exact as of ``as_of``; rows whose ``next_due_date`` has since passed are refreshed
    set-based before whole-portfolio reads (see ``balances.refresh_stale``).
    """

    __tablename__ = "debtor_balances"
    __table_args__ = (Index("ix_debtor_balances_tenant_currency", "tenant_id", "currency"),
                      Index("ix_debtor_balances_tenant_debtor", "tenant_id", "debtor_id",
                            postgresql_include=["currency", "oldest_unpaid_due_date",
                                                "last_payment_date", "open_count",
                                                "outstanding_minor", "overdue_minor"]),
                      debtor_fk())

    debtor_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    outstanding_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    unapplied_credit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    oldest_unpaid_due_date: Mapped[date | None] = mapped_column(Date)
    next_due_date: Mapped[date | None] = mapped_column(Date)
    last_payment_date: Mapped[date | None] = mapped_column(Date)
    as_of: Mapped[date] = mapped_column(Date)
