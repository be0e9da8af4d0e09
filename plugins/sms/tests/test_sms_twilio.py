"""``twilio_sms`` against a strict local fake of the Twilio Messages API."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import pytest
from cartera_sdk import (
    DeliveryStatusEvent,
    EmailContent,
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
from cartera_sdk.testkit import ChannelConformance, FakeHost, FakeHTTPServer, FakeResponse, run
from sms_testing_fakes import TwilioFake, form_request, send_checked, sms_message

import cartera_sms
from cartera_sms.twilio import TwilioSmsConfig, TwilioSmsProvider, TwilioSmsSecrets

WEBHOOK_URL = "https://cartera.example/v1/hooks/int_test"
FROM = "+15017122661"
TO = "+51987654321"
SECRETS = TwilioSmsSecrets(auth_token=TwilioFake.AUTH_TOKEN)


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with FakeHTTPServer() as server:
        twilio = TwilioFake(server)
        yield twilio
        assert twilio.violations == []


def _config(fake: TwilioFake, **changes: Any) -> TwilioSmsConfig:
    base = TwilioSmsConfig(
        base_url=fake.server.base_url, account_sid=TwilioFake.ACCOUNT_SID, from_number=FROM
    )
    return msgspec.structs.replace(base, **changes)


def _message(text: str = "Hola Ana, su cuota de S/ 150.00 vence mañana.", **kw: Any) -> Any:
    return sms_message(text, **{"to": TO, **kw})


def _send(fake: TwilioFake, message: Any = None, secrets: Any = SECRETS, **config: Any) -> Any:
    return send_checked(TwilioSmsProvider(), _config(fake, **config), secrets,
                        message or _message())


def _status_params(sid: str, status: str, **extra: str) -> list[tuple[str, str]]:
    params = [
        ("AccountSid", TwilioFake.ACCOUNT_SID), ("ApiVersion", "2010-04-01"), ("From", FROM),
        ("MessageSid", sid), ("MessageStatus", status), ("SmsSid", sid), ("SmsStatus", status),
        ("To", TO),
    ]  # fmt: skip
    params.extend(extra.items())
    return params


def _parse(request: WebhookRequest, **config: Any) -> list[Any]:
    provider = TwilioSmsProvider()
    ctx = FakeHost().context(provider, config=TwilioSmsConfig(**config), secrets=SECRETS)
    run(provider.verify_webhook(request, ctx))
    return provider.parse_webhook(request, ctx)


# ------------------------------------------------------------------------------ conformance


class TestTwilioSmsConformance(ChannelConformance):
    @pytest.fixture
    def fake_server(self, fake: TwilioFake) -> FakeHTTPServer:
        return fake.server

    @pytest.fixture
    def provider(self) -> TwilioSmsProvider:
        return TwilioSmsProvider()

    @pytest.fixture
    def config(self, fake: TwilioFake) -> TwilioSmsConfig:
        return _config(fake)

    @pytest.fixture
    def secrets(self) -> TwilioSmsSecrets:
        return TwilioSmsSecrets(
            auth_token=TwilioFake.AUTH_TOKEN,
            api_key_sid=TwilioFake.API_KEY_SID,
            api_key_secret=TwilioFake.API_KEY_SECRET,
        )

    @pytest.fixture
    def send_route(self, fake: TwilioFake) -> tuple[str, str]:
        return ("POST", fake.send_path)

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_sms

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return _message()

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        url = f"{WEBHOOK_URL}?cartera_message_id=out_1"
        return form_request(
            url,
            _status_params("SM1342fe1b2c904d1ab04f0fc7a58abca9", "delivered",
                           RawDlrDoneDate="2606021505"),
            TwilioFake.AUTH_TOKEN,
        )  # fmt: skip


# ------------------------------------------------------------------------------ send


def test_send_posts_the_exact_form(fake: TwilioFake) -> None:
    result = _send(fake)
    assert isinstance(result, Sent)
    assert result.provider_message_id == fake.messages[0]["sid"]
    assert result.provider_message_id.startswith("SM") and len(result.provider_message_id) == 34
    assert result.segments == 1
    (request,) = fake.server.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{TwilioFake.ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    expected = base64.b64encode(f"{TwilioFake.ACCOUNT_SID}:{TwilioFake.AUTH_TOKEN}".encode())
    assert request.headers["authorization"] == f"Basic {expected.decode()}"
    assert "idempotency-key" not in request.headers
    assert request.form() == {
        "To": [TO],
        "From": [FROM],
        "Body": ["Hola Ana, su cuota de S/ 150.00 vence mañana."],
        "StatusCallback": [f"{WEBHOOK_URL}?cartera_message_id=out_1"],
    }


def test_a_priced_answer_reports_the_price_at_twilio_precision(fake: TwilioFake) -> None:
    fake.price, fake.price_unit = "-0.00750", "USD"  # Twilio writes a charge negative
    result = _send(fake)
    assert isinstance(result, Sent)
    assert (result.price, result.cost) == (Price.of("0.0075", "USD"), None)
    fake.price = "-0.05"
    result = _send(fake)
    assert isinstance(result, Sent) and result.cost == Money.of("0.05", "USD")


def test_send_with_messaging_service_and_api_key(fake: TwilioFake) -> None:
    service = "MG" + "ab" * 16
    secrets = TwilioSmsSecrets(
        auth_token="unused-for-auth",
        api_key_sid=TwilioFake.API_KEY_SID,
        api_key_secret=TwilioFake.API_KEY_SECRET,
    )
    result = _send(fake, secrets=secrets, messaging_service_sid=service, validity_period=3600)
    assert isinstance(result, Sent)
    (request,) = fake.server.requests
    form = request.form()
    assert form["MessagingServiceSid"] == [service]
    assert "From" not in form
    assert form["ValidityPeriod"] == ["3600"]
    expected = base64.b64encode(f"{TwilioFake.API_KEY_SID}:{TwilioFake.API_KEY_SECRET}".encode())
    assert request.headers["authorization"] == f"Basic {expected.decode()}"


def test_content_sender_overrides_configured_sender(fake: TwilioFake) -> None:
    message = _message(content=SmsContent(text="Hola", sender="CARTERA"))
    assert isinstance(_send(fake, message, messaging_service_sid="MG" + "0" * 32), Sent)
    form = fake.server.requests[0].form()
    assert form["From"] == ["CARTERA"]
    assert "MessagingServiceSid" not in form


def test_ucs2_text_counts_segments(fake: TwilioFake) -> None:
    result = _send(fake, _message("Pagué ✓ " * 12))  # 96 UCS-2 chars -> 2 segments
    assert isinstance(result, Sent)
    assert result.segments == 2


def test_no_status_callback_without_webhook_url(fake: TwilioFake) -> None:
    host = FakeHost()
    provider = TwilioSmsProvider()
    ctx = host.context(provider, config=_config(fake), secrets=SECRETS, webhook_url=None)
    assert isinstance(run(provider.send(_message(), ctx)), Sent)
    assert "StatusCallback" not in fake.server.requests[0].form()


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_rejected_before_any_call(fake: TwilioFake, text: str) -> None:
    result = _send(fake, _message(text))
    assert result == SendFailure(kind="permanent", code="empty_text", reason="sms text is empty")
    assert fake.server.requests == []


def test_non_sms_content_is_rejected(fake: TwilioFake) -> None:
    content = EmailContent(subject="x", from_address="a@b.example", text="x")
    result = _send(fake, _message(content=content))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "unsupported_content")
    assert fake.server.requests == []


def test_missing_sender_is_permanent(fake: TwilioFake) -> None:
    result = _send(fake, from_number=None)
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "missing_sender")


@pytest.mark.parametrize(
    ("to", "code"),
    [("+15005550001", "21211"), ("+15005550002", "21612"), ("+15005550003", "21408"),
     ("+15005550004", "21610"), ("+15005550009", "21614"), ("987654321", "21211")],
)  # fmt: skip
def test_recipient_errors_are_permanent_without_pii(fake: TwilioFake, to: str, code: str) -> None:
    result = _send(fake, _message(to=to))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", code)
    assert to not in result.reason and "5550" not in result.reason
    assert result.suppress == ("carrier_opt_out" if code == "21610" else None)


def test_too_long_body_gets_twilio_21617(fake: TwilioFake) -> None:
    result = _send(fake, _message("x" * 1601))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "21617")


def test_wrong_credentials_are_permanent_20003(fake: TwilioFake) -> None:
    result = _send(fake, secrets=TwilioSmsSecrets(auth_token="wrong"))
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code, result.reason) == (
        "permanent", "20003", "authentication failed",
    )  # fmt: skip


def test_wrong_account_sid_is_permanent(fake: TwilioFake) -> None:
    result = _send(fake, account_sid="AC" + "9" * 32)
    assert isinstance(result, SendFailure)
    assert result.kind == "permanent"
    assert result.code in ("20003", "20404")


@pytest.mark.parametrize("retry_after", ["1", "120"])
def test_rate_limit_reports_retry_after_and_never_resends(
    fake: TwilioFake, retry_after: str
) -> None:
    fake.server.route(
        "POST", fake.send_path,
        FakeResponse(
            429,
            {"code": 20429, "message": "Too Many Requests",
             "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429},
            {"Retry-After": retry_after, "Content-Type": "application/json"},
        ),
    )  # fmt: skip
    result = _send(fake)
    assert result == SendFailure(
        kind="rate_limited", code="20429", reason="twilio throttled the request",
        retry_after_seconds=float(retry_after),
    )  # fmt: skip
    assert len(fake.server.requests) == 1  # a POST without idempotency is never re-sent


@pytest.mark.parametrize(
    ("response", "code"),
    [(TwilioFake.error(20500, "Internal Server Error", 500), "20500"),
     (FakeResponse(503, "<html>Service Unavailable</html>"), "503"),
     (FakeResponse(502, b""), "502")],
)  # fmt: skip
def test_server_errors_are_retryable(fake: TwilioFake, response: FakeResponse, code: str) -> None:
    fake.server.route("POST", fake.send_path, response)
    result = _send(fake)
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("retryable", code)
    assert len(fake.server.requests) == 1


def test_unknown_4xx_is_permanent_and_redacted(fake: TwilioFake) -> None:
    fake.server.route(
        "POST", fake.send_path, TwilioFake.error(21620, "Invalid media URL for +51987654321")
    )
    result = _send(fake)
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code) == ("permanent", "21620")
    assert "987654321" not in result.reason


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("to", TO, 21604), ("Text", "hola", 21602), ("from", FROM, 21603)],
)
def test_fake_answers_a_wrong_field_name_like_twilio(
    fake: TwilioFake, field: str, value: str, code: int
) -> None:
    form = {"To": TO, "From": FROM, "Body": "hola"}
    form.pop(field.capitalize() if field != "Text" else "Body")
    form[field] = value
    response = httpx.post(
        fake.server.base_url + fake.send_path, data=form,
        auth=(TwilioFake.ACCOUNT_SID, TwilioFake.AUTH_TOKEN),
        headers={"Accept": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert fake.violations
    fake.violations.clear()


def test_fake_rejects_json_bodies_like_twilio(fake: TwilioFake) -> None:
    response = httpx.post(
        fake.server.base_url + fake.send_path, json={"To": TO, "From": FROM, "Body": "x"},
        auth=(TwilioFake.ACCOUNT_SID, TwilioFake.AUTH_TOKEN),
        headers={"Accept": "application/json"},
    )  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (400, 21604)
    fake.violations.clear()


# ------------------------------------------------------------------------------ test_connection


def test_connection_ok(fake: TwilioFake) -> None:
    provider = TwilioSmsProvider()
    ctx = FakeHost().context(provider, config=_config(fake), secrets=SECRETS)
    check = run(provider.test_connection(ctx))
    assert (check.ok, check.code) == (True, "ok")
    (request,) = fake.server.requests
    assert (request.method, request.path) == ("GET", fake.account_path)


def test_connection_reports_bad_credentials_and_inactive_accounts(fake: TwilioFake) -> None:
    provider = TwilioSmsProvider()
    host = FakeHost()
    bad = host.context(provider, config=_config(fake), secrets=TwilioSmsSecrets(auth_token="x"))
    assert run(provider.test_connection(bad)).code == "auth_failed"
    fake.account_status = "suspended"
    ctx = host.context(provider, config=_config(fake), secrets=SECRETS)
    check = run(provider.test_connection(ctx))
    assert (check.ok, check.code) == (False, "account_inactive")
    fake.server.stop()
    assert run(provider.test_connection(ctx)).code == "unreachable"


# ------------------------------------------------------------------------------ signatures

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
    ("From", "+14158675309"), ("To", "+18005551212"),
]  # fmt: skip
VECTOR_SECRETS = TwilioSmsSecrets(auth_token="12345")


def _vector_request(url: str, body: bytes, signature: str, content_type: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST", url=url, body=body,
        headers={"X-Twilio-Signature": signature, "Content-Type": content_type},
    )  # fmt: skip


def _verify(request: WebhookRequest, secrets: TwilioSmsSecrets = VECTOR_SECRETS,
            **config: Any) -> None:  # fmt: skip
    provider = TwilioSmsProvider()
    ctx = FakeHost().context(provider, config=TwilioSmsConfig(**config), secrets=secrets)
    run(provider.verify_webhook(request, ctx))


FORM = "application/x-www-form-urlencoded"


def _form_body(params: list[tuple[str, str]]) -> bytes:
    return urlencode(params).encode()


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [(VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
     (VECTOR_URL, [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
                   ("Digits", "1234"), ("Digits", "1234")], "IK+Dwps556ElfBT0I3Rgjkr1wJU="),
     # signed with :443, received without it
     (VECTOR_URL, VECTOR_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
     # signed without the port, received with :443
     ("https://mycompany.com:443/myapp.php?foo=1&bar=2", VECTOR_PARAMS,
      "RSOYDt4T1cUTdK1PDd93/VVr8B8=")],
)  # fmt: skip
def test_protocol_vectors_verify(url: str, params: list[tuple[str, str]], signature: str) -> None:
    _verify(_vector_request(url, _form_body(params), signature, FORM))


def test_protocol_json_vector_verifies() -> None:
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{VECTOR_URL}&bodySHA256={digest}"
    _verify(_vector_request(url, body, "a9nBmqA0ju/hNViExpshrM61xv4=", "application/json"))
    with pytest.raises(WebhookVerificationError):
        _verify(_vector_request(url, body + b" ", "a9nBmqA0ju/hNViExpshrM61xv4=",
                                "application/json"))  # fmt: skip


@pytest.mark.parametrize(
    "tamper",
    ["value", "extra_param", "url", "signature", "token"],
)
def test_protocol_vector_tampered_is_rejected(tamper: str) -> None:
    params = list(VECTOR_PARAMS)
    url, signature, secrets = VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", VECTOR_SECRETS
    if tamper == "value":
        params[2] = ("Digits", "1235")
    elif tamper == "extra_param":
        params.append(("Body", "hola"))
    elif tamper == "url":
        url = VECTOR_URL.replace("foo=1", "foo=2")
    elif tamper == "signature":
        signature = "RSOYDt4T1cUTdK1PDd93/VVr8B9="
    else:
        secrets = TwilioSmsSecrets(auth_token="12346")
    with pytest.raises(WebhookVerificationError) as info:
        _verify(_vector_request(url, _form_body(params), signature, FORM), secrets)
    assert info.value.code == "bad_signature"


def test_missing_signature_and_missing_token() -> None:
    request = _vector_request(VECTOR_URL, _form_body(VECTOR_PARAMS), "x", FORM)
    with pytest.raises(WebhookVerificationError) as info:
        _verify(request.with_headers({"Content-Type": FORM}))
    assert info.value.code == "missing_signature"
    with pytest.raises(WebhookVerificationError) as info:
        _verify(request, TwilioSmsSecrets())
    assert info.value.code == "not_configured"


def test_public_base_url_rebuilds_the_signed_url() -> None:
    # Twilio called https://mycompany.com/...; the proxy handed us http://10.0.0.5:8080/...
    internal = "http://10.0.0.5:8080/myapp.php?foo=1&bar=2"
    request = _vector_request(
        internal, _form_body(VECTOR_PARAMS), "RSOYDt4T1cUTdK1PDd93/VVr8B8=", FORM
    )
    with pytest.raises(WebhookVerificationError):
        _verify(request)
    _verify(request, public_base_url="https://mycompany.com")


def test_get_webhook_is_verified_over_the_url() -> None:
    request = form_request(WEBHOOK_URL, [("MessageSid", "SM1"), ("MessageStatus", "sent")],
                           TwilioFake.AUTH_TOKEN, method="GET")  # fmt: skip
    (event,) = _parse(request)
    assert (event.provider_message_id, event.status) == ("SM1", "sent")
    with pytest.raises(WebhookVerificationError):
        _verify(request.with_headers({"X-Twilio-Signature": "AAAA"}), SECRETS)


# ------------------------------------------------------------------------------ parsing

SID = "SM1342fe1b2c904d1ab04f0fc7a58abca9"


@pytest.mark.parametrize(
    ("status", "state"),
    [("queued", "queued"), ("sending", "queued"), ("sent", "sent"), ("delivered", "delivered"),
     ("undelivered", "undelivered"), ("failed", "failed"), ("read", "read"),
     ("canceled", "failed")],
)  # fmt: skip
def test_status_callbacks_map_to_delivery_states(status: str, state: str) -> None:
    url = f"{WEBHOOK_URL}?cartera_message_id=out_7"
    (event,) = _parse(form_request(url, _status_params(SID, status), TwilioFake.AUTH_TOKEN))
    assert isinstance(event, DeliveryStatusEvent)
    assert event.status == state
    assert event.event_id == f"{SID}:{status}"
    assert event.provider_message_id == SID
    assert event.message_id == "out_7"
    assert event.occurred_at == FakeHost().clock.now()


def test_undelivered_carries_the_error_code() -> None:
    request = form_request(
        WEBHOOK_URL, _status_params(SID, "undelivered", ErrorCode="30003",
                                    RawDlrDoneDate="2606021505"),
        TwilioFake.AUTH_TOKEN,
    )  # fmt: skip
    (event,) = _parse(request)
    assert (event.status, event.error_code) == ("undelivered", "30003")
    assert event.error_reason == "unreachable destination handset"
    assert event.message_id is None
    assert event.suppress is None  # the handset may be reachable tomorrow


def test_a_stop_reported_in_a_callback_suppresses_the_number() -> None:
    request = form_request(WEBHOOK_URL, _status_params(SID, "failed", ErrorCode="21610"),
                           TwilioFake.AUTH_TOKEN)
    (event,) = _parse(request)
    assert (event.status, event.error_code, event.suppress) == (
        "failed", "21610", "carrier_opt_out")


def test_host_receipt_time_is_used_when_stamped() -> None:
    stamped = msgspec.structs.replace(
        form_request(WEBHOOK_URL, _status_params(SID, "sent"), TwilioFake.AUTH_TOKEN),
        received_at=datetime(2026, 6, 2, 15, 5, 7, tzinfo=UTC),
    )
    (event,) = _parse(stamped)
    assert event.occurred_at == datetime(2026, 6, 2, 15, 5, 7, tzinfo=UTC)


def test_duplicates_share_ids_and_statuses_differ() -> None:
    sent = form_request(WEBHOOK_URL, _status_params(SID, "sent"), TwilioFake.AUTH_TOKEN)
    delivered = form_request(WEBHOOK_URL, _status_params(SID, "delivered"), TwilioFake.AUTH_TOKEN)
    assert _parse(sent) == _parse(sent)
    assert _parse(sent)[0].event_id != _parse(delivered)[0].event_id
    # redelivered with a different receipt time: same id, so the host drops it
    later = msgspec.structs.replace(sent, received_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert _parse(later)[0].event_id == _parse(sent)[0].event_id


def test_unknown_status_is_an_unknown_event_and_empty_requests_yield_nothing() -> None:
    (event,) = _parse(form_request(WEBHOOK_URL, _status_params(SID, "weird"),
                                   TwilioFake.AUTH_TOKEN))  # fmt: skip
    assert isinstance(event, DeliveryStatusEvent)
    assert (event.status, event.provider_status) == ("unknown", "weird")
    assert _parse(form_request(WEBHOOK_URL, [("Foo", "bar")], TwilioFake.AUTH_TOKEN)) == []


def test_inbound_sms_becomes_an_inbound_message() -> None:
    params = [
        ("ToCountry", "PE"), ("SmsMessageSid", SID), ("NumMedia", "1"), ("SmsSid", SID),
        ("SmsStatus", "received"), ("Body", "Ya pagué, gracias ñandú"), ("To", FROM),
        ("NumSegments", "1"), ("MessageSid", SID), ("AccountSid", TwilioFake.ACCOUNT_SID),
        ("From", TO), ("MediaUrl0", "https://api.twilio.com/media/ME1"),
        ("MediaContentType0", "image/jpeg"), ("ApiVersion", "2010-04-01"),
    ]  # fmt: skip
    (event,) = _parse(form_request(WEBHOOK_URL, params, TwilioFake.AUTH_TOKEN))
    assert isinstance(event, InboundMessage)
    assert event.event_id == f"{SID}:received"
    assert (event.from_address, event.to_address) == (TO, FROM)
    assert event.text == "Ya pagué, gracias ñandú"
    assert event.media_urls == ["https://api.twilio.com/media/ME1"]


def test_status_callback_url_round_trips_the_outbox_id(fake: TwilioFake) -> None:
    assert isinstance(_send(fake, _message(message_id="out/ä 1")), Sent)
    callback = fake.server.requests[0].form()["StatusCallback"][0]
    assert parse_qs(urlsplit(callback).query)["cartera_message_id"] == ["out/ä 1"]
    (event,) = _parse(form_request(callback, _status_params(SID, "sent"), TwilioFake.AUTH_TOKEN))
    assert event.message_id == "out/ä 1"


def test_rate_limit_without_retry_after(fake: TwilioFake) -> None:
    fake.server.route("POST", fake.send_path, TwilioFake.error(20429, "Too Many Requests", 429))
    result = _send(fake)
    assert isinstance(result, SendFailure)
    assert (result.kind, result.code, result.retry_after_seconds) == ("rate_limited", "20429", None)
