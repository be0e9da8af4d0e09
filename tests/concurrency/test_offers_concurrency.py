"""Offers under concurrency on PostgreSQL: an offer paid in full by payments recorded at
once applies its credit note once."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.audit.models import AuditEntry
from cartera.portfolio.models import Obligation
from tests.concurrency import money_invariant_violations
from tests.conftest import TenantClient
from tests.offers.helpers import client_with, debt, offer


async def _race(tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
                api_clients: Any, ref: str,
                amounts: list[str]) -> tuple[int, dict[str, Any]]:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, ref, "60.00", "40.00")
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10")  # pays 90.00
    clients = api_clients(tenant, len(amounts))
    answers = await asyncio.gather(*(c.post("/v1/payments", json={
        "debtor_id": debtor_id, "currency": "PEN", "amount": amount, "paid_on": "2026-12-01",
        "external_ref": f"{ref}-P{i}"})
        for i, (c, amount) in enumerate(zip(clients, amounts, strict=True))))
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    done = (await collector.get(f"/v1/offers/{o['id']}")).json()
    return debtor_id, done


async def _once(pg_engine: AsyncEngine, tenant_id: int, debtor_id: int, offer_id: int) -> None:
    async with pg_engine.connect() as conn:
        notes = (await conn.execute(select(Obligation.original_minor).where(
            Obligation.debtor_id == debtor_id, Obligation.kind == "credit_note"))).all()
        applied = await conn.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.action == "offer.applied",
            AuditEntry.resource_id == str(offer_id)))
    assert notes == [(1000,)]
    assert applied == 1
    assert await money_invariant_violations(pg_engine, tenant_id) == {}


async def test_two_concurrent_payments_completing_an_offer_apply_its_credit_note_once(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar], api_clients: Any,
        pg_engine: AsyncEngine) -> None:
    debtor_id, done = await _race(tenant, app, http, api_clients, "OC-1",
                                  ["45.00", "45.00"])
    assert (done["status"], done["paid_amount"]) == ("applied", "90.00")
    await _once(pg_engine, tenant.tenant_id, debtor_id, done["id"])


async def test_many_concurrent_full_payments_apply_the_credit_note_once(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar], api_clients: Any,
        pg_engine: AsyncEngine) -> None:
    debtor_id, done = await _race(tenant, app, http, api_clients, "OC-2",
                                  ["90.00"] * 6)
    assert done["status"] == "applied"
    await _once(pg_engine, tenant.tenant_id, debtor_id, done["id"])
