"""The planner as a job: ``strategies.plan`` (one tenant's pass, with progress), queued
every day per tenant from the local hour it set (``strategy_settings.plan_hour``, 06:00 by
default) and on demand by ``POST /v1/strategies/plan``."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.db.engine import tenant_session
from cartera.jobs.models import Job
from cartera.jobs.registry import JobContext, every_minute, job
from cartera.plugins.registry import current_host
from cartera.strategies.models import Enrollment, PlannerSettings, StrategyVersion
from cartera.strategies.planner import plan_tenant
from cartera.strategies.service import DEFAULT_PLAN_HOUR, LIVE
from cartera.tenants.models import Tenant

KIND = "strategies.plan"


async def queue_plan(session: AsyncSession, runner: Any, tenant_id: int) -> Job:
    """Queue a planner pass of the tenant in the caller's transaction (one at a time per
    tenant: the job lock)."""
    job_row: Job = await runner.enqueue(session, tenant_id, KIND,
                                        {"lock": f"strategies.plan:{tenant_id}"})
    return job_row


@job(KIND)
async def plan_job(ctx: JobContext) -> dict[str, Any]:
    """Plan the tenant's portfolio; progress goes from 0 to its live enrollments when the
    pass commits (it is one transaction)."""
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        live = int(await session.scalar(select(func.count()).select_from(Enrollment).where(
            Enrollment.tenant_id == ctx.tenant_id, Enrollment.status.in_(LIVE))) or 0)
    await ctx.progress(0, live)
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        result = await plan_tenant(session, current_host(), ctx.tenant_id)
    await ctx.progress(live + result.enrolled, live + result.enrolled)
    return result.as_dict()


@every_minute
async def queue_daily_plans(sessionmaker: async_sessionmaker[AsyncSession],
                            runner: Any) -> None:
    """Queue today's pass for each tenant with an active strategy version whose local hour
    has reached its planning hour and that was not planned today (recorded in the same
    transaction, so calling this every minute, or twice, queues one pass a day)."""
    now = clock.now()
    async with sessionmaker() as session:
        tenants = (await session.execute(
            select(Tenant.id, Tenant.timezone, PlannerSettings.plan_hour,
                   PlannerSettings.last_planned_on)
            .outerjoin(PlannerSettings, PlannerSettings.tenant_id == Tenant.id)
            .where(select(StrategyVersion.id).where(StrategyVersion.tenant_id == Tenant.id,
                                                    StrategyVersion.status == "active")
                   .exists()))).all()
        for tenant_id, tz, hour, last in tenants:
            local = now.astimezone(ZoneInfo(tz))
            if local.hour < (DEFAULT_PLAN_HOUR if hour is None else hour) or last == local.date():
                continue
            row = await session.get(PlannerSettings, tenant_id, with_for_update=True)
            if row is None:
                row = PlannerSettings(tenant_id=tenant_id, plan_hour=DEFAULT_PLAN_HOUR)
                session.add(row)
            elif row.last_planned_on == local.date():
                continue
            row.last_planned_on = local.date()
            await session.flush()
            await queue_plan(session, runner, tenant_id)
        await session.commit()
