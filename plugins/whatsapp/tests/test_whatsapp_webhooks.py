"""Webhooks: X-Hub-Signature-256 vectors, the GET handshake, status and inbound parsing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
import whatsapp_fake_graph as graph
import whatsapp_samples as samples
from cartera_sdk import (
    DeliveryStatusEvent,
    InboundMessage,
    PermanentError,
    WebhookRequest,
    WebhookVerificationError,
    signatures,
)
from cartera_sdk.testkit import FakeHost, run

import cartera_whatsapp

PROVIDER = cartera_whatsapp.WhatsAppCloud()
SECRETS = cartera_whatsapp.WhatsAppSecrets(
    access_token=graph.ACCESS_TOKEN, app_secret=graph.APP_SECRET, verify_token=graph.VERIFY_TOKEN
)
CONFIG = cartera_whatsapp.WhatsAppConfig(
    phone_number_id=graph.PHONE_NUMBER_ID, base_url="http://127.0.0.1:9"
)


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
def ctx(host: FakeHost) -> Any:
    return host.context(PROVIDER, config=CONFIG, secrets=SECRETS)


def parse(payload: dict[str, Any] | bytes, ctx: Any) -> list[Any]:
    request = samples.signed(payload)
    run(PROVIDER.verify_webhook(request, ctx))
    events: list[Any] = PROVIDER.parse_webhook(request, ctx)
    return events


# ---------------------------------------------------------------------------- signatures


def test_hmac_vector_secret_test() -> None:
    assert signatures.hmac_digest("secret", "test") == (
        "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    )


def test_compact_status_body_vector() -> None:
    assert (
        signatures.meta_signature("test_app_secret", samples.COMPACT_STATUS_BODY)
        == samples.COMPACT_STATUS_SIGNATURE
    )


def test_verify_accepts_the_published_vector(ctx: Any) -> None:
    request = WebhookRequest(
        method="POST",
        url="https://cartera.example/v1/hooks/int_test",
        headers={"x-hub-signature-256": samples.COMPACT_STATUS_SIGNATURE},  # any header case
        body=samples.COMPACT_STATUS_BODY,
    )
    assert run(PROVIDER.verify_webhook(request, ctx)) is None
    upper = request.with_headers(
        {"X-Hub-Signature-256": "sha256=" + samples.COMPACT_STATUS_SIGNATURE[7:].upper()}
    )
    assert run(PROVIDER.verify_webhook(upper, ctx)) is None


def _vector_request(header: str | None, body: bytes = samples.COMPACT_STATUS_BODY) -> Any:
    headers = {} if header is None else {"X-Hub-Signature-256": header}
    return WebhookRequest(method="POST", url="https://x/h", headers=headers, body=body)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (_vector_request(None), "missing_signature"),
        (_vector_request(""), "missing_signature"),
        (_vector_request(samples.COMPACT_STATUS_SIGNATURE[7:]), "bad_signature"),  # no prefix
        (_vector_request("sha1=" + samples.COMPACT_STATUS_SIGNATURE[7:]), "bad_signature"),
        (_vector_request("sha256=" + "0" * 64), "bad_signature"),
        # re-serialised JSON (spaces) is not the signed byte string
        (_vector_request(
            samples.COMPACT_STATUS_SIGNATURE,
            json.dumps(json.loads(samples.COMPACT_STATUS_BODY)).encode(),
        ), "bad_signature"),
        # the verify token is not the signing key (Meta's sample gets this wrong)
        (_vector_request(signatures.meta_signature(graph.VERIFY_TOKEN,
                                                   samples.COMPACT_STATUS_BODY)),
         "bad_signature"),
    ],
)  # fmt: skip
def test_verify_rejects(ctx: Any, request_: WebhookRequest, code: str) -> None:
    with pytest.raises(WebhookVerificationError) as info:
        run(PROVIDER.verify_webhook(request_, ctx))
    assert info.value.code == code


def test_verify_rejects_when_app_secret_is_unset(host: FakeHost) -> None:
    body = samples.COMPACT_STATUS_BODY
    ctx = host.context(PROVIDER, config=CONFIG, secrets=cartera_whatsapp.WhatsAppSecrets())
    request = _vector_request(signatures.meta_signature("", body))  # forgeable: must fail
    with pytest.raises(WebhookVerificationError) as info:
        run(PROVIDER.verify_webhook(request, ctx))
    assert info.value.code == "not_configured"


def test_non_ascii_is_verified_over_the_raw_escaped_bytes(ctx: Any) -> None:
    # Meta signs the escaped-unicode payload: "ñ" arrives as \u00f1 in the raw body.
    payload = samples.envelope([samples.change(messages=[
        {**samples.INBOUND_TEXT, "text": {"body": "Pagaré mañana"}}])])  # fmt: skip
    raw = json.dumps(payload, ensure_ascii=True).encode()
    assert b"\\u00f1" in raw
    [event] = parse(raw, ctx)
    assert isinstance(event, InboundMessage)
    assert event.text == "Pagaré mañana"


# ---------------------------------------------------------------------------- handshake


def _get(**params: str) -> WebhookRequest:
    return WebhookRequest(
        method="GET", url="https://cartera.example/v1/hooks/int_test?" + urlencode(params)
    )


def test_handshake_answers_the_challenge_as_plain_text(ctx: Any) -> None:
    answer = run(
        PROVIDER.handshake(
            _get(**{"hub.mode": "subscribe", "hub.challenge": "1158201444",
                    "hub.verify_token": "vibecoding"}),
            ctx,
        )
    )  # fmt: skip
    assert answer is not None
    assert (answer.status, answer.body, answer.content_type) == (200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "wrong"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "vibecoding"},
        {"hub.mode": "subscribe", "hub.verify_token": "vibecoding"},
    ],
)
def test_handshake_refuses_with_a_4xx(ctx: Any, params: dict[str, str]) -> None:
    answer = run(PROVIDER.handshake(_get(**params), ctx))
    assert answer is not None
    assert 400 <= answer.status < 500
    assert b"1158201444" not in answer.body


def test_handshake_refused_when_no_verify_token_is_configured(host: FakeHost) -> None:
    ctx = host.context(PROVIDER, config=CONFIG, secrets=cartera_whatsapp.WhatsAppSecrets())
    answer = run(
        PROVIDER.handshake(
            _get(**{"hub.mode": "subscribe", "hub.challenge": "7", "hub.verify_token": ""}), ctx
        )
    )
    assert answer is not None and answer.status == 403


def test_not_a_handshake(ctx: Any) -> None:
    assert run(PROVIDER.handshake(_get(), ctx)) is None
    assert run(PROVIDER.handshake(samples.signed(samples.COMPACT_STATUS_BODY), ctx)) is None


# ---------------------------------------------------------------------------- statuses


def test_sent_status_verbatim(ctx: Any) -> None:
    [event] = parse(samples.envelope([samples.change(statuses=[samples.SENT_STATUS])]), ctx)
    assert event == DeliveryStatusEvent(
        event_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:sent:1750030073",
        provider_message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
        status="sent",
        provider_status="sent",
        occurred_at=datetime(2025, 6, 15, 23, 27, 53, tzinfo=UTC),
    )


def test_failed_status_carries_the_error(ctx: Any) -> None:
    [event] = parse(samples.envelope([samples.change(statuses=[samples.FAILED_STATUS])]), ctx)
    assert isinstance(event, DeliveryStatusEvent)
    assert event.status == "failed"
    assert event.error_code == "131049"
    assert event.error_reason is not None and "healthy ecosystem" in event.error_reason
    assert event.occurred_at == datetime.fromtimestamp(1751142888, UTC)


def test_a_failed_status_for_a_number_off_whatsapp_suppresses_it(ctx: Any) -> None:
    failed = {**samples.FAILED_STATUS, "errors": [
        {"code": 131026, "title": "Message undeliverable",
         "error_data": {"details": "Message Undeliverable."}}]}
    [event] = parse(samples.envelope([samples.change(statuses=[failed])]), ctx)
    assert (event.status, event.error_code, event.suppress) == ("failed", "131026",
                                                                "hard_bounce")
    [other] = parse(samples.envelope([samples.change(statuses=[samples.FAILED_STATUS])]), ctx)
    assert other.suppress is None  # 131049 (ecosystem engagement) is no suppression


def test_compact_delivered_body(ctx: Any) -> None:
    [event] = parse(samples.COMPACT_STATUS_BODY, ctx)
    assert isinstance(event, DeliveryStatusEvent)
    assert event.status == "delivered"
    assert event.event_id.endswith(":delivered:1750030073")


def test_callback_data_correlates_the_outbox_message(ctx: Any) -> None:
    status = {**samples.SENT_STATUS, "status": "read", "biz_opaque_callback_data": "out_42"}
    [event] = parse(samples.envelope([samples.change(statuses=[status])]), ctx)
    assert (event.status, event.message_id) == ("read", "out_42")


def test_status_values(ctx: Any) -> None:
    statuses = [
        {**samples.SENT_STATUS, "status": name, "timestamp": str(1750030073 + i)}
        for i, name in enumerate(["sent", "delivered", "read", "played", "deleted", "warning"])
    ]
    events = parse(samples.envelope([samples.change(statuses=statuses)]), ctx)
    assert [e.status for e in events] == ["sent", "delivered", "read", "read", "unknown",
                                          "unknown"]
    assert events[3].event_id.split(":")[1] == "played"
    assert [e.provider_status for e in events[3:]] == ["played", "deleted", "warning"]


# ---------------------------------------------------------------------------- inbound


def test_inbound_text_verbatim(ctx: Any) -> None:
    [event] = parse(samples.envelope([samples.change(messages=[samples.INBOUND_TEXT])]), ctx)
    assert event == InboundMessage(
        event_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        provider_message_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        from_address="+16505551234",
        to_address="+15550783881",
        occurred_at=datetime.fromtimestamp(1749416383, UTC),
        text="Does it come in another color?",
    )


def test_button_and_interactive_replies(ctx: Any) -> None:
    payload = samples.envelope(
        [samples.change(messages=[samples.INBOUND_BUTTON, samples.INBOUND_INTERACTIVE])]
    )
    button, interactive = parse(payload, ctx)
    assert isinstance(button, InboundMessage)
    assert (button.button_payload, button.text, button.in_reply_to) == (
        "PROMISE_TOMORROW", "Pago mañana", "wamid.OUTBOUND-1",
    )  # fmt: skip
    assert button.from_address == "+5491155550000"
    assert (interactive.button_payload, interactive.text) == ("PAY_NOW", "Pagar")


def test_media_and_unknown_types_still_arrive(ctx: Any) -> None:
    image = {
        "from": "16505551234", "id": "wamid.IMG", "timestamp": "1750030300", "type": "image",
        "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "comprobante"},
    }  # fmt: skip
    sticker = {"from": "16505551234", "id": "wamid.STK", "timestamp": "1750030301",
               "type": "sticker", "sticker": {"id": "media-2"}}  # fmt: skip
    events = parse(samples.envelope([samples.change(messages=[image, sticker])]), ctx)
    assert [(e.event_id, e.text) for e in events] == [
        ("wamid.IMG", "comprobante"), ("wamid.STK", None),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- batches, dupes


def batched() -> dict[str, Any]:
    delivered = {**samples.SENT_STATUS, "status": "delivered", "timestamp": "1750030080"}
    return samples.envelope(
        [
            samples.change(statuses=[samples.SENT_STATUS, delivered]),
            samples.change(messages=[samples.INBOUND_TEXT]),
        ],
        [
            samples.change(statuses=[samples.FAILED_STATUS], messages=[samples.INBOUND_BUTTON]),
            # a redelivered copy of an earlier update inside the same batch
            samples.change(statuses=[samples.SENT_STATUS]),
        ],
    )


def test_batched_entries_and_changes_are_all_parsed_in_order(ctx: Any) -> None:
    events = parse(batched(), ctx)
    labels = [
        e.status if isinstance(e, DeliveryStatusEvent) else f"inbound {e.event_id}" for e in events
    ]
    assert labels == [
        "sent",
        "delivered",
        f"inbound {samples.INBOUND_TEXT['id']}",
        "failed",
        "inbound wamid.INBOUND-BUTTON-1",
    ]
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))


def test_duplicates_keep_the_same_event_id(ctx: Any) -> None:
    first = parse(batched(), ctx)
    # Meta retries (pretty-printed this time, different bytes, same updates)
    again = parse(json.dumps(batched(), indent=2).encode(), ctx)
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert again == first
    # the same status alone in a later delivery maps to the same id
    [alone] = parse(samples.envelope([samples.change(statuses=[samples.SENT_STATUS])]), ctx)
    assert alone.event_id == first[0].event_id
    # while a new status of the same message is a new event
    later = {**samples.SENT_STATUS, "status": "read", "timestamp": "1750030099"}
    [read] = parse(samples.envelope([samples.change(statuses=[later])]), ctx)
    assert read.event_id not in {e.event_id for e in first}


def test_unknown_fields_are_tolerated(ctx: Any) -> None:
    payload = samples.envelope([samples.change(statuses=[samples.SENT_STATUS])])
    extra = copy.deepcopy(payload)
    extra["entry"][0]["changes"][0]["value"]["statuses"][0].update(
        recipient_identity_key_hash="abc", contacts=[{"user_id": "US.1"}]
    )
    extra["entry"][0]["time"] = 1750030073
    assert parse(extra, ctx) == parse(payload, ctx)


def test_system_errors_other_numbers_and_other_fields_yield_nothing(
    ctx: Any, host: FakeHost
) -> None:
    system_error = {
        "code": 130429, "title": "Rate limit hit", "message": "Rate limit hit",
        "error_data": {"details": "too many messages"},
    }  # fmt: skip
    other_number = {"display_phone_number": "15550000000", "phone_number_id": "555"}
    payload = samples.envelope(
        [
            samples.change(errors=[system_error]),
            samples.change(statuses=[samples.SENT_STATUS], metadata=other_number),
            samples.change(statuses=[samples.SENT_STATUS], field="message_template_status_update"),
        ]
    )
    assert parse(payload, ctx) == []
    assert any("system-level webhook error" in line for line in host.log.lines)
    assert parse({"object": "page", "entry": []}, ctx) == []


def test_malformed_body_is_a_permanent_error(ctx: Any) -> None:
    with pytest.raises(PermanentError) as info:
        PROVIDER.parse_webhook(samples.signed(b"{not json"), ctx)
    assert info.value.code == "malformed_webhook"
    with pytest.raises(PermanentError):
        PROVIDER.parse_webhook(samples.signed(b'{"object": 1}'), ctx)


def test_events_round_trip_through_msgspec(ctx: Any) -> None:
    for event in parse(batched(), ctx):
        encoded = msgspec.json.encode(event)
        assert msgspec.json.decode(encoded, type=type(event)) == event


def test_an_item_with_a_bad_timestamp_is_skipped_not_the_batch(ctx: Any, host: FakeHost) -> None:
    broken = {**samples.SENT_STATUS, "id": "wamid.BROKEN", "timestamp": "yesterday"}
    payload = samples.envelope([samples.change(statuses=[broken, samples.FAILED_STATUS])])
    [event] = parse(payload, ctx)
    assert event.status == "failed"
    assert any("bad timestamp" in line for line in host.log.lines)
