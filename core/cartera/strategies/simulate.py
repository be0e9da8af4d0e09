"""Simulation: the planner run day by day over the next N days, and nothing kept.

The whole run happens inside a savepoint that is rolled back at the end, so no row of the
tenant changes (a test compares every table before and after). Each simulated day, as of
that day's planning hour in the tenant's zone:

1. the debtors are re-staged and re-segmented as of that day (days past due grow, buckets
   and stages move: :func:`cartera.segmentation.service.evaluate`, reading the balance
   summary computed for that day);
2. the planner pass runs (:func:`.planner.plan_tenant` with that instant: enrollment,
   exits and stops, planning, contact policy with strategy priorities, the gate with its
   compliance packs, so holidays and windows apply);
3. the contacts planned and allowed for that day are taken as sent (marked dispatched, no
   interaction, nothing sent), and the stage change steps due that day are executed by
   :func:`.execute.execute_due` (inside the savepoint: stages move, and the next days
   re-segment with them; only when a version has such a step). The task and webhook
   steps are not executed nor written: what they would write is read by nothing the next
   simulated days plan with, so :func:`_figures` counts one due by the day's end as
   ``done``, as its execution would have left it.

After the first day, a pass exits and enrolls only the debtors whose placement moved since
the day before (``plan_tenant(moved=...)``, from the placement history past the previous
pass): nothing else changes what those two statements find.

On PostgreSQL the transaction runs without JIT (the passes' statements over a large
portfolio cost enough to be compiled, seconds each on every simulated day) and with a
larger ``work_mem`` (:data:`WORK_MEM`), both ``SET LOCAL``, undone with the savepoint;
the references of the enrollments and actions it writes are deferred
(:data:`DEFERRED`, ``SET CONSTRAINTS``, also undone with the savepoint: never checked),
and the passes write no compliance decision rows (``record=False``: the verdicts stay
on the actions, where the figures read them; nothing reads the decision log).

The figures per day are the actions due that day by status, channel and strategy, with
the reason codes of the deferred and denied ones, and the projected cost per channel:
the contacts that would fire times the channel's unit price (:func:`unit_prices`; each
price says its source).

``POST /v1/strategies/simulate`` runs the whole configuration as a job
(``strategies.simulate``) with progress per simulated day (on PostgreSQL; SQLite has one
writer, so the progress moves at the end) and keeps the result on the job.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import String, and_, case, cast, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock, money
from cartera.db.base import table_of
from cartera.db.engine import tenant_session
from cartera.jobs.models import Job
from cartera.jobs.registry import JobContext, job
from cartera.messaging.models import Interaction
from cartera.plugins.host import PluginHost
from cartera.plugins.registry import current_host
from cartera.segmentation.models import PlacementMove
from cartera.segmentation.service import evaluate
from cartera.strategies import schemas
from cartera.strategies.execute import execute_due
from cartera.strategies.models import (
    Action,
    Enrollment,
    PlannerSettings,
    Strategy,
    StrategyVersion,
)
from cartera.strategies.planner import plan_tenant
from cartera.strategies.service import planner_settings
from cartera.tenants.models import Tenant

KIND = "strategies.simulate"
OBSERVED_DAYS = 90
"""How far back the providers' charges are averaged into a unit price."""
PRICE_PLACES = Decimal("0.000001")
WORK_MEM = "64MB"
"""The simulation transaction's sort and hash memory on PostgreSQL."""
DEFERRED = ("fk_enrollments_tenant_id_debtors", "fk_enrollments_strategy_id_strategies",
            "fk_enrollments_version_id_strategy_versions",
            "fk_actions_enrollment_id_enrollments")
"""The references (deferrable, migrations 0046 and 0047) the simulation defers on PostgreSQL: the
rows it writes are its own planner's, their references right by construction, and
everything is rolled back, so their checks are queued and dropped with the savepoint
instead of run on every insert and on every update of a row the transaction inserted."""
Progress = Callable[[int, int], Awaitable[None]]


async def unit_prices(session: AsyncSession, tenant_id: int,
                      now: datetime) -> dict[str, schemas.UnitPrice]:
    """A unit price per channel: the mean of what the providers charged the tenant on
    that channel over the last :data:`OBSERVED_DAYS` days (``observed``: interactions'
    recorded cost, in the channel's most used currency), else the tenant's price hint
    (``setting``, ``PUT /v1/strategies/settings``). A channel with neither is unpriced."""
    it = table_of(Interaction)
    found: dict[str, schemas.UnitPrice] = {}
    rows = (await session.execute(select(
        it.c.channel, it.c.cost_currency, func.count(), func.sum(it.c.cost_minor)).where(
        it.c.tenant_id == tenant_id, it.c.direction == "outbound",
        it.c.cost_minor.is_not(None), it.c.cost_currency.is_not(None),
        it.c.created_at >= now - timedelta(days=OBSERVED_DAYS))
        .group_by(it.c.channel, it.c.cost_currency))).all()
    for channel, currency, n, total in sorted(rows, key=lambda r: (r[0], -r[2], r[1])):
        if channel in found:
            continue
        mean = (Decimal(int(total)).scaleb(-money.exponent(currency)) / int(n))
        found[channel] = schemas.UnitPrice(
            amount=str(mean.quantize(PRICE_PLACES).normalize()), currency=currency,
            source="observed", observed=int(n))
    hints = await session.scalar(select(PlannerSettings.channel_prices).where(
        PlannerSettings.tenant_id == tenant_id))
    for channel, p in (hints or {}).items():
        found.setdefault(channel, schemas.UnitPrice(amount=p["amount"],
                                                    currency=p["currency"], source="setting"))
    return found


