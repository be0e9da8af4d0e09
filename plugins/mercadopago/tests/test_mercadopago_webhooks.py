"""Webhook verification and parsing: the protocol's signature vectors (protocols.md 4.5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import mercadopago_fake as mp
import pytest
from cartera_sdk import ProviderContext, WebhookRequest, WebhookVerificationError, signatures
from cartera_sdk.testkit import FakeHost, FrozenClock, run

from cartera_mercadopago import MercadoPago, MercadoPagoConfig, MercadoPagoSecrets

# [V] constants from the official SDK's tests.
ORDER_SECRET = "your_secret_key_here"
ORDER_REQUEST_ID = "2066ca19-c6f1-498a-be75-1923005edd06"
ORDER_DATA_ID = "ord01jq4s4ky8hwq6na5pxb65b3d3"
ORDER_TS = "1742505638683"  # milliseconds
ORDER_V1 = "633f91233312dd391ec75fa0bea539cfc2d6c4918873305b84a96cc1c58db71c"
PAYMENT_SECRET = "test_webhook_secret"
PAYMENT_REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
PAYMENT_DATA_ID = "123456"
PAYMENT_TS = "1704908010"  # seconds
PAYMENT_V1 = "837a72201dd23865015154cc29c31a263423950a3f937547a0d05ed823118193"

PROVIDER = MercadoPago()


def _at(ts: str) -> datetime:
    value = int(ts)
    return datetime.fromtimestamp(value / 1000 if len(ts) == 13 else value, UTC)


def _ctx(secret: str, now: datetime, tolerance: int = 300) -> ProviderContext[Any, Any]:
    host = FakeHost(clock=FrozenClock(now))
    return host.context(
        PROVIDER,
        config=MercadoPagoConfig(signature_tolerance_seconds=tolerance),
        secrets=MercadoPagoSecrets(access_token="APP_USR-x", webhook_secret=secret),
    )


def _request(
    data_id: str, request_id: str | None, signature: str | None, *,
    topic: str = "payment", body_id: str | None = None, notification_id: int | None = 9001,
) -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    if signature is not None:
        headers["x-signature"] = signature
    body = {"id": notification_id, "live_mode": False, "type": topic,
            "action": f"{topic}.updated", "date_created": "2026-03-02T12:00:00.000-03:00",
            "data": {"id": body_id if body_id is not None else data_id}}
    if notification_id is None:
        del body["id"]
    return WebhookRequest(
        method="POST",
        url=f"https://cartera.example/v1/hooks/int_test?data.id={data_id}&type={topic}",
        headers=headers,
        body=json.dumps(body).encode(),
    )  # fmt: skip


def test_vectors_reproduce_the_published_signatures() -> None:
    order = signatures.mercadopago_manifest(ORDER_DATA_ID, ORDER_REQUEST_ID, ORDER_TS)
    assert order == f"id:{ORDER_DATA_ID};request-id:{ORDER_REQUEST_ID};ts:{ORDER_TS};"
    assert signatures.hmac_digest(ORDER_SECRET, order) == ORDER_V1
    payment = signatures.mercadopago_manifest(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, PAYMENT_TS)
    assert signatures.hmac_digest(PAYMENT_SECRET, payment) == PAYMENT_V1
    assert mp.sign(PAYMENT_SECRET, PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, PAYMENT_TS) == (
        f"ts={PAYMENT_TS},v1={PAYMENT_V1}"
    )


@pytest.mark.parametrize(
    ("secret", "data_id", "request_id", "ts", "v1", "topic"),
    [(ORDER_SECRET, ORDER_DATA_ID, ORDER_REQUEST_ID, ORDER_TS, ORDER_V1, "order"),
     (ORDER_SECRET, ORDER_DATA_ID.upper(), ORDER_REQUEST_ID, ORDER_TS, ORDER_V1, "order"),
     (PAYMENT_SECRET, PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, PAYMENT_TS, PAYMENT_V1, "payment")],
    ids=["order-ms", "order-uppercase-id", "payment-seconds"],
)  # fmt: skip
def test_verify_accepts_the_vectors(
    secret: str, data_id: str, request_id: str, ts: str, v1: str, topic: str
) -> None:
    request = _request(data_id, request_id, f"ts={ts},v1={v1}", topic=topic)
    assert run(PROVIDER.verify_webhook(request, _ctx(secret, _at(ts)))) is None


def test_signature_header_parsing_tolerates_spaces_and_order() -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, f" v1={PAYMENT_V1} , ts={PAYMENT_TS}")
    run(PROVIDER.verify_webhook(request, _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))))


def _refused(request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        run(PROVIDER.verify_webhook(request, ctx))
    return info.value.code


GOOD = f"ts={PAYMENT_TS},v1={PAYMENT_V1}"


@pytest.mark.parametrize(
    ("request_", "code"),
    [(_request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, None), "missing_signature"),
     (_request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, f"v1={PAYMENT_V1}"), "missing_signature"),
     (_request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, f"ts={PAYMENT_TS}"), "missing_signature"),
     (_request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD[:-1] + "0"), "bad_signature"),
     (_request("123457", PAYMENT_REQUEST_ID, GOOD), "bad_signature"),
     (_request(PAYMENT_DATA_ID, "another-request", GOOD), "bad_signature"),
     (_request(PAYMENT_DATA_ID, None, GOOD), "bad_signature"),
     (_request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD, body_id="999"), "resource_mismatch")],
    ids=["no-header", "no-ts", "no-v1", "tampered-v1", "other-data-id", "other-request-id",
         "no-request-id", "body-names-another-payment"],
)  # fmt: skip
def test_verify_refuses(request_: WebhookRequest, code: str) -> None:
    assert _refused(request_, _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))) == code


def test_verify_refuses_without_data_id_in_the_query() -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD)
    unsigned = WebhookRequest(method="POST", url="https://cartera.example/v1/hooks/int_test",
                              headers=request.headers, body=request.body)  # fmt: skip
    assert _refused(unsigned, _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))) == "missing_resource_id"


def test_verify_refuses_the_wrong_secret() -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD)
    assert _refused(request, _ctx("other_secret", _at(PAYMENT_TS))) == "bad_signature"


@pytest.mark.parametrize("ts", [PAYMENT_TS, ORDER_TS], ids=["seconds", "milliseconds"])
def test_stale_and_future_timestamps_are_refused(ts: str) -> None:
    secret, data_id, request_id = (
        (PAYMENT_SECRET, PAYMENT_DATA_ID, PAYMENT_REQUEST_ID) if len(ts) == 10
        else (ORDER_SECRET, ORDER_DATA_ID, ORDER_REQUEST_ID)
    )  # fmt: skip
    request = _request(data_id, request_id, mp.sign(secret, data_id, request_id, ts))
    signed_at = _at(ts)
    run(PROVIDER.verify_webhook(request, _ctx(secret, signed_at + timedelta(seconds=300))))
    late = _ctx(secret, signed_at + timedelta(seconds=301))
    assert _refused(request, late) == "stale_timestamp"
    early = _ctx(secret, signed_at - timedelta(seconds=61))
    assert _refused(request, early) == "stale_timestamp"
    lenient = _ctx(secret, signed_at + timedelta(seconds=3000), tolerance=3600)
    run(PROVIDER.verify_webhook(request, lenient))


def test_a_non_numeric_ts_is_refused() -> None:
    ts = "yesterday"
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID,
                       mp.sign(PAYMENT_SECRET, PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, ts))
    assert _refused(request, _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))) == "bad_timestamp"


def test_parse_names_the_signed_payment() -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD)
    ctx = _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))
    [event] = PROVIDER.parse_webhook(request, ctx)
    assert event.event_id == "9001"
    assert event.kind == "payment"
    assert event.action == "payment.updated"
    assert event.resource_id == PAYMENT_DATA_ID
    assert event.occurred_at == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert event.live_mode is False
    assert event.payment is None
    assert not event.confirmed


def test_parse_without_notification_id_derives_a_stable_one() -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD, notification_id=None)
    ctx = _ctx(PAYMENT_SECRET, _at(PAYMENT_TS))
    [event] = PROVIDER.parse_webhook(request, ctx)
    assert event.event_id == f"payment:{PAYMENT_DATA_ID}:{PAYMENT_REQUEST_ID}"


@pytest.mark.parametrize(("topic", "kind"), [("order", "order"), ("chargebacks", "chargeback"),
                                             ("topic_merchant_order_wh", "other")])
def test_parse_kinds(topic: str, kind: str) -> None:
    request = _request(PAYMENT_DATA_ID, PAYMENT_REQUEST_ID, GOOD, topic=topic)
    [event] = PROVIDER.parse_webhook(request, _ctx(PAYMENT_SECRET, _at(PAYMENT_TS)))
    assert event.kind == kind
