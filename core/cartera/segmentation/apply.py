"""One evaluation pass: every debtor's (or one debtor's) stage and segment, applied.

:meth:`rules.CompiledRules.select_pass` computes, in one statement over ``debtors`` LEFT JOIN
the per-debtor summary and the stored placement, each debtor's days-past-due stage, its
stored stage, its segment (computed with the stage it is being given) and its stored
segment. Only the rows where something changes are kept:

* whole portfolio: into a temporary table (``CREATE TEMPORARY TABLE ... AS SELECT ...
  WHERE changed``; on PostgreSQL a large tenant's pass is split into debtor id ranges run
  in parallel, see :func:`parallel_ranges`), from which three set-based statements append
  the history and update or insert the placements. In the steady state (a daily run where
  few debtors move) the table is nearly empty, so the run costs one read of the summary;
* one debtor: the pass is one row, read into Python, and only the writes it calls for are
  issued (none when nothing changed).

A tenant's first run is the opposite of the steady state: every debtor is placed, so two
rows per debtor are written (placement and history). Neither table has foreign keys
(measured at 1M debtors on the bench machine: a debtor reference alone cost 5.5 s per
table; before migration 0011 a first run wrote four rows per debtor and checked four
references, 23-32 s). Their guarantee is kept by locks, cheaper because they are taken
once: :func:`lock_tenant_placements` makes a whole-portfolio run and a debtor's deletion
exclude each other (so a run never places a debtor deleted under it), and a one-debtor
pass that writes locks its debtor row as a reference check would.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    column,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    table,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from cartera import clock
from cartera.db.base import UtcDateTime, table_of
from cartera.portfolio.locks import held
from cartera.portfolio.models import Debtor
from cartera.segmentation import events, rules, stages
from cartera.segmentation.models import Placement, PlacementMove, Segment, Stage

PASS_TABLE = "segmentation_pass"
_COLUMNS = (("debtor_id", BigInteger), ("dpd_stage", BigInteger), ("cur_stage", BigInteger),
            ("manual", Boolean), ("outcome", BigInteger), ("cur_segment", BigInteger))


@dataclass(frozen=True)
class Pass:
    """What one pass writes: the tenant, the instant and who (for the stage history), and
    the run it belongs to (for the segment history)."""

    tenant_id: int
    now: datetime
    actor: str
    run_id: int | None
    segments: bool  # a rule set exists (else only stages are assigned)


def stage_changes(e: Any) -> ColumnElement[bool]:
    """The debtor has no placement yet, or its stage follows days past due and differs."""
    return or_(e.c.cur_stage.is_(None),
               and_(e.c.manual.is_(False), e.c.cur_stage != e.c.dpd_stage))


def segment_changes(e: Any) -> ColumnElement[bool]:
    """The stored segment is missing or differs from the computed one."""
    return or_(e.c.cur_segment.is_(None), e.c.cur_segment != e.c.outcome)


@dataclass(frozen=True)
class PassQuery:
    """The tenant's stages and rules compiled once; :meth:`select` gives the pass over any
    set of debtors (:data:`rules.Debtors`)."""

    compiled: rules.CompiledRules
    outcomes: list[int]
    stage_rules: list[rules.Rule]
    stage_ids: list[int]

    def select(self, debtors: rules.Debtors = None) -> Any:
        return self.compiled.select_pass(self.outcomes, self.stage_rules, self.stage_ids,
                                         debtors)


async def compile_pass(session: AsyncSession, tenant_id: int, segments: list[Segment],
                       as_of: date, balances: Any = None) -> PassQuery:
    """The :meth:`~rules.CompiledRules.select_pass` of the tenant's stages and rules, over
    the summary ``balances`` (see :attr:`rules.CompiledRules.balances`)."""
    ordered = await stages.active_stages(session, tenant_id)
    return _pass_query(tenant_id, segments, ordered, as_of, session.get_bind().dialect.name,
                       balances)


def _pass_query(tenant_id: int, segments: list[Segment], ordered: list[Stage], as_of: date,
                dialect: str, balances: Any) -> PassQuery:
    parsed = [rules.parse_rule(s.rule, f"segments[{i}].rule") for i, s in enumerate(segments)]
    compiled = rules.CompiledRules(parsed, tenant_id, as_of, dialect,
                                   stage_ids={s.code: s.id for s in ordered},
                                   balances=balances)
    return PassQuery(compiled, [s.id for s in segments], stages.dpd_rules(ordered),
                     [s.id for s in ordered])


PASS_DEBTOR = "pass_debtor"
"""The bound parameter naming the debtor of :func:`one_debtor_pass`."""
_ONE_DEBTOR: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_ONE_DEBTOR_MAX = 256


async def one_debtor_pass(session: AsyncSession, tenant_id: int, segments: list[Segment],
                          as_of: date) -> Any:
    """The pass of one debtor (:meth:`PassQuery.select` over the stored summary), with the
    debtor the bound parameter :data:`PASS_DEBTOR`: built once per tenant, rule set, stages,
    day and dialect and kept (the last :data:`_ONE_DEBTOR_MAX`), since every payment, reply
    or opt-out re-segments its debtor with the same statement. The key holds every input of
    the build (each segment's id, position and rule, each stage's id, code, position and
    days), so a changed rule set or stage builds another; the stages are read each time."""
    ordered = await stages.active_stages(session, tenant_id)
    dialect = session.get_bind().dialect.name
    key = (dialect, tenant_id, as_of,
           tuple((s.id, s.position, json.dumps(s.rule, sort_keys=True, default=str))
                 for s in segments),
           tuple((s.id, s.code, s.position, s.min_dpd, s.max_dpd) for s in ordered))
    found = _ONE_DEBTOR.get(key)
    if found is None:
        q = _pass_query(tenant_id, segments, ordered, as_of, dialect, None)
        found = q.select(bindparam(PASS_DEBTOR, type_=BigInteger))
        _ONE_DEBTOR[key] = found
        while len(_ONE_DEBTOR) > _ONE_DEBTOR_MAX:
            _ONE_DEBTOR.popitem(last=False)
    else:
        _ONE_DEBTOR.move_to_end(key)
    return found


# --- the whole portfolio ------------------------------------------------------------------

async def plan_whole_portfolio(session: AsyncSession) -> None:
    """On PostgreSQL, for the rest of the transaction: no JIT and no parallel workers.

    The CASE over the per-debtor summary is one long expression: at 1M debtors the planner's
    cost estimate turns on JIT inlining and optimisation, which took 1.3-2.1 s to compile a
    query that runs in about 2 s; and its parallel plans re-run the whole summary aggregate
    in every worker (measured: preview 5.8 s with both, 2.2 s without; :func:`apply_all`
    runs its pass in parallel another way, see :func:`parallel_ranges`). Both are per-
    transaction planner settings (``SET LOCAL``): nothing else is affected."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL jit = off"))
        await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


