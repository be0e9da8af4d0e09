"""The planner: one set-based pass per tenant over every enrollment.

A pass, in the caller's transaction and under the tenant's strategy lock
(:func:`~cartera.strategies.service.lock_tenant`), runs a few statements whose number
depends on the tenant's strategy versions, never on its debtors:

1. **exit**: live enrollments whose debtor is no longer in the version's segments (and
   stages) become ``exited``.
2. **enroll**: per active version, by strategy priority, one ``INSERT ... SELECT`` of the
   placed debtors in its segments (and stages) matching its entry rule, with no live
   enrollment (in any strategy: one per debtor, the best priority first) and none
   finished since they entered the segment; then
   **stop**: per version with a stop rule (segment rule language, compiled by
   :class:`cartera.segmentation.rules.CompiledRules`), one UPDATE stops those whose debtor
   matches it; the actions of ended enrollments not yet dispatched are cancelled.
3. **plan**: one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` of the current step of
   every active enrollment whose anchor date plus offset has come by the next opening of
   the step's window in the debtor's zone. That opening (the local day ``due_on`` and the
   instant) depends only on (zone, step, now), so it is computed in Python for the few
   distinct pairs and joined as a small literal table. The unique key ``(enrollment,
   step, due_on)`` makes a re-run, or two runs at once, plan each action once.
4. **contact policy**: at most one message per debtor and local day across strategies:
   one UPDATE joined to a window over the day's competing contacts (``first_value`` per
   debtor and day) marks every planned message that has a better one that day
   (dispatched first, then the lower strategy priority, then the older action)
   ``superseded`` with the winner's id.
   On PostgreSQL the gate (6.) is judged before this insert for the contacts no other
   contact competes with that day, and their verdicts and decision rows are written by
   the insert itself (:func:`pre_gate`); the contested ones are gated after 4. A
   tenant's pass there (:func:`plan_staged`) looks at the days of the contested contacts'
   debtors only, and runs no UPDATE when it planned none (:attr:`PlanResult.rivals`).
5. **advance**: enrollments whose current step got a (not superseded) action move to the
   next step (``last_step_on`` = its day); past the last step they are ``completed`` (one
   write per enrollment whose step moves; only the actions due from the tenant's day
   minus :data:`ADVANCE_DAYS` are read). On PostgreSQL a tenant's pass advances the
   enrollments of the actions no contact policy can supersede in the plan statement
   itself (:func:`plan_staged`), and the separate UPDATE only runs for the rest.
6. **gate**: the messages just planned pass the contact gate
   (:func:`cartera.messaging.gate.decide`). The packs are pure, so the planned contacts
   are grouped by everything the gate reads of them (:func:`gate_groups`: step, instant,
   days past due, the debtor's country, zone, kind and attributes, their contact points
   and recent contacts), read as plain rows by three selects, and the gate runs once per
   group, for its first debtor loaded as the send path loads them; the channel fallback
   moves to the next channel when one is denied; a deferral moves to the earliest lawful
   instant inside the step's window (or is denied with the reasons,
   :func:`fit_to_window`). For the contacts not gated by the insert (all of them on
   SQLite), the verdicts and decision rows are written by one ``UPDATE ... FROM unnest``
   and one ``INSERT ... SELECT`` per 10,000 actions on PostgreSQL, each group's verdict
   sent once (:func:`write_verdicts`).

7. **contact policy, continued**: the tenant's minimum gap between contacts and weekly cap
   (:func:`cartera.strategies.policy.hold_planned`): a planned contact they hold back is
   deferred to the first instant they allow inside its window, with the reason. Applied by
   the daily pass over the tenant; a one-debtor pass leaves it to dispatch, which checks
   the same policy again before anything is sent.

Anchors: each is one column of the plan statement; the oldest unpaid due date, a product's
obligation due date, the pending promise's date and the next installment's due date come
from one ``GROUP BY debtor_id`` aggregate each, joined only when a step in use needs it.

A pass may cover only some debtors (``debtors``: one id or an id range): every statement
above is then limited to them — the replanning of one debtor in the transaction of an
event (:mod:`cartera.strategies.replan`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    table,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.compliance import decisions
from cartera.compliance.service import GatePolicy, load_policy
from cartera.db.base import UtcDateTime, table_of
from cartera.messaging import gate
from cartera.messaging.models import Interaction
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.plugins.host import PluginHost
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from cartera.portfolio.summary import Debtors, only
from cartera.segmentation import rules
from cartera.segmentation.models import Placement, Stage
from cartera.strategies import policy
from cartera.strategies.models import Action, Enrollment, Strategy, StrategyVersion
from cartera.strategies.service import LIVE, lock_tenant
from cartera.tenants.models import Tenant

CONTACT_KINDS = ("message",)
"""Step kinds that contact the debtor (the contact policy and the gate apply)."""
GATE_CHUNK = 1000


@dataclass
class PlanResult:
    exited: int = 0
    stopped: int = 0
    enrolled: int = 0
    planned: int = 0
    superseded: int = 0
    completed: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    advanced: bool = False
    """Set by a pass whose plan statement advanced past every action it had to plan
    (:func:`plan_staged`): :func:`advance` has no action of a current step to look for."""
    rivals: Any = None
    """Set by :func:`plan_staged`: a select of the debtor ids whose contacts it planned
    ungated (each with a rival that day), or False when it planned none. The contact
    policy (:func:`supersede`) then looks at those debtors only: every other contact the
    pass planned was alone that day, and the days of the other debtors were settled by
    the passes that planned their contacts (actions are only inserted by planner passes,
    each followed by :func:`supersede` over its debtors, and no action becomes a competing
    contact again once it is not one). None: every debtor of the pass."""

    def as_dict(self) -> dict[str, Any]:
        return {"exited": self.exited, "stopped": self.stopped, "enrolled": self.enrolled,
                "planned": self.planned, "superseded": self.superseded,
                "completed": self.completed, "verdicts": dict(self.verdicts)}


@dataclass(frozen=True)
class Config:
    """The tenant's versions in use (active, or retired with live enrollments) and their
    strategies."""

    versions: dict[int, StrategyVersion]
    strategies: dict[int, Strategy]
    stage_ids: dict[str, int]

    @property
    def active(self) -> list[StrategyVersion]:
        """Active versions by strategy priority (then id)."""
        found = [v for v in self.versions.values() if v.status == "active"]
        return sorted(found, key=lambda v: (self.strategies[v.strategy_id].priority,
                                            v.strategy_id))


async def load_config(session: AsyncSession, tenant_id: int,
                      debtors: Debtors = None) -> Config:
    """The config (the versions the live enrollments of ``debtors`` use, when given)."""
    e = table_of(Enrollment)
    in_use = select(e.c.version_id).where(e.c.tenant_id == tenant_id, e.c.status.in_(LIVE),
                                          *only(e.c.debtor_id, debtors))
    versions = {v.id: v for v in (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.tenant_id == tenant_id,
        or_(StrategyVersion.status == "active", StrategyVersion.id.in_(in_use))))).all()}
    ids = {v.strategy_id for v in versions.values()}
    strategies = {s.id: s for s in (await session.scalars(select(Strategy).where(
        Strategy.id.in_(ids)))).all()} if ids else {}
    stages = {code: sid for code, sid in (await session.execute(select(Stage.code, Stage.id)
              .where(Stage.tenant_id == tenant_id, Stage.active))).all()}
    return Config(versions, strategies, stages)


def bound(v: StrategyVersion, pl: Any) -> Any:
    """The placement ``pl`` is in the version's segments (and stages)."""
    cond = pl.c.segment_id.in_(list(v.segment_ids))
    if v.stage_ids:
        cond = and_(cond, pl.c.stage_id.in_(list(v.stage_ids)))
    return cond


def _rule_matches(session: AsyncSession, tenant_id: int, raw: dict[str, Any], as_of: date,
                  cfg: Config, path: str, debtors: Debtors = None) -> Any:
    """The debtor ids (among ``debtors``) matching the rule ``raw`` (one set-based select)."""
    compiled = rules.CompiledRules([rules.parse_rule(raw, path)], tenant_id, as_of,
                                   session.get_bind().dialect.name, stage_ids=cfg.stage_ids)
    sel = compiled.select([1], debtors).subquery("m")
    return select(sel.c.debtor_id).where(sel.c.outcome == 1)


# --- 1. exit and stop ---------------------------------------------------------------------

async def exit_unbound(session: AsyncSession, tenant_id: int, cfg: Config, now: datetime,
                       result: PlanResult, debtors: Debtors = None,
                       moved: Any = None) -> None:
    """Live enrollments whose debtor left the version's segments (or stages) exit (only
    among the debtor ids ``moved`` selects, when given: see :func:`plan_tenant`)."""
    if not cfg.versions:
        return
    e, pl = table_of(Enrollment), table_of(Placement)
    still_bound = exists().where(pl.c.debtor_id == e.c.debtor_id, or_(*[
        and_(e.c.version_id == v.id, bound(v, pl)) for v in cfg.versions.values()]))
    exited = await session.execute(update(e).where(
        e.c.tenant_id == tenant_id, e.c.status.in_(LIVE), not_(still_bound),
        *only(e.c.debtor_id, debtors), *among(e.c.debtor_id, moved)).values(
        status="exited", reason="left the strategy's segments or stages", ended_at=now,
        updated_at=now))
    result.exited += int(exited.rowcount or 0)  # type: ignore[attr-defined]


