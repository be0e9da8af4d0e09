"""Segmentation services: save the rule set, evaluate it set-based, explain, preview, runs.

Evaluation is one SQL statement compiled from the stages and the rules (``CASE WHEN r1 THEN
s1 ...``) over ``debtors`` LEFT JOIN a per-debtor summary of ``debtor_balances``; the
debtors whose stage or segment changes are merged into ``debtor_placements`` and their
moves appended to ``placement_history`` with ``INSERT ... SELECT`` (see
:mod:`cartera.segmentation.apply`) — never a Python loop over debtors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera import changes, clock, money
from cartera.api.context import Actor
from cartera.api.pagination import paginate
from cartera.audit.service import record
from cartera.db import get_owned
from cartera.errors import Invalid, NotFound
from cartera.payments.allocation import DebtorScope, refresh_balances
from cartera.portfolio import summary
from cartera.portfolio.models import (
    Debtor,
    DebtorBalance,
    DebtorTag,
    Obligation,
    Portfolio,
)
from cartera.portfolio.service import tenant_today
from cartera.segmentation import apply, rules, schemas, stages
from cartera.segmentation.models import (
    Placement,
    PlacementMove,
    Segment,
    SegmentRun,
)


def parse_rule_set(data: schemas.RuleSetIn) -> list[rules.Rule]:
    """Validate every rule (422 naming ``segments[i].rule...``) and the rule set's shape."""
    parsed: list[rules.Rule] = []
    seen: dict[str, int] = {}
    nodes = 0
    for i, seg in enumerate(data.segments):
        nodes += rules.rule_nodes(seg.rule)
        if nodes > rules.MAX_RULE_NODES:
            raise Invalid(f"a rule set holds at most {rules.MAX_RULE_NODES} groups and "
                          "comparisons", code="rule_set_too_large", param=f"segments[{i}].rule")
        if seg.code in seen:
            raise Invalid(f"segment code {seg.code!r} is used twice", code="duplicate_code",
                          param=f"segments[{i}].code")
        seen[seg.code] = i
        parsed.append(rules.parse_rule(seg.rule, f"segments[{i}].rule"))
    last = len(parsed) - 1
    if not rules.is_catch_all(parsed[last]):
        raise Invalid("the last segment must be a catch-all ({\"all\": []}) so every debtor "
                      "has a segment", code="missing_catch_all", param=f"segments[{last}].rule")
    return parsed


async def check_stage_codes(session: AsyncSession, tenant_id: int,
                            parsed: list[rules.Rule]) -> dict[str, int]:
    """422 ``unknown_stage`` (naming the rule's value) for a ``stage`` comparison with a code
    that is not one of the tenant's stages: such a rule could never match. Returns the
    stages' ids by code."""
    codes = {s.code: s.id for s in await stages.active_stages(session, tenant_id)}
    for i, rule in enumerate(parsed):
        for path, c in rules.walk_paths(rule, f"segments[{i}].rule"):
            unknown = [v for v in c.values if c.feature == "stage" and v not in codes]
            if unknown:
                raise Invalid(f"no stage with code {unknown[0]!r}; the stages are "
                              f"{', '.join(sorted(codes))}", code="unknown_stage",
                              param=f"{path}.value")
    return codes


async def active_segments(session: AsyncSession, tenant_id: int) -> list[Segment]:
    return list((await session.scalars(
        select(Segment).where(Segment.tenant_id == tenant_id, Segment.active.is_(True))
        .order_by(Segment.position))).all())


_RULE_SETS_LOCK = 0x5E7  # first key of the two-key advisory lock: "rule sets"


async def lock_rule_sets(session: AsyncSession, tenant_id: int) -> None:
    """Until the transaction ends, on PostgreSQL: one replacement of the tenant's segment
    rule set or stages at a time, so a conditional ``PUT`` compares its ``If-Match`` with
    what is there when it writes (SQLite has one writer at a time: nothing to do)."""
    if _dialect(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:space, :tenant)"),
                              {"space": _RULE_SETS_LOCK, "tenant": tenant_id})