async def lock_tenant_placements(session: AsyncSession, tenant_id: int, *,
                                 shared: bool) -> None:
    """Until the transaction ends, on PostgreSQL: a whole-portfolio pass (exclusive) and
    debtor deletions (``shared``) of the tenant exclude each other. This is what keeps the
    placements, which have no foreign keys, from naming a debtor deleted during a run.
    SQLite has one writer at a time: nothing to do."""
    if session.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(text(f"SELECT {fn}(:space, :tenant)"),
                              {"space": _LOCK_SPACE, "tenant": tenant_id})


async def lock_debtor(session: AsyncSession, debtor_id: int) -> None:
    """Lock the debtor's row as a foreign-key check would (``FOR KEY SHARE``) before writing
    their placement, which has no foreign key: a concurrent deletion of the debtor waits
    for this transaction."""
    if held(session, ("debtor", debtor_id)):  # the money lock of the chain's write holds it
        return
    await session.execute(select(Debtor.id).where(Debtor.id == debtor_id)
                          .with_for_update(key_share=True))


_LOCK_SPACE = 0x5E6  # the first key of the two-key advisory lock: "placements"


async def apply_all(session: AsyncSession, p: Pass, q: PassQuery,
                    within: rules.Debtors = None) -> int:
    """Keep the changed rows of the pass over every debtor (or only ``within``) in a
    temporary table and apply them set-based; returns how many debtors changed segment."""
    pg = session.get_bind().dialect.name == "postgresql"
    await lock_tenant_placements(session, p.tenant_id, shared=False)
    ranges = [within] if within is not None else await parallel_ranges(session, p.tenant_id)
    await plan_whole_portfolio(session)
    branches = []
    for debtors in ranges:
        e = q.select(debtors).subquery("e")
        changed = or_(stage_changes(e), segment_changes(e)) if p.segments else stage_changes(e)
        branches.append(select(*e.c).where(changed))
    await session.execute(text(f"DROP TABLE IF EXISTS {'pg_temp' if pg else 'temp'}."
                               f"{PASS_TABLE}"))
    await run_parallel(session, len(ranges) - 1)
    await session.execute(CreateTempAs(PASS_TABLE, union_of(branches)))
    await run_parallel(session, 0)
    t = table(PASS_TABLE, *[column(name, kind) for name, kind in _COLUMNS])
    if pg:
        await session.execute(text(f"ANALYZE {PASS_TABLE}"))
    after = await events.before_moves(session)
    await _append_history(session, p, t)
    await _update_placements(session, p, t)
    await _insert_placements(session, p, t)
    moves = 0
    if p.segments:
        moves = int(await session.scalar(
            select(func.count()).select_from(t).where(segment_changes(t))) or 0)
    await session.execute(text(f"DROP TABLE {'pg_temp' if pg else 'temp'}.{PASS_TABLE}"))
    await events.publish_moves(session, p.tenant_id, after, p.now, p.actor)
    return moves


