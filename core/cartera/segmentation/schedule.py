"""Daily re-segmentation: every tenant with segments gets one run per local business day,
queued from 02:00 in the tenant's time zone (after nightly loads), besides on-demand runs."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.jobs.registry import every_minute
from cartera.segmentation.jobs import KIND
from cartera.segmentation.models import Segment, SegmentRun
from cartera.tenants.models import Tenant

DAILY_FROM_HOUR = 2


async def queue_run(session: AsyncSession, runner: Any, tenant_id: int,
                    as_of: date) -> SegmentRun:
    """Record a queued run and its job in the caller's transaction."""
    run = SegmentRun(tenant_id=tenant_id, status="queued", as_of=as_of, counts={}, debtors=0,
                     moves=0)
    session.add(run)
    await session.flush()
    job = await runner.enqueue(session, tenant_id, KIND, {
        "run_id": run.id, "as_of": as_of.isoformat(),
        "lock": f"segmentation:{tenant_id}"})  # one run per tenant at a time
    run.job_id = job.id
    await session.flush()
    return run


@every_minute
async def queue_daily_runs(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> None:
    """Queue today's run for each tenant whose local day has reached 02:00 and that has
    segments but no run for that day yet (so calling it every minute is harmless)."""
    now = clock.now()
    async with sessionmaker() as session:
        tenants = (await session.execute(select(Tenant.id, Tenant.timezone).where(
            select(Segment.id).where(Segment.tenant_id == Tenant.id, Segment.active)
            .exists()))).all()
        for tenant_id, tz in tenants:
            local = now.astimezone(ZoneInfo(tz))
            if local.hour < DAILY_FROM_HOUR:
                continue
            done = await session.scalar(select(SegmentRun.id).where(
                SegmentRun.tenant_id == tenant_id, SegmentRun.as_of == local.date(),
                SegmentRun.status != "failed").limit(1))
            if done is None:
                await queue_run(session, runner, tenant_id, local.date())
        await session.commit()