async def save_rule_set(session: AsyncSession, actor: Actor,
                        data: schemas.RuleSetIn) -> list[Segment]:
    """Replace the rule set. Segments keep their id by code; removed ones are retired."""
    await check_stage_codes(session, actor.tenant_id, parse_rule_set(data))
    existing = {s.code: s for s in (await session.scalars(
        select(Segment).where(Segment.tenant_id == actor.tenant_id))).all()}
    version = max((s.version for s in existing.values()), default=0) + 1
    wanted = {seg.code for seg in data.segments}
    for seg in existing.values():
        if seg.code not in wanted and seg.active:
            seg.active = False
            seg.position = -1
            seg.version = version
    await session.flush()  # free the positions before reusing them
    for i, seg_in in enumerate(data.segments):
        found = existing.get(seg_in.code)
        seg = found or Segment(tenant_id=actor.tenant_id, code=seg_in.code)
        if found is None:
            session.add(seg)
        seg.name, seg.description, seg.rule = seg_in.name, seg_in.description, seg_in.rule
        seg.position, seg.version, seg.active = i, version, True
    await session.flush()
    record(session, actor, "segments.replace", "segment_rule_set", version,
           {"segments": [s.code for s in data.segments]})
    return await active_segments(session, actor.tenant_id)


async def rule_set_out(session: AsyncSession, tenant_id: int) -> schemas.RuleSetOut:
    segments = await active_segments(session, tenant_id)
    counts = await debtors_per_segment(session, tenant_id)
    return schemas.RuleSetOut(
        version=max((s.version for s in segments), default=0),
        segments=[schemas.SegmentOut(id=s.id, code=s.code, name=s.name,
                                     description=s.description, position=s.position,
                                     rule=s.rule, version=s.version,
                                     debtors=counts.get(s.id, 0)) for s in segments])


async def debtors_per_segment(session: AsyncSession, tenant_id: int) -> dict[int, int]:
    """Placed debtors per segment id (an index-only read of the tenant's placements)."""
    pl = Placement.__table__
    return {int(k): int(v) for k, v in (await session.execute(
        select(pl.c.segment_id, func.count()).where(pl.c.tenant_id == tenant_id,
                                                    pl.c.segment_id.is_not(None))
        .group_by(pl.c.segment_id))).all()}


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


# --- evaluation ---------------------------------------------------------------------------

async def evaluate(session: AsyncSession, tenant_id: int, as_of: date, *,
                   debtor_id: int | None = None, run_id: int | None = None,
                   refresh: bool = True, actor: str = "system",
                   within: tuple[int, int] | None = None, today: date | None = None) -> int:
    """Stage and segment every debtor (or one, or the ids ``within`` ``[low, high)``: their
    balance summaries must be exact, as a bulk load leaves them, nothing is refreshed) in
    one pass; returns how many changed segment.

    Stages follow days past due (manual ones stick); the segment rules see the stage being
    given. See :mod:`cartera.segmentation.apply` for how the pass is written: only the
    debtors that change are touched. ``refresh`` first rebuilds the stale balance summaries
    (or the one debtor's). A summary is only stored as of a day that has begun in the
    tenant's zone: the pass of a later ``as_of`` reads the summary computed for that day
    (:func:`cartera.portfolio.summary.as_of`) and stores none. ``today``: the tenant's
    business day, when the caller has read it (the chain's)."""
    balances = None
    if as_of > (today or await tenant_today(session, tenant_id)):
        balances = await summary.as_of(session, tenant_id, as_of, debtor_id)
    elif refresh and within is None:
        scope = (DebtorScope.stale(tenant_id) if debtor_id is None
                 else DebtorScope.one(tenant_id, debtor_id))
        await refresh_balances(session, tenant_id, scope, as_of)
    segments = await active_segments(session, tenant_id)
    if debtor_id is not None and balances is None:
        one = await apply.one_debtor_pass(session, tenant_id, segments, as_of)
        p = apply.new_pass(tenant_id, actor, run_id, bool(segments))
        return await apply.apply_one(session, p, one, {apply.PASS_DEBTOR: debtor_id})
    q = await apply.compile_pass(session, tenant_id, segments, as_of, balances)
    p = apply.new_pass(tenant_id, actor, run_id, bool(segments))
    if debtor_id is None:
        return await apply.apply_all(session, p, q, within)
    return await apply.apply_one(session, p, q.select(debtor_id))


