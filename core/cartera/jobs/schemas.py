"""API shape of a job."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct

from cartera.jobs.models import JobStatus


class JobOut(Struct):
    id: int
    kind: str
    status: JobStatus
    progress_done: int
    progress_total: int | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
