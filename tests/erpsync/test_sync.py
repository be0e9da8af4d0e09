"""The host's ERP sync through the real app: first and delta syncs, resumable cursors,
faults, row errors, closing, run history (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pytest
from cartera_sdk.erp import ErpRowError
from litestar import Litestar
from sqlalchemy import func, select, update

from cartera.erpsync import sync
from cartera.erpsync.models import ErpSyncCursor, ErpSyncRun
from cartera.jobs.models import Job
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector, Ledger, debtor, item

RunJobs = Callable[[], Awaitable[int]]


async def erp_integration(t: TenantClient, **settings: Any) -> int:
    r = await t.api.post("/v1/integrations", json={
        "name": "SAP", "provider_kind": "erp", "provider_name": "fake_erp", "config": {},
        "secrets": {}})
    assert r.status_code == 201, r.text
    iid = int(r.json()["id"])
    if settings:
        r = await t.api.put(f"/v1/integrations/{iid}/sync-settings", json=settings)
        assert r.status_code == 200, r.text
    return iid


async def start(t: TenantClient, iid: int, *, full: bool = False) -> int:
    r = await t.api.post(f"/v1/integrations/{iid}/sync", json={"full": full})
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


async def get_run(t: TenantClient, iid: int, run_id: int) -> dict[str, Any]:
    runs = (await t.api.get(f"/v1/integrations/{iid}/syncs", params={"limit": 100})).json()
    return next(r for r in runs["data"] if r["id"] == run_id)


async def sync_now(t: TenantClient, iid: int, run_jobs: RunJobs, *,
                   full: bool = False) -> dict[str, Any]:
    run_id = await start(t, iid, full=full)
    await run_jobs()
    return await get_run(t, iid, run_id)


async def retry_now(app: Litestar, run_jobs: RunJobs, t: TenantClient, iid: int,
                    run_id: int) -> dict[str, Any]:
    """Run a retrying run's job now instead of after its backoff."""
    async with app.state.ctx.sessionmaker() as session:
        job_id = await session.scalar(select(ErpSyncRun.job_id).where(ErpSyncRun.id == run_id))
        await session.execute(update(Job).where(Job.id == job_id).values(run_after=None))
        await session.commit()
    await run_jobs()
    return await get_run(t, iid, run_id)


async def obligations(app: Litestar, tenant_id: int) -> dict[str, Obligation]:
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.scalars(select(Obligation).where(
            Obligation.tenant_id == tenant_id))).all()
    return {o.external_ref: o for o in rows}


def seed(ledger: Ledger, customers: int = 3, per_customer: int = 4) -> None:
    for c in range(1, customers + 1):
        ledger.put_debtor(debtor(f"C{c:03}", email=f"c{c}@example.com"))
        for n in range(1, per_customer + 1):
            ledger.put_item(item(f"INV-{c:03}-{n}", f"C{c:03}", f"{100 * n}.50"))


async def test_first_sync_then_delta(tenant: TenantClient, fake: FakeErpConnector,
                                     app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, page_size=5)
    ledger = fake.ledger(iid)
    seed(ledger)
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded", run
    assert (run["rows_in"], run["rows_changed"], run["rows_failed"]) == (15, 15, 0)
    assert run["started_at"] and run["finished_at"] and run["pages"] >= 4
    assert set(run["cursors"]) == {"debtors", "open_items", "payments"}
    found = await obligations(app, tenant.tenant_id)
    assert len(found) == 12
    assert found["INV-002-3"].original_minor == 30050
    assert found["INV-002-3"].outstanding_minor == 30050
    async with app.state.ctx.sessionmaker() as session:
        balance = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id))
        emails = (await session.scalars(select(ContactPoint.value).where(
            ContactPoint.tenant_id == tenant.tenant_id))).all()
    assert balance == sum(o.original_minor for o in found.values())
    assert sorted(emails) == ["c1@example.com", "c2@example.com", "c3@example.com"]

    # Nothing changed in the ERP: a delta run reads nothing and changes nothing.
    again = await sync_now(tenant, iid, run_jobs)
    assert (again["status"], again["rows_in"], again["rows_changed"]) == ("succeeded", 0, 0)

    # One changed amount, one cleared, one new (of a new customer).
    ledger.put_item(item("INV-001-1", "C001", "100.50", open_amount="40.00"))
    ledger.clear_item("INV-001-2")
    ledger.put_debtor(debtor("C009"))
    ledger.put_item(item("INV-009-1", "C009", "75.00"))
    delta = await sync_now(tenant, iid, run_jobs)
    assert (delta["status"], delta["rows_in"], delta["rows_changed"]) == ("succeeded", 4, 4)
    found = await obligations(app, tenant.tenant_id)
    assert found["INV-001-1"].outstanding_minor == 4000
    assert (found["INV-001-2"].outstanding_minor, found["INV-001-2"].status) == (0, "paid")
    assert found["INV-009-1"].outstanding_minor == 7500
    assert len(found) == 13
    assert fake.closed >= 3  # the session is closed at the end of each run


