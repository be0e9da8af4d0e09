"""Collection stages (fases de cobranza): per-tenant configuration, set-based assignment from
days past due, manual overrides that stick until released, and the stage history.

Defaults, created for a tenant the first time its stages are read (days past due, DPD, count
from the oldest unpaid due date in any currency; a debtor with nothing overdue has DPD 0):

=============  ======  ==========================================================
preventive     0       current: nothing past due yet (pre-mora)
administrative 1-30    from the day after the due date to about a month
extrajudicial  31-180  firmer collection, agencies, credit bureau
judicial       181+    lawsuit, seizure, debt sale
=============  ======  ==========================================================

A tenant may replace them (names, ranges, order); ranges ascend with the order, are
contiguous and cover 0..∞. The DPD stage is a CASE over date bounds compiled like segment
rules (``days_past_due <= max``, first match in order, :func:`dpd_rules`), so there is no
dialect date arithmetic; it is evaluated in the same pass as the segments
(:mod:`cartera.segmentation.apply`), for the whole portfolio or one debtor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera import clock
from cartera.api.context import Actor
from cartera.api.pagination import paginate
from cartera.audit.service import record
from cartera.db import get_owned
from cartera.errors import Conflict, Invalid
from cartera.portfolio import aging, summary
from cartera.portfolio.models import Debtor
from cartera.segmentation import events, rules, schemas
from cartera.segmentation.models import Placement, PlacementMove, Segment, Stage

DEFAULT_STAGES: tuple[tuple[str, str, int, int | None], ...] = (
    ("preventive", "Preventive", 0, 0),
    ("administrative", "Administrative", 1, 30),
    ("extrajudicial", "Extrajudicial", 31, 180),
    ("judicial", "Judicial", 181, None),
)


async def active_stages(session: AsyncSession, tenant_id: int) -> list[Stage]:
    """The tenant's stages in order (a tenant has them from its creation on)."""
    found = list((await session.scalars(
        select(Stage).where(Stage.tenant_id == tenant_id, Stage.active.is_(True))
        .order_by(Stage.position))).all())
    if not found:
        raise AssertionError(f"tenant {tenant_id} has no active stage: every tenant gets "
                             "the defaults when it is created (create_default_stages)")
    return found


def create_default_stages(session: AsyncSession, tenant_id: int) -> None:
    """Give a new tenant the default stages (:data:`DEFAULT_STAGES`), in its transaction."""
    session.add_all([Stage(tenant_id=tenant_id, code=code, name=name, position=i,
                           min_dpd=low, max_dpd=high, active=True)
                     for i, (code, name, low, high) in enumerate(DEFAULT_STAGES)])


def validate(data: schemas.StagesIn) -> None:
    """Ranges ascend in order, are contiguous, non-overlapping, and cover 0..∞."""
    seen: set[str] = set()
    last = len(data.stages) - 1
    expected = 0
    for i, st in enumerate(data.stages):
        if st.code in seen:
            raise Invalid(f"stage code {st.code!r} is used twice", code="duplicate_code",
                          param=f"stages[{i}].code")
        seen.add(st.code)
        if st.min_dpd != expected:
            what = "overlaps the previous range" if st.min_dpd < expected else "leaves a gap"
            raise Invalid(f"stages[{i}] starts at {st.min_dpd} days but must start at "
                          f"{expected}: it {what}",
                          code="range_overlap" if st.min_dpd < expected else "range_gap",
                          param=f"stages[{i}].min_dpd")
        if st.max_dpd is None:
            if i != last:
                raise Invalid("only the last stage is open-ended (max_dpd null)",
                              code="range_overlap", param=f"stages[{i}].max_dpd")
            continue
        if st.max_dpd < st.min_dpd:
            raise Invalid(f"[{st.min_dpd}, {st.max_dpd}] is empty: max_dpd is below min_dpd",
                          code="impossible_range", param=f"stages[{i}].max_dpd")
        if i == last:
            raise Invalid(f"the last stage must be open-ended (max_dpd null) so debtors past "
                          f"{st.max_dpd} days have a stage", code="range_not_covered",
                          param=f"stages[{i}].max_dpd")
        expected = st.max_dpd + 1


