"""The tenant's contact policy beyond one contact a day: a minimum gap and a weekly cap,
applied by the planner and again at dispatch, counting the contacts made as the gate does;
a contact held back is deferred with the reason, never dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar

from cartera.strategies.dispatch import queue_due_dispatches
from cartera.strategies.policy import ContactPolicy, check, place
from tests.conftest import TenantClient
from tests.strategies.helpers import (
    actions,
    late_debtor,
    message_step,
    plan,
    provider,
    segments,
    sms_integration,
    strategy,
    template,
)

__all__ = ["provider"]  # the fixture, used by name
T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_the_gap_holds_a_contact_until_the_previous_one_plus_the_gap() -> None:
    rules = ContactPolicy(min_gap_hours=48)
    held = check(rules, [T0], T0 + timedelta(hours=47))
    assert held is not None and held.code == "min_contact_gap"
    assert held.until == T0 + timedelta(hours=48)
    assert check(rules, [T0], T0 + timedelta(hours=48)) is None
    assert check(rules, [T0 + timedelta(hours=1)], T0) is None  # later contacts: not before


def test_the_weekly_cap_holds_a_contact_until_the_oldest_leaves_the_week() -> None:
    rules = ContactPolicy(weekly_cap=2)
    contacts = [T0, T0 + timedelta(days=2)]
    held = check(rules, contacts, T0 + timedelta(days=3))
    assert held is not None and held.code == "weekly_contact_cap"
    assert held.until == T0 + timedelta(days=7)
    assert check(rules, contacts, T0 + timedelta(days=7)) is None
    assert check(ContactPolicy(weekly_cap=3), contacts, T0 + timedelta(days=3)) is None


def test_place_moves_through_both_rules_and_the_window() -> None:
    rules = ContactPolicy(min_gap_hours=24, weekly_cap=1)

    def next_noon(t: datetime) -> datetime:  # a window opening every day at 12:00
        noon = t.replace(hour=12, minute=0, second=0, microsecond=0)
        return noon if noon >= t else noon + timedelta(days=1)

    at, held = place(rules, [T0], T0 + timedelta(hours=1), next_noon)
    assert at == T0 + timedelta(days=7)
    assert [h.code for h in held] == ["min_contact_gap", "weekly_contact_cap"]
    assert place(ContactPolicy(), [T0], T0, next_noon) == (T0, [])


async def _contact_made(t: TenantClient, debtor_id: int) -> datetime:
    r = await t.api.post("/v1/interactions", json={
        "debtor_id": debtor_id, "channel": "voice", "outcome": "no_answer", "note": "rang"})
    assert r.status_code == 201, r.text
    return datetime.fromisoformat(r.json()["created_at"])


async def _settings(t: TenantClient, **body: Any) -> dict[str, Any]:
    r = await t.api.put("/v1/strategies/settings", json={"plan_hour": 6, **body})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


async def test_settings_keep_the_policy_and_check_prices(tenant: TenantClient) -> None:
    got = await _settings(tenant, min_gap_hours=48, weekly_cap=3,
                          channel_prices={"sms": {"amount": "0.0333", "currency": "EUR"}})
    assert (got["min_gap_hours"], got["weekly_cap"]) == (48, 3)
    assert got["channel_prices"] == {"sms": {"amount": "0.0333", "currency": "EUR"}}
    assert (await tenant.api.get("/v1/strategies/settings")).json() == got
    r = await tenant.api.put("/v1/strategies/settings", json={
        "plan_hour": 6, "channel_prices": {"sms": {"amount": "0.12345678", "currency": "EUR"}}})
    assert (r.status_code, r.json()["param"]) == (422, "channel_prices.sms.amount"), r.text
    r = await tenant.api.put("/v1/strategies/settings", json={"plan_hour": 6,
                                                              "weekly_cap": 0})
    assert (r.status_code, r.json()["param"]) == (422, "weekly_cap"), r.text
    cleared = await _settings(tenant)
    assert (cleared["min_gap_hours"], cleared["weekly_cap"], cleared["channel_prices"]) == (
        None, None, None)


async def test_the_planner_defers_a_contact_within_the_gap(
        tenant: TenantClient, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "G")
    free = await late_debtor(tenant, "F")
    await _settings(tenant, min_gap_hours=48)
    made = await _contact_made(tenant, d)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    result = await plan(tenant, run_jobs)
    assert result["verdicts"]["held_by_policy"] == 1, result
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "deferred", a
    assert datetime.fromisoformat(a["planned_at"]) == made + timedelta(hours=48)
    policy = [r for r in a["verdict"]["reasons"] if r["source"] == "contact_policy"]
    assert [r["code"] for r in policy] == ["min_contact_gap"]
    [b] = await actions(tenant, debtor_id=free)
    assert b["status"] == "planned"


async def test_the_planner_defers_a_contact_over_the_weekly_cap(
        tenant: TenantClient, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "W")
    await _settings(tenant, weekly_cap=2)
    first = await _contact_made(tenant, d)
    await _contact_made(tenant, d)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    await plan(tenant, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "deferred", a
    assert datetime.fromisoformat(a["planned_at"]) == first + timedelta(days=7)
    assert a["verdict"]["reasons"][-1]["code"] == "weekly_contact_cap"


async def test_dispatch_applies_the_policy_again(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any) -> None:
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    d = await late_debtor(tenant, "D")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    await plan(tenant, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "planned"
    # After planning: a call is made and the tenant sets a gap.
    made = await _contact_made(tenant, d)
    await _settings(tenant, min_gap_hours=24)
    await queue_due_dispatches(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "deferred", a
    assert datetime.fromisoformat(a["planned_at"]) == made + timedelta(hours=24)
    assert a["verdict"]["reasons"][-1]["code"] == "min_contact_gap"
    assert provider.requests == []
