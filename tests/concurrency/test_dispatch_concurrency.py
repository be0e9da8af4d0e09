"""Several dispatchers over the same due message actions at once: each action is
dispatched once, gets one interaction, and its message is sent once (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from cartera_sdk.testkit import FakeHTTPServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.plugins.registry import current_host
from cartera.strategies.dispatch import dispatch_due
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    late_debtor,
    message_step,
    plan,
    provider,
    segments,
    sms_integration,
    strategy,
    template,
)

__all__ = ["provider"]  # the fixture, used by name

DEBTORS = 12


async def test_racing_dispatchers_send_each_action_once(
        tenant: TenantClient, backends: Any, pg_engine: AsyncEngine, app: Any,
        provider: FakeHTTPServer, run_jobs: Any) -> None:
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    for i in range(DEBTORS):
        await late_debtor(tenant, f"R{i}")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    await plan(tenant, run_jobs)
    host, jobs = current_host(), app.state.ctx.jobs
    async with backends(tenant.tenant_id, 4) as (a, b, c, d):
        # a claims 5 and holds them; b, c and d race at the same instant over the rest
        # (SKIP LOCKED: none waits for a, none takes a row another took).
        first = await dispatch_due(a.session, host, jobs, tenant.tenant_id, limit=5)
        racing = await asyncio.wait_for(asyncio.gather(*(
            dispatch_due(x.session, host, jobs, tenant.tenant_id, limit=3)
            for x in (b, c, d))), 20)
        for x in (b, c, d, a):
            await x.commit()
        again = await dispatch_due(a.session, host, jobs, tenant.tenant_id)
        await a.commit()
    assert first == {"dispatched": 5, "deferred": 0, "denied": 0}
    assert all(n.get("dispatched", 0) <= 3 for n in racing)
    assert sum(n.get("dispatched", 0) for n in racing) == 7
    assert again == {}
    async with pg_engine.connect() as conn:
        per_action = (await conn.execute(text(
            "SELECT a.id, count(i.id), min(i.id), "
            "min((a.outcome ->> 'interaction_id')::bigint) FROM actions a "
            "LEFT JOIN interactions i ON i.action_id = a.id WHERE a.tenant_id = :t "
            "GROUP BY a.id"), {"t": tenant.tenant_id})).all()
    assert len(per_action) == DEBTORS
    assert all(n == 1 and made == recorded for _, n, made, recorded in per_action)
    await run_jobs()  # the batch senders
    async with pg_engine.connect() as conn:
        sent = (await conn.execute(text(
            "SELECT status, attempts FROM interactions WHERE tenant_id = :t"),
            {"t": tenant.tenant_id})).all()
    # One provider attempt per interaction (one that failed transiently on a loaded machine
    # waits for its retry time, queued: never a second sender).
    assert len(sent) == DEBTORS and {attempts for _, attempts in sent} == {1}
    assert {status for status, _ in sent} <= {"sent", "queued"}
    # Never two sends of one message; a transient failure may not have reached the provider.
    refs = [msgspec.json.decode(r.body)["ref"] for r in provider.requests]
    assert len(refs) == len(set(refs))
    assert sum(status == "sent" for status, _ in sent) <= len(refs) <= DEBTORS


async def test_racing_runs_with_lanes_dispatch_each_action_once(
        tenant: TenantClient, pg_engine: AsyncEngine, app: Any, provider: FakeHTTPServer,
        run_jobs: Any) -> None:
    """Two dispatch runs at once (as if two jobs ran), each with three lanes in flight over
    batches of two: every due action is dispatched by exactly one of them, once, with one
    interaction, and no lane takes a debtor of another lane of its run."""
    from cartera.strategies import dispatch

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    for i in range(DEBTORS):
        await late_debtor(tenant, f"L{i}")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    await plan(tenant, run_jobs)
    lanes: dict[tuple[int, int], set[int]] = {}
    real = dispatch.claim

    async def claim(session: Any, tenant_id: int, now: Any, limit: int,
                    lane: Any = None) -> Any:
        rows = await real(session, tenant_id, now, limit, lane)
        lanes.setdefault(lane, set()).update(r.debtor_id for r in rows)
        return rows

    dispatch.claim = claim  # type: ignore[assignment]
    try:
        runs = await asyncio.wait_for(asyncio.gather(*(dispatch.dispatch_all(
            app.state.ctx.sessionmaker, current_host(), app.state.ctx.jobs, tenant.tenant_id,
            limit=2, lanes=3) for _ in range(2))), 30)
    finally:
        dispatch.claim = real  # type: ignore[assignment]
    assert sum(r.get("dispatched", 0) for r in runs) == DEBTORS
    assert set(lanes) == {(0, 3), (1, 3), (2, 3)}
    assert all(d % 3 == i for (i, _), ds in lanes.items() for d in ds)
    async with pg_engine.connect() as conn:
        per_action = (await conn.execute(text(
            "SELECT a.status, count(i.id), min(i.id), "
            "min((a.outcome ->> 'interaction_id')::bigint) FROM actions a "
            "LEFT JOIN interactions i ON i.action_id = a.id WHERE a.tenant_id = :t "
            "GROUP BY a.id, a.status"), {"t": tenant.tenant_id})).all()
    assert len(per_action) == DEBTORS
    assert all(status == "dispatched" and n == 1 and made == recorded
               for status, n, made, recorded in per_action)
