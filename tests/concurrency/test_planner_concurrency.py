"""Two planner passes of one tenant at once plan every action once, and an activation
during a pass waits for it (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.api.context import Actor
from cartera.plugins.registry import current_host
from cartera.strategies import schemas, service
from cartera.strategies.planner import plan_tenant
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


async def _portfolio(t: TenantClient, n: int = 6) -> dict[str, Any]:
    seg = await segments(t)
    sms = await template(t)
    for i in range(n):
        await late_debtor(t, f"C{i}")
    return await strategy(t, "s", [seg["late"]], [message_step("one", sms),
                                                 message_step("two", sms, offset=1)])


async def test_two_passes_at_once_plan_each_action_once(tenant: TenantClient, backends: Any,
                                                        pg_engine: AsyncEngine) -> None:
    await _portfolio(tenant)
    async with backends(tenant.tenant_id, 2) as (a, b):
        first = await plan_tenant(a.session, current_host(), tenant.tenant_id)
        second = asyncio.create_task(plan_tenant(b.session, current_host(), tenant.tenant_id))
        assert await done_or_blocked(second, pg_engine, b.pid) == "blocked"
        await a.commit()
        again = await second
        await b.commit()
    assert (first.enrolled, first.planned) == (6, 6)
    assert (again.enrolled, again.planned) == (0, 0)
    async with pg_engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT enrollment_id, step_index, due_on, count(*) FROM actions "
            "WHERE tenant_id = :t GROUP BY 1, 2, 3"), {"t": tenant.tenant_id})).all()
        live = await conn.scalar(text("SELECT count(*) FROM enrollments WHERE tenant_id = :t"),
                                 {"t": tenant.tenant_id})
    assert len(rows) == 6 and {r[3] for r in rows} == {1}
    assert live == 6


async def test_activation_waits_for_a_pass(tenant: TenantClient, backends: Any,
                                           pg_engine: AsyncEngine) -> None:
    s = await _portfolio(tenant, 2)
    seg = await segments(tenant)
    sms = await template(tenant, code="other")
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json={
        "segment_ids": [seg["late"]], "steps": [message_step("new", sms)]})
    assert r.status_code == 201, r.text
    actor = Actor(tenant_id=tenant.tenant_id, client_id=tenant.client_id, request_id=None)
    async with backends(tenant.tenant_id, 2) as (a, b):
        await plan_tenant(a.session, current_host(), tenant.tenant_id)
        activation = asyncio.create_task(service.activate(
            b.session, actor, s["id"], 2, schemas.Activate(in_flight="restart")))
        assert await done_or_blocked(activation, pg_engine, b.pid) == "blocked"
        await a.commit()
        await activation
        await b.commit()
    async with pg_engine.connect() as conn:
        version = await conn.scalar(select(func.count()).select_from(text("enrollments"))
                                    .where(text("tenant_id = :t AND version_id = :v"))
                                    .params(t=tenant.tenant_id, v=r.json()["id"]))
    assert version == 2  # the enrollments the pass made, restarted on the new version
