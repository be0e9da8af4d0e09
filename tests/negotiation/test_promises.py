"""Promises to pay over the real app: validation, listing, cancelling, tenant isolation, and
a status that follows the debtor's payments, reversals and the calendar (periodic job)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import pytest
from cartera_sdk import hookimpl
from cartera_sdk.events import PromiseBroken
from litestar import Litestar
from sqlalchemy import select, update

from cartera.clock import today_in
from tests.conftest import TenantClient
from tests.plugins.observing import registered

RunJobs = Callable[[], Awaitable[int]]


def today() -> date:
    """The business day of the tenant fixture (Peru)."""
    return today_in("America/Lima")


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


async def debtor(t: TenantClient, ref: str = "D-1") -> int:
    r = await t.api.post("/v1/debtors", json={"external_ref": ref, "name": ref, "country": "PE"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def promise(t: TenantClient, debtor_id: int, amount: str = "100.00", offset: int = 7,
                  currency: str = "PEN", **extra: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/promises", json={
        "debtor_id": debtor_id, "currency": currency, "amount": amount,
        "promised_date": day(offset), **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def pay(t: TenantClient, debtor_id: int, amount: str, offset: int = 0,
              currency: str = "PEN") -> int:
    r = await t.api.post("/v1/payments", json={
        "debtor_id": debtor_id, "currency": currency, "amount": amount, "paid_on": day(offset)})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def reverse(t: TenantClient, payment_id: int) -> None:
    r = await t.api.post(f"/v1/payments/{payment_id}/reverse", json={"reason": "bounced"})
    assert r.status_code == 201, r.text


async def get(t: TenantClient, promise_id: int) -> dict[str, Any]:
    r = await t.api.get(f"/v1/promises/{promise_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def backdate(app: Litestar, promise_id: int, days: int) -> None:
    """Move a promise ``days`` into the past, as if it had been made ``days`` earlier (the
    API refuses a promised date in the past)."""
    from cartera.negotiation.models import Promise

    async with app.state.ctx.sessionmaker() as session:
        row = await session.get(Promise, promise_id)
        assert row is not None
        await session.execute(update(Promise).where(Promise.id == promise_id).values(
            created_on=row.created_on - timedelta(days=days),
            promised_date=row.promised_date - timedelta(days=days)))
        await session.commit()


async def settle_due(app: Litestar) -> None:
    """Run the periodic job's function, as the job runner does every minute."""
    from cartera.negotiation.jobs import settle_due_promises_and_plans

    await settle_due_promises_and_plans(app.state.ctx.sessionmaker, app.state.ctx.jobs)


class Observer:
    """A plugin observing ``on_promise_broken`` (registered for one test)."""

    def __init__(self) -> None:
        self.events: list[PromiseBroken] = []

    @hookimpl
    def on_promise_broken(self, event: PromiseBroken) -> None:
        self.events.append(event)


@pytest.fixture
async def observer(app: Litestar) -> AsyncIterator[Observer]:
    with registered(Observer(), "negotiation-test-observer") as watcher:
        yield watcher


# --- the API ------------------------------------------------------------------------------

async def test_create_get_and_audit(tenant: TenantClient, app: Litestar) -> None:
    d = await debtor(tenant)
    created = await promise(tenant, d, "250.50", 3, channel="voice", note="llamada")
    assert {k: created[k] for k in ("debtor_id", "currency", "amount", "paid_amount",
                                    "promised_date", "created_on", "status", "channel",
                                    "note", "created_by", "kept_at", "broken_at")} == {
        "debtor_id": d, "currency": "PEN", "amount": "250.50", "paid_amount": "0.00",
        "promised_date": day(3), "created_on": day(0), "status": "pending",
        "channel": "voice", "note": "llamada", "created_by": f"client:{tenant.client_id}",
        "kept_at": None, "broken_at": None}
    assert await get(tenant, created["id"]) == created
    from cartera.audit.models import AuditEntry

    async with app.state.ctx.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(
            AuditEntry.tenant_id == tenant.tenant_id,
            AuditEntry.resource_type == "promise"))).all()
    assert actions == ["promise.created"]
    # a promise for today is allowed (the day by which the debtor will pay)
    assert (await promise(tenant, d, "1.00", 0))["status"] == "pending"


