"""API shapes of the ERP sync: settings, runs, row errors, postings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Struct

LocalTime = Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                        description="HH:MM in the tenant's time zone")]


class SyncSettingsIn(Struct, forbid_unknown_fields=True):
    """How an ERP integration syncs. ``every_minutes`` and ``at_times`` (local times in the
    tenant's zone) schedule runs; both empty: on demand only. ``write_back``: post the
    payments recorded in Cartera from now on to the ERP."""

    every_minutes: Annotated[int, msgspec.Meta(ge=5, le=1440)] | None = None
    at_times: Annotated[list[LocalTime], msgspec.Meta(max_length=48)] = []
    page_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    write_back: bool = False


class SyncSettingsOut(Struct):
    integration_id: int
    every_minutes: int | None
    at_times: list[str]
    page_size: int
    write_back: bool
    write_back_since: datetime | None
    next_run_at: datetime | None


class SyncRequest(Struct, forbid_unknown_fields=True):
    """``full``: pull everything again (items the ERP no longer has are then closed),
    instead of the changes since the last run."""

    full: bool = False


class SyncRunOut(Struct):
    id: int
    integration_id: int
    job_id: int | None
    trigger: str
    """``manual`` (POST .../sync) or ``schedule``."""
    full: bool
    status: str
    """``queued``, ``running``, ``retrying`` (a fault; it runs again with backoff and
    resumes at the cursors), ``succeeded`` or ``failed``."""
    rows_in: int
    rows_changed: int
    rows_failed: int
    rows_closed: int
    payments_matched: int
    """ERP payments recognised as payments Cartera posted (not imported again)."""
    pages: int
    error: str | None
    cursors: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SyncRowErrorOut(Struct):
    id: int
    sync_id: int
    stream: str
    row_key: str | None
    field: str | None
    code: str
    reason: str
    severity: str


class PostingOut(Struct):
    id: int
    integration_id: int
    payment_id: int
    status: str
    """``pending``, ``posted`` or ``rejected``."""
    erp_document_id: str | None
    message: str | None
    """``rejected``: the ERP's message; ``pending``: why the last attempt failed, if any."""
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    posted_at: datetime | None
    last_attempt_at: datetime | None = None
    """When the outbox last tried to post it (``None``: not tried yet)."""
