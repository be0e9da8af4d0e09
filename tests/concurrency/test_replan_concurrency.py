"""One live enrollment per debtor holds when a whole-portfolio pass and the replanning of
one debtor (the last step of an event's transaction) run at once, in either order, and
when two events replan one debtor at once (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from cartera.strategies.replan import replan_debtor
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


async def _two_strategies_one_segment(t: TenantClient, n: int = 3) -> list[int]:
    """Debtors in "late" (not enrolled yet: the strategies come after them) and two
    strategies bound to it."""
    seg = await segments(t)
    sms = await template(t)
    debtors = [await late_debtor(t, f"R{i}") for i in range(n)]
    await strategy(t, "first", [seg["late"]], [message_step("one", sms),
                                                message_step("two", sms, offset=1)],
                   priority=1)
    await strategy(t, "second", [seg["late"]], [message_step("x", sms),
                                                 message_step("y", sms, offset=1)],
                   priority=2)
    return debtors


async def _live(engine: AsyncEngine, tenant_id: int) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT debtor_id, count(*) FROM enrollments WHERE tenant_id = :t "
            "AND status IN ('active', 'paused') GROUP BY debtor_id"), {"t": tenant_id})).all()
    return {int(d): int(n) for d, n in rows}


@pytest.mark.parametrize("first", ["pass", "replan"])
async def test_a_pass_and_a_replan_at_once_leave_one_live_enrollment(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine, first: str) -> None:
    debtors = await _two_strategies_one_segment(tenant)
    host = current_host()
    async with backends(tenant.tenant_id, 2) as (a, b):
        if first == "pass":
            await plan_tenant(a.session, host, tenant.tenant_id)
            other = asyncio.create_task(replan_debtor(b.session, tenant.tenant_id, debtors[0]))
        else:
            await replan_debtor(a.session, tenant.tenant_id, debtors[0])
            other = asyncio.create_task(plan_tenant(b.session, host, tenant.tenant_id))
        # The pass holds the tenant's strategy lock exclusive, a replan shared.
        assert await done_or_blocked(other, pg_engine, b.pid) == "blocked"
        await a.commit()
        await other
        await b.commit()
    assert await _live(pg_engine, tenant.tenant_id) == {d: 1 for d in debtors}


async def test_two_replans_of_one_debtor_at_once(tenant: TenantClient, backends: Any,
                                                 pg_engine: AsyncEngine) -> None:
    debtors = await _two_strategies_one_segment(tenant, 1)
    async with backends(tenant.tenant_id, 2) as (a, b):
        one = await replan_debtor(a.session, tenant.tenant_id, debtors[0])
        # Two events of one debtor: the second waits for the first (the debtor's row).
        two = asyncio.create_task(replan_debtor(b.session, tenant.tenant_id, debtors[0]))
        assert await done_or_blocked(two, pg_engine, b.pid) == "blocked"
        await a.commit()
        again = await two
        await b.commit()
    assert (one.enrolled, again.enrolled) == (1, 0)
    assert await _live(pg_engine, tenant.tenant_id) == {debtors[0]: 1}


async def test_the_database_refuses_a_second_live_enrollment(
        tenant: TenantClient, pg_engine: AsyncEngine) -> None:
    debtors = await _two_strategies_one_segment(tenant, 1)
    async with pg_engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT id, priority FROM strategies WHERE tenant_id = :t ORDER BY priority"),
            {"t": tenant.tenant_id})).all()
        versions = {int(s): int(v) for s, v in (await conn.execute(text(
            "SELECT strategy_id, id FROM strategy_versions WHERE tenant_id = :t"),
            {"t": tenant.tenant_id})).all()}
        insert = text(
            "INSERT INTO enrollments (tenant_id, debtor_id, strategy_id, version_id, "
            "step_index, status, entered_on, created_at, updated_at) VALUES (:t, :d, :s, :v, "
            "0, 'active', CURRENT_DATE, now(), now())")
        await conn.execute(insert, {"t": tenant.tenant_id, "d": debtors[0], "s": rows[0][0],
                                    "v": versions[rows[0][0]]})
        with pytest.raises(IntegrityError, match="uq_enrollments_live"):
            await conn.execute(insert, {"t": tenant.tenant_id, "d": debtors[0],
                                        "s": rows[1][0], "v": versions[rows[1][0]]})
        await conn.rollback()


async def test_a_finished_journey_is_not_started_again_by_a_replan_at_once(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "F")
    await strategy(tenant, "once", [seg["late"]], [message_step("only", sms)])
    async with backends(tenant.tenant_id, 2) as (a, b):
        one = await replan_debtor(a.session, tenant.tenant_id, d)  # enrolls and completes
        two = asyncio.create_task(replan_debtor(b.session, tenant.tenant_id, d))
        assert await done_or_blocked(two, pg_engine, b.pid) == "blocked"
        await a.commit()
        again = await two
        await b.commit()
    assert (one.enrolled, one.completed, again.enrolled) == (1, 1, 0)
    async with pg_engine.connect() as conn:
        n = await conn.scalar(text("SELECT count(*) FROM enrollments WHERE debtor_id = :d"),
                              {"d": d})
    assert n == 1
