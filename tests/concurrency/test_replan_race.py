"""Events racing on one debtor replan them one after the other, each seeing what the
previous one did, and an activation committed by another connection reaches a replanning
whose process cached the previous configuration (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera import changes
from cartera.api.context import Actor
from cartera.strategies import schemas, service
from cartera.strategies.replan import replan_debtor
from tests.concurrency import done_or_blocked
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


async def _state(engine: AsyncEngine, debtor_id: int) -> tuple[list[Any], list[Any]]:
    async with engine.connect() as conn:
        live = (await conn.execute(text(
            "SELECT version_id, step_index FROM enrollments WHERE debtor_id = :d "
            "AND status IN ('active', 'paused')"), {"d": debtor_id})).all()
        acts = (await conn.execute(text(
            "SELECT enrollment_id, step_key, due_on, count(*) FROM actions WHERE debtor_id = :d"
            " AND status NOT IN ('cancelled') GROUP BY enrollment_id, step_key, due_on"),
            {"d": debtor_id})).all()
    return list(live), list(acts)


async def test_three_events_of_one_debtor_at_once_give_one_plan(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "RACE")  # before the strategies: not enrolled yet
    for code, priority in (("first", 1), ("second", 2)):
        await strategy(tenant, code, [seg["late"]], [message_step("one", sms),
                                                    message_step("two", sms, offset=1)],
                       priority=priority,
                       stop_rule={"feature": "days_past_due", "op": "gte", "value": 3000})
    t = tenant.tenant_id
    async with backends(t, 3) as (a, b, c):
        first = await replan_debtor(a.session, t, d)
        racing = [asyncio.create_task(changes.debtor_changed(b.session, t, d, "reply")),
                  asyncio.create_task(replan_debtor(c.session, t, d))]
        # Both wait for the debtor's row, which the first holds until it commits.
        assert await done_or_blocked(racing[0], pg_engine, b.pid) == "blocked"
        assert await done_or_blocked(racing[1], pg_engine, c.pid) == "blocked"
        await a.commit()
        done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        # One of them got the row; the other waits for its commit.
        winner = b if racing[0] in done else c
        await winner.commit()
        await asyncio.gather(*racing)
        await (c if winner is b else b).commit()
    assert (first.enrolled, first.planned) == (1, 1)
    last = racing[1].result()
    assert (last.enrolled, last.planned, last.exited, last.stopped) == (0, 0, 0, 0)
    live, acts = await _state(pg_engine, d)
    assert len(live) == 1 and live[0][1] == 1  # one enrollment, past its first step
    assert [(key, n) for _, key, _, n in acts] == [("one", 1)]


async def test_an_activation_elsewhere_reaches_a_cached_configuration(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    steps = [message_step("one", sms), message_step("two", sms, offset=5)]
    made = await strategy(tenant, "s", [seg["late"]], steps)
    d = await late_debtor(tenant, "ACT")  # enrolled, "one" planned, at step "two"
    t = tenant.tenant_id
    async with backends(t, 2) as (a, b):
        await replan_debtor(b.session, t, d)  # this process caches version 1
        await b.commit()
        actor = Actor(t, None, None)
        await service.add_version(a.session, actor, made["id"], msgspec.convert(
            {"segment_ids": [seg["late"]], "steps": [steps[0], {
                **steps[1], "anchor": "oldest_unpaid_due_date", "offset_days": 1}]},
            schemas.VersionIn))
        await service.activate(a.session, actor, made["id"], 2,
                               schemas.Activate(in_flight="same_key"))
        other = asyncio.create_task(replan_debtor(b.session, t, d))
        assert await done_or_blocked(other, pg_engine, b.pid) == "blocked"  # tenant lock
        await a.commit()
        result = await other
        await b.commit()
    # With version 1's configuration the enrollment (now on version 2) would exit.
    assert result.exited == 0
    async with pg_engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT v.number, e.status FROM enrollments e JOIN strategy_versions v "
            "ON v.id = e.version_id WHERE e.debtor_id = :d"), {"d": d})).all()
        steps_planned = (await conn.execute(text(
            "SELECT step_key FROM actions WHERE debtor_id = :d AND status <> 'cancelled' "
            "ORDER BY id"), {"d": d})).scalars().all()
    assert [tuple(r) for r in rows] in ([(2, "active")], [(2, "completed")]), rows
    assert "two" in steps_planned  # version 2's "two" is due at once (10 days late)
