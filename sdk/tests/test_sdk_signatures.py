"""Signature helpers against the test vectors in shared/reference/protocols.md."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from cartera_sdk import WebhookVerificationError
from cartera_sdk import signatures as sig

WA_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881",'
    b'"phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQU'
    b'FERjg0NDEzNDdFODU3MUMxMAA=","status":"delivered","timestamp":"1750030073","recipient_id":'
    b'"16505551234"}]},"field":"messages"}]}]}'
)
TW_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TW_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
SG_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+"
    "2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_SIG = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+"
    "luQAbPIqHh89M15TluLtEZtM="
)
SG_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":"LRzXl_NHStOGhQ4kofSm'
    b'_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@'
    b'ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)


def test_hmac_sha256_hex_vector() -> None:
    expected = "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    assert sig.hmac_digest("secret", "test") == expected
    assert sig.verify_hmac("secret", "test", expected.upper())
    assert not sig.verify_hmac("secret", "test2", expected)
    assert not sig.verify_hmac("secret", "test", None)


def test_hmac_base64_and_sha1() -> None:
    raw = __import__("hmac").new(b"k", b"m", hashlib.sha1).digest()
    assert sig.hmac_digest("k", "m", algorithm="sha1", encoding="base64") == (
        base64.b64encode(raw).decode()
    )


def test_meta_signature_vector() -> None:
    header = "sha256=0b4edbafb0637007e2cda8d19ce46355db884ef2d9137a2111330ac259100464"
    assert sig.meta_signature("test_app_secret", WA_BODY) == header
    assert sig.verify_meta_signature("test_app_secret", WA_BODY, header)
    assert not sig.verify_meta_signature("test_app_secret", WA_BODY + b" ", header)
    assert not sig.verify_meta_signature("verify_token", WA_BODY, header)
    assert not sig.verify_meta_signature("test_app_secret", WA_BODY, header[7:])
    assert not sig.verify_meta_signature("test_app_secret", WA_BODY, None)


def test_twilio_vectors() -> None:
    assert sig.twilio_signature("12345", TW_URL, TW_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    dup = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"),
           ("Digits", "1234")]  # fmt: skip
    assert sig.twilio_signature("12345", TW_URL, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert sig.twilio_signature("12345", with_port, TW_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="


def test_twilio_verify_accepts_either_port_form() -> None:
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert sig.twilio_verify("12345", TW_URL, TW_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert sig.twilio_verify("12345", with_port, TW_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    tampered = {**TW_PARAMS, "Digits": "9999"}
    assert not sig.twilio_verify("12345", TW_URL, tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not sig.twilio_verify("12345", TW_URL, TW_PARAMS, None)


def test_twilio_json_body_vector() -> None:
    body = b'{"property": "value", "boolean": true}'
    digest = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert hashlib.sha256(body).hexdigest() == digest
    url = f"{TW_URL}&bodySHA256={digest}"
    assert sig.twilio_verify_json("12345", url, body, "a9nBmqA0ju/hNViExpshrM61xv4=")
    assert not sig.twilio_verify_json("12345", url, body + b" ", "a9nBmqA0ju/hNViExpshrM61xv4=")


def test_parse_signature_header() -> None:
    parsed = sig.parse_signature_header(" ts=1716651000 , v1=abc,v1=def,junk,=x")
    assert parsed == {"ts": ["1716651000"], "v1": ["abc", "def"]}
    assert sig.parse_signature_header(None) == {}


def test_mercadopago_vectors() -> None:
    manifest = sig.mercadopago_manifest(
        "ORD01JQ4S4KY8HWQ6NA5PXB65B3D3", "2066ca19-c6f1-498a-be75-1923005edd06", "1742505638683"
    )
    assert manifest == (
        "id:ord01jq4s4ky8hwq6na5pxb65b3d3;request-id:2066ca19-c6f1-498a-be75-1923005edd06;"
        "ts:1742505638683;"
    )
    v1 = "633f91233312dd391ec75fa0bea539cfc2d6c4918873305b84a96cc1c58db71c"
    assert sig.hmac_digest("your_secret_key_here", manifest) == v1
    sig.verify_mercadopago_signature(
        "your_secret_key_here", f"ts=1742505638683,v1={v1}",
        request_id="2066ca19-c6f1-498a-be75-1923005edd06", data_id="ord01jq4s4ky8hwq6na5pxb65b3d3",
    )  # fmt: skip
    second = "837a72201dd23865015154cc29c31a263423950a3f937547a0d05ed823118193"
    sig.verify_mercadopago_signature(
        "test_webhook_secret", f"ts=1704908010,v1={second}",
        request_id="bb56a2f1-6aae-46ac-982e-9dcd3581d08e", data_id="123456",
    )  # fmt: skip


def test_mercadopago_rejections() -> None:
    good = "ts=1704908010,v1=837a72201dd23865015154cc29c31a263423950a3f937547a0d05ed823118193"
    kwargs = {"request_id": "bb56a2f1-6aae-46ac-982e-9dcd3581d08e", "data_id": "123456"}
    with pytest.raises(WebhookVerificationError) as bad:
        sig.verify_mercadopago_signature("test_webhook_secret", good, request_id="x", data_id="1")
    assert bad.value.code == "bad_signature"
    with pytest.raises(WebhookVerificationError) as missing:
        sig.verify_mercadopago_signature("test_webhook_secret", "v1=abc", **kwargs)
    assert missing.value.code == "missing_signature"
    late = datetime(2024, 1, 10, 18, 0, tzinfo=UTC)
    with pytest.raises(WebhookVerificationError) as stale:
        sig.verify_mercadopago_signature(
            "test_webhook_secret", good, now=late, tolerance=300, **kwargs
        )
    assert stale.value.code == "stale_timestamp"


def test_timestamp_tolerance() -> None:
    now = datetime.fromtimestamp(1_700_000_000, UTC)
    sig.check_timestamp("1700000000", now)
    sig.check_timestamp(1_699_999_800, now)
    sig.check_timestamp("1699999900000", now)  # milliseconds
    for bad in ("1699999000", 1_700_000_600, "abc"):
        with pytest.raises(WebhookVerificationError):
            sig.check_timestamp(bad, now)


def test_sendgrid_ecdsa_vector() -> None:
    assert sig.sendgrid_verify(SG_KEY, SG_BODY, SG_SIG, "1600112502")
    pem = f"-----BEGIN PUBLIC KEY-----\n{SG_KEY}\n-----END PUBLIC KEY-----"
    assert sig.sendgrid_verify(pem, SG_BODY, SG_SIG, "1600112502")


def test_sendgrid_rejections() -> None:
    assert not sig.sendgrid_verify(SG_KEY, SG_BODY.rstrip(), SG_SIG, "1600112502")
    assert not sig.sendgrid_verify(SG_KEY, SG_BODY, SG_SIG, "1600112503")
    assert not sig.sendgrid_verify(SG_KEY, SG_BODY, "not base64!", "1600112502")
    assert not sig.sendgrid_verify(SG_KEY, SG_BODY, None, "1600112502")
    assert not sig.sendgrid_verify("AAAA", SG_BODY, SG_SIG, "1600112502")
    raw = bytearray(base64.b64decode(SG_SIG))
    raw[-1] ^= 1
    assert not sig.sendgrid_verify(SG_KEY, SG_BODY, base64.b64encode(raw).decode(), "1600112502")



def test_sendgrid_key_with_trailing_garbage_is_refused() -> None:
    """Lenient base64 ignores what follows the padding: a changed key must not verify."""
    assert sig.sendgrid_verify(SG_KEY, SG_BODY, SG_SIG, "1600112502")
    assert not sig.sendgrid_verify(SG_KEY + "x", SG_BODY, SG_SIG, "1600112502")