async def simulate(session: AsyncSession, host: PluginHost, tenant_id: int,
                   strategy_id: int | None, days: int,
                   progress: Progress | None = None) -> schemas.SimulationOut:
    """Simulate ``days`` days from today for the whole configuration; the figures cover
    ``strategy_id``'s actions (all strategies when None). Writes nothing."""
    zone = str(await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)))
    hour = (await planner_settings(session, tenant_id)).plan_hour
    start = clock.now().astimezone(ZoneInfo(zone)).date()
    prices = await unit_prices(session, tenant_id, clock.now())
    codes = {s.id: s.code for s in (await session.scalars(select(Strategy))).all()}
    changes_stages = await _changes_stages(session, tenant_id)
    out: list[schemas.SimulatedDay] = []
    savepoint = await session.begin_nested()
    if session.get_bind().dialect.name == "postgresql":
        # For this transaction only (undone by the savepoint's rollback): the passes'
        # statements are costed high enough over a large portfolio that PostgreSQL
        # JIT-compiles them, seconds per statement on every simulated day, and their sorts
        # of every enrollment spill to disk under the default work_mem. The references'
        # checks wait for the savepoint's end, which drops them.
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        await session.execute(text(f"SET CONSTRAINTS {', '.join(DEFERRED)} DEFERRED"))
    ph = table_of(PlacementMove)
    moves_seen: int | None = None
    try:
        for offset in range(days):
            day = start + timedelta(days=offset)
            at = max(clock.now(), datetime.combine(day, time(hour), ZoneInfo(zone)))
            if offset:
                await evaluate(session, tenant_id, day, actor="simulation")
            # After the first day, exit and enroll only for the debtors whose placement
            # moved since the day before (the placement history past the previous pass).
            moved = None if moves_seen is None else select(ph.c.debtor_id).where(
                ph.c.tenant_id == tenant_id, ph.c.id > moves_seen)
            await plan_tenant(session, host, tenant_id, at, record=False, moved=moved)
            moves_seen = int(await session.scalar(select(func.coalesce(func.max(ph.c.id), 0))
                                                  .where(ph.c.tenant_id == tenant_id)) or 0)
            end = datetime.combine(day + timedelta(days=1), time(), ZoneInfo(zone))
            if changes_stages:
                await _execute(session, tenant_id, end)
            out.append(await _figures(session, tenant_id, strategy_id, day, end, prices,
                                      codes))
            await _take_as_sent(session, tenant_id, day, end)
            if progress is not None:
                await progress(offset + 1, days)
    finally:
        await savepoint.rollback()
    totals = _totals(out)
    return schemas.SimulationOut(strategy_id=strategy_id, start=start, days=out,
                                 prices=prices, total_cost=totals,
                                 unpriced=sorted({c for d in out for c in d.unpriced}))


def _cost(n: int, price: schemas.UnitPrice) -> schemas.PriceOut:
    return schemas.PriceOut(amount=str((Decimal(price.amount) * n).quantize(PRICE_PLACES)
                                       .normalize()), currency=price.currency)


def _totals(days: list[schemas.SimulatedDay]) -> dict[str, schemas.PriceOut]:
    sums: dict[str, tuple[Decimal, str]] = {}
    for d in days:
        for channel, c in d.cost_per_channel.items():
            amount, _ = sums.get(channel, (Decimal(0), c.currency))
            sums[channel] = (amount + Decimal(c.amount), c.currency)
    return {ch: schemas.PriceOut(amount=str(a.normalize()), currency=cur)
            for ch, (a, cur) in sorted(sums.items())}


