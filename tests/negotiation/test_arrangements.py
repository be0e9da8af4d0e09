"""Installment plans over the real app: validation, listing, cancelling, isolation, and a
status that follows the debtor's payments and the grace period of each installment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar import Litestar
from sqlalchemy import select

from tests.conftest import TenantClient
from tests.negotiation.test_promises import day, debtor, pay, reverse, settle_due, today


async def plan(t: TenantClient, debtor_id: int, *installments: tuple[int, str],
               currency: str = "PEN", **extra: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/arrangements", json={
        "debtor_id": debtor_id, "currency": currency, **extra,
        "installments": [{"due_date": day(o), "amount": a} for o, a in installments]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def get(t: TenantClient, plan_id: int) -> dict[str, Any]:
    r = await t.api.get(f"/v1/arrangements/{plan_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def backdate(app: Litestar, plan_id: int, days: int) -> None:
    """Move a plan ``days`` into the past, as if it had been made ``days`` earlier."""
    from cartera.negotiation.models import Arrangement, Installment

    shift = timedelta(days=days)
    async with app.state.ctx.sessionmaker() as session:
        row = await session.get(Arrangement, plan_id)
        assert row is not None
        row.created_on -= shift
        if row.next_deadline is not None:
            row.next_deadline -= shift
        for i in await session.scalars(select(Installment).where(
                Installment.arrangement_id == plan_id)):
            i.due_date -= shift
            i.deadline -= shift
        await session.commit()


async def test_create_and_get(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    created = await plan(tenant, d, (0, "100.00"), (30, "100.00"), (60, "50.50"), note="3 cuotas")
    assert {k: created[k] for k in ("debtor_id", "currency", "total", "paid_amount", "status",
                                    "grace_days", "created_on", "note", "created_by")} == {
        "debtor_id": d, "currency": "PEN", "total": "250.50", "paid_amount": "0.00",
        "status": "active", "grace_days": 5, "created_on": day(0), "note": "3 cuotas",
        "created_by": f"client:{tenant.client_id}"}
    assert created["installments"] == [
        {"number": 1, "due_date": day(0), "amount": "100.00", "grace_until": day(5)},
        {"number": 2, "due_date": day(30), "amount": "100.00", "grace_until": day(35)},
        {"number": 3, "due_date": day(60), "amount": "50.50", "grace_until": day(65)}]
    assert await get(tenant, created["id"]) == created


async def test_validation_names_the_field(tenant: TenantClient) -> None:
    d = await debtor(tenant)

    def body(*items: tuple[int, str], **change: Any) -> dict[str, Any]:
        return {"debtor_id": d, "currency": "PEN",
                "installments": [{"due_date": day(o), "amount": a} for o, a in items], **change}

    ok = [(1, "10.00"), (2, "10.00")]
    cases = [
        (body(), "installments", "no_installments"),
        (body(*ok, debtor_id=999_999_999), "debtor_id", "unknown_debtor"),
        (body(*ok, currency="XYZ"), "currency", "unknown_currency"),
        (body((1, "10.00"), (2, "0")), "installments[1].amount", "non_positive_amount"),
        (body((1, "10.00"), (2, "1.005")), "installments[1].amount", "too_many_decimals"),
        (body((2, "10.00"), (2, "10.00")), "installments[1].due_date",
         "installments_out_of_order"),
        (body((2, "10.00"), (1, "10.00")), "installments[1].due_date",
         "installments_out_of_order"),
        (body((-1, "10.00"), (2, "10.00")), "installments[0].due_date", "date_in_past"),
        (body(*[(i, "1.00") for i in range(121)]), "installments", "validation_error"),
    ]
    for data, param, code in cases:
        r = await tenant.api.post("/v1/arrangements", json=data)
        assert r.status_code == 422, (param, r.text)
        assert (r.json()["param"], r.json()["code"]) == (param, code), r.json()
    assert (await tenant.api.get("/v1/arrangements")).json()["data"] == []


async def test_cancel_list_and_isolation(tenant: TenantClient,
                                         make_tenant: Callable[..., Awaitable[TenantClient]]
                                         ) -> None:
    a, b = await debtor(tenant, "A"), await debtor(tenant, "B")
    ids = [(await plan(tenant, d, (1, "10.00")))["id"] for d in (a, b, a)]
    page = (await tenant.api.get("/v1/arrangements", params={"limit": 2})).json()
    assert ([p["id"] for p in page["data"]], page["has_more"]) == (ids[:2], True)
    assert page["data"][0]["installments"][0]["amount"] == "10.00"
    rest = (await tenant.api.get("/v1/arrangements", params={
        "starting_after": page["next_cursor"]})).json()
    assert [p["id"] for p in rest["data"]] == ids[2:]
    r = await tenant.api.post(f"/v1/arrangements/{ids[0]}/cancel", json={"reason": "refinanced"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "refinanced")
    again = await tenant.api.post(f"/v1/arrangements/{ids[0]}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "arrangement_not_active")
    mine = (await tenant.api.get("/v1/arrangements", params={"debtor_id": a,
                                                             "status": "active"})).json()
    assert [p["id"] for p in mine["data"]] == [ids[2]]
    other = await make_tenant()
    assert (await other.api.get(f"/v1/arrangements/{ids[1]}")).status_code == 404
    assert (await other.api.post(f"/v1/arrangements/{ids[1]}/cancel", json={})
            ).status_code == 404
    assert (await other.api.get("/v1/arrangements")).json()["data"] == []
    assert (await get(tenant, ids[1]))["status"] == "active"


async def test_payments_complete_a_plan_and_a_reversal_reopens_it(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    await pay(tenant, d, "999.00", -1)  # before the plan: does not count
    p = await plan(tenant, d, (0, "60.00"), (30, "60.00"))
    await pay(tenant, d, "60.00", 0, currency="USD")  # another currency: does not count
    await pay(tenant, d, "60.00")
    now = await get(tenant, p["id"])
    assert (now["status"], now["paid_amount"]) == ("active", "60.00")
    last = await pay(tenant, d, "60.00", 40)  # late, but the total is what completes it
    done = await get(tenant, p["id"])
    assert (done["status"], done["paid_amount"]) == ("completed", "120.00")
    assert done["completed_at"] is not None
    r = await tenant.api.post(f"/v1/arrangements/{p['id']}/cancel", json={})
    assert (r.status_code, r.json()["code"]) == (409, "arrangement_not_active")
    await reverse(tenant, last)
    reopened = await get(tenant, p["id"])
    assert (reopened["status"], reopened["paid_amount"], reopened["completed_at"]) == (
        "active", "60.00", None)


async def test_a_missed_installment_breaks_the_plan_after_the_grace_period(
    tenant: TenantClient, app: Litestar,
) -> None:
    d_on_time, d_late, d_short, d_grace = [await debtor(tenant, r) for r in "ABCD"]
    plans = {}
    for d in (d_on_time, d_late, d_short, d_grace):
        plans[d] = (await plan(tenant, d, (0, "50.00"), (30, "50.00")))["id"]
    for d, days in ((d_on_time, 10), (d_late, 10), (d_short, 10), (d_grace, 5)):
        await backdate(app, plans[d], days)
    # Installment 1 was due 10 days ago (grace until 5 days ago): 5 days ago for d_grace,
    # whose grace period ends today. Payments dated in the past, recorded now:
    await pay(tenant, d_on_time, "50.00", -7)  # inside the grace period
    await pay(tenant, d_late, "50.00", -3)  # after it
    await pay(tenant, d_short, "49.99", -9)  # not enough
    # Recording a payment settles the debtor's plans at once.
    status = {d: (await get(tenant, plans[d]))["status"] for d in plans}
    assert status == {d_on_time: "active", d_late: "broken", d_short: "broken",
                      d_grace: "active"}
    broken = await get(tenant, plans[d_late])
    assert broken["broken_at"] is not None and broken["paid_amount"] == "50.00"
    # The job re-checks plans whose grace deadline has passed: none of these has yet.
    await settle_due(app)
    assert {d: (await get(tenant, plans[d]))["status"] for d in plans} == status
    await backdate(app, plans[d_grace], 1)  # now its grace period ended yesterday
    await settle_due(app)
    assert (await get(tenant, plans[d_grace]))["status"] == "broken"
    # A payment made in time but recorded late mends a broken plan.
    await pay(tenant, d_short, "0.01", -6)
    assert (await get(tenant, plans[d_short]))["status"] == "active"


async def test_the_job_moves_on_to_the_next_installment(tenant: TenantClient,
                                                        app: Litestar) -> None:
    from cartera.negotiation.models import Arrangement

    d = await debtor(tenant)
    p = await plan(tenant, d, (0, "40.00"), (10, "40.00"))
    await pay(tenant, d, "40.00", -4)  # counted once the plan is moved back 6 days
    await backdate(app, p["id"], 6)  # installment 1 six days past due, paid on time
    await settle_due(app)
    async with app.state.ctx.sessionmaker() as session:
        next_deadline = await session.scalar(select(Arrangement.next_deadline).where(
            Arrangement.id == p["id"]))
    assert (await get(tenant, p["id"]))["status"] == "active"
    assert next_deadline == today() + timedelta(days=10 - 6 + 5)
    await backdate(app, p["id"], 10)  # installment 2 is now 6 days past due, unpaid
    await settle_due(app)
    assert (await get(tenant, p["id"]))["status"] == "broken"
    async with app.state.ctx.sessionmaker() as session:
        assert await session.scalar(select(Arrangement.next_deadline).where(
            Arrangement.id == p["id"])) is None
