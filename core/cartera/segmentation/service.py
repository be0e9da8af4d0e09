"""Segmentation services: save the rule set, evaluate it set-based, explain, preview, runs.

Evaluation is one SQL statement compiled from the rules (``CASE WHEN r1 THEN s1 ...``) over
``debtors`` LEFT JOIN a per-debtor summary of ``debtor_balances``; its result is merged into
``segment_memberships`` and the moves are appended to ``segment_history`` with
``INSERT ... SELECT`` — never a Python loop over debtors.
"""

from __future__ import annotations

import time
from datetime import date
from typing import cast

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera import clock, money
from cartera.api.context import Actor
from cartera.audit.service import record
from cartera.db.base import UtcDateTime
from cartera.errors import Invalid, NotFound
from cartera.payments.allocation import DebtorScope, refresh_balances
from cartera.portfolio.models import (
    Debtor,
    DebtorBalance,
    DebtorTag,
    Obligation,
    Portfolio,
)
from cartera.portfolio.service import tenant_today
from cartera.segmentation import rules, schemas
from cartera.segmentation.models import Segment, SegmentMembership, SegmentMove, SegmentRun


def parse_rule_set(data: schemas.RuleSetIn) -> list[rules.Rule]:
    """Validate every rule (422 naming ``segments[i].rule...``) and the rule set's shape."""
    parsed: list[rules.Rule] = []
    seen: dict[str, int] = {}
    for i, seg in enumerate(data.segments):
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


async def active_segments(session: AsyncSession, tenant_id: int) -> list[Segment]:
    return list((await session.scalars(
        select(Segment).where(Segment.tenant_id == tenant_id, Segment.active.is_(True))
        .order_by(Segment.position))).all())


async def save_rule_set(session: AsyncSession, actor: Actor,
                        data: schemas.RuleSetIn) -> list[Segment]:
    """Replace the rule set. Segments keep their id by code; removed ones are retired."""
    parse_rule_set(data)
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
    m = SegmentMembership.__table__
    counts: dict[int, int] = {int(k): int(v) for k, v in (await session.execute(
        select(m.c.segment_id, func.count()).where(m.c.tenant_id == tenant_id)
        .group_by(m.c.segment_id))).all()}
    return schemas.RuleSetOut(
        version=max((s.version for s in segments), default=0),
        segments=[schemas.SegmentOut(id=s.id, code=s.code, name=s.name,
                                     description=s.description, position=s.position,
                                     rule=s.rule, version=s.version,
                                     debtors=counts.get(s.id, 0)) for s in segments])


def _table(model: type) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def compile_segments(session: AsyncSession, tenant_id: int, parsed: list[rules.Rule],
                     as_of: date) -> rules.CompiledRules:
    return rules.CompiledRules(parsed, tenant_id, as_of, _dialect(session))


# --- evaluation ---------------------------------------------------------------------------

async def evaluate(session: AsyncSession, tenant_id: int, as_of: date, *,
                   debtor_id: int | None = None, run_id: int | None = None) -> int:
    """Assign every debtor (or one) to its segment; returns how many moved.

    Three set-based statements: append the moves to the history, update changed
    memberships, insert the first memberships.
    """
    segments = await active_segments(session, tenant_id)
    if not segments:
        return 0
    scope = (DebtorScope.stale(tenant_id) if debtor_id is None
             else DebtorScope.one(tenant_id, debtor_id))
    await refresh_balances(session, tenant_id, scope, as_of)
    parsed = [rules.parse_rule(s.rule, f"segments[{i}].rule") for i, s in enumerate(segments)]
    compiled = compile_segments(session, tenant_id, parsed, as_of)
    ids = [s.id for s in segments]
    now = clock.now()
    m, h = _table(SegmentMembership), _table(SegmentMove)

    e = compiled.select(ids, debtor_id).subquery("e")
    moved = (select(literal(tenant_id, BigInteger), e.c.debtor_id, m.c.segment_id,
                    e.c.outcome, literal(run_id, BigInteger), literal(now, UtcDateTime()))
             .select_from(e.outerjoin(m, m.c.debtor_id == e.c.debtor_id))
             .where(or_(m.c.segment_id.is_(None), m.c.segment_id != e.c.outcome)))
    await session.execute(insert(h).from_select(
        ["tenant_id", "debtor_id", "from_segment_id", "to_segment_id", "run_id", "at"], moved))
    # rowcount of INSERT ... SELECT is not reliable across drivers (psycopg gives -1 here)
    counted = select(func.count()).select_from(h).where(h.c.tenant_id == tenant_id, h.c.at == now)
    counted = counted.where(h.c.run_id == run_id if run_id is not None
                            else h.c.debtor_id == debtor_id)
    moves = int(await session.scalar(counted) or 0)

    e = compiled.select(ids, debtor_id).subquery("e")
    await session.execute(
        update(m).where(m.c.tenant_id == tenant_id, m.c.debtor_id == e.c.debtor_id,
                        m.c.segment_id != e.c.outcome)
        .values(segment_id=e.c.outcome, entered_at=now))

    e = compiled.select(ids, debtor_id).subquery("e")
    m2 = _table(SegmentMembership).alias("m2")
    await session.execute(insert(m).from_select(
        ["tenant_id", "debtor_id", "segment_id", "entered_at"],
        select(literal(tenant_id, BigInteger), e.c.debtor_id, e.c.outcome,
               literal(now, UtcDateTime()))
        .where(~exists().where(m2.c.debtor_id == e.c.debtor_id))))
    return moves


