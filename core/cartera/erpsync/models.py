"""ERP sync state: settings, runs, cursors, row errors, seen items, the posting outbox.

* ``erp_sync_settings``: per ERP integration, the schedule (every N minutes, or at local
  times in the tenant's zone), the page size, and whether payments are posted back.
* ``erp_sync_runs``: one sync run (on demand or scheduled) and what it did.
* ``erp_sync_cursors``: per integration and stream, where the next pull continues; written
  in the transaction that applies a page, so a crash resumes at the first page not applied.
* ``erp_sync_row_errors``: the rows of a run that were not applied (the connector's row
  errors and the import pipeline's), per stream and ERP key.
* ``erp_sync_seen``: the open items an integration has delivered and the full pull that
  last saw each, so that an item a later full pull no longer returns closes in Cartera.
* ``erp_postings``: the write-back outbox, one row per (integration, payment).
* ``erp_item_payments``: the amounts the ERP's paid-to-date of an item holds that Cartera
  knows as payments of its own (posted by the outbox, or pulled from the ERP's payments
  stream), so the sync does not count them twice (see :mod:`cartera.erpsync.sync`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import (
    Base,
    BigId,
    JsonType,
    SealedString,
    TenantScoped,
    UtcDateTime,
    utcnow,
)

RUN_STATUSES = ("queued", "running", "retrying", "succeeded", "failed")
POSTING_STATUSES = ("pending", "posted", "rejected")


def _integration_fk() -> Any:
    return ForeignKey("integrations.id", ondelete="CASCADE")


class ErpSyncSettings(TenantScoped, Base):
    __tablename__ = "erp_sync_settings"

    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk(), primary_key=True)
    every_minutes: Mapped[int | None] = mapped_column(Integer)
    at_times: Mapped[list[str]] = mapped_column(JsonType, default=list)
    """Local times (``HH:MM``, the tenant's zone) to sync at, besides or instead of every N."""
    page_size: Mapped[int] = mapped_column(Integer, default=1000)
    write_back: Mapped[bool] = mapped_column(Boolean, default=False)
    write_back_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Payments recorded from this instant on are posted (earlier ones are history)."""
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ErpSyncRun(TenantScoped, Base):
    __tablename__ = "erp_sync_runs"
    __table_args__ = (Index("ix_erp_sync_runs_integration", "integration_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk())
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id", ondelete="SET NULL"))
    trigger: Mapped[str] = mapped_column(String(16))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    """Asked to pull everything again (not only changes since the last run)."""
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rows_in: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_changed: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_closed: Mapped[int] = mapped_column(BigInteger, default=0)
    payments_matched: Mapped[int] = mapped_column(BigInteger, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000))
    cursors: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ErpSyncCursor(TenantScoped, Base):
    __tablename__ = "erp_sync_cursors"

    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk(), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    resting: Mapped[bool] = mapped_column(Boolean, default=True)
    """``True``: ``cursor`` is a delta cursor (or ``None``: nothing pulled yet), where the
    next run starts. ``False``: a pull is under way and ``cursor`` is its next page."""
    full_run_id: Mapped[int | None] = mapped_column(BigInteger)
    """The run that began the full pull under way (``None`` in a delta pull)."""
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    """The run that last pulled this stream to its end."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ErpSyncRowError(TenantScoped, Base):
    __tablename__ = "erp_sync_row_errors"
    __table_args__ = (Index("ix_erp_sync_row_errors_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("erp_sync_runs.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(16))
    row_key: Mapped[str | None] = mapped_column(String(200))
    field: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(SealedString("erp_sync_row_errors.reason"))
    """Why (it may quote the rejected value): sealed, never queried in SQL."""
    severity: Mapped[str] = mapped_column(String(16), default="error")


class ErpSyncSeen(Base):
    __tablename__ = "erp_sync_seen"

    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk(), primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger)


class ErpPosting(TenantScoped, Base):
    __tablename__ = "erp_postings"
    __table_args__ = (
        Index("uq_erp_postings_integration_payment", "integration_id", "payment_id",
              unique=True),
        Index("ix_erp_postings_due", "status", "next_attempt_at"),
        Index("ix_erp_postings_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk())
    payment_id: Mapped[int] = mapped_column(BigId, ForeignKey("payments.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    erp_document_id: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(SealedString("erp_postings.message"))
    """``rejected``: the ERP's message. ``pending``: why the last attempt failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the outbox last claimed it to post (``None``: not tried yet)."""
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ErpItemPayment(Base):
    __tablename__ = "erp_item_payments"

    integration_id: Mapped[int] = mapped_column(BigId, _integration_fk(), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    """``posted:<posting id>`` or ``pulled:<ERP payment external id>``."""
    external_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    """The open item (obligation ``external_ref``)."""
    amount_minor: Mapped[int] = mapped_column(BigInteger)