async def _figures(session: AsyncSession, tenant_id: int, strategy_id: int | None,
                   day: date, end: datetime, prices: dict[str, schemas.UnitPrice],
                   codes: dict[int, str]) -> schemas.SimulatedDay:
    """The day's actions, counted by one GROUP BY (the verdicts read once per distinct
    verdict of the deferred and denied ones); a contact deferred to a later instant of
    the same day (the law's morning hour, say) fires that day. A task or webhook step due
    by ``end`` (not of a paused enrollment) counts as ``done``: it is what the engine
    would have executed that day (:data:`NO_EFFECT_READ`, not written)."""
    a, e = table_of(Action), table_of(Enrollment)
    early = a.c.planned_at < end
    executed = and_(a.c.kind.in_(NO_EFFECT_READ), a.c.status == "planned", early,
                    e.c.status != "paused")
    status = case((executed, "done"), else_=a.c.status).label("status")
    verdict = case((a.c.status.in_(("deferred", "denied")), cast(a.c.verdict, String)),
                   else_=None).label("verdict")
    rows = select(status, a.c.channel, a.c.kind, a.c.strategy_id, verdict,
                  and_(a.c.status == "deferred", early).label("fires")).select_from(
        a.join(e, e.c.id == a.c.enrollment_id)).where(a.c.tenant_id == tenant_id,
                                                       a.c.due_on == day)
    if strategy_id is not None:
        rows = rows.where(a.c.strategy_id == strategy_id)
    r = rows.subquery("r")
    stmt = select(*r.c, func.count()).group_by(*r.c)
    per_channel: Counter[str] = Counter()
    per_strategy: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row in (await session.execute(stmt)).all():
        status_, channel, kind, sid, raw, fires, n = tuple(row)
        statuses[status_] += n
        if status_ == "deferred" and fires:
            status_ = "planned"
        if status_ in ("planned", "dispatched", "done") and kind != "wait":
            per_channel[channel or kind] += n
            per_strategy[codes.get(sid, str(sid))] += n
        if status_ == "superseded":
            reasons["superseded:one_contact_a_day"] += n
        elif status_ in ("deferred", "denied") and raw is not None:
            for r in (json.loads(raw) or {}).get("reasons", []):
                reasons[f"{status_}:{r['code']}"] += n
    cost: dict[str, schemas.PriceOut] = {}
    unpriced = []
    for channel, n in per_channel.items():
        if channel in schemas.CHANNELS:
            if channel in prices:
                cost[channel] = _cost(n, prices[channel])
            else:
                unpriced.append(channel)
    return schemas.SimulatedDay(day=day, actions_per_channel=dict(per_channel),
                                statuses=dict(statuses), reasons=dict(reasons),
                                per_strategy=dict(per_strategy), cost_per_channel=cost,
                                unpriced=sorted(unpriced))


NO_EFFECT_READ = ("task", "webhook")
"""Executed step kinds whose effect the simulated days do not read: left ``planned``
(nothing the next simulated days plan with reads whether they ran) and counted as done
by :func:`_figures` on the day they are due."""


async def _changes_stages(session: AsyncSession, tenant_id: int) -> bool:
    """Whether a strategy version of the tenant has a stage change step (the only
    executed steps whose effect the next simulated days read)."""
    for steps in (await session.scalars(select(StrategyVersion.steps).where(
            StrategyVersion.tenant_id == tenant_id))).all():
        if any(s.get("kind") == "stage_change" for s in steps or []):
            return True
    return False


async def _execute(session: AsyncSession, tenant_id: int, end: datetime) -> None:
    """The stage changes due by ``end`` executed (inside the savepoint: stages move)."""
    await execute_due(session, tenant_id, end, limit=10**9, kinds=("stage_change",))


async def _take_as_sent(session: AsyncSession, tenant_id: int, day: Any,
                        end: datetime) -> None:
    """The day's allowed contacts (and those deferred to later that day) become dispatched
    without an interaction (``outcome`` stays null: the contact policy counts them as
    contacts made, see :func:`.policy.planned_instants`)."""
    a = table_of(Action)
    await session.execute(update(a).where(
        a.c.tenant_id == tenant_id, a.c.due_on == day, a.c.kind == "message",
        a.c.verdict.is_not(None),
        or_(a.c.status == "planned", and_(a.c.status == "deferred", a.c.planned_at < end)))
        .values(status="dispatched"))


async def queue_simulation(session: AsyncSession, runner: Any, tenant_id: int,
                           strategy_id: int | None, days: int) -> Job:
    job_row: Job = await runner.enqueue(session, tenant_id, KIND,
                                        {"strategy_id": strategy_id, "days": days})
    return job_row


@job(KIND)
async def simulate_job(ctx: JobContext) -> dict[str, Any]:
    """Run a simulation; progress counts the simulated days; the result is the
    simulation (``GET /v1/strategies/simulations/{simulation_id}``, the job's id)."""
    days = int(ctx.payload["days"])
    await ctx.progress(0, days)
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        result = await simulate(session, current_host(), ctx.tenant_id,
                                ctx.payload.get("strategy_id"), days,
                                ctx.progress if postgres else None)
        await session.rollback()
    await ctx.progress(days, days)
    found: dict[str, Any] = msgspec.to_builtins(result)
    return found