async def reevaluate_debtor(session: AsyncSession, tenant_id: int, debtor_id: int,
                            as_of: date, *, refresh: bool = True,
                            today: date | None = None) -> int:
    """Re-stage and re-segment one debtor (the same compiled SQL with ``debtor_id = :id``),
    in the caller's transaction. Call it after a payment, reversal or obligation change;
    ``refresh=False`` when the caller has just rebuilt the debtor's balance summary;
    ``today`` as for :func:`evaluate`."""
    return await evaluate(session, tenant_id, as_of, debtor_id=debtor_id, refresh=refresh,
                          today=today)


@changes.step("placements")
async def rederive_placement(session: AsyncSession, change: changes.Change) -> None:
    """The chain's third step: re-stage and re-segment the debtor (the balances step has
    rebuilt a money change's summary; any other change refreshes it here), or delete
    their placement when they are being deleted."""
    if change.debtor_id is None:
        await evaluate(session, change.tenant_id, change.today, actor=f"change: {change.kind}",
                       within=change.within)
        return
    if change.kind == "deleted":
        await delete_debtor_placement(session, change.tenant_id, change.debtor_id)
        return
    await reevaluate_debtor(session, change.tenant_id, change.debtor_id, change.today,
                            refresh=not change.money, today=change.today)


async def run_segmentation(session: AsyncSession, run: SegmentRun, as_of: date) -> None:
    """A whole-portfolio run (stages first, then segments, which may use the stage), with
    its summary recorded on ``run``."""
    started = time.perf_counter()
    run.status, run.started_at, run.as_of = "running", clock.now(), as_of
    segments = await active_segments(session, run.tenant_id)
    run.ruleset_version = max((s.version for s in segments), default=None)
    run.moves = await evaluate(session, run.tenant_id, as_of, run_id=run.id,
                               actor=f"segmentation run {run.id}")
    counts = await debtors_per_segment(session, run.tenant_id)
    run.counts = {s.code: counts.get(s.id, 0) for s in segments}
    # With a rule set, the pass just gave every debtor a segment (the last rule is a
    # catch-all), so the segments count the debtors.
    run.debtors = sum(counts.values()) if segments else int(await session.scalar(
        select(func.count()).select_from(Debtor).where(Debtor.tenant_id == run.tenant_id)) or 0)
    run.status, run.finished_at = "succeeded", clock.now()
    run.duration_ms = int((time.perf_counter() - started) * 1000)


def run_out(r: SegmentRun) -> schemas.RunOut:
    return schemas.RunOut(id=r.id, job_id=r.job_id, status=r.status, as_of=r.as_of,
                          ruleset_version=r.ruleset_version, debtors=r.debtors, moves=r.moves,
                          debtors_per_segment=r.counts or {}, duration_ms=r.duration_ms,
                          error=r.error, created_at=r.created_at, started_at=r.started_at,
                          finished_at=r.finished_at)


async def get_run(session: AsyncSession, tenant_id: int, run_id: int) -> SegmentRun:
    return await get_owned(session, SegmentRun, run_id, tenant_id, what="segmentation run")


# --- explain ------------------------------------------------------------------------------

async def features_of(session: AsyncSession, compiled: rules.CompiledRules,
                      debtor_id: int, stage: str | None) -> rules.Features:
    """The debtor's feature row, with ``stage`` as the stage code the rules compare."""
    row = (await session.execute(compiled.feature_select(debtor_id))).mappings().first()
    if row is None:
        raise NotFound(f"debtor {debtor_id} not found")
    t = compiled.tenant_id
    tags = set((await session.scalars(select(DebtorTag.tag).where(
        DebtorTag.tenant_id == t, DebtorTag.debtor_id == debtor_id))).all())
    open_ = (Obligation.tenant_id == t, Obligation.debtor_id == debtor_id,
             Obligation.status == "open", Obligation.kind != "credit_note",
             Obligation.outstanding_minor > 0)
    products = {p for p in (await session.scalars(
        select(Obligation.product).where(*open_).distinct())).all() if p is not None}
    portfolios = set((await session.scalars(
        select(Portfolio.code).join(Obligation, Obligation.portfolio_id == Portfolio.id)
        .where(*open_).distinct())).all())
    debtor_cols = {c.key for c in Debtor.__table__.c}
    return rules.Features(
        as_of=compiled.as_of,
        debtor={k: row[k] for k in debtor_cols},
        oldest_due=row["oldest_due"], last_paid=row["last_paid"],
        open_count=int(row["open_count"] or 0),
        by_currency={cur: {"out": int(row[f"out_{i}"] or 0), "ovd": int(row[f"ovd_{i}"] or 0),
                           "oldest": row[f"oldest_{i}"]}
                     for i, cur in enumerate(compiled.currencies)},
        tags=tags, products=products, portfolios=portfolios, stage=stage,
        **rules.Features.extras_of(compiled, row))


