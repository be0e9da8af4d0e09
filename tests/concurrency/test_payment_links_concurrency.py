"""Payment links and reconciliation under concurrency on PostgreSQL: several connections
asking for a debtor's link at once make one link; one notification delivered many times at
once makes one payment."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from cartera_sdk.payments import PaymentEvent
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.payments.models import Payment, PaymentLink
from cartera.payments.reconcile import reconcile_event
from cartera.plugins.registry import current_host
from tests.concurrency import money_invariant_violations
from tests.conftest import TenantClient
from tests.payments.mp import debt, integration, mercadopago

__all__ = ["mercadopago"]
N = 8


async def test_concurrent_requests_make_one_link(
        tenant: TenantClient, api_clients: Any, pg_engine: AsyncEngine, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "C-1", "120.00")
    clients: list[httpx.AsyncClient] = api_clients(tenant, N)
    answers = await asyncio.gather(*(c.post("/v1/payment-links", json={
        "debtor_id": debtor_id, "currency": "PEN"}) for c in clients))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len({r.json()["url"] for r in answers}) == 1
    assert sorted(r.json()["reused"] for r in answers) == [False] + [True] * (N - 1)
    async with pg_engine.connect() as conn:
        links = await conn.scalar(select(func.count()).select_from(PaymentLink).where(
            PaymentLink.tenant_id == tenant.tenant_id))
    assert links == 1
    assert len(mercadopago.preferences) == 1  # every call carried the one row's key


async def test_one_notification_delivered_many_times_at_once_makes_one_payment(
        tenant: TenantClient, app: Litestar, pg_engine: AsyncEngine, mercadopago: Any) -> None:
    integ = await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "C-2", "120.00")
    r = await tenant.api.post("/v1/payment-links", json={"debtor_id": debtor_id,
                                                         "currency": "PEN"})
    link = r.json()
    mercadopago.add_payment("7001", "120.00", external_reference=f"plink_{link['id']}")
    events = [PaymentEvent(event_id=f"n-{i % 3}", kind="payment", action="payment.updated",
                           resource_id="7001") for i in range(N)]
    outcomes = await asyncio.gather(*(
        reconcile_event(app.state.ctx.sessionmaker, current_host(), integ["id"], e)
        for e in events))
    assert sorted(outcomes) == ["recorded"] + ["unchanged"] * (N - 1)
    async with pg_engine.connect() as conn:
        payments = (await conn.execute(select(Payment.amount_minor, Payment.status).where(
            Payment.tenant_id == tenant.tenant_id))).all()
    assert payments == [(12000, "applied")]
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
    # and a refund seen by many at once reverses it once
    mercadopago.payments["7001"].update(status="refunded", status_detail="refunded")
    mercadopago.payments["7001"]["transaction_amount_refunded"] = \
        mercadopago.payments["7001"]["transaction_amount"]
    outcomes = await asyncio.gather(*(
        reconcile_event(app.state.ctx.sessionmaker, current_host(), integ["id"], e)
        for e in events))
    assert sorted(outcomes) == ["reversed"] + ["unchanged"] * (N - 1)
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
