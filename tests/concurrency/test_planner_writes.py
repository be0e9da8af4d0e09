"""What a planner pass writes on PostgreSQL: each contact it plans is written once, with
its gate verdict and decision rows, and each enrollment whose step moves is written once,
completed or not (PostgreSQL only: the per-transaction table statistics count the row
writes)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template

WRITES = ("SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables "
          "WHERE relname IN ('actions', 'enrollments', 'compliance_decisions')")


async def _writes(session: AsyncSession) -> dict[str, tuple[int, int]]:
    return {r[0]: (int(r[1]), int(r[2]))
            for r in (await session.execute(text(WRITES))).all()}


def _since(before: dict[str, tuple[int, int]],
           after: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The writes between two readings in one transaction. PostgreSQL 15 keeps a backend's
    counts pending across transactions until it reports them (at most once a second, when
    idle), so the first reading of a reused connection may not be zero."""
    return {k: (n - before.get(k, (0, 0))[0], u - before.get(k, (0, 0))[1])
            for k, (n, u) in after.items()}


async def _decisions(pg_engine: AsyncEngine, tenant_id: int) -> list[Any]:
    async with pg_engine.connect() as conn:
        return list((await conn.execute(text(
            "SELECT a.id, a.status, a.verdict IS NOT NULL, count(c.id) FROM actions a "
            "LEFT JOIN compliance_decisions c ON c.subject_id = a.id AND c.path = 'planner' "
            "WHERE a.tenant_id = :t GROUP BY a.id ORDER BY a.id"), {"t": tenant_id})).all())


async def test_a_pass_writes_each_contact_and_enrollment_once(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    for i in range(4):
        await late_debtor(tenant, f"W{i}")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    async with backends(tenant.tenant_id, 1) as (a,):
        before = await _writes(a.session)
        result = await plan_tenant(a.session, current_host(), tenant.tenant_id)
        writes = _since(before, await _writes(a.session))
        await a.commit()
    assert (result.enrolled, result.planned, result.completed) == (4, 4, 4)
    assert sum(n for k, n in result.verdicts.items() if k != "gate_calls") == 4
    # The gate's verdict is in the insert: no action is updated after it.
    assert writes["actions"] == (4, 0)
    # Advanced past the last step and completed by one write each.
    assert writes["enrollments"] == (4, 4)
    found = await _decisions(pg_engine, tenant.tenant_id)
    assert len(found) == 4
    for _, status, has_verdict, recorded in found:
        assert status in ("planned", "deferred", "denied") and has_verdict
        assert recorded >= 1
    assert writes["compliance_decisions"][0] == sum(r[3] for r in found)


async def test_two_replans_of_a_debtor_at_once_record_one_contact(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    debtor_id = await late_debtor(tenant, "R1")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=1)])
    async with backends(tenant.tenant_id, 2) as (a, b):
        first = await plan_tenant(a.session, current_host(), tenant.tenant_id,
                                  debtors=debtor_id)
        second = asyncio.create_task(plan_tenant(b.session, current_host(), tenant.tenant_id,
                                                 debtors=debtor_id))
        assert await done_or_blocked(second, pg_engine, b.pid) == "blocked"
        await a.commit()
        again = await second
        await b.commit()
    assert first.planned == 1 and again.planned == 0
    assert sum(n for k, n in again.verdicts.items() if k != "gate_calls") == 0
    found = await _decisions(pg_engine, tenant.tenant_id)
    assert len(found) == 1 and found[0][2] and found[0][3] >= 1