async def stop_matched(session: AsyncSession, tenant_id: int, cfg: Config, today: date,
                       now: datetime, result: PlanResult, debtors: Debtors = None,
                       versions: set[int] | None = None) -> None:
    """Live enrollments whose debtor matches their version's stop rule stop (also those
    enrolled by this pass); the actions of ended enrollments not yet dispatched are
    cancelled."""
    e = table_of(Enrollment)
    for v in cfg.versions.values():
        if v.stop_rule is None or (versions is not None and v.id not in versions):
            continue
        stopped = await session.execute(update(e).where(
            e.c.tenant_id == tenant_id, e.c.version_id == v.id, e.c.status.in_(LIVE),
            *only(e.c.debtor_id, debtors),
            e.c.debtor_id.in_(_rule_matches(session, tenant_id, v.stop_rule, today, cfg,
                                            "stop_rule", debtors))).values(
            status="stopped", reason="the stop rule matched", ended_at=now, updated_at=now))
        result.stopped += int(stopped.rowcount or 0)  # type: ignore[attr-defined]
    if result.exited or result.stopped:
        a = table_of(Action)
        ended = select(e.c.debtor_id, e.c.id).where(e.c.tenant_id == tenant_id,
                                                    e.c.status.in_(("exited", "stopped")),
                                                    *only(e.c.debtor_id, debtors))
        # By (debtor, enrollment): the actions' unique index leads with the debtor (0050).
        await session.execute(update(a).where(
            a.c.tenant_id == tenant_id, a.c.status.in_(("planned", "deferred")),
            *only(a.c.debtor_id, debtors),
            tuple_(a.c.debtor_id, a.c.enrollment_id).in_(ended))
            .values(status="cancelled", updated_at=now))


async def stop_debtor(session: AsyncSession, tenant_id: int, debtor_id: int, today: date,
                      now: datetime) -> int:
    """Replan one debtor in the transaction of an event (a payment reconciled, a promise
    kept): their live enrollments whose version's stop rule now matches them stop, and
    their actions not yet dispatched are cancelled, without waiting for the next planner
    pass. One indexed look-up when the debtor has no live enrollment; returns how many
    stopped."""
    e = table_of(Enrollment)
    live = (await session.execute(select(e.c.id, e.c.version_id).where(
        e.c.tenant_id == tenant_id, e.c.debtor_id == debtor_id,
        e.c.status.in_(LIVE)))).all()
    if not live:
        return 0
    versions = (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.id.in_({v for _, v in live})))).all()
    ruled = [v for v in versions if v.stop_rule is not None]
    if not ruled:
        return 0
    stages = {code: sid for code, sid in (await session.execute(select(Stage.code, Stage.id)
              .where(Stage.tenant_id == tenant_id, Stage.active))).all()}
    dialect = session.get_bind().dialect.name
    stopped: list[int] = []
    for v in ruled:
        assert v.stop_rule is not None
        compiled = rules.CompiledRules([rules.parse_rule(v.stop_rule, "stop_rule")], tenant_id,
                                       today, dialect, stage_ids=stages)
        sel = compiled.select([1], debtors=debtor_id).subquery("m")
        if await session.scalar(select(sel.c.outcome).where(sel.c.debtor_id == debtor_id)) == 1:
            stopped += [eid for eid, vid in live if vid == v.id]
    if stopped:
        await session.execute(update(e).where(e.c.id.in_(stopped)).values(
            status="stopped", reason="the stop rule matched", ended_at=now, updated_at=now))
        a = table_of(Action)
        await session.execute(update(a).where(
            a.c.tenant_id == tenant_id, a.c.status.in_(("planned", "deferred")),
            a.c.debtor_id == debtor_id, a.c.enrollment_id.in_(stopped))
            .values(status="cancelled", updated_at=now))
    return len(stopped)


# --- 2. enroll ----------------------------------------------------------------------------

def _dialect_insert(session: AsyncSession, table: Any) -> Any:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def among(col: Any, moved: Any) -> list[Any]:
    """``col`` among the debtor ids the select ``moved`` gives (no condition for None)."""
    return [] if moved is None else [col.in_(moved)]


async def enroll(session: AsyncSession, tenant_id: int, cfg: Config, today: date,
                 now: datetime, result: PlanResult, debtors: Debtors = None,
                 moved: Any = None) -> None:
    """Per active version, by strategy priority, the placed debtors of its segments not
    taken enrolled (only among the debtor ids ``moved`` selects, when given: see
    :func:`plan_tenant`)."""
    e, pl = table_of(Enrollment), table_of(Placement)
    for v in cfg.active:
        x = e.alias("x")
        # One strategy works a debtor at a time (the unique index of migration 0025) and,
        # once it has finished with them, none other until they enter a segment again.
        taken = exists().where(
            x.c.tenant_id == tenant_id, x.c.debtor_id == pl.c.debtor_id,
            or_(x.c.status.in_(LIVE),
                and_(x.c.status.in_(("completed", "stopped")),
                     or_(pl.c.segment_entered_at.is_(None),
                         x.c.ended_at >= pl.c.segment_entered_at))))
        rows = select(literal(tenant_id, BigInteger), pl.c.debtor_id,
                      literal(v.strategy_id, BigInteger), literal(v.id, BigInteger),
                      literal(0, Integer), literal("active", String),
                      literal("entered the strategy's segment", String),
                      literal(today, Date), literal(now, UtcDateTime()),
                      literal(now, UtcDateTime())).where(
            pl.c.tenant_id == tenant_id, bound(v, pl), not_(taken),
            *only(pl.c.debtor_id, debtors), *among(pl.c.debtor_id, moved))
        if v.entry_rule is not None:
            rows = rows.where(pl.c.debtor_id.in_(_rule_matches(
                session, tenant_id, v.entry_rule, today, cfg, "entry_rule", debtors)))
        stmt = _dialect_insert(session, e).from_select(
            ["tenant_id", "debtor_id", "strategy_id", "version_id", "step_index", "status",
             "reason", "entered_on", "created_at", "updated_at"], rows.order_by(pl.c.debtor_id)
        ).on_conflict_do_nothing().returning(e.c.id)
        result.enrolled += len((await session.execute(stmt)).all())


# --- 3. plan ------------------------------------------------------------------------------

def next_opening(now: datetime, zone: str, window: dict[str, Any]) -> tuple[date, datetime]:
    """The local day and the first instant, at or after ``now``, inside ``window`` in
    ``zone`` (windows always open within a week: validation requires a weekday and
    ``start_hour < end_hour``)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    for add in range(8):
        day = local.date() + timedelta(days=add)
        if day.isoweekday() not in window["weekdays"]:
            continue
        start = datetime.combine(day, time(), tz) + timedelta(hours=window["start_hour"])
        end = datetime.combine(day, time(), tz) + timedelta(hours=window["end_hour"])
        if now < end:
            return day, max(now, start.astimezone(UTC))
    raise AssertionError("a validated window opens within a week")


def earliest_opening(day: date, zone: str, window: dict[str, Any]) -> tuple[date, datetime]:
    """The first opening of ``window`` on ``day`` or later."""
    start = datetime.combine(day, time(), ZoneInfo(zone))
    return next_opening(start.astimezone(UTC), zone, window)


async def _windows(session: AsyncSession, tenant_id: int, cfg: Config,
                   now: datetime, debtors: Debtors = None) -> Any:
    """The literal table of (zone, version, step) → anchor, due day, instant, latest
    anchor date that makes the step due, for the pairs in use; None when there are none."""
    e, d = table_of(Enrollment), table_of(Debtor)
    pairs = (await session.execute(select(d.c.timezone, e.c.version_id, e.c.step_index)
                                   .distinct().select_from(e.join(d, d.c.id == e.c.debtor_id))
                                   .where(e.c.tenant_id == tenant_id,
                                          e.c.status == "active",
                                          *only(e.c.debtor_id, debtors)))).all()
    rows = []
    for zone, version_id, index in pairs:
        v = cfg.versions.get(version_id)
        if v is None or index >= len(v.steps):
            continue
        step = v.steps[index]
        day, at = next_opening(now, zone, step["window"])
        channels = step.get("channels") or []
        rows.append(select(
            literal(zone, String).label("zone"), literal(version_id, BigInteger)
            .label("version_id"), literal(index, Integer).label("step_index"),
            literal(step["key"], String).label("step_key"),
            literal(step["kind"], String).label("kind"),
            literal(channels[0]["channel"] if channels else None, String).label("channel"),
            literal(step["anchor"], String).label("anchor"),
            literal(step.get("obligation_product"), String).label("product"),
            literal(cfg.strategies[v.strategy_id].priority, Integer).label("priority"),
            literal(day, Date).label("due_on"), literal(at, UtcDateTime()).label("planned_at"),
            literal(day - timedelta(days=step["offset_days"]), Date).label("latest_anchor")))
    if not rows:
        return None
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("w")


def oldest_unpaid(tenant_id: int, debtors: Debtors = None) -> Any:
    b = table_of(DebtorBalance)
    return (select(b.c.debtor_id, func.min(b.c.oldest_unpaid_due_date).label("oldest"))
            .where(b.c.tenant_id == tenant_id, *only(b.c.debtor_id, debtors))
            .group_by(b.c.debtor_id).subquery("b"))


def pending_promise(tenant_id: int, debtors: Debtors = None) -> Any:
    """The ``promise_date`` anchor: each debtor's earliest pending promise date."""
    pr = table_of(Promise)
    return (select(pr.c.debtor_id, func.min(pr.c.promised_date).label("on"))
            .where(pr.c.tenant_id == tenant_id, pr.c.status == "pending",
                   *only(pr.c.debtor_id, debtors))
            .group_by(pr.c.debtor_id).subquery("pr"))


