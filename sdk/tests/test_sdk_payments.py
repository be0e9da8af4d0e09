"""The payment contract: settlement of every status, the re-fetch step, retry-safe keys."""

from __future__ import annotations

from typing import Any, get_args

import httpx
import msgspec
import pytest

from cartera_sdk import Money
from cartera_sdk.http import make_client
from cartera_sdk.payments import (
    SETTLEMENT,
    BasePaymentProvider,
    PaymentEvent,
    PaymentSettlement,
    PaymentStatus,
    ProviderPayment,
    confirm_payment_event,
)
from cartera_sdk.testkit import FakeHost, FakeHTTPServer, FakeResponse, json_response, run

PAID = ProviderPayment(provider_payment_id="1", status="approved", amount=Money.of("5", "PEN"))
EVENT = PaymentEvent(event_id="n1", kind="payment", action="payment.updated", resource_id="1")


def test_every_status_has_a_settlement() -> None:
    assert set(SETTLEMENT) == set(get_args(PaymentStatus))
    assert set(SETTLEMENT.values()) == set(get_args(PaymentSettlement))
    assert [s for s, v in SETTLEMENT.items() if v == "paid"] == ["approved"]
    assert {s for s, v in SETTLEMENT.items() if v == "reversed"} == {"refunded", "charged_back"}


def test_payment_settlement_and_raw_status() -> None:
    assert PAID.settlement == "paid"
    assert PAID.raw_status is None
    refunded = msgspec.structs.replace(PAID, status="charged_back", raw_status="charged_back")
    assert refunded.settlement == "reversed"


def test_confirmed_event_round_trips() -> None:
    assert not EVENT.confirmed
    confirmed = msgspec.structs.replace(EVENT, payment=PAID)
    assert confirmed.confirmed
    raw = msgspec.json.encode(confirmed)
    assert b'"amount":"5"' in raw  # money stays a string on the wire
    assert msgspec.json.decode(raw, type=PaymentEvent) == confirmed
    old_event = b'{"event_id":"n1","kind":"payment","action":"a","resource_id":"1"}'
    assert msgspec.json.decode(old_event, type=PaymentEvent) == msgspec.structs.replace(
        EVENT, action="a"
    )


class _Fetching:
    """A protocol-only provider (no ``confirm_event``): the default re-fetch applies."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def fetch_payment(self, provider_payment_id: str, ctx: Any) -> ProviderPayment:
        self.fetched.append(provider_payment_id)
        return PAID


class _Base(BasePaymentProvider):
    name = "base_pay"
    currencies = frozenset({"PEN"})

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def create_payment_link(self, request: Any, ctx: Any) -> Any:
        raise NotImplementedError

    async def fetch_payment(self, provider_payment_id: str, ctx: Any) -> ProviderPayment:
        self.fetched.append(provider_payment_id)
        return PAID

    async def refund(self, request: Any, ctx: Any) -> Any:
        raise NotImplementedError

    async def verify_webhook(self, request: Any, ctx: Any) -> None:
        return None

    def parse_webhook(self, request: Any, ctx: Any) -> list[PaymentEvent]:
        return [EVENT]


@pytest.mark.parametrize("provider", [_Fetching(), _Base()], ids=["protocol", "base"])
def test_confirm_refetches_payment_events_only(provider: Any) -> None:
    ctx = FakeHost().context()
    confirmed = run(confirm_payment_event(provider, EVENT, ctx))
    assert confirmed.payment == PAID
    assert confirmed.event_id == EVENT.event_id
    for other in (msgspec.structs.replace(EVENT, kind="chargeback"),
                  msgspec.structs.replace(EVENT, resource_id=None)):  # fmt: skip
        assert run(confirm_payment_event(provider, other, ctx)) == other
    assert provider.fetched == ["1"]


@pytest.mark.parametrize("header", ["X-Idempotency-Key", "Idempotency-Key"])
def test_posts_with_either_idempotency_header_are_retried(header: str) -> None:
    async def post(base_url: str) -> httpx.Response:
        async def no_sleep(_: float) -> None:
            return None

        async with make_client(base_url, retries=1, sleep=no_sleep) as client:
            return await client.post("/refunds", json={}, headers={header: "op-1"})

    with FakeHTTPServer() as server:
        server.route("POST", "/refunds", [FakeResponse(503), json_response({"id": "r1"}, 201)])
        response = run(post(server.base_url))
        assert response.status_code == 201
        assert [r.headers[header.lower()] for r in server.requests] == ["op-1", "op-1"]


def test_posts_without_a_key_are_not_retried() -> None:
    async def post(base_url: str) -> httpx.Response:
        async with make_client(base_url, retries=3) as client:
            return await client.post("/refunds", json={})

    with FakeHTTPServer() as server:
        server.route("POST", "/refunds", [FakeResponse(503), json_response({"id": "r1"}, 201)])
        assert run(post(server.base_url)).status_code == 503
        assert len(server.requests) == 1


def test_settlement_is_not_stored_on_the_wire() -> None:
    raw = msgspec.to_builtins(PAID)
    assert "settlement" not in raw
    assert raw["status"] == "approved"
