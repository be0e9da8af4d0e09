"""The replanning of one debtor issues only the statements that can change something, with
the tenant's configuration cached per process and checked against its stamp in the
transaction (:mod:`cartera.strategies.replan`)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.plugins.registry import current_host
from cartera.strategies import replan
from cartera.strategies.planner import plan_tenant
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    actions,
    enrollments,
    late_debtor,
    message_step,
    segments,
    strategy,
    template,
)

STOP = {"feature": "days_past_due", "op": "gte", "value": 3000}
"""A stop rule that matches no test debtor (the replanning still evaluates it)."""


async def _replan(app: Litestar, tenant: TenantClient, debtor_id: int
                  ) -> tuple[replan.PlanResult, list[str]]:
    """One replanning in a transaction of its own, committed, and its statements."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    async with app.state.ctx.sessionmaker() as session:
        assert isinstance(session, AsyncSession)
        session.info["tenant_id"] = tenant.tenant_id
        conn = await session.connection()
        event.listen(conn.sync_connection, "before_cursor_execute", count)
        result = await replan.replan_debtor(session, tenant.tenant_id, debtor_id)
        event.remove(conn.sync_connection, "before_cursor_execute", count)
        await session.commit()
    return result, seen


def _locks(app: Litestar) -> int:
    """The debtor row lock and the tenant's strategy lock are statements on PostgreSQL."""
    return 2 if app.state.ctx.engine.dialect.name == "postgresql" else 0


async def _enrolled(tenant: TenantClient, **version: Any) -> int:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=3)], **version)
    d = await late_debtor(tenant, "Q")
    (mine,) = await enrollments(tenant)
    assert (mine["status"], mine["step_index"]) == ("active", 1)
    return d


async def test_a_replan_that_changes_nothing_costs_the_locks_one_select_and_the_stop_rule(
        app: Litestar, tenant: TenantClient) -> None:
    d = await _enrolled(tenant, stop_rule=STOP)
    before = await actions(tenant, debtor_id=d)
    replan.clear_cache()
    cold, cold_sql = await _replan(app, tenant, d)
    warm, warm_sql = await _replan(app, tenant, d)
    # Warm: the locks, the snapshot (stamp, zones, placement, enrollment, oldest due date),
    # the stop rule's UPDATE. Cold: the configuration's three selects on top.
    assert len(warm_sql) == _locks(app) + 2, warm_sql
    assert len(cold_sql) == len(warm_sql) + 3, cold_sql
    assert cold.as_dict() == warm.as_dict() == replan.PlanResult().as_dict()
    assert await actions(tenant, debtor_id=d) == before


async def test_no_stop_rule_no_stop_statement(app: Litestar, tenant: TenantClient) -> None:
    d = await _enrolled(tenant)
    await _replan(app, tenant, d)
    _, sql = await _replan(app, tenant, d)
    assert len(sql) == _locks(app) + 1, sql


async def test_the_cached_configuration_follows_an_activation(
        app: Litestar, tenant: TenantClient) -> None:
    d = await _enrolled(tenant, stop_rule=STOP)
    await _replan(app, tenant, d)  # caches version 1
    seg = await segments(tenant)
    sms = await template(tenant, code="other")
    (s,) = (await tenant.api.get("/v1/strategies")).json()["data"]
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/versions", json={
        "segment_ids": [seg["late"]], "steps": [message_step("one", sms),
                                                message_step("two", sms, offset=3)],
        "stop_rule": {"feature": "days_past_due", "op": "gte", "value": 1}})
    assert r.status_code == 201, r.text
    a = await tenant.api.post(f"/v1/strategies/{s['id']}/versions/2/activate",
                              json={"in_flight": "same_key"})
    assert a.status_code == 200, a.text
    (mine,) = await enrollments(tenant)
    if mine["status"] == "active":  # the activation left the stop rule to the next replan
        result, _ = await _replan(app, tenant, d)
        assert result.stopped == 1
    (mine,) = await enrollments(tenant)
    assert mine["status"] == "stopped", mine


async def test_a_priority_change_reaches_the_cache(app: Litestar, tenant: TenantClient) -> None:
    d = await _enrolled(tenant)
    await _replan(app, tenant, d)
    key = (app.state.ctx.engine.url.render_as_string(hide_password=True), tenant.tenant_id)
    stamp = replan._cache[key].stamp
    (s,) = (await tenant.api.get("/v1/strategies")).json()["data"]
    r = await tenant.api.patch(f"/v1/strategies/{s['id']}", json={"priority": 7})
    assert r.status_code == 200, r.text
    await _replan(app, tenant, d)
    cached = replan._cache[key]
    assert cached.stamp != stamp
    assert cached.config.strategies[s["id"]].priority == 7


async def test_the_fast_path_agrees_with_the_one_debtor_pass(
        app: Litestar, tenant: TenantClient) -> None:
    """A debtor whose step is due (no action yet): the replanning plans it as the
    planner's one-debtor pass would."""
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "P")  # before the strategy: not enrolled
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=3)],
                   stop_rule=STOP)
    other = await late_debtor(tenant, "O")
    result, _ = await _replan(app, tenant, d)
    assert (result.enrolled, result.planned) == (1, 1)
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        again = await plan_tenant(session, current_host(), tenant.tenant_id, debtors=d)
        await session.commit()
    assert (again.enrolled, again.planned) == (0, 0)
    mine = {a["debtor_id"]: a["step_key"] for a in await actions(tenant)}
    assert mine == {d: "one", other: "one"}
