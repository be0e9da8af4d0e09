"""The debtor's self-service through a link: see the balance, accept an offer, choose an
installment plan, promise within the horizon, opt out, pay through a link, see what was
done; every route tried with another debtor's ids and another tenant's token (BOLA), and
expired, revoked or unknown tokens refused with nothing written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from cartera import clock
from cartera.audit.models import AuditEntry
from cartera.negotiation.models import Promise
from cartera.selfservice.models import SelfServiceLink
from tests.conftest import TenantClient
from tests.messaging.test_sending import provider, setup
from tests.messaging.test_templates import SMS
from tests.offers.helpers import debt, offer
from tests.payments.mp import integration, mercadopago

__all__ = ["mercadopago", "provider"]
H = "X-Self-Service-Token"


async def issue(t: TenantClient, debtor_id: int, **body: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/self-service-links", json={"debtor_id": debtor_id, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def debtor_client(http: AsyncTestClient[Litestar], token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=http._transport, base_url="http://testserver.local",
                             headers={H: token})


async def writes(app: Litestar) -> tuple[int, int]:
    async with app.state.ctx.sessionmaker() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEntry))
        promises = await session.scalar(select(func.count()).select_from(Promise))
    return int(audits or 0), int(promises or 0)


async def test_a_debtor_serves_themselves_and_every_action_is_audited_as_the_link(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    debtor_id, _ = await debt(tenant.api, "S-1", "100.00")
    r = await tenant.api.post("/v1/contact-points", json={
        "debtor_id": debtor_id, "kind": "phone", "value": "987654321", "consent": "granted"})
    if r.status_code == 404:  # contact points live under the debtor
        r = await tenant.api.post(f"/v1/debtors/{debtor_id}/contact-points", json={
            "kind": "phone", "value": "987654321", "consent": "granted"})
    assert r.status_code == 201, r.text
    o = await offer(tenant.api, debtor_id=debtor_id, discount_percent="10")
    link = await issue(tenant, debtor_id)
    assert link["token"].startswith("ss_") and link["url"].endswith(link["token"])
    async with app.state.ctx.sessionmaker() as session:
        stored = await session.get(SelfServiceLink, link["id"])
    assert stored is not None and link["token"] not in stored.token_hash
    me = debtor_client(http, link["token"])
    view = (await me.get("/self-service")).json()
    assert [b["outstanding_amount"] for b in view["balances"]] == ["100.00"]
    assert [x["id"] for x in view["offers"]] == [o["id"]]
    r = await me.post(f"/self-service/offers/{o['id']}/accept")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    today = clock.now().date()
    r = await me.post("/self-service/promises", json={
        "currency": "PEN", "amount": "90.00",
        "promised_date": (today + timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    r = await me.post("/self-service/opt-outs", json={"channel": "sms"})
    assert (r.status_code, r.json()["contact_points"]) == (200, 1)
    actions = [a["action"] for a in (await me.get("/self-service/activity")).json()]
    assert set(actions) >= {"offer.accepted", "promise.created", "contact_point.opted_out"}
    async with app.state.ctx.sessionmaker() as session:
        actors = set((await session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action.in_(["offer.accepted", "promise.created",
                                   "contact_point.opted_out"]),
            AuditEntry.tenant_id == tenant.tenant_id))).all())
    assert actors == {f"self_service_link:{link['id']}"}


async def test_promises_outside_the_horizon_or_the_balance_are_refused(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    debtor_id, _ = await debt(tenant.api, "S-2", "100.00")
    me = debtor_client(http, (await issue(tenant, debtor_id))["token"])
    today = clock.now().date()
    before = await writes(app)
    for body, code in [
        ({"promised_date": (today - timedelta(days=2)).isoformat()}, "date_in_past"),
        ({"promised_date": (today + timedelta(days=31)).isoformat()}, "date_beyond_horizon"),
        ({"amount": "100.01"}, "amount_out_of_limits"),
    ]:
        r = await me.post("/self-service/promises", json={
            "currency": "PEN", "amount": "50.00",
            "promised_date": (today + timedelta(days=3)).isoformat(), **body})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == code
    assert await writes(app) == before


async def test_expired_revoked_and_unknown_tokens_are_refused_and_nothing_is_written(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    debtor_id, _ = await debt(tenant.api, "S-3", "100.00")
    expired = await issue(tenant, debtor_id)
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(SelfServiceLink).where(
            SelfServiceLink.id == expired["id"]).values(
                expires_at=clock.now() - timedelta(seconds=1)))
        await session.commit()
    revoked = await issue(tenant, debtor_id)
    r = await tenant.api.post(f"/v1/self-service-links/{revoked['id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"]
    promise = {"currency": "PEN", "amount": "10.00",
               "promised_date": clock.now().date().isoformat()}
    before = await writes(app)
    for token, code in [(expired["token"], "self_service_token_expired"),
                        (revoked["token"], "self_service_token_revoked"),
                        ("ss_not-a-token", "invalid_self_service_token"),
                        ("", "missing_self_service_token")]:
        c = debtor_client(http, token)
        for method, path, body in [("GET", "/self-service", None),
                                   ("POST", "/self-service/promises", promise),
                                   ("POST", "/self-service/opt-outs", {"channel": "sms"})]:
            r = await c.request(method, path, json=body)
            assert (r.status_code, r.json()["code"]) == (401, code), (token, path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    assert await writes(app) == before


async def test_nothing_of_another_debtor_or_tenant_is_reachable(
        tenant: TenantClient, make_tenant: Any, app: Litestar,
        http: AsyncTestClient[Litestar]) -> None:
    mine, _ = await debt(tenant.api, "S-4", "100.00")
    theirs, _ = await debt(tenant.api, "S-5", "200.00")
    today = clock.now().date()
    their_offer = await offer(tenant.api, debtor_id=theirs, kind="installments", installments=[
        {"due_date": (today + timedelta(days=5)).isoformat(), "amount": "180.00"}])
    r = await tenant.api.post(f"/v1/offers/{their_offer['id']}/accept")
    plan = (await tenant.api.get(f"/v1/arrangements/{r.json()['arrangement_id']}")).json()
    other = await make_tenant()
    foreign, _ = await debt(other.api, "S-6", "300.00")
    foreign_offer = await offer(other.api, debtor_id=foreign, discount_percent="5")
    me = debtor_client(http, (await issue(tenant, mine))["token"])
    stranger = debtor_client(http, (await issue(other, foreign))["token"])
    before = await writes(app)
    view = (await me.get("/self-service")).json()
    assert [b["outstanding_amount"] for b in view["balances"]] == ["100.00"]
    assert view["offers"] == []
    for c, offer_id in ((me, their_offer["id"]), (me, foreign_offer["id"]),
                        (stranger, their_offer["id"])):
        r = await c.post(f"/self-service/offers/{offer_id}/accept")
        assert r.status_code == 404, r.text
        r = await c.post("/self-service/payment-link", json={"currency": "PEN",
                                                            "offer_id": offer_id})
        assert r.status_code == 404, r.text
    inst = plan["installments"][0]
    async with app.state.ctx.sessionmaker() as session:
        from cartera.negotiation.models import Installment
        inst_id = await session.scalar(select(Installment.id).where(
            Installment.arrangement_id == plan["id"], Installment.number == inst["number"]))
    for c in (me, stranger):
        r = await c.post("/self-service/payment-link", json={"currency": "PEN",
                                                            "installment_id": inst_id})
        assert r.status_code == 404, r.text
    stranger_view = (await stranger.get("/self-service")).json()
    assert [b["outstanding_amount"] for b in stranger_view["balances"]] == ["300.00"]
    assert [x["id"] for x in stranger_view["offers"]] == [foreign_offer["id"]]
    assert await writes(app) == before
    # a client of another tenant cannot revoke or list this tenant's links
    r = await other.api.get("/v1/self-service-links", params={"debtor_id": mine})
    assert r.json()["data"] == []


async def test_a_payment_link_for_an_offer_is_made_once_and_reused(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
        mercadopago: Any) -> None:
    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant.api, "S-7", "100.00")
    o = await offer(tenant.api, debtor_id=debtor_id, discount_percent="10")
    link = await issue(tenant, debtor_id)
    me = debtor_client(http, link["token"])
    first = await me.post("/self-service/payment-link", json={"currency": "PEN",
                                                             "offer_id": o["id"]})
    assert first.status_code == 200, first.text
    assert (first.json()["amount"], first.json()["purpose"]) == ("90.00", f"offer:{o['id']}")
    again = await me.post("/self-service/payment-link", json={"currency": "PEN",
                                                             "offer_id": o["id"]})
    assert (again.json()["id"], again.json()["reused"]) == (first.json()["id"], True)
    assert len(mercadopago.preferences) == 1
    balance = await me.post("/self-service/payment-link", json={"currency": "PEN"})
    assert balance.json()["amount"] == "100.00"


async def test_a_message_using_links_self_service_carries_a_working_link(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
        provider: Any, run_jobs: Any) -> None:
    debtor, integration_id, _ = await setup(tenant, provider)
    r = await tenant.api.post("/v1/templates", json={**SMS, "code": "self-service",
                                                     "body": "Hola, mira tu deuda: "
                                                             "{{ links.self_service }}"})
    assert r.status_code == 201, r.text
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration_id, "template_id": r.json()["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    [request] = provider.requests_to("POST", "/messages")
    text = request.json()["text"]
    token = text.rsplit("token=", 1)[1]
    assert text.startswith("Hola, mira tu deuda: https://cartera.example.com/self-service?")
    view = await debtor_client(http, token).get("/self-service")
    assert view.status_code == 200, view.text
    assert view.json()["debtor_name"]
    async with app.state.ctx.sessionmaker() as session:
        links = (await session.scalars(select(SelfServiceLink).where(
            SelfServiceLink.debtor_id == debtor))).all()
    assert len(links) == 1 and token not in links[0].token_hash