def next_installment(tenant_id: int, debtors: Debtors = None) -> Any:
    """The ``next_installment_date`` anchor: the due date of the first installment of each
    debtor's active plans that what was paid does not cover."""
    ar, i = table_of(Arrangement), table_of(Installment)
    return (select(ar.c.debtor_id, func.min(i.c.due_date).label("on"))
            .select_from(ar.join(i, i.c.arrangement_id == ar.c.id))
            .where(ar.c.tenant_id == tenant_id, ar.c.status == "active",
                   i.c.cumulative_minor > ar.c.paid_minor, *only(ar.c.debtor_id, debtors))
            .group_by(ar.c.debtor_id).subquery("ni"))


def obligation_due(tenant_id: int, products: list[str], debtors: Debtors = None) -> Any:
    """The ``obligation_due_date`` anchor: per debtor and product (of those the steps
    name), the earliest due date of their open obligations of that product."""
    o = table_of(Obligation)
    return (select(o.c.debtor_id, o.c.product, func.min(o.c.due_date).label("on"))
            .where(o.c.tenant_id == tenant_id, o.c.status == "open",
                   o.c.kind != "credit_note", o.c.outstanding_minor > 0,
                   o.c.product.in_(products), *only(o.c.debtor_id, debtors))
            .group_by(o.c.debtor_id, o.c.product).subquery("ob"))