async def explain(session: AsyncSession, tenant_id: int, debtor_id: int,
                  as_of: date) -> schemas.ExplainOut:
    """Which segment and why as of ``as_of``, evaluated in Python from the debtor's feature
    row: the summary computed for that day and the stage the debtor has then
    (:func:`stages.stage_as_of`). Nothing is written; ``current_segment`` is the stored one."""
    await get_owned(session, Debtor, debtor_id, tenant_id, what="debtor")
    segments = await active_segments(session, tenant_id)
    stage = await stages.stage_as_of(session, tenant_id, debtor_id, as_of)
    parsed = [rules.parse_rule(s.rule, f"segments[{i}].rule") for i, s in enumerate(segments)]
    compiled = rules.CompiledRules(parsed, tenant_id, as_of, _dialect(session),
                                   balances=summary.computed(tenant_id, as_of, debtor_id)
                                   .subquery("bt"))
    features = await features_of(session, compiled, debtor_id, stage.code)
    evaluated: list[schemas.SegmentExplanation] = []
    chosen = None
    for i, (seg, rule) in enumerate(zip(segments, parsed, strict=True)):
        matched, trace = rules.evaluate(rule, features, f"segments[{i}].rule")
        evaluated.append(schemas.SegmentExplanation(code=seg.code, position=seg.position,
                                                    matched=matched, trace=trace))
        if matched:
            chosen = seg.code
            break
    current = await session.scalar(
        select(Segment.code).join(Placement, Placement.segment_id == Segment.id)
        .where(Placement.debtor_id == debtor_id, Placement.tenant_id == tenant_id))
    return schemas.ExplainOut(debtor_id=debtor_id, as_of=as_of, segment=chosen,
                              current_segment=current, evaluated=evaluated)


# --- preview ------------------------------------------------------------------------------

async def preview(session: AsyncSession, tenant_id: int, data: schemas.RuleSetIn,
                  as_of: date) -> schemas.PreviewOut:
    """Counts and amounts per draft segment per currency, and the move matrix from the
    current segments; nothing is written (the summary is the one computed for ``as_of``,
    :func:`cartera.portfolio.summary.as_of`).

    One statement: the draft CASE per debtor, with the per-currency amounts of the same
    per-debtor summary the rules read, joined to the current placement and grouped by
    (draft segment, current segment); on PostgreSQL a large tenant's debtors are grouped
    per id range in parallel, then the groups are added up."""
    parsed = parse_rule_set(data)
    stage_ids = await check_stage_codes(session, tenant_id, parsed)
    bt = DebtorBalance.__table__
    currencies = list((await session.scalars(
        select(bt.c.currency).where(bt.c.tenant_id == tenant_id).distinct())).all())
    compiled = rules.CompiledRules(parsed, tenant_id, as_of, _dialect(session),
                                   currencies=currencies, totals=True, stage_ids=stage_ids,
                                   balances=await summary.as_of(session, tenant_id, as_of))
    ranges = await apply.parallel_ranges(session, tenant_id)
    await apply.plan_whole_portfolio(session)
    keys = [f"{k}_{i}" for i in range(len(compiled.currencies)) for k in ("has", "out", "ovd")]
    m = Placement.__table__
    groups = []
    for debtors in ranges:  # each range grouped in its own process (see parallel_ranges)
        e = compiled.select(list(range(len(parsed))), debtors).subquery("e")
        on = and_(m.c.debtor_id == e.c.debtor_id, *rules.only(m.c.debtor_id, debtors))
        groups.append(select(e.c.outcome, m.c.segment_id.label("current"),
                             func.count().label("n"), *[func.sum(e.c[k]).label(k) for k in keys])
                      .select_from(e.outerjoin(m, on)).group_by(e.c.outcome, m.c.segment_id))
    g = apply.union_of(groups).subquery("g")
    await apply.run_parallel(session, len(ranges) - 1)
    rows = (await session.execute(
        select(g.c.outcome, g.c.current, func.sum(g.c.n), *[func.sum(g.c[k]) for k in keys])
        .group_by(g.c.outcome, g.c.current))).all()
    await apply.run_parallel(session, 0)
    names = {s.id: s.code for s in (await session.scalars(
        select(Segment).where(Segment.tenant_id == tenant_id))).all()}
    return _preview_out(as_of, [s.code for s in data.segments], names, compiled.currencies,
                        rows)


