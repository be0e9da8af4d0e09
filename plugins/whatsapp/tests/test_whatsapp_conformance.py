"""The WhatsApp provider passes the SDK's channel conformance suite against the strict fake."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import whatsapp_fake_graph as graph
import whatsapp_samples as samples
from cartera_sdk import (
    CurrencyParameter,
    DateTimeParameter,
    Money,
    OutboundMessage,
    TextParameter,
    UrlButton,
    WebhookRequest,
    WhatsAppTemplateContent,
)
from cartera_sdk.testkit import ChannelConformance, FakeHTTPServer

import cartera_whatsapp


class TestWhatsAppConformance(ChannelConformance):
    @pytest.fixture
    def fake_server(self) -> Iterator[FakeHTTPServer]:
        with FakeHTTPServer() as server:
            graph.FakeGraph(server).install()
            yield server

    @pytest.fixture
    def provider(self) -> cartera_whatsapp.WhatsAppCloud:
        return cartera_whatsapp.WhatsAppCloud()

    @pytest.fixture
    def config(self, fake_server: FakeHTTPServer) -> cartera_whatsapp.WhatsAppConfig:
        return cartera_whatsapp.WhatsAppConfig(
            graph_api_version=graph.VERSION,
            phone_number_id=graph.PHONE_NUMBER_ID,
            waba_id=graph.WABA_ID,
            base_url=fake_server.base_url,
        )

    @pytest.fixture
    def secrets(self) -> cartera_whatsapp.WhatsAppSecrets:
        return cartera_whatsapp.WhatsAppSecrets(
            access_token=graph.ACCESS_TOKEN,
            app_secret=graph.APP_SECRET,
            verify_token=graph.VERIFY_TOKEN,
        )

    @pytest.fixture
    def send_route(self) -> tuple[str, str]:
        return ("POST", f"/{graph.VERSION}/{graph.PHONE_NUMBER_ID}/messages")

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_whatsapp

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return OutboundMessage(
            message_id="out_1",
            idempotency_key="idem_1",
            to="+5491155550000",
            content=WhatsAppTemplateContent(
                name="payment_reminder",
                language="es_AR",
                body_parameters=[
                    TextParameter(text="Juan Pérez"),
                    CurrencyParameter(
                        amount=Money(Decimal("12500.00"), "ARS"), fallback_value="$12.500,00"
                    ),
                    DateTimeParameter(fallback_value="15/07/2026"),
                ],
                buttons=[UrlButton(index=0, text="pref-843382748-18d90a57")],
            ),
        )

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        # The exact bytes of the protocols.md §1.8 [V] vector, with its published signature.
        return WebhookRequest(
            method="POST",
            url="https://cartera.example/v1/hooks/int_test",
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": samples.COMPACT_STATUS_SIGNATURE,
            },
            body=samples.COMPACT_STATUS_BODY,
        )