PARALLEL_FROM = 100_000
"""Debtor ids a tenant spans from which a whole-portfolio pass on PostgreSQL is split."""


async def parallel_ranges(session: AsyncSession, tenant_id: int) -> list[rules.Debtors]:
    """The tenant's debtor ids in as many equal ranges as processes PostgreSQL runs a
    parallel query with (``max_parallel_workers_per_gather`` workers and the leader), or
    one range (all) on SQLite, for a small tenant or when parallel query is off.

    PostgreSQL runs a query on one core, and its parallel plans for the pass re-run the
    whole summary aggregate in every worker. A UNION ALL of the pass over disjoint id ranges
    is a Parallel Append of plans that each process runs whole (its ranges of debtors,
    balances and placements, in id order): on the 2-core bench machine at 1M debtors the
    pass went from 1.7 s to 0.8-0.9 s with three ranges, against 1.0-1.1 s with two."""
    if session.get_bind().dialect.name != "postgresql":
        return [None]
    # The session's value, not one a SET LOCAL earlier in the transaction left behind.
    workers = int(await session.scalar(text(
        "SELECT reset_val FROM pg_settings WHERE name = 'max_parallel_workers_per_gather'"))
        or 0)
    low, high = (await session.execute(select(func.min(Debtor.id), func.max(Debtor.id))
                                       .where(Debtor.tenant_id == tenant_id))).one()
    if workers < 1 or low is None or high - low < PARALLEL_FROM:
        return [None]
    step = -(-(high + 1 - low) // (workers + 1))
    return [(start, min(start + step, high + 1)) for start in range(low, high + 1, step)]


def union_of(branches: list[Any]) -> Any:
    """The UNION ALL of the per-range statements (the one statement when not split)."""
    return branches[0] if len(branches) == 1 else union_all(*branches)


async def run_parallel(session: AsyncSession, workers: int) -> None:
    """On PostgreSQL, for the next statements of the transaction: up to ``workers`` parallel
    workers, each running whole branches of a UNION ALL (no partial scans: they would split
    a range again), whatever their cost estimate; ``0`` turns parallel query off again."""
    if session.get_bind().dialect.name != "postgresql":
        return
    settings = {"max_parallel_workers_per_gather": str(workers)}
    if workers:
        settings |= {"parallel_setup_cost": "0", "parallel_tuple_cost": "0",
                     "min_parallel_table_scan_size": "'8GB'",
                     "min_parallel_index_scan_size": "'8GB'"}
    for name, value in settings.items():
        await session.execute(text(f"SET LOCAL {name} = {value}"))


class CreateTempAs(Executable, ClauseElement):
    """``CREATE TEMPORARY TABLE name AS select`` (dropped at commit on PostgreSQL): unlike
    ``INSERT ... SELECT``, PostgreSQL may run its query in parallel."""

    inherit_cache = False

    def __init__(self, name: str, query: Any) -> None:
        self.name, self.query = name, query


@compiles(CreateTempAs)
def _create_temp_as(element: CreateTempAs, compiler: Any, **kw: Any) -> str:
    on_commit = " ON COMMIT DROP" if compiler.dialect.name == "postgresql" else ""
    return (f"CREATE TEMPORARY TABLE {element.name}{on_commit} AS "
            f"{compiler.process(element.query, **kw)}")


def _if(cond: ColumnElement[bool], value: Any) -> Any:
    """``value`` where ``cond`` holds, else NULL (a part of a move that did not change)."""
    return case((cond, value), else_=null())


def _changes(p: Pass, t: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(stage changes, segment changes) of the pass rows ``t``."""
    return stage_changes(t), segment_changes(t) if p.segments else false()


async def _append_history(session: AsyncSession, p: Pass, t: Any) -> None:
    """One history row per changed debtor, with the part(s) that changed."""
    staged, segmented = _changes(p, t)
    await session.execute(insert(table_of(PlacementMove)).from_select(
        ["tenant_id", "debtor_id", "at", "actor", "manual", "from_stage_id", "to_stage_id",
         "from_segment_id", "to_segment_id", "run_id"],
        select(literal(p.tenant_id, BigInteger), t.c.debtor_id,
               literal(p.now, UtcDateTime()), literal(p.actor, String),
               literal(False, Boolean), _if(staged, t.c.cur_stage), _if(staged, t.c.dpd_stage),
               _if(segmented, t.c.cur_segment), _if(segmented, t.c.outcome),
               _if(segmented, literal(p.run_id, BigInteger)))
        .order_by(t.c.debtor_id)))  # see _insert_placements


async def _update_placements(session: AsyncSession, p: Pass, t: Any) -> None:
    """Move the placed debtors that changed: the stage where it follows days past due and
    differs, the segment where it differs."""
    pl = table_of(Placement)
    staged = and_(pl.c.stage_manual.is_(False), t.c.manual.is_(False),
                  t.c.cur_stage != t.c.dpd_stage)
    values: dict[str, Any] = {
        "stage_id": case((staged, t.c.dpd_stage), else_=pl.c.stage_id),
        "stage_set_at": case((staged, literal(p.now, UtcDateTime())),
                             else_=pl.c.stage_set_at)}
    if p.segments:
        segmented = segment_changes(t)
        values |= {"segment_id": case((segmented, t.c.outcome), else_=pl.c.segment_id),
                   "segment_entered_at": case((segmented, literal(p.now, UtcDateTime())),
                                              else_=pl.c.segment_entered_at)}
    await session.execute(update(pl).where(
        pl.c.tenant_id == p.tenant_id, pl.c.debtor_id == t.c.debtor_id,
        t.c.cur_stage.is_not(None)).values(values))


def _place(session: AsyncSession, *, placed_meanwhile: bool = True) -> Any:
    """``INSERT INTO debtor_placements``; ``placed_meanwhile`` leaves a debtor placed since
    the pass read them as they are (``ON CONFLICT DO NOTHING``).

    On PostgreSQL a payment for a debtor never placed (loaded by a bulk import) can place
    them while a whole-portfolio run that also found them unplaced is under way: whichever
    inserted second would fail on the key (the run after all its work). The first one's
    placement stands, and the debtor's next evaluation settles any difference."""
    if not placed_meanwhile:
        return insert(table_of(Placement))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table_of(Placement)).on_conflict_do_nothing(
        index_elements=["debtor_id"])


async def _insert_placements(session: AsyncSession, p: Pass, t: Any) -> None:
    """Place the debtors seen for the first time: a plain INSERT, and only if a debtor was
    placed meanwhile (see :func:`_place`) again leaving them out. ``ON CONFLICT`` checks
    each row on its own: 1.8 s more for a first run at 1M debtors."""
    entered = literal(p.now, UtcDateTime()) if p.segments else null()
    rows = (select(literal(p.tenant_id, BigInteger), t.c.debtor_id, t.c.dpd_stage,
                   literal(False, Boolean), literal(p.now, UtcDateTime()), t.c.outcome, entered)
            .where(t.c.cur_stage.is_(None))
            # In key order: a first run's million rows come from the parallel ranges
            # interleaved, and unsorted they cost the index inserts about 0.8 s more at 1M.
            .order_by(t.c.debtor_id))
    cols = ["tenant_id", "debtor_id", "stage_id", "stage_manual", "stage_set_at", "segment_id",
            "segment_entered_at"]
    try:
        async with session.begin_nested():
            await session.execute(_place(session, placed_meanwhile=False)
                                  .from_select(cols, rows))
    except IntegrityError:
        await session.execute(_place(session).from_select(cols, rows))


# --- one debtor ---------------------------------------------------------------------------

async def apply_one(session: AsyncSession, p: Pass, sel: Any,
                    params: dict[str, Any] | None = None) -> int:
    """Read the one-row pass of a debtor (``sel`` with ``params``) and issue only the writes
    it calls for; returns 1 when the debtor changed segment, else 0 (also for an unknown
    debtor)."""
    row = (await session.execute(sel, params)).mappings().first()
    if row is None:
        return 0
    cur_stage, cur_segment = row["cur_stage"], row["cur_segment"]
    staged = cur_stage is None or (not row["manual"] and cur_stage != row["dpd_stage"])
    segmented = p.segments and cur_segment != row["outcome"]
    if not (staged or segmented):
        return 0
    debtor_id = int(row["debtor_id"])
    await lock_debtor(session, debtor_id)
    stage_id = int(row["dpd_stage"]) if staged else None
    segment_id = int(row["outcome"]) if segmented else None
    history = table_of(PlacementMove)
    move_id = int((await session.execute(insert(history).values(
        tenant_id=p.tenant_id, debtor_id=debtor_id, at=p.now, actor=p.actor, manual=False,
        from_stage_id=cur_stage if staged else None, to_stage_id=stage_id,
        from_segment_id=cur_segment if segmented else None, to_segment_id=segment_id,
        run_id=p.run_id if segmented else None).returning(history.c.id))).scalar_one())
    pl = table_of(Placement)
    values: dict[str, Any] = {}
    if staged:
        values |= {"stage_id": stage_id, "stage_set_at": p.now}
    if segmented:
        values |= {"segment_id": segment_id, "segment_entered_at": p.now}
    if cur_stage is None:
        await session.execute(_place(session).values(tenant_id=p.tenant_id, debtor_id=debtor_id,
                                                stage_manual=False, **values))
    else:
        await session.execute(update(pl).where(pl.c.debtor_id == debtor_id,
                                               pl.c.tenant_id == p.tenant_id).values(values))
    await events.publish_moves(session, p.tenant_id, move_id - 1, p.now, p.actor,
                               last_id=move_id)
    return 1 if segmented else 0


def new_pass(tenant_id: int, actor: str, run_id: int | None, segments: bool) -> Pass:
    """A :class:`Pass` stamped with the current instant."""
    return Pass(tenant_id, clock.now(), actor, run_id, segments)