async def test_validation_names_the_field(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    base = {"debtor_id": d, "currency": "PEN", "amount": "10.00", "promised_date": day(1)}
    cases = [
        ({"debtor_id": 999_999_999}, "debtor_id", "unknown_debtor"),
        ({"currency": "XYZ"}, "currency", "unknown_currency"),
        ({"currency": "pen"}, "currency", "validation_error"),
        ({"amount": "0.00"}, "amount", "non_positive_amount"),
        ({"amount": "10.001"}, "amount", "too_many_decimals"),
        ({"amount": "-5"}, "amount", "validation_error"),
        ({"promised_date": day(-1)}, "promised_date", "date_in_past"),
        ({"promised_date": "tomorrow"}, "promised_date", "validation_error"),
        ({"channel": "pigeon"}, "channel", "validation_error"),
    ]
    for change, param, code in cases:
        r = await tenant.api.post("/v1/promises", json={**base, **change})
        assert r.status_code == 422, (change, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert (r.json()["param"], r.json()["code"]) == (param, code), (change, r.json())
    clp = await tenant.api.post("/v1/promises", json={**base, "currency": "CLP",
                                                      "amount": "100.5"})
    assert (clp.status_code, clp.json()["code"]) == (422, "too_many_decimals")
    assert (await tenant.api.get("/v1/promises")).json()["data"] == []


async def test_cancel_only_a_pending_promise(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    p = await promise(tenant, d, "50.00")
    r = await tenant.api.post(f"/v1/promises/{p['id']}/cancel", json={"reason": "error"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "error")
    assert r.json()["cancelled_at"] is not None
    again = await tenant.api.post(f"/v1/promises/{p['id']}/cancel")  # the body is optional
    assert (again.status_code, again.json()["code"]) == (409, "promise_not_pending")
    kept = await promise(tenant, d, "20.00")
    await pay(tenant, d, "20.00")
    assert (await get(tenant, kept["id"]))["status"] == "kept"
    r = await tenant.api.post(f"/v1/promises/{kept['id']}/cancel", json={})
    assert (r.status_code, r.json()["code"]) == (409, "promise_not_pending")
    # a cancelled promise is final: later payments do not make it kept
    await pay(tenant, d, "50.00")
    assert (await get(tenant, p["id"]))["status"] == "cancelled"
    missing = await tenant.api.post("/v1/promises/999999999/cancel", json={})
    assert missing.status_code == 404


async def test_list_filters_and_pagination(tenant: TenantClient) -> None:
    a, b = await debtor(tenant, "A"), await debtor(tenant, "B")
    ids = [(await promise(tenant, d, "10.00"))["id"] for d in (a, b, a, a)]
    first = (await tenant.api.get("/v1/promises", params={"limit": 3})).json()
    assert [p["id"] for p in first["data"]] == ids[:3]
    assert (first["has_more"], first["next_cursor"]) == (True, ids[2])
    rest = (await tenant.api.get("/v1/promises", params={
        "limit": 3, "starting_after": first["next_cursor"]})).json()
    assert ([p["id"] for p in rest["data"]], rest["has_more"]) == ([ids[3]], False)
    of_a = (await tenant.api.get("/v1/promises", params={"debtor_id": a})).json()
    assert [p["id"] for p in of_a["data"]] == [ids[0], ids[2], ids[3]]
    await tenant.api.post(f"/v1/promises/{ids[2]}/cancel", json={})
    cancelled = (await tenant.api.get("/v1/promises", params={"status": "cancelled"})).json()
    assert [p["id"] for p in cancelled["data"]] == [ids[2]]
    pending = (await tenant.api.get("/v1/promises", params={"status": "pending",
                                                            "debtor_id": a})).json()
    assert [p["id"] for p in pending["data"]] == [ids[0], ids[3]]
    bad = await tenant.api.get("/v1/promises", params={"status": "lost"})
    assert (bad.status_code, bad.json()["param"]) == (422, "status")
    bad = await tenant.api.get("/v1/promises", params={"limit": 101})
    assert (bad.status_code, bad.json()["param"]) == (422, "limit")


async def test_tenants_are_isolated(tenant: TenantClient,
                                    make_tenant: Callable[..., Awaitable[TenantClient]]) -> None:
    other = await make_tenant()
    d = await debtor(tenant)
    p = await promise(tenant, d)
    assert (await other.api.get(f"/v1/promises/{p['id']}")).status_code == 404
    r = await other.api.post(f"/v1/promises/{p['id']}/cancel", json={})
    assert r.status_code == 404
    assert (await other.api.get("/v1/promises")).json()["data"] == []
    r = await other.api.post("/v1/promises", json={
        "debtor_id": d, "currency": "PEN", "amount": "1.00", "promised_date": day(1)})
    assert (r.status_code, r.json()["code"], r.json()["param"]) == (
        422, "unknown_debtor", "debtor_id")
    assert (await get(tenant, p["id"]))["status"] == "pending"


async def test_scopes_are_enforced(make_tenant: Callable[..., Awaitable[TenantClient]]) -> None:
    reader = await make_tenant(scopes=["portfolio:read", "negotiation:read"])
    assert (await reader.api.get("/v1/promises")).status_code == 200
    r = await reader.api.post("/v1/promises", json={
        "debtor_id": 1, "currency": "PEN", "amount": "1.00", "promised_date": day(1)})
    assert (r.status_code, r.json()["code"]) == (403, "insufficient_scope")
    none = await make_tenant(scopes=["portfolio:read"])
    assert (await none.api.get("/v1/promises")).status_code == 403


async def test_idempotency_key_replays_the_creation(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    body = {"debtor_id": d, "currency": "PEN", "amount": "30.00", "promised_date": day(2)}
    headers = {"Idempotency-Key": "promise-1"}
    first = await tenant.api.post("/v1/promises", json=body, headers=headers)
    again = await tenant.api.post("/v1/promises", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len((await tenant.api.get("/v1/promises")).json()["data"]) == 1
    other = await tenant.api.post("/v1/promises", json={**body, "amount": "31.00"},
                                  headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


# --- status -------------------------------------------------------------------------------

async def test_partial_payments_add_up_to_a_kept_promise(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    p = await promise(tenant, d, "100.00", 5)
    await pay(tenant, d, "500.00", -1)  # before the promise was made: does not count
    await pay(tenant, d, "500.00", 0, currency="USD")  # another currency: does not count
    await pay(tenant, d, "40.00", 0)
    now = await get(tenant, p["id"])
    assert (now["status"], now["paid_amount"], now["kept_at"]) == ("pending", "40.00", None)
    await pay(tenant, d, "60.00", 5)  # dated on the promised date: counts
    kept = await get(tenant, p["id"])
    assert (kept["status"], kept["paid_amount"]) == ("kept", "100.00")
    assert kept["kept_at"] is not None
    later = await promise(tenant, d, "50.00", 3)  # today's 40.00 counts toward it too
    assert (later["status"], later["paid_amount"]) == ("pending", "40.00")
    await pay(tenant, d, "10.00", 4)  # dated after the promised date: does not count
    assert (await get(tenant, later["id"]))["paid_amount"] == "40.00"


async def test_a_payment_already_made_today_keeps_a_new_promise(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    await pay(tenant, d, "80.00")
    p = await promise(tenant, d, "80.00", 10)
    assert (p["status"], p["paid_amount"]) == ("kept", "80.00")


async def test_reversal_makes_a_kept_promise_pending_again(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    p = await promise(tenant, d, "70.00", 4)
    first = await pay(tenant, d, "30.00")
    second = await pay(tenant, d, "40.00", 1)
    assert (await get(tenant, p["id"]))["status"] == "kept"
    await reverse(tenant, second)
    again = await get(tenant, p["id"])
    assert (again["status"], again["paid_amount"], again["kept_at"]) == (
        "pending", "30.00", None)
    await reverse(tenant, first)
    assert (await get(tenant, p["id"]))["paid_amount"] == "0.00"


async def test_the_job_breaks_due_promises_and_tells_plugins(
    tenant: TenantClient, app: Litestar, run_jobs: RunJobs, observer: Observer,
) -> None:
    d = await debtor(tenant)
    due = await promise(tenant, d, "90.00", 2)
    covered = await promise(tenant, d, "15.00", 2)
    today_ = await promise(tenant, d, "500.00", 0)
    # Payments that no settlement has counted yet (as after a bulk import): dated before
    # the promises were made, until these are moved 3 days back (window [-3, -1]).
    await pay(tenant, d, "15.00", -2)
    paid_late = await pay(tenant, d, "10.00", -3)
    await backdate(app, due["id"], 3)
    await backdate(app, covered["id"], 3)
    assert (await get(tenant, due["id"]))["status"] == "pending"  # the job has not run
    await settle_due(app)
    broken = await get(tenant, due["id"])  # some of it paid by the date: partly kept
    assert (broken["status"], broken["paid_amount"]) == ("partly_kept", "25.00")
    assert broken["broken_at"] is not None and broken["kept_at"] is None
    kept = await get(tenant, covered["id"])
    assert (kept["status"], kept["paid_amount"]) == ("kept", "25.00")
    assert (await get(tenant, today_["id"]))["status"] == "pending"  # due today: not yet
    await run_jobs()
    mine = [e for e in observer.events if e.tenant_id == str(tenant.tenant_id)]
    assert len(mine) == 1
    event = mine[0]
    assert (event.promise_id, event.debtor_id, event.due_date) == (
        str(due["id"]), str(d), today() - timedelta(days=1))
    assert (str(event.promised_amount.amount), event.promised_amount.currency) == ("90.00",
                                                                                  "PEN")
    assert str(event.paid_amount.amount) == "25.00"
    await settle_due(app)  # idempotent: nothing more is due, nothing is published again
    await run_jobs()
    assert len([e for e in observer.events if e.tenant_id == str(tenant.tenant_id)]) == 1
    # after its date a reversal leaves it partly kept, and a payment dated in its window (paid
    # in time, recorded late) keeps it
    await reverse(tenant, paid_late)
    assert (await get(tenant, due["id"]))["paid_amount"] == "15.00"
    await pay(tenant, d, "75.00", -1)
    fixed = await get(tenant, due["id"])
    assert (fixed["status"], fixed["paid_amount"], fixed["broken_at"]) == ("kept", "90.00",
                                                                           None)


async def test_a_kept_promise_reversed_after_its_date_is_broken(
    tenant: TenantClient, app: Litestar, run_jobs: RunJobs, observer: Observer,
) -> None:
    d = await debtor(tenant)
    p = await promise(tenant, d, "25.00", 0)
    await backdate(app, p["id"], 2)
    payment = await pay(tenant, d, "25.00", -2)
    assert (await get(tenant, p["id"]))["status"] == "kept"
    await reverse(tenant, payment)
    assert (await get(tenant, p["id"]))["status"] == "broken"
    await run_jobs()
    assert [e.promise_id for e in observer.events
            if e.tenant_id == str(tenant.tenant_id)] == [str(p["id"])]


async def test_the_job_uses_each_tenants_business_day(
    make_tenant: Callable[..., Awaitable[TenantClient]], app: Litestar,
) -> None:
    """UTC+14 is always a day ahead of UTC-11: the same promised date is past in one
    tenant's time zone and today in the other's."""
    from cartera.negotiation.models import Promise
    from cartera.tenants.models import Tenant

    ahead, behind = await make_tenant(), await make_tenant()
    zones = {ahead.tenant_id: "Pacific/Kiritimati", behind.tenant_id: "Pacific/Pago_Pago"}
    found = {}
    async with app.state.ctx.sessionmaker() as session:
        for tenant_id, tz in zones.items():
            await session.execute(update(Tenant).where(Tenant.id == tenant_id)
                                  .values(timezone=tz))
        await session.commit()
    promised = today_in("Pacific/Pago_Pago")
    for t in (ahead, behind):
        d = await debtor(t)
        r = await t.api.post("/v1/promises", json={
            "debtor_id": d, "currency": "PEN", "amount": "10.00",
            "promised_date": today_in(zones[t.tenant_id]).isoformat()})
        assert r.status_code == 201, r.text
        found[t.tenant_id] = r.json()["id"]
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(Promise).where(Promise.id.in_(found.values())).values(
            promised_date=promised, created_on=promised))
        await session.commit()
    await settle_due(app)
    assert (await get(ahead, found[ahead.tenant_id]))["status"] == "broken"
    assert (await get(behind, found[behind.tenant_id]))["status"] == "pending"


async def test_payments_loaded_by_a_bulk_import_keep_promises_at_once(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    import json

    d = await debtor(tenant, "IMP-1")
    kept, other = await promise(tenant, d, "80.00"), await promise(tenant, d, "500.00")
    rows = [{"type": "payment", "external_ref": f"P-{i}", "debtor_external_ref": "IMP-1",
             "currency": "PEN", "amount": "40.00", "paid_on": day(0)} for i in range(2)]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    r = await tenant.api.post("/v1/imports", content=body,
                              headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    await run_jobs()
    done = (await tenant.api.get(f"/v1/imports/{r.json()['id']}")).json()
    assert (done["status"], done["rows_applied"]) == ("succeeded", 2), done
    assert ((await get(tenant, kept["id"]))["status"],
            (await get(tenant, kept["id"]))["paid_amount"]) == ("kept", "80.00")
    assert (await get(tenant, other["id"]))["status"] == "pending"
