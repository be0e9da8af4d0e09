"""Races on PostgreSQL: two sync runs of one integration at once (the job lock normally
prevents it; the cursor's compare-and-set makes it harmless), and several outbox workers
posting at once (each payment posted once)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import func, select

from cartera.api.context import Actor
from cartera.erpsync import postings, sync
from cartera.erpsync.models import ErpPosting, ErpSyncRun
from cartera.integrations.models import Integration
from cartera.portfolio.models import DebtorBalance, Obligation
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector, debtor, item
from tests.erpsync.test_sync import RunJobs, erp_integration, sync_now

pytestmark = pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")


async def _progress(done: int, total: int) -> None:
    return None


async def test_two_runs_at_once_apply_each_page_once(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "APPLY_ROWS", 14)  # two ERP pages a transaction: many of them
    iid = await erp_integration(tenant, page_size=7)
    ledger = fake.ledger(iid)
    for c in range(10):
        ledger.put_debtor(debtor(f"R{c}"))
        for n in range(12):
            ledger.put_item(item(f"R{c}-{n}", f"R{c}", f"{n + 1}.25"))
    ledger.page_delay = 0.005
    sessionmaker = app.state.ctx.sessionmaker
    async with sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        integration = await session.get(Integration, iid)
        assert integration is not None
        runs = [await sync.queue_run(session, app.state.ctx.jobs, integration,
                                     trigger="manual") for _ in range(3)]
        await session.commit()
    actor = Actor(tenant.tenant_id, None, None)

    async def one(run_id: int) -> Any:
        try:
            return await sync.run_sync(sessionmaker, run_id, actor, _progress, may_retry=False)
        except sync.SyncFailed as exc:
            return exc

    outcomes = await asyncio.gather(*(one(r.id) for r in runs))
    assert any(isinstance(o, ErpSyncRun) for o in outcomes), outcomes
    async with sessionmaker() as session:
        rows_in = await session.scalar(select(func.sum(ErpSyncRun.rows_in)).where(
            ErpSyncRun.id.in_([r.id for r in runs])))
        count, total = (await session.execute(select(
            func.count(), func.sum(Obligation.original_minor)).where(
            Obligation.tenant_id == tenant.tenant_id))).one()
        balance = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id))
    assert rows_in == 10 + 120  # no page counted (applied) by two runs
    assert count == 120 and total == balance == sum(
        int(i.original_amount.amount * 100) for i in ledger.items.values())


async def test_outbox_workers_at_once_post_each_payment_once(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, write_back=True)
    ledger = fake.ledger(iid)
    ledger.put_debtor(debtor("C1"))
    ledger.put_item(item("INV-1", "C1", "1000.00"))
    assert (await sync_now(tenant, iid, run_jobs))["status"] == "succeeded"
    for n in range(8):
        r = await tenant.api.post("/v1/payments", json={
            "debtor_external_ref": "C1", "currency": "PEN", "amount": f"{n + 1}.00",
            "paid_on": "2026-11-20"})
        assert r.status_code == 201, r.text
    sessionmaker = app.state.ctx.sessionmaker
    assert sum(await asyncio.gather(*(postings.sweep(sessionmaker) for _ in range(3)))) >= 8
    await asyncio.gather(*(postings.post_due(sessionmaker, iid, tenant.tenant_id)
                           for _ in range(4)))
    async with sessionmaker() as session:
        states = (await session.execute(select(ErpPosting.status, func.count()).where(
            ErpPosting.integration_id == iid).group_by(ErpPosting.status))).all()
    assert dict(states) == {"posted": 8}
    assert ledger.post_calls == 8 and len(ledger.posted) == 8
