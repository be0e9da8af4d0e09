"""The demo collects: a strategy per demo segment, planned actions and an explained next
action right after loading; configuring twice changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Litestar
from sqlalchemy import func, select

from cartera.clock import today_in
from cartera.demo.generator import load_demo_portfolio
from cartera.demo.strategies import configure
from cartera.plugins.registry import current_host
from cartera.strategies.models import Action, Strategy
from tests.conftest import TenantClient


async def test_demo_configures_strategies_and_plans(
        app: Litestar, make_tenant: Callable[..., Awaitable[TenantClient]]) -> None:
    tenant = await make_tenant()
    async with app.state.ctx.sessionmaker() as session:
        await load_demo_portfolio(session, tenant.tenant_id, 120, 7, today_in("America/Lima"))
        result = await configure(session, current_host(), tenant.tenant_id)
        await session.commit()
        assert result is not None and result.enrolled > 0 and result.planned > 0
        assert await configure(session, current_host(), tenant.tenant_id) is None
        strategies = await session.scalar(select(func.count()).select_from(Strategy).where(
            Strategy.tenant_id == tenant.tenant_id))
        debtor_id = await session.scalar(select(Action.debtor_id).where(
            Action.tenant_id == tenant.tenant_id).limit(1))
    assert strategies == 3
    listed = (await tenant.api.get("/v1/actions", params={"limit": 5})).json()["data"]
    assert listed and {a["kind"] for a in listed} == {"message"}
    r = await tenant.api.get(f"/v1/debtors/{debtor_id}/next-action")
    assert r.status_code == 200 and r.json()["actions"], r.text
    sid = (await tenant.api.get("/v1/strategies")).json()["data"][0]["id"]
    sim = await tenant.api.post(f"/v1/strategies/{sid}/simulate", json={"days": 7})
    assert sim.status_code == 200 and len(sim.json()["days"]) == 7, sim.text
