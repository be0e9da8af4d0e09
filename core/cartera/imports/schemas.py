"""API shapes of imports."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct


class ImportOut(Struct):
    id: int
    status: str
    """queued, running, succeeded or failed."""
    format: str
    filename: str | None
    size_bytes: int
    job_id: int | None
    rows_total: int
    """Rows in the file (known once the job starts)."""
    rows_processed: int
    rows_applied: int
    rows_failed: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ImportRowErrorOut(Struct):
    id: int
    line: int
    """1-based line of the file (for CSV, the header is line 1)."""
    field: str | None
    code: str | None
    reason: str
