"""Replanning one debtor at once, in the transaction of the event that changed them.

The last step of the re-derivation chain (:mod:`cartera.changes`): after a payment or its
reversal, a promise made or broken, an inbound reply, an opt-out, a delivery failure, a
segment or stage change, the planner's pass runs for that debtor alone (the statements of
:mod:`cartera.strategies.planner`, each limited to the debtor): they exit a strategy whose
segments they left, enter the one their new segment is bound to, stop when a stop rule now
matches (paid, promise pending, opted out everywhere...), and their next due step is
planned and gated now.

It takes the debtor's row lock (:func:`cartera.portfolio.locks.lock_debtor_rows`, which a
money write or a summary refresh of the chain holds already), so two events of one debtor
replan one after the other, the second seeing what the first did; then the tenant's
strategy lock *shared*: replannings of different debtors run side by side, and none runs
during an activation or a whole-portfolio pass (it waits for it; a pass takes no debtor
row lock, so the two orders cannot deadlock).

After the two locks, one select (:func:`_snapshot`) reads what decides which of the pass's
statements can change anything for the debtor: the tenant's zone, the debtor's zone,
placement and live enrollment, their oldest unpaid due date, and the *stamp* of the
tenant's strategy configuration (every version in use with its status and last change,
every strategy's priority and code, every active stage). The configuration itself (the
versions' segments, rules and steps) is cached per process and tenant, and used only while
the stamp read in the transaction equals the cached one: an activation, a retirement, a
change of priority or of the stages, committed by any process, changes the stamp, and the
next replanning loads the configuration again. A statement is issued only when it can
act: the exit when the live enrollment's version no longer binds the placement, the
enrollment when there is no live one and an active version binds the placement, the stop
rule of the live version (when it has one), the plan when the current step is due by the
next opening of its window (anchors the select does not read always issue the plan's
statement). An event that leaves the debtor as they were costs the locks, the select and
the stop rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from cartera import changes, clock
from cartera.db.base import UtcDateTime, table_of
from cartera.plugins.registry import current_host
from cartera.portfolio.locks import lock_debtor_rows
from cartera.segmentation.models import Stage
from cartera.strategies import planner
from cartera.strategies.models import Strategy, StrategyVersion
from cartera.strategies.planner import Config, PlanResult
from cartera.strategies.service import lock_tenant

SKIPPABLE_ANCHORS = frozenset({"oldest_unpaid_due_date", "segment_entry", "stage_entry",
                               "previous_step"})
"""The anchors :func:`_snapshot` reads: a step with another anchor always runs the plan's
statement."""

_STAMP_PG = """
coalesce((SELECT string_agg(v.id || v.status || v.updated_at::text, ',' ORDER BY v.id)
          FROM strategy_versions v
          WHERE v.tenant_id = :t AND v.status IN ('active', 'retired')), '')
|| '/' || coalesce((SELECT string_agg(s.id || ':' || s.priority || ':' || s.code || ':'
                                      || s.updated_at::text, ',' ORDER BY s.id)
                    FROM strategies s WHERE s.tenant_id = :t), '')
|| '/' || coalesce((SELECT string_agg(g.id || ':' || g.code, ',' ORDER BY g.id)
                    FROM stages g WHERE g.tenant_id = :t AND g.active), '')"""
_STAMP_SQLITE = """
coalesce((SELECT group_concat(x, ',') FROM (
          SELECT v.id || v.status || v.updated_at AS x FROM strategy_versions v
          WHERE v.tenant_id = :t AND v.status IN ('active', 'retired') ORDER BY v.id)), '')
|| '/' || coalesce((SELECT group_concat(x, ',') FROM (
          SELECT s.id || ':' || s.priority || ':' || s.code || ':' || s.updated_at AS x
          FROM strategies s WHERE s.tenant_id = :t ORDER BY s.id)), '')
