"""The host's sync engine with the real S/4HANA read connector (``sap_s4hana``) against its
strict OData v2 fake: a first sync through the API, a delta (a changed due date, a new item,
an item cleared by the creditor's bank process), the clearing read back as a Cartera payment
that settles the item once, and an ERP outage mid-run that keeps the cursor at the last good
page and resumes there."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from litestar import Litestar
from sqlalchemy import func, select

from cartera import clock
from cartera.erpsync.models import ErpSyncCursor
from cartera.payments.models import Payment
from cartera.plugins.registry import current_host
from cartera.portfolio.models import DebtorBalance
from tests.conftest import TenantClient
from tests.erpsync.test_sync import RunJobs, get_run, obligations, retry_now, start, sync_now

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "erp_sap" / "tests"))
s4fake: Any = pytest.importorskip("sap_fake_s4")

PAGE = 3


def _ref(i: int) -> str:
    return f"1010/2026/{1800000000 + i}/1"


@pytest.fixture
def s4(app: Litestar, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Real HTTP to a local server: the tests' 1 s plugin timeout is too tight on a loaded
    # machine, and a timeout would stand in for the outage this file injects.
    monkeypatch.setattr(current_host(), "timeout_seconds", 10.0)
    with FakeHTTPServer() as server:
        yield s4fake.FakeS4(server).install()


async def _integration(t: TenantClient, s4: Any) -> int:
    r = await t.api.post("/v1/integrations", json={
        "name": "S/4HANA", "provider_kind": "erp", "provider_name": "sap_s4hana",
        "config": {"base_url": s4.server.base_url, "company_codes": ["1010"]},
        "secrets": {"username": s4fake.USERNAME, "password": s4fake.PASSWORD}})
    assert r.status_code == 201, r.text
    iid = int(r.json()["id"])
    r = await t.api.put(f"/v1/integrations/{iid}/sync-settings", json={"page_size": PAGE})
    assert r.status_code == 200, r.text
    return iid


async def _money(app: Litestar, t: int) -> tuple[int, int, int]:
    """(outstanding of the tenant's debtors, its payments, their unapplied amount)."""
    async with app.state.ctx.sessionmaker() as session:
        outstanding = await session.scalar(select(func.sum(DebtorBalance.outstanding_minor))
                                           .where(DebtorBalance.tenant_id == t))
        count, unapplied = (await session.execute(select(
            func.count(), func.coalesce(func.sum(Payment.unapplied_minor), 0)).where(
            Payment.tenant_id == t))).one()
    return int(outstanding or 0), int(count), int(unapplied)


def _item_queries(s4: Any) -> list[dict[str, list[str]]]:
    return [r.query for r in s4.server.requests_to("GET", s4fake.ITEMS_PATH)]


async def test_s4_first_sync_delta_and_clearing_read_back_as_payment(
        tenant: TenantClient, s4: Any, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _integration(tenant, s4)
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded", run
    # 5 customers (not the supplier-only partner); 8 line items of company code 1010 that are
    # open (not the supplier line, not 1710, not the ones cleared before the run); no
    # clearing in the payments window.
    assert (run["rows_in"], run["rows_failed"]) == (13, 0), run
    assert run["pages"] >= 2 + 3
    found = await obligations(app, tenant.tenant_id)
    assert set(found) == {_ref(i) for i in range(1, 9)}
    invoice = found[_ref(1)]
    # the customer's payment on account (item 7, 300.00) goes to its oldest invoice
    assert (invoice.original_minor, invoice.outstanding_minor, invoice.currency) == (
        119000, 89000, "EUR")
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 1, 1), date(2026, 2, 1))
    assert found[_ref(8)].kind == "credit_note"
    # The items query was the connector's: scoped, ordered, paged at the page size.
    first = _item_queries(s4)[0]
    assert first["$top"] == [str(PAGE)] and "FinancialAccountType eq 'D'" in first["$filter"][0]
    outstanding, payments, _ = await _money(app, tenant.tenant_id)
    assert payments == 0 and outstanding > 0

    # Nothing changed: the delta reads nothing.
    again = await sync_now(tenant, iid, run_jobs)
    assert (again["status"], again["rows_in"], again["rows_changed"]) == ("succeeded", 0, 0)

    # In S/4: a due date moves, a new invoice is booked, the bank process clears item 1.
    today = clock.now().date()
    s4.items[2].update(NetDueDate=date(2027, 1, 31), LastChangeDate=today)
    s4.items.append(s4._item(13, Customer="10100004", PostingDate=today, DocumentDate=today,
                             NetDueDate=today + timedelta(days=30),
                             AccountingDocumentCreationDate=today,
                             AmountInTransactionCurrency=s4.items[0][
                                 "AmountInTransactionCurrency"] / 2))
    s4.clear(s4.items[0], "1400000003", today)
    delta = await sync_now(tenant, iid, run_jobs)
    assert delta["status"] == "succeeded", delta
    # items 3, 13 and 1 (cleared), and item 1's clearing as an ERP payment
    assert (delta["rows_in"], delta["rows_failed"]) == (4, 0), delta
    assert "LastChangeDate ge datetime'" in _item_queries(s4)[-2]["$filter"][0]
    found = await obligations(app, tenant.tenant_id)
    assert found[_ref(3)].due_date == date(2027, 1, 31)
    assert (found[_ref(13)].original_minor, found[_ref(13)].outstanding_minor) == (59500, 59500)
    assert (found[_ref(1)].status, found[_ref(1)].outstanding_minor) == ("paid", 0)
    async with app.state.ctx.sessionmaker() as session:
        [paid] = (await session.scalars(select(Payment).where(
            Payment.tenant_id == tenant.tenant_id))).all()
    assert (paid.amount_minor, paid.currency, paid.method, paid.paid_on) == (
        119000, "EUR", "erp", today)
    # The payment is what settles item 1: not paid twice, no credit left over.
    after, payments, unapplied = await _money(app, tenant.tenant_id)
    assert (after, payments, unapplied) == (outstanding - 119000 + 59500, 1, 0)
    r = await tenant.api.get(f"/v1/payments/{paid.id}")
    assert [(a["obligation_id"], a["amount"]) for a in r.json()["allocations"]] == [
        (found[_ref(1)].id, "1190.00")]

    # The next delta reads the clearing again (the window overlaps a day): it is not
    # imported twice and the balances stay.
    again = await sync_now(tenant, iid, run_jobs)
    assert again["status"] == "succeeded", again
    assert await _money(app, tenant.tenant_id) == (after, 1, 0)


