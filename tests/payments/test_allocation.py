"""Payments and credit notes are applied oldest due first, exactly, per currency."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cartera.clock import today_in
from tests.conftest import TenantClient

# The tenant fixture's time zone: its business date decides days past due.


def lima_today() -> date:
    """Today in the test tenant's zone, at the call (a session may run past midnight)."""
    return today_in("America/Lima")


def days_ago(n: int) -> str:
    return (lima_today() - timedelta(days=n)).isoformat()


async def debtor(t: TenantClient, ref: str = "D-1") -> int:
    r = await t.api.post("/v1/debtors", json={"external_ref": ref, "name": "Rosa", "country": "PE"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def obligation(t: TenantClient, debtor_id: int, ref: str, amount: str, due: str,
                     currency: str = "PEN", kind: str = "invoice", **extra: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/obligations", json={
        "external_ref": ref, "debtor_id": debtor_id, "kind": kind, "currency": currency,
        "original_amount": amount, "due_date": due, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def get_obligation(t: TenantClient, oid: int) -> dict[str, Any]:
    return dict((await t.api.get(f"/v1/obligations/{oid}")).json())


async def balance(t: TenantClient, debtor_id: int) -> dict[str, dict[str, Any]]:
    body = (await t.api.get(f"/v1/debtors/{debtor_id}/balance")).json()
    return {b["currency"]: b for b in body["balances"]}


async def test_partial_payment_goes_to_oldest_due_first(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    old = await obligation(tenant, d, "F-OLD", "100.00", days_ago(60))
    new = await obligation(tenant, d, "F-NEW", "50.00", days_ago(10))
    r = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "120.00", "paid_on": days_ago(1)})
    assert r.status_code == 201, r.text
    assert r.json()["unapplied_amount"] == "0.00"
    assert (await get_obligation(tenant, old["id"]))["status"] == "paid"
    newer = await get_obligation(tenant, new["id"])
    assert (newer["status"], newer["outstanding_amount"]) == ("open", "30.00")
    b = (await balance(tenant, d))["PEN"]
    assert b["outstanding_amount"] == "30.00"
    assert b["days_past_due"] == 10
    assert b["aging_bucket"] == "1_30"


async def test_explicit_allocation_is_respected(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    old = await obligation(tenant, d, "F-OLD", "100.00", days_ago(60))
    new = await obligation(tenant, d, "F-NEW", "50.00", days_ago(10))
    r = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "50.00", "paid_on": days_ago(1),
        "allocations": [{"obligation_id": new["id"], "amount": "50.00"}]})
    assert r.status_code == 201, r.text
    assert r.json()["allocations"] == [
        {"obligation_id": new["id"], "amount": "50.00", "explicit": True}]
    assert (await get_obligation(tenant, new["id"]))["status"] == "paid"
    assert (await get_obligation(tenant, old["id"]))["outstanding_amount"] == "100.00"


async def test_credit_note_nets_against_the_balance(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    inv = await obligation(tenant, d, "F-1", "80.00", days_ago(40))
    await obligation(tenant, d, "NC-1", "100.00", days_ago(5), kind="credit_note")
    assert (await get_obligation(tenant, inv["id"]))["status"] == "paid"
    b = (await balance(tenant, d))["PEN"]
    assert b["outstanding_amount"] == "0.00"
    assert b["unapplied_credit"] == "20.00"
    assert b["days_past_due"] == 0


async def test_overpayment_leaves_unapplied_credit_and_later_debt_uses_it(
    tenant: TenantClient,
) -> None:
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "10.00", days_ago(3))
    pay = (await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "25.00", "paid_on": days_ago(1)})).json()
    assert pay["unapplied_amount"] == "15.00"
    later = await obligation(tenant, d, "F-2", "15.00", days_ago(-20))
    assert (await get_obligation(tenant, later["id"]))["status"] == "paid"
    again = (await tenant.api.get(f"/v1/payments/{pay['id']}")).json()
    assert again["unapplied_amount"] == "0.00"


async def test_reversal_makes_the_debt_owed_again(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    inv = await obligation(tenant, d, "F-1", "40.00", days_ago(15))
    pay = (await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "40.00", "paid_on": days_ago(1)})).json()
    assert (await get_obligation(tenant, inv["id"]))["status"] == "paid"
    r = await tenant.api.post(f"/v1/payments/{pay['id']}/reverse", json={"reason": "bounced"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "reversed" and r.json()["allocations"] == []
    assert (await get_obligation(tenant, inv["id"]))["outstanding_amount"] == "40.00"
    again = await tenant.api.post(f"/v1/payments/{pay['id']}/reverse", json={"reason": "x"})
    assert again.status_code == 409


async def test_currencies_never_mix(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    await obligation(tenant, d, "F-PEN", "100.00", days_ago(30))
    usd = await obligation(tenant, d, "F-USD", "30.00", days_ago(30), currency="USD")
    await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "USD", "amount": "30.00", "paid_on": days_ago(1)})
    b = await balance(tenant, d)
    assert b["PEN"]["outstanding_amount"] == "100.00"
    assert b["USD"]["outstanding_amount"] == "0.00"
    assert (await get_obligation(tenant, usd["id"]))["status"] == "paid"


async def test_clp_has_no_decimals(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    ok = await obligation(tenant, d, "F-CLP", "150000", days_ago(5), currency="CLP")
    assert ok["original_amount"] == "150000"
    bad = await tenant.api.post("/v1/obligations", json={
        "external_ref": "F-CLP2", "debtor_id": d, "kind": "invoice", "currency": "CLP",
        "original_amount": "10.5", "due_date": days_ago(5)})
    assert bad.status_code == 422
    assert (bad.json()["code"], bad.json()["param"]) == ("too_many_decimals", "original_amount")


async def test_prior_payments_outside_cartera_are_kept(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    inv = await obligation(tenant, d, "F-1", "100.00", days_ago(20), outstanding_amount="60.00")
    assert inv["outstanding_amount"] == "60.00"
    await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "60.00", "paid_on": days_ago(1)})
    assert (await get_obligation(tenant, inv["id"]))["status"] == "paid"


async def test_disputed_obligations_take_no_automatic_payment(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    disputed = await obligation(tenant, d, "F-1", "70.00", days_ago(50))
    r = await tenant.api.patch(f"/v1/obligations/{disputed['id']}", json={"status": "disputed"})
    assert r.status_code == 200
    other = await obligation(tenant, d, "F-2", "30.00", days_ago(20))
    await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "30.00", "paid_on": days_ago(1)})
    assert (await get_obligation(tenant, disputed["id"]))["outstanding_amount"] == "70.00"
    assert (await get_obligation(tenant, other["id"]))["status"] == "paid"


async def test_moving_a_due_date_changes_days_past_due(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    inv = await obligation(tenant, d, "F-1", "70.00", days_ago(50))
    r = await tenant.api.patch(f"/v1/obligations/{inv['id']}", json={"due_date": days_ago(5)})
    assert r.status_code == 200, r.text
    assert (r.json()["due_date"], r.json()["days_past_due"]) == (days_ago(5), 5)