async def replace_stages(session: AsyncSession, actor: Actor,
                         data: schemas.StagesIn) -> list[Stage]:
    """Replace the ordered set; stages keep their id by code, removed ones are retired."""
    validate(data)
    await active_stages(session, actor.tenant_id)
    existing = {s.code: s for s in (await session.scalars(
        select(Stage).where(Stage.tenant_id == actor.tenant_id))).all()}
    wanted = {s.code for s in data.stages}
    removed = [s for s in existing.values() if s.active and s.code not in wanted]
    if removed:
        pinned = (await session.execute(
            select(Stage.code, func.count()).join(Placement, Placement.stage_id == Stage.id)
            .where(Placement.tenant_id == actor.tenant_id, Placement.stage_manual.is_(True),
                   Stage.id.in_([s.id for s in removed]))
            .group_by(Stage.code).order_by(Stage.code))).all()
        if pinned:
            code, n = pinned[0]
            raise Invalid(f"stage {code!r} holds {n} debtor(s) set there by hand: release or "
                          "move them before removing it", code="stage_in_use", param="stages")
    await _check_not_in_rules(session, actor.tenant_id, {s.code for s in removed})
    for s in removed:
        s.active, s.position = False, -1
    for i, st_in in enumerate(data.stages):
        found = existing.get(st_in.code)
        st = found or Stage(tenant_id=actor.tenant_id, code=st_in.code)
        if found is None:
            session.add(st)
        st.name, st.position, st.min_dpd, st.max_dpd = st_in.name, i, st_in.min_dpd, st_in.max_dpd
        st.active = True
    await session.flush()
    record(session, actor, "stages.replace", "stage_set", actor.tenant_id,
           {"stages": [{"code": s.code, "min_dpd": s.min_dpd, "max_dpd": s.max_dpd}
                       for s in data.stages]})
    return await active_stages(session, actor.tenant_id)


async def _check_not_in_rules(session: AsyncSession, tenant_id: int, gone: set[str]) -> None:
    """422 ``stage_in_use`` when a segment rule compares the stage with a code in ``gone``."""
    if not gone:
        return
    for seg in (await session.scalars(select(Segment).where(
            Segment.tenant_id == tenant_id, Segment.active.is_(True))
            .order_by(Segment.position))).all():
        for path, c in rules.walk_paths(rules.parse_rule(seg.rule, "rule"), "rule"):
            used = sorted(gone & set(c.values)) if c.feature == "stage" else []
            if used:
                raise Invalid(f"segment {seg.code!r} compares the stage with {used[0]!r} "
                              f"({path}): change the segment rules before removing it",
                              code="stage_in_use", param="stages")


async def stages_out(session: AsyncSession, tenant_id: int) -> schemas.StagesOut:
    stages = await active_stages(session, tenant_id)
    pl = Placement.__table__
    counts: dict[int, int] = {int(k): int(v) for k, v in (await session.execute(
        select(pl.c.stage_id, func.count()).where(pl.c.tenant_id == tenant_id)
        .group_by(pl.c.stage_id))).all()}
    return schemas.StagesOut(stages=[
        schemas.StageOut(id=s.id, code=s.code, name=s.name, position=s.position,
                         min_dpd=s.min_dpd, max_dpd=s.max_dpd, debtors=counts.get(s.id, 0))
        for s in stages])


def dpd_rules(stages: list[Stage]) -> list[rules.Rule]:
    """``days_past_due <= max`` per stage, first match in order; the last is a catch-all."""
    return [rules.Comparison("days_past_due", "lte", s.max_dpd, (s.max_dpd,), None)
            if s.max_dpd is not None and i < len(stages) - 1 else rules.Group("all", ())
            for i, s in enumerate(stages)]