def stage_entered(session: AsyncSession, pl: Any, d: Any) -> Any:
    """The local day (debtor's zone on PostgreSQL; UTC on SQLite) the stage last changed."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(d.c.timezone, pl.c.stage_set_at), Date)
    return func.date(pl.c.stage_set_at)


async def plan_actions(session: AsyncSession, tenant_id: int, cfg: Config, now: datetime,
                       result: PlanResult, debtors: Debtors = None,
                       host: PluginHost | None = None, since: date | None = None,
                       record: bool = True) -> None:
    """3. The current step of every due active enrollment planned (one ``INSERT ...
    SELECT ... ON CONFLICT DO NOTHING``).

    With ``host`` on PostgreSQL the gate is judged BEFORE the insert (:func:`pre_gate`),
    for the uncontested contacts: those with no rival that day (no other contact of this
    pass, and no competing action due from ``since``, for the same debtor and local day),
    so the contact policy (:func:`supersede`) never sees them compete. Their verdict,
    status, channel and instant are joined into the INSERT from ``unnest`` arrays (one
    entry per distinct gate key, one ``(enrollment, key)`` pair per contact) and their
    decision rows written by the same statement (a data-modifying CTE over the inserted
    rows): no action is updated after its insert. The contested ones are inserted
    ungated, as without ``host``, for the gate after the contact policy
    (:func:`gate_planned`). ``record``: as for :func:`plan_tenant`."""
    w = await _windows(session, tenant_id, cfg, now, debtors)
    if w is None:
        return
    e, d, pl = table_of(Enrollment), table_of(Debtor), table_of(Placement)
    b = oldest_unpaid(tenant_id, debtors)
    # The anchors the steps in use need, and only those joined (one aggregate each).
    steps = [s for v in cfg.versions.values() for s in v.steps]
    used = {s["anchor"] for s in steps}
    whens: list[tuple[Any, Any]] = [
        (w.c.anchor == "oldest_unpaid_due_date", b.c.oldest),
        (w.c.anchor == "segment_entry", e.c.entered_on)]
    joined = (e.join(d, d.c.id == e.c.debtor_id)
              .join(w, and_(w.c.version_id == e.c.version_id,
                            w.c.step_index == e.c.step_index, w.c.zone == d.c.timezone))
              .outerjoin(b, b.c.debtor_id == e.c.debtor_id))
    if "stage_entry" in used:
        joined = joined.outerjoin(pl, pl.c.debtor_id == e.c.debtor_id)
        whens.append((w.c.anchor == "stage_entry", stage_entered(session, pl, d)))
    if "promise_date" in used:
        pr = pending_promise(tenant_id, debtors)
        joined = joined.outerjoin(pr, pr.c.debtor_id == e.c.debtor_id)
        whens.append((w.c.anchor == "promise_date", pr.c.on))
    if "next_installment_date" in used:
        ni = next_installment(tenant_id, debtors)
        joined = joined.outerjoin(ni, ni.c.debtor_id == e.c.debtor_id)
        whens.append((w.c.anchor == "next_installment_date", ni.c.on))
    if "obligation_due_date" in used:
        products = sorted({s["obligation_product"] for s in steps
                           if s["anchor"] == "obligation_due_date"})
        ob = obligation_due(tenant_id, products, debtors)
        joined = joined.outerjoin(ob, and_(ob.c.debtor_id == e.c.debtor_id,
                                           ob.c.product == w.c.product))
        whens.append((w.c.anchor == "obligation_due_date", ob.c.on))
    anchor = case(*whens, (w.c.anchor == "previous_step",
                           func.coalesce(e.c.last_step_on, e.c.entered_on)), else_=None)
    due = (e.c.tenant_id == tenant_id, e.c.status == "active", anchor.is_not(None),
           anchor <= w.c.latest_anchor, *only(e.c.debtor_id, debtors))
    columns = ["tenant_id", "debtor_id", "enrollment_id", "strategy_id", "version_id",
               "priority", "step_index", "step_key", "kind", "channel", "anchor_on", "due_on",
               "planned_at", "status", "created_at", "updated_at"]
    status: Any = case((w.c.kind == "wait", "done"), else_="planned")
    channel: Any = w.c.channel
    planned_at: Any = w.c.planned_at
    gated: PreGated | None = None
    if host is not None and since is not None and not isinstance(debtors, int) and \
            session.get_bind().dialect.name == "postgresql":
        # A tenant's pass (or a range's): the join evaluated once, into a temporary table.
        await plan_staged(session, host, tenant_id, cfg, now, since, debtors, result, record,
                          select(*[x.label(n) for x, n in zip(
                              [e.c.tenant_id, e.c.debtor_id, e.c.id, e.c.strategy_id,
                               e.c.version_id, w.c.priority, w.c.step_index, w.c.step_key,
                               w.c.kind, w.c.channel, anchor, w.c.due_on, w.c.planned_at,
                               status], columns, strict=False)],
                                 d.c.country, d.c.subdivision, d.c.timezone.label("zone"),
                                 d.c.kind.label("debtor_kind"), d.c.attributes,
                                 case((or_(b.c.oldest.is_(None), b.c.oldest >= w.c.due_on), 0),
                                      else_=cast(w.c.due_on - b.c.oldest, Integer)).label("dpd"))
                          .select_from(joined).where(*due))
        return
    if host is not None and session.get_bind().dialect.name == "postgresql":
        gated = await pre_gate(session, host, tenant_id, cfg, now, since, debtors, record,
                               select(e.c.id, e.c.debtor_id, e.c.version_id, w.c.step_index,
                                      w.c.planned_at, w.c.due_on,
                                      literal(0, Integer).label("attempt"), d.c.country,
                                      d.c.subdivision, d.c.timezone, d.c.kind,
                                      cast(d.c.attributes, String).label("attributes"),
                                      b.c.oldest).select_from(joined)
                               .where(*due, w.c.kind.in_(CONTACT_KINDS)))
    if gated is not None:
        joined = (joined.outerjoin(gated.v, gated.v.c.eid == e.c.id)
                  .outerjoin(gated.k, gated.k.c.g == gated.v.c.g))
        status = func.coalesce(gated.k.c.status, status)
        channel = func.coalesce(gated.k.c.channel, channel)
        planned_at = func.coalesce(gated.k.c.at, planned_at)
    picked = [e.c.tenant_id, e.c.debtor_id, e.c.id, e.c.strategy_id, e.c.version_id,
              w.c.priority, w.c.step_index, w.c.step_key, w.c.kind, channel, anchor,
              w.c.due_on, planned_at, status, literal(now, UtcDateTime()),
              literal(now, UtcDateTime())]
    if gated is not None:
        columns.append("verdict")
        picked.append(gated.k.c.verdict)
    rows = select(*picked).select_from(joined).where(*due).order_by(e.c.id)
    a = table_of(Action)
    stmt = _dialect_insert(session, a).from_select(columns, rows).on_conflict_do_nothing()
    if gated is None:
        # RETURNING: the asyncpg driver reports no row count for INSERT ... SELECT.
        result.planned += len((await session.execute(stmt.returning(a.c.id))).all())
        return
    ins = stmt.returning(a.c.id, a.c.debtor_id, a.c.enrollment_id).cte("ins")
    v, r = gated.v, gated.r
    cd = table("compliance_decisions", *[column(n) for n in (
        "tenant_id", "decided_at", "path", "decision", "source", "code", "counted", "channel",
        "debtor_id", "subject_id", "deferral_seconds")])
    recorded = insert(cd).from_select(
        ["tenant_id", "decided_at", "path", "decision", "source", "code", "counted",
         "channel", "debtor_id", "subject_id", "deferral_seconds"],
        select(literal(tenant_id, BigInteger), literal(now, UtcDateTime()),
               literal("planner", String), r.c.decision, r.c.source, r.c.code, r.c.counted,
               r.c.channel, ins.c.debtor_id, ins.c.id, r.c.deferral)
        .select_from(ins.join(v, v.c.eid == ins.c.enrollment_id).join(r, r.c.g == v.c.g))
    ).cte("recorded")
    counted = (await session.execute(
        select(v.c.g, func.count()).select_from(ins.outerjoin(v, v.c.eid == ins.c.enrollment_id))
        .group_by(v.c.g).add_cte(recorded))).all()
    for g, n in counted:
        result.planned += int(n)
        if g is not None:
            decision = gated.judged[g - 1][1].decision
            result.verdicts[decision] = result.verdicts.get(decision, 0) + int(n)
    if gated.judged:
        result.verdicts["gate_calls"] = result.verdicts.get("gate_calls", 0) + len(gated.judged)


@dataclass(frozen=True)
class PreGated:
    """The verdicts of :func:`pre_gate` as three literal tables: ``v`` (enrollment id,
    key number), ``k`` (per key: status, channel, verdict, instant) and ``r`` (per key
    and reason: the decision row's columns)."""

    v: Any
    k: Any
    r: Any
    judged: list[tuple[_Group, Judged, datetime]]


async def pre_gate(session: AsyncSession, host: PluginHost, tenant_id: int, cfg: Config,
                   now: datetime, since: date | None, debtors: Debtors, record: bool,
                   candidates: Any) -> PreGated | None:
    """The gate over the contacts the plan INSERT is about to write (``candidates``:
    the same join, their rows as :func:`gate_groups` reads them), judged once per
    distinct gate key as :func:`gate_planned` judges; only the uncontested (see
    :func:`plan_actions`). None when none is."""
    if since is None:
        return None
    rows = (await session.execute(candidates)).all()
    if not rows:
        return None
    per_day: dict[tuple[int, date], int] = defaultdict(int)
    for row in rows:
        per_day[(row.debtor_id, row.due_on)] += 1
    c = table_of(Action)
    for debtor_id, due_on in (await session.execute(select(c.c.debtor_id, c.c.due_on)
                              .distinct().where(
            c.c.tenant_id == tenant_id, c.c.kind.in_(CONTACT_KINDS),
            c.c.status.in_(COMPETING), c.c.due_on >= since,
            *only(c.c.debtor_id, debtors)))).all():
        per_day[(debtor_id, due_on)] += 1
    rows = [row for row in rows
            if per_day[(row.debtor_id, row.due_on)] == 1 or row.due_on < since]
    if not rows:
        return None
    e = table_of(Enrollment)
    gate_since = now - timedelta(days=7)
    points, recent = await _gate_context(
        session, tenant_id, gate_since, select(e.c.debtor_id).where(
            e.c.tenant_id == tenant_id, e.c.status == "active", *only(e.c.debtor_id, debtors)))
    groups = _group(rows, points, recent)
    judged = await judge_groups(session, host, tenant_id, cfg, groups, gate_since)
    per_group, per_reason = _verdict_arrays(tenant_id, judged, now, record=record)
    eids: list[int] = []
    numbers: list[int] = []
    for n, g in enumerate(groups, 1):
        eids += g.ids
        numbers += [n] * len(g.ids)
    v = text("SELECT * FROM unnest(CAST(:pg_eids AS bigint[]), CAST(:pg_groups AS int[])) "
             "AS v(eid, g)").bindparams(pg_eids=eids, pg_groups=numbers).columns(
        eid=BigInteger, g=Integer).cte("v")
    a = table_of(Action)
    k = text("SELECT * FROM unnest(CAST(:pg_statuses AS text[]), CAST(:pg_channels AS text[]), "
             "CAST(:pg_verdicts AS jsonb[]), CAST(:pg_ats AS timestamptz[])) WITH ORDINALITY "
             "AS k(status, channel, verdict, at, g)").bindparams(
        pg_statuses=per_group["statuses"], pg_channels=per_group["channels"],
        pg_verdicts=per_group["verdicts"], pg_ats=per_group["ats"]).columns(
        status=String, channel=String, verdict=a.c.verdict.type, at=UtcDateTime(),
        g=Integer).cte("k")
    r = text("SELECT * FROM unnest(CAST(:pg_rg AS int[]), CAST(:pg_rdecision AS text[]), "
             "CAST(:pg_rsource AS text[]), CAST(:pg_rcode AS text[]), "
             "CAST(:pg_rcounted AS boolean[]), CAST(:pg_rchannel AS text[]), "
             "CAST(:pg_rdeferral AS int[])) "
             "AS r(g, decision, source, code, counted, channel, deferral)").bindparams(
        **{f"pg_{name}": values for name, values in per_reason.items()}).columns(
        g=Integer, decision=String, source=String, code=String, counted=Boolean,
        channel=String, deferral=Integer).cte("r")
    return PreGated(v, k, r, judged)


STAGED_COLUMNS = (
    "tenant_id bigint, debtor_id bigint, enrollment_id bigint, strategy_id bigint, "
    "version_id bigint, priority int, step_index int, step_key text, kind text, channel text, "
    "anchor_on date, due_on date, planned_at timestamptz, status text, gate_key text")
"""The temporary table of :func:`plan_staged`: the plan's rows and their gate key (what the
gate reads of them is only hashed into the key, not kept)."""

_ACTION_COLUMNS = ("tenant_id, debtor_id, enrollment_id, strategy_id, version_id, priority, "
                   "step_index, step_key, kind")


async def plan_staged(session: AsyncSession, host: PluginHost, tenant_id: int, cfg: Config,
                      now: datetime, since: date, debtors: Debtors, result: PlanResult,
                      record: bool, candidates: Any) -> None:
    """3. (a tenant's pass on PostgreSQL) The plan with the gate judged before the insert,
    the plan's join evaluated once: its rows (``candidates``: the plan columns, then the
    debtor's fields and days past due the gate reads) go into a temporary table, each
    uncontested contact (no competing action due that day: a debtor has one live
    enrollment, so at most one row of the table per debtor) with its gate key, the md5 of
    everything the gate reads of it (as :func:`gate_groups` groups: step, instant, day,
    days past due, the debtor's country, subdivision, zone, kind and attributes, their
    contact points in the order they are picked but the values and ids, their contacts
    since seven days, as arrays of records per debtor: the md5 of their text form). Python
    reads one row per distinct key (its first enrollment), judges it
    (:func:`judge_groups`), and one statement inserts the actions joined to the verdicts
    by key, and their decision rows (a data-modifying CTE over the inserted rows). The
    contested contacts (key NULL) are inserted ungated, for :func:`gate_planned` after the
    contact policy, which looks at their debtors only (:attr:`PlanResult.rivals`).

    The same statement advances (5.) the enrollments of the actions it inserted that no
    contact policy can supersede (the uncontested contacts and every other kind: an
    enrollment's current step moves on, ``last_step_on`` the action's day, ``completed``
    past the last step, as :func:`advance` does), each re-checked on its current step and
    version so a concurrent pass that advanced it first wins. When every candidate was
    inserted and advanced so, ``result.advanced`` tells :func:`advance` it has none to
    look for; the enrollments' rows are then written once, and the foreign-key check of
    each inserted action finds its enrollment already locked by that write."""
    gate_since = now - timedelta(days=7)
    e, cp, i, x = (table_of(Enrollment), table_of(ContactPoint), table_of(Interaction),
                   table_of(Action).alias("x"))
    enrolled = select(e.c.debtor_id).where(e.c.tenant_id == tenant_id, e.c.status == "active",
                                           *only(e.c.debtor_id, debtors))
    # Records, not JSON: a record's text form is as unambiguous and cheaper to build.
    pts = (select(cp.c.debtor_id, func.array_agg(postgresql.aggregate_order_by(
        func.row(cp.c.kind, cp.c.consent, cp.c.opted_out_channels, cp.c.suppressions,
                 cp.c.origin, cp.c.label),
        cp.c.preferred.desc(), cp.c.id)).label("p"))
        .where(cp.c.tenant_id == tenant_id, cp.c.debtor_id.in_(enrolled))
        .group_by(cp.c.debtor_id).subquery("pts"))
    rec = (select(i.c.debtor_id, func.array_agg(postgresql.aggregate_order_by(
        func.row(i.c.channel, i.c.created_at, i.c.status),
        i.c.created_at, i.c.id)).label("r"))
        .where(i.c.tenant_id == tenant_id, i.c.debtor_id.in_(enrolled),
               *gate.counted_contacts(gate_since))
        .group_by(i.c.debtor_id).subquery("rec"))
    c = candidates.subquery("c")
    # ``x.due_on >= since``: implied for the candidates it matters to (due from ``since``),
    # and it keeps the actions' history (every earlier day) out of the look-up.
    rival = exists().where(x.c.tenant_id == tenant_id, x.c.debtor_id == c.c.debtor_id,
                           x.c.due_on == c.c.due_on, x.c.due_on >= since,
                           x.c.kind.in_(CONTACT_KINDS), x.c.status.in_(COMPETING))
    uncontested = and_(c.c.kind.in_(CONTACT_KINDS), or_(c.c.due_on < since, not_(rival)))
    # The instant and day are left out: the join gives them by (version, step, zone), all
    # three in the key (their text forms were a third of the key's cost).
    key = func.md5(cast(func.row(
        c.c.version_id, c.c.step_index, c.c.dpd, c.c.country,
        c.c.subdivision, c.c.zone, c.c.debtor_kind, c.c.attributes, pts.c.p, rec.c.r), String))
    names = [n.split()[0] for n in STAGED_COLUMNS.split(", ")]
    staged = table("plan_candidates", *[column(n) for n in names])
    await session.execute(text("DROP TABLE IF EXISTS plan_candidates"))
    await session.execute(text(f"CREATE TEMPORARY TABLE plan_candidates ({STAGED_COLUMNS}) "
                               "ON COMMIT DROP"))
    await session.execute(insert(staged).from_select(names, select(
        *[c.c[n] for n in names[:-1]], case((uncontested, key), else_=None))
        .select_from(c.outerjoin(pts, pts.c.debtor_id == c.c.debtor_id)
                     .outerjoin(rec, rec.c.debtor_id == c.c.debtor_id))))
    # Its statistics: without them the joins back to it below are planned as nested loops.
    await session.execute(text("ANALYZE plan_candidates"))
    firsts = (await session.execute(text(
        "SELECT c.enrollment_id AS id, c.debtor_id, c.version_id, c.step_index, "
        "c.planned_at, c.due_on, 0 AS attempt, c.gate_key, k.n FROM plan_candidates c "
        "JOIN (SELECT gate_key, min(enrollment_id) AS first, count(*) AS n "
        "FROM plan_candidates WHERE gate_key IS NOT NULL GROUP BY gate_key) k "
        "ON c.enrollment_id = k.first ORDER BY c.enrollment_id"))).all()
    groups = [_Group(row) for row in firsts]
    judged = await judge_groups(session, host, tenant_id, cfg, groups, gate_since)
    per_group, per_reason = _verdict_arrays(tenant_id, judged, now, record=record)
    steps = " ".join(f"WHEN {v.id} THEN {len(v.steps)}" for v in cfg.versions.values())
    past = f"e.step_index + 1 >= CASE e.version_id {steps} ELSE 1000000 END" if steps \
        else "false"
    contact = ", ".join(f"'{kind}'" for kind in CONTACT_KINDS)
    counted = (await session.execute(text(
        "WITH k AS (SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:statuses AS text[]), "
        "CAST(:channels AS text[]), CAST(:verdicts AS jsonb[]), CAST(:ats AS timestamptz[])) "
        "WITH ORDINALITY AS k(gate_key, status, channel, verdict, at, g)), "
        "r AS (SELECT * FROM unnest(CAST(:rg AS int[]), CAST(:rdecision AS text[]), "
        "CAST(:rsource AS text[]), CAST(:rcode AS text[]), CAST(:rcounted AS boolean[]), "
        "CAST(:rchannel AS text[]), CAST(:rdeferral AS int[])) "
        "AS r(g, decision, source, code, counted, channel, deferral)), "
        f"ins AS (INSERT INTO actions ({_ACTION_COLUMNS}, channel, anchor_on, due_on, "
        "planned_at, status, created_at, updated_at, verdict) "
        f"SELECT {', '.join('c.' + n for n in _ACTION_COLUMNS.split(', '))}, "
        "coalesce(k.channel, c.channel), c.anchor_on, c.due_on, coalesce(k.at, c.planned_at), "
        "coalesce(k.status, c.status), CAST(:now AS timestamptz), CAST(:now AS timestamptz), "
        "k.verdict FROM plan_candidates c LEFT JOIN k ON k.gate_key = c.gate_key "
        "ON CONFLICT DO NOTHING RETURNING id, debtor_id, enrollment_id), "
        "got AS MATERIALIZED (SELECT ins.id, ins.debtor_id, ins.enrollment_id, k.g, c.due_on, "
        "c.version_id, c.step_index, "
        f"(c.gate_key IS NOT NULL OR c.kind NOT IN ({contact})) AS settled FROM ins "
        "JOIN plan_candidates c ON c.enrollment_id = ins.enrollment_id "
        "LEFT JOIN k ON k.gate_key = c.gate_key), "
        "recorded AS (INSERT INTO compliance_decisions (tenant_id, decided_at, path, decision, "
        "source, code, counted, channel, debtor_id, subject_id, deferral_seconds) "
        "SELECT :tenant, CAST(:now AS timestamptz), 'planner', r.decision, r.source, r.code, "
        "r.counted, r.channel, got.debtor_id, got.id, r.deferral FROM got "
        "JOIN r ON r.g = got.g), "
        # 5. advance, for the actions no contact policy can supersede (see the docstring).
        "adv AS (UPDATE enrollments AS e SET step_index = e.step_index + 1, "
        "last_step_on = got.due_on, updated_at = CAST(:now AS timestamptz), "
        f"status = CASE WHEN {past} THEN 'completed' ELSE e.status END, "
        f"reason = CASE WHEN {past} THEN 'every step was planned' ELSE e.reason END, "
        f"ended_at = CASE WHEN {past} THEN CAST(:now AS timestamptz) ELSE e.ended_at END "
        "FROM got WHERE got.settled AND e.id = got.enrollment_id AND e.status = 'active' "
        "AND e.version_id = got.version_id AND e.step_index = got.step_index "
        "RETURNING e.status) "
        "SELECT g, count(*) AS n, count(*) FILTER (WHERE NOT settled) AS unsettled, "
        "0 AS completed FROM got GROUP BY g "
        "UNION ALL SELECT NULL, 0, 0, count(*) FROM adv WHERE status = 'completed'"),
        {"tenant": tenant_id, "now": now, "keys": [row.gate_key for row in firsts],
         **per_group, **per_reason})).all()
    staged_rows = int(await session.scalar(text("SELECT count(*) FROM plan_candidates")) or 0)
    # The table stays until the transaction ends (or the next pass in it): the contact
    # policy reads the debtors of its ungated contacts (``result.rivals``).
    inserted = unsettled = 0
    for g, n, left, completed in counted:
        result.planned += int(n)
        result.completed += int(completed)
        inserted += int(n)
        unsettled += int(left)
        if g is not None and n:
            decision = judged[g - 1][1].decision
            result.verdicts[decision] = result.verdicts.get(decision, 0) + int(n)
    # Every candidate inserted and advanced past: :func:`advance` has none to look for.
    result.advanced = inserted == staged_rows and not unsettled
    result.rivals = select(staged.c.debtor_id).where(
        staged.c.gate_key.is_(None), staged.c.kind.in_(CONTACT_KINDS)) if unsettled else False
    if judged:
        result.verdicts["gate_calls"] = result.verdicts.get("gate_calls", 0) + len(judged)


# --- 4. contact policy --------------------------------------------------------------------

COMPETING = ("planned", "deferred", "dispatched")


async def supersede(session: AsyncSession, tenant_id: int, since: date, now: datetime,
                    result: PlanResult, debtors: Debtors = None, rivals: Any = None) -> None:
    """Every planned message of a debtor's local day (from ``since``) that is not that day's
    best competing contact (dispatched first, then the lower strategy
    priority, then the older action) becomes ``superseded`` by the best one. One UPDATE
    joined to a window over the competing contacts (the best one per debtor and day by
    ``first_value``): each action is compared once, not once per rival. ``rivals``: a
    select of debtor ids, the only ones whose days are looked at (see
    :attr:`PlanResult.rivals`)."""
    a = table_of(Action)
    c = a.alias("c")
    ranked = select(c.c.id, c.c.status, func.first_value(c.c.id).over(
        partition_by=(c.c.debtor_id, c.c.due_on),
        order_by=(case((c.c.status == "dispatched", 0), else_=1), c.c.priority, c.c.id))
        .label("winner")).where(
        c.c.tenant_id == tenant_id, c.c.kind.in_(CONTACT_KINDS), c.c.status.in_(COMPETING),
        c.c.due_on >= since, *only(c.c.debtor_id, debtors),
        *among(c.c.debtor_id, rivals)).subquery("r")
    done = await session.execute(update(a).where(
        a.c.id == ranked.c.id, ranked.c.status == "planned", ranked.c.winner != ranked.c.id)
        .values(status="superseded", superseded_by=ranked.c.winner, updated_at=now))
    result.superseded += int(done.rowcount or 0)  # type: ignore[attr-defined]


# --- 5. advance ---------------------------------------------------------------------------

ADVANCE_DAYS = 2
"""How many local days before the tenant's a pass's actions can be due: a debtor's zone is
at most 26 hours behind the tenant's, so their local day (an action's ``due_on``) is never
earlier than the tenant's day minus two."""


async def advance(session: AsyncSession, tenant_id: int, cfg: Config, now: datetime,
                  result: PlanResult, debtors: Debtors = None,
                  since: date | None = None) -> None:
    """Active enrollments whose current step has an action (not superseded or cancelled)
    move to the next step, ``last_step_on`` its latest day; past the last step they are
    ``completed`` by the same write. One UPDATE joined to the aggregate of those actions:
    only the rows whose step moves are written, and only the actions due from ``since``
    are read (with ``since`` the tenant's day minus :data:`ADVANCE_DAYS`, every action
    the pass planned: an older one of the current step was advanced past by the pass that
    planned it), through the tenant's due-day index, not the action history. Then one
    UPDATE completes the active enrollments already past their version's last step."""
    e, a = table_of(Enrollment), table_of(Action)
    cur = e.alias("cur")
    recent = [a.c.tenant_id == tenant_id] + ([] if since is None else [a.c.due_on >= since])
    taken = (select(a.c.enrollment_id, func.max(a.c.due_on).label("last"))
             .select_from(a.join(cur, and_(cur.c.id == a.c.enrollment_id,
                                           cur.c.debtor_id == a.c.debtor_id,
                                           cur.c.step_index == a.c.step_index,
                                           cur.c.version_id == a.c.version_id)))
             .where(cur.c.tenant_id == tenant_id, cur.c.status == "active", *recent,
                    a.c.status.not_in(("superseded", "cancelled")),
                    *only(cur.c.debtor_id, debtors))
             .group_by(a.c.enrollment_id).subquery("t"))
    steps = case(*[(e.c.version_id == v.id, len(v.steps)) for v in cfg.versions.values()],
                 else_=10**6) if cfg.versions else literal(10**6)
    if result.advanced:
        await _complete_past_last(session, tenant_id, cfg, now, result, debtors, steps)
        return
    past = e.c.step_index + 1 >= steps
    moved = update(e).where(e.c.tenant_id == tenant_id,
                            e.c.id == taken.c.enrollment_id).values(
        step_index=e.c.step_index + 1, last_step_on=taken.c.last, updated_at=now,
        status=case((past, "completed"), else_=e.c.status),
        reason=case((past, "every step was planned"), else_=e.c.reason),
        ended_at=case((past, literal(now, UtcDateTime())), else_=e.c.ended_at))
    if session.get_bind().dialect.name == "postgresql":
        ended = moved.returning(e.c.status).cte("moved")
        result.completed += int(await session.scalar(
            select(func.count()).select_from(ended).where(ended.c.status == "completed"))
            or 0)
    else:
        result.completed += sum(1 for (status,) in (await session.execute(
            moved.returning(e.c.status))).all() if status == "completed")
    await _complete_past_last(session, tenant_id, cfg, now, result, debtors, steps)


async def _complete_past_last(session: AsyncSession, tenant_id: int, cfg: Config,
                              now: datetime, result: PlanResult, debtors: Debtors,
                              steps: Any) -> None:
    """The active enrollments already past their version's last step (``steps``: the
    step count per version) become ``completed``."""
    if not cfg.versions:
        return
    e = table_of(Enrollment)
    done = await session.execute(update(e).where(
        e.c.tenant_id == tenant_id, e.c.status == "active", *only(e.c.debtor_id, debtors),
        e.c.step_index >= steps).values(
        status="completed", reason="every step was planned", ended_at=now, updated_at=now))
    result.completed += int(done.rowcount or 0)  # type: ignore[attr-defined]


# --- 6. gate ------------------------------------------------------------------------------

@dataclass
class Loaded:
    """What the gate reads for a set of debtors, loaded by a few IN queries."""

    debtors: dict[int, Debtor]
    contacts: dict[int, list[ContactPoint]]
    oldest: dict[int, date | None]
    recent: dict[int, list[Any]]
    policy: GatePolicy | None = None
    """The tenant's pack configs and settings, as the send path judges with them."""


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), GATE_CHUNK):
        yield list(ids[i:i + GATE_CHUNK])