async def test_fault_mid_run_keeps_the_cursor_and_resumes(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, page_size=4)
    ledger = fake.ledger(iid)
    seed(ledger, customers=2, per_customer=6)  # debtors: 1 page; items: 3 pages
    # debtors page, items page 1, then items page 2 fails on every in-run try.
    ledger.faults = [None, None, "down", "5xx", "expired"]
    run_id = await start(tenant, iid)
    await run_jobs()
    run = await get_run(tenant, iid, run_id)
    assert run["status"] == "retrying" and "erp_unavailable" in run["error"], run
    assert (run["rows_in"], run["rows_failed"]) == (6, 0)  # 2 debtors + the first 4 items
    assert len(await obligations(app, tenant.tenant_id)) == 4  # never half a page
    async with app.state.ctx.sessionmaker() as session:
        cursor = await session.scalar(select(ErpSyncCursor).where(
            ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == "open_items"))
        job = await session.scalar(select(Job).join(ErpSyncRun, ErpSyncRun.job_id == Job.id)
                                   .where(ErpSyncRun.id == run_id))
    assert cursor is not None and not cursor.resting and '"off": 4' in (cursor.cursor or "")
    assert job is not None and job.status == "queued" and job.run_after is not None  # backoff
    # The balances of what was applied are current even though the run is not done.
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id)) == sum(
            o.original_minor for o in (await obligations(app, tenant.tenant_id)).values())

    pulls_before = len(ledger.pulls)
    run = await retry_now(app, run_jobs, tenant, iid, run_id)
    assert run["status"] == "succeeded", run
    assert (run["rows_in"], run["rows_failed"]) == (14, 0)  # each row counted once
    assert len(await obligations(app, tenant.tenant_id)) == 12
    # The retry resumed at the stored cursor (no debtor or first item page pulled again).
    assert ledger.pulls[pulls_before][0] == "open_items"
    assert '"off": 4' in (ledger.pulls[pulls_before][1] or "")


async def test_timeout_and_repeated_page_apply_nothing(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, page_size=4)
    ledger = fake.ledger(iid)
    seed(ledger, customers=1, per_customer=8)
    ledger.faults = [None, None, "repeat", "repeat", "repeat"]
    run_id = await start(tenant, iid)
    await run_jobs()
    run = await get_run(tenant, iid, run_id)
    assert run["status"] == "retrying" and "repeated" in run["error"], run
    assert len(await obligations(app, tenant.tenant_id)) == 4
    ledger.faults = ["timeout"]  # the host's plugin timeout (1 s in the tests), then fine
    run = await retry_now(app, run_jobs, tenant, iid, run_id)
    assert run["status"] == "succeeded", run
    assert len(await obligations(app, tenant.tenant_id)) == 8
    assert run["rows_in"] == 9


async def test_permanent_failure_fails_the_run_and_keeps_the_cursor(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant)
    ledger = fake.ledger(iid)
    seed(ledger, customers=1, per_customer=1)
    ledger.faults = ["permanent"]
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "failed" and "bad_credentials" in run["error"], run
    assert run["finished_at"] is not None
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded" and run["rows_in"] == 2


async def test_bad_rows_are_row_errors_and_the_rest_applies(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, page_size=50)
    ledger = fake.ledger(iid)
    ledger.put_debtor(debtor("C1"))
    ledger.put_item(item("INV-1", "C1", "10.00"))
    ledger.put_item(item("INV-2", "C1", "10.00", currency="ZZZ"))  # not a currency Cartera knows
    ledger.put_item(item("INV-3", "NOPE", "10.00"))  # a customer the ERP never sent
    ledger.put_item(item("INV-4", "C1", "10.00", open_amount="11.00"))
    ledger.put_bad_row("open_items", ErpRowError(row_key="INV-5", code="malformed_row",
                                                 message="DocTotal is not a number"))
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded", run
    assert (run["rows_in"], run["rows_failed"]) == (6, 4)
    assert set(await obligations(app, tenant.tenant_id)) == {"INV-1"}
    errors = (await tenant.api.get(f"/v1/integrations/{iid}/sync-errors",
                                   params={"sync_id": run["id"]})).json()["data"]
    assert {(e["row_key"], e["code"]) for e in errors} == {
        ("INV-2", "unknown_currency"), ("INV-3", "unknown_debtor"),
        ("INV-4", "outstanding_exceeds_original"), ("INV-5", "malformed_row")}
    assert all(e["stream"] == "open_items" for e in errors)


