"""An action's one foreign key (migration 0047): it names its enrollment's tenant and
debtor, never another debtor, and a debtor's deletion still takes their actions."""

from __future__ import annotations

import pytest
from litestar import Litestar
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from cartera.plugins.registry import current_host
from cartera.strategies.planner import plan_tenant
from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template

_COPY = ("INSERT INTO actions (tenant_id, debtor_id, enrollment_id, strategy_id, version_id, "
         "priority, step_index, step_key, kind, channel, due_on, planned_at, status, attempt, "
         "created_at, updated_at) SELECT tenant_id, {debtor}, enrollment_id, strategy_id, "
         "version_id, priority, step_index, step_key, kind, channel, due_on, planned_at, "
         "status, attempt + 1, created_at, updated_at FROM actions WHERE id = :id")


async def test_an_action_names_its_enrollments_debtor_and_goes_with_them(
        tenant: TenantClient, app: Litestar) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    one = await late_debtor(tenant, "R1")
    two = await late_debtor(tenant, "R2")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        await plan_tenant(session, current_host(), tenant.tenant_id)
        await session.commit()
        action = await session.scalar(text(
            "SELECT id FROM actions WHERE debtor_id = :d"), {"d": one})
        assert action is not None
        # Another debtor of the same tenant on debtor one's enrollment: refused (before
        # migration 0047 both of its keys held, each on its own).
        with pytest.raises(IntegrityError):
            await session.execute(text(_COPY.format(debtor=":other")),
                                  {"id": action, "other": two})
            await session.commit()  # SQLite checks its keys at the statement, or here
        await session.rollback()
        await session.execute(text(_COPY.format(debtor="debtor_id")), {"id": action})
        assert await session.scalar(text(
            "SELECT count(*) FROM actions WHERE debtor_id = :d"), {"d": one}) == 2
        await session.execute(text("DELETE FROM debtors WHERE id = :d"), {"d": one})
        assert await session.scalar(text(
            "SELECT count(*) FROM actions WHERE debtor_id = :d"), {"d": one}) == 0
        assert await session.scalar(text(
            "SELECT count(*) FROM actions WHERE debtor_id = :d"), {"d": two}) == 1
        await session.rollback()


UNIQUE = "uq_actions_debtor_id_enrollment_id_step_index_due_on_attempt"
"""The actions' unique key, led by the debtor (migration 0050)."""


async def test_a_debtors_actions_are_found_by_the_unique_key_and_no_other_full_index(
        tenant: TenantClient, app: Litestar) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    debtor = await late_debtor(tenant, "U1")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        await plan_tenant(session, current_host(), tenant.tenant_id)
        await session.commit()
        conn = await session.connection()
        found = await conn.run_sync(lambda c: inspect(c).get_indexes("actions"))
        unique = await conn.run_sync(lambda c: inspect(c).get_unique_constraints("actions"))
        # A planned action is an entry of the primary key, the unique key, the day index
        # and the partial indexes its status puts it in; no debtor index besides.
        full = sorted(i["name"] for i in found if i.get("dialect_options", {}).get(
            f"{conn.dialect.name}_where") is None and i["name"] != UNIQUE)
        assert full == ["ix_actions_tenant_due"]
        assert [u["column_names"] for u in unique if u["name"] == UNIQUE] == [
            ["debtor_id", "enrollment_id", "step_index", "due_on", "attempt"]]
        action = await session.scalar(text(
            "SELECT id FROM actions WHERE debtor_id = :d"), {"d": debtor})
        # The unique key still holds: the same (enrollment, step, day, attempt) is refused.
        with pytest.raises(IntegrityError):
            await session.execute(text(_COPY.format(debtor="debtor_id").replace(
                "attempt + 1", "attempt")), {"id": action})
            await session.commit()
        await session.rollback()
        if conn.dialect.name != "postgresql":
            return
        # The look-ups by debtor and by (debtor, enrollment) go through it. The day index
        # is dropped for the check (rolled back below): for one debtor's rows its cost ties
        # with the unique key's, and which one the planner takes then is a coin toss.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("DROP INDEX ix_actions_tenant_due"))
        for query in ("SELECT id FROM actions WHERE tenant_id = :t AND debtor_id = :d "
                      "AND due_on >= CURRENT_DATE - 30",
                      "SELECT id FROM actions WHERE debtor_id = :d AND enrollment_id IN "
                      "(SELECT id FROM enrollments WHERE debtor_id = :d)"):
            plan = "\n".join(r[0] for r in (await session.execute(
                text(f"EXPLAIN {query}"), {"t": tenant.tenant_id, "d": debtor})).all())
            assert UNIQUE in plan, plan
        await session.rollback()