async def load_for_gate(session: AsyncSession, host: PluginHost, tenant_id: int,
                        debtor_ids: Sequence[int], since: datetime) -> Loaded:
    from cartera_sdk.compliance import PriorContact

    found = Loaded({}, defaultdict(list), {}, defaultdict(list),
                   await load_policy(session, host, tenant_id))
    debtor_id: Any
    for ids in _chunks(sorted(set(debtor_ids))):
        for debtor in await session.scalars(select(Debtor).where(Debtor.id.in_(ids))):
            found.debtors[debtor.id] = debtor
        for cp in await session.scalars(select(ContactPoint).where(
                ContactPoint.debtor_id.in_(ids)).order_by(ContactPoint.preferred.desc(),
                                                          ContactPoint.id)):
            found.contacts[cp.debtor_id].append(cp)
        for debtor_id, oldest in (await session.execute(select(
                DebtorBalance.debtor_id, func.min(DebtorBalance.oldest_unpaid_due_date))
                .where(DebtorBalance.debtor_id.in_(ids))
                .group_by(DebtorBalance.debtor_id))).all():
            found.oldest[int(debtor_id)] = oldest
        for debtor_id, channel, at, status in (await session.execute(select(
                Interaction.debtor_id, Interaction.channel, Interaction.created_at,
                Interaction.status).where(
                Interaction.debtor_id.in_(ids), *gate.counted_contacts(since)))).all():
            found.recent[debtor_id].append(PriorContact(
                channel=channel, at=at, outcome=status))  # type: ignore[arg-type]
    return found


