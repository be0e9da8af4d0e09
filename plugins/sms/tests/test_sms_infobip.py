"""``infobip_sms`` against a strict local fake of the Infobip SMS v3 API."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
from cartera_sdk import (
    DeliveryStatusEvent,
    InboundMessage,
    Money,
    OutboundMessage,
    Price,
    SendFailure,
    Sent,
    SmsContent,
    WebhookRequest,
    WebhookVerificationError,
)
from cartera_sdk.testkit import (
    ChannelConformance,
    FakeHost,
    FakeHTTPServer,
    FakeResponse,
    json_response,
    run,
)
from sms_testing_fakes import InfobipFake, send_checked, sms_message

import cartera_sms
from cartera_sms.infobip import InfobipSmsConfig, InfobipSmsProvider, InfobipSmsSecrets

WEBHOOK_URL = "https://cartera.example/v1/hooks/int_test"
WEBHOOK_SECRET = "ib_webhook_secret_42"
SECRETS = InfobipSmsSecrets(api_key=InfobipFake.API_KEY, webhook_secret=WEBHOOK_SECRET)
TO = "+51987654321"

#: The delivery report of protocols.md 2.2, verbatim.
PROTOCOL_DLR = {
    "results": [
        {
            "bulkId": "BULK-ID-123-xyz",
            "price": {"pricePerMessage": 0.01, "currency": "EUR"},
            "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                       "name": "DELIVERED_TO_HANDSET",
                       "description": "Message delivered to handset"},
            "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                      "description": "No Error", "permanent": False},
            "messageId": "MESSAGE-ID-123-xyz",
            "to": "41793026727",
            "sender": "InfoSMS",
            "sentAt": "2023-08-01T16:10:00+05:30",
            "doneAt": "2023-08-01T16:10:00+05:30",
            "messageCount": 1,
            "platform": {"entityId": "promotional-traffic-entity",
                         "applicationId": "marketing-automation-application"},
        }
    ]
}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[InfobipFake]:
    with FakeHTTPServer() as server:
        infobip = InfobipFake(server)
        yield infobip
        assert infobip.violations == []


def _config(fake: InfobipFake | None = None, **changes: Any) -> InfobipSmsConfig:
    base = InfobipSmsConfig(
        base_url=fake.server.base_url if fake else "https://api.infobip.com", sender="Cartera"
    )
    return msgspec.structs.replace(base, **changes)


def _message(text: str = "Hola Ana, su cuota vence mañana.", **kw: Any) -> OutboundMessage:
    return sms_message(text, **{"to": TO, **kw})


def _send(fake: InfobipFake, message: Any = None, secrets: Any = SECRETS, **config: Any) -> Any:
    return send_checked(InfobipSmsProvider(), _config(fake, **config), secrets,
                        message or _message())


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _webhook(body: Any, headers: dict[str, str] | None = None, url: str = WEBHOOK_URL) -> Any:
    return WebhookRequest(
        method="POST", url=url,
        headers={"Content-Type": "application/json",
                 "Authorization": _basic("infobip", WEBHOOK_SECRET), **(headers or {})},
        body=json.dumps(body).encode(),
    )  # fmt: skip


def _ctx(**config: Any) -> Any:
    provider = InfobipSmsProvider()
    return FakeHost().context(provider, config=_config(**config), secrets=SECRETS)


def _parse(request: WebhookRequest, **config: Any) -> list[Any]:
    provider = InfobipSmsProvider()
    ctx = _ctx(**config)
    run(provider.verify_webhook(request, ctx))
    return provider.parse_webhook(request, ctx)


def _verify(request: WebhookRequest, **config: Any) -> None:
    run(InfobipSmsProvider().verify_webhook(request, _ctx(**config)))


# ------------------------------------------------------------------------------ conformance


class _InfobipConformance(ChannelConformance):
    # Infobip has no signature scheme: the shared secret authenticates the caller, not
    # the body, so the tampered-body clause does not apply (as for Mercado Pago).
    signs_body: ClassVar[bool] = False
    auth_headers: ClassVar[dict[str, str]] = {}
    webhook_auth: ClassVar[str] = "basic"

    @pytest.fixture
    def fake_server(self, fake: InfobipFake) -> FakeHTTPServer:
        return fake.server

    @pytest.fixture
    def provider(self) -> InfobipSmsProvider:
        return InfobipSmsProvider()

    @pytest.fixture
    def config(self, fake: InfobipFake) -> InfobipSmsConfig:
        return _config(fake, webhook_auth=self.webhook_auth)  # type: ignore[arg-type]

    @pytest.fixture
    def secrets(self) -> InfobipSmsSecrets:
        return SECRETS

    @pytest.fixture
    def send_route(self) -> tuple[str, str]:
        return ("POST", InfobipFake.SEND_PATH)

    @pytest.fixture
    def error_in_ok_response(self) -> FakeResponse:
        """Infobip answers 200 and puts a refusal in the message's status group."""
        return json_response({"messages": [{"messageId": "ib-1", "status": {
            "groupId": 5, "groupName": "REJECTED", "id": 12, "name": "REJECTED_NOT_ENOUGH_CREDITS",
            "description": "Not enough credits"}}]})

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_sms

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return _message()

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        return WebhookRequest(
            method="POST", url=WEBHOOK_URL,
            headers={"Content-Type": "application/json", **self.auth_headers},
            body=json.dumps(PROTOCOL_DLR).encode(),
        )  # fmt: skip


