"""A tenant's compliance settings (one row per tenant, absent = the defaults)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
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
