"""SDK 1.0 additions: delivery states, prices, long-SMS parts, webhook parameters,
sorted-parameter signatures, and a fake server that runs outside pytest."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest

from cartera_sdk import (
    DELIVERY_STATES,
    DeliveryStatusEvent,
    InboundFragment,
    MessagePart,
    Money,
    Price,
    Sent,
    WebhookRequest,
    WebhookSignature,
    delivery_state,
)
from cartera_sdk import signatures as sig
from cartera_sdk.testkit import FakeHTTPServer, json_response

# Vonage's documented algorithm, computed independently of the helper.
PARAMS = {"msisdn": "447700900000", "to": "AcmeInc", "messageId": "0A0000000123ABCD1",
          "text": "Hello world & more=stuff", "type": "text", "timestamp": "1461605396"}
CANONICAL = ("&messageId=0A0000000123ABCD1&msisdn=447700900000&text=Hello world _ more_stuff"
             "&timestamp=1461605396&to=AcmeInc&type=text")


def test_new_delivery_states_are_additive_and_unknown_is_a_state() -> None:
    for state in ("queued", "sent", "delivered", "read", "failed", "undelivered", "bounced",
                  "deferred", "opened", "clicked", "complained", "unsubscribed"):
        assert state in DELIVERY_STATES  # 0.x values unchanged
    for state in ("expired", "rejected", "undeliverable", "accepted", "buffered", "unknown"):
        assert state in DELIVERY_STATES
    mapping = {"delivrd": "delivered", "EXPIRED": "expired"}
    assert delivery_state("DELIVRD", mapping) == "delivered"  # type: ignore[arg-type]
    assert delivery_state("EXPIRED", mapping) == "expired"  # type: ignore[arg-type]
    assert delivery_state("whatever", mapping) == "unknown"  # type: ignore[arg-type]


def test_events_keep_the_raw_provider_status_and_round_trip() -> None:
    event = DeliveryStatusEvent(
        event_id="e", provider_message_id="p", status="unknown", provider_status="DELIVRD?",
        occurred_at=datetime(2026, 3, 2, tzinfo=UTC), price=Price.of("0.0333", "EUR"),
        part=MessagePart(index=2, count=3, provider_message_id="p2"))  # fmt: skip
    wire = msgspec.json.encode(event)
    assert b'"provider_status":"DELIVRD?"' in wire
    assert b'"amount":"0.0333"' in wire
    assert msgspec.json.decode(wire, type=DeliveryStatusEvent) == event


def test_price_keeps_provider_precision_and_money_does_not() -> None:
    assert Price.of("0.033325", "EUR").amount == Decimal("0.033325")
    with pytest.raises(ValueError, match="decimals"):
        Money.of("0.0333", "EUR")
    with pytest.raises(ValueError, match="at most 6"):
        Price.of("0.0000001", "EUR")
    with pytest.raises(ValueError, match="zero or more"):
        Price.of("-1", "EUR")
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"amount":"1","currency":"eur"}', type=Price)
    assert Price.of("0.0333", "EUR") + Price.of("0.0667", "EUR") == Price.of("0.1", "EUR")
    assert Price.of("0.10", "EUR").to_money() == Money.of("0.10", "EUR")
    assert Price.of("0.0333", "EUR").to_money() is None


def test_long_sms_parts_and_partial_acceptance() -> None:
    sent = Sent(provider_message_id="a", parts=[
        MessagePart(index=1, count=3, provider_message_id="a"),
        MessagePart(index=2, count=3, provider_message_id="b")], parts_rejected=1)
    assert sent.partially_accepted
    assert sent.part_ids() == ["a", "b"]
    assert Sent(provider_message_id="x").part_ids() == ["x"]
    with pytest.raises(ValueError, match="out of range"):
        MessagePart(index=4, count=3, provider_message_id="c")
    with pytest.raises(ValueError, match="out of range"):
        InboundFragment(reference="r", index=0, count=2)


def test_webhook_params_from_query_and_form_and_signature_location() -> None:
    get = WebhookRequest(method="GET", url="https://h/x?a=1&sig=s&a=2")
    assert get.params() == {"a": "1", "sig": "s"}
    assert get.without_query_param("sig").params() == {"a": "1"}
    form = WebhookRequest(method="POST", url="https://h/x?q=1", body=b"b=2&q=3",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.params() == {"q": "3", "b": "2"}
    assert WebhookRequest(method="POST", url="https://h/x", body=b'{"a":1}').params() == {}
    with pytest.raises(ValueError, match="needs the name"):
        WebhookSignature(location="query", name="")


def test_sorted_params_string_and_every_algorithm_match_vonages_definition() -> None:
    signed = {**PARAMS, "sig": "ignored"}
    assert sig.sorted_params_string(signed) == CANONICAL
    secret = "vonage-secret"
    expected = {
        "md5hash": hashlib.md5((CANONICAL + secret).encode()).hexdigest(),
        **{a: hmac.new(secret.encode(), CANONICAL.encode(), a).hexdigest()
           for a in ("md5", "sha1", "sha256", "sha512")},
    }
    for algorithm, value in expected.items():
        assert sig.sorted_params_signature(secret, signed, algorithm=algorithm) == value
        assert sig.verify_sorted_params_signature(secret, signed, value.upper(),
                                                  algorithm=algorithm)
        assert not sig.verify_sorted_params_signature(
            secret, {**signed, "text": "changed"}, value, algorithm=algorithm)
        assert not sig.verify_sorted_params_signature("other", signed, value,
                                                      algorithm=algorithm)
    assert not sig.verify_sorted_params_signature(secret, signed, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fake_server_binds_a_chosen_port() -> None:
    port = _free_port()
    with FakeHTTPServer(port=port) as server:
        server.route("POST", "/sms/json", json_response({"ok": True}))
        assert server.base_url == f"http://127.0.0.1:{port}"
        answer = httpx.post(f"http://127.0.0.1:{port}/sms/json", json={"to": "1"})
        assert answer.json() == {"ok": True}
        assert server.requests_to("POST", "/sms/json")[0].json() == {"to": "1"}


def test_fake_server_runs_from_the_command_line(tmp_path: Path) -> None:
    port = _free_port()
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"POST /sms/json": [
        {"status": 429, "body": {"e": 1}}, {"status": 200, "body": {"messages": []}}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "cartera_sdk.testkit.fakeserver", "--port", str(port),
         "--routes", str(routes)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"serving on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}/sms/json"
        assert httpx.post(url, content=b"a=1").status_code == 429
        assert httpx.post(url, content=b"a=2").json() == {"messages": []}
        deadline = time.monotonic() + 5
        lines = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert time.monotonic() < deadline
        assert [line["body"] for line in lines] == ["a=1", "a=2"]
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_sdk_1_1_adds_resubscribed_and_keeps_every_1_0_state() -> None:
    import cartera_sdk

    assert cartera_sdk.__version__ == "1.1.0"
    assert "resubscribed" in DELIVERY_STATES
    assert DELIVERY_STATES[:-1] == (
        "queued", "sent", "delivered", "read", "failed", "undelivered", "bounced", "deferred",
        "opened", "clicked", "complained", "unsubscribed", "accepted", "buffered", "expired",
        "rejected", "undeliverable", "unknown")  # 1.0's states, in order, unchanged