class TestInfobipSmsConformanceBasicAuth(_InfobipConformance):
    auth_headers: ClassVar[dict[str, str]] = {"Authorization": _basic("infobip", WEBHOOK_SECRET)}
    webhook_auth: ClassVar[str] = "basic"


class TestInfobipSmsConformanceHeaderAuth(_InfobipConformance):
    auth_headers: ClassVar[dict[str, str]] = {"X-Cartera-Webhook-Auth": WEBHOOK_SECRET}
    webhook_auth: ClassVar[str] = "header"


# ------------------------------------------------------------------------------ send


def test_send_posts_the_exact_v3_body(fake: InfobipFake) -> None:
    result = _send(fake)
    assert result == Sent(provider_message_id="out_1", segments=1)
    (request,) = fake.server.requests
    assert (request.method, request.path) == ("POST", "/sms/3/messages")
    assert request.headers["authorization"] == f"App {InfobipFake.API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "idempotency-key" not in request.headers
    delivery = f"https://infobip:{WEBHOOK_SECRET}@cartera.example/v1/hooks/int_test"
    assert request.json() == {
        "messages": [
            {
                "sender": "Cartera",
                "destinations": [{"to": "51987654321", "messageId": "out_1"}],
                "content": {"text": "Hola Ana, su cuota vence mañana."},
                "webhooks": {
                    "delivery": {"url": delivery, "intermediateReport": False},
                    "contentType": "application/json",
                    "callbackData": "out_1",
                },
            }
        ]
    }


def test_send_options_sender_override_and_auth_modes(fake: InfobipFake) -> None:
    message = _message(content=SmsContent(text="Hola", sender="COBRANZA"))
    assert isinstance(
        _send(fake, message, validity_period_hours=48, intermediate_reports=True,
              webhook_auth="url_token"),
        Sent,
    )  # fmt: skip
    item = fake.server.requests[0].json()["messages"][0]
    assert item["sender"] == "COBRANZA"
    assert item["options"] == {"validityPeriod": {"amount": 48, "timeUnit": "HOURS"}}
    assert item["webhooks"]["delivery"] == {
        "url": f"{WEBHOOK_URL}?cartera_token={WEBHOOK_SECRET}", "intermediateReport": True,
    }  # fmt: skip
    assert isinstance(_send(fake, sender="", webhook_auth="header", delivery_reports=True), Sent)
    item = fake.server.requests[1].json()["messages"][0]
    assert "sender" not in item
    assert item["webhooks"]["delivery"]["url"] == WEBHOOK_URL
    assert isinstance(_send(fake, delivery_reports=False), Sent)
    assert "webhooks" not in fake.server.requests[2].json()["messages"][0]


def test_long_unicode_text_reports_segments(fake: InfobipFake) -> None:
    result = _send(fake, _message("Pagué ✓ " * 12))
    assert isinstance(result, Sent)
    assert result.segments == 2


@pytest.mark.parametrize("text", ["", " \t"])
def test_empty_text_is_rejected_before_any_call(fake: InfobipFake, text: str) -> None:
    result = _send(fake, _message(text))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "empty_text")
    assert fake.server.requests == []


