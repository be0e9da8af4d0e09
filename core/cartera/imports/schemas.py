"""API shapes of imports."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

from cartera.imports.models import ImportStatus


class ImportOut(Struct):
    id: int
    status: ImportStatus
    """queued (also between attempts after a transient failure, with its `error`), running,
    succeeded or failed; always what its job says."""
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
    encoding: str | None
    """What the file was read as (given or detected at upload)."""
    delimiter: str | None
    """CSV: the cell separator it was read with."""
    decimal_mark: str | None
    """CSV: the decimal mark of its amounts."""
    created_at: datetime
    finished_at: datetime | None
    file_deleted_at: datetime | None
    """When the uploaded file was deleted (at the end, or after the retention period)."""


class ImportRowErrorOut(Struct):
    id: int
    line: int
    """1-based line of the file (for CSV, the header is line 1)."""
    field: str | None
    code: str | None
    reason: str
    severity: str
    """`error`: the row was skipped; `warning`: only this field was, the row was kept."""
