"""Audit entries: who changed what, when, through which client. Never updated or deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, SealedJson, TenantScoped, UtcDateTime, utcnow


class AuditEntry(TenantScoped, Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_resource", "tenant_id", "resource_type", "resource_id"),
                      Index("ix_audit_log_tenant_actor", "tenant_id", "actor", "id"),
                      Index("ix_audit_log_tenant_at", "tenant_id", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(SealedJson("audit_log.changes"),
                                                    default=dict)
    """What changed (names, national ids, contact values...): sealed, never queried in SQL."""
