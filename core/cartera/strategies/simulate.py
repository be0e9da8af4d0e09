"""Simulation: the planner run day by day over the next N days, and nothing kept.

The whole run happens inside a savepoint that is rolled back at the end, so no row of the
tenant changes (a test compares every table before and after). Each simulated day, as of
that day's planning hour in the tenant's zone:

1. the debtors are re-staged and re-segmented as of that day (days past due grow, buckets
   and stages move: :func:`cartera.segmentation.service.evaluate`, reading the balance
   summary computed for that day);
2. the planner pass runs (:func:`.planner.plan_tenant` with that instant: enrollment,
   exits and stops, planning, contact policy, the gate with its compliance packs);
3. the contacts planned and allowed for that day are taken as sent (marked dispatched, no
   interaction, nothing sent), so that the next days see the sequence advance.

The figures per day are the actions due that day by status and channel, with the reason
codes of the deferred and denied ones. Holidays apply through the compliance packs the
gate calls. Not done: projected cost per channel (no price source yet).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.db.base import table_of
from cartera.plugins.host import PluginHost
from cartera.segmentation.service import evaluate
from cartera.strategies import schemas
from cartera.strategies.models import Action
from cartera.strategies.planner import plan_tenant
from cartera.strategies.service import planner_settings
from cartera.tenants.models import Tenant


async def simulate(session: AsyncSession, host: PluginHost, tenant_id: int,
                   strategy_id: int | None, days: int) -> schemas.SimulationOut:
    """Simulate ``days`` days from today for the whole configuration; the figures cover
    ``strategy_id``'s actions (all strategies when None). Writes nothing."""
    zone = str(await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)))
    hour = (await planner_settings(session, tenant_id)).plan_hour
    start = clock.now().astimezone(ZoneInfo(zone)).date()
    out: list[schemas.SimulatedDay] = []
    savepoint = await session.begin_nested()
    try:
        for offset in range(days):
            day = start + timedelta(days=offset)
            at = max(clock.now(), datetime.combine(day, time(hour), ZoneInfo(zone)))
            if offset:
                await evaluate(session, tenant_id, day, actor="simulation")
            await plan_tenant(session, host, tenant_id, at)
            out.append(await _figures(session, tenant_id, strategy_id, day))
            await _take_as_sent(session, tenant_id, day)
    finally:
        await savepoint.rollback()
    return schemas.SimulationOut(strategy_id=strategy_id, start=start, days=out)


async def _figures(session: AsyncSession, tenant_id: int, strategy_id: int | None,
                   day: Any) -> schemas.SimulatedDay:
    a = table_of(Action)
    stmt = select(a.c.status, a.c.channel, a.c.kind, a.c.verdict).where(
        a.c.tenant_id == tenant_id, a.c.due_on == day)
    if strategy_id is not None:
        stmt = stmt.where(a.c.strategy_id == strategy_id)
    per_channel: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for status, channel, kind, verdict in (await session.execute(stmt)).all():
        statuses[status] += 1
        if status in ("planned", "dispatched"):
            per_channel[channel or kind] += 1
        if status in ("deferred", "denied") and verdict:
            for r in verdict.get("reasons", []):
                reasons[f"{status}:{r['code']}"] += 1
    return schemas.SimulatedDay(day=day, actions_per_channel=dict(per_channel),
                                statuses=dict(statuses), reasons=dict(reasons))


async def _take_as_sent(session: AsyncSession, tenant_id: int, day: Any) -> None:
    a = table_of(Action)
    await session.execute(update(a).where(
        a.c.tenant_id == tenant_id, a.c.due_on == day, a.c.status == "planned",
        a.c.verdict.is_not(None)).values(status="dispatched"))
