"""The plan statement of a tenant's pass advances the enrollments of what it inserts, once,
even with two range passes over the same debtors at once (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera import clock
from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


async def test_two_range_passes_at_once_advance_each_enrollment_once(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    ids = [await late_debtor(tenant, f"A{i}") for i in range(5)]
    await strategy(tenant, "s", [seg["late"]], [
        message_step("one", sms), message_step("two", sms, offset=1),
        message_step("three", sms, offset=1)])
    now = clock.now()
    within = (min(ids), max(ids) + 1)
    async with backends(tenant.tenant_id, 1) as (a,):
        first = await plan_tenant(a.session, current_host(), tenant.tenant_id, now)
        await a.commit()
    assert (first.enrolled, first.planned) == (5, 5)
    assert first.advanced  # every action advanced past by the plan statement itself
    later = now + timedelta(days=1)
    async with backends(tenant.tenant_id, 2) as (a, b):
        one = await plan_tenant(a.session, current_host(), tenant.tenant_id, later,
                                debtors=within)
        # A range pass shares the tenant's lock: the second runs, and its insert waits
        # for the first's actions.
        two = asyncio.create_task(plan_tenant(b.session, current_host(), tenant.tenant_id,
                                              later, debtors=within))
        assert await done_or_blocked(two, pg_engine, b.pid) == "blocked"
        await a.commit()
        other = await two
        await b.commit()
    assert (one.planned, other.planned) == (5, 0)
    assert one.advanced and not other.advanced
    async with pg_engine.connect() as conn:
        steps = (await conn.execute(text(
            "SELECT step_index, last_step_on, status, count(*) FROM enrollments "
            "WHERE tenant_id = :t GROUP BY 1, 2, 3"), {"t": tenant.tenant_id})).all()
        actions = (await conn.execute(text(
            "SELECT step_key, count(*), count(DISTINCT enrollment_id) FROM actions "
            "WHERE tenant_id = :t GROUP BY 1 ORDER BY 1"), {"t": tenant.tenant_id})).all()
    assert actions == [("one", 5, 5), ("two", 5, 5)]
    assert len(steps) == 1 and steps[0][0] == 2 and steps[0][2] == "active" \
        and steps[0][3] == 5, steps  # advanced once: at step "three", not past it
    assert steps[0][1] is not None and steps[0][1] >= later.date() - timedelta(days=1)
