"""An action's one foreign key (migration 0047): it names its enrollment's tenant and
debtor, never another debtor, and a debtor's deletion still takes their actions."""

from __future__ import annotations

import pytest
from litestar import Litestar
from sqlalchemy import text
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
