"""Business One Service Layer connector against the strict fake: session, paging, deltas,
row errors, faults and idempotent payment posting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
import sap_fake_b1 as b1fake
from cartera_sdk import ErpAllocation, ErpPaymentPosting, Money
from cartera_sdk.errors import PermanentError, ProviderError
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, json_response, run
from sap_pages import external_ids, pull_run

from cartera_erp_sap import B1Config, B1Secrets, BusinessOneConnector


@pytest.fixture
def fake() -> Iterator[b1fake.FakeServiceLayer]:
    with FakeHTTPServer() as server:
        yield b1fake.FakeServiceLayer(server).install()


@pytest.fixture
def connector() -> BusinessOneConnector:
    return BusinessOneConnector()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


def _config(fake: b1fake.FakeServiceLayer, **changes: Any) -> B1Config:
    values: dict[str, Any] = {
        "base_url": fake.server.base_url + b1fake.ROOT, "company_db": b1fake.COMPANY_DB,
        "local_currency": "ARS", "currency_aliases": {"$": "ARS"},
        "transfer_account": b1fake.TRANSFER_ACCOUNT,
    }  # fmt: skip
    return B1Config(**{**values, **changes})


@pytest.fixture
def ctx(host: FakeHost, connector: BusinessOneConnector, fake: b1fake.FakeServiceLayer) -> Any:
    secrets = B1Secrets(username=b1fake.USERNAME, password=b1fake.PASSWORD)
    return host.context(connector, config=_config(fake), secrets=secrets)






def _posting(key: str = "pay_1", amount: str = "1210.00", item: str = "INV-45001",
             debtor: str = "C00002") -> ErpPaymentPosting:  # fmt: skip
    return ErpPaymentPosting(
        idempotency_key=key, debtor_external_id=debtor, amount=Money.of(amount, "ARS"),
        value_date=date(2026, 3, 2), reference="MP-1", memo="Cobro Cartera",
        allocations=[ErpAllocation(open_item_external_id=item, amount=Money.of(amount, "ARS"))],
    )  # fmt: skip


# ---------------------------------------------------------------------- session


def test_login_sends_company_and_credentials_and_both_cookies(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    run(connector.pull_debtors(None, 2, ctx))
    login = fake.server.requests_to("POST", f"{b1fake.ROOT}/Login")[0].json()
    assert login == {"CompanyDB": b1fake.COMPANY_DB, "UserName": b1fake.USERNAME,
                     "Password": b1fake.PASSWORD}  # fmt: skip
    reads = fake.server.requests_to("GET", f"{b1fake.ROOT}/BusinessPartners")
    assert all("B1SESSION=sess-" in r.headers["cookie"] and "ROUTEID=.node0" in r.headers["cookie"]
               for r in reads)  # fmt: skip
    assert fake.logins == 1


def test_expired_session_mid_run_logs_in_again_and_repeats_the_page(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    expected = external_ids(pull_run(connector.pull_open_items, ctx))
    first = run(connector.pull_open_items(None, 2, ctx))
    fake.expire_sessions()  # the server times the session out between two pages
    rest = external_ids(pull_run(connector.pull_open_items, ctx, first.next_cursor))
    assert [i.external_id for i in first.items] + rest == expected
    assert fake.logins == 2


def test_session_timeout_is_honoured_before_the_server_refuses(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer, host: FakeHost
) -> None:
    run(connector.pull_debtors(None, 2, ctx))
    host.clock.advance(29 * 60)  # within SessionTimeout (30 min, sliding): same session
    run(connector.pull_debtors(None, 2, ctx))
    assert fake.logins == 1
    host.clock.advance(31 * 60)
    fake.expire_sessions()
    before = len(fake.server.requests)
    run(connector.pull_debtors(None, 2, ctx))
    after = fake.server.requests[before:]
    assert fake.logins == 2
    assert after[0].path.endswith("/Login"), "the connector logs in before the server says 401"


def test_close_logs_out(connector: BusinessOneConnector, ctx: Any,
                        fake: b1fake.FakeServiceLayer) -> None:  # fmt: skip
    run(connector.pull_debtors(None, 2, ctx))
    run(connector.close(ctx))
    assert fake.logouts == 1
    assert fake.sessions == set()
    run(connector.close(ctx))  # nothing left to close
    assert fake.logouts == 1


def test_wrong_password_is_a_permanent_login_failure(
    connector: BusinessOneConnector, host: FakeHost, fake: b1fake.FakeServiceLayer
) -> None:
    ctx = host.context(connector, config=_config(fake),
                       secrets=B1Secrets(username=b1fake.USERNAME, password="wrong"))
    with pytest.raises(PermanentError) as info:
        run(connector.pull_debtors(None, 2, ctx))
    assert info.value.code == "login_failed"
    assert "wrong" not in str(info.value)
    check = run(connector.test_connection(ctx))
    assert not check.ok
    assert check.code == "login_failed"


# ---------------------------------------------------------------------- paging and queries


def test_debtors_are_customers_only_with_prefer_and_next_link(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    pages = pull_run(connector.pull_debtors, ctx)
    assert external_ids(pages) == [f"C{i:05d}" for i in range(1, 6)]  # V99 is a supplier
    reads = [r for r in fake.server.requests_to("GET", f"{b1fake.ROOT}/BusinessPartners")
             if "$top" not in r.query]  # fmt: skip
    assert all(r.headers["prefer"] == "odata.maxpagesize=2" for r in reads)
    assert all("CardType eq 'cCustomer'" in r.query["$filter"][0] for r in reads
               if "$filter" in r.query)  # fmt: skip
    assert any("$skip" in r.query for r in reads), "the connector follows odata.nextLink"
    debtor = pages[0].items[0]
    assert debtor.credit_limit == Money.of("500000.00", "ARS")
    assert debtor.email == "pagos1@cliente.example"


def test_a_server_ignoring_prefer_still_gives_pages_within_the_limit(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    fake.honour_prefer = False
    fake.server_page_size = 4
    pages = pull_run(connector.pull_open_items, ctx, limit=3)
    assert all(len(page.items) <= 3 for page in pages)
    ids = external_ids(pages)
    assert len(ids) == len(set(ids))
    assert {f"INV-{45000 + i}" for i in range(1, 6)} <= set(ids)
    assert {"CRN-7001", "CRN-7002"} <= set(ids)


def test_open_items_amounts_are_exact_and_credit_notes_follow_invoices(
    connector: BusinessOneConnector, ctx: Any
) -> None:
    items = {i.external_id: i for p in pull_run(connector.pull_open_items, ctx) for i in p.items}
    assert items["INV-45002"].original_amount == Money.of("1210.00", "ARS")
    assert items["INV-45002"].open_amount == Money.of("1010.00", "ARS")
    assert items["INV-45002"].due_date == date(2026, 2, 3)
    assert items["INV-45002"].reference == "A-0001-00000002"
    assert items["CRN-7001"].kind == "credit_note"
    assert items["CRN-7001"].open_amount == Money.of("121.00", "ARS")
    order = list(items)
    assert order.index("INV-45005") < order.index("CRN-7001")


def test_installments_become_items_paid_earliest_first(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    invoice = fake.invoices[0]
    invoice.update(PaidToDate=Decimal("500.00"), DocumentInstallments=[
        {"InstallmentId": 2, "DueDate": "2026-03-05", "Percentage": 50.0,
         "Total": Decimal("605.00"), "TotalFC": Decimal("0")},
        {"InstallmentId": 1, "DueDate": "2026-02-05", "Percentage": 50.0,
         "Total": Decimal("605.00"), "TotalFC": Decimal("0")},
    ])  # fmt: skip
    items = {i.external_id: i for p in pull_run(connector.pull_open_items, ctx) for i in p.items}
    assert "INV-45001" not in items
    first, second = items["INV-45001-1"], items["INV-45001-2"]
    assert (first.kind, first.due_date, first.open_amount) == (
        "installment", date(2026, 2, 5), Money.of("105.00", "ARS"))
    assert (second.due_date, second.open_amount) == (date(2026, 3, 5), Money.of("605.00", "ARS"))


def test_foreign_currency_documents_use_the_fc_amounts(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    fake.invoices[0].update(DocCurrency="USD", DocTotalFc=Decimal("99.95"),
                            PaidToDateFC=Decimal("9.95"))  # fmt: skip
    items = {i.external_id: i for p in pull_run(connector.pull_open_items, ctx) for i in p.items}
    assert items["INV-45001"].original_amount == Money.of("99.95", "USD")
    assert items["INV-45001"].open_amount == Money.of("90.00", "USD")


# ---------------------------------------------------------------------- deltas


def test_delta_reads_changes_since_the_run_started_including_closed_documents(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    full = pull_run(connector.pull_open_items, ctx)
    run(connector.post_payment(_posting(), ctx))  # closes INV-45001 in the ERP
    fake.touch(fake.credit_notes[0], Cancelled="tYES", DocumentStatus="bost_Close")
    delta = pull_run(connector.pull_open_items, ctx, full[-1].delta_cursor)
    changed = {i.external_id: i for p in delta for i in p.items}
    assert changed["INV-45001"].status == "cleared"
    assert changed["INV-45001"].open_amount.is_zero()
    assert changed["CRN-7001"].status == "cancelled"
    assert "INV-45003" not in changed
    reads = fake.server.requests_to("GET", f"{b1fake.ROOT}/Invoices")
    filters = [r.query["$filter"][0] for r in reads
               if "$filter" in r.query and "UpdateTime ge" in r.query["$filter"][0]]  # fmt: skip
    assert filters and "bost_Open" not in filters[-1], "a delta must see documents that closed"
    again = pull_run(connector.pull_open_items, ctx, delta[-1].delta_cursor)
    # Nothing changed since: only rows stamped at the watermark second come again (inclusive).
    assert set(external_ids(again)) <= {"INV-45001", "CRN-7001"}


def test_a_document_changed_while_the_full_run_pages_is_not_lost(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    first = run(connector.pull_open_items(None, 2, ctx))
    # INV-45001 was returned; it closes now, which would shift $skip paging by one row.
    fake.touch(fake.invoices[0], DocumentStatus="bost_Close", PaidToDate=Decimal("1210.00"))
    rest = pull_run(connector.pull_open_items, ctx, first.next_cursor)
    ids = [i.external_id for i in first.items] + external_ids(rest)
    assert {f"INV-{45000 + i}" for i in range(1, 6)} <= set(ids)
    delta = pull_run(connector.pull_open_items, ctx, rest[-1].delta_cursor)
    assert "INV-45001" in external_ids(delta)


# ---------------------------------------------------------------------- bad input and faults


def test_unknown_currency_and_malformed_rows_are_row_errors(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    fake.invoices[0]["DocCurrency"] = "XYZW"
    fake.invoices[2]["DocDueDate"] = "soon"
    fake.invoices[3]["DocTotal"] = Decimal("10.001")
    pages = pull_run(connector.pull_open_items, ctx)
    errors = {e.row_key: e.code for p in pages for e in p.errors}
    assert errors == {"45001": "unknown_currency", "45003": "malformed_row",
                      "45004": "bad_amount"}  # fmt: skip
    assert {"INV-45002", "INV-45005", "CRN-7001"} <= set(external_ids(pages))


def test_accepted_currencies_close_the_list(
    connector: BusinessOneConnector, host: FakeHost, fake: b1fake.FakeServiceLayer
) -> None:
    ctx = host.context(connector, config=_config(fake, accepted_currencies=["PEN"]),
                       secrets=B1Secrets(username=b1fake.USERNAME, password=b1fake.PASSWORD))
    page = run(connector.pull_open_items(None, 2, ctx))
    assert page.items == []
    assert {e.code for e in page.errors} == {"unknown_currency"}


def test_a_transient_503_is_retried_by_the_host_client(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer, host: FakeHost
) -> None:
    run(connector.pull_debtors(None, 2, ctx))
    route = f"{b1fake.ROOT}/BusinessPartners"
    real = fake.guard(lambda r: fake.collection(r, "BusinessPartners", fake.business_partners,
                                                b1fake.BP_FIELDS))  # fmt: skip
    fake.server.route("GET", route, [json_response({"error": {"code": -1, "message": {
        "lang": "en-us", "value": "busy"}}}, 503), real])  # fmt: skip
    page = run(connector.pull_debtors(None, 2, ctx))
    assert len(page.items) == 2
    assert host.sleeps, "the retry backs off"


def test_a_bad_query_answer_is_permanent(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    fake.server.route("GET", f"{b1fake.ROOT}/Invoices", json_response(
        {"error": {"code": -1, "message": {"lang": "en-us", "value": "Invalid filter"}}}, 400))
    with pytest.raises(ProviderError) as info:
        run(connector.pull_open_items(None, 2, ctx))
    assert info.value.kind == "permanent"
    assert "Invalid filter" in info.value.reason


def test_a_cursor_of_another_stream_is_refused(connector: BusinessOneConnector, ctx: Any) -> None:
    page = run(connector.pull_debtors(None, 2, ctx))
    with pytest.raises(PermanentError):
        run(connector.pull_open_items(page.next_cursor, 2, ctx))


# ---------------------------------------------------------------------- posting


def test_posting_sends_the_reference_and_applies_the_invoice(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    result = run(connector.post_payment(_posting(), ctx))
    assert result.status == "posted"
    body = fake.server.requests_to("POST", f"{b1fake.ROOT}/IncomingPayments")[0].json()
    assert body["Remarks"] == "cartera:pay_1"
    assert body["TransferSum"] == 1210.0
    assert body["DocCurrency"] == "$"
    assert body["PaymentInvoices"] == [{"DocEntry": 45001, "InvoiceType": "it_Invoice",
                                        "SumApplied": 1210.0}]  # fmt: skip
    lookup = fake.server.requests_to("GET", f"{b1fake.ROOT}/IncomingPayments")[0]
    assert lookup.query["$filter"] == ["Remarks eq 'cartera:pay_1' and Cancelled eq 'tNO'"]
    assert fake.invoices[0]["DocumentStatus"] == "bost_Close"


def test_a_lost_reply_after_posting_is_retryable_and_the_retry_finds_the_payment(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    fake.answer_after_post = 504
    with pytest.raises(ProviderError) as info:
        run(connector.post_payment(_posting(), ctx))
    assert info.value.kind == "retryable"
    assert len(fake.payments) == 1  # it did post
    fake.answer_after_post = None
    retry = run(connector.post_payment(_posting(), ctx))
    assert retry.status == "duplicate"
    assert retry.erp_document_id == str(fake.payments[0]["DocEntry"])
    assert len(fake.payments) == 1
    assert len(fake.server.requests_to("POST", f"{b1fake.ROOT}/IncomingPayments")) == 1


def test_a_udf_reference_field_is_used_when_configured(
    connector: BusinessOneConnector, host: FakeHost
) -> None:
    with FakeHTTPServer() as server:
        fake = b1fake.FakeServiceLayer(server, reference_field="U_CarteraRef").install()
        ctx = host.context(connector, config=_config(fake, reference_field="U_CarteraRef"),
                           secrets=B1Secrets(username=b1fake.USERNAME, password=b1fake.PASSWORD))
        assert run(connector.post_payment(_posting(), ctx)).status == "posted"
        assert run(connector.post_payment(_posting(), ctx)).status == "duplicate"
        body = server.requests_to("POST", f"{b1fake.ROOT}/IncomingPayments")[0].json()
        assert body["U_CarteraRef"] == "cartera:pay_1"
        assert "Remarks" not in body


def test_erp_refusals_are_rejected_with_the_erp_message(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer, host: FakeHost
) -> None:
    too_much = run(connector.post_payment(_posting(key="pay_2", amount="5000.00"), ctx))
    assert too_much.status == "rejected"
    assert too_much.message == "SumApplied exceeds the invoice balance"
    credit = run(connector.post_payment(_posting(key="pay_3", item="CRN-7001"), ctx))
    assert credit.status == "rejected"
    unset = host.context(connector, config=_config(fake, transfer_account=""),
                         secrets=B1Secrets(username=b1fake.USERNAME, password=b1fake.PASSWORD))
    assert run(connector.post_payment(_posting(key="pay_4"), unset)).status == "rejected"
    assert fake.payments == []


def test_posting_after_the_session_expired_logs_in_again(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    run(connector.pull_debtors(None, 2, ctx))
    fake.expire_sessions()
    assert run(connector.post_payment(_posting(), ctx)).status == "posted"
    assert fake.logins == 2
    assert len(fake.payments) == 1


def test_a_page_that_repeats_is_a_retryable_error_not_a_loop(
    connector: BusinessOneConnector, ctx: Any, fake: b1fake.FakeServiceLayer
) -> None:
    first = run(connector.pull_debtors(None, 2, ctx))

    def same_page_again(request: Any) -> Any:  # the server hands out the link just followed
        own_link = "BusinessPartners?" + urlencode({k: v[0] for k, v in request.query.items()})
        rows = [{"CardCode": f"C0000{i}", "CardName": "x", "CardType": "cCustomer"} for i in (1, 2)]
        return json_response({"value": rows, "odata.nextLink": own_link})

    fake.server.route("GET", f"{b1fake.ROOT}/BusinessPartners", fake.guard(same_page_again))
    with pytest.raises(ProviderError) as info:
        run(connector.pull_debtors(first.next_cursor, 2, ctx))
    assert (info.value.kind, info.value.code) == ("retryable", "repeated_page")
