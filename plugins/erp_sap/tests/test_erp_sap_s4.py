"""S/4HANA read connector against the strict OData v2 fake: queries, paging with __next and
$inlinecount, exact decimals and /Date()/ literals, deltas, clearings read back as payments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import sap_fake_s4 as s4fake
from cartera_sdk import Money, Page
from cartera_sdk.errors import ProviderError
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, run
from sap_pages import pull_run

from cartera_erp_sap import S4Config, S4HanaConnector, S4Secrets


@pytest.fixture
def fake() -> Iterator[s4fake.FakeS4]:
    with FakeHTTPServer() as server:
        yield s4fake.FakeS4(server).install()


@pytest.fixture
def connector() -> S4HanaConnector:
    return S4HanaConnector()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()  # its clock: 2026-03-02 15:00 UTC


def _ctx(host: FakeHost, connector: S4HanaConnector, fake: s4fake.FakeS4,
         password: str = s4fake.PASSWORD, **config: Any) -> Any:  # fmt: skip
    values: dict[str, Any] = {"base_url": fake.server.base_url, "company_codes": ["1010"]}
    return host.context(connector, config=S4Config(**{**values, **config}),
                        secrets=S4Secrets(username=s4fake.USERNAME, password=password))


@pytest.fixture
def ctx(host: FakeHost, connector: S4HanaConnector, fake: s4fake.FakeS4) -> Any:
    return _ctx(host, connector, fake)




def _by_id(pages: list[Page[Any]]) -> dict[str, Any]:
    return {item.external_id: item for page in pages for item in page.items}


def test_open_items_query_is_the_documented_one(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    run(connector.pull_open_items(None, 4, ctx))
    request = fake.server.requests_to("GET", s4fake.ITEMS_PATH)[0]
    assert request.query["$filter"] == [
        "FinancialAccountType eq 'D' and (CompanyCode eq '1010') and "
        "(IsCleared eq false or ClearingDate ge datetime'2026-03-01T00:00:00')"
    ]
    assert request.query["$orderby"] == [
        "CompanyCode asc,FiscalYear asc,AccountingDocument asc,AccountingDocumentItem asc"]
    assert (request.query["$inlinecount"], request.query["$format"]) == (["allpages"], ["json"])
    assert (request.query["$top"], request.query["$skip"]) == (["4"], ["0"])
    assert request.headers["accept"] == "application/json"
    assert request.headers["authorization"].startswith("Basic ")


def test_items_map_exact_decimals_dates_and_credit_kinds(
    connector: S4HanaConnector, ctx: Any
) -> None:
    items = _by_id(pull_run(connector.pull_open_items, ctx))
    invoice = items["1010/2026/1800000001/1"]
    assert invoice.original_amount == Money.of("1190.00", "EUR")
    assert str(invoice.open_amount.amount) == "1190.00"
    assert (invoice.issue_date, invoice.due_date) == (date(2026, 1, 1), date(2026, 2, 1))
    assert invoice.debtor_external_id == "10100002"
    assert invoice.reference == "90000001"
    assert invoice.attributes["dunning_level"] == "0"
    on_account = items["1010/2026/1800000007/1"]
    assert (on_account.kind, on_account.open_amount) == ("payment_on_account",
                                                         Money.of("300.00", "EUR"))
    assert items["1010/2026/1800000008/1"].kind == "credit_note"
    assert "1010/2026/1800000011/1" not in items  # supplier line
    assert "1710/2026/1800000012/1" not in items  # other company code
    assert "1010/2026/1800000009/1" not in items  # cleared before the run started


def test_all_company_codes_when_none_configured(
    connector: S4HanaConnector, host: FakeHost, fake: s4fake.FakeS4
) -> None:
    every_company = _ctx(host, connector, fake, company_codes=[])
    items = _by_id(pull_run(connector.pull_open_items, every_company))
    assert items["1710/2026/1800000012/1"].open_amount == Money.of("1190.00", "USD")


def test_server_driven_paging_follows_next_with_skiptoken(
    connector: S4HanaConnector, host: FakeHost
) -> None:
    with FakeHTTPServer() as server:
        fake = s4fake.FakeS4(server, server_page_size=3).install()
        ctx = _ctx(host, connector, fake)
        pages = pull_run(connector.pull_open_items, ctx, limit=5)
        assert [len(p.items) for p in pages] == [3, 2, 3]
        ids = list(_by_id(pages))
        assert len(ids) == 8
        followed = [r for r in server.requests_to("GET", s4fake.ITEMS_PATH)
                    if "$skiptoken" in r.query]  # fmt: skip
        assert followed and followed[0].query["$top"] == ["2"]
        resumed = pull_run(connector.pull_open_items, ctx, pages[0].next_cursor, limit=5)
        assert [i.external_id for i in pages[0].items] + list(_by_id(resumed)) == ids


def test_debtors_are_customers_with_expanded_contacts(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    debtors = _by_id(pull_run(connector.pull_debtors, ctx))
    assert list(debtors) == [f"{10100000 + i}" for i in range(1, 6)]
    first = debtors["10100001"]
    assert (first.name, first.country, first.email, first.phone) == (
        "Inlandskunde DE 1", "DE", "ap1@kunde.example", "+493012341")
    assert first.attributes["business_partner"] == "1000001"
    request = fake.server.requests_to("GET", s4fake.BP_PATH)[0]
    assert request.query["$filter"] == ["Customer ne ''"]
    assert request.query["$expand"] == [s4fake.BP_EXPAND]


def test_delta_returns_changed_and_cleared_items_only(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    full = pull_run(connector.pull_open_items, ctx)
    changed = fake.touch_open_item()
    fake.clear(fake.items[4], "1400000002")
    delta = _by_id(pull_run(connector.pull_open_items, ctx, full[-1].delta_cursor))
    assert set(delta) == {changed, "1010/2026/1800000005/1"}
    assert delta[changed].due_date == date(2026, 4, 30)
    assert delta["1010/2026/1800000005/1"].status == "cleared"
    assert delta["1010/2026/1800000005/1"].open_amount.is_zero()
    last = fake.server.requests_to("GET", s4fake.ITEMS_PATH)[-1].query["$filter"][0]
    assert "LastChangeDate ge datetime'2026-03-01T00:00:00'" in last
    assert "ClearingDate ge datetime'2026-03-01T00:00:00'" in last


def test_clearings_are_read_back_as_payments(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    full = pull_run(connector.pull_payments, ctx)
    payments = _by_id(full)
    assert list(payments) == ["1010/2026/1400000001:1010/2026/1800000009/1"]
    payment = payments["1010/2026/1400000001:1010/2026/1800000009/1"]
    assert (payment.document_id, payment.open_item_external_id, payment.value_date) == (
        "1010/2026/1400000001", "1010/2026/1800000009/1", date(2026, 2, 20))
    assert payment.amount == Money.of("1190.00", "EUR")
    fake.clear(fake.items[0], "1400000003")
    delta = _by_id(pull_run(connector.pull_payments, ctx, full[-1].delta_cursor))
    assert list(delta) == ["1010/2026/1400000003:1010/2026/1800000001/1"]
    request = fake.server.requests_to("GET", s4fake.ITEMS_PATH)[0]
    assert "IsCleared eq true and ClearingDate ge datetime'2026-01-31T00:00:00'" in (
        request.query["$filter"][0])


def test_malformed_rows_and_unknown_currencies_are_row_errors(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    fake.items[0]["NetDueDate"] = "2026-02-01"  # not a /Date()/ literal
    fake.items[1]["TransactionCurrency"] = "EURO"
    fake.items[2]["AmountInTransactionCurrency"] = "1190.0001"
    pages = pull_run(connector.pull_open_items, ctx)
    errors = {e.row_key: e.code for p in pages for e in p.errors}
    assert errors == {"1800000001": "malformed_row", "1800000002": "unknown_currency",
                      "1800000003": "bad_amount"}  # fmt: skip
    assert "1010/2026/1800000004/1" in _by_id(pages)


def test_wrong_credentials_are_permanent_and_outages_retryable(
    connector: S4HanaConnector, host: FakeHost, fake: s4fake.FakeS4
) -> None:
    bad = _ctx(host, connector, fake, password="nope")
    with pytest.raises(ProviderError) as info:
        run(connector.pull_debtors(None, 2, bad))
    assert info.value.kind == "permanent"
    assert not run(connector.test_connection(bad)).ok
    fake.set_outage(503)
    with pytest.raises(ProviderError) as outage:
        run(connector.pull_debtors(None, 2, _ctx(host, connector, fake)))
    assert outage.value.kind == "retryable"
    assert "Backend unavailable" in outage.value.reason


def test_sap_client_is_sent_when_configured(connector: S4HanaConnector, host: FakeHost) -> None:
    with FakeHTTPServer() as server:
        fake = s4fake.FakeS4(server, sap_client="100").install()
        ok = run(connector.pull_debtors(None, 2, _ctx(host, connector, fake, sap_client="100")))
        assert len(ok.items) == 2
        with pytest.raises(ProviderError):
            run(connector.pull_debtors(None, 2, _ctx(host, connector, fake)))


def test_next_link_to_another_host_is_refused(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    from cartera_erp_sap._wire import encode_cursor

    cursor = encode_cursor({"k": "s4.debtors", "m": "full", "o": 2, "w": {"day": "2026-03-01"},
                            "n": "https://evil.example/sap/opu/odata/sap/API_BUSINESS_PARTNER/"
                                 "A_BusinessPartner?$skiptoken=2"})  # fmt: skip
    with pytest.raises(ProviderError) as info:
        run(connector.pull_debtors(cursor, 2, ctx))
    assert info.value.code == "bad_next_link"


def test_a_next_link_that_repeats_is_a_retryable_error(
    connector: S4HanaConnector, ctx: Any, fake: s4fake.FakeS4
) -> None:
    from cartera_sdk.testkit import json_response

    link = f"{fake.server.base_url}{s4fake.BP_PATH}?$skiptoken=2&$top=2"
    fake.server.route("GET", s4fake.BP_PATH, json_response(
        {"d": {"results": [], "__count": "6", "__next": link}}))
    from cartera_erp_sap._wire import encode_cursor

    cursor = encode_cursor({"k": "s4.debtors", "m": "full", "o": 2, "n": link,
                            "w": {"day": "2026-03-01"}})  # fmt: skip
    with pytest.raises(ProviderError) as info:
        run(connector.pull_debtors(cursor, 2, ctx))
    assert info.value.code == "repeated_page"