async def reevaluate_debtor(session: AsyncSession, tenant_id: int, debtor_id: int,
                            as_of: date) -> int:
    """Re-segment one debtor (the same compiled SQL with ``debtor_id = :id``), in the
    caller's transaction. Call it after a payment, reversal or obligation change."""
    return await evaluate(session, tenant_id, as_of, debtor_id=debtor_id)


async def run_segmentation(session: AsyncSession, run: SegmentRun, as_of: date) -> None:
    """A whole-portfolio run, with its summary recorded on ``run``."""
    started = time.perf_counter()
    run.status, run.started_at, run.as_of = "running", clock.now(), as_of
    segments = await active_segments(session, run.tenant_id)
    run.ruleset_version = max((s.version for s in segments), default=None)
    run.moves = await evaluate(session, run.tenant_id, as_of, run_id=run.id)
    run.debtors = int(await session.scalar(
        select(func.count()).select_from(Debtor).where(Debtor.tenant_id == run.tenant_id)) or 0)
    m = SegmentMembership.__table__
    counts: dict[int, int] = {int(k): int(v) for k, v in (await session.execute(
        select(m.c.segment_id, func.count()).where(m.c.tenant_id == run.tenant_id)
        .group_by(m.c.segment_id))).all()}
    run.counts = {s.code: counts.get(s.id, 0) for s in segments}
    run.status, run.finished_at = "succeeded", clock.now()
    run.duration_ms = int((time.perf_counter() - started) * 1000)


def run_out(r: SegmentRun) -> schemas.RunOut:
    return schemas.RunOut(id=r.id, job_id=r.job_id, status=r.status, as_of=r.as_of,
                          ruleset_version=r.ruleset_version, debtors=r.debtors, moves=r.moves,
                          debtors_per_segment=r.counts or {}, duration_ms=r.duration_ms,
                          error=r.error, created_at=r.created_at, started_at=r.started_at,
                          finished_at=r.finished_at)


async def get_run(session: AsyncSession, tenant_id: int, run_id: int) -> SegmentRun:
    run = await session.get(SegmentRun, run_id)
    if run is None or run.tenant_id != tenant_id:
        raise NotFound(f"segmentation run {run_id} not found")
    return run


# --- explain ------------------------------------------------------------------------------

async def features_of(session: AsyncSession, compiled: rules.CompiledRules,
                      debtor_id: int) -> rules.Features:
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
        tags=tags, products=products, portfolios=portfolios)


