"""A provider whose webhooks are GET query strings signed in a ``sig`` parameter passes the
channel conformance suite: the suite strips and tampers with the signature where the
provider declares it lives, not in headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cartera_fixture_plugin
import pytest
from cartera_sdk import OutboundMessage, SmsContent, WebhookRequest
from cartera_sdk.signatures import sorted_params_signature
from cartera_sdk.testkit import (
    ChannelConformance,
    FakeHTTPServer,
    FakeResponse,
    RecordedRequest,
    json_response,
)
from cartera_sdk.testkit.channel_checks import strip_signature, tamper_query

SECRET = "whsec-q"


def _messages(request: RecordedRequest) -> FakeResponse:
    if request.headers.get("authorization") != "Bearer key-q":
        return json_response({"error": "unauthorized"}, 401)
    body = request.json()
    if set(body) != {"to", "from", "text", "ref"}:
        return json_response({"error": sorted(body)}, 400)
    return json_response({"id": f"q-{body['ref']}"}, 201)


class TestFixtureQuerySms(ChannelConformance):
    @pytest.fixture
    def fake_server(self) -> Iterator[FakeHTTPServer]:
        with FakeHTTPServer() as server:
            server.route("POST", "/messages", _messages)
            yield server

    @pytest.fixture
    def provider(self) -> Any:
        return cartera_fixture_plugin.FixtureQuerySms()

    @pytest.fixture
    def config(self, fake_server: FakeHTTPServer) -> Any:
        return cartera_fixture_plugin.FixtureConfig(base_url=fake_server.base_url)

    @pytest.fixture
    def secrets(self) -> Any:
        return cartera_fixture_plugin.FixtureSecrets(api_key="key-q", webhook_secret=SECRET)

    @pytest.fixture
    def send_route(self) -> tuple[str, str]:
        return ("POST", "/messages")

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_fixture_plugin

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return OutboundMessage(message_id="int_7", idempotency_key="k7", to="+5491100000000",
                               content=SmsContent(text="Su cuota vence mañana"))

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        params = {"messageId": "q-1", "status": "delivered", "client-ref": "int_7",
                  "message-timestamp": "2026-03-02T10:00:00+00:00"}
        params["sig"] = sorted_params_signature(SECRET, params)
        query = "&".join(f"{k}={v}" for k, v in params.items()).replace("+", "%2B")
        return WebhookRequest(method="GET", url=f"https://cartera.example/v1/hooks/t?{query}")


def test_signature_helpers_act_where_the_signature_lives() -> None:
    where = cartera_fixture_plugin.FixtureQuerySms.webhook_signature
    request = WebhookRequest(method="GET", url="https://h/x?a=1&sig=abc&b=2",
                             headers={"X-Other": "1"})
    stripped = strip_signature(request, where)
    assert stripped.params() == {"a": "1", "b": "2"}
    assert stripped.headers == {"X-Other": "1"}
    assert tamper_query(request, "sig").params() == {"a": "1", "sig": "abc", "b": "20"}
