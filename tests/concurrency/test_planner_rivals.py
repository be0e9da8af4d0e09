"""The contact policy of a tenant's pass on PostgreSQL (:func:`cartera.strategies.planner.
plan_staged`): it looks only at the debtors of the contacts the pass planned with a rival
that day (:attr:`cartera.strategies.planner.PlanResult.rivals`), not at every debtor's
days, and still leaves each debtor one contact a day, also beside a replanning of a
contested debtor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera import clock
from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


@contextmanager
def supersede_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The contact policy's UPDATEs run on ``engine`` meanwhile."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("UPDATE actions") and "superseded_by" in statement:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def _days(pg_engine: AsyncEngine, tenant_id: int) -> list[Any]:
    async with pg_engine.connect() as conn:
        return list((await conn.execute(text(
            "SELECT debtor_id, due_on, count(*) FILTER (WHERE status <> 'superseded'), "
            "count(*) FILTER (WHERE status = 'superseded'), "
            "bool_and(status <> 'superseded' OR superseded_by IS NOT NULL) "
            "FROM actions WHERE tenant_id = :t AND kind = 'message' "
            "GROUP BY debtor_id, due_on ORDER BY debtor_id, due_on"),
            {"t": tenant_id})).all())


async def test_a_pass_of_contacts_alone_that_day_runs_no_contact_policy(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    for i in range(3):
        await late_debtor(tenant, f"A{i}")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=1)])
    with supersede_statements(pg_engine) as seen:
        async with backends(tenant.tenant_id, 1) as (a,):
            result = await plan_tenant(a.session, current_host(), tenant.tenant_id)
            await a.commit()
    assert (result.planned, result.superseded) == (3, 0)
    assert result.rivals is False
    assert seen == []


async def test_contested_contacts_are_superseded_beside_a_replan(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    debtors = [await late_debtor(tenant, f"C{i}") for i in range(3)]
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=1)])
    now = clock.now()
    async with backends(tenant.tenant_id, 1) as (a,):
        first = await plan_tenant(a.session, current_host(), tenant.tenant_id, now)
        # Two debtors already contacted the next day (the first contact taken as
        # dispatched then): step "two" competes with it.
        await a.session.execute(text(_DISPATCHED), {"t": tenant.tenant_id,
                                                     "debtors": debtors[:2]})
        await a.commit()
    assert (first.planned, first.superseded) == (3, 0)
    later = now + timedelta(days=1)
    with supersede_statements(pg_engine) as seen:
        async with backends(tenant.tenant_id, 2) as (a, b):
            second = await plan_tenant(a.session, current_host(), tenant.tenant_id, later)
            # A replanning of a contested debtor waits for the pass, then adds nothing.
            replan = asyncio.create_task(plan_tenant(b.session, current_host(),
                                                     tenant.tenant_id, later,
                                                     debtors=debtors[0]))
            assert await done_or_blocked(replan, pg_engine, b.pid) == "blocked"
            await a.commit()
            again = await replan
            await b.commit()
    assert (second.planned, second.superseded) == (3, 2)
    assert second.rivals is not False
    assert again.planned == 0 and again.superseded == 0
    assert len(seen) == 1 and "plan_candidates" in seen[0]
    days = await _days(pg_engine, tenant.tenant_id)
    # One contact a day for each debtor; the contested ones lost to the dispatched contact.
    assert [(d, kept, lost, named) for d, _, kept, lost, named in days] == sorted(
        [(d, 1, 0, True) for d in debtors]
        + [(d, 1, 1, True) for d in debtors[:2]] + [(debtors[2], 1, 0, True)])


_DISPATCHED = (
    "INSERT INTO actions (tenant_id, debtor_id, enrollment_id, strategy_id, version_id, "
    "priority, step_index, step_key, kind, channel, due_on, planned_at, status, attempt, "
    "created_at, updated_at) SELECT tenant_id, debtor_id, enrollment_id, strategy_id, "
    "version_id, priority, step_index, step_key, kind, channel, due_on + 1, "
    "planned_at + interval '1 day', 'dispatched', attempt + 1, created_at, updated_at "
    "FROM actions WHERE tenant_id = :t AND debtor_id = ANY(:debtors)")
