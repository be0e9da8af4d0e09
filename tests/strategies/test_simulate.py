"""Simulation: N days of planning reported per day, and no row of the database changed."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from cartera import clock
from cartera.compliance.models import ComplianceDecision
from cartera.db.engine import tenant_session
from cartera.jobs.runner import execute
from cartera.messaging.models import Interaction
from cartera.plugins.registry import current_host
from cartera.strategies import simulate as simulate_module
from cartera.strategies.models import Action
from cartera.strategies.planner import plan_tenant
from cartera.strategies.simulate import WORK_MEM, simulate, unit_prices
from tests.conftest import TenantClient
from tests.reads.test_reads_write_nothing import changed, snapshot
from tests.strategies.helpers import (
    ALWAYS,
    late_debtor,
    message_step,
    segments,
    strategy,
    template,
    transaction_settings,
)


async def test_simulation_advances_day_by_day_and_writes_nothing(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "A")
    await late_debtor(tenant, "B", phone=False)
    s = await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                                   message_step("two", sms, offset=2)])
    await run_jobs()
    before = await snapshot(app)
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/simulate", json={"days": 5})
    assert r.status_code == 200, r.text
    days = r.json()["days"]
    assert len(days) == 5
    assert days[0]["actions_per_channel"] == {"sms": 1}
    assert days[0]["statuses"] == {"planned": 1, "denied": 1}
    assert days[0]["reasons"] == {"denied:no_contact_point": 1}
    assert days[1]["statuses"] == {}
    assert days[2]["actions_per_channel"] == {"sms": 1}
    assert changed(before, await snapshot(app)) == {}
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/simulate", json={"days": 91})
    assert r.status_code == 422 and r.json()["param"] == "days", r.text


async def test_the_whole_configuration_simulates_as_a_job_with_costs(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    """Every active strategy at once, priorities applied (the lower one never takes the
    debtors: one live journey each), the task steps counted, the cost per channel from the
    tenant's price hint (no provider price observed), progress per day on the job; no row
    of the tenant changes (only the job's own row)."""
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "A")
    await late_debtor(tenant, "B")
    # One live journey per debtor: the best-priority strategy takes them, the other never
    # does; inside it, two contacts due the same day (from different anchors) compete.
    await strategy(tenant, "first", [seg["late"]], [
        message_step("one", sms), message_step("two", sms, anchor="segment_entry"),
        {"key": "call", "kind": "task", "task": {"queue": "calls"}, "window": ALWAYS,
         "anchor": "segment_entry", "offset_days": 0}], priority=1)
    await strategy(tenant, "second", [seg["late"]], [message_step("one", sms)], priority=2)
    r = await tenant.api.put("/v1/strategies/settings", json={
        "plan_hour": 6, "channel_prices": {"sms": {"amount": "0.0333", "currency": "EUR"}}})
    assert r.status_code == 200, r.text
    await run_jobs()
    before = await snapshot(app)
    r = await tenant.api.post("/v1/strategies/simulate", json={"days": 3})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    early = await tenant.api.get(f"/v1/strategies/simulations/{job_id}")
    assert (early.status_code, early.json()["code"]) == (409, "simulation_not_ready")
    # Only the simulation runs: the database is shared by the session on PostgreSQL, and
    # another test's job (a held send waking up) may come due meanwhile.
    await execute(app.state.ctx.sessionmaker, job_id, claim=True)
    job = (await tenant.api.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded", job
    assert (job["progress_done"], job["progress_total"]) == (3, 3), job
    r = await tenant.api.get(f"/v1/strategies/simulations/{job_id}")
    assert r.status_code == 200, r.text
    sim = r.json()
    day = sim["days"][0]
    assert day["per_strategy"] == {"first": 2}, day
    assert day["actions_per_channel"] == {"sms": 2}
    assert [d["actions_per_channel"] for d in sim["days"]] == [
        {"sms": 2}, {"sms": 2}, {"task": 2}]
    assert day["cost_per_channel"] == {"sms": {"amount": "0.0666", "currency": "EUR"}}
    assert sim["prices"]["sms"] == {"amount": "0.0333", "currency": "EUR",
                                    "source": "setting", "observed": None}
    assert sim["total_cost"]["sms"]["currency"] == "EUR"
    assert sim["unpriced"] == []
    assert set(changed(before, await snapshot(app))) <= {"jobs"}
    other = await make_other_simulation_id(tenant)
    assert (await tenant.api.get(f"/v1/strategies/simulations/{other}")).status_code == 404


async def make_other_simulation_id(t: TenantClient) -> int:
    """A job of another kind is not a simulation."""
    r = await t.api.post("/v1/strategies/plan")
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


async def test_observed_provider_prices_come_before_the_hint(
        tenant: TenantClient, app: Litestar) -> None:
    d = await late_debtor(tenant, "P")
    for cost in (3, 5):
        r = await tenant.api.post("/v1/interactions", json={
            "debtor_id": d, "channel": "voice", "outcome": "no_answer", "note": "rang"})
        assert r.status_code == 201, r.text
        async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
            await session.execute(update(Interaction).where(
                Interaction.id == r.json()["id"]).values(cost_minor=cost, cost_currency="PEN"))
    r = await tenant.api.put("/v1/strategies/settings", json={
        "plan_hour": 6, "channel_prices": {"voice": {"amount": "9", "currency": "PEN"},
                                           "email": {"amount": "0.001", "currency": "USD"}}})
    assert r.status_code == 200, r.text
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        prices = await unit_prices(session, tenant.tenant_id, clock.now())
    assert (prices["voice"].amount, prices["voice"].currency, prices["voice"].source,
            prices["voice"].observed) == ("0.04", "PEN", "observed", 2)
    assert (prices["email"].amount, prices["email"].source) == ("0.001", "setting")
    assert "sms" not in prices


async def test_executed_steps_count_as_done_and_only_stage_changes_run(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    """A stage change step runs inside the simulation (its effect is read by the next
    days); a task step is counted done on its day without its task written; the day
    after holds neither again."""
    seg = await segments(tenant)
    await late_debtor(tenant, "S")
    s = await strategy(tenant, "legal", [seg["late"]], [
        {"key": "to_legal", "kind": "stage_change", "stage_code": "judicial",
         "window": ALWAYS},
        {"key": "call", "kind": "task", "task": {"queue": "calls"}, "window": ALWAYS,
         "offset_days": 1}])
    await run_jobs()
    before = await snapshot(app)
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/simulate", json={"days": 3})
    assert r.status_code == 200, r.text
    days = r.json()["days"]
    assert [(d["actions_per_channel"], d["statuses"]) for d in days] == [
        ({"stage_change": 1}, {"done": 1}), ({"task": 1}, {"done": 1}), ({}, {})]
    assert changed(before, await snapshot(app)) == {}


async def test_the_transaction_settings_end_with_the_simulation(
        tenant: TenantClient, app: Litestar) -> None:
    """On PostgreSQL the simulation turns JIT off and raises work_mem for its savepoint
    only: the caller's transaction has its own settings back."""
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: SQLite has no such settings")

        before = await transaction_settings(session)
        seen: list[tuple[str, str]] = []

        async def progress(done: int, total: int) -> None:
            seen.append(await transaction_settings(session))

        await simulate(session, current_host(), tenant.tenant_id, None, 2, progress)
        assert seen == [("off", WORK_MEM)] * 2
        assert await transaction_settings(session) == before


async def test_a_pass_without_record_keeps_the_verdicts_but_writes_no_decision_rows(
        tenant: TenantClient, app: Litestar) -> None:
    """``plan_tenant(record=False)`` (the simulation's passes) judges and writes the
    verdicts on the actions exactly as a recorded pass, with no row in the decision log;
    the same pass recorded writes one per reason."""
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "A")
    await late_debtor(tenant, "B", phone=False)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    found: dict[bool, tuple[list[tuple[Any, ...]], int]] = {}
    for record in (False, True):
        async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
            savepoint = await session.begin_nested()
            await plan_tenant(session, current_host(), tenant.tenant_id, record=record)
            verdicts = sorted((r[0], r[1], json.dumps(r[2], sort_keys=True))
                              for r in (await session.execute(select(
                                  Action.step_key, Action.status, Action.verdict))).all())
            logged = int(await session.scalar(
                select(func.count()).select_from(ComplianceDecision)) or 0)
            await savepoint.rollback()
        found[record] = (verdicts, logged)
    assert [status for _, status, _ in found[False][0]] == ["denied", "planned"]
    assert found[False][0] == found[True][0]
    assert (found[False][1], found[True][1] > 0) == (0, True)


async def test_the_references_are_deferred_inside_the_simulation_only(
        tenant: TenantClient, app: Litestar) -> None:
    """On PostgreSQL the references of enrollments and actions are not checked while the
    simulation runs (deferred, and dropped with its savepoint), and are checked again, at
    once, as soon as it returns."""
    seg = await segments(tenant)
    sms = await template(tenant)
    debtor_id = await late_debtor(tenant, "R")
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: SQLite has no SET CONSTRAINTS")
        orphan = text(
            "INSERT INTO actions (tenant_id, debtor_id, enrollment_id, strategy_id, "
            "version_id, priority, step_index, step_key, kind, due_on, planned_at, status, "
            "attempt, created_at, updated_at) VALUES (:t, :d, -1, 1, 1, 1, 0, 'x', "
            "'message', CURRENT_DATE, now(), 'done', 0, now(), now())")
        inside: list[str] = []

        async def progress(done: int, total: int) -> None:
            nested = await session.begin_nested()
            try:
                await session.execute(orphan, {"t": tenant.tenant_id, "d": debtor_id})
                inside.append("accepted")
            except IntegrityError:
                inside.append("refused")
            finally:
                await nested.rollback()

        await simulate(session, current_host(), tenant.tenant_id, None, 2, progress)
        assert inside == ["accepted", "accepted"]
        nested = await session.begin_nested()
        with pytest.raises(IntegrityError):
            await session.execute(orphan, {"t": tenant.tenant_id, "d": debtor_id})
        await nested.rollback()


async def test_exit_and_enroll_only_for_moved_debtors_give_the_full_passes_figures(
        tenant: TenantClient, app: Litestar, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After its first day the simulation exits and enrolls only the debtors whose
    placement moved the day before (``plan_tenant(moved=...)``): debtors falling due
    during the simulated days leave the ``rest`` strategy and enter the ``late`` one on
    the day they do, with the same figures, day by day, as full passes give."""
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "L")  # late from the start
    await late_debtor(tenant, "N1", days_late=-1)  # falls due during the simulation
    await late_debtor(tenant, "N3", days_late=-3)
    await late_debtor(tenant, "N9", days_late=-9)  # after its end
    await strategy(tenant, "late", [seg["late"]], [message_step("one", sms),
                                                   message_step("two", sms, offset=2)],
                   priority=1)
    await strategy(tenant, "rest", [seg["rest"]], [
        message_step("early", sms, channel="sms"),
        {"key": "call", "kind": "task", "task": {"queue": "calls"}, "window": ALWAYS,
         "anchor": "previous_step", "offset_days": 3}], priority=2)
    await run_jobs()
    seen: list[Any] = []
    real = simulate_module.plan_tenant

    async def full(*args: Any, moved: Any = None, **kw: Any) -> Any:
        seen.append(moved)
        return await real(*args, **kw)

    async def run() -> list[dict[str, Any]]:
        async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
            out = await simulate(session, current_host(), tenant.tenant_id, None, 7)
            await session.rollback()
        return [msgspec.to_builtins(d) for d in out.days]

    restricted = await run()
    monkeypatch.setattr(simulate_module, "plan_tenant", full)
    assert await run() == restricted
    assert seen[0] is None and all(m is not None for m in seen[1:])
    # The debtors falling due move from "rest" to "late" on simulated days after the
    # first (the two runs agreeing on those days is what the restriction must keep).
    per_strategy = [d["per_strategy"] for d in restricted]
    assert per_strategy[:5] == [{"late": 1, "rest": 3}, {}, {"late": 2}, {"rest": 2},
                                {"late": 1}], per_strategy
    assert sum(d.get("late", 0) for d in per_strategy[1:]) >= 3, per_strategy