def test_rejected_destination_in_the_answer_is_permanent(fake: InfobipFake) -> None:
    result = _send(fake, _message(to="+51-abc"))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "REJECTED_DESTINATION")


def test_wrong_api_key_is_permanent(fake: InfobipFake) -> None:
    result = _send(fake, secrets=InfobipSmsSecrets(api_key="nope", webhook_secret="w"))
    assert result == SendFailure(kind="permanent", code="UNAUTHORIZED",
                                 reason="Invalid login details")  # fmt: skip


@pytest.mark.parametrize("retry_after", ["2", "300"])
def test_rate_limit_reports_retry_after_and_never_resends(
    fake: InfobipFake, retry_after: str
) -> None:
    fake.server.route(
        "POST", InfobipFake.SEND_PATH,
        FakeResponse(429, {"requestError": {"serviceException": {
            "messageId": "TOO_MANY_REQUESTS", "text": "Too many requests"}}},
            {"Retry-After": retry_after}),
    )  # fmt: skip
    result = _send(fake)
    assert result == SendFailure(
        kind="rate_limited", code="TOO_MANY_REQUESTS", reason="Too many requests",
        retry_after_seconds=float(retry_after),
    )  # fmt: skip
    assert len(fake.server.requests) == 1


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [(InfobipFake.error("GENERAL_ERROR", "Something went wrong", 500), "retryable",
      "GENERAL_ERROR"),
     (FakeResponse(503, "upstream down"), "retryable", "503"),
     (FakeResponse(400, {"errorCode": "E400", "description": "Request cannot be processed.",
                         "violations": []}), "permanent", "E400"),
     (InfobipFake.error("BAD_REQUEST", "Invalid destination +51987654321", 400), "permanent",
      "BAD_REQUEST")],
)  # fmt: skip
def test_error_mapping(fake: InfobipFake, response: FakeResponse, kind: str, code: str) -> None:
    fake.server.route("POST", InfobipFake.SEND_PATH, response)
    result = _send(fake)
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == (kind, code)
    assert "987654321" not in result.reason


@pytest.mark.parametrize(
    "mutate",
    [lambda m: m["destinations"][0].update(phone=m["destinations"][0].pop("to")),
     lambda m: m.update(text=m.pop("content")["text"]),
     lambda m: m.update(from_=m.pop("sender")),
     lambda m: m["webhooks"].update(callback_data=m["webhooks"].pop("callbackData"))],
)  # fmt: skip
def test_fake_answers_a_wrong_field_name_like_infobip(fake: InfobipFake, mutate: Any) -> None:
    from cartera_sms.infobip import build_payload

    ctx = FakeHost().context(InfobipSmsProvider(), config=_config(fake), secrets=SECRETS)
    payload = build_payload(_message(), "hola", None, ctx)
    mutate(payload["messages"][0])
    response = httpx.post(
        fake.server.base_url + InfobipFake.SEND_PATH, json=payload,
        headers={"Authorization": f"App {InfobipFake.API_KEY}", "Accept": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json() == {
        "requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request"}}
    }
    assert fake.violations
    fake.violations.clear()


def test_deprecated_endpoint_is_not_served(fake: InfobipFake) -> None:
    response = httpx.post(fake.server.base_url + "/sms/2/text/advanced", json={})
    assert response.status_code == 404


# ------------------------------------------------------------------------------ test_connection


def test_connection(fake: InfobipFake) -> None:
    provider = InfobipSmsProvider()
    host = FakeHost()
    check = run(provider.test_connection(host.context(provider, config=_config(fake),
                                                      secrets=SECRETS)))  # fmt: skip
    assert (check.ok, check.code, check.detail) == (True, "ok", "balance 47.79134 EUR")
    assert fake.server.requests[0].path == "/account/1/balance"
    bad = host.context(provider, config=_config(fake), secrets=InfobipSmsSecrets(api_key="x"))
    assert run(provider.test_connection(bad)).code == "auth_failed"


# ------------------------------------------------------------------------------ webhook auth


def test_basic_auth_rules() -> None:
    _verify(_webhook(PROTOCOL_DLR))
    for header, code in [
        (_basic("infobip", "wrong"), "bad_credentials"),
        (_basic("someone", WEBHOOK_SECRET), "missing_credentials"),
        ("Basic !!!notbase64", "missing_credentials"),
        (f"Bearer {WEBHOOK_SECRET}", "missing_credentials"),
    ]:
        with pytest.raises(WebhookVerificationError) as info:
            _verify(_webhook(PROTOCOL_DLR, {"Authorization": header}))
        assert info.value.code == code


