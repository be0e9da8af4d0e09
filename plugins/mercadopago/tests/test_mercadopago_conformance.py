"""The Mercado Pago provider passes the SDK's payment conformance suite against the fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import mercadopago_fake as mp
import pytest
from cartera_sdk import Money, Payer, PaymentLinkRequest, RefundRequest, WebhookRequest
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, FrozenClock, PaymentProviderConformance

import cartera_mercadopago

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PAYMENT_ID = "17014025134"


class TestMercadoPagoConformance(PaymentProviderConformance):
    signs_body = False
    signature_tolerance_seconds = 300

    @pytest.fixture
    def host(self) -> FakeHost:
        return FakeHost(clock=FrozenClock(NOW))

    @pytest.fixture
    def fake_server(self) -> Iterator[FakeHTTPServer]:
        with FakeHTTPServer() as server:
            fake = mp.FakeMercadoPago(server).install()
            fake.add_payment(PAYMENT_ID, "58.80", "PEN", external_reference="plink_1")
            yield server

    @pytest.fixture
    def provider(self) -> cartera_mercadopago.MercadoPago:
        return cartera_mercadopago.MercadoPago()

    @pytest.fixture
    def config(self, fake_server: FakeHTTPServer) -> cartera_mercadopago.MercadoPagoConfig:
        return cartera_mercadopago.MercadoPagoConfig(base_url=fake_server.base_url)

    @pytest.fixture
    def secrets(self) -> cartera_mercadopago.MercadoPagoSecrets:
        return cartera_mercadopago.MercadoPagoSecrets(
            access_token=mp.ACCESS_TOKEN, webhook_secret=mp.WEBHOOK_SECRET
        )

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_mercadopago

    @pytest.fixture
    def payment_link_request(self) -> PaymentLinkRequest:
        return PaymentLinkRequest(
            reference="plink_1",
            idempotency_key="plink_1:create",
            amount=Money.of("58.80", "PEN"),
            description="Deuda con Ejemplo SAC",
            payer=Payer(name="Juan Pérez", email="juan@example.pe",
                        document_type="DNI", document_number="12345678"),
            expires_at=NOW + timedelta(days=3),
        )  # fmt: skip

    @pytest.fixture
    def known_payment_id(self) -> str:
        return PAYMENT_ID

    @pytest.fixture
    def unknown_payment_id(self) -> str:
        return "99999999999"

    @pytest.fixture
    def create_link_route(self) -> tuple[str, str]:
        return ("POST", "/checkout/preferences")

    @pytest.fixture
    def refund_request(self) -> RefundRequest:
        return RefundRequest(
            provider_payment_id=PAYMENT_ID,
            idempotency_key="refund_1",
            amount=Money.of("10.00", "PEN"),
        )

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        return mp.signed_notification(PAYMENT_ID, ts=str(int(NOW.timestamp())))