def pick_contact_point(points: list[ContactPoint], channel: str) -> ContactPoint | None:
    """The preferred usable contact point of the channel's kinds (else the first of those
    kinds, for the gate to explain why it is unusable), as ``POST /v1/messages`` picks."""
    kinds = gate.CONTACT_KINDS[channel]
    candidates = [cp for cp in points if cp.kind in kinds]
    usable = [cp for cp in candidates if gate.check_contact_point(cp, channel) is None]
    ranked = usable or candidates
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class Judged:
    decision: str  # allow | defer | deny
    channel: str
    contact_point_id: int | None
    verdict: dict[str, Any]
    until: datetime | None


def judge_channels(host: PluginHost, loaded: Loaded, debtor_id: int,
                   channels: list[dict[str, Any]], at: datetime,
                   today: date) -> Judged:
    """The gate's verdict for the first channel it does not deny (the fallback chain);
    the last denial when it denies them all. The verdict lists the channels tried."""
    debtor = loaded.debtors[debtor_id]
    dpd = aging.days_past_due(loaded.oldest.get(debtor_id), today)
    tried: list[dict[str, Any]] = []
    judged: Judged | None = None
    for ch in channels:
        channel = ch["channel"]
        cp = pick_contact_point(loaded.contacts.get(debtor_id, []), channel)
        verdict = gate.decide(host, debtor, cp, channel, at, dpd, loaded.recent[debtor_id],
                              policy=loaded.policy)
        body = gate.as_json(verdict)
        judged = Judged(verdict.decision, channel, cp.id if cp else None,
                        {**body, "channel": channel, "tried": list(tried)}, verdict.until)
        if verdict.decision != "deny":
            return judged
        tried.append({"channel": channel, "reasons": [r.code for r in verdict.reasons]})
    assert judged is not None
    return judged


MAX_REFITS = 7
"""Window openings tried for a deferred contact before it is denied."""


def fit_to_window(host: PluginHost, loaded: Loaded, row: Any, step: dict[str, Any],
                  judged: Judged) -> tuple[Judged, datetime]:
    """A deferral's instant moved to the earliest lawful instant inside the step's window
    (the first opening at or after the gate's ``until`` that the gate does not defer
    again), or a denial with the reasons when :data:`MAX_REFITS` openings do not do."""
    zone = loaded.debtors[row.debtor_id].timezone
    at = judged.until
    assert at is not None
    for _ in range(MAX_REFITS):
        _, opening = next_opening(at, zone, step["window"])
        if opening == at:
            return judged, at
        again = judge_channels(host, loaded, row.debtor_id,
                               chain_of(step, getattr(row, "attempt", 0)), opening, row.due_on)
        if again.decision != "defer" or again.until is None:
            return (judged if again.decision == "allow" else again), opening
        at = again.until
    reason = {"code": "no_lawful_instant_in_window", "source": "planner", "rule_ref": None,
              "message": f"no instant inside the step's window is lawful in the next "
                         f"{MAX_REFITS} openings"}
    verdict = {**judged.verdict, "decision": "deny",
               "reasons": [*judged.verdict.get("reasons", []), reason]}
    return Judged("deny", judged.channel, judged.contact_point_id, verdict, None), at


