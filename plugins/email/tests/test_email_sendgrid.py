"""The SendGrid provider against a strict local fake of the v3 API, and the Event Webhook."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from cartera_sdk import (
    DeliveryStatusEvent,
    EmailContent,
    OutboundMessage,
    SendFailure,
    Sent,
    WebhookRequest,
    WebhookVerificationError,
)
from cartera_sdk.testkit import (
    ChannelConformance,
    FakeHost,
    FakeHTTPServer,
    FakeResponse,
    FrozenClock,
    RecordedRequest,
    json_response,
    run,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import cartera_email
from cartera_email.sendgrid import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGridConfig,
    SendGridProvider,
    SendGridSecrets,
)

API_KEY = "SG.test-key.0123456789abcdef"
X_MESSAGE_ID = "LRzXl_NHStOGhQ4kofSm_A"

# ------------------------------------------------------------------ protocols.md §3.2 vector
VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe6"
    "2gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
VECTOR_TS = "1600112502"
VECTOR_SIG = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLt"
    "EZtM="
)
VECTOR_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":'
    b'"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":'
    b'"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)

# ------------------------------------------------------------------ our own signing key
_PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    _PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode("ascii")
SECRETS = SendGridSecrets(api_key=API_KEY, webhook_public_key=PUBLIC_KEY)
NOW = FrozenClock().now()  # the FakeHost's default clock


def sign(body: bytes, timestamp: str) -> str:
    signature = _PRIVATE.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def signed_request(body: bytes, timestamp: str | None = None) -> WebhookRequest:
    ts = timestamp or str(int(NOW.timestamp()))
    return WebhookRequest(
        method="POST",
        url="https://cartera.example/v1/hooks/int_test",
        body=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, ts),
                 TIMESTAMP_HEADER: ts},
    )  # fmt: skip


# ------------------------------------------------------------------ strict fake of the API
_TOP = {"personalizations", "from", "reply_to", "reply_to_list", "subject", "content",
        "attachments", "template_id", "headers", "categories", "custom_args", "send_at",
        "batch_id", "asm", "ip_pool_name", "mail_settings", "tracking_settings"}  # fmt: skip
_PERSONALIZATION = {"to", "cc", "bcc", "from", "subject", "headers", "substitutions",
                    "dynamic_template_data", "custom_args", "send_at"}  # fmt: skip


def _error(message: str, field: str | None, status: int = 400) -> FakeResponse:
    return json_response({"errors": [{"message": message, "field": field, "help": None}]}, status)


def _check_address(value: Any, field: str) -> FakeResponse | None:
    if not isinstance(value, dict) or set(value) - {"email", "name"}:
        return _error("Invalid type or unexpected keys.", field)
    if not isinstance(value.get("email"), str) or "@" not in value["email"]:
        return _error("Does not contain a valid address.", f"{field}.email")
    return None


def validate_mail_send(body: Any) -> FakeResponse | None:
    """SendGrid-like validation of a v3 mail/send body; None when it is acceptable."""
    if not isinstance(body, dict):
        return _error("Bad Request", None)
    for key in sorted(set(body) - _TOP):
        return _error(f"Unknown field {key!r}.", key)
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return _error("The personalizations field is required.", "personalizations")
    seen: set[str] = set()
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict) or set(p) - _PERSONALIZATION:
            return _error("Unexpected keys.", f"personalizations.{i}")
        if not isinstance(p.get("to"), list) or not p["to"]:
            return _error("The to array is required.", f"personalizations.{i}.to")
        for kind in ("to", "cc", "bcc"):
            for j, address in enumerate(p.get(kind, [])):
                if problem := _check_address(address, f"personalizations.{i}.{kind}.{j}"):
                    return problem
                if address["email"].lower() in seen:
                    return _error("Each email address in the personalization block should be "
                                  "unique.", f"personalizations.{i}.{kind}.{j}")  # fmt: skip
                seen.add(address["email"].lower())
    if problem := _check_address(body.get("from"), "from"):
        return problem
    if "reply_to" in body and (problem := _check_address(body["reply_to"], "reply_to")):
        return problem
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        return _error("The subject is required.", "subject")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return _error("Unless a valid template_id is provided, the content parameter is "
                      "required.", "content")  # fmt: skip
    types = []
    for k, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or set(part) != {"type", "value"}
            or not isinstance(part["value"], str)
            or not part["value"]
        ):
            return _error("Content must have a type and a non-empty value.", f"content.{k}")
        types.append(part["type"])
    if "text/plain" in types and types[0] != "text/plain":
        return _error("If present, text/plain content must be first, followed by any other "
                      "content.", "content.0.type")  # fmt: skip
    custom_args = body.get("custom_args", {})
    if not isinstance(custom_args, dict) or not all(
        isinstance(v, str) for v in custom_args.values()
    ):
        return _error("Custom args must be strings.", "custom_args")
    categories = body.get("categories", [])
    if not isinstance(categories, list) or len(categories) > 10:
        return _error("Too many categories.", "categories")
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        return _error("Headers must be strings.", "headers")
    return None


def mail_send(request: RecordedRequest) -> FakeResponse:
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return _error("The provided authorization grant is invalid, expired, or revoked",
                      None, 401)  # fmt: skip
    if not request.headers.get("content-type", "").startswith("application/json"):
        return _error("Content-Type should be application/json.", None, 415)
    try:
        body = request.json()
    except ValueError:
        return _error("Bad Request", None)
    if problem := validate_mail_send(body):
        return problem
    return FakeResponse(202, b"", {"X-Message-Id": X_MESSAGE_ID})


def scopes(request: RecordedRequest) -> FakeResponse:
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return _error("authorization required", None, 401)
    return json_response({"scopes": ["mail.send", "user.profile.read"]})


@pytest.fixture
def sendgrid_api() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        server.route("POST", "/v3/mail/send", mail_send)
        server.route("GET", "/v3/scopes", scopes)
        yield server


def _config(server: FakeHTTPServer, **changes: Any) -> SendGridConfig:
    return msgspec.structs.replace(
        SendGridConfig(base_url=server.base_url, from_name="Cobranzas Perú",
                       categories=["cobranza"]),
        **changes,
    )  # fmt: skip


def _message(**content: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "subject": "Su cuota vence mañana", "from_address": "cobranzas@cartera.test",
        "text": "Estimado señor Núñez: su cuota vence mañana.",
        "html": "<p>Estimado señor <b>Núñez</b>: su cuota vence mañana.</p>",
    }  # fmt: skip
    fields.update(content)
    return OutboundMessage(
        message_id="out_01J9ZK",
        idempotency_key="idem_01J9ZK",
        to="deudor@example.net",
        content=EmailContent(**fields),
    )


def _ctx(config: SendGridConfig, secrets: SendGridSecrets = SECRETS, **host: Any) -> Any:
    return FakeHost(**host).context(SendGridProvider(), config=config, secrets=secrets)


def _send(message: OutboundMessage, config: SendGridConfig, **kw: Any) -> Any:
    return run(SendGridProvider().send(message, _ctx(config, **kw)))


# ------------------------------------------------------------------ conformance


EVENTS = [
    {"email": "deudor@example.net", "timestamp": 1772463600, "event": "processed",
     "sg_event_id": "cHJvY2Vzc2VkLTE", "sg_message_id": f"{X_MESSAGE_ID}.filterdrecv-1.0",
     "smtp-id": f"<{X_MESSAGE_ID}@ismtpd0039p1iad1.sendgrid.net>",
     "category": ["cobranza"], "cartera_message_id": "out_01J9ZK"},
    {"email": "deudor@example.net", "timestamp": 1772463605, "event": "delivered",
     "response": "250 OK", "sg_event_id": "ZGVsaXZlcmVkLTE",
     "sg_message_id": f"{X_MESSAGE_ID}.filterdrecv-1.0", "cartera_message_id": "out_01J9ZK"},
]  # fmt: skip


class TestSendGridConformance(ChannelConformance):
    @pytest.fixture
    def fake_server(self, sendgrid_api: FakeHTTPServer) -> FakeHTTPServer:
        return sendgrid_api

    @pytest.fixture
    def provider(self) -> SendGridProvider:
        return SendGridProvider()

    @pytest.fixture
    def config(self, fake_server: FakeHTTPServer) -> SendGridConfig:
        return _config(fake_server)

    @pytest.fixture
    def secrets(self) -> SendGridSecrets:
        return SECRETS

    @pytest.fixture
    def send_route(self) -> tuple[str, str]:
        return ("POST", "/v3/mail/send")

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_email

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return _message()

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        return signed_request(json.dumps(EVENTS, separators=(",", ":")).encode() + b"\r\n")


# ------------------------------------------------------------------ send: the wire format


def test_send_body_headers_and_provider_id(sendgrid_api: FakeHTTPServer) -> None:
    message = msgspec.structs.replace(
        _message(reply_to="respuestas@cartera.test",
                 cc=["aval@example.org", "DEUDOR@example.net"],
                 headers={"X-Campaign": "mora-30", "From": "ignored@evil.test"}),
        metadata={"unsubscribe_url": "https://cartera.test/u/abc", "category": "mora-30"},
    )  # fmt: skip
    result = _send(message, _config(sendgrid_api))
    assert result == Sent(provider_message_id=X_MESSAGE_ID)
    (request,) = sendgrid_api.requests_to("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "personalizations": [
            {"to": [{"email": "deudor@example.net"}], "cc": [{"email": "aval@example.org"}]}
        ],
        "from": {"email": "cobranzas@cartera.test", "name": "Cobranzas Perú"},
        "reply_to": {"email": "respuestas@cartera.test"},
        "subject": "Su cuota vence mañana",
        "content": [
            {"type": "text/plain", "value": "Estimado señor Núñez: su cuota vence mañana."},
            {"type": "text/html",
             "value": "<p>Estimado señor <b>Núñez</b>: su cuota vence mañana.</p>"},
        ],
        "custom_args": {"cartera_message_id": "out_01J9ZK"},
        "categories": ["cobranza", "mora-30"],
        "headers": {
            "X-Campaign": "mora-30",
            "List-Unsubscribe": "<https://cartera.test/u/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }  # fmt: skip


def test_html_only_and_sandbox(sendgrid_api: FakeHTTPServer) -> None:
    result = _send(_message(text=None), _config(sendgrid_api, sandbox_mode=True, categories=[]))
    assert isinstance(result, Sent)
    body = sendgrid_api.requests[-1].json()
    assert body["content"] == [{"type": "text/html", "value": _message().content.html}]
    assert body["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert "categories" not in body


def test_the_fake_is_strict() -> None:
    good = {"personalizations": [{"to": [{"email": "a@b.pe"}]}], "from": {"email": "c@d.pe"},
            "subject": "s", "content": [{"type": "text/plain", "value": "x"}]}  # fmt: skip
    assert validate_mail_send(good) is None
    wrong = [
        ({**good, "form": good["from"]}, "form"),
        ({**good, "personalizations": [{"too": [{"email": "a@b.pe"}]}]}, "personalizations.0"),
        ({**good, "content": [{"type": "text/html", "value": "<p>x</p>"},
                              {"type": "text/plain", "value": "x"}]}, "content.0.type"),
        ({**good, "custom_args": {"id": 1}}, "custom_args"),
        ({**good, "personalizations": [{"to": [{"email": "a@b.pe"}],
                                        "cc": [{"email": "A@b.pe"}]}]}, "personalizations.0.cc.0"),
    ]  # fmt: skip
    for body, field in wrong:
        response = validate_mail_send(body)
        assert response is not None and response.status == 400
        assert response.body["errors"][0]["field"] == field


def test_sendgrid_error_envelope_is_permanent_with_the_field(sendgrid_api: FakeHTTPServer) -> None:
    sendgrid_api.route("POST", "/v3/mail/send", _error(
        "The from address does not match a verified Sender Identity.", "from"))  # fmt: skip
    failure = _send(_message(), _config(sendgrid_api))
    assert isinstance(failure, SendFailure)
    assert (failure.kind, failure.code) == ("permanent", "400")
    assert failure.reason.startswith("from: The from address does not match")


def test_wrong_api_key_is_permanent(sendgrid_api: FakeHTTPServer) -> None:
    secrets = SendGridSecrets(api_key="SG.wrong", webhook_public_key=PUBLIC_KEY)
    host = FakeHost()
    failure = run(SendGridProvider().send(
        _message(), host.context(SendGridProvider(), config=_config(sendgrid_api), secrets=secrets)
    ))  # fmt: skip
    assert isinstance(failure, SendFailure)
    assert (failure.kind, failure.code) == ("permanent", "401")
    assert host.leaked_secrets(secrets) == []


@pytest.mark.parametrize(
    ("response", "kind", "retry_after"),
    [(_error("too many requests", None, 429), "rate_limited", None),
     (FakeResponse(429, {"errors": [{"message": "too many requests"}]},
                   {"Retry-After": "120"}), "rate_limited", 120.0),
     (FakeResponse(429, {"errors": []}, {"X-RateLimit-Reset": str(int(NOW.timestamp()) + 90)}),
      "rate_limited", 90.0),
     (_error("Internal server error", None, 500), "retryable", None),
     (FakeResponse(503, "Service Unavailable"), "retryable", None),
     (_error("Too many bad requests. Temporary block", None, 403), "permanent", None),
     (_error("payload too large", None, 413), "permanent", None)],
)  # fmt: skip
def test_http_failures(
    sendgrid_api: FakeHTTPServer, response: FakeResponse, kind: str, retry_after: float | None
) -> None:
    sendgrid_api.route("POST", "/v3/mail/send", response)
    failure = _send(_message(), _config(sendgrid_api))
    assert isinstance(failure, SendFailure)
    assert failure.kind == kind
    assert failure.code == str(response.status)
    assert failure.retry_after_seconds == retry_after
    assert len(sendgrid_api.requests_to("POST", "/v3/mail/send")) == 1  # a POST is never re-sent


def test_missing_x_message_id_falls_back_to_our_id(sendgrid_api: FakeHTTPServer) -> None:
    sendgrid_api.route("POST", "/v3/mail/send", FakeResponse(202, b""))
    assert _send(_message(), _config(sendgrid_api)) == Sent(provider_message_id="out_01J9ZK")


# ------------------------------------------------------------------ event webhook: parsing


def _parse(body: bytes) -> list[Any]:
    provider = SendGridProvider()
    return provider.parse_webhook(signed_request(body), _ctx(SendGridConfig()))


def test_parses_every_event_type_and_drops_duplicates() -> None:
    base = {"email": "deudor@example.net", "sg_message_id": f"{X_MESSAGE_ID}.filter0001.1.0",
            "cartera_message_id": "out_01J9ZK"}  # fmt: skip
    items = [
        {**base, "event": "processed", "timestamp": 1772463600, "sg_event_id": "e1"},
        {**base, "event": "deferred", "timestamp": 1772463601, "sg_event_id": "e2",
         "response": "400 try again later", "attempt": "5"},
        {**base, "event": "delivered", "timestamp": 1772463602, "sg_event_id": "e3",
         "response": "250 OK"},
        {**base, "event": "open", "timestamp": 1772463603, "sg_event_id": "e4"},
        {**base, "event": "click", "timestamp": 1772463604, "sg_event_id": "e5",
         "url": "https://pay.example/x"},
        {**base, "event": "spamreport", "timestamp": 1772463605, "sg_event_id": "e6"},
        {**base, "event": "unsubscribe", "timestamp": 1772463606, "sg_event_id": "e7"},
        {**base, "event": "bounce", "timestamp": 1772463607, "sg_event_id": "e8",
         "status": "5.1.1", "reason": "550 5.1.1 User unknown", "type": "bounce"},
        {**base, "event": "dropped", "timestamp": 1772463608, "sg_event_id": "e9",
         "reason": "Bounced Address"},
        {**base, "event": "delivered", "timestamp": 1772463602, "sg_event_id": "e3",
         "response": "250 OK"},  # the same event delivered twice in one batch
        {**base, "event": "group_resubscribe", "timestamp": 1772463609, "sg_event_id": "e10"},
        {**base, "event": "brand_new_event", "timestamp": 1772463610, "sg_event_id": "e11"},
        {**base, "event": "group_unsubscribe", "timestamp": 1772463611, "sg_event_id": "e12",
         "asm_group_id": 42},
        "not an object",
    ]  # fmt: skip
    events = _parse(json.dumps(items).encode())
    assert [(e.event_id, e.status) for e in events] == [
        ("e1", "queued"), ("e2", "deferred"), ("e3", "delivered"), ("e4", "opened"),
        ("e5", "clicked"), ("e6", "complained"), ("e7", "unsubscribed"), ("e8", "bounced"),
        ("e9", "failed"), ("e10", "resubscribed"), ("e11", "unknown"),
        ("e12", "unsubscribed"),
    ]  # fmt: skip
    # every documented type is mapped, an unknown one is kept: the raw type on every event
    assert [e.provider_status for e in events] == [
        "processed", "deferred", "delivered", "open", "click", "spamreport", "unsubscribe",
        "bounce", "dropped", "group_resubscribe", "brand_new_event", "group_unsubscribe"]
    assert all(isinstance(e, DeliveryStatusEvent) for e in events)
    assert {e.provider_message_id for e in events} == {X_MESSAGE_ID}
    assert {e.message_id for e in events} == {"out_01J9ZK"}
    assert events[0].occurred_at == datetime.fromtimestamp(1772463600, UTC)
    bounce = events[7]
    assert (bounce.error_code, bounce.error_reason) == ("5.1.1", "550 5.1.1 User unknown")
    assert events[1].error_reason == "400 try again later"
    assert events[8].error_reason == "Bounced Address"
    assert [e.suppress for e in events] == [
        None, None, None, None, None, "spam_complaint", None, "hard_bounce", "hard_bounce",
        None, None, None]


def test_blocked_and_soft_bounces_do_not_suppress_the_address() -> None:
    base = {"email": "d@example.net", "sg_message_id": "abc.filter", "timestamp": 1772463600}
    items = [
        {**base, "event": "bounce", "sg_event_id": "b1", "status": "5.7.1", "type": "blocked",
         "reason": "550 5.7.1 sender blocked"},
        {**base, "event": "bounce", "sg_event_id": "b2", "status": "4.2.2", "type": "bounce"},
        {**base, "event": "bounce", "sg_event_id": "b3", "status": "5.2.1", "type": "bounce"},
    ]
    events = _parse(json.dumps(items).encode())
    assert [e.suppress for e in events] == [None, None, "hard_bounce"]


def test_parses_the_reference_vector_and_legacy_ids() -> None:
    (event,) = _parse(VECTOR_BODY)
    assert event == DeliveryStatusEvent(
        event_id="ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        provider_message_id="LRzXl_NHStOGhQ4kofSm_A",
        status="failed",
        occurred_at=datetime.fromtimestamp(1600112492, UTC),
        error_reason="Bounced Address",
        suppress="hard_bounce",  # dropped: SendGrid already suppresses a bounced address
        provider_status="dropped",
    )
    legacy = (b'[{"timestamp":1519267261,"event":"processed","sg_message_id":'
              b'"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","smtp-id":'
              b'"<14c5d75ce93.dfd.64b469@ismtpd-555>","sg_event_id":"2FeCcG5VRWpck6mKqRgnDg==",'
              b'"category":"cat facts","email":"example@test.com"}]')  # fmt: skip
    (event,) = _parse(legacy)
    assert event.provider_message_id == "14c5d75ce93.dfd.64b469"


def test_event_without_sg_event_id_gets_a_stable_composite_id() -> None:
    body = json.dumps(
        [
            {
                "event": "delivered",
                "timestamp": 1772463602,
                "sg_message_id": f"{X_MESSAGE_ID}.filter1",
                "email": "a@b.pe",
            }
        ]
    ).encode()
    first, second = _parse(body), _parse(body)
    assert first == second and first[0].event_id.startswith("sgx-")


def test_custom_args_nested_form_is_accepted() -> None:
    body = json.dumps([{"event": "open", "timestamp": 1772463602, "sg_event_id": "x",
                        "sg_message_id": f"{X_MESSAGE_ID}.filter1",
                        "unique_args": {"cartera_message_id": "out_9"}}]).encode()  # fmt: skip
    assert _parse(body)[0].message_id == "out_9"


def test_a_non_array_body_is_rejected() -> None:
    with pytest.raises(ValueError, match="JSON array"):
        _parse(b'{"event": "delivered"}')


# ------------------------------------------------------------------ event webhook: signature


def _vector_request(body: bytes = VECTOR_BODY, **headers: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST", url="https://cartera.example/v1/hooks/int_test", body=body,
        headers={SIGNATURE_HEADER: VECTOR_SIG, TIMESTAMP_HEADER: VECTOR_TS, **headers},
    )  # fmt: skip


def _verify(request: WebhookRequest, *, key: str = VECTOR_KEY, now: datetime | None = None,
            tolerance: float = 300.0) -> None:  # fmt: skip
    clock = FrozenClock(now or datetime.fromtimestamp(int(VECTOR_TS) + 30, UTC))
    ctx = _ctx(SendGridConfig(webhook_tolerance_seconds=tolerance),
               SendGridSecrets(api_key=API_KEY, webhook_public_key=key), clock=clock)  # fmt: skip
    run(SendGridProvider().verify_webhook(request, ctx))


def _rejected(request: WebhookRequest, **kw: Any) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        _verify(request, **kw)
    return info.value.code


def test_reference_vector_verifies() -> None:
    _verify(_vector_request())
    pem = f"-----BEGIN PUBLIC KEY-----\n{VECTOR_KEY}\n-----END PUBLIC KEY-----\n"
    _verify(_vector_request(), key=pem)


def test_reference_vector_rejections() -> None:
    assert _rejected(_vector_request(VECTOR_BODY.rstrip())) == "bad_signature"  # no \r\n
    assert _rejected(_vector_request(VECTOR_BODY.replace(b"dropped", b"delivr"))) == (
        "bad_signature"
    )
    assert _rejected(_vector_request(**{TIMESTAMP_HEADER: "1600112503"})) == "bad_signature"
    assert _rejected(_vector_request(), key=PUBLIC_KEY) == "bad_signature"
    assert _rejected(_vector_request(), key=VECTOR_KEY + "x") == "bad_public_key"
    assert _rejected(_vector_request(), key="") == "not_configured"
    assert _rejected(_vector_request().with_headers({})) == "missing_signature"


def test_timestamp_tolerance() -> None:
    late = datetime.fromtimestamp(int(VECTOR_TS) + 301, UTC)
    assert _rejected(_vector_request(), now=late) == "stale_timestamp"
    _verify(_vector_request(), now=late, tolerance=600)
    _verify(_vector_request(), now=NOW, tolerance=0)  # 0 disables the age check
    early = datetime.fromtimestamp(int(VECTOR_TS) - 120, UTC)
    assert _rejected(_vector_request(), now=early) == "stale_timestamp"


# ------------------------------------------------------------------ connection test


def test_connection_check(sendgrid_api: FakeHTTPServer) -> None:
    provider = SendGridProvider()
    ok = run(provider.test_connection(_ctx(_config(sendgrid_api))))
    assert ok.ok and ok.code == "ok"
    (request,) = sendgrid_api.requests_to("GET", "/v3/scopes")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    bad = run(provider.test_connection(
        _ctx(_config(sendgrid_api), SendGridSecrets(api_key="SG.nope"))))  # fmt: skip
    assert not bad.ok and bad.code == "auth_failed"
    sendgrid_api.route("GET", "/v3/scopes", json_response({"scopes": ["user.profile.read"]}))
    scoped = run(provider.test_connection(_ctx(_config(sendgrid_api))))
    assert not scoped.ok and scoped.code == "missing_scope"
    config = _config(sendgrid_api)
    sendgrid_api.stop()
    down = run(provider.test_connection(_ctx(config)))
    assert not down.ok and down.code == "unreachable"


def test_fake_rejects_requests_without_a_key(sendgrid_api: FakeHTTPServer) -> None:
    response = httpx.post(f"{sendgrid_api.base_url}/v3/mail/send", json={})
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]


def test_plugin_registers_both_providers() -> None:
    host = FakeHost(cartera_email)
    assert set(host.channels) == {"smtp", "sendgrid"}
    assert all(p.channel == "email" for p in host.channels.values())


def test_entry_point_is_declared() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="cartera") if e.name == "email"]
    assert ep.value == "cartera_email"
    assert ep.load() is cartera_email
