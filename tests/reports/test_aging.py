"""The aging report buckets each open obligation by its own due date, per currency."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import TenantClient
from tests.payments.test_allocation import balance, days_ago, debtor, obligation


async def test_aging_buckets_counts_and_amounts(tenant: TenantClient) -> None:
    a = await debtor(tenant, "A")
    b = await debtor(tenant, "B")
    await obligation(tenant, a, "A-1", "100.00", days_ago(-5), product="loan")
    await obligation(tenant, a, "A-2", "200.00", days_ago(45), product="card")
    await obligation(tenant, b, "B-1", "300.00", days_ago(45), product="card")
    await obligation(tenant, b, "B-2", "400.00", days_ago(200), product="card")
    await obligation(tenant, b, "B-3", "1000", days_ago(95), currency="CLP")
    report = (await tenant.api.get("/v1/aging")).json()
    by_cur = {c["currency"]: c for c in report["currencies"]}
    pen = {row["bucket"]: row for row in by_cur["PEN"]["buckets"]}
    assert pen["current"] == {"bucket": "current", "obligations": 1, "debtors": 1,
                              "amount": "100.00"}
    assert pen["31_60"] == {"bucket": "31_60", "obligations": 2, "debtors": 2, "amount": "500.00"}
    assert pen["181_plus"]["amount"] == "400.00"
    assert by_cur["PEN"]["total_amount"] == "1000.00"
    assert by_cur["PEN"]["overdue_amount"] == "900.00"
    clp = {row["bucket"]: row for row in by_cur["CLP"]["buckets"]}
    assert clp["91_180"]["amount"] == "1000"
    cards = (await tenant.api.get("/v1/aging", params={"product": "card",
                                                      "currency": "PEN"})).json()
    assert cards["currencies"][0]["total_amount"] == "900.00"


async def test_bucket_edges(tenant: TenantClient) -> None:
    d = await debtor(tenant)
    for n in (0, 1, 30, 31, 90, 91, 180, 181):
        await obligation(tenant, d, f"E-{n}", "1.00", days_ago(n))
    pen = (await tenant.api.get("/v1/aging")).json()["currencies"][0]
    counts = {row["bucket"]: row["obligations"] for row in pen["buckets"]}
    assert counts == {"current": 1, "1_30": 2, "31_60": 1, "61_90": 1, "91_180": 2,
                      "181_plus": 1}


async def test_paid_and_zone_filters(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={"external_ref": "Z", "name": "Z",
                                                   "country": "PE", "zone": "Callao"})
    z = r.json()["id"]
    await obligation(tenant, z, "Z-1", "10.00", days_ago(10))
    other = await debtor(tenant, "O")
    await obligation(tenant, other, "O-1", "99.00", days_ago(10))
    callao = (await tenant.api.get("/v1/aging", params={"zone": "Callao"})).json()
    assert callao["currencies"][0]["total_amount"] == "10.00"


async def test_unapplied_credit_agrees_with_the_debtor_balances(tenant: TenantClient) -> None:
    """Overpayments are unapplied credit in the report as in the balances (issue 10 #25)."""
    a = await debtor(tenant, "A")
    b = await debtor(tenant, "B")
    await obligation(tenant, a, "A-1", "100.00", days_ago(20))
    await obligation(tenant, b, "B-1", "10.00", days_ago(20), currency="MXN")
    await obligation(tenant, b, "NC-1", "5.00", days_ago(3), kind="credit_note")
    for who, currency, amount in ((a, "PEN", "143.04"), (b, "MXN", "51.47")):
        r = await tenant.api.post("/v1/payments", json={
            "debtor_id": who, "currency": currency, "amount": amount, "paid_on": days_ago(1)})
        assert r.status_code == 201, r.text
    reversed_ = await tenant.api.post("/v1/payments", json={
        "debtor_id": a, "currency": "PEN", "amount": "7.00", "paid_on": days_ago(1)})
    r = await tenant.api.post(f"/v1/payments/{reversed_.json()['id']}/reverse",
                              json={"reason": "bounced"})
    assert r.status_code == 201, r.text
    from_balances: dict[str, Decimal] = {}
    for who in (a, b):
        for cur, row in (await balance(tenant, who)).items():
            from_balances[cur] = from_balances.get(cur, Decimal(0)) + Decimal(
                row["unapplied_credit"])
    assert from_balances == {"PEN": Decimal("48.04"), "MXN": Decimal("41.47")}
    report = (await tenant.api.get("/v1/aging")).json()
    assert {c["currency"]: Decimal(c["unapplied_credit"])
            for c in report["currencies"]} == from_balances
    mxn = (await tenant.api.get("/v1/aging", params={"currency": "MXN"})).json()
    assert [c["unapplied_credit"] for c in mxn["currencies"]] == ["41.47"]
    zone = (await tenant.api.get("/v1/aging", params={"zone": "nowhere"})).json()
    assert zone["currencies"] == []