def test_header_auth_rules() -> None:
    request = _webhook(PROTOCOL_DLR, {"x-cartera-webhook-auth": WEBHOOK_SECRET})
    _verify(request, webhook_auth="header")
    with pytest.raises(WebhookVerificationError):
        _verify(_webhook(PROTOCOL_DLR, {"X-Cartera-Webhook-Auth": "nope"}), webhook_auth="header")
    _verify(_webhook(PROTOCOL_DLR, {"X-Infobip-Key": WEBHOOK_SECRET}), webhook_auth="header",
            webhook_header="X-Infobip-Key")  # fmt: skip


def test_url_token_rules() -> None:
    good = _webhook(PROTOCOL_DLR, url=f"{WEBHOOK_URL}?cartera_token={WEBHOOK_SECRET}")
    _verify(good, webhook_auth="url_token")
    for url in (WEBHOOK_URL, f"{WEBHOOK_URL}?cartera_token=nope"):
        with pytest.raises(WebhookVerificationError):
            _verify(_webhook(PROTOCOL_DLR, url=url), webhook_auth="url_token")


def test_unconfigured_secret_rejects_everything() -> None:
    provider = InfobipSmsProvider()
    ctx = FakeHost().context(provider, config=_config(), secrets=InfobipSmsSecrets(api_key="k"))
    with pytest.raises(WebhookVerificationError) as info:
        run(provider.verify_webhook(_webhook(PROTOCOL_DLR, {"Authorization": _basic(
            "infobip", "")}), ctx))  # fmt: skip
    assert info.value.code in ("missing_credentials", "not_configured")


# ------------------------------------------------------------------------------ parsing


def test_protocol_delivery_report_parses() -> None:
    (event,) = _parse(_webhook(PROTOCOL_DLR))
    assert event == DeliveryStatusEvent(
        event_id="MESSAGE-ID-123-xyz:DELIVERED_TO_HANDSET",
        provider_message_id="MESSAGE-ID-123-xyz",
        status="delivered",
        occurred_at=datetime(2023, 8, 1, 10, 40, tzinfo=UTC),
        cost=Money(Decimal("0.01"), "EUR"),
        price=Price.of("0.01", "EUR"),
        provider_status="DELIVERED_TO_HANDSET",
    )


def test_sub_cent_prices_are_kept_at_infobip_precision_for_every_part() -> None:
    item = _result("m1", "DELIVERED", "DELIVERED_TO_HANDSET", messageCount=3,
                   price={"pricePerMessage": 0.0333, "currency": "EUR"})
    (event,) = _parse(_webhook({"results": [item]}))
    assert (event.price, event.cost) == (Price.of("0.0999", "EUR"), None)


@pytest.mark.parametrize(("error", "suppress"), [
    ({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 1, "name": "EC_UNKNOWN_SUBSCRIBER",
      "permanent": True}, "hard_bounce"),
    ({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 13, "permanent": True}, "hard_bounce"),
    ({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 9, "name": "EC_ILLEGAL_SUBSCRIBER"},
     "hard_bounce"),
    ({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER",
      "permanent": False}, None),
    ({"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 1, "name": "EC_UNKNOWN_SUBSCRIBER",
      "permanent": False}, None),
])  # fmt: skip
def test_unusable_number_errors_suppress_the_number(
    error: dict[str, Any], suppress: str | None
) -> None:
    body = {"results": [_result("m1", "UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED",
                                error=error)]}  # fmt: skip
    (event,) = _parse(_webhook(body))
    assert (event.status, event.suppress) == ("undeliverable", suppress)


