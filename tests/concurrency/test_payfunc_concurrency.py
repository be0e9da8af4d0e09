"""Getting paid under concurrency on PostgreSQL: a strategy step's payment link made by
several workers at once is one link (one provider preference); an import's payments and an
API payment completing the same offer at once apply its credit note once."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.jobs.registry import JobContext
from cartera.messaging.models import Interaction
from cartera.payments.models import PaymentLink
from cartera.strategies.paylinks import payment_links_job
from tests.concurrency import money_invariant_violations
from tests.concurrency.test_offers_concurrency import _once
from tests.conftest import TenantClient
from tests.imports.test_import_offers import _debtor, _invoice, _payment
from tests.imports.test_imports import debtor_by_ref, ndjson, run_import, upload
from tests.offers.helpers import client_with, offer
from tests.payments.mp import integration, mercadopago
from tests.strategies.helpers import (
    late_debtor,
    message_step,
    plan,
    provider,
    segments,
    sms_integration,
    strategy,
)
from tests.strategies.test_payment_link_steps import _dispatch, _interactions, _link_template

__all__ = ["mercadopago", "provider"]
N = 4


async def test_workers_making_one_debtors_step_links_at_once_make_one_link(
        tenant: TenantClient, app: Litestar, provider: Any, mercadopago: Any,
        pg_engine: AsyncEngine, run_jobs: Any) -> None:
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    await late_debtor(tenant, "PC-1")
    # two strategies: two messages to one debtor, both asking for the balance link
    for code in ("a", "b"):
        await strategy(tenant, code, [seg["late"]], [
            message_step("one", tpl, payment_link={"amount": "balance"})])
    await plan(tenant, run_jobs)
    await _dispatch(app, tenant)
    held = [i.id for i in await _interactions(app, tenant.tenant_id)]
    assert held
    results = await asyncio.gather(*(payment_links_job(JobContext(
        job_id=0, tenant_id=tenant.tenant_id, payload={"interaction_ids": held},
        sessionmaker=app.state.ctx.sessionmaker)) for _ in range(N)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)
                and "to retry" not in str(r)], results
    await run_jobs()
    async with pg_engine.connect() as conn:
        links = (await conn.execute(select(PaymentLink.url, PaymentLink.status).where(
            PaymentLink.tenant_id == tenant.tenant_id))).all()
        variables = (await conn.scalars(select(Interaction.variables).where(
            Interaction.id.in_(held)))).all()
    assert len(links) == 1 and links[0].status == "open"
    assert len(mercadopago.preferences) == 1
    assert all(v == {"payment_link": links[0].url} for v in variables), variables


async def test_an_import_and_an_api_payment_completing_one_offer_apply_it_once(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
        api_clients: Any, pg_engine: AsyncEngine, run_jobs: Any) -> None:
    done = await run_import(tenant, run_jobs, ndjson(
        _debtor("PC-2"), _invoice("PC-2-F", "PC-2", "100.00")))
    assert done["status"] == "succeeded", done
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor = await debtor_by_ref(tenant, "PC-2")
    assert debtor is not None
    o = await offer(collector, debtor_id=debtor["id"], discount_percent="10")  # pays 90.00
    await upload(tenant, ndjson(_payment("PC-2-P1", "PC-2", "90.00")))
    [client] = api_clients(tenant, 1)
    _, paid = await asyncio.gather(run_jobs(), client.post("/v1/payments", json={
        "debtor_id": debtor["id"], "currency": "PEN", "amount": "90.00",
        "paid_on": "2026-12-01", "external_ref": "PC-2-API"}))
    assert paid.status_code == 201, paid.text
    final = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert final["status"] == "applied"
    await _once(pg_engine, tenant.tenant_id, debtor["id"], o["id"])
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
