"""The job table: what the API shows of any long or retried work."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, JsonType, TenantScoped, UtcDateTime, utcnow

JobStatus = Literal["queued", "running", "succeeded", "failed"]
JOB_STATUSES = get_args(JobStatus)


class Job(TenantScoped, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_tenant_kind", "tenant_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    progress_done: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    run_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Not before this instant (deferred contacts, in-process retries with backoff)."""
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