def _preview_out(as_of: date, codes: list[str], names: dict[int, str], currencies: list[str],
                 rows: Sequence[Any]) -> schemas.PreviewOut:
    """Fold the (draft, current) groups of :func:`preview` into its answer: each row is
    ``outcome, current segment id, debtors, then has/out/ovd sums per currency``."""
    counts: dict[int, int] = {}
    moves: dict[tuple[str | None, int], int] = {}
    totals: dict[tuple[int, str], list[int]] = {}
    for pos, current, n, *sums in rows:
        pos, n = int(pos), int(n)
        counts[pos] = counts.get(pos, 0) + n
        key = (names.get(current) if current is not None else None, pos)
        moves[key] = moves.get(key, 0) + n
        for i, cur in enumerate(currencies):
            acc = totals.setdefault((pos, cur), [0, 0, 0])
            for k in range(3):
                acc[k] += int(sums[3 * i + k] or 0)
    by_segment: dict[int, list[schemas.CurrencyTotals]] = {}
    for (pos, cur), (has, out, ovd) in sorted(totals.items()):
        if has:
            by_segment.setdefault(pos, []).append(schemas.CurrencyTotals(
                currency=cur, debtors=has, outstanding_amount=money.from_minor(out, cur),
                overdue_amount=money.from_minor(ovd, cur)))
    return schemas.PreviewOut(
        as_of=as_of,
        segments=[schemas.PreviewSegment(code=code, debtors=counts.get(i, 0),
                                         balances=by_segment.get(i, []))
                  for i, code in enumerate(codes)],
        moves=sorted((schemas.PreviewMove(from_segment=f, to_segment=codes[pos], debtors=n)
                      for (f, pos), n in moves.items()),
                     key=lambda mv: (mv.from_segment or "", mv.to_segment)))


async def today(session: AsyncSession, tenant_id: int, as_of: date | None) -> date:
    return as_of or await tenant_today(session, tenant_id)


async def history(session: AsyncSession, tenant_id: int, debtor_id: int | None, limit: int,
                  starting_after: int | None) -> list[schemas.MoveOut]:
    """The placement history rows with a segment part, in id order, each with when the
    debtor left that segment (the ``at`` of their next such row)."""
    h, nxt = PlacementMove, aliased(PlacementMove)
    src, dst = aliased(Segment), aliased(Segment)
    left_at = (select(func.min(nxt.at)).where(
        nxt.tenant_id == h.tenant_id, nxt.debtor_id == h.debtor_id,
        nxt.to_segment_id.is_not(None), nxt.id > h.id).scalar_subquery())
    stmt = (select(h.id, h.debtor_id, src.code, dst.code, h.run_id, h.at, left_at)
            .outerjoin(src, src.id == h.from_segment_id).outerjoin(dst, dst.id == h.to_segment_id)
            .where(h.tenant_id == tenant_id, h.to_segment_id.is_not(None)))
    if debtor_id is not None:
        stmt = stmt.where(h.debtor_id == debtor_id)
    rows = (await session.execute(paginate(stmt, h.id, limit, starting_after))).all()
    return [schemas.MoveOut(id=r[0], debtor_id=r[1], from_segment=r[2], to_segment=r[3],
                            run_id=r[4], at=r[5], left_at=r[6]) for r in rows]


