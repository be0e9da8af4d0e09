"""Boundary types: validation rules, wire shapes and protocol checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
import sdk_sample_channel

from cartera_sdk import (
    Allow,
    ChannelProvider,
    CurrencyMismatchError,
    CurrencyParameter,
    Defer,
    Deny,
    EmailContent,
    ErpAllocation,
    ErpDebtor,
    ErpPaymentPosting,
    Money,
    OutboundMessage,
    Page,
    PaymentLinkRequest,
    PaymentReceived,
    PlannedContact,
    PriorContact,
    Reason,
    SendFailure,
    SendResult,
    Sent,
    WebhookRequest,
    WhatsAppTemplateContent,
    integration_schema,
    load_config,
    secret_fields,
)
from cartera_sdk.events import DomainEvent

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_money_is_exact_and_travels_as_string() -> None:
    total = Money.of("0.10", "PEN") + Money.of("0.20", "PEN")
    assert total == Money.of("0.30", "PEN")
    assert msgspec.json.encode(total) == b'{"amount":"0.30","currency":"PEN"}'
    assert Money.from_minor(1999, "MXN").amount == Decimal("19.99")
    assert Money.of("1500", "CLP").to_minor() == 1500
    assert Money.of("1.234", "KWD").to_minor() == 1234


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.5", "CLP"), ("1.001", "PEN"), ("NaN", "USD"), ("1", "pen"), ("1", "EURO")],
)
def test_money_rejects_invalid(amount: str, currency: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - msgspec raises ValueError subclasses too
        Money.of(amount, currency)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            msgspec.json.encode({"amount": amount, "currency": currency}), type=Money
        )


def test_money_never_mixes_currencies() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money.of("1", "PEN") + Money.of("1", "USD")
    with pytest.raises(CurrencyMismatchError):
        _ = Money.of("1", "PEN") < Money.of("1", "USD")


def test_outbound_whatsapp_template_round_trip() -> None:
    message = OutboundMessage(
        message_id="m1",
        idempotency_key="k1",
        to="+5215512345678",
        content=WhatsAppTemplateContent(
            name="payment_reminder",
            language="es_MX",
            body_parameters=[
                CurrencyParameter(amount=Money.of("1500.50", "MXN"), fallback_value="$1,500.50")
            ],
        ),
    )
    decoded = msgspec.json.decode(msgspec.json.encode(message), type=OutboundMessage)
    assert decoded == message
    param = decoded.content.body_parameters[0]  # type: ignore[union-attr]
    assert isinstance(param, CurrencyParameter)
    assert param.amount_1000 == 1_500_500


def test_email_needs_a_body() -> None:
    with pytest.raises(ValueError, match="text or html"):
        EmailContent(subject="s", from_address="a@b.example")


def test_send_result_union_is_tagged() -> None:
    sent = msgspec.json.decode(b'{"result":"sent","provider_message_id":"x"}', type=SendResult)
    assert sent == Sent(provider_message_id="x")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"result":"failed","kind":"maybe","code":"1","reason":"r"}', type=SendResult
        )
    with pytest.raises(ValueError, match="code"):
        SendFailure(kind="permanent", code="", reason="r")


def test_webhook_request_helpers() -> None:
    request = WebhookRequest(
        method="POST",
        url="https://h.example/hook?data.id=123&type=payment&type=x",
        headers={"X-Signature": "ts=1,v1=a", "Content-Type": "application/x-www-form-urlencoded"},
        body=b"MessageSid=SM1&MessageStatus=delivered",
    )
    assert request.header("x-signature") == "ts=1,v1=a"
    assert request.header("missing", "d") == "d"
    assert request.query_param("data.id") == "123"
    assert request.query()["type"] == ["payment", "x"]
    assert request.form()["MessageStatus"] == ["delivered"]
    assert request.with_body(b"x").body == b"x"
    assert request.body == b"MessageSid=SM1&MessageStatus=delivered"


def test_verdicts_require_reasons_and_aware_instants() -> None:
    reason = Reason(code="outside_hours", message="after 20:00", rule_ref="Ley 29571 art. 62.b")
    with pytest.raises(ValueError, match="Reason"):
        Allow(reasons=[])
    with pytest.raises(ValueError, match="aware"):
        Defer(until=datetime(2026, 3, 3, 7, 0), reasons=[reason])
    verdict = msgspec.json.decode(
        msgspec.json.encode(Deny(reasons=[reason])), type=Allow | Defer | Deny
    )
    assert verdict == Deny(reasons=[reason])


def test_planned_contact_counts_and_local_time() -> None:
    contacts = [
        PriorContact(channel="voice", at=NOW - timedelta(hours=2), direct=True),
        PriorContact(channel="sms", at=NOW - timedelta(days=3)),
        PriorContact(channel="sms", at=NOW - timedelta(days=8)),
    ]
    planned = PlannedContact(
        channel="sms", planned_at=NOW, debtor_country="CO", debtor_timezone="America/Bogota",
        recent_contacts=contacts,
    )  # fmt: skip
    assert planned.local_planned_at.hour == 10
    assert planned.count_last_24h() == 1
    assert planned.count_last_7d("sms") == 1
    assert planned.count_last_7d() == 2
    assert len(planned.contacts_within(timedelta(days=7), direct_only=True)) == 1
    with pytest.raises(ValueError, match="aware"):
        PlannedContact(channel="sms", planned_at=datetime(2026, 3, 2, 10), debtor_country="CO",
                       debtor_timezone="America/Bogota")  # fmt: skip
    with pytest.raises(Exception, match="No time zone"):
        PlannedContact(channel="sms", planned_at=NOW, debtor_country="CO", debtor_timezone="X/Y")


def test_erp_posting_validates_allocations_and_page_is_generic() -> None:
    with pytest.raises(ValueError, match="exceed"):
        ErpPaymentPosting(
            idempotency_key="k", debtor_external_id="C1", amount=Money.of("10", "USD"),
            value_date=date(2026, 3, 2), reference="r",
            allocations=[ErpAllocation(open_item_external_id="I1", amount=Money.of("11", "USD"))],
        )  # fmt: skip
    page = msgspec.json.decode(
        b'{"items":[{"external_id":"C1","name":"ACME SAC"}],"next_cursor":"abc"}',
        type=Page[ErpDebtor],
    )
    assert page.items[0].name == "ACME SAC"
    assert page.next_cursor == "abc"


def test_payment_link_request_rules() -> None:
    with pytest.raises(ValueError, match="positive"):
        PaymentLinkRequest(reference="r", idempotency_key="k", amount=Money.of("0", "PEN"),
                           description="d")  # fmt: skip


def test_domain_events_are_tagged() -> None:
    event = PaymentReceived(
        event_id="e1", tenant_id="t1", occurred_at=NOW, payment_id="p1", debtor_id="d1",
        amount=Money.of("100", "COP"), source="mercadopago",
    )  # fmt: skip
    raw = msgspec.json.encode(event)
    assert b'"type":"payment.received"' in raw
    assert msgspec.json.decode(raw, type=PaymentReceived) == event
    assert isinstance(event, DomainEvent)


def test_integration_schema_and_secret_fields() -> None:
    provider = sdk_sample_channel.AcmeSms()
    assert isinstance(provider, ChannelProvider)
    assert secret_fields(provider) == {"api_key", "webhook_secret"}
    schema = integration_schema(provider)
    secret_props = schema["secrets"]["$defs"]["AcmeSecrets"]["properties"]
    assert all(p["writeOnly"] for p in secret_props.values())
    assert "writeOnly" not in str(schema["config"])
    config = load_config(sdk_sample_channel.AcmeConfig, {"base_url": "http://127.0.0.1:1"})
    assert config.sender == "CARTERA"
    with pytest.raises(msgspec.ValidationError):
        load_config(sdk_sample_channel.AcmeConfig, {"base_url": 5})
