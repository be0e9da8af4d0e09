"""Debtors' self-service access links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, DebtorOwned, UtcDateTime, debtor_fk, utcnow


class SelfServiceLink(DebtorOwned, Base):
    """A debtor-facing access link (``/self-service/...``): one debtor of one tenant, until
    ``expires_at`` or revocation. Only the SHA-256 of its random token is stored (like
    integrations' webhook tokens): the token itself is shown once, when it is made."""

    __tablename__ = "self_service_links"
    __table_args__ = (
        Index("ix_self_service_links_tenant_debtor", "tenant_id", "debtor_id", "id"),
        debtor_fk(),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debtor_id: Mapped[int] = mapped_column(BigId)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