def _result(message_id: str, group: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"messageId": message_id, "to": "51987654321", "callbackData": "out_1",
            "status": {"groupName": group, "name": name, "description": name.lower()},
            "doneAt": "2026-03-02T15:00:05.000+0000", **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("group", "name", "state", "error_code"),
    [("PENDING", "PENDING_ACCEPTED", "queued", None),
     ("PENDING", "PENDING_ENROUTE", "sent", None),
     ("DELIVERED", "DELIVERED_TO_HANDSET", "delivered", None),
     ("UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED", "undeliverable",
      "UNDELIVERABLE_NOT_DELIVERED"),
     ("EXPIRED", "EXPIRED_EXPIRED", "expired", "EXPIRED_EXPIRED"),
     ("REJECTED", "REJECTED_DESTINATION", "rejected", "REJECTED_DESTINATION"),
     ("SOMETHING_NEW", "SOMETHING_NEW_X", "unknown", None)],
)  # fmt: skip
def test_status_groups_map_to_states(
    group: str, name: str, state: str, error_code: str | None
) -> None:
    (event,) = _parse(_webhook({"results": [_result("m1", group, name)]}))
    assert (event.status, event.error_code, event.message_id) == (state, error_code, "out_1")
    assert event.provider_status == name
    assert event.event_id == f"m1:{name}"
    assert event.occurred_at == datetime(2026, 3, 2, 15, 0, 5, tzinfo=UTC)


def test_report_error_object_wins() -> None:
    error = {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27, "name": "EC_ABSENT_SUBSCRIBER",
             "description": "Absent Subscriber", "permanent": False}  # fmt: skip
    body = {"results": [_result("m1", "UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED",
                                error=error)]}  # fmt: skip
    (event,) = _parse(_webhook(body))
    assert (event.error_code, event.error_reason) == ("EC_ABSENT_SUBSCRIBER", "Absent Subscriber")


def test_batches_dedupe_and_redeliveries_keep_ids() -> None:
    body = {"results": [
        _result("m1", "DELIVERED", "DELIVERED_TO_HANDSET"),
        _result("m1", "DELIVERED", "DELIVERED_TO_HANDSET"),
        _result("m2", "PENDING", "PENDING_ENROUTE"),
        _result("m2", "DELIVERED", "DELIVERED_TO_HANDSET"),
        {"messageId": "m3", "status": {"groupName": "MYSTERY"}},
        "garbage",
    ]}  # fmt: skip
    events = _parse(_webhook(body))
    assert [e.event_id for e in events] == [
        "m1:DELIVERED_TO_HANDSET", "m2:PENDING_ENROUTE", "m2:DELIVERED_TO_HANDSET",
        "m3:MYSTERY",  # an unknown group is still an event, with the raw status kept
    ]  # fmt: skip
    assert (events[-1].status, events[-1].provider_status) == ("unknown", "MYSTERY")
    again = msgspec.structs.replace(_webhook(body), received_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert [e.event_id for e in _parse(again)] == [e.event_id for e in events]


def test_missing_timestamps_fall_back_to_receipt_time() -> None:
    item = _result("m1", "DELIVERED", "DELIVERED_TO_HANDSET")
    del item["doneAt"]
    stamped = msgspec.structs.replace(
        _webhook({"results": [item]}), received_at=datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    )
    (event,) = _parse(stamped)
    assert event.occurred_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_inbound_sms_parses() -> None:
    body = {
        "results": [
            {"messageId": "817790313235066447", "from": "51987654321", "to": "51900100200",
             "text": "QKZKYTHZ Ya pagué", "cleanText": "Ya pagué", "keyword": "QKZKYTHZ",
             "receivedAt": "2026-03-02T15:01:00.220+0000", "smsCount": 1,
             "price": {"pricePerMessage": 0, "currency": "EUR"}},
            {"messageId": "817790313235066448", "from": "51987654321", "to": "2525",
             "cleanText": "STOP", "receivedAt": "2026-03-02T15:02:00.000+0000"},
        ],
        "messageCount": 2,
        "pendingMessageCount": 0,
    }  # fmt: skip
    first, second = _parse(_webhook(body))
    assert isinstance(first, InboundMessage)
    assert first.event_id == "817790313235066447:received"
    assert (first.from_address, first.to_address) == ("+51987654321", "51900100200")
    assert first.text == "QKZKYTHZ Ya pagué"
    assert first.occurred_at == datetime(2026, 3, 2, 15, 1, 0, 220000, tzinfo=UTC)
    assert (second.text, second.to_address) == ("STOP", "2525")


def test_non_results_bodies_yield_nothing() -> None:
    assert _parse(_webhook({"hello": 1})) == []
    assert _parse(_webhook([1, 2])) == []
