"""The planner over the real app: enrollment, planning, re-runs, the contact policy, the
gate's verdict, exits and stops, pause/resume/stop, and the explanation of a next action."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.strategies.planner import PASS_WORK_MEM, plan_tenant
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    actions,
    enrollments,
    late_debtor,
    message_step,
    plan,
    segments,
    strategy,
    template,
    transaction_settings,
)


async def test_plan_enrolls_plans_once_and_advances(tenant: TenantClient,
                                                    run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    a = await late_debtor(tenant, "A")
    b = await late_debtor(tenant, "B", phone=False)
    await late_debtor(tenant, "current", days_late=-5)  # not late: segment rest
    s = await strategy(tenant, "early", [seg["late"]], [
        message_step("first", sms, anchor="oldest_unpaid_due_date", offset=3),
        message_step("second", sms, offset=2)])
    result = await plan(tenant, run_jobs)
    assert (result["enrolled"], result["planned"]) == (2, 2)
    got = {x["debtor_id"]: x for x in await actions(tenant)}
    assert set(got) == {a, b}
    assert got[a]["status"] == "planned" and got[a]["step_key"] == "first"
    assert got[a]["verdict"]["decision"] == "allow"
    assert got[b]["status"] == "denied"
    assert [r["code"] for r in got[b]["verdict"]["reasons"]] == ["no_contact_point"]
    assert {e["step_key"] for e in await enrollments(tenant, strategy_id=s["id"])} == {
        "second"}
    # A re-run the same day plans nothing new: "second" waits two days after "first".
    again = await plan(tenant, run_jobs)
    assert (again["enrolled"], again["planned"]) == (0, 0)
    assert len(await actions(tenant)) == 2


async def test_priority_picks_the_one_strategy_that_works_a_debtor(tenant: TenantClient,
                                                                  run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    low = await strategy(tenant, "low", [seg["late"]], [message_step("x", sms)], priority=50)
    high = await strategy(tenant, "high", [seg["late"]], [message_step("y", sms)], priority=10)
    d = await late_debtor(tenant, "P")
    await plan(tenant, run_jobs)
    # "high" (one step) took the debtor and is done with them; "low" does not take them
    # until they enter a segment again.
    mine = [e for e in await enrollments(tenant) if e["debtor_id"] == d]
    assert [(e["strategy_id"], e["status"]) for e in mine] == [(high["id"], "completed")]
    got = await actions(tenant, debtor_id=d)
    assert [(x["strategy_id"], x["status"]) for x in got] == [(high["id"], "planned")]
    assert low["id"] not in {e["strategy_id"] for e in await enrollments(tenant)}


async def test_one_contact_a_day_the_first_step_wins(tenant: TenantClient,
                                                     run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    # Two steps due the same day from different anchors (activation refuses a message 0
    # days after the previous one, so the collision comes from the anchors).
    await strategy(tenant, "s", [seg["late"]], [
        message_step("x", sms), message_step("y", sms, anchor="segment_entry")])
    d = await late_debtor(tenant, "Q")
    await plan(tenant, run_jobs)
    await plan(tenant, run_jobs)  # "y" is due the same day: superseded, not dropped
    got = {x["step_key"]: x for x in await actions(tenant, debtor_id=d)}
    assert got["x"]["status"] == "planned"
    assert got["y"]["status"] == "superseded"
    assert got["y"]["superseded_by"] == got["x"]["id"]
    assert (await actions(tenant, status="superseded"))[0]["id"] == got["y"]["id"]


async def test_next_action_explains_without_writing(tenant: TenantClient,
                                                    run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "E", days_late=10)
    await strategy(tenant, "s", [seg["late"]], [
        message_step("first", sms, anchor="oldest_unpaid_due_date", offset=3)])
    await plan(tenant, run_jobs)  # enrolls and plans "first"
    await strategy(tenant, "t", [seg["late"]], [
        message_step("later", sms, anchor="oldest_unpaid_due_date", offset=30)], priority=1)
    other = await late_debtor(tenant, "F", days_late=1)  # enrolled in "t" at once
    await plan(tenant, run_jobs)
    before = await actions(tenant)
    r = await tenant.api.get(f"/v1/debtors/{other}/next-action")
    assert r.status_code == 200, r.text
    body = r.json()["actions"]
    by_code = {n["strategy_code"]: n for n in body}
    assert by_code["t"]["step_key"] == "later" and by_code["t"]["offset_days"] == 30
    assert by_code["t"]["anchor"] == "oldest_unpaid_due_date"
    assert by_code["t"]["step_date"] > by_code["t"]["anchor_on"]
    assert by_code["t"]["verdict"]["decision"] == "allow"
    assert await actions(tenant) == before  # nothing written
    assert (await tenant.api.get("/v1/debtors/999999/next-action")).status_code == 404
    assert d != other


async def test_leaving_the_segment_exits_and_pause_stop(tenant: TenantClient,
                                                        run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "L")
    k = await late_debtor(tenant, "K")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=5)])
    await plan(tenant, run_jobs)
    mine = {e["debtor_id"]: e for e in await enrollments(tenant)}
    r = await tenant.api.post(f"/v1/enrollments/{mine[k]['id']}/pause", json={})
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    again = await tenant.api.post(f"/v1/enrollments/{mine[k]['id']}/pause", json={})
    assert again.status_code == 409 and again.json()["code"] == "enrollment_not_active"
    r = await tenant.api.post(f"/v1/enrollments/{mine[k]['id']}/resume")
    assert r.json()["status"] == "active"
    # Paying the debt moves the debtor out of "late": the next pass exits them.
    pay = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "100.00",
        "paid_on": mine[d]["entered_on"]})
    assert pay.status_code == 201, pay.text
    await plan(tenant, run_jobs)
    now = {e["debtor_id"]: e for e in await enrollments(tenant)}
    assert now[d]["status"] == "exited"
    r = await tenant.api.post(f"/v1/enrollments/{mine[k]['id']}/stop",
                              json={"reason": "disputed"})
    assert (r.json()["status"], r.json()["reason"]) == ("stopped", "disputed")
    await plan(tenant, run_jobs)  # a stopped enrollment is not restarted in the segment
    assert [e["status"] for e in await enrollments(tenant, debtor_id=k)] == ["stopped"]


async def test_stop_rule_stops_the_enrollment(tenant: TenantClient, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "S", days_late=40)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms, offset=9)],
                   stop_rule={"feature": "days_past_due", "op": "gte", "value": 30})
    await plan(tenant, run_jobs)
    [e] = await enrollments(tenant, debtor_id=d)
    assert (e["status"], e["reason"]) == ("stopped", "the stop rule matched")
    assert await actions(tenant, debtor_id=d) == []


async def test_entry_rule_limits_enrollment(tenant: TenantClient, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "young", days_late=3)
    old = await late_debtor(tenant, "old", days_late=20)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)],
                   entry_rule={"feature": "days_past_due", "op": "gte", "value": 15})
    await plan(tenant, run_jobs)
    assert [e["debtor_id"] for e in await enrollments(tenant)] == [old]


async def test_next_action_predicts_the_plan_and_lists_filter(tenant: TenantClient,
                                                               run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "N", days_late=4)
    s = await strategy(tenant, "s", [seg["late"]], [
        message_step("first", sms, anchor="segment_entry"),
        message_step("second", sms, anchor="oldest_unpaid_due_date", offset=10)])
    await plan(tenant, run_jobs)
    predicted = (await tenant.api.get(f"/v1/debtors/{d}/next-action")).json()["actions"]
    [n] = predicted
    assert (n["step_key"], n["offset_days"]) == ("second", 10)
    assert n["step_date"] > n["anchor_on"]  # due in six days: not planned yet
    [first] = await actions(tenant, debtor_id=d)
    assert first["step_key"] == "first" and first["channel"] == "sms"
    day = first["due_on"]
    assert await actions(tenant, due_from=day, due_to=day, status="planned",
                         strategy_id=s["id"], channel="sms") == [first]
    assert await actions(tenant, status="denied") == []
    r = await tenant.api.get("/v1/actions", params={"due_from": "2026-02-02",
                                                    "due_to": "2026-02-01"})
    assert r.status_code == 422 and r.json()["param"] == "due_from"


async def test_a_whole_pass_runs_without_jit_and_a_one_debtor_replan_keeps_the_settings(
        tenant: TenantClient, app: Litestar) -> None:
    """On PostgreSQL a pass over the portfolio turns JIT off and raises work_mem for its
    transaction (its few big statements were JIT-compiled for seconds each); a one-debtor
    replan, a short statement each, leaves the session's settings alone."""
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: SQLite has no such settings")

        before = await transaction_settings(session)
        assert before != ("off", PASS_WORK_MEM)
        await plan_tenant(session, current_host(), tenant.tenant_id, debtors=1)
        assert await transaction_settings(session) == before
        await plan_tenant(session, current_host(), tenant.tenant_id)
        assert await transaction_settings(session) == ("off", PASS_WORK_MEM)
        await session.rollback()
