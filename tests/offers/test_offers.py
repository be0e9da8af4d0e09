"""Offers through the API: limits per role, segment and days past due; approval by a
different client; expiry; applied once when paid in full (a credit note on the covered
obligations); the country's legal cap on collection fees; bad input writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from cartera import clock
from cartera.audit.models import AuditEntry
from cartera.offers.models import Offer
from cartera.offers.service import expire_offers
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import Obligation
from tests.conftest import TenantClient
from tests.offers.helpers import client_with, debt, offer, pay


async def balance(api: Any, debtor_id: int) -> list[tuple[str, str]]:
    """(outstanding, unapplied credit) per currency."""
    body = (await api.get(f"/v1/debtors/{debtor_id}/balance")).json()
    return [(x["outstanding_amount"], x["unapplied_credit"]) for x in body["balances"]]


async def count(app: Litestar, model: Any, tenant_id: int) -> int:
    async with app.state.ctx.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(
            model.tenant_id == tenant_id)) or 0)


async def test_within_the_collectors_limit_an_offer_is_open_and_applies_when_paid(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, (a, b) = await debt(collector, "O-1", "60.00", "40.00")
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10")
    assert (o["status"], o["covered_amount"], o["amount"], o["discount_amount"],
            o["discount_percent"], o["requester_limit_percent"]) == (
        "open", "100.00", "90.00", "10.00", "10", "10")
    assert o["obligation_ids"] == [a, b] and o["days_past_due"] > 300
    await pay(collector, debtor_id, "50.00", "P-1")
    mid = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert (mid["status"], mid["paid_amount"], mid["credit_note_id"]) == ("open", "50.00", None)
    await pay(collector, debtor_id, "40.00", "P-2")
    done = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert (done["status"], done["paid_amount"]) == ("applied", "90.00")
    note = (await collector.get(f"/v1/obligations/{done['credit_note_id']}")).json()
    assert (note["kind"], note["original_amount"]) == ("credit_note", "10.00")
    assert await balance(collector, debtor_id) == [("0.00", "0.00")]
    for oid in (a, b):
        assert (await collector.get(f"/v1/obligations/{oid}")).json()["status"] == "paid"
    async with app.state.ctx.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.tenant_id == tenant.tenant_id, AuditEntry.resource_type == "offer")
            .order_by(AuditEntry.id))).all()
    assert actions == ["offer.created", "offer.applied"]


async def test_above_the_requesters_limit_it_waits_for_another_clients_approval(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector", name="c")
    other_collector, _ = await client_with(app, http, tenant, "collector", name="c2")
    supervisor, sup_id = await client_with(app, http, tenant, "supervisor", name="s")
    debtor_id, _ = await debt(collector, "O-2", "200.00")
    o = await offer(collector, debtor_id=debtor_id, kind="settlement", amount="150.00")
    assert (o["status"], o["discount_percent"], o["approval_limit_percent"]) == (
        "pending_approval", "25", "50")
    # not by the client that made it, even if it had the role; nor by a lower role
    r = await collector.post(f"/v1/offers/{o['id']}/approve")
    assert (r.status_code, r.json()["code"]) == (403, "same_actor")
    r = await other_collector.post(f"/v1/offers/{o['id']}/approve")
    assert (r.status_code, r.json()["code"]) == (403, "approval_limit_exceeded")
    r = await collector.post(f"/v1/offers/{o['id']}/accept")
    assert (r.status_code, r.json()["code"]) == (409, "offer_not_approved")
    # a payment while it waits does not apply it
    r = await supervisor.post(f"/v1/offers/{o['id']}/approve")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["approved_by"]) == ("open", f"client:{sup_id}")
    r = await supervisor.post(f"/v1/offers/{o['id']}/approve")
    assert (r.status_code, r.json()["code"]) == (409, "offer_not_pending_approval")
    async with app.state.ctx.sessionmaker() as session:
        entry = await session.scalar(select(AuditEntry).where(
            AuditEntry.action == "offer.approved", AuditEntry.resource_id == str(o["id"])))
    assert entry is not None and entry.actor == f"client:{sup_id}"


async def test_an_offer_beyond_every_limit_is_refused_and_nothing_is_written(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    manager, _ = await client_with(app, http, tenant, "manager")
    debtor_id, (a,) = await debt(manager, "O-3", "100.00")
    before = await count(app, AuditEntry, tenant.tenant_id)
    for body, code, param in [
        ({"discount_percent": "60"}, "offer_beyond_limits", "discount_percent"),
        ({"amount": "40.00"}, "offer_beyond_limits", "amount"),
        ({"amount": "100.01"}, "amount_above_balance", "amount"),
        ({"amount": "0.00"}, "non_positive_amount", "amount"),
        ({"discount_percent": "5", "amount": "95.00"}, "ambiguous_amount", "amount"),
        ({}, "missing_amount", "discount_percent"),
        ({"discount_percent": "5", "expires_in_days": 31}, "validity_beyond_policy",
         "expires_in_days"),
        ({"discount_percent": "5", "obligation_ids": [a + 1000]}, "unknown_obligation",
         "obligation_ids[0]"),
        ({"kind": "installments", "installments": []}, "no_installments", "installments"),
        ({"kind": "installments", "installments": [
            {"due_date": "2020-01-01", "amount": "50.00"}]}, "date_in_past",
         "installments[0].due_date"),
    ]:
        r = await manager.post("/v1/offers", json={"debtor_id": debtor_id, "currency": "PEN",
                                                   "kind": "discount", **body})
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (r.json()["code"], r.json()["param"]) == (code, param), body
    assert await count(app, Offer, tenant.tenant_id) == 0
    assert await count(app, AuditEntry, tenant.tenant_id) == before


async def test_policy_limits_follow_segment_and_days_past_due(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector", extra=("offers:admin",))
    r = await collector.put("/v1/offer-policy", json={"rules": [
        {"role": "collector", "max_discount_percent": "5", "max_days_past_due": 90},
        {"role": "collector", "max_discount_percent": "20", "min_days_past_due": 91},
        {"role": "supervisor", "max_discount_percent": "30", "kinds": ["settlement"]},
        {"role": "supervisor", "max_discount_percent": "90", "segment_id": 999999}],
        "max_validity_days": 10})
    assert r.status_code == 200, r.text
    assert r.json()["default"] is False and r.json()["max_validity_days"] == 10
    old, _ = await debt(collector, "O-4", "100.00")            # due 2026-01-15: > 90 dpd
    o = await offer(collector, debtor_id=old, discount_percent="20")
    assert o["status"] == "open"
    await collector.post(f"/v1/offers/{o['id']}/cancel")
    r = await collector.post("/v1/offers", json={
        "debtor_id": old, "currency": "PEN", "kind": "discount", "discount_percent": "25"})
    assert (r.status_code, r.json()["code"]) == (422, "offer_beyond_limits")
    o = await offer(collector, debtor_id=old, kind="settlement", discount_percent="25")
    assert o["status"] == "pending_approval"
    # a debtor not yet due: the 5 % rule
    r = await collector.post("/v1/debtors", json={"external_ref": "O-4b", "name": "Bea",
                                                  "country": "PE"})
    young = r.json()["id"]
    due = (clock.now() + timedelta(days=20)).date().isoformat()
    r = await collector.post("/v1/obligations", json={
        "debtor_id": young, "external_ref": "O-4b-1", "kind": "invoice", "currency": "PEN",
        "original_amount": "100.00", "due_date": due})
    assert r.status_code == 201, r.text
    assert (await offer(collector, debtor_id=young, discount_percent="5"))["status"] == "open"
    r = await collector.get("/v1/offer-policy")
    assert len(r.json()["rules"]) == 4


async def test_an_offer_expires_and_a_late_payment_does_not_apply_it(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-5", "100.00")
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10", expires_in_days=1)
    async with app.state.ctx.sessionmaker() as session:  # a day later, in effect
        await session.execute(update(Offer).where(Offer.id == o["id"]).values(
            expires_at=clock.now() - timedelta(seconds=1)))
        await session.commit()
    assert (await collector.get(f"/v1/offers/{o['id']}")).json()["status"] == "expired"
    r = await collector.post(f"/v1/offers/{o['id']}/accept")
    assert (r.status_code, r.json()["code"]) == (409, "offer_expired")
    await pay(collector, debtor_id, "90.00", "P-5")
    late = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert (late["status"], late["paid_amount"], late["credit_note_id"]) == (
        "expired", "0.00", None)
    async with app.state.ctx.sessionmaker() as session:
        assert await expire_offers(session, clock.now()) >= 1
        await session.commit()
    assert (await collector.get(f"/v1/offers/{o['id']}")).json()["status"] == "expired"
    # the debtor is free for a new offer
    assert (await offer(collector, debtor_id=debtor_id, discount_percent="5"))["id"]


async def test_one_live_offer_per_debtor_and_currency(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-6", "100.00")
    await offer(collector, debtor_id=debtor_id, discount_percent="10")
    r = await collector.post("/v1/offers", json={"debtor_id": debtor_id, "currency": "PEN",
                                                 "kind": "discount", "discount_percent": "5"})
    assert (r.status_code, r.json()["code"]) == (409, "offer_exists")


async def test_an_installment_proposal_becomes_a_plan_and_applies_when_paid(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-7", "100.00")
    today = clock.now().date()
    o = await offer(collector, debtor_id=debtor_id, kind="installments", installments=[
        {"due_date": (today + timedelta(days=5)).isoformat(), "amount": "45.00"},
        {"due_date": (today + timedelta(days=35)).isoformat(), "amount": "45.00"}])
    assert (o["status"], o["amount"], o["discount_percent"]) == ("open", "90.00", "10")
    r = await collector.post(f"/v1/offers/{o['id']}/accept")
    assert r.status_code == 200, r.text
    plan_id = r.json()["arrangement_id"]
    plan = (await collector.get(f"/v1/arrangements/{plan_id}")).json()
    assert [i["amount"] for i in plan["installments"]] == ["45.00", "45.00"]
    await pay(collector, debtor_id, "45.00", "P-7a")
    await pay(collector, debtor_id, "45.00", "P-7b")
    done = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert done["status"] == "applied"
    assert await balance(collector, debtor_id) == [("0.00", "0.00")]


async def test_a_reversed_payment_takes_the_credit_note_back(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-8", "100.00")
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10")
    p = await pay(collector, debtor_id, "90.00", "P-8")
    assert (await collector.get(f"/v1/offers/{o['id']}")).json()["status"] == "applied"
    r = await collector.post(f"/v1/payments/{p['id']}/reverse", json={"reason": "bounced"})
    assert r.status_code == 201, r.text
    back = (await collector.get(f"/v1/offers/{o['id']}")).json()
    assert (back["status"], back["credit_note_id"], back["paid_amount"]) == ("open", None, "0.00")
    async with app.state.ctx.sessionmaker() as session:
        notes = await session.scalar(select(func.count()).select_from(Obligation).where(
            Obligation.debtor_id == debtor_id, Obligation.kind == "credit_note"))
    assert notes == 0
    assert await balance(collector, debtor_id) == [("100.00", "0.00")]


@pytest.fixture
def pe_pack(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    import cartera_compliance_pe

    packs = PluginHost()
    packs.add_plugin(cartera_compliance_pe, "compliance_pe", "cartera-compliance-pe", "0.1.0")
    monkeypatch.setattr("cartera.plugins.registry.current_host", lambda: packs)
    return packs


async def test_the_country_packs_fee_rule_caps_what_an_offer_may_ask(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
        pe_pack: PluginHost) -> None:
    """PE (the default supervised lender): no collection fee may be collected, so a fee
    obligation is outside the lawful amount."""
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-9", "100.00", "20.00", kinds=("invoice", "fee"))
    r = await collector.post("/v1/offers", json={"debtor_id": debtor_id, "currency": "PEN",
                                                 "kind": "discount", "amount": "110.00"})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("above_legal_cap", "amount")
    assert "at most 100.00" in r.json()["detail"] and "compliance_pe" in r.json()["detail"]
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10")
    assert (o["covered_amount"], o["lawful_amount"], o["amount"], o["discount_amount"]) == (
        "120.00", "100.00", "90.00", "30.00")
    await pay(collector, debtor_id, "90.00", "P-9")
    assert await balance(collector, debtor_id) == [("0.00", "0.00")]


async def test_other_tenants_offers_answer_404(
        tenant: TenantClient, make_tenant: Any, app: Litestar,
        http: AsyncTestClient[Litestar]) -> None:
    collector, _ = await client_with(app, http, tenant, "collector")
    debtor_id, _ = await debt(collector, "O-10", "100.00")
    o = await offer(collector, debtor_id=debtor_id, discount_percent="10")
    other = await make_tenant()
    assert (await other.api.get(f"/v1/offers/{o['id']}")).status_code == 404
    for action in ("approve", "accept", "cancel"):
        assert (await other.api.post(f"/v1/offers/{o['id']}/{action}")).status_code == 404
    r = await other.api.post("/v1/offers", json={"debtor_id": debtor_id, "currency": "PEN",
                                                 "kind": "discount", "discount_percent": "1"})
    assert (r.status_code, r.json()["code"]) == (422, "unknown_debtor")