# --- one debtor ---------------------------------------------------------------------------

@dataclass
class _Current:
    row: Placement | None
    dpd_stage: Stage
    dpd: int
    stages: list[Stage]

    @property
    def unchanged(self) -> bool:
        """The stored stage is the one the debtor has as of the day asked."""
        return self.row is not None and (self.row.stage_manual
                                         or self.row.stage_id == self.dpd_stage.id)


async def _debtor(session: AsyncSession, tenant_id: int, debtor_id: int, *,
                  lock: bool = False) -> Debtor:
    """The tenant's debtor (404 otherwise), ``lock``-ed before writing its placement
    (:func:`cartera.segmentation.apply.lock_debtor`)."""
    from cartera.segmentation.apply import lock_debtor  # apply builds on this module

    debtor = await get_owned(session, Debtor, debtor_id, tenant_id, what="debtor")
    if lock:
        await lock_debtor(session, debtor_id)
    return debtor


async def _current(session: AsyncSession, tenant_id: int, debtor_id: int,
                   as_of: date) -> _Current:
    """The stored placement and the days-past-due stage as of ``as_of``, from the debtor's
    summary computed for that day (nothing is written)."""
    stages = await active_stages(session, tenant_id)
    bt = summary.computed(tenant_id, as_of, debtor_id).subquery("bt")
    oldest = await session.scalar(select(func.min(bt.c.oldest_unpaid_due_date)))
    dpd = aging.days_past_due(oldest, as_of)
    dpd_stage = next(s for s in stages if s.max_dpd is None or dpd <= s.max_dpd)
    row = await session.get(Placement, debtor_id, populate_existing=True)
    return _Current(row, dpd_stage, dpd, stages)


async def stage_as_of(session: AsyncSession, tenant_id: int, debtor_id: int,
                      as_of: date) -> Stage:
    """The stage the debtor has as of ``as_of``: the one set by hand, else the one days
    past due give (what the next evaluation as of that day would store)."""
    cur = await _current(session, tenant_id, debtor_id, as_of)
    if cur.row is not None and cur.row.stage_manual:
        return next(s for s in cur.stages if s.id == cur.row.stage_id)
    return cur.dpd_stage


async def debtor_stage(session: AsyncSession, tenant_id: int, debtor_id: int,
                       as_of: date) -> schemas.DebtorStageOut:
    """The debtor's stage as of ``as_of`` and why, computed: a read writes nothing (the
    stored stage moves at the next evaluation; ``set_at`` is null until it does)."""
    await _debtor(session, tenant_id, debtor_id)
    return _out(debtor_id, as_of, await _current(session, tenant_id, debtor_id, as_of))


def _out(debtor_id: int, as_of: date, cur: _Current) -> schemas.DebtorStageOut:
    by_id = {s.id: s for s in cur.stages}
    row = cur.row if cur.unchanged else None
    stage = by_id.get(row.stage_id) if row else cur.dpd_stage
    code = stage.code if stage else None
    r = cur.dpd_stage
    span = f"{r.min_dpd}+" if r.max_dpd is None else f"{r.min_dpd}-{r.max_dpd}"
    manual = bool(row and row.stage_manual)
    if row and row.stage_manual:
        why = (f"set by hand to {code} by {row.stage_set_by}: {row.stage_reason} "
               f"(days past due would give {r.code})")
    else:
        why = f"{cur.dpd} days past due, in {r.code}'s range {span}"
    return schemas.DebtorStageOut(
        debtor_id=debtor_id, as_of=as_of, stage=code, stage_name=stage.name if stage else None,
        manual=manual, reason=row.stage_reason if row else None,
        set_by=row.stage_set_by if row else None, set_at=row.stage_set_at if row else None,
        days_past_due=cur.dpd, dpd_stage=r.code, dpd_min=r.min_dpd, dpd_max=r.max_dpd,
        why=why)


