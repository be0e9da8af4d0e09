"""Write-back through the outbox, and a payment recorded in both Cartera and the ERP matched
rather than doubled (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import func, select, update

from cartera.erpsync import postings
from cartera.erpsync.jobs import erp_housekeeping
from cartera.erpsync.models import ErpPosting
from cartera.payments.models import Payment
from cartera.portfolio.models import DebtorBalance
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector, debtor, item, payment
from tests.erpsync.test_sync import RunJobs, erp_integration, obligations, sync_now


async def _setup(t: TenantClient, fake: FakeErpConnector, run_jobs: RunJobs) -> int:
    iid = await erp_integration(t, write_back=True)
    ledger = fake.ledger(iid)
    ledger.put_debtor(debtor("C1"))
    ledger.put_item(item("INV-1", "C1", "100.00", due=date(2026, 9, 1)))
    ledger.put_item(item("INV-2", "C1", "250.00", due=date(2026, 10, 1)))
    assert (await sync_now(t, iid, run_jobs))["status"] == "succeeded"
    return iid


async def _pay(t: TenantClient, amount: str) -> int:
    r = await t.api.post("/v1/payments", json={
        "debtor_external_ref": "C1", "currency": "PEN", "amount": amount,
        "paid_on": "2026-11-20", "method": "transfer", "reference": "OP-77"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _postings(t: TenantClient, iid: int) -> list[dict[str, Any]]:
    r = await t.api.get(f"/v1/integrations/{iid}/postings")
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def _housekeeping(app: Litestar, run_jobs: RunJobs) -> None:
    await erp_housekeeping(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()


async def _due_now(app: Litestar) -> None:
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(ErpPosting).where(ErpPosting.status == "pending")
                              .values(next_attempt_at=func.now()))
        await session.commit()


async def _money(app: Litestar, t: int) -> tuple[int, int]:
    """(outstanding of the tenant's debtors, unapplied of its payments)."""
    async with app.state.ctx.sessionmaker() as session:
        outstanding = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor))
                                           .where(DebtorBalance.tenant_id == t))
        unapplied = await session.scalar(select(func.coalesce(func.sum(
            Payment.unapplied_minor), 0)).where(Payment.tenant_id == t))
    return int(outstanding or 0), int(unapplied or 0)


async def test_payment_is_posted_and_not_doubled_when_the_erp_clears_it(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _setup(tenant, fake, run_jobs)
    ledger = fake.ledger(iid)
    payment_id = await _pay(tenant, "100.00")
    await _housekeeping(app, run_jobs)
    [posting] = await _postings(tenant, iid)
    assert (posting["payment_id"], posting["status"], posting["erp_document_id"]) == (
        payment_id, "posted", "RCT-1")
    key, (doc, sent) = next(iter(ledger.posted.items()))
    assert key == f"cartera-payment-{payment_id}" and doc == "RCT-1"
    assert [(a.open_item_external_id, str(a.amount.amount)) for a in sent.allocations] == [
        ("INV-1", "100.00")]
    assert await _money(app, tenant.tenant_id) == (25000, 0)

    # The ERP cleared INV-1 with Cartera's payment and lists that receipt among its payments.
    ledger.put_payment(payment("RCT-1/INV-1", "C1", "INV-1", "100.00", document="RCT-1"))
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded" and run["payments_matched"] == 1, run
    found = await obligations(app, tenant.tenant_id)
    assert (found["INV-1"].outstanding_minor, found["INV-1"].status) == (0, "paid")
    assert await _money(app, tenant.tenant_id) == (25000, 0)  # not paid twice, no credit
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Payment).where(
            Payment.tenant_id == tenant.tenant_id)) == 1
    await _housekeeping(app, run_jobs)
    assert ledger.post_calls == 1  # posted once, never again