async def test_s4_outage_mid_run_keeps_the_cursor_at_the_last_good_page(
        tenant: TenantClient, s4: Any, app: Litestar, run_jobs: RunJobs) -> None:
    iid = await _integration(tenant, s4)
    served: list[int] = []
    items: Callable[[RecordedRequest], FakeResponse] = s4.guard(s4.item_set)

    def failing_after_the_first_page(request: RecordedRequest) -> FakeResponse:
        served.append(1)
        if len(served) == 2:
            s4.set_outage(503)  # the second items page and every in-run retry of it
        return items(request)

    s4.server.route("GET", s4fake.ITEMS_PATH, failing_after_the_first_page)
    run_id = await start(tenant, iid)
    await run_jobs()
    run = await get_run(tenant, iid, run_id)
    assert run["status"] == "retrying" and "Backend unavailable" in run["error"], run
    assert (run["rows_in"], run["rows_failed"]) == (5 + PAGE, 0), run
    found = await obligations(app, tenant.tenant_id)
    assert set(found) == {_ref(i) for i in range(1, PAGE + 1)}  # the first page, whole
    async with app.state.ctx.sessionmaker() as session:
        cursor = await session.scalar(select(ErpSyncCursor).where(
            ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == "open_items"))
        debtors = await session.scalar(select(ErpSyncCursor).where(
            ErpSyncCursor.integration_id == iid, ErpSyncCursor.stream == "debtors"))
    assert cursor is not None and not cursor.resting and cursor.cursor
    assert debtors is not None and debtors.resting  # pulled to its end: not pulled again
    failed_calls = len(_item_queries(s4))
    # the good page, then the failing one: three tries by the engine (each of which the
    # host's HTTP client may itself repeat on a 503)
    assert failed_calls >= 1 + 3

    s4.set_outage(None)
    bp_calls = len(s4.server.requests_to("GET", s4fake.BP_PATH))
    run = await retry_now(app, run_jobs, tenant, iid, run_id)
    assert run["status"] == "succeeded", run
    assert (run["rows_in"], run["rows_failed"]) == (13, 0), run  # each row counted once
    assert set(await obligations(app, tenant.tenant_id)) == {_ref(i) for i in range(1, 9)}
    # The retry resumed at the page after the last applied one; no partner pulled again.
    resumed = _item_queries(s4)[failed_calls]
    assert resumed.get("$skip") == [str(PAGE)], resumed
    assert len(s4.server.requests_to("GET", s4fake.BP_PATH)) == bp_calls