async def test_items_gone_from_a_full_pull_close(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant, page_size=3)
    ledger = fake.ledger(iid)
    seed(ledger, customers=1, per_customer=5)
    assert (await sync_now(tenant, iid, run_jobs))["status"] == "succeeded"
    ledger.delete_item("INV-001-2")
    ledger.clear_item("INV-001-3", status="cancelled")
    run = await sync_now(tenant, iid, run_jobs, full=True)
    assert run["status"] == "succeeded" and run["rows_closed"] == 2, run
    found = await obligations(app, tenant.tenant_id)
    assert found["INV-001-2"].status == "cancelled"
    assert found["INV-001-1"].status == "open"
    # cancelled in the ERP: a full pull of open items does not return it; it closes as gone
    assert found["INV-001-3"].status == "cancelled"
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(func.sum(DebtorBalance.outstanding_minor)).where(
            DebtorBalance.tenant_id == tenant.tenant_id)) == 10050 + 40050 + 50050


async def test_erp_owns_amounts_cartera_owns_contacts_and_collection_state(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant)
    ledger = fake.ledger(iid)
    ledger.put_debtor(debtor("C1", email="old@example.com"))
    ledger.put_item(item("INV-1", "C1", "500.00"))
    ledger.put_item(item("INV-2", "C1", "300.00"))
    assert (await sync_now(tenant, iid, run_jobs))["status"] == "succeeded"
    async with app.state.ctx.sessionmaker() as session:
        d = await session.scalar(select(Debtor).where(Debtor.tenant_id == tenant.tenant_id,
                                                      Debtor.external_ref == "C1"))
        assert d is not None
        await session.execute(update(Debtor).where(Debtor.id == d.id).values(
            risk_score=720, zone="Lima Norte", timezone="America/Bogota"))
        await session.execute(update(ContactPoint).where(ContactPoint.debtor_id == d.id).values(
            consent="revoked"))
        await session.execute(update(Obligation).where(
            Obligation.tenant_id == tenant.tenant_id, Obligation.external_ref == "INV-1")
            .values(status="disputed"))
        await session.commit()
    ledger.put_debtor(debtor("C1", name="Renamed", email="old@example.com"))
    ledger.put_item(item("INV-1", "C1", "450.00", open_amount="450.00"))
    ledger.put_item(item("INV-2", "C1", "300.00", due=date(2026, 12, 15)))
    assert (await sync_now(tenant, iid, run_jobs))["status"] == "succeeded"
    found = await obligations(app, tenant.tenant_id)
    assert (found["INV-1"].original_minor, found["INV-1"].status) == (45000, "disputed")
    assert str(found["INV-2"].due_date) == "2026-12-15"
    async with app.state.ctx.sessionmaker() as session:
        d = await session.scalar(select(Debtor).where(Debtor.tenant_id == tenant.tenant_id,
                                                      Debtor.external_ref == "C1"))
        consent = await session.scalar(select(ContactPoint.consent).where(
            ContactPoint.tenant_id == tenant.tenant_id))
    assert d is not None
    assert (d.name, d.risk_score, d.zone, d.timezone) == (
        "Renamed C1", 720, "Lima Norte", "America/Bogota")
    assert consent == "revoked"


async def test_on_demand_sync_api(tenant: TenantClient, fake: FakeErpConnector,
                                  make_tenant: Any, run_jobs: RunJobs) -> None:
    iid = await erp_integration(tenant)
    run_id = await start(tenant, iid)
    again = await tenant.api.post(f"/v1/integrations/{iid}/sync", json={})
    assert again.status_code == 409 and again.json()["code"] == "sync_in_progress"
    key = {"Idempotency-Key": "sync-once-1"}
    await run_jobs()
    first = await tenant.api.post(f"/v1/integrations/{iid}/sync", json={}, headers=key)
    replay = await tenant.api.post(f"/v1/integrations/{iid}/sync", json={}, headers=key)
    assert first.status_code == replay.status_code == 202
    assert first.json()["id"] == replay.json()["id"] != run_id
    await run_jobs()
    other = await make_tenant()
    assert (await other.api.get(f"/v1/integrations/{iid}/syncs")).status_code == 404
    assert (await other.api.post(f"/v1/integrations/{iid}/sync", json={})).status_code == 404
    job = (await tenant.api.get(f"/v1/jobs/{first.json()['job_id']}")).json()
    assert job["status"] == "succeeded"


