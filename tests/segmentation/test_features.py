"""The windowed payment count and the per-channel consent features: validation, set-based
evaluation (SQL) agreeing with explain (Python), and the single-debtor re-evaluation path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import TenantClient
from tests.segmentation.test_segments import RunJobs, debtor, run, segment_of, today


def _paid(days: int, op: str = "gte", value: int = 1) -> dict[str, Any]:
    return {"feature": "payments_last_days", "days": days, "op": op, "value": value}


def _consent(channel: str, value: bool = True, op: str = "eq") -> dict[str, Any]:
    return {"feature": "consent", "channel": channel, "op": op, "value": value}


RULES: dict[str, Any] = {"segments": [
    {"code": "paid_twice", "name": "Paid twice in 30 days", "rule": _paid(30, "gte", 2)},
    {"code": "paid_30", "name": "Paid in 30 days", "rule": _paid(30)},
    {"code": "paid_60", "name": "Paid in 60 days", "rule": _paid(60)},
    {"code": "whatsapp", "name": "Reachable on WhatsApp", "rule": _consent("whatsapp")},
    {"code": "sms_only", "name": "SMS but not WhatsApp", "rule": {"all": [
        _consent("sms"), _consent("whatsapp", op="ne")]}},
    {"code": "email", "name": "E-mail", "rule": _consent("email")},
    {"code": "rest", "name": "Unreachable", "rule": {"all": []}},
]}


def _phone(n: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "phone", "value": f"+5199900{n:04d}", **extra}


async def pay(tenant: TenantClient, debtor_id: int, days_ago: int,
              amount: str = "10.00") -> int:
    r = await tenant.api.post("/v1/payments", json={
        "debtor_id": debtor_id, "currency": "PEN", "amount": amount,
        "paid_on": (today() - timedelta(days=days_ago)).isoformat()})
    assert r.status_code == 201, r.text
    payment_id: int = r.json()["id"]
    return payment_id


async def test_days_and_channel_are_validated_with_their_path(tenant: TenantClient) -> None:
    cases = [
        ({"feature": "payments_last_days", "op": "gte", "value": 1}, "days", "missing_days"),
        (_paid(0), "days", "invalid_days"),
        (_paid(3651), "days", "invalid_days"),
        ({**_paid(30), "days": "30"}, "days", "invalid_days"),
        ({**_paid(30), "days": True}, "days", "invalid_days"),
        ({"feature": "risk_score", "op": "gte", "value": 1, "days": 30}, "days",
         "unexpected_days"),
        (_paid(30, value="1"), "value", "invalid_value"),  # type: ignore[arg-type]
        ({"feature": "consent", "op": "eq", "value": True}, "channel", "missing_channel"),
        (_consent("pigeon"), "channel", "unknown_channel"),
        ({"feature": "zone", "op": "eq", "value": "Lima", "channel": "sms"}, "channel",
         "unexpected_channel"),
        (_consent("sms", "yes"), "value", "invalid_value"),  # type: ignore[arg-type]
        (_consent("sms", op="gte"), "op", "invalid_operator"),
    ]
    for bad, key, code in cases:
        body = {"segments": [
            {"code": "a", "name": "A", "rule": {"any": [_paid(30), {"not": bad}]}},
            {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
        r = await tenant.api.put("/v1/segments", json=body)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["param"] == f"segments[0].rule.any[1].not.{key}", (bad, r.json())
        assert r.json()["code"] == code, (bad, r.json())
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200


async def test_payments_and_consent_assign_segments(tenant: TenantClient,
                                                    run_jobs: RunJobs) -> None:
    debt = ("PEN", "500.00", 10)
    ids = {
        "paid_twice": await debtor(tenant, "T", debt),
        "paid_30": await debtor(tenant, "R", debt),
        "paid_60": await debtor(tenant, "S", debt, contact_points=[
            {"kind": "whatsapp", "value": "+51999000001", "consent": "granted"}]),
        "reversed": await debtor(tenant, "X", debt),
        "whatsapp": await debtor(tenant, "W", debt, contact_points=[_phone(2)]),
        "sms_only": await debtor(tenant, "O", debt, contact_points=[
            _phone(3, opted_out_channels=["whatsapp"])]),
        "email": await debtor(tenant, "E", debt, contact_points=[
            _phone(4, consent="revoked"), {"kind": "email", "value": "e@example.com"}]),
        "rest": await debtor(tenant, "N", debt, contact_points=[
            {"kind": "address", "value": "Av. Larco 123"},
            {"kind": "email", "value": "n@example.com", "opted_out_channels": ["email"]}]),
    }
    await pay(tenant, ids["paid_twice"], 0)
    await pay(tenant, ids["paid_twice"], 29)
    await pay(tenant, ids["paid_twice"], 30)  # outside the 30 days ending today
    await pay(tenant, ids["paid_30"], 3)
    await pay(tenant, ids["paid_60"], 45)
    reversed_ = await pay(tenant, ids["reversed"], 2)
    r = await tenant.api.post(f"/v1/payments/{reversed_}/reverse", json={"reason": "bounced"})
    assert r.status_code in (200, 201), r.text
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    summary = await run(tenant, run_jobs)
    assert summary["debtors_per_segment"] == {
        "paid_twice": 1, "paid_30": 1, "paid_60": 1, "whatsapp": 1, "sms_only": 1,
        "email": 1, "rest": 2}
    expected = {**{k: k for k in ids}, "reversed": "rest"}
    for key, debtor_id in ids.items():
        assert await segment_of(tenant, debtor_id) == expected[key], key


async def test_explain_shows_window_channel_and_values(tenant: TenantClient) -> None:
    d = await debtor(tenant, "Q", ("PEN", "80.00", 3), contact_points=[
        _phone(5, opted_out_channels=["whatsapp"])])
    await pay(tenant, d, 1)
    await pay(tenant, d, 40)
    await tenant.api.put("/v1/segments", json=RULES)
    body = (await tenant.api.get(f"/v1/segments/explain/{d}")).json()
    assert body["segment"] == "paid_30"
    first, second = (e["trace"] for e in body["evaluated"][:2])
    assert first == {"path": "segments[0].rule", "feature": "payments_last_days", "op": "gte",
                     "value": 2, "days": 30, "actual": 1, "matched": False}
    assert (second["actual"], second["matched"]) == (1, True)
    draft = {"segments": [
        {"code": "wa", "name": "WA", "rule": {"any": [_consent("whatsapp"), _paid(60, "eq", 5)]}},
        {"code": "sms", "name": "SMS", "rule": _consent("sms")},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
    await tenant.api.put("/v1/segments", json=draft)
    body = (await tenant.api.get(f"/v1/segments/explain/{d}")).json()
    assert body["segment"] == "sms"
    wa = body["evaluated"][0]["trace"]["rules"]
    assert wa[0] == {"path": "segments[0].rule.any[0]", "feature": "consent", "op": "eq",
                     "value": True, "channel": "whatsapp", "actual": False, "matched": False}
    assert (wa[1]["days"], wa[1]["actual"]) == (60, 2)
    assert body["evaluated"][1]["trace"]["actual"] is True


async def test_single_debtor_reevaluation_follows_payments_and_consent(
    tenant: TenantClient, app: Any, run_jobs: RunJobs,
) -> None:
    from cartera.db.engine import tenant_session
    from cartera.segmentation.service import reevaluate_debtor

    d = await debtor(tenant, "U", ("PEN", "300.00", 20), contact_points=[_phone(6)])
    await tenant.api.put("/v1/segments", json=RULES)
    await run(tenant, run_jobs)
    assert await segment_of(tenant, d) == "whatsapp"
    payment = await pay(tenant, d, 0)  # a payment re-evaluates its debtor at once
    assert await segment_of(tenant, d) == "paid_30"
    await tenant.api.post(f"/v1/payments/{payment}/reverse", json={"reason": "chargeback"})
    assert await segment_of(tenant, d) == "whatsapp"
    cp = (await tenant.api.get(f"/v1/debtors/{d}")).json()["contact_points"][0]
    r = await tenant.api.patch(f"/v1/debtors/{d}/contact-points/{cp['id']}",
                               json={"consent": "revoked"})
    assert r.status_code == 200, r.text
    assert await segment_of(tenant, d) == "rest"  # a consent change re-evaluates at once
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await reevaluate_debtor(session, tenant.tenant_id, d, today()) == 0
    moves = (await tenant.api.get("/v1/segments/history", params={"debtor_id": d})).json()
    assert [(m["from_segment"], m["to_segment"]) for m in moves["data"]] == [
        (None, "whatsapp"), ("whatsapp", "paid_30"), ("paid_30", "whatsapp"),
        ("whatsapp", "rest")]
