"""Import runs and the rows they rejected."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, TenantScoped, UtcDateTime, utcnow


class ImportRun(TenantScoped, Base):
    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str | None] = mapped_column(String(300))
    file_path: Mapped[str] = mapped_column(String(1000))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ImportRowError(TenantScoped, Base):
    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_import_line", "import_id", "line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_id: Mapped[int] = mapped_column(BigId, ForeignKey("imports.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))
