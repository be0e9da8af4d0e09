"""The host's sync engine with the real Business One connector (``sap_b1``) against its
strict Service Layer fake: a sync through the API, a payment posted back through the
outbox, and the next sync matching it instead of counting it twice."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar
from sqlalchemy import func, select

from cartera.erpsync.jobs import erp_housekeeping
from cartera.payments.models import Payment
from cartera.portfolio.models import DebtorBalance
from tests.conftest import TenantClient
from tests.erpsync.test_sync import RunJobs, get_run, obligations, start

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "erp_sap" / "tests"))
b1fake: Any = pytest.importorskip("sap_fake_b1")


@pytest.fixture
def service_layer() -> Iterator[Any]:
    with FakeHTTPServer() as server:
        yield b1fake.FakeServiceLayer(server).install()


async def test_b1_sync_write_back_and_match(tenant: TenantClient, service_layer: Any,
                                            app: Litestar, run_jobs: RunJobs) -> None:
    r = await tenant.api.post("/v1/integrations", json={
        "name": "B1", "provider_kind": "erp", "provider_name": "sap_b1",
        "config": {"base_url": service_layer.server.base_url + b1fake.ROOT,
                   "company_db": b1fake.COMPANY_DB, "local_currency": "ARS",
                   "currency_aliases": {"$": "ARS"},
                   "transfer_account": b1fake.TRANSFER_ACCOUNT},
        "secrets": {"username": b1fake.USERNAME, "password": b1fake.PASSWORD}})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await tenant.api.put(f"/v1/integrations/{iid}/sync-settings",
                             json={"page_size": 3, "write_back": True})
    assert r.status_code == 200, r.text
    run_id = await start(tenant, iid)
    await run_jobs()
    run = await get_run(tenant, iid, run_id)
    assert run["status"] == "succeeded", run
    found = await obligations(app, tenant.tenant_id)
    assert found["INV-45002"].outstanding_minor == 101000  # 1,210.00 less 200.00 paid
    assert found["INV-45002"].currency == "ARS"
    assert service_layer.logouts >= 1  # the session ended with the run

    # A collector records a payment of C00002's invoice; the outbox posts it to B1.
    r = await tenant.api.post("/v1/payments", json={
        "debtor_external_ref": "C00002", "currency": "ARS", "amount": "1210.00",
        "paid_on": "2026-11-20", "allocations": [
            {"obligation_id": found["INV-45001"].id, "amount": "1210.00"}]})
    assert r.status_code == 201, r.text
    await erp_housekeeping(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()
    [posting] = (await tenant.api.get(f"/v1/integrations/{iid}/postings")).json()["data"]
    assert posting["status"] == "posted" and posting["erp_document_id"], posting
    assert len(service_layer.payments) == 1

    # B1 now shows INV-45001 paid; the next sync must not pay it twice.
    async with app.state.ctx.sessionmaker() as session:
        before = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id))
    run_id = await start(tenant, iid)
    await run_jobs()
    assert (await get_run(tenant, iid, run_id))["status"] == "succeeded"
    found = await obligations(app, tenant.tenant_id)
    assert found["INV-45001"].outstanding_minor == 0
    async with app.state.ctx.sessionmaker() as session:
        after = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id))
        unapplied = await session.scalar(select(func.sum(Payment.unapplied_minor)).where(
            Payment.tenant_id == tenant.tenant_id))
    assert after == before and unapplied == 0
    await erp_housekeeping(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()
    assert len(service_layer.payments) == 1