|| '/' || coalesce((SELECT group_concat(x, ',') FROM (
          SELECT g.id || ':' || g.code AS x FROM stages g
          WHERE g.tenant_id = :t AND g.active ORDER BY g.id)), '')"""


@dataclass(frozen=True)
class _Cached:
    stamp: str
    config: Config


_cache: dict[tuple[str, int], _Cached] = {}
"""Per process: (database, tenant) → the tenant's configuration and the stamp it was read
at (never used without comparing the stamp read in the caller's transaction)."""


def clear_cache() -> None:
    """Forget every cached configuration (tests; nothing else needs it)."""
    _cache.clear()


async def load_cached_config(session: AsyncSession, tenant_id: int, stamp: str) -> Config:
    """The tenant's configuration as of ``stamp`` (read in this transaction): every version
    active or retired (a retired one may still hold live enrollments), their strategies and
    the active stages; loaded with three Core selects when the cache has another stamp.
    The versions are transient copies no session tracks, shared read-only."""
    key = _key(session, tenant_id)
    found = _cache.get(key)
    if found is not None and found.stamp == stamp:
        return found.config
    v, s, g = table_of(StrategyVersion), table_of(Strategy), table_of(Stage)
    versions = {r.id: StrategyVersion(
        id=r.id, tenant_id=tenant_id, strategy_id=r.strategy_id, number=r.number,
        status=r.status, segment_ids=list(r.segment_ids or []),
        stage_ids=list(r.stage_ids or []), entry_rule=r.entry_rule, stop_rule=r.stop_rule,
        steps=list(r.steps or [])) for r in (await session.execute(select(
            v.c.id, v.c.strategy_id, v.c.number, v.c.status, v.c.segment_ids, v.c.stage_ids,
            v.c.entry_rule, v.c.stop_rule, v.c.steps).where(
            v.c.tenant_id == tenant_id, v.c.status.in_(("active", "retired")))))}
    strategies = {r.id: Strategy(id=r.id, tenant_id=tenant_id, code=r.code, name=r.name,
                                 priority=r.priority)
                  for r in await session.execute(select(s.c.id, s.c.code, s.c.name,
                                                        s.c.priority).where(
                      s.c.tenant_id == tenant_id))}
    stages = {code: sid for code, sid in (await session.execute(select(g.c.code, g.c.id)
              .where(g.c.tenant_id == tenant_id, g.c.active))).all()}
    config = Config(versions, strategies, stages)
    _cache[key] = _Cached(stamp, config)
    return config


def _key(session: AsyncSession, tenant_id: int) -> tuple[str, int]:
    return (session.get_bind().engine.url.render_as_string(hide_password=True), tenant_id)


def _cached_in_use(session: AsyncSession, tenant_id: int) -> bool:
    found = _cache.get(_key(session, tenant_id))
    return found is not None and bool(found.config.versions)


@dataclass(frozen=True)
class Snapshot:
    """What :func:`_snapshot` reads of the tenant and the debtor."""

    stamp: str
    tenant_zone: str
    zone: str
    segment_id: int | None
    stage_id: int | None
    stage_set_at: datetime | None
    oldest: date | None
    enrollment_id: int | None
    version_id: int | None
    step_index: int | None
    status: str | None
    entered_on: date | None
    last_step_on: date | None


_SNAPSHOT = """
SELECT coalesce((SELECT tz.timezone FROM tenants tz WHERE tz.id = :t), 'UTC') AS tenant_zone,
       d.timezone AS zone, pl.segment_id, pl.stage_id, pl.stage_set_at,
       (SELECT min(b.oldest_unpaid_due_date) FROM debtor_balances b
        WHERE b.tenant_id = :t AND b.debtor_id = d.id) AS oldest,
       e.id AS enrollment_id, e.version_id, e.step_index, e.status, e.entered_on,
       e.last_step_on, {stamp} AS stamp
FROM debtors d
LEFT JOIN debtor_placements pl ON pl.debtor_id = d.id
LEFT JOIN enrollments e ON e.debtor_id = d.id AND e.tenant_id = :t
                       AND e.status IN ('active', 'paused')
WHERE d.id = :d AND d.tenant_id = :t"""
_COLUMNS: dict[str, TypeEngine[Any]] = {"stage_set_at": UtcDateTime(), "oldest": Date(),
                                        "entered_on": Date(), "last_step_on": Date()}
_statements = {dialect: text(_SNAPSHOT.format(stamp=stamp)).columns(**_COLUMNS)
               for dialect, stamp in (("postgresql", _STAMP_PG), ("sqlite", _STAMP_SQLITE))}


async def _snapshot(session: AsyncSession, tenant_id: int, debtor_id: int) -> Snapshot | None:
    """One select (after the locks): the configuration's stamp, the tenant's zone, and the
    debtor's zone, placement, live enrollment (one at most: ``uq_enrollments_live``) and
    oldest unpaid due date. None when the debtor is not the tenant's."""
    stmt = _statements["postgresql" if session.get_bind().dialect.name == "postgresql"
                       else "sqlite"]
    row = (await session.execute(stmt, {"t": tenant_id, "d": debtor_id})).first()
    if row is None:
        return None
    return Snapshot(row.stamp or "", row.tenant_zone, row.zone, row.segment_id,
                    row.stage_id, row.stage_set_at, row.oldest, row.enrollment_id,
                    row.version_id, row.step_index, row.status, row.entered_on,
                    row.last_step_on)


def binds(v: StrategyVersion, snap: Snapshot) -> bool:
    """:func:`cartera.strategies.planner.bound` for the debtor's placement."""
    if snap.segment_id is None or snap.segment_id not in v.segment_ids:
        return False
    return not v.stage_ids or snap.stage_id in v.stage_ids


def step_due(cfg: Config, snap: Snapshot, now: datetime, dialect: str) -> bool:
    """Whether the plan's statement may insert an action for the live enrollment: False
    only when it certainly inserts none (the anchor, read by :func:`_snapshot`, plus the
    offset is after the next opening of the step's window), as the statement's condition
    ``anchor <= latest_anchor`` computes it."""
    if snap.status != "active" or snap.version_id is None or snap.step_index is None:
        return False
    v = cfg.versions.get(snap.version_id)
    if v is None or snap.step_index >= len(v.steps):
        return False
    step = v.steps[snap.step_index]
    kind = step["anchor"]
    if kind not in SKIPPABLE_ANCHORS:
        return True
    anchor: date | None
    if kind == "oldest_unpaid_due_date":
        anchor = snap.oldest
    elif kind == "segment_entry":
        anchor = snap.entered_on
    elif kind == "previous_step":
        anchor = snap.last_step_on or snap.entered_on
    else:  # stage_entry: the day in the debtor's zone on PostgreSQL, in UTC on SQLite
        at = snap.stage_set_at
        anchor = None if at is None else (
            at.astimezone(ZoneInfo(snap.zone)) if dialect == "postgresql"
            else at.astimezone(ZoneInfo("UTC"))).date()
    if anchor is None:
        return False
    day, _ = planner.next_opening(now, snap.zone, step["window"])
    return anchor <= day - timedelta(days=step["offset_days"])


async def replan_debtor(session: AsyncSession, tenant_id: int, debtor_id: int) -> PlanResult:
    """Replan one debtor in the caller's transaction (nothing when the tenant has no
    strategy in use). The pass's instant is taken now, after the chain's earlier steps:
    an enrollment ended by it is not older than the segment entry they just recorded.

    The same outcome as :func:`cartera.strategies.planner.plan_tenant` with ``debtors``
    (the pass of one debtor), with only the statements that can change something (see
    the module doc)."""
    await lock_debtor_rows(session, [debtor_id])
    await lock_tenant(session, tenant_id, shared=True)
    now = clock.now()
    result = PlanResult()
    snap = await _snapshot(session, tenant_id, debtor_id)
    if snap is None or not snap.stamp.split("/", 1)[0]:
        return result  # not the tenant's debtor, or no version active or retired
    full = await load_cached_config(session, tenant_id, snap.stamp)
    today = now.astimezone(ZoneInfo(snap.tenant_zone)).date()
    dialect = session.get_bind().dialect.name
    # The versions a one-debtor pass works with: the active ones and the live enrollment's.
    cfg = Config({i: v for i, v in full.versions.items()
                  if v.status == "active" or i == snap.version_id},
                 full.strategies, full.stage_ids)
    live = snap.version_id
    if live is not None:
        v = cfg.versions.get(live)
        if v is None or not binds(v, snap):
            await planner.exit_unbound(session, tenant_id, cfg, now, result, debtor_id)
            live = None
    if live is None:
        bound = {i: v for i, v in cfg.versions.items()
                 if v.status == "active" and binds(v, snap)}
        if bound:
            await planner.enroll(session, tenant_id, Config(bound, cfg.strategies,
                                                           cfg.stage_ids),
                                 today, now, result, debtor_id)
    if result.enrolled:
        await planner.stop_matched(session, tenant_id, cfg, today, now, result, debtor_id)
    elif live is not None:
        await planner.stop_matched(session, tenant_id, cfg, today, now, result, debtor_id,
                                   {live})
    elif result.exited:
        # Exited and enrolled nowhere: the exit's actions are cancelled (stop_matched's
        # tail), no version left to stop or plan.
        await planner.stop_matched(session, tenant_id, Config({}, {}, {}), today, now,
                                   result, debtor_id)
        return result
    else:
        return result
    if result.stopped:
        return result  # their one live enrollment ended: nothing to plan
    if result.enrolled or step_due(cfg, snap, now, dialect):
        await planner.plan_actions(session, tenant_id, cfg, now, result, debtor_id)
    if result.planned:
        # Only a new action has rivals to settle, a step to advance past and a gate to pass.
        await planner.supersede(session, tenant_id, today - timedelta(days=1), now, result,
                                debtor_id)
        await planner.advance(session, tenant_id, cfg, now, result, debtor_id)
        await planner.gate_planned(session, current_host(), tenant_id, cfg, now, result,
                                   debtor_id)
    return result


async def replan_within(session: AsyncSession, tenant_id: int,
                        within: tuple[int, int]) -> PlanResult:
    """The planner's pass over the debtor ids ``within`` ``[low, high)`` (a bulk load's),
    in the caller's transaction: every statement of the pass limited to them, set-based.
    It holds the tenant's strategy lock exclusive, as a whole-portfolio pass does (no
    replanning of one debtor, pass or activation runs beside it; it takes no debtor row
    lock). Nothing when the tenant has no strategy in use."""
    in_use = await session.scalar(select(StrategyVersion.id).where(
        StrategyVersion.tenant_id == tenant_id,
        StrategyVersion.status.in_(("active", "retired"))).limit(1))
    if in_use is None:
        return PlanResult()
    await lock_tenant(session, tenant_id)
    return await planner.plan_tenant(session, current_host(), tenant_id,
                                     debtors=within)


@changes.step("plan")
async def rederive_plan(session: AsyncSession, change: changes.Change) -> None:
    """The chain's last step: the debtor's enrollment and next actions. A bulk load's
    debtors (``within``) are replanned in one pass restricted to them; another change of
    many debtors at once is left to the tenant's next pass; a debtor being deleted takes
    their enrollments and actions with them (foreign keys)."""
    if change.debtor_id is None:
        if change.within is not None:
            await replan_within(session, change.tenant_id, change.within)
        return
    if change.kind == "deleted":
        return
    if _cached_in_use(session, change.tenant_id):
        # Versions are never deleted: a tenant whose cached configuration has some still
        # has them (and should it not, the replanning's own select finds out).
        await replan_debtor(session, change.tenant_id, change.debtor_id)
        return
    in_use = await session.scalar(select(StrategyVersion.id).where(
        StrategyVersion.tenant_id == change.tenant_id,
        StrategyVersion.status.in_(("active", "retired"))).limit(1))
    if in_use is None:  # a tenant without strategies pays one indexed look-up
        return
    await replan_debtor(session, change.tenant_id, change.debtor_id)
