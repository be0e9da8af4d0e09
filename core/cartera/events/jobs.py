"""Periodic delivery and retention of outbound events.

About once a minute (``every_minute``: procrastinate's maintenance task on PostgreSQL, the
in-process runner on SQLite) a :class:`~cartera.events.delivery.DeliveryWorker` drains what
is due (new events, retries whose backoff passed, leases of crashed workers) for at most
:data:`DRAIN_SECONDS`, and events older than :data:`RETENTION` are deleted with their
deliveries and delivery log (attempts), :data:`PURGE_BATCH` events per transaction until
none is left or :data:`PURGE_SECONDS` passed. For delivery within a second instead of a
minute, run ``cartera events deliver`` (one or more).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.events.delivery import DeliveryWorker, purge
from cartera.jobs.registry import every_minute

RETENTION = timedelta(days=30)
DRAIN_SECONDS = 20.0
PURGE_BATCH = 10_000
PURGE_SECONDS = 20.0


@every_minute
async def deliver_due_events(sessionmaker: async_sessionmaker[AsyncSession],
                             runner: Any) -> None:
    """Idempotent: claims make a second caller at the same time take other rows."""
    async with DeliveryWorker(sessionmaker) as worker:
        await worker.drain(DRAIN_SECONDS)


@every_minute
async def purge_old_events(sessionmaker: async_sessionmaker[AsyncSession],
                           runner: Any) -> None:
    """Idempotent: a second caller deletes what the first has not yet (or nothing)."""
    deadline = time.monotonic() + PURGE_SECONDS
    while True:
        async with sessionmaker() as session:
            deleted = await purge(session, RETENTION, limit=PURGE_BATCH)
            await session.commit()
        if deleted < PURGE_BATCH or time.monotonic() >= deadline:
            return
