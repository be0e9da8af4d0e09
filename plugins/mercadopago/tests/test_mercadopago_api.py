"""Preferences, payment lookups, refunds and errors against the strict fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import mercadopago_fake as mp
import msgspec
import pytest
from cartera_sdk import (
    Money,
    Payer,
    PaymentLinkRequest,
    PermanentError,
    ProviderError,
    RateLimitedError,
    RefundRequest,
    RetryableError,
    load_config,
)
from cartera_sdk.egress import EgressRefused
from cartera_sdk.payments import confirm_payment_event
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, FakeResponse, FrozenClock, run

import cartera_mercadopago
from cartera_mercadopago import MercadoPago, MercadoPagoConfig, MercadoPagoSecrets

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PAYMENT_ID = "17014025134"
PROVIDER = MercadoPago()


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as fake_server:
        yield fake_server


@pytest.fixture
def fake(server: FakeHTTPServer) -> mp.FakeMercadoPago:
    fake = mp.FakeMercadoPago(server).install()
    fake.add_payment(PAYMENT_ID, "58.80", "PEN", external_reference="plink_1")
    return fake


@pytest.fixture
def host() -> FakeHost:
    return FakeHost(clock=FrozenClock(NOW))


def _ctx(
    host: FakeHost, server: FakeHTTPServer, token: str = mp.ACCESS_TOKEN, **config: Any
) -> Any:
    return host.context(
        PROVIDER,
        config=MercadoPagoConfig(base_url=server.base_url, **config),
        secrets=MercadoPagoSecrets(access_token=token, webhook_secret=mp.WEBHOOK_SECRET),
    )


@pytest.fixture
def ctx(host: FakeHost, server: FakeHTTPServer, fake: mp.FakeMercadoPago) -> Any:
    return _ctx(host, server)


def _link_request(**changes: Any) -> PaymentLinkRequest:
    fields: dict[str, Any] = {
        "reference": "plink_1", "idempotency_key": "plink_1:create",
        "amount": Money.of("125.50", "PEN"), "description": "Deuda con Ejemplo SAC",
        "payer": Payer(name="Juan Pérez", email="juan@example.pe", phone="+51987654321",
                       document_type="DNI", document_number="12345678"),
        "expires_at": NOW + timedelta(days=3),
        "success_url": "https://pagos.example/ok",
    }  # fmt: skip
    return PaymentLinkRequest(**{**fields, **changes})


# ---------------------------------------------------------------------- config


def test_config_and_secrets_are_strict() -> None:
    assert load_config(MercadoPagoConfig, {}).base_url == "https://api.mercadopago.com"
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        load_config(MercadoPagoConfig, {"base_ur": "https://api.mercadopago.com"})
    with pytest.raises(msgspec.ValidationError, match="webhook_secret"):
        load_config(MercadoPagoSecrets, {"access_token": "APP_USR-1"})
    with pytest.raises(msgspec.ValidationError):
        load_config(MercadoPagoSecrets, {"access_token": "", "webhook_secret": "s"})
    with pytest.raises(msgspec.ValidationError):
        load_config(MercadoPagoSecrets, {"access_token": "a", "webhook_secret": "s", "x": 1})


def test_plugin_registers_through_the_host() -> None:
    host = FakeHost(cartera_mercadopago)
    assert isinstance(host.payment_providers["mercadopago"], MercadoPago)


# ---------------------------------------------------------------------- preferences


def test_create_link_sends_the_preference(
    ctx: Any, server: FakeHTTPServer, fake: mp.FakeMercadoPago
) -> None:
    link = run(PROVIDER.create_payment_link(_link_request(), ctx))
    [sent] = server.requests_to("POST", "/checkout/preferences")
    assert sent.headers["authorization"] == f"Bearer {mp.ACCESS_TOKEN}"
    assert sent.headers["x-idempotency-key"] == "plink_1:create"
    assert b'"unit_price":125.50' in sent.body  # a JSON number with the exact digits
    body = json.loads(sent.body, parse_float=Decimal)
    assert body["items"] == [{"id": "plink_1", "title": "Deuda con Ejemplo SAC", "quantity": 1,
                              "unit_price": Decimal("125.50"), "currency_id": "PEN"}]
    assert body["external_reference"] == "plink_1"
    assert body["notification_url"] == "https://cartera.example/v1/hooks/int_test"
    assert body["payer"] == {"name": "Juan Pérez", "email": "juan@example.pe",
                             "phone": {"number": "+51987654321"},
                             "identification": {"type": "DNI", "number": "12345678"}}
    assert body["expires"] is True
    assert "expiration_date_from" not in body  # valid from creation; never "now"
    assert body["expiration_date_to"] == "2026-03-05T15:00:00.000+00:00"
    assert body["date_of_expiration"] == "2026-03-05T15:00:00.000+00:00"
    assert body["back_urls"] == {"success": "https://pagos.example/ok"}
    assert body["auto_return"] == "approved"
    assert link.provider_link_id in fake.preferences
    assert link.url.endswith(f"pref_id={link.provider_link_id}")
    assert link.sandbox_url and "sandbox" in link.sandbox_url
    assert link.expires_at == NOW + timedelta(days=3)


def test_a_retried_create_sends_the_same_body_and_key(
    ctx: Any, host: FakeHost, server: FakeHTTPServer, fake: mp.FakeMercadoPago
) -> None:
    """A retry of one link (the host's reserved row: same reference, key and expiry) minutes
    later is byte-identical, so Mercado Pago answers it with the preference it made instead of
    refusing a key reused with another body."""
    first = run(PROVIDER.create_payment_link(_link_request(), ctx))
    host.clock.advance(7 * 60)
    again = run(PROVIDER.create_payment_link(_link_request(), ctx))
    one, two = server.requests_to("POST", "/checkout/preferences")
    assert one.body == two.body
    assert one.headers["x-idempotency-key"] == two.headers["x-idempotency-key"]
    assert again.provider_link_id == first.provider_link_id
    assert len(fake.preferences) == 1


def test_request_notification_url_wins_and_minimal_preference(
    ctx: Any, server: FakeHTTPServer
) -> None:
    request = _link_request(payer=None, expires_at=None, success_url=None,
                            notification_url="https://hooks.example/mp?tenant=t1",
                            amount=Money.of("5000", "CLP"))  # fmt: skip
    run(PROVIDER.create_payment_link(request, ctx))
    body = json.loads(server.requests_to("POST", "/checkout/preferences")[0].body)
    assert body["notification_url"] == "https://hooks.example/mp?tenant=t1"
    assert set(body) == {"items", "external_reference", "notification_url"}
    assert body["items"][0]["unit_price"] == 5000


def test_statement_descriptor_and_long_idempotency_key(
    host: FakeHost, server: FakeHTTPServer, fake: mp.FakeMercadoPago
) -> None:
    ctx = _ctx(host, server, statement_descriptor="EJEMPLO SAC")
    request = _link_request(idempotency_key="k" * 100)
    run(PROVIDER.create_payment_link(request, ctx))
    [sent] = server.requests_to("POST", "/checkout/preferences")
    assert json.loads(sent.body)["statement_descriptor"] == "EJEMPLO SAC"
    assert sent.headers["x-idempotency-key"] == cartera_mercadopago.idempotency_key("k" * 100)
    assert len(sent.headers["x-idempotency-key"]) == 64


def test_create_link_retries_a_5xx_with_the_same_key(
    ctx: Any, server: FakeHTTPServer, fake: mp.FakeMercadoPago, host: FakeHost
) -> None:
    fake.fail("preference", mp.mp_error(503, "unavailable"))
    link = run(PROVIDER.create_payment_link(_link_request(), ctx))
    sent = server.requests_to("POST", "/checkout/preferences")
    assert len(sent) == 2
    assert {r.headers["x-idempotency-key"] for r in sent} == {"plink_1:create"}
    assert list(fake.preferences) == [link.provider_link_id]
    assert len(host.sleeps) == 1


def test_create_link_replayed_key_creates_one_preference(
    ctx: Any, fake: mp.FakeMercadoPago
) -> None:
    first = run(PROVIDER.create_payment_link(_link_request(), ctx))
    second = run(PROVIDER.create_payment_link(_link_request(), ctx))
    assert first == second
    assert len(fake.preferences) == 1


@pytest.mark.parametrize(
    ("request_", "code"),
    [(_link_request(amount=Money.of("10.00", "USD")), "unsupported_currency"),
     (_link_request(expires_at=NOW - timedelta(minutes=1)), "invalid_expiry")],
)  # fmt: skip
def test_create_link_refuses_locally(
    request_: PaymentLinkRequest, code: str, ctx: Any, server: FakeHTTPServer
) -> None:
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.create_payment_link(request_, ctx))
    assert info.value.code == code
    assert server.requests == []


# ---------------------------------------------------------------------- errors


def test_wrong_token_is_unauthorized(host: FakeHost, server: FakeHTTPServer,
                                     fake: mp.FakeMercadoPago) -> None:  # fmt: skip
    ctx = _ctx(host, server, token="APP_USR-wrong")
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert (info.value.code, info.value.status_code) == ("unauthorized", 401)
    assert "APP_USR-wrong" not in str(info.value)
    assert host.leaked_secrets(ctx.secrets) == []


def test_400_body_gives_code_and_reason(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    fake.fail("preference", mp.mp_error(400, "invalid items.unit_price", 4041))
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.create_payment_link(_link_request(), ctx))
    assert info.value.code == "invalid_amount"
    assert info.value.reason == "invalid items.unit_price | 4041: invalid items.unit_price"
    fake.fail("preference", FakeResponse(400, b"<html>bad</html>"))
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.create_payment_link(_link_request(), ctx))
    assert (info.value.code, info.value.reason) == ("invalid_request", "HTTP 400")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(status: int, ctx: Any, fake: mp.FakeMercadoPago,
                          host: FakeHost) -> None:  # fmt: skip
    fake.fail("payment", *[mp.mp_error(status, "boom")] * 3)
    with pytest.raises(RetryableError) as info:
        run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert (info.value.code, info.value.kind) == ("provider_unavailable", "retryable")
    assert len(host.sleeps) == 2  # the host's client retried twice before giving up


def test_429_is_rate_limited_with_retry_after(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    fake.fail("payment", *[FakeResponse(429, b"{}", {"Retry-After": "120"})] * 3)
    with pytest.raises(RateLimitedError) as info:
        run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert info.value.retry_after_seconds == 120


def test_unreachable_is_retryable(ctx: Any, server: FakeHTTPServer) -> None:
    server.stop()
    with pytest.raises(RetryableError) as info:
        run(PROVIDER.create_payment_link(_link_request(), ctx))
    assert info.value.code == "transport"


def test_garbage_2xx_is_retryable(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    fake.fail("payment", FakeResponse(200, b'{"id": 1}', {"Content-Type": "application/json"}))
    with pytest.raises(RetryableError) as info:
        run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert info.value.code == "unexpected_response"


# ---------------------------------------------------------------------- payments


def test_fetch_payment_is_exact(ctx: Any) -> None:
    payment = run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert payment.provider_payment_id == PAYMENT_ID
    assert payment.amount == Money.of("58.80", "PEN")
    assert str(payment.amount.amount) == "58.80"
    assert payment.net_amount == Money.of("56.45", "PEN")
    assert payment.refunded_amount == Money.of("0.00", "PEN")
    assert (payment.status, payment.raw_status, payment.settlement) == (
        "approved", "approved", "paid")
    assert payment.status_detail == "accredited"
    assert payment.reference == "plink_1"
    assert payment.method == "visa"
    assert payment.payer_email == "deudor@example.pe"
    assert payment.approved_at == datetime(2026, 3, 2, 14, 59, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "status", "settlement"),
    [("pending", "pending", "open"), ("in_process", "in_process", "open"),
     ("authorized", "authorized", "open"), ("approved", "approved", "paid"),
     ("rejected", "rejected", "failed"), ("cancelled", "cancelled", "failed"),
     ("refunded", "refunded", "reversed"), ("charged_back", "charged_back", "reversed"),
     ("in_mediation", "in_mediation", "disputed"), ("brand_new_word", "pending", "open")],
)  # fmt: skip
def test_status_mapping(raw: str, status: str, settlement: str, ctx: Any,
                        fake: mp.FakeMercadoPago) -> None:  # fmt: skip
    fake.add_payment("5550001", "10.00", status=raw, status_detail="x")
    payment = run(PROVIDER.fetch_payment("5550001", ctx))
    assert (payment.status, payment.settlement, payment.raw_status) == (status, settlement, raw)


def test_amounts_from_json_numbers(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    fake.add_payment("5550002", "100.1", "MXN")
    assert run(PROVIDER.fetch_payment("5550002", ctx)).amount == Money.of("100.10", "MXN")
    fake.add_payment("5550003", "15000", "CLP")
    assert run(PROVIDER.fetch_payment("5550003", ctx)).amount == Money.of("15000", "CLP")
    fake.add_payment("5550004", "0.1000000000000000055511151231257827", "PEN")
    with pytest.raises(PermanentError) as info:  # a float artefact is never rounded away
        run(PROVIDER.fetch_payment("5550004", ctx))
    assert info.value.code == "unexpected_amount"


def test_unknown_payment(ctx: Any, server: FakeHTTPServer) -> None:
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.fetch_payment("99999999999", ctx))
    assert (info.value.code, info.value.status_code) == ("payment_not_found", 404)
    with pytest.raises(PermanentError):
        run(PROVIDER.fetch_payment("../checkout/preferences", ctx))
    assert [r.path for r in server.requests] == ["/v1/payments/99999999999"]


def test_confirm_refetches_instead_of_believing_the_notification(
    ctx: Any, server: FakeHTTPServer, fake: mp.FakeMercadoPago
) -> None:
    fake.payments[PAYMENT_ID]["status"] = "pending"
    request = mp.signed_notification(PAYMENT_ID, ts=str(int(NOW.timestamp())))
    run(PROVIDER.verify_webhook(request, ctx))
    [event] = PROVIDER.parse_webhook(request, ctx)
    assert server.requests == []
    pending = run(confirm_payment_event(PROVIDER, event, ctx))
    assert pending.payment is not None
    assert (pending.payment.status, pending.payment.settlement) == ("pending", "open")
    fake.payments[PAYMENT_ID]["status"] = "approved"
    approved = run(confirm_payment_event(PROVIDER, event, ctx))  # a redelivery: re-fetched
    assert approved.payment is not None
    assert approved.payment.settlement == "paid"
    assert approved.payment.amount == Money.of("58.80", "PEN")
    assert approved.payment.reference == "plink_1"
    assert len(server.requests_to("GET", f"/v1/payments/{PAYMENT_ID}")) == 2


def test_confirm_leaves_other_kinds_unconfirmed(ctx: Any, server: FakeHTTPServer) -> None:
    request = mp.signed_notification("777", ts=str(int(NOW.timestamp())), topic="chargebacks")
    [event] = PROVIDER.parse_webhook(request, ctx)
    assert run(confirm_payment_event(PROVIDER, event, ctx)) == event
    assert server.requests == []


# ---------------------------------------------------------------------- refunds


def test_partial_then_full_refund(ctx: Any, server: FakeHTTPServer,
                                  fake: mp.FakeMercadoPago) -> None:  # fmt: skip
    partial = run(PROVIDER.refund(RefundRequest(
        provider_payment_id=PAYMENT_ID, idempotency_key="r1", amount=Money.of("20.00", "PEN")),
        ctx))  # fmt: skip
    [sent] = server.requests_to("POST", f"/v1/payments/{PAYMENT_ID}/refunds")
    assert sent.body == b'{"amount":20.00}'
    assert sent.headers["x-idempotency-key"] == "r1"
    assert (partial.amount, partial.status) == (Money.of("20.00", "PEN"), "approved")
    assert partial.provider_payment_id == PAYMENT_ID
    after = run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert (after.status, after.status_detail) == ("approved", "partially_refunded")
    assert after.refunded_amount == Money.of("20.00", "PEN")

    full = run(PROVIDER.refund(RefundRequest(provider_payment_id=PAYMENT_ID,
                                             idempotency_key="r2"), ctx))  # fmt: skip
    assert server.requests_to("POST", f"/v1/payments/{PAYMENT_ID}/refunds")[-1].body == b"{}"
    assert full.amount == Money.of("38.80", "PEN")
    final = run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
    assert (final.status, final.settlement) == ("refunded", "reversed")


def test_refund_retry_refunds_once(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    request = RefundRequest(provider_payment_id=PAYMENT_ID, idempotency_key="r1",
                            amount=Money.of("5.00", "PEN"))  # fmt: skip
    fake.fail("refund", mp.mp_error(500, "boom"))
    first = run(PROVIDER.refund(request, ctx))
    second = run(PROVIDER.refund(request, ctx))
    assert first == second
    assert len(fake.refunds[PAYMENT_ID]) == 1
    assert fake.payments[PAYMENT_ID]["transaction_amount_refunded"] == Decimal("5.00")


@pytest.mark.parametrize(
    ("amount", "code"),
    [("58.81", "invalid_request"), ("0.00", "invalid_amount"), ("-1.00", "invalid_amount")],
)
def test_refund_refusals(amount: str, code: str, ctx: Any, fake: mp.FakeMercadoPago) -> None:
    with pytest.raises(PermanentError) as info:
        run(PROVIDER.refund(RefundRequest(provider_payment_id=PAYMENT_ID, idempotency_key="r9",
                                          amount=Money.of(amount, "PEN")), ctx))  # fmt: skip
    assert info.value.code == code
    assert PAYMENT_ID not in fake.refunds


def test_refund_of_a_refunded_or_pending_payment(ctx: Any, fake: mp.FakeMercadoPago) -> None:
    fake.add_payment("5550010", "10.00", status="refunded", status_detail="refunded")
    fake.add_payment("5550011", "10.00", status="pending", status_detail="pending_waiting_payment")
    codes = []
    for payment_id in ("5550010", "5550011", "5550099"):
        with pytest.raises(ProviderError) as info:
            run(PROVIDER.refund(RefundRequest(provider_payment_id=payment_id,
                                              idempotency_key=f"r-{payment_id}",
                                              amount=Money.of("1.00", "PEN")), ctx))  # fmt: skip
        codes.append(info.value.code)
    assert codes == ["already_refunded", "invalid_payment_state", "payment_not_found"]


# ---------------------------------------------------------------------- health


def test_test_connection(host: FakeHost, server: FakeHTTPServer,
                         fake: mp.FakeMercadoPago) -> None:  # fmt: skip
    assert run(PROVIDER.test_connection(_ctx(host, server))).ok
    bad = run(PROVIDER.test_connection(_ctx(host, server, token="APP_USR-wrong")))
    assert (bad.ok, bad.code) == (False, "unauthorized")


def test_real_base_url_is_refused_by_egress_without_allow_list() -> None:
    host = FakeHost(egress_allow="")
    ctx = host.context(PROVIDER, config=MercadoPagoConfig(base_url="http://127.0.0.1:9"),
                       secrets=MercadoPagoSecrets(access_token="a", webhook_secret="s"))
    with pytest.raises(EgressRefused):  # propagates: the host reports egress_refused
        run(PROVIDER.fetch_payment(PAYMENT_ID, ctx))