async def test_schedule_every_n_minutes_and_at_local_times(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    from datetime import UTC, datetime, timedelta

    import time_machine

    iid = await erp_integration(tenant)
    r = await tenant.api.put(f"/v1/integrations/{iid}/sync-settings",
                             json={"every_minutes": 15, "at_times": ["02:30"]})
    body = r.json()
    assert r.status_code == 200 and body["every_minutes"] == 15, body
    nxt = datetime.fromisoformat(body["next_run_at"])
    assert nxt - datetime.now(UTC) <= timedelta(minutes=15, seconds=5)
    # at 02:30 in Lima (UTC-5), the zone of the test tenant
    when = sync.next_run_after(datetime(2026, 12, 2, 7, 0, tzinfo=UTC), None, ["02:30"],
                               "America/Lima")
    assert when == datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
    with time_machine.travel(nxt + timedelta(seconds=1), tick=True):
        assert await sync.queue_scheduled(app.state.ctx.sessionmaker, app.state.ctx.jobs) >= 1
        await run_jobs()
    runs = (await tenant.api.get(f"/v1/integrations/{iid}/syncs")).json()["data"]
    assert [r["trigger"] for r in runs] == ["schedule"] and runs[0]["status"] == "succeeded"


async def test_sync_of_a_non_erp_integration_is_refused(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/integrations", json={
        "name": "SMS", "provider_kind": "channel", "provider_name": "fixture_sms",
        "config": {"base_url": "http://127.0.0.1:9"},
        "secrets": {"api_key": "key", "webhook_secret": "whsec", "verify_token": "tok"}})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    answer = await tenant.api.post(f"/v1/integrations/{iid}/sync", json={})
    assert answer.status_code == 422 and answer.json()["code"] == "not_an_erp_integration"
    assert (await tenant.api.get(f"/v1/integrations/{iid}/syncs")).json()["data"] == []


async def test_consecutive_pages_are_applied_together(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A page transaction applies APPLY_ROWS rows or more (ERP pages merged); the run still
    counts the ERP's pages and the cursor is the one after the batch's last page."""
    from cartera.imports import pipeline

    monkeypatch.setattr(sync, "APPLY_ROWS", 8)
    applied: list[int] = []
    original = pipeline.apply_chunk

    async def counting(conn: Any, t: int, chunk: Any, **kwargs: Any) -> Any:
        applied.append(chunk.rows)
        return await original(conn, t, chunk, **kwargs)

    monkeypatch.setattr(pipeline, "apply_chunk", counting)
    iid = await erp_integration(tenant, page_size=4)
    seed(fake.ledger(iid), customers=2, per_customer=6)  # debtors: 1 page; items: 3 pages
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded", run
    assert applied[:3] == [2, 8, 4]  # the debtors, items pages 1+2, items page 3
    assert run["pages"] >= 4 and run["rows_in"] == 14
    assert len(await obligations(app, tenant.tenant_id)) == 12


async def test_a_full_pull_that_loses_nothing_closes_nothing_and_scans_no_obligations(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    """Closing what a full pull no longer returns first looks whether anything is gone: a
    first sync (nothing seen before) runs no statement over the tenant's obligations for it."""
    from sqlalchemy import event

    engine = app.state.ctx.sessionmaker.kw["bind"].sync_engine
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        iid = await erp_integration(tenant, page_size=5)
        ledger = fake.ledger(iid)
        seed(ledger, customers=2, per_customer=3)
        run = await sync_now(tenant, iid, run_jobs)
        assert run["status"] == "succeeded" and run["rows_closed"] == 0, run
        assert not [s for s in statements if "SET status = 'cancelled'" in s]
        ledger.delete_item("INV-001-2")
        statements.clear()
        run = await sync_now(tenant, iid, run_jobs, full=True)
        assert run["status"] == "succeeded" and run["rows_closed"] == 1, run
        assert [s for s in statements if "SET status = 'cancelled'" in s]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (await obligations(app, tenant.tenant_id))["INV-001-2"].status == "cancelled"
