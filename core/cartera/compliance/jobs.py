"""Retention of the gate's decision log.

About once a minute (``every_minute``) decisions older than
``CARTERA_COMPLIANCE_DECISION_RETENTION_DAYS`` (default three years; never less than the two
years Chile requires, 0 keeps them forever) are deleted in bounded batches, each committed on
its own, so a first purge of a large log never holds one long transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.compliance.decisions import purge_older_than
from cartera.db.base import utcnow
from cartera.jobs.registry import every_minute
from cartera.settings import get_settings

BATCH = 10_000
MAX_BATCHES = 20
"""Per minute at most ``BATCH * MAX_BATCHES`` rows go; the rest wait for the next minute."""


@every_minute
async def purge_old_decisions(sessionmaker: async_sessionmaker[AsyncSession],
                              runner: Any) -> None:
    days = get_settings().compliance_decision_retention_days
    if days <= 0:
        return
    cutoff = utcnow() - timedelta(days=days)
    for _ in range(MAX_BATCHES):
        async with sessionmaker() as session:
            gone = await purge_older_than(session, cutoff, BATCH)
            await session.commit()
        if gone < BATCH:
            return
