"""The fake is strict: requests the real API would refuse are refused (so tests mean it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import mercadopago_fake as mp
import pytest
from cartera_sdk.testkit import FakeHTTPServer

GOOD_PREFERENCE: dict[str, Any] = {
    "items": [{"id": "plink_1", "title": "Deuda", "quantity": 1, "unit_price": 10.5,
               "currency_id": "PEN"}],
    "external_reference": "plink_1",
}  # fmt: skip
AUTH = {"Authorization": f"Bearer {mp.ACCESS_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def fake() -> Iterator[tuple[mp.FakeMercadoPago, httpx.Client]]:
    with FakeHTTPServer() as server, httpx.Client(base_url=server.base_url) as client:
        fake = mp.FakeMercadoPago(server).install()
        fake.add_payment("17014025134", "58.80")
        yield fake, client


def _post(client: httpx.Client, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return client.post(path, content=json.dumps(body).encode(), headers=headers)


def test_good_preference_is_created(fake: tuple[mp.FakeMercadoPago, httpx.Client]) -> None:
    _, client = fake
    response = _post(client, "/checkout/preferences", GOOD_PREFERENCE,
                     {**AUTH, "X-Idempotency-Key": "k1"})  # fmt: skip
    assert response.status_code == 201
    assert response.json()["init_point"].endswith(response.json()["id"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(lambda b: b.update(external_refrence="x"), "unknown field"),
     (lambda b: b["items"][0].update(price=1), "unknown field"),
     (lambda b: b["items"][0].update(unit_price="10.50"), "must be a number"),
     (lambda b: b["items"][0].update(unit_price=10.555), "too many decimals"),
     (lambda b: b["items"][0].update(quantity=0), "positive integer"),
     (lambda b: b["items"][0].pop("currency_id"), "missing field"),
     (lambda b: b.update(items=[]), "non-empty"),
     (lambda b: b.update(payer={"nombre": "Juan"}), "unknown field"),
     (lambda b: b.update(auto_return="approved"), "back_url.success"),
     (lambda b: b.update(expires=True, expiration_date_to="2026-03-05"), "yyyy-MM-dd"),
     (lambda b: b.update(expires=True), "expiration_date_to")],
    ids=["misspelt-top-level", "unknown-item-key", "string-price", "sub-cent", "zero-quantity",
         "no-currency", "no-items", "payer-key", "auto-return", "date-format", "no-expiry-date"],
)  # fmt: skip
def test_bad_preferences_are_refused(
    fake: tuple[mp.FakeMercadoPago, httpx.Client], mutate: Any, message: str
) -> None:
    fake_mp, client = fake
    body = json.loads(json.dumps(GOOD_PREFERENCE))
    mutate(body)
    response = _post(client, "/checkout/preferences", body, {**AUTH, "X-Idempotency-Key": "k2"})
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert fake_mp.preferences == {}


def test_missing_bearer_is_401(fake: tuple[mp.FakeMercadoPago, httpx.Client]) -> None:
    _, client = fake
    no_auth = {"Content-Type": "application/json", "X-Idempotency-Key": "k"}
    assert _post(client, "/checkout/preferences", GOOD_PREFERENCE, no_auth).status_code == 401
    assert client.get("/v1/payments/17014025134").status_code == 401
    basic = {"Authorization": f"Basic {mp.ACCESS_TOKEN}"}
    assert client.get("/v1/payments/17014025134", headers=basic).status_code == 401


@pytest.mark.parametrize("key", [None, "", "k" * 65])
def test_posts_need_an_idempotency_key(
    fake: tuple[mp.FakeMercadoPago, httpx.Client], key: str | None
) -> None:
    fake_mp, client = fake
    headers = dict(AUTH) if key is None else {**AUTH, "X-Idempotency-Key": key}
    for path, body in (("/checkout/preferences", GOOD_PREFERENCE),
                       ("/v1/payments/17014025134/refunds", {"amount": 1})):  # fmt: skip
        response = _post(client, path, body, headers)
        assert response.status_code == 400
        assert response.json()["cause"][0]["code"] == 4292
    assert fake_mp.preferences == {}
    assert fake_mp.refunds == {}


def test_reused_key_with_another_body_is_refused(
    fake: tuple[mp.FakeMercadoPago, httpx.Client],
) -> None:
    fake_mp, client = fake
    headers = {**AUTH, "X-Idempotency-Key": "same"}
    assert _post(client, "/v1/payments/17014025134/refunds", {"amount": 1}, headers).is_success
    again = _post(client, "/v1/payments/17014025134/refunds", {"amount": 2}, headers)
    assert again.status_code == 400
    assert len(fake_mp.refunds["17014025134"]) == 1


@pytest.mark.parametrize(
    ("body", "cause"),
    [({"amount": "1.00"}, 4041), ({"amount": 0}, 4040), ({"monto": 1}, None)],
)
def test_bad_refund_bodies(
    fake: tuple[mp.FakeMercadoPago, httpx.Client], body: Any, cause: int | None
) -> None:
    _, client = fake
    response = _post(client, "/v1/payments/17014025134/refunds", body,
                     {**AUTH, "X-Idempotency-Key": "k3"})  # fmt: skip
    assert response.status_code == 400
    causes = [c["code"] for c in response.json()["cause"]]
    assert causes == ([cause] if cause else [])


def test_json_content_type_is_required(fake: tuple[mp.FakeMercadoPago, httpx.Client]) -> None:
    _, client = fake
    headers = {"Authorization": AUTH["Authorization"], "X-Idempotency-Key": "k4",
               "Content-Type": "text/plain"}  # fmt: skip
    assert _post(client, "/checkout/preferences", GOOD_PREFERENCE, headers).status_code == 400