async def bulk_update_actions(session: AsyncSession, changes: list[dict[str, Any]],
                              now: datetime) -> None:
    """Write the gate's outcome on many actions (``b_id``, ``b_status``, ``b_channel``,
    ``b_verdict``, ``b_at``): on PostgreSQL one ``UPDATE ... FROM unnest(...)`` per
    :data:`UPDATE_CHUNK` rows (an executemany is one statement per row), else an
    executemany."""
    a = table_of(Action)
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), channel=bindparam("b_channel"),
            verdict=bindparam("b_verdict", type_=a.c.verdict.type),
            planned_at=bindparam("b_at", type_=UtcDateTime()), updated_at=now), changes)
        return
    for i in range(0, len(changes), UPDATE_CHUNK):
        part = changes[i:i + UPDATE_CHUNK]
        await session.execute(text(
            "UPDATE actions AS a SET status = v.status, channel = v.channel, "
            "verdict = v.verdict::jsonb, planned_at = v.at, updated_at = :now "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), "
            "CAST(:channels AS text[]), CAST(:verdicts AS text[]), "
            "CAST(:ats AS timestamptz[])) AS v(id, status, channel, verdict, at) "
            "WHERE a.id = v.id"), {
            "now": now, "ids": [c["b_id"] for c in part],
            "statuses": [c["b_status"] for c in part],
            "channels": [c["b_channel"] for c in part],
            "verdicts": [msgspec.json.encode(c["b_verdict"]).decode() for c in part],
            "ats": [c["b_at"] for c in part]})


UPDATE_CHUNK = 10_000


def chain_of(step: dict[str, Any], attempt: int) -> list[dict[str, Any]]:
    """The channels an action of ``step`` may use: its fallback from ``attempt`` on."""
    return list(step.get("channels") or [])[attempt:]


@dataclass(frozen=True)
class _Group:
    """The actions of one distinct gate key: one verdict for them all."""

    row: Any
    """The first of them (a debtor of the key: the gate is judged for them)."""
    ids: list[int] = field(default_factory=list)
    debtor_ids: list[int] = field(default_factory=list)


def _to_gate(tenant_id: int, debtors: Debtors) -> list[Any]:
    a = table_of(Action)
    return [a.c.tenant_id == tenant_id, a.c.kind.in_(CONTACT_KINDS), a.c.status == "planned",
            a.c.verdict.is_(None), *only(a.c.debtor_id, debtors)]


async def gate_groups(session: AsyncSession, tenant_id: int, since: datetime,
                      debtors: Debtors = None) -> list[_Group]:
    """The planned contacts not yet gated, grouped by everything the gate reads of them
    (the step and fallback attempt, the instant and day, days past due,
    the debtor's country, subdivision, zone, kind and attributes, their contact points in
    the order they are picked but the values and ids, and their contacts made since
    ``since``): three selects of plain rows (no ORM object per debtor), one pass of
    Python over them."""
    a, d = table_of(Action), table_of(Debtor)
    b = oldest_unpaid(tenant_id, debtors)
    rows = (await session.execute(select(
        a.c.id, a.c.debtor_id, a.c.version_id, a.c.step_index, a.c.planned_at, a.c.due_on,
        a.c.attempt, d.c.country, d.c.subdivision, d.c.timezone, d.c.kind,
        cast(d.c.attributes, String).label("attributes"), b.c.oldest)
        .select_from(a.join(d, d.c.id == a.c.debtor_id)
                     .outerjoin(b, b.c.debtor_id == a.c.debtor_id))
        .where(*_to_gate(tenant_id, debtors)))).all()
    if not rows:
        return []
    points, recent = await _gate_context(session, tenant_id, since, select(a.c.debtor_id)
                                         .where(*_to_gate(tenant_id, debtors)))
    return _group(rows, points, recent)


async def _gate_context(session: AsyncSession, tenant_id: int, since: datetime,
                        gated: Any) -> tuple[dict[int, list[tuple[Any, ...]]],
                                             dict[int, list[tuple[Any, ...]]]]:
    """The contact points (in the order they are picked) and the contacts made since
    ``since`` of the debtors ``gated`` selects, as plain rows per debtor."""
    cp, i = table_of(ContactPoint), table_of(Interaction)
    points: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in (await session.execute(select(
            cp.c.debtor_id, cp.c.kind, cp.c.consent,
            cast(cp.c.opted_out_channels, String), cast(cp.c.suppressions, String),
            cp.c.origin, cp.c.label).where(
            cp.c.tenant_id == tenant_id, cp.c.debtor_id.in_(gated))
            .order_by(cp.c.debtor_id, cp.c.preferred.desc(), cp.c.id))).all():
        points[row[0]].append(tuple(row[1:]))
    recent: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in (await session.execute(select(
            i.c.debtor_id, i.c.channel, i.c.created_at, i.c.status).where(
            i.c.tenant_id == tenant_id, i.c.debtor_id.in_(gated),
            *gate.counted_contacts(since)).order_by(i.c.debtor_id, i.c.created_at,
                                                    i.c.id))).all():
        recent[row[0]].append(tuple(row[1:]))
    return points, recent


def _group(rows: Sequence[Any], points: dict[int, list[tuple[Any, ...]]],
           recent: dict[int, list[tuple[Any, ...]]]) -> list[_Group]:
    """``rows`` (id, debtor, version, step, instant, day, attempt, the debtor's fields,
    their oldest unpaid due date) grouped by gate key (:func:`gate_groups`)."""
    groups: dict[tuple[Any, ...], _Group] = {}
    no_points: tuple[Any, ...] = ()
    for r in rows:
        debtor_id = r.debtor_id
        key = (r.version_id, r.step_index, r.attempt, r.planned_at, r.due_on,
               aging.days_past_due(r.oldest, r.due_on), r.country, r.subdivision,
               r.timezone, r.kind, r.attributes,
               tuple(points[debtor_id]) if debtor_id in points else no_points,
               tuple(recent[debtor_id]) if debtor_id in recent else no_points)
        group = groups.get(key)
        if group is None:
            groups[key] = group = _Group(r)
        group.ids.append(r.id)
        group.debtor_ids.append(debtor_id)
    return list(groups.values())


async def judge_groups(session: AsyncSession, host: PluginHost, tenant_id: int, cfg: Config,
                       groups: list[_Group], since: datetime
                       ) -> list[tuple[_Group, Judged, datetime]]:
    """Each group judged for its first debtor, loaded as the send path loads them
    (:func:`load_for_gate`): the verdict, and the instant (a deferral moved inside the
    step's window, :func:`fit_to_window`)."""
    loaded = await load_for_gate(session, host, tenant_id, [g.row.debtor_id for g in groups],
                                 since)
    judged_all: list[tuple[_Group, Judged, datetime]] = []
    for g in groups:
        r = g.row
        step = cfg.versions[r.version_id].steps[r.step_index]
        judged = judge_channels(host, loaded, r.debtor_id, chain_of(step, r.attempt),
                                r.planned_at, r.due_on)
        at = r.planned_at
        if judged.decision == "defer" and judged.until is not None:
            judged, at = fit_to_window(host, loaded, r, step, judged)
        judged_all.append((g, judged, at))
    return judged_all


async def gate_planned(session: AsyncSession, host: PluginHost, tenant_id: int, cfg: Config,
                       now: datetime, result: PlanResult, debtors: Debtors = None,
                       record: bool = True) -> None:
    """6. The gate over the planned contacts: judged once per distinct gate key
    (:func:`gate_groups`) with the first debtor of the key, loaded as the send path loads
    them (:func:`load_for_gate`); the verdicts and the decision rows written set-based
    (:func:`write_verdicts`; ``record``: as for :func:`plan_tenant`)."""
    since = now - timedelta(days=7)
    groups = await gate_groups(session, tenant_id, since, debtors)
    if not groups:
        return
    judged_all = await judge_groups(session, host, tenant_id, cfg, groups, since)
    for g, judged, _ in judged_all:
        result.verdicts[judged.decision] = result.verdicts.get(judged.decision, 0) + len(g.ids)
    result.verdicts["gate_calls"] = result.verdicts.get("gate_calls", 0) + len(groups)
    await write_verdicts(session, tenant_id, judged_all, now, record)


STATUS_OF = {"allow": "planned", "defer": "deferred", "deny": "denied"}


def _templates(tenant_id: int, judged: list[tuple[_Group, Judged, datetime]],
               now: datetime, record: bool = True) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per group: the actions' status and the decision rows of one of them (no debtor or
    subject yet; none without ``record``)."""
    templates: list[tuple[str, list[dict[str, Any]]]] = []
    for g, j, at in judged:
        status = STATUS_OF[j.decision]
        if not record:
            templates.append((status, []))
            continue
        templates.append((status, decisions.rows(
            tenant_id, "planner", now, {**j.verdict, "until": at if status == "deferred"
                                        else None}, j.channel, None, None,
            judged_at=g.row.planned_at)))
    return templates


def _verdict_arrays(tenant_id: int, judged: list[tuple[_Group, Judged, datetime]],
                    now: datetime,
                    templates: list[tuple[str, list[dict[str, Any]]]] | None = None,
                    record: bool = True
                    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The verdicts as PostgreSQL array parameters: per group (numbered from 1, in order)
    its status, channel, verdict and instant; per group and reason its decision row (none
    without ``record``)."""
    templates = templates if templates is not None else _templates(tenant_id, judged, now,
                                                                   record)
    per_group: dict[str, list[Any]] = {
        "statuses": [s for s, _ in templates], "channels": [j.channel for _, j, _ in judged],
        "verdicts": [msgspec.json.encode(j.verdict).decode() for _, j, _ in judged],
        "ats": [at for _, _, at in judged]}
    reason_rows = [(n, x) for n, (_, found) in enumerate(templates, 1) for x in found]
    per_reason: dict[str, list[Any]] = {
        "rg": [n for n, _ in reason_rows], "rdecision": [x["decision"] for _, x in reason_rows],
        "rsource": [x["source"] for _, x in reason_rows],
        "rcode": [x["code"] for _, x in reason_rows],
        "rcounted": [x["counted"] for _, x in reason_rows],
        "rchannel": [x["channel"] for _, x in reason_rows],
        "rdeferral": [x["deferral_seconds"] for _, x in reason_rows]}
    return per_group, per_reason


