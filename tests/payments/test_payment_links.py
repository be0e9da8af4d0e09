"""Payment links through the real Mercado Pago plugin and its strict fake: made once,
reused, replaced, retried after a provider failure with the same idempotency key,
cancelled, expired, and what templates see as ``links.payment``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from cartera_sdk.testkit import FakeResponse
from litestar import Litestar
from sqlalchemy import func, select, update

from cartera import clock
from cartera.payments.links import expire_links, open_urls
from cartera.payments.models import PaymentLink
from tests.conftest import TenantClient
from tests.payments.mp import debt, integration, mercadopago

__all__ = ["mercadopago"]


async def link(t: TenantClient, expect: int | tuple[int, ...] = 201,
               **body: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/payment-links", json={"currency": "PEN", **body})
    assert r.status_code in (expect if isinstance(expect, tuple) else (expect,)), r.text
    return dict(r.json())


async def count_links(app: Litestar, tenant_id: int) -> int:
    async with app.state.ctx.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(PaymentLink).where(
            PaymentLink.tenant_id == tenant_id)) or 0)


async def test_a_balance_link_is_made_once_and_reused(tenant: TenantClient,
                                                     mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, obligations = await debt(tenant, "L-1", "100.00", "50.50")
    first = await link(tenant, debtor_id=debtor_id, description="Su deuda con Tienda")
    assert (first["status"], first["amount"], first["purpose"], first["reused"]) == (
        "open", "150.50", "balance", False)
    assert first["url"].startswith("https://www.mercadopago.com.pe/checkout/v1/redirect")
    [pref] = mercadopago.preferences.values()
    assert pref["external_reference"] == f"plink_{first['id']}"
    assert str(pref["items"][0]["unit_price"]) == "150.50"
    assert pref["items"][0]["title"] == "Su deuda con Tienda"
    assert pref["notification_url"].startswith("https://cartera.example.com/v1/hooks/")
    assert pref["expires"] is True
    again = await link(tenant, debtor_id=debtor_id)
    assert (again["id"], again["url"], again["reused"]) == (first["id"], first["url"], True)
    assert len(mercadopago.preferences) == 1
    # one obligation only, under its own purpose: a second open link, not a replacement
    one = await link(tenant, debtor_id=debtor_id, obligation_ids=[obligations[1]],
                     purpose="second-invoice")
    assert (one["amount"], one["obligation_ids"]) == ("50.50", [obligations[1]])
    assert (await tenant.api.get(f"/v1/payment-links/{first['id']}")).json()["status"] == "open"


async def test_another_amount_replaces_the_open_link(tenant: TenantClient,
                                                    mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-2", "100.00")
    whole = await link(tenant, debtor_id=debtor_id)
    part = await link(tenant, debtor_id=debtor_id, amount_kind="chosen", amount="40.00")
    assert part["id"] != whole["id"] and part["amount"] == "40.00"
    old = (await tenant.api.get(f"/v1/payment-links/{whole['id']}")).json()
    assert (old["status"], old["status_reason"].split(":")[0]) == ("cancelled", "superseded")
    listed = (await tenant.api.get("/v1/payment-links", params={
        "debtor_id": debtor_id, "status": "open"})).json()["data"]
    assert [x["id"] for x in listed] == [part["id"]]


async def test_bad_amounts_are_refused_and_nothing_is_written(
        tenant: TenantClient, app: Litestar, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-3", "100.00")
    for body, code, param in [
        ({"amount_kind": "chosen", "amount": "100.01"}, "amount_out_of_limits", "amount"),
        ({"amount_kind": "chosen", "amount": "0.00"}, "amount_out_of_limits", "amount"),
        ({"amount_kind": "chosen"}, "missing_amount", "amount"),
        ({"currency": "USD"}, "nothing_to_pay", "currency"),
        ({"amount_kind": "installment"}, "missing_installment", "installment_id"),
        ({"obligation_ids": [999_999]}, "unknown_obligation", "obligation_ids[0]"),
    ]:
        problem = await link(tenant, 422, debtor_id=debtor_id, **body)
        assert (problem["code"], problem["param"]) == (code, param), body
    assert await count_links(app, tenant.tenant_id) == 0
    assert mercadopago.preferences == {}


async def test_without_a_payment_integration_the_problem_says_so(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/payments", json={})  # keep the tenant's client warm
    assert r.status_code == 422
    debtor_id, _ = await debt(tenant, "L-4", "10.00")
    problem = await link(tenant, 422, debtor_id=debtor_id)
    assert (problem["code"], problem["param"]) == ("no_payment_integration", "integration_id")


async def test_a_failed_provider_call_keeps_the_reservation_and_the_retry_reuses_it(
        tenant: TenantClient, app: Litestar, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-5", "80.00")
    down = FakeResponse(503, b'{"message": "unavailable"}', {"Content-Type": "application/json"})
    mercadopago.fail("preference", *[down] * 10)
    # the SDK's client retries, then gives up (or the host's timeout does first)
    problem = await link(tenant, (502, 504), debtor_id=debtor_id)
    assert problem["code"] in ("plugin_error", "plugin_timeout")
    async with app.state.ctx.sessionmaker() as session:
        [(link_id, url, key)] = (await session.execute(select(
            PaymentLink.id, PaymentLink.url, PaymentLink.provider_idempotency_key).where(
            PaymentLink.tenant_id == tenant.tenant_id))).all()
    assert url is None
    mercadopago._failures.clear()
    made = await link(tenant, debtor_id=debtor_id)
    assert (made["id"], made["reused"]) == (link_id, True) and made["url"]
    keys = {r.headers.get("x-idempotency-key") for r in mercadopago.server.requests
            if r.path == "/checkout/preferences"}
    assert keys == {key}  # every attempt carried the row's key: one link at the provider


async def test_a_refused_provider_call_cancels_the_reservation(
        tenant: TenantClient, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-6", "80.00")
    mercadopago.fail("preference", FakeResponse(
        400, b'{"message": "bad", "cause": []}', {"Content-Type": "application/json"}))
    await link(tenant, 502, debtor_id=debtor_id)
    [row] = (await tenant.api.get("/v1/payment-links", params={"debtor_id": debtor_id})
             ).json()["data"]
    assert row["status"] == "cancelled" and row["status_reason"].startswith("provider_refused")
    assert (await link(tenant, debtor_id=debtor_id))["id"] != row["id"]


async def test_cancel_expire_and_other_tenants(tenant: TenantClient, make_tenant: Any,
                                               app: Litestar, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-7", "80.00")
    made = await link(tenant, debtor_id=debtor_id, purpose="a")
    other = await make_tenant()
    assert (await other.api.get(f"/v1/payment-links/{made['id']}")).status_code == 404
    assert (await other.api.post(f"/v1/payment-links/{made['id']}/cancel",
                                 json={"reason": "x"})).status_code == 404
    r = await tenant.api.post(f"/v1/payment-links/{made['id']}/cancel",
                              json={"reason": "the debtor paid at the branch"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await tenant.api.post(f"/v1/payment-links/{made['id']}/cancel", json={"reason": "x"})
    assert (r.status_code, r.json()["code"]) == (409, "link_not_open")
    due = await link(tenant, debtor_id=debtor_id, purpose="b")
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(PaymentLink).where(PaymentLink.id == due["id"]).values(
            expires_at=clock.now() - timedelta(minutes=1)))
        assert await expire_links(session, clock.now()) == 1
        await session.commit()
    assert (await tenant.api.get(f"/v1/payment-links/{due['id']}")).json()["status"] == \
        "expired"
    audit = (await tenant.api.get("/v1/audit", params={
        "resource_type": "payment_link"})).json()["data"]
    assert {a["action"] for a in audit} >= {"payment_link.created", "payment_link.cancelled"}


async def test_templates_see_the_open_link_as_links_payment(
        tenant: TenantClient, app: Litestar, mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-8", "80.00")
    other_id, _ = await debt(tenant, "L-9", "20.00")
    template = (await tenant.api.post("/v1/templates", json={
        "code": "pay-link", "channel": "sms", "locale": "es-PE", "name": "Pague",
        "body": "Pague aqui: {{ links.payment }}"})).json()
    preview = f"/v1/templates/{template['id']}/preview"
    before = await tenant.api.post(preview, json={"debtor_id": debtor_id})
    assert before.json()["content"]["text"] == "Pague aqui: "
    made = await link(tenant, debtor_id=debtor_id)
    after = await tenant.api.post(preview, json={"debtor_id": debtor_id})
    assert after.json()["content"]["text"] == f"Pague aqui: {made['url']}"
    async with app.state.ctx.sessionmaker() as session:  # what the batch sender loads
        urls = await open_urls(session, tenant.tenant_id, [debtor_id, other_id])
    assert urls == {debtor_id: made["url"]}


async def test_an_idempotency_key_replays_the_link(tenant: TenantClient, app: Litestar,
                                                  mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-10", "80.00")
    body = {"debtor_id": debtor_id, "currency": "PEN"}
    headers = {"Idempotency-Key": "link-L-10"}
    first = await tenant.api.post("/v1/payment-links", json=body, headers=headers)
    again = await tenant.api.post("/v1/payment-links", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and first.json()["reused"] is False
    other = await tenant.api.post("/v1/payment-links", json={**body, "purpose": "x"},
                                  headers=headers)
    assert other.status_code == 422  # the same key with another body
    assert await count_links(app, tenant.tenant_id) == 1



async def test_the_request_that_reserved_a_link_reports_it_new_when_another_makes_the_call(
        tenant: TenantClient, app: Litestar, mercadopago: Any, monkeypatch: Any) -> None:
    """The interleaving PostgreSQL showed under load: request A reserves the row, request B
    (which found it reserved, so ``reused``) takes the provider call first, A waits for B's
    URL. A still made the link: ``reused`` is false for A (true only for B)."""
    from cartera.payments import links

    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-9", "80.00")
    real_reserve = links._reserve
    b_done: list[asyncio.Task[None]] = []  # on the app's loop; A's request waits for it

    async def b_makes_the_url(link_id: int) -> None:
        await asyncio.sleep(0.2)
        async with app.state.ctx.sessionmaker() as session:
            await session.execute(update(PaymentLink).where(PaymentLink.id == link_id).values(
                url="https://pay.example/b", calling_until=None))
            await session.commit()

    async def reserve_then_b_takes_the_call(session: Any, *args: Any) -> Any:
        reserved = await real_reserve(session, *args)
        reserved.link.calling_until = clock.now() + timedelta(minutes=1)  # B's lease
        await session.flush()
        b_done.append(asyncio.get_running_loop().create_task(
            b_makes_the_url(reserved.link.id)))
        return reserved

    monkeypatch.setattr(links, "_reserve", reserve_then_b_takes_the_call)
    r = await tenant.api.post("/v1/payment-links", json={"currency": "PEN",
                                                         "debtor_id": debtor_id})
    assert b_done and b_done[0].done()
    assert r.status_code == 201, r.text
    assert (r.json()["url"], r.json()["reused"]) == ("https://pay.example/b", False)
    assert mercadopago.preferences == {}  # A never called the provider itself