async def test_erp_down_stays_pending_with_backoff_then_posts_once(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _setup(tenant, fake, run_jobs)
    ledger = fake.ledger(iid)
    await _pay(tenant, "40.00")
    ledger.post_fault = "down"
    await _housekeeping(app, run_jobs)
    [posting] = await _postings(tenant, iid)
    assert posting["status"] == "pending" and posting["attempts"] == 1
    assert "erp_unavailable" in posting["message"] and posting["next_attempt_at"]
    await _housekeeping(app, run_jobs)  # not due yet: nothing is tried
    assert ledger.post_calls == 1
    # The answer to the next post is lost after the ERP booked it: still pending...
    ledger.post_fault = "lost"
    await _due_now(app)
    await _housekeeping(app, run_jobs)
    [posting] = await _postings(tenant, iid)
    assert posting["status"] == "pending" and posting["attempts"] == 2
    # ...and the retry's look-up finds the receipt: posted, once.
    await _due_now(app)
    await _housekeeping(app, run_jobs)
    [posting] = await _postings(tenant, iid)
    assert (posting["status"], posting["erp_document_id"]) == ("posted", "RCT-1")
    assert len(ledger.posted) == 1 and ledger.post_calls == 3


async def test_rejected_posting_shows_the_erp_message(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _setup(tenant, fake, run_jobs)
    fake.ledger(iid).post_fault = "reject"
    payment_id = await _pay(tenant, "10.00")
    await _housekeeping(app, run_jobs)
    r = await tenant.api.get(f"/v1/integrations/{iid}/postings",
                             params={"status": "rejected", "payment_id": payment_id})
    [posting] = r.json()["data"]
    assert posting["message"] == "Invoice INV-1 is already closed"
    assert posting["next_attempt_at"] is None
    await _housekeeping(app, run_jobs)
    assert fake.ledger(iid).post_calls == 1


async def test_the_payment_shows_its_erp_posting(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    """``GET /v1/payments/{id}`` (and the list) carries the posting: pending with the
    failure and the attempt, posted with the ERP document, rejected with the ERP's message;
    a payment the outbox has not queued has none."""
    iid = await _setup(tenant, fake, run_jobs)
    ledger = fake.ledger(iid)
    payment_id = await _pay(tenant, "40.00")
    r = await tenant.api.get(f"/v1/payments/{payment_id}")
    assert r.status_code == 200 and r.json()["erp_posting"] is None  # not queued yet
    ledger.post_fault = "down"
    await _housekeeping(app, run_jobs)
    shown = (await tenant.api.get(f"/v1/payments/{payment_id}")).json()["erp_posting"]
    assert (shown["integration_id"], shown["status"], shown["attempts"],
            shown["erp_document_id"]) == (iid, "pending", 1, None)
    assert "erp_unavailable" in shown["message"] and shown["last_attempt_at"]
    assert shown["posted_at"] is None
    ledger.post_fault = None
    await _due_now(app)
    await _housekeeping(app, run_jobs)
    shown = (await tenant.api.get(f"/v1/payments/{payment_id}")).json()["erp_posting"]
    assert (shown["status"], shown["erp_document_id"], shown["attempts"]) == (
        "posted", "RCT-1", 2)
    assert shown["posted_at"] and shown["last_attempt_at"]
    [listed] = (await tenant.api.get("/v1/payments")).json()["data"]
    assert listed["erp_posting"] == shown
    [posting] = await _postings(tenant, iid)
    assert posting["last_attempt_at"] == shown["last_attempt_at"]

    ledger.post_fault = "reject"
    rejected_id = await _pay(tenant, "10.00")
    await _housekeeping(app, run_jobs)
    shown = (await tenant.api.get(f"/v1/payments/{rejected_id}")).json()["erp_posting"]
    assert (shown["status"], shown["message"], shown["erp_document_id"]) == (
        "rejected", "Invoice INV-1 is already closed", None)


async def test_a_payment_without_erp_write_back_has_no_posting(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, write_back=False)
    fake.ledger(iid).put_debtor(debtor("C1"))
    fake.ledger(iid).put_item(item("INV-1", "C1", "100.00"))
    await sync_now(tenant, iid, run_jobs)
    payment_id = await _pay(tenant, "5.00")
    await _housekeeping(app, run_jobs)
    r = await tenant.api.get(f"/v1/payments/{payment_id}")
    assert r.status_code == 200 and r.json()["erp_posting"] is None


async def test_bank_payment_in_the_erp_comes_in_once_and_is_not_posted_back(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _setup(tenant, fake, run_jobs)
    ledger = fake.ledger(iid)
    # The creditor's bank process cleared INV-2 in the ERP.
    ledger.clear_item("INV-2")
    ledger.put_payment(payment("BANK-9/INV-2", "C1", "INV-2", "250.00", document="BANK-9"))
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded" and run["payments_matched"] == 0, run
    found = await obligations(app, tenant.tenant_id)
    assert (found["INV-2"].outstanding_minor, found["INV-2"].status) == (0, "paid")
    assert found["INV-1"].outstanding_minor == 10000
    assert await _money(app, tenant.tenant_id) == (10000, 0)  # paid once, no credit
    again = await sync_now(tenant, iid, run_jobs, full=True)
    assert again["status"] == "succeeded", again
    assert await _money(app, tenant.tenant_id) == (10000, 0)
    await _housekeeping(app, run_jobs)
    assert await _postings(tenant, iid) == [] and ledger.post_calls == 0


@pytest.mark.parametrize("writes", [False])
async def test_no_write_back_unless_switched_on(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs,
        writes: bool) -> None:
    iid = await erp_integration(tenant, write_back=writes)
    fake.ledger(iid).put_debtor(debtor("C1"))
    fake.ledger(iid).put_item(item("INV-1", "C1", "100.00"))
    await sync_now(tenant, iid, run_jobs)
    await _pay(tenant, "5.00")
    assert await postings.sweep(app.state.ctx.sessionmaker, integration_id=iid) == 0
    assert await _postings(tenant, iid) == []
