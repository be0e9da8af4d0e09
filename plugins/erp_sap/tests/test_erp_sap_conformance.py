"""Both SAP connectors pass the SDK's ERP conformance suite against their strict fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import sap_fake_b1 as b1fake
import sap_fake_s4 as s4fake
from cartera_sdk import ErpAllocation, ErpPaymentPosting, Money
from cartera_sdk.testkit import FakeHTTPServer
from cartera_sdk.testkit.erp_conformance import ErpConformance

import cartera_erp_sap


class TestBusinessOneConformance(ErpConformance):
    @pytest.fixture
    def erp_fake(self) -> Iterator[b1fake.FakeServiceLayer]:
        with FakeHTTPServer() as server:
            yield b1fake.FakeServiceLayer(server).install()

    @pytest.fixture
    def provider(self) -> cartera_erp_sap.BusinessOneConnector:
        return cartera_erp_sap.BusinessOneConnector()

    @pytest.fixture
    def config(self, erp_fake: b1fake.FakeServiceLayer) -> cartera_erp_sap.B1Config:
        return cartera_erp_sap.B1Config(
            base_url=erp_fake.server.base_url + b1fake.ROOT, company_db=b1fake.COMPANY_DB,
            local_currency="ARS", currency_aliases={"$": "ARS"},
            transfer_account=b1fake.TRANSFER_ACCOUNT,
        )  # fmt: skip

    @pytest.fixture
    def secrets(self) -> cartera_erp_sap.B1Secrets:
        return cartera_erp_sap.B1Secrets(username=b1fake.USERNAME, password=b1fake.PASSWORD)

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_erp_sap

    @pytest.fixture
    def sample_posting(self) -> ErpPaymentPosting:
        return ErpPaymentPosting(
            idempotency_key="pay_01JCONFORMANCE", debtor_external_id="C00002",
            amount=Money.of("1210.00", "ARS"), value_date=date(2026, 3, 2), reference="MP-991",
            allocations=[ErpAllocation(open_item_external_id="INV-45001",
                                       amount=Money.of("1210.00", "ARS"))],
        )  # fmt: skip


class TestS4HanaConformance(ErpConformance):
    @pytest.fixture
    def erp_fake(self) -> Iterator[s4fake.FakeS4]:
        with FakeHTTPServer() as server:
            yield s4fake.FakeS4(server, server_page_size=3).install()

    @pytest.fixture
    def provider(self) -> cartera_erp_sap.S4HanaConnector:
        return cartera_erp_sap.S4HanaConnector()

    @pytest.fixture
    def config(self, erp_fake: s4fake.FakeS4) -> cartera_erp_sap.S4Config:
        return cartera_erp_sap.S4Config(base_url=erp_fake.server.base_url,
                                        company_codes=["1010"])  # fmt: skip

    @pytest.fixture
    def secrets(self) -> cartera_erp_sap.S4Secrets:
        return cartera_erp_sap.S4Secrets(username=s4fake.USERNAME, password=s4fake.PASSWORD)

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_erp_sap

    @pytest.fixture
    def sample_posting(self) -> ErpPaymentPosting:
        return ErpPaymentPosting(
            idempotency_key="pay_s4", debtor_external_id="10100002",
            amount=Money.of("1190.00", "EUR"), value_date=date(2026, 3, 2), reference="BANK-1",
        )  # fmt: skip