async def explain(session: AsyncSession, tenant_id: int, debtor_id: int,
                  as_of: date) -> schemas.ExplainOut:
    """Which segment and why, evaluated in Python from the debtor's feature row."""
    debtor = await session.get(Debtor, debtor_id)
    if debtor is None or debtor.tenant_id != tenant_id:
        raise NotFound(f"debtor {debtor_id} not found")
    segments = await active_segments(session, tenant_id)
    await refresh_balances(session, tenant_id, DebtorScope.one(tenant_id, debtor_id), as_of)
    parsed = [rules.parse_rule(s.rule, f"segments[{i}].rule") for i, s in enumerate(segments)]
    compiled = compile_segments(session, tenant_id, parsed, as_of)
    features = await features_of(session, compiled, debtor_id)
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
        select(Segment.code).join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
        .where(SegmentMembership.debtor_id == debtor_id,
               SegmentMembership.tenant_id == tenant_id))
    return schemas.ExplainOut(debtor_id=debtor_id, as_of=as_of, segment=chosen,
                              current_segment=current, evaluated=evaluated)


# --- preview ------------------------------------------------------------------------------

async def preview(session: AsyncSession, tenant_id: int, data: schemas.RuleSetIn,
                  as_of: date) -> schemas.PreviewOut:
    """Counts and amounts per draft segment per currency, and the move matrix from the
    current memberships; nothing is written (balances are only refreshed)."""
    parsed = parse_rule_set(data)
    await refresh_balances(session, tenant_id, DebtorScope.stale(tenant_id), as_of)
    compiled = compile_segments(session, tenant_id, parsed, as_of)
    codes = [s.code for s in data.segments]
    e = compiled.select(list(range(len(parsed)))).subquery("e")
    counts: dict[int, int] = {int(k): int(v) for k, v in (await session.execute(
        select(e.c.outcome, func.count()).group_by(e.c.outcome))).all()}
    bt = DebtorBalance.__table__
    totals = (await session.execute(
        select(e.c.outcome, bt.c.currency, func.count(), func.sum(bt.c.outstanding_minor),
               func.sum(bt.c.overdue_minor))
        .select_from(e.join(bt, bt.c.debtor_id == e.c.debtor_id))
        .where(bt.c.tenant_id == tenant_id)
        .group_by(e.c.outcome, bt.c.currency).order_by(e.c.outcome, bt.c.currency))).all()
    by_segment: dict[int, list[schemas.CurrencyTotals]] = {}
    for pos, cur, n, out, ovd in totals:
        by_segment.setdefault(int(pos), []).append(schemas.CurrencyTotals(
            currency=cur, debtors=int(n), outstanding_amount=money.from_minor(int(out), cur),
            overdue_amount=money.from_minor(int(ovd), cur)))
    m, s = SegmentMembership.__table__, Segment.__table__
    current = func.coalesce(s.c.code, literal(None, String))
    moves = (await session.execute(
        select(current, e.c.outcome, func.count())
        .select_from(e.outerjoin(m, m.c.debtor_id == e.c.debtor_id)
                     .outerjoin(s, s.c.id == m.c.segment_id))
        .group_by(current, e.c.outcome))).all()
    return schemas.PreviewOut(
        as_of=as_of,
        segments=[schemas.PreviewSegment(code=code, debtors=int(counts.get(i, 0)),
                                         balances=by_segment.get(i, []))
                  for i, code in enumerate(codes)],
        moves=sorted((schemas.PreviewMove(from_segment=f, to_segment=codes[int(pos)],
                                          debtors=int(n)) for f, pos, n in moves),
                     key=lambda mv: (mv.from_segment or "", mv.to_segment)))


async def today(session: AsyncSession, tenant_id: int, as_of: date | None) -> date:
    return as_of or await tenant_today(session, tenant_id)




async def history(session: AsyncSession, tenant_id: int, debtor_id: int | None, limit: int,
                  starting_after: int | None) -> list[schemas.MoveOut]:
    h = SegmentMove
    src, dst = aliased(Segment), aliased(Segment)
    stmt = (select(h.id, h.debtor_id, src.code, dst.code, h.run_id, h.at)
            .outerjoin(src, src.id == h.from_segment_id).outerjoin(dst, dst.id == h.to_segment_id)
            .where(h.tenant_id == tenant_id))
    if debtor_id is not None:
        stmt = stmt.where(h.debtor_id == debtor_id)
    if starting_after is not None:
        stmt = stmt.where(h.id > starting_after)
    rows = (await session.execute(stmt.order_by(h.id).limit(limit + 1))).all()
    return [schemas.MoveOut(id=r[0], debtor_id=r[1], from_segment=r[2], to_segment=r[3],
                            run_id=r[4], at=r[5]) for r in rows]