async def write_verdicts(session: AsyncSession, tenant_id: int,
                         judged: list[tuple[_Group, Judged, datetime]], now: datetime,
                         record: bool = True) -> None:
    """Each group's verdict on its actions and its decision rows (one per reason and
    action, :func:`cartera.compliance.decisions.rows`; none without ``record``). On
    PostgreSQL one ``UPDATE ... FROM unnest(...)`` and one ``INSERT ... SELECT`` per
    :data:`UPDATE_CHUNK` actions, each verdict sent (and parsed) once per group, not per
    action; else an executemany."""
    templates = _templates(tenant_id, judged, now, record)
    if session.get_bind().dialect.name != "postgresql":
        changes: list[dict[str, Any]] = []
        recorded: list[dict[str, Any]] = []
        for (g, j, at), (status, reasons) in zip(judged, templates, strict=True):
            for action_id, debtor_id in zip(g.ids, g.debtor_ids, strict=True):
                changes.append({"b_id": action_id, "b_status": status, "b_channel": j.channel,
                                "b_verdict": j.verdict, "b_at": at})
                recorded += [{**x, "debtor_id": debtor_id, "subject_id": action_id}
                             for x in reasons]
        if recorded:
            await decisions.record(session, recorded)
        await bulk_update_actions(session, changes, now)
        return
    per_group, per_reason = _verdict_arrays(tenant_id, judged, now, templates)
    flat = [(action_id, debtor_id, n) for n, (g, _, _) in enumerate(judged, 1)
            for action_id, debtor_id in zip(g.ids, g.debtor_ids, strict=True)]
    for i in range(0, len(flat), UPDATE_CHUNK):
        part = flat[i:i + UPDATE_CHUNK]
        ids = {"ids": [x[0] for x in part], "debtors": [x[1] for x in part],
               "groups": [x[2] for x in part]}
        await session.execute(text(
            "UPDATE actions AS a SET status = k.status, channel = k.channel, "
            "verdict = k.verdict, planned_at = k.at, updated_at = :now "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:groups AS int[])) AS v(id, g) "
            "JOIN unnest(CAST(:statuses AS text[]), CAST(:channels AS text[]), "
            "CAST(:verdicts AS jsonb[]), CAST(:ats AS timestamptz[])) WITH ORDINALITY "
            "AS k(status, channel, verdict, at, g) ON k.g = v.g "
            "WHERE a.id = v.id"), {"now": now, **ids, **per_group})
        if not per_reason["rg"]:
            continue
        await session.execute(text(
            "INSERT INTO compliance_decisions (tenant_id, decided_at, path, decision, "
            "source, code, counted, channel, debtor_id, subject_id, deferral_seconds) "
            "SELECT :tenant, :now, 'planner', r.decision, r.source, r.code, r.counted, "
            "r.channel, v.debtor_id, v.id, r.deferral "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:debtors AS bigint[]), "
            "CAST(:groups AS int[])) AS v(id, debtor_id, g) "
            "JOIN unnest(CAST(:rg AS int[]), CAST(:rdecision AS text[]), "
            "CAST(:rsource AS text[]), CAST(:rcode AS text[]), CAST(:rcounted AS boolean[]), "
            "CAST(:rchannel AS text[]), CAST(:rdeferral AS int[])) "
            "AS r(g, decision, source, code, counted, channel, deferral) ON r.g = v.g"),
            {"tenant": tenant_id, "now": now, **ids, **per_reason})


# --- the pass -----------------------------------------------------------------------------

PASS_WORK_MEM = "64MB"
"""``work_mem`` of a planner pass over many debtors (``SET LOCAL``: until its transaction
ends)."""


async def plan_tenant(session: AsyncSession, host: PluginHost, tenant_id: int,
                      now: datetime | None = None, *, debtors: Debtors = None,
                      record: bool = True, moved: Any = None) -> PlanResult:
    """One planner pass over the tenant's whole portfolio (or only ``debtors``: the
    replanning of :mod:`cartera.strategies.replan`), in the caller's transaction.
    ``record=False``: the gate's verdicts are written on the actions as always, but no
    decision row goes to ``compliance_decisions`` (a simulation: it reads none, keeps
    none).

    ``moved``: a select of the debtor ids whose placement (segment or stage) changed since
    the previous pass over the tenant in the same transaction (a simulation's days): exit
    and enroll consider only them. They would find nothing for the others, whose
    placements are as that pass left them and whose enrollments it settled (an enrollment
    that ends by completing or stopping keeps its debtor out of a new one until they enter
    a segment again, which is a placement change; one that exits is a moved debtor's).
    Ignored when an active version has an entry rule (the rule reads the day)."""
    now = now or clock.now()
    await lock_tenant(session, tenant_id, shared=debtors is not None)
    if not isinstance(debtors, int) and session.get_bind().dialect.name == "postgresql":
        # A pass over many debtors: its few big statements were JIT-compiled (seconds each,
        # more than they saved) and their hash joins and sorts spilled to disk.
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text(f"SET LOCAL work_mem = '{PASS_WORK_MEM}'"))
    result = PlanResult()
    zone = await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id))
    today = now.astimezone(ZoneInfo(zone or "UTC")).date()
    cfg = await load_config(session, tenant_id, debtors)
    if debtors is not None and not cfg.versions:
        return result
    if any(v.entry_rule is not None for v in cfg.active):
        moved = None
    await exit_unbound(session, tenant_id, cfg, now, result, debtors, moved)
    live: set[int] | None = None
    if debtors is not None:
        # A few debtors (an event's): those still enrolled need no enroll statements, and
        # only their versions' stop rules are evaluated.
        e = table_of(Enrollment)
        live = set((await session.scalars(select(e.c.version_id).where(
            e.c.tenant_id == tenant_id, e.c.status.in_(LIVE),
            *only(e.c.debtor_id, debtors)))).all())
    if not live or not isinstance(debtors, int):
        await enroll(session, tenant_id, cfg, today, now, result, debtors, moved)
        if session.get_bind().dialect.name == "postgresql" and \
                result.enrolled >= ANALYZE_ROWS:
            # The plan statements join the enrollments just inserted: with the statistics
            # of before (none, on a first day) the gate's key table was joined by a nested
            # loop, every planned contact compared with every key.
            await session.execute(text("ANALYZE enrollments"))
    if debtors is None:
        cfg = await load_config(session, tenant_id)
    await stop_matched(session, tenant_id, cfg, today, now, result, debtors,
                       None if result.enrolled or not isinstance(debtors, int) else live)
    # The contact policy's days: a debtor's local day (an action's ``due_on``) can be the
    # tenant's day minus two (a zone 26 hours behind), as for advance.
    rivals_since = today - timedelta(days=ADVANCE_DAYS)
    await plan_actions(session, tenant_id, cfg, now, result, debtors, host, rivals_since,
                       record)
    if debtors is None or result.planned:
        # Nothing planned for an event's debtors: no new rival, no step to advance past,
        # nothing to gate.
        if not isinstance(debtors, int):  # a bulk load's debtors may be many too
            await analyze_if_grown(session, result)
        if result.rivals is not False:
            await supersede(session, tenant_id, rivals_since, now, result, debtors,
                            result.rivals)
        await advance(session, tenant_id, cfg, now, result, debtors,
                      today - timedelta(days=ADVANCE_DAYS))
        await gate_planned(session, host, tenant_id, cfg, now, result, debtors, record)
    if debtors is None:
        await hold_by_policy(session, tenant_id, now, result)
    return result


ANALYZE_ROWS = 10_000
"""Rows a pass inserts (enrollments + actions) from which their statistics are refreshed."""


async def analyze_if_grown(session: AsyncSession, result: PlanResult) -> None:
    """On PostgreSQL, after a pass inserted many rows (a first day: every debtor enrolled
    and planned), ``ANALYZE`` the two tables inside the transaction (it counts the rows
    this transaction inserted) before the correlated updates that follow: planned with
    the old statistics (an empty ``actions``), the contact-policy UPDATE ran for minutes
    over 100,000 actions instead of about a second."""
    if session.get_bind().dialect.name == "postgresql" and \
            result.enrolled + result.planned >= ANALYZE_ROWS:
        await session.execute(text("ANALYZE enrollments, actions"))


def window_fit(at: datetime, zone: str, window: dict[str, Any]) -> datetime:
    """The first instant at or after ``at`` inside ``window`` in ``zone``."""
    return next_opening(at, zone, window)[1]


async def hold_by_policy(session: AsyncSession, tenant_id: int, now: datetime,
                         result: PlanResult) -> None:
    """7. contact policy beyond one a day (:mod:`.policy`): minimum gap, weekly cap."""
    found = await policy.load_policy(session, tenant_id)
    for key, n in (await policy.hold_planned(session, tenant_id, found, window_fit,
                                             now)).items():
        result.verdicts[key] = result.verdicts.get(key, 0) + n
