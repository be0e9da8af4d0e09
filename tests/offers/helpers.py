"""Offers test helpers: clients of one tenant with chosen roles, debts, payments."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.auth.clients import create_client
from tests.conftest import TenantClient

BASE = ["offers:read", "offers:write", "portfolio:read", "portfolio:write", "audit:read",
        "negotiation:read"]


async def client_with(app: Litestar, http: AsyncTestClient[Litestar], t: TenantClient,
                      *roles: str, name: str = "agent", extra: tuple[str, ...] = ()
                      ) -> tuple[httpx.AsyncClient, str]:
    """Another OAuth client of ``t``'s tenant holding ``role:<r>`` for each of ``roles``;
    returns its API client and its client id."""
    async with app.state.ctx.sessionmaker() as session:
        client, secret = await create_client(session, t.tenant_id, name,
                                             [*BASE, *extra, *(f"role:{r}" for r in roles)])
        await session.commit()
    r = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(client.client_id, secret))
    assert r.status_code == 200, r.text
    api = httpx.AsyncClient(transport=http._transport, base_url="http://testserver.local",
                            headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    return api, client.client_id


async def debt(api: httpx.AsyncClient, ref: str, *amounts: str, kinds: tuple[str, ...] = (),
               currency: str = "PEN", country: str = "PE") -> tuple[int, list[int]]:
    r = await api.post("/v1/debtors", json={"external_ref": ref, "name": f"Ana {ref}",
                                            "country": country})
    assert r.status_code == 201, r.text
    debtor_id = int(r.json()["id"])
    ids = []
    for i, amount in enumerate(amounts or ("100.00",)):
        r = await api.post("/v1/obligations", json={
            "debtor_id": debtor_id, "external_ref": f"{ref}-F{i}",
            "kind": kinds[i] if i < len(kinds) else "invoice", "currency": currency,
            "original_amount": amount, "due_date": f"2026-0{1 + i}-15"})
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
    return debtor_id, ids


async def pay(api: httpx.AsyncClient, debtor_id: int, amount: str, ref: str,
              expect: int = 201) -> dict[str, Any]:
    r = await api.post("/v1/payments", json={"debtor_id": debtor_id, "currency": "PEN",
                                             "amount": amount, "paid_on": "2026-12-01",
                                             "external_ref": ref})
    assert r.status_code == expect, r.text
    return dict(r.json())


async def offer(api: httpx.AsyncClient, expect: int = 201, **body: Any) -> dict[str, Any]:
    r = await api.post("/v1/offers", json={"currency": "PEN", "kind": "discount", **body})
    assert r.status_code == expect, r.text
    return dict(r.json())