async def delete_debtor_placement(session: AsyncSession, tenant_id: int,
                                  debtor_id: int) -> None:
    """Delete a debtor's placement and its history, in the transaction deleting the debtor.

    Neither table has foreign keys (migration 0011), so nothing cascades to them; the
    shared lock waits for a whole-portfolio run of the tenant to end (and holds the next
    one back) so that it cannot place the debtor again after this."""
    await apply.lock_tenant_placements(session, tenant_id, shared=True)
    for model in (Placement, PlacementMove):
        await session.execute(delete(model).where(model.tenant_id == tenant_id,
                                                  model.debtor_id == debtor_id))


# --- amount brackets ----------------------------------------------------------------------

_NICE = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5))


def nice_figure(value: Decimal) -> Decimal:
    """The nearest of 1, 2, 2.5 and 5 times a power of ten (…, 500, 1,000, 2,500, 5,000,
    10,000, 20,000 …): the figures collections managers draw brackets at."""
    if value <= 0:
        return Decimal(0)
    e = value.adjusted()
    candidates = [m.scaleb(k) for k in (e - 1, e, e + 1) for m in _NICE]
    return min(candidates, key=lambda c: (abs(c - value), c))


async def brackets(session: AsyncSession, tenant_id: int, feature: str, currency: str,
                   count: int, as_of: date) -> schemas.BracketsOut:
    """Suggest ``count`` amount brackets holding similar shares of debtors.

    The quantiles come from one SQL statement (``NTILE`` over the debtors with a positive
    amount in ``currency``); each boundary is rounded to a nice figure and duplicates are
    merged; then one more statement counts the debtors per resulting bracket. The amounts
    are the summary computed for ``as_of`` (:func:`cartera.portfolio.summary.as_of`).
    """
    if not money.is_currency(currency):
        raise Invalid(f"{currency!r} is not an ISO 4217 currency", code="unknown_currency",
                      param="currency")
    bt = await summary.as_of(session, tenant_id, as_of)
    amount = bt.c.overdue_minor if feature == "overdue_amount" else bt.c.outstanding_minor
    where = (bt.c.tenant_id == tenant_id, bt.c.currency == currency, amount > 0)
    ranked = select(amount.label("amount"),
                    func.ntile(count).over(order_by=amount).label("tile")).where(*where)
    r = ranked.subquery("r")
    tiles = (await session.execute(select(r.c.tile, func.min(r.c.amount))
                                   .group_by(r.c.tile).order_by(r.c.tile))).all()
    unit = Decimal(1).scaleb(-money.exponent(currency))
    bounds: list[int] = []
    for _, low in tiles[1:]:
        figure = nice_figure(Decimal(int(low)) * unit).quantize(unit, rounding=ROUND_HALF_UP)
        minor = money.to_minor(figure, currency)
        if minor > 0 and (not bounds or minor > bounds[-1]):
            bounds.append(minor)
    index = case(*[(amount < b, literal(i)) for i, b in enumerate(bounds)],
                 else_=literal(len(bounds))) if bounds else literal(0)
    counted = {int(i): int(n) for i, n in (await session.execute(
        select(index.label("i"), func.count()).where(*where).group_by(index))).all()}
    total = sum(counted.values())
    debtors = int(await session.scalar(select(func.count()).select_from(Debtor)
                                       .where(Debtor.tenant_id == tenant_id)) or 0)
    edges: list[int | None] = [0, *bounds, None]
    out = [schemas.BracketOut(
        low=money.from_minor(cast(int, edges[i]), currency),
        high=None if edges[i + 1] is None else money.from_minor(cast(int, edges[i + 1]),
                                                                  currency),
        debtors=counted.get(i, 0),
        share=round(counted.get(i, 0) / total, 4) if total else 0.0)
        for i in range(len(bounds) + 1)]
    return schemas.BracketsOut(feature=feature, currency=currency, requested=count,
                               boundaries=[money.from_minor(b, currency) for b in bounds],
                               brackets=out, debtors=total, without_amount=debtors - total)
