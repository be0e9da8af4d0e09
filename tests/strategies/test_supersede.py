"""The contact policy's one message per debtor and local day, over many competing actions:
the winner of each day is the one the rule names (dispatched first, then the lower strategy
priority, then the older action), whatever the number of rivals and debtors."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar
from sqlalchemy import delete, insert, select, update

from cartera import clock
from cartera.db.base import table_of
from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.portfolio.models import Debtor
from cartera.strategies.models import Action, Enrollment
from cartera.strategies.planner import COMPETING, PlanResult, plan_tenant, supersede
from cartera.tenants.models import Tenant
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template

STATUSES = ("planned", "planned", "planned", "deferred", "dispatched", "denied", "done",
            "cancelled", "superseded")


def expected(rows: list[dict[str, Any]], since: Any,
             debtors: set[int] | None) -> dict[int, tuple[str, int | None]]:
    """(status, superseded_by) of every action after the contact policy, by the rule."""
    out = {r["id"]: (r["status"], r["superseded_by"]) for r in rows}
    days: dict[tuple[int, Any], list[dict[str, Any]]] = {}
    for r in rows:
        if r["kind"] == "message" and r["status"] in COMPETING and r["due_on"] >= since \
                and (debtors is None or r["debtor_id"] in debtors):
            days.setdefault((r["debtor_id"], r["due_on"]), []).append(r)
    for rivals in days.values():
        best = min(rivals, key=lambda r: (r["status"] != "dispatched", r["priority"], r["id"]))
        for r in rivals:
            if r["status"] == "planned" and r["id"] != best["id"]:
                out[r["id"]] = ("superseded", best["id"])
    return out


async def test_supersede_names_the_rules_winner_over_many_rivals(
        app: Litestar, make_tenant: Any) -> None:
    t = await make_tenant()
    seg = await segments(t)
    sms = await template(t)
    for i in range(8):
        await late_debtor(t, f"S{i}")
    await strategy(t, "a", [seg["late"]], [message_step("one", sms)], priority=1)
    sm = app.state.ctx.sessionmaker
    async with tenant_session(sm, t.tenant_id) as session:
        await plan_tenant(session, current_host(), t.tenant_id)
    now = clock.now()
    today = now.date()
    since = today - timedelta(days=1)
    rng = random.Random(12)
    a, e = table_of(Action), table_of(Enrollment)
    async with tenant_session(sm, t.tenant_id) as session:
        await session.execute(delete(a).where(a.c.tenant_id == t.tenant_id))
        enrolled = (await session.execute(select(e.c.id, e.c.debtor_id, e.c.strategy_id,
                                                 e.c.version_id).where(
            e.c.tenant_id == t.tenant_id))).all()
        assert len(enrolled) == 8
        rows = []
        for en in enrolled:
            # A day before ``since`` (left alone) and three days from it.
            for day in (since - timedelta(days=1), since, today, today + timedelta(days=1)):
                for step in range(rng.randint(1, 8)):
                    rows.append({
                        "tenant_id": t.tenant_id, "debtor_id": en.debtor_id,
                        "enrollment_id": en.id, "strategy_id": en.strategy_id,
                        "version_id": en.version_id, "priority": rng.choice((1, 2, 2, 3)),
                        "step_index": step, "step_key": f"k{step}",
                        "kind": "message" if rng.random() < 0.85 else "task",
                        "channel": "sms", "due_on": day, "planned_at": now,
                        "status": rng.choice(STATUSES), "superseded_by": None,
                        "attempt": 0, "created_at": now, "updated_at": now})
        rng.shuffle(rows)  # ids do not follow the debtors or the days
        await session.execute(insert(a), rows)

    async def state() -> list[dict[str, Any]]:
        async with tenant_session(sm, t.tenant_id) as session:
            return [dict(r._mapping) for r in (await session.execute(select(
                a.c.id, a.c.debtor_id, a.c.due_on, a.c.kind, a.c.status, a.c.priority,
                a.c.superseded_by).where(a.c.tenant_id == t.tenant_id))).all()]

    before = await state()
    # The debtors a select names (a staged pass's ``rivals``): their days only.
    named = [enrolled[1], enrolled[5]]
    want = expected(before, since, {en.debtor_id for en in named})
    async with tenant_session(sm, t.tenant_id) as session:
        result = PlanResult()
        await supersede(session, t.tenant_id, since, now, result, rivals=select(
            e.c.debtor_id).where(e.c.id.in_([en.id for en in named])))
    after = await state()
    assert {r["id"]: (r["status"], r["superseded_by"]) for r in after} == want
    assert result.superseded == sum(1 for r in before if want[r["id"]][0] != r["status"]) > 0
    before = after
    one = enrolled[3].debtor_id
    # One debtor's pass (the replanning of an event) touches that debtor's days only.
    want = expected(before, since, {one})
    async with tenant_session(sm, t.tenant_id) as session:
        result = PlanResult()
        await supersede(session, t.tenant_id, since, now, result, one)
    after = await state()
    assert {r["id"]: (r["status"], r["superseded_by"]) for r in after} == want
    assert result.superseded == sum(1 for r in before if want[r["id"]][0] != r["status"])
    # Then the tenant's pass: every debtor's days from ``since`` on.
    want = expected(after, since, None)
    async with tenant_session(sm, t.tenant_id) as session:
        result = PlanResult()
        await supersede(session, t.tenant_id, since, now, result)
    final = await state()
    assert {r["id"]: (r["status"], r["superseded_by"]) for r in final} == want
    changed = sum(1 for r in after if want[r["id"]][0] != r["status"])
    assert result.superseded == changed > 5
    # A second pass finds nothing left to supersede.
    async with tenant_session(sm, t.tenant_id) as session:
        result = PlanResult()
        await supersede(session, t.tenant_id, since, now, result)
    assert result.superseded == 0


async def test_a_debtor_two_days_behind_the_tenant_gets_one_message_that_day(
        app: Litestar, make_tenant: Any) -> None:
    """The tenant in Kiritimati (UTC+14), the debtor in Pago Pago (UTC-11): at 10:30 UTC the
    debtor's local day is the tenant's minus two. A message already dispatched that local
    day: the step planned for the same day is superseded by it, not sent the same day (the
    contact policy looked from the tenant's day minus one only, and on PostgreSQL the
    pre-insert gate took it for uncontested)."""
    t = await make_tenant()
    seg = await segments(t)
    sms = await template(t)
    debtor_id = await late_debtor(t, "FAR")
    await strategy(t, "a", [seg["late"]], [message_step("one", sms),
                                           message_step("two", sms, offset=1)], priority=1)
    sm = app.state.ctx.sessionmaker
    d, a = table_of(Debtor), table_of(Action)
    async with tenant_session(sm, t.tenant_id) as session:
        await session.execute(update(Tenant).where(Tenant.id == t.tenant_id)
                              .values(timezone="Pacific/Kiritimati"))
        await session.execute(update(d).where(d.c.id == debtor_id)
                              .values(timezone="Pacific/Pago_Pago"))
    now = datetime.combine(clock.now().date() + timedelta(days=1), time(10, 30), UTC)
    local = now.astimezone(ZoneInfo("Pacific/Pago_Pago")).date()
    assert (now.astimezone(ZoneInfo("Pacific/Kiritimati")).date() - local).days == 2
    e = table_of(Enrollment)
    for _ in range(2):  # enrolled (on the tenant's day, ahead of theirs), then step one
        async with tenant_session(sm, t.tenant_id) as session:
            await plan_tenant(session, current_host(), t.tenant_id, now - timedelta(days=3))
            await session.execute(update(e).where(e.c.tenant_id == t.tenant_id).values(
                entered_on=local - timedelta(days=5)))
    async with tenant_session(sm, t.tenant_id) as session:
        first = (await session.execute(select(a).where(a.c.tenant_id == t.tenant_id))).one()
        rival = {**first._mapping, "step_index": 7, "step_key": "other", "due_on": local,
                 "status": "dispatched", "verdict": None}
        del rival["id"]
        rival_id = await session.scalar(insert(a).values(rival).returning(a.c.id))
    async with tenant_session(sm, t.tenant_id) as session:
        await plan_tenant(session, current_host(), t.tenant_id, now)
    async with tenant_session(sm, t.tenant_id) as session:
        two = (await session.execute(select(a.c.due_on, a.c.status, a.c.superseded_by)
                                     .where(a.c.tenant_id == t.tenant_id,
                                            a.c.step_key == "two"))).one()
    assert two.due_on == local
    assert (two.status, two.superseded_by) == ("superseded", rival_id)
