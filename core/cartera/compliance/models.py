"""A tenant's compliance settings (one row per tenant, absent = the defaults)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, TenantScoped, UtcDateTime, utcnow


class ComplianceSettings(TenantScoped, Base):
    """``unknown_country``: what the gate does for a country with no pack installed
    (``allow`` with a visible reason, or ``deny``). The creditor identity is what the packs
    check rendered content against (BR CDC art. 42-A, MX first contact, agency notices)."""

    __tablename__ = "compliance_settings"
    __table_args__ = (Index("uq_compliance_settings_tenant", "tenant_id", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    unknown_country: Mapped[str] = mapped_column(String(8), default="allow")
    creditor_name: Mapped[str | None] = mapped_column(String(300))
    creditor_tax_id: Mapped[str | None] = mapped_column(String(64))
    creditor_address: Mapped[str | None] = mapped_column(Text)
    agency_name: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ComplianceDecision(TenantScoped, Base):
    """Every decision of the contact gate, one row per reason it gave (what
    ``GET /v1/compliance/report`` counts): on the single send (``send``), each message the
    batch sender judges (``batch``), the strategy planner (``planner``) and dispatcher
    (``dispatch``). ``counted`` marks the decision's first reason row, so decisions are
    counted once; ``deferral_seconds`` is how far a deferral moved the contact (from the
    instant judged to the earliest lawful one). Written set-based: one INSERT per batch.
    No foreign keys, not even to the tenant (dropped by migration 0047): a decision is
    history, and each key would be one more check per row (a daily planner pass writes a
    row per planned contact)."""

    __tablename__ = "compliance_decisions"
    __table_args__ = (Index("ix_compliance_decisions_tenant_decided_at", "tenant_id",
                            "decided_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigId, nullable=False)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    path: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    counted: Mapped[bool] = mapped_column(Boolean)
    channel: Mapped[str] = mapped_column(String(16))
    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    subject_id: Mapped[int | None] = mapped_column(BigInteger)
    deferral_seconds: Mapped[int | None] = mapped_column(Integer)
