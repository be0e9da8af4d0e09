"""Uploaded import files hold debtors' personal data: they are deleted when their import
ends (succeeded, or failed for good), or ``CARTERA_IMPORT_RETENTION_DAYS`` days after it.

:func:`delete_upload` runs at the end of an import when there is no retention period;
:func:`purge_expired_uploads` (about once a minute, see :mod:`cartera.imports.jobs`) deletes
the files of every import that ended longer ago than the retention period, and any file an
interrupted end left behind. An import whose file is deleted records when
(``file_deleted_at``) and is never read again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.imports.models import ImportRun

log = logging.getLogger("cartera.imports")

ENDED = ("succeeded", "failed")
PURGE_BATCH = 1000


async def delete_upload(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                        path: str) -> None:
    """Delete the file, then record it (a crash in between leaves it to the purge)."""
    await anyio.to_thread.run_sync(lambda: Path(path).unlink(missing_ok=True))
    async with sessionmaker() as session, session.begin():
        await session.execute(update(ImportRun).where(ImportRun.id == import_id)
                              .values(file_deleted_at=clock.now()))


async def purge_expired_uploads(sessionmaker: async_sessionmaker[AsyncSession],
                                retention_days: int) -> int:
    """Delete the files of imports that ended more than ``retention_days`` ago, over every
    tenant; returns how many. Idempotent."""
    cutoff = clock.now() - timedelta(days=retention_days)
    async with sessionmaker() as session:
        due = (await session.execute(
            select(ImportRun.id, ImportRun.file_path)
            .where(ImportRun.file_deleted_at.is_(None), ImportRun.status.in_(ENDED),
                   ImportRun.finished_at <= cutoff)
            .order_by(ImportRun.id).limit(PURGE_BATCH))).all()
    for import_id, path in due:
        await delete_upload(sessionmaker, import_id, path)
    if due:
        log.info("deleted expired import uploads", extra={"count": len(due)})
    return len(due)
