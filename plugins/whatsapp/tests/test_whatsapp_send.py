"""Sending: exact wire bodies, the 24 h window, failure classification, test_connection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any

import httpx
import msgspec
import pytest
import whatsapp_fake_graph as graph
from cartera_sdk import (
    CurrencyParameter,
    DateTimeParameter,
    Money,
    OutboundMessage,
    QuickReplyButton,
    SendFailure,
    Sent,
    SmsContent,
    TextParameter,
    UrlButton,
    WhatsAppTemplateContent,
    WhatsAppTextContent,
    integration_schema,
    load_config,
    secret_fields,
)
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, FakeResponse, FrozenClock, run

import cartera_whatsapp

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PROVIDER = cartera_whatsapp.WhatsAppCloud()
SECRETS = cartera_whatsapp.WhatsAppSecrets(
    access_token=graph.ACCESS_TOKEN, app_secret=graph.APP_SECRET, verify_token=graph.VERIFY_TOKEN
)


@pytest.fixture
def server() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeHTTPServer) -> graph.FakeGraph:
    return graph.FakeGraph(server).install()


@pytest.fixture
def host() -> FakeHost:
    return FakeHost(clock=FrozenClock(NOW))


@pytest.fixture
def ctx(host: FakeHost, server: FakeHTTPServer) -> Any:
    config = cartera_whatsapp.WhatsAppConfig(
        graph_api_version=graph.VERSION,
        phone_number_id=graph.PHONE_NUMBER_ID,
        base_url=server.base_url,
    )
    return host.context(PROVIDER, config=config, secrets=SECRETS)


def reminder(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id="out_42",
        idempotency_key="idem_42",
        to="+5491155550000",
        metadata=metadata,
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


def text_message(**metadata: str) -> OutboundMessage:
    return OutboundMessage(
        message_id="out_7",
        idempotency_key="idem_7",
        to="+5491155550000",
        metadata=metadata,
        content=WhatsAppTextContent(text="Gracias, registramos su promesa de pago."),
    )


# ---------------------------------------------------------------------------- success


def test_template_send_puts_the_documented_body_on_the_wire(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    result = run(PROVIDER.send(reminder(), ctx))

    assert isinstance(result, Sent)
    assert result.provider_message_id.startswith("wamid.")
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == "/v25.0/106540352242922/messages"
    assert request.headers["authorization"] == "Bearer EAAJB-test-token"
    assert request.headers["content-type"] == "application/json"
    # protocols.md §1.3, collections-style example, field for field.
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5491155550000",
        "type": "template",
        "template": {
            "name": "payment_reminder",
            "language": {"code": "es_AR"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Juan Pérez"},
                        {
                            "type": "currency",
                            "currency": {
                                "fallback_value": "$12.500,00",
                                "code": "ARS",
                                "amount_1000": 12500000,
                            },
                        },
                        {"type": "date_time", "date_time": {"fallback_value": "15/07/2026"}},
                    ],
                },
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "pref-843382748-18d90a57"}],
                },
            ],
        },
        "biz_opaque_callback_data": "out_42",
    }


def test_header_named_parameters_and_quick_replies(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    message = OutboundMessage(
        message_id="out_9",
        idempotency_key="idem_9",
        to="+51987654321",
        content=WhatsAppTemplateContent(
            name="promise_confirmation",
            language="es_PE",
            header_parameters=[TextParameter(text="Recordatorio")],
            body_parameters=[TextParameter(text="S/ 150.00", name="amount")],
            buttons=[
                QuickReplyButton(index=1, payload="CALL_ME"),
                QuickReplyButton(index=0, payload="PAID"),
            ],
        ),
    )
    assert isinstance(run(PROVIDER.send(message, ctx)), Sent)
    components = server.requests[0].json()["template"]["components"]
    assert components == [
        {"type": "header", "parameters": [{"type": "text", "text": "Recordatorio"}]},
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "S/ 150.00", "parameter_name": "amount"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "PAID"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "1",
            "parameters": [{"type": "payload", "payload": "CALL_ME"}],
        },
    ]


def test_zero_decimal_currency_amount_1000(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    fake.templates["clp_reminder"] = ({"es"}, 1)
    message = OutboundMessage(
        message_id="out_c",
        idempotency_key="idem_c",
        to="+56912345678",
        content=WhatsAppTemplateContent(
            name="clp_reminder",
            language="es",
            body_parameters=[
                CurrencyParameter(amount=Money(Decimal("45990"), "CLP"), fallback_value="$45.990")
            ],
        ),
    )
    assert isinstance(run(PROVIDER.send(message, ctx)), Sent)
    param = server.requests[0].json()["template"]["components"][0]["parameters"][0]
    expected = {"fallback_value": "$45.990", "code": "CLP", "amount_1000": 45990000}
    assert param["currency"] == expected


def test_no_idempotency_header_and_no_resend_of_a_failed_post(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    """Graph has no send idempotency: a POST that may have arrived is never re-sent."""
    server.route(
        "POST", fake.messages_path, graph.graph_error(131000, "Something went wrong", "x", 500)
    )
    result = run(PROVIDER.send(reminder(), ctx))
    assert isinstance(result, SendFailure)
    assert result.kind == "retryable"
    assert len(server.requests) == 1
    assert "idempotency-key" not in server.requests[0].headers


def test_free_form_text_inside_the_window(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    fake.open_windows.add("5491155550000")
    last = (NOW - timedelta(hours=23, minutes=59)).isoformat()
    result = run(PROVIDER.send(text_message(last_inbound_at=last), ctx))
    assert isinstance(result, Sent)
    assert server.requests[0].json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+5491155550000",
        "type": "text",
        "text": {"preview_url": False, "body": "Gracias, registramos su promesa de pago."},
        "biz_opaque_callback_data": "out_7",
    }


# ---------------------------------------------------------------------------- 24 h window


@pytest.mark.parametrize(
    "metadata",
    [
        {"last_inbound_at": (NOW - timedelta(hours=25)).isoformat()},
        {"last_inbound_at": (NOW - timedelta(hours=24)).isoformat()},  # half-open: closed
        {"last_inbound_at": "2026-03-01T09:59:59-05:00"},  # 24h01s ago, other offset
        {"last_inbound_at": "2026-02-20T10:00:00Z"},
        {"conversation_window_open": "false"},
        {
            "conversation_window_open": "true",
            "last_inbound_at": (NOW - timedelta(days=2)).isoformat(),
        },
    ],
)
def test_text_outside_the_window_is_refused_without_calling_the_api(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any, metadata: dict[str, str]
) -> None:
    result = run(PROVIDER.send(text_message(**metadata), ctx))
    assert result == SendFailure(
        kind="permanent",
        code="outside_customer_service_window",
        reason=result.reason if isinstance(result, SendFailure) else "",
    )
    assert server.requests == []


def test_templates_ignore_the_window(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    old = (NOW - timedelta(days=30)).isoformat()
    assert isinstance(run(PROVIDER.send(reminder(last_inbound_at=old), ctx)), Sent)


def test_unknown_window_lets_the_api_decide_131047(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    result = run(PROVIDER.send(text_message(), ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "131047")
    assert len(server.requests) == 1


def test_window_helper_edge_cases() -> None:
    window_open = cartera_whatsapp.window_open
    assert window_open(text_message(), NOW) is None
    assert window_open(text_message(last_inbound_at="not a date"), NOW) is None
    assert window_open(text_message(last_inbound_at="2026-03-02T14:00:00"), NOW) is None  # naive
    assert window_open(text_message(last_inbound_at="2026-03-02T14:00:00Z"), NOW) is True
    assert window_open(text_message(conversation_window_open="TRUE"), NOW) is True
    future = (NOW + timedelta(minutes=1)).isoformat()  # clock skew: still open
    assert window_open(text_message(last_inbound_at=future), NOW) is True


def test_unsupported_content_is_permanent_and_not_sent(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    message = OutboundMessage(
        message_id="o", idempotency_key="i", to="+51987654321", content=SmsContent(text="hola")
    )
    result = run(PROVIDER.send(message, ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "unsupported_content")
    assert server.requests == []


# ---------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("response", "kind", "code", "retry_after"),
    [
        # throughput (§1.6): Graph's own status, and a 429 with Retry-After
        (graph.graph_error(130429, "Rate limit hit", "throughput reached"), "rate_limited",
         "130429", 1.0),
        (graph.graph_error(130429, "Rate limit hit", "t", 429, headers={"Retry-After": "7"}),
         "rate_limited", "130429", 7.0),
        (graph.graph_error(130429, "Rate limit hit", "t", 429,
                           headers={"Retry-After": "Mon, 02 Mar 2026 15:00:30 GMT"}),
         "rate_limited", "130429", 30.0),
        (graph.graph_error(131056, "Pair rate limit hit", "same recipient"), "rate_limited",
         "131056", 6.0),
        (graph.graph_error(80007, "Rate limit issues", "WABA limit"), "rate_limited", "80007",
         None),
        (graph.graph_error(4, "Application request limit reached", "app"), "rate_limited", "4",
         None),
        (graph.graph_error(131048, "Spam rate limit hit", "quality"), "rate_limited", "131048",
         None),
        # transient
        (graph.graph_error(131000, "Something went wrong", "x", 500), "retryable", "131000",
         None),
        (graph.graph_error(133004, "Server temporarily unavailable", "x", 503), "retryable",
         "133004", None),
        (graph.graph_error(2, "Service temporarily unavailable", "x", 400), "retryable", "2",
         None),
        (FakeResponse(502, "<html>Bad Gateway</html>"), "retryable", "502", None),
        (FakeResponse(500, b""), "retryable", "500", None),
        # permanent
        (graph.graph_error(131047, "Re-engagement message", "24h passed"), "permanent", "131047",
         None),
        (graph.graph_error(131026, "Message undeliverable", "x"), "permanent", "131026", None),
        (graph.graph_error(131050, "User stopped marketing", "x"), "permanent", "131050", None),
        (graph.graph_error(100, "Invalid parameter", "x"), "permanent", "100", None),
        (graph.graph_error(190, "Invalid OAuth access token", "x", 401), "permanent", "190",
         None),
        (graph.graph_error(368, "Temporarily blocked", "x", 403), "permanent", "368", None),
        (graph.graph_error(132001, "Template does not exist", "x", 404), "permanent", "132001",
         None),
        (graph.graph_error(999999, "Brand new code", "x", 400), "permanent", "999999", None),
        (graph.graph_error(999999, "Brand new code", "x", 503), "retryable", "999999", None),
    ],
)  # fmt: skip
def test_graph_errors_are_classified(
    fake: graph.FakeGraph,
    server: FakeHTTPServer,
    ctx: Any,
    response: FakeResponse,
    kind: str,
    code: str,
    retry_after: float | None,
) -> None:
    server.route("POST", fake.messages_path, response)
    result = run(PROVIDER.send(reminder(), ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code, result.retry_after_seconds) == (kind, code, retry_after)
    assert result.reason
    assert len(server.requests) == 1  # a POST without idempotency is not re-sent
    # only "not a WhatsApp number" makes the number unusable for the channel
    assert result.suppress == ("hard_bounce" if code == "131026" else None)


def test_failure_reason_carries_no_phone_number(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    details = "Recipient +54 9 11 5555-0000 is not a valid WhatsApp user (5491155550000)"
    server.route("POST", fake.messages_path, graph.graph_error(131026, "Undeliverable", details))
    result = run(PROVIDER.send(reminder(), ctx))
    assert isinstance(result, SendFailure)
    assert "5555" not in result.reason
    assert "<redacted>" in result.reason


def test_fake_rejects_unknown_template_with_the_real_envelope(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    message = msgspec.structs.replace(
        reminder(),
        content=msgspec.structs.replace(reminder().content, name="no_such_template"),
    )
    result = run(PROVIDER.send(message, ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "132001")


def test_wrong_token_is_permanent_190(
    fake: graph.FakeGraph, server: FakeHTTPServer, host: FakeHost, ctx: Any
) -> None:
    bad = host.context(
        PROVIDER,
        config=ctx.config,
        secrets=msgspec.structs.replace(SECRETS, access_token="expired"),
    )
    result = run(PROVIDER.send(reminder(), bad))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "190")
    assert host.leaked_secrets(SECRETS) == []


def test_wrong_phone_number_id_hits_graph_unknown_object(
    fake: graph.FakeGraph, server: FakeHTTPServer, host: FakeHost, ctx: Any
) -> None:
    config = msgspec.structs.replace(ctx.config, phone_number_id="999")
    result = run(PROVIDER.send(reminder(), host.context(PROVIDER, config=config, secrets=SECRETS)))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "100")


def test_success_without_wamid_is_not_retried(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    server.route("POST", fake.messages_path, FakeResponse(200, {"messaging_product": "whatsapp"}))
    result = run(PROVIDER.send(reminder(), ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "invalid_response")


def test_unreachable_graph_is_retryable(server: FakeHTTPServer, ctx: Any) -> None:
    server.stop()
    result = run(PROVIDER.send(reminder(), ctx))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("retryable", "transport")


# ---------------------------------------------------------------------------- the fake itself


@pytest.mark.parametrize(
    ("mutate", "details"),
    [
        (lambda b: b["template"].update(languaje=b["template"].pop("language")),
         'Unexpected key "languaje" on param "template".'),
        (lambda b: b.update(messaging_product="facebook"), 'must be "whatsapp"'),
        (lambda b: b.pop("recipient_type"), '["recipient_type"] is required'),
        (lambda b: b["template"]["components"][0]["parameters"][1]["currency"].update(
            amount_1000="12500000"), "amount_1000"),
        (lambda b: b["template"]["components"][1].update(index=0), "numeric string"),
        (lambda b: b["template"]["components"][0]["parameters"][2].update(
            date_time={"fallback": "x"}), 'Unexpected key "fallback"'),
        (lambda b: b.update(recipient="+1"), 'Unexpected key "recipient"'),
    ],
    ids=["misspelt-language", "product", "no-recipient-type", "amount-as-string",
         "int-index", "date-time-key", "unknown-top-level"],
)  # fmt: skip
def test_fake_is_strict_about_field_names_and_shapes(
    fake: graph.FakeGraph, server: FakeHTTPServer, mutate: Any, details: str
) -> None:
    """A wrong field name gets 400 with Graph's error envelope, so the plugin can't drift."""
    run(PROVIDER.send(reminder(), _ctx_for(server)))
    body = server.requests[0].json()
    mutate(body)
    response = httpx.post(
        server.base_url + fake.messages_path,
        json=body,
        headers={"Authorization": f"Bearer {graph.ACCESS_TOKEN}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert details in error["error_data"]["details"]
    assert error["fbtrace_id"]


def _ctx_for(server: FakeHTTPServer) -> Any:
    config = cartera_whatsapp.WhatsAppConfig(
        phone_number_id=graph.PHONE_NUMBER_ID, base_url=server.base_url
    )
    return FakeHost(clock=FrozenClock(NOW)).context(PROVIDER, config=config, secrets=SECRETS)


# ---------------------------------------------------------------------------- connection, config


def test_connection_reads_the_phone_number_object(
    fake: graph.FakeGraph, server: FakeHTTPServer, ctx: Any
) -> None:
    check = run(PROVIDER.test_connection(ctx))
    assert check.ok
    assert "Cartera Cobranzas" in check.detail
    assert "GREEN" in check.detail
    [request] = server.requests
    assert (request.method, request.path) == ("GET", "/v25.0/106540352242922")
    assert request.headers["authorization"] == "Bearer EAAJB-test-token"


def test_connection_with_a_bad_token(
    fake: graph.FakeGraph, server: FakeHTTPServer, host: FakeHost, ctx: Any
) -> None:
    bad = host.context(
        PROVIDER, config=ctx.config, secrets=msgspec.structs.replace(SECRETS, access_token="x")
    )
    check = run(PROVIDER.test_connection(bad))
    assert (check.ok, check.code) == (False, "190")


def test_connection_unreachable(server: FakeHTTPServer, ctx: Any) -> None:
    server.stop()
    check = run(PROVIDER.test_connection(ctx))
    assert (check.ok, check.code) == (False, "transport")


def test_config_schema_and_validation() -> None:
    config = load_config(
        cartera_whatsapp.WhatsAppConfig,
        {"phone_number_id": "106540352242922", "graph_api_version": "v16.0"},
    )
    assert config.base_url == "https://graph.facebook.com"
    assert config.waba_id is None
    for bad in (
        {"phone_number_id": "106540352242922", "graph_api_version": "25.0"},
        {"phone_number_id": "abc"},
        {"phone_number_id": "1", "access_token": "in-config"},
        {},
    ):
        with pytest.raises(msgspec.ValidationError):
            load_config(cartera_whatsapp.WhatsAppConfig, bad)
    schema = integration_schema(PROVIDER)
    secrets_def = schema["secrets"]["$defs"]["WhatsAppSecrets"]["properties"]
    assert all(prop["writeOnly"] for prop in secrets_def.values())
    assert secret_fields(PROVIDER) == {"access_token", "app_secret", "verify_token"}


def test_entry_point_registers_the_provider() -> None:
    [entry] = [e for e in entry_points(group="cartera") if e.name == "whatsapp"]
    module = entry.load()
    assert module is cartera_whatsapp
    host = FakeHost(module)
    assert isinstance(host.channels["whatsapp"], cartera_whatsapp.WhatsAppCloud)
