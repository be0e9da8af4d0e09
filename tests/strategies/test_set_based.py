"""The planner is set-based: its statement count does not grow with the debtors."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from sqlalchemy import event

from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    actions,
    late_debtor,
    message_step,
    segments,
    strategy,
    template,
)


async def _statements_of_a_pass(app: Litestar, t: TenantClient) -> tuple[int, Any]:
    engine = app.state.ctx.engine.sync_engine
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
            result = await plan_tenant(session, current_host(), t.tenant_id)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen), result


async def _portfolio(t: TenantClient, debtors: int) -> None:
    seg = await segments(t)
    sms = await template(t)
    for i in range(debtors):
        await late_debtor(t, f"D{i}", phone=i % 2 == 0)
    await strategy(t, "a", [seg["late"]], [
        message_step("one", sms), message_step("two", sms, anchor="segment_entry")],
                   priority=1)
    await strategy(t, "b", [seg["late"]], [message_step("x", sms)], priority=2,
                   stop_rule={"feature": "days_past_due", "op": "gte", "value": 400})


async def test_statement_count_does_not_depend_on_debtors(app: Litestar,
                                                          make_tenant: Any) -> None:
    small, large = await make_tenant(), await make_tenant()
    await _portfolio(small, 2)
    await _portfolio(large, 12)
    n_small, r_small = await _statements_of_a_pass(app, small)
    n_large, r_large = await _statements_of_a_pass(app, large)
    # One live enrollment per debtor: the better strategy ("a") takes them all.
    assert (r_small.enrolled, r_large.enrolled) == (2, 12)
    assert r_large.planned == 12
    assert n_small == n_large, (n_small, n_large)
    assert n_large < 40
    # A second pass the same day plans "two" (offset 0): one contact a day, so it is
    # superseded for the debtors whose "one" is planned (the half with a phone).
    n_small, r_small = await _statements_of_a_pass(app, small)
    n_large, r_large = await _statements_of_a_pass(app, large)
    assert (r_small.superseded, r_large.superseded) == (1, 6)
    assert n_small == n_large, (n_small, n_large)
    assert len(await actions(large, status="superseded")) == 6
