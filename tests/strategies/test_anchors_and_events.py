"""The anchors a promise, a plan or one obligation give a step, and the replanning of one
debtor in the transaction of the event that changed them (no planner pass in between)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from sqlalchemy import select

from cartera import clock
from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.portfolio.models import Debtor
from cartera.segmentation.models import Placement
from cartera.strategies.planner import plan_tenant
from tests.conftest import TenantClient
from tests.segmentation.test_segments import today
from tests.strategies.helpers import (
    actions,
    enrollments,
    late_debtor,
    message_step,
    segments,
    strategy,
    template,
)


async def test_a_promise_plans_its_reminder_at_once(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "promises", [seg["late"]], [
        message_step("remind", sms, anchor="promise_date", offset=-1)])
    d = await late_debtor(tenant, "P")
    other = await late_debtor(tenant, "Q")
    # Enrolled when their debt made them late (the chain of the obligation), but nothing
    # is planned: there is no promise to anchor the step.
    assert {e["debtor_id"] for e in await enrollments(tenant)} == {d, other}
    assert await actions(tenant) == []
    due = today() + timedelta(days=1)
    r = await tenant.api.post("/v1/promises", json={
        "debtor_id": d, "currency": "PEN", "amount": "50.00", "promised_date": due.isoformat()})
    assert r.status_code == 201, r.text
    got = await actions(tenant)
    assert [(x["debtor_id"], x["step_key"], x["anchor_on"], x["due_on"]) for x in got] == [
        (d, "remind", due.isoformat(), today().isoformat())]


async def test_the_next_installment_anchors_a_step(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "plans", [seg["late"]], [
        message_step("before", sms, anchor="next_installment_date", offset=-2)])
    d = await late_debtor(tenant, "I")
    first = today() + timedelta(days=2)
    r = await tenant.api.post("/v1/arrangements", json={
        "debtor_id": d, "currency": "PEN", "installments": [
            {"due_date": first.isoformat(), "amount": "50.00"},
            {"due_date": (first + timedelta(days=30)).isoformat(), "amount": "50.00"}]})
    assert r.status_code == 201, r.text
    got = await actions(tenant, debtor_id=d)
    assert [(x["anchor_on"], x["due_on"]) for x in got] == [
        (first.isoformat(), today().isoformat())]


async def test_one_obligation_anchors_a_step(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "loans", [seg["late"]], [
        message_step("loan", sms, anchor="obligation_due_date", offset=-3,
                     obligation_product="loan")])
    d = await late_debtor(tenant, "O")  # an invoice 10 days late, no product
    assert await actions(tenant, debtor_id=d) == []
    due = today() + timedelta(days=3)
    r = await tenant.api.post("/v1/obligations", json={
        "external_ref": "O-loan", "debtor_id": d, "kind": "invoice", "product": "loan",
        "currency": "PEN", "original_amount": "300.00", "due_date": due.isoformat()})
    assert r.status_code == 201, r.text
    got = await actions(tenant, debtor_id=d)
    assert [(x["anchor_on"], x["due_on"]) for x in got] == [
        (due.isoformat(), today().isoformat())]
    nxt = await tenant.api.get(f"/v1/debtors/{d}/next-action")
    assert nxt.status_code == 200, nxt.text


async def test_anchor_validation_names_the_path(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    for step, code, param in (
            (message_step("a", sms, anchor="obligation_due_date"),
             "obligation_product_required", "steps[0].obligation_product"),
            (message_step("a", sms, obligation_product="loan"),
             "obligation_product_unused", "steps[0].obligation_product"),
            (message_step("a", sms, anchor="segment_entry", offset=-1),
             "negative_offset", "steps[0].offset_days")):
        r = await tenant.api.post("/v1/strategies", json={
            "code": "bad", "name": "bad", "version": {"segment_ids": [seg["late"]],
                                                      "steps": [step]}})
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["param"]) == (code, param), r.json()
    ok = await tenant.api.post("/v1/strategies", json={
        "code": "ok", "name": "ok", "version": {"segment_ids": [seg["late"]], "steps": [
            message_step("a", sms, anchor="promise_date", offset=-2)]}})
    assert ok.status_code == 201, ok.text


async def test_a_payment_stops_the_journey_in_its_transaction(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=3)],
                   stop_rule={"feature": "days_past_due", "op": "eq", "value": 0})
    d = await late_debtor(tenant, "S")
    (mine,) = await enrollments(tenant)
    assert mine["status"] == "active"
    [planned] = await actions(tenant, debtor_id=d)
    assert planned["status"] == "planned"
    pay = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "100.00",
        "paid_on": today().isoformat()})
    assert pay.status_code == 201, pay.text
    # Paid: no longer in "late", the enrollment exits and its planned action is cancelled.
    (after,) = await enrollments(tenant)
    assert after["status"] in ("exited", "stopped"), after
    [cancelled] = await actions(tenant, debtor_id=d)
    assert cancelled["status"] == "cancelled"


async def test_segment_moves_between_bound_strategies_never_overlap(
        tenant: TenantClient) -> None:
    r = await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "very", "name": "Very late", "rule": {"feature": "days_past_due", "op": "gte",
                                                       "value": 30}},
        {"code": "late", "name": "Late", "rule": {"feature": "days_past_due", "op": "gte",
                                                  "value": 1}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]})
    assert r.status_code == 200, r.text
    seg = {s["code"]: s["id"] for s in r.json()["segments"]}
    sms = await template(tenant)
    steps = [message_step("one", sms), message_step("two", sms, offset=5)]
    late = await strategy(tenant, "late", [seg["late"]], steps)
    very = await strategy(tenant, "very", [seg["very"]], steps)
    d = await late_debtor(tenant, "M", days_late=5)
    older: dict[str, Any] = {"external_ref": "M-old", "debtor_id": d, "kind": "invoice",
                             "currency": "PEN", "original_amount": "10.00",
                             "due_date": (today() - timedelta(days=40)).isoformat()}
    assert (await tenant.api.post("/v1/obligations", json=older)).status_code == 201
    got = sorted((e["strategy_id"], e["status"]) for e in await enrollments(tenant))
    assert got == sorted([(late["id"], "exited"), (very["id"], "active")])


async def test_the_stage_entry_anchors_a_step(tenant: TenantClient, app: Litestar) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "stages", [seg["late"]], [
        message_step("entered", sms, anchor="stage_entry", offset=2)])
    d = await late_debtor(tenant, "G")
    # Enrolled at once, not due before two days after the stage was entered.
    assert {e["debtor_id"] for e in await enrollments(tenant)} == {d}
    assert await actions(tenant) == []
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        entered, zone = (await session.execute(select(
            Placement.stage_set_at, Debtor.timezone).join(Debtor, Debtor.id == Placement.debtor_id)
            .where(Placement.debtor_id == d))).one()
        if session.get_bind().dialect.name != "postgresql":
            zone = "UTC"
        result = await plan_tenant(session, current_host(), tenant.tenant_id,
                                   clock.now() + timedelta(days=2))
    assert result.planned == 1
    got = await actions(tenant, debtor_id=d)
    assert len(got) == 1 and got[0]["step_key"] == "entered"
    # The stage's day (in the debtor's zone on PostgreSQL, UTC on SQLite), two days before.
    assert got[0]["anchor_on"] == entered.astimezone(ZoneInfo(zone)).date().isoformat()
