"""Executing task, stage change and webhook steps from several workers at once: each
action is executed once (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.strategies.execute import execute_due
from tests.conftest import TenantClient
from tests.strategies.helpers import ALWAYS, late_debtor, plan, segments, strategy


async def test_two_workers_execute_each_action_once(tenant: TenantClient, backends: Any,
                                                    pg_engine: AsyncEngine,
                                                    run_jobs: Any) -> None:
    seg = await segments(tenant)
    for i in range(8):  # one live journey per debtor: 8 late ones get calls, 8 others letters
        await late_debtor(tenant, f"X{i}")
        await late_debtor(tenant, f"Y{i}", days_late=0)
    await strategy(tenant, "calls", [seg["late"]], [
        {"key": "call", "kind": "task", "task": {"queue": "calls"}, "window": ALWAYS}])
    await strategy(tenant, "letters", [seg["rest"]], [
        {"key": "letter", "kind": "webhook", "event": "letter.requested", "window": ALWAYS}])
    await plan(tenant, run_jobs)
    async with backends(tenant.tenant_id, 2) as (a, b):
        # a takes 10 of the 16 due actions and holds them; b, at the same time, skips
        # those rows (SKIP LOCKED) rather than waiting, and takes the other 6.
        first = await execute_due(a.session, tenant.tenant_id, limit=10)
        second = await asyncio.wait_for(execute_due(b.session, tenant.tenant_id), 10)
        await b.commit()
        await a.commit()
        again = await execute_due(a.session, tenant.tenant_id)
        await a.commit()
    assert sum(first.values()) == 10 and sum(second.values()) == 6 and again == {}
    async with pg_engine.connect() as conn:
        tasks = (await conn.execute(text(
            "SELECT action_id, count(*) FROM tasks WHERE tenant_id = :t GROUP BY 1"),
            {"t": tenant.tenant_id})).all()
        events = (await conn.execute(text(
            "SELECT resource_id, count(*) FROM outbox_events WHERE tenant_id = :t "
            "AND type = 'action.requested' GROUP BY 1"), {"t": tenant.tenant_id})).all()
        left = await conn.scalar(text(
            "SELECT count(*) FROM actions WHERE tenant_id = :t AND status <> 'done'"),
            {"t": tenant.tenant_id})
    assert len(tasks) == 8 and {n for _, n in tasks} == {1}
    assert len(events) == 8 and {n for _, n in events} == {1}
    assert left == 0


async def test_an_executed_action_row_is_written_once(tenant: TenantClient, backends: Any,
                                                      pg_engine: AsyncEngine,
                                                      run_jobs: Any) -> None:
    """The claim locks the due rows (``FOR UPDATE SKIP LOCKED``) without writing them: the
    record is each task and webhook action's only update (a row trigger counts them)."""
    seg = await segments(tenant)
    for i in range(3):
        await late_debtor(tenant, f"W{i}")
        await late_debtor(tenant, f"V{i}", days_late=0)
    await strategy(tenant, "calls", [seg["late"]], [
        {"key": "call", "kind": "task", "task": {"queue": "calls"}, "window": ALWAYS}])
    await strategy(tenant, "letters", [seg["rest"]], [
        {"key": "letter", "kind": "webhook", "event": "letter.requested", "window": ALWAYS}])
    await plan(tenant, run_jobs)
    async with pg_engine.connect() as conn:
        await conn.execute(text("CREATE TABLE test_action_writes (action_id bigint)"))
        await conn.execute(text(
            "CREATE FUNCTION test_count_action_write() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO test_action_writes VALUES (NEW.id); RETURN NEW; END $$"))
        await conn.execute(text(
            "CREATE TRIGGER test_action_writes AFTER UPDATE ON actions FOR EACH ROW "
            f"WHEN (NEW.tenant_id = {int(tenant.tenant_id)}) "
            "EXECUTE FUNCTION test_count_action_write()"))
        await conn.commit()
    try:
        async with backends(tenant.tenant_id, 1) as (a,):
            done = await execute_due(a.session, tenant.tenant_id)
            await a.commit()
        async with pg_engine.connect() as conn:
            writes = (await conn.execute(text(
                "SELECT action_id, count(*) FROM test_action_writes GROUP BY 1"))).all()
            statuses = (await conn.execute(text(
                "SELECT DISTINCT status FROM actions WHERE tenant_id = :t"),
                {"t": tenant.tenant_id})).scalars().all()
    finally:
        async with pg_engine.connect() as conn:
            await conn.execute(text("DROP TRIGGER test_action_writes ON actions"))
            await conn.execute(text("DROP FUNCTION test_count_action_write()"))
            await conn.execute(text("DROP TABLE test_action_writes"))
            await conn.commit()
    assert done == {"task": 3, "webhook": 3}
    assert statuses == ["done"]
    assert len(writes) == 6 and {n for _, n in writes} == {1}
