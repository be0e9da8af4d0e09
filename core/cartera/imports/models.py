"""Import runs, the rows they rejected, and the staging tables the pipeline loads into.

The staging tables hold one chunk of one import at a time (keyed by ``import_id``) and are
emptied after every chunk; on PostgreSQL they are ``UNLOGGED`` (see migration 0002), since
a crash only means the chunk is staged again. The personal data they stage (the debtor's
name and national id, contact values) is already sealed, as the tables it goes to hold it
(:class:`~cartera.db.base.SealedText`; sealed in Python when a chunk is parsed), so the
set-based upserts copy sealed text and compare it as it is. ``import_touched_debtors``
lists the debtors whose obligations or payments an import actually changed, so the final
rebalance covers exactly them even when the job is retried after a crash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
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

ImportStatus = Literal["queued", "running", "succeeded", "failed"]
IMPORT_STATUSES = get_args(ImportStatus)


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
    error: Mapped[str | None] = mapped_column(String(1000))
    """Why the whole import failed (an unreadable file); row problems go to the row errors."""
    encoding: Mapped[str | None] = mapped_column(String(16))
    """What the file was read as (given or detected at upload); ``None``: UTF-8."""
    delimiter: Mapped[str | None] = mapped_column(String(1))
    """CSV: the cell separator (given or detected at upload); ``None``: ``,``."""
    decimal_mark: Mapped[str | None] = mapped_column(String(1))
    """CSV: the decimal mark of amounts; ``None``: ``.``."""
    file_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the uploaded file was deleted (see :mod:`cartera.imports.retention`)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ImportRowError(TenantScoped, Base):
    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_import_line", "import_id", "line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_id: Mapped[int] = mapped_column(BigId, ForeignKey("imports.id", ondelete="CASCADE"))
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(128))
    code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(SealedString("import_row_errors.reason"))
    """Why (it may quote the rejected value: a phone, an e-mail): sealed, never in SQL."""
    severity: Mapped[str] = mapped_column(String(16), default="error", server_default="error")
    """``error``: the row was rejected; ``warning``: one optional field was, the row kept."""


stage_debtors = Table(
    "import_stage_debtors", Base.metadata,
    Column("import_id", BigInteger, nullable=False),
    Column("line", Integer, nullable=False),
    Column("external_ref", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", Text, nullable=False),  # sealed (SealedText("debtors.name"))
    Column("national_id", Text),  # sealed
    Column("country", String(2), nullable=False),
    Column("subdivision", String(16)),
    Column("timezone", String(64), nullable=False),
    Column("zone", String(128)),
    Column("risk_score", Integer),
    Column("attributes", JsonType, nullable=False),
    Index("ix_import_stage_debtors_ref", "import_id", "external_ref"),
)

stage_tags = Table(
    "import_stage_tags", Base.metadata,
    Column("import_id", BigInteger, nullable=False),
    Column("external_ref", String(128), nullable=False),
    Column("tag", String(64), nullable=False),
    Index("ix_import_stage_tags_ref", "import_id", "external_ref", "tag"),
)

stage_contacts = Table(
    "import_stage_contacts", Base.metadata,
    Column("import_id", BigInteger, nullable=False),
    Column("external_ref", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),  # sealed (contact_points.value)
    Column("label", String(64)),
    Column("consent", String(16), nullable=False),
    Column("opted_out_channels", JsonType, nullable=False),
    Column("origin", String(32), nullable=False),
    Column("preferred", Boolean, nullable=False),
)

stage_obligations = Table(
    "import_stage_obligations", Base.metadata,
    Column("import_id", BigInteger, nullable=False),
    Column("line", Integer, nullable=False),
    Column("external_ref", String(128), nullable=False),
    Column("debtor_external_ref", String(128), nullable=False),
    Column("portfolio_code", String(64)),
    Column("kind", String(32), nullable=False),
    Column("product", String(64)),
    Column("currency", String(3), nullable=False),
    Column("original_minor", BigInteger, nullable=False),
    Column("prior_paid_minor", BigInteger, nullable=False),
    Column("issue_date", Date),
    Column("due_date", Date, nullable=False),
    Column("status", String(16), nullable=False),
)

stage_payments = Table(
    "import_stage_payments", Base.metadata,
    Column("import_id", BigInteger, nullable=False),
    Column("line", Integer, nullable=False),
    Column("external_ref", String(128), nullable=False),
    Column("debtor_external_ref", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("paid_on", Date, nullable=False),
    Column("method", String(32)),
    Column("reference", String(200)),
)

stage_refs = Table(
    "import_stage_refs", Base.metadata,
    Column("import_id", BigInteger, primary_key=True),
    Column("external_ref", String(128), primary_key=True),
    Column("debtor_id", BigInteger),  # NULL until the debtor exists
    Column("existed", Boolean, nullable=False),  # the debtor existed before this chunk
    Column("first_line", Integer),  # the chunk's first line defining the debtor, if any
)

touched_debtors = Table(
    "import_touched_debtors", Base.metadata,
    Column("import_id", BigInteger, primary_key=True),
    Column("debtor_id", BigInteger, primary_key=True),
)

STAGING_TABLES = (stage_debtors, stage_tags, stage_contacts, stage_obligations, stage_payments,
                  stage_refs)
