"""The sample provider passes the channel conformance suite shipped in the test kit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sdk_sample_channel

from cartera_sdk import OutboundMessage, SmsContent, WebhookRequest, signatures
from cartera_sdk.testkit import ChannelConformance, FakeHTTPServer, RecordedRequest, json_response

SECRETS = sdk_sample_channel.AcmeSecrets(api_key="key-123", webhook_secret="whsec-456")


def _accept(request: RecordedRequest) -> object:
    body = request.json()
    # Strict fake: wrong field names or a missing key fail the send.
    if request.headers.get("authorization") != "Bearer key-123":
        return json_response({"error": {"code": "auth", "message": "bad key"}}, 401)
    if set(body) != {"to", "from", "text", "client_ref"}:
        return json_response({"error": {"code": "fields", "message": str(sorted(body))}}, 400)
    return json_response({"id": f"acme-{body['client_ref']}"}, 201)


class TestAcmeSms(ChannelConformance):
    @pytest.fixture
    def fake_server(self) -> Iterator[FakeHTTPServer]:
        with FakeHTTPServer() as server:
            server.route("POST", "/v1/messages", _accept)  # type: ignore[arg-type]
            yield server

    @pytest.fixture
    def provider(self) -> sdk_sample_channel.AcmeSms:
        return sdk_sample_channel.AcmeSms()

    @pytest.fixture
    def config(self, fake_server: FakeHTTPServer) -> sdk_sample_channel.AcmeConfig:
        return sdk_sample_channel.AcmeConfig(base_url=fake_server.base_url)

    @pytest.fixture
    def secrets(self) -> sdk_sample_channel.AcmeSecrets:
        return SECRETS

    @pytest.fixture
    def send_route(self) -> tuple[str, str]:
        return ("POST", "/v1/messages")

    @pytest.fixture
    def plugin(self) -> object:
        return sdk_sample_channel

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return OutboundMessage(
            message_id="out_1",
            idempotency_key="idem_1",
            to="+51987654321",
            content=SmsContent(text="Su cuota vence mañana"),
        )

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        body = json.dumps(
            [{"event_id": "ev1", "message_id": "acme-out_1", "status": "delivered",
              "ts": 1750030073},
             {"event_id": "ev2", "message_id": "acme-out_2", "status": "failed", "ts": 1750030080,
              "error_code": "30003"}],
            separators=(",", ":"),
        ).encode()  # fmt: skip
        return WebhookRequest(
            method="POST",
            url="https://cartera.example/v1/hooks/int_test",
            headers={"Content-Type": "application/json",
                     "X-Acme-Signature": signatures.meta_signature("whsec-456", body)},
            body=body,
        )  # fmt: skip


def test_sample_send_reaches_fake_with_correlation(fake_host, fake_http_server) -> None:  # type: ignore[no-untyped-def]
    """End to end through the pytest11 fixtures: the fake records what was sent."""
    from cartera_sdk.testkit import run

    fake_http_server.route("POST", "/v1/messages", _accept)
    fake_host.load(sdk_sample_channel)
    provider = fake_host.channels["acme_sms"]
    ctx = fake_host.context(
        provider, config=sdk_sample_channel.AcmeConfig(base_url=fake_http_server.base_url),
        secrets=SECRETS,
    )  # fmt: skip
    message = OutboundMessage(
        message_id="out_9", idempotency_key="k9", to="+5215512345678",
        content=SmsContent(text="Hola"),
    )  # fmt: skip
    result = run(provider.send(message, ctx))
    assert result == sdk_sample_channel.Sent(provider_message_id="acme-out_9")
    (recorded,) = fake_http_server.requests
    assert recorded.json()["client_ref"] == "out_9"
    assert recorded.headers["x-request-id"]


LAX_FAKE = """
from collections.abc import Iterator
import pytest
from cartera_sdk.testkit import FakeHTTPServer, json_response
from test_sdk_channel_conformance import TestAcmeSms as Strict


class TestAlwaysOk(Strict):
    @pytest.fixture
    def fake_server(self) -> Iterator[FakeHTTPServer]:
        with FakeHTTPServer() as server:
            server.route("POST", "/v1/messages", json_response({"id": "acme-1"}, 201))
            yield server
"""

IGNORES_200_ERRORS = """
import pytest
from cartera_sdk.testkit import json_response
from test_sdk_channel_conformance import TestAcmeSms as Strict


class TestTrustsEvery200(Strict):
    @pytest.fixture
    def error_in_ok_response(self):
        return json_response({"id": "acme-1", "error": {"code": "blocked"}}, 200)
"""


def _failed(pytester: pytest.Pytester, source: str) -> set[str]:
    pytester.syspathinsert(str(__import__("pathlib").Path(__file__).parent))
    pytester.makepyfile(test_variant=source)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "test_variant.py")
    return {line.split("::")[-1].split(" ")[0] for line in result.outlines if "FAILED" in line}


def test_a_fake_that_always_answers_ok_fails_the_suite(pytester: pytest.Pytester) -> None:
    assert _failed(pytester, LAX_FAKE) == {"test_send_with_wrong_credentials_is_refused"}


def test_a_provider_that_trusts_every_200_fails_the_suite(pytester: pytest.Pytester) -> None:
    assert _failed(pytester, IGNORES_200_ERRORS) == {
        "test_send_error_inside_http_200_is_a_failure"}


def test_a_provider_that_drops_the_correlation_id_fails_the_suite(
    pytester: pytest.Pytester,
) -> None:
    source = """
import msgspec
import pytest
import sdk_sample_channel
from test_sdk_channel_conformance import TestAcmeSms as Strict


class NoRef(sdk_sample_channel.AcmeSms):
    async def send(self, message, ctx):
        return await super().send(msgspec.structs.replace(message, message_id="zz"), ctx)


class TestNoRef(Strict):
    @pytest.fixture
    def provider(self):
        return NoRef()
"""
    assert _failed(pytester, source) == {"test_send_request_reached_the_fake"}


def test_a_refusal_inside_a_202_is_expressible(pytester: pytest.Pytester) -> None:
    """Providers that accept with 202 (Plivo) refuse inside a 202 body too (1.1)."""
    source = """
import pytest
from cartera_sdk.testkit import json_response
from test_sdk_channel_conformance import TestAcmeSms as Strict


class TestRefusesIn202(Strict):
    @pytest.fixture
    def error_in_ok_response(self):
        return json_response({"error": {"code": "blocked", "message": "no"}}, 202)
"""
    assert _failed(pytester, source) == set()


def test_as_received_stamps_a_fixed_instant_once() -> None:
    from cartera_sdk.testkit import RECEIVED_AT, as_received

    bare = WebhookRequest(method="POST", url="https://x/h", body=b"{}")
    assert as_received(bare).received_at == RECEIVED_AT
    stamped = as_received(bare, at=RECEIVED_AT.replace(hour=9))
    assert as_received(stamped) is stamped