async def set_manual(session: AsyncSession, actor: Actor, debtor_id: int,
                     data: schemas.StageSet, as_of: date) -> schemas.DebtorStageOut:
    """Pin the debtor to a stage by hand; it sticks until released."""
    await _debtor(session, actor.tenant_id, debtor_id, lock=True)
    stages = await active_stages(session, actor.tenant_id)
    target = next((s for s in stages if s.code == data.stage_code), None)
    if target is None:
        raise Invalid(f"unknown stage {data.stage_code!r}; known: "
                      f"{', '.join(s.code for s in stages)}", code="unknown_stage",
                      param="stage_code")
    cur = await _current(session, actor.tenant_id, debtor_id, as_of)
    now = clock.now()
    row = cur.row
    previous = row.stage_id if row else None
    if row is None:
        row = Placement(tenant_id=actor.tenant_id, debtor_id=debtor_id)
        session.add(row)
    row.stage_id, row.stage_manual, row.stage_reason, row.stage_set_by, row.stage_set_at = (
        target.id, True, data.reason, actor.name, now)
    after = await events.before_moves(session)
    session.add(PlacementMove(tenant_id=actor.tenant_id, debtor_id=debtor_id,
                              from_stage_id=previous, to_stage_id=target.id, at=now,
                              manual=True, reason=data.reason, actor=actor.name))
    record(session, actor, "debtor.stage_set", "debtor", debtor_id,
           {"stage": target.code, "reason": data.reason})
    await session.flush()
    await events.publish_moves(session, actor.tenant_id, after, now, actor.name)
    return _out(debtor_id, as_of, await _current(session, actor.tenant_id, debtor_id, as_of))


async def release(session: AsyncSession, actor: Actor, debtor_id: int,
                  as_of: date) -> schemas.DebtorStageOut:
    """Release a manual stage: the debtor follows days past due again, at once."""
    await _debtor(session, actor.tenant_id, debtor_id, lock=True)
    cur = await _current(session, actor.tenant_id, debtor_id, as_of)
    if cur.row is None or not cur.row.stage_manual:
        raise Conflict("the debtor's stage was not set by hand: nothing to release",
                       code="stage_not_manual")
    now = clock.now()
    previous = cur.row.stage_id
    row = cur.row
    row.stage_id, row.stage_manual, row.stage_reason, row.stage_set_by, row.stage_set_at = (
        cur.dpd_stage.id, False, None, None, now)
    after = await events.before_moves(session)
    session.add(PlacementMove(tenant_id=actor.tenant_id, debtor_id=debtor_id,
                              from_stage_id=previous, to_stage_id=cur.dpd_stage.id, at=now,
                              manual=False, reason="released: follows days past due again",
                              actor=actor.name))
    record(session, actor, "debtor.stage_released", "debtor", debtor_id,
           {"stage": cur.dpd_stage.code})
    await session.flush()
    await events.publish_moves(session, actor.tenant_id, after, now, actor.name)
    return _out(debtor_id, as_of, await _current(session, actor.tenant_id, debtor_id, as_of))


async def history(session: AsyncSession, tenant_id: int, debtor_id: int | None, limit: int,
                  starting_after: int | None) -> list[schemas.StageMoveOut]:
    """The placement history rows with a stage part, in id order."""
    h = PlacementMove
    src, dst = aliased(Stage), aliased(Stage)
    stmt = (select(h.id, h.debtor_id, src.code, dst.code, h.at, h.manual, h.reason, h.actor)
            .outerjoin(src, src.id == h.from_stage_id).outerjoin(dst, dst.id == h.to_stage_id)
            .where(h.tenant_id == tenant_id, h.to_stage_id.is_not(None)))
    if debtor_id is not None:
        stmt = stmt.where(h.debtor_id == debtor_id)
    rows = (await session.execute(paginate(stmt, h.id, limit, starting_after))).all()
    return [schemas.StageMoveOut(id=r[0], debtor_id=r[1], from_stage=r[2], to_stage=r[3],
                                 at=r[4], manual=r[5], reason=r[6], actor=r[7]) for r in rows]
