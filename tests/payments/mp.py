"""Mercado Pago through the API: the plugin's strict fake, an integration, signed
notifications posted to the integration's webhook URL."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer

from tests.conftest import TenantClient, hook_path

_FAKE = Path(__file__).parents[2] / "plugins" / "mercadopago" / "tests" / "mercadopago_fake.py"


def _load_fake() -> ModuleType:
    if "mercadopago_fake" in sys.modules:
        return sys.modules["mercadopago_fake"]
    spec = importlib.util.spec_from_file_location("mercadopago_fake", _FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mercadopago_fake"] = module
    spec.loader.exec_module(module)
    return module


fake = _load_fake()


@pytest.fixture
def mercadopago() -> Iterator[Any]:
    """The fake's state (``.payments``, ``.preferences``, ``.fail``), served locally."""
    with FakeHTTPServer() as server:
        yield fake.FakeMercadoPago(server).install()


async def integration(t: TenantClient, mp: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/integrations", json={
        "name": "Mercado Pago", "provider_kind": "payment", "provider_name": "mercadopago",
        "config": {"base_url": mp.server.base_url},
        "secrets": {"access_token": fake.ACCESS_TOKEN, "webhook_secret": fake.WEBHOOK_SECRET}})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def debt(t: TenantClient, ref: str = "D-1", *amounts: str,
               currency: str = "PEN") -> tuple[int, list[int]]:
    """A debtor with overdue obligations of these amounts (oldest first)."""
    r = await t.api.post("/v1/debtors", json={"external_ref": ref, "name": f"Ana {ref}",
                                              "country": "PE"})
    assert r.status_code == 201, r.text
    debtor_id = int(r.json()["id"])
    ids = []
    for i, amount in enumerate(amounts or ("100.00",)):
        r = await t.api.post("/v1/obligations", json={
            "debtor_id": debtor_id, "external_ref": f"{ref}-F{i}", "kind": "invoice",
            "currency": currency, "original_amount": amount,
            "due_date": f"2026-0{1 + i}-15"})
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
    return debtor_id, ids


def notification(payment_id: str, *, notification_id: int, ts: str | None = None,
                 secret: str | None = None, request_id: str = "req-1",
                 action: str = "payment.updated") -> tuple[str, bytes, dict[str, str]]:
    """(query, body, headers) of a signed Mercado Pago payment notification."""
    ts = ts or str(int(time.time()))
    body = json.dumps({
        "id": notification_id, "live_mode": True, "type": "payment",
        "date_created": "2026-03-02T12:00:00.000-03:00", "user_id": fake.COLLECTOR_ID,
        "api_version": "v1", "action": action, "data": {"id": payment_id}}).encode()
    headers = {"Content-Type": "application/json", "x-request-id": request_id,
               "x-signature": fake.sign(secret or fake.WEBHOOK_SECRET, payment_id, request_id,
                                        ts)}
    return f"?data.id={payment_id}&type=payment", body, headers


async def notify(http: Any, integration_id: int, payment_id: str, *, notification_id: int,
                 expect: int = 200, **kwargs: Any) -> Any:
    query, body, headers = notification(payment_id, notification_id=notification_id, **kwargs)
    r = await http.post(await hook_path(http, integration_id) + query, content=body,
                        headers=headers)
    assert r.status_code == expect, r.text
    return r
