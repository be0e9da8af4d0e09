"""``GET /v1/debtors/{id}/next-action``: what the planner would plan for one debtor, now,
computed in Python over the debtor's rows (the same rules as :mod:`.planner`'s SQL: anchor,
offset, the next window opening in the debtor's zone, the gate with the channel fallback,
the contact policy: one contact a day, then the minimum gap and the weekly cap, each
contact they hold back shown with the rule, the last contact, the week's count and the
earliest instant allowed), writing nothing.

It covers the debtor's active enrollments; a debtor the next pass would enroll first is not
shown until then.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.plugins.host import PluginHost
from cartera.portfolio.models import DebtorBalance
from cartera.portfolio.service import get_debtor
from cartera.segmentation.models import Placement
from cartera.strategies import policy, schemas
from cartera.strategies.models import Action, Enrollment
from cartera.strategies.planner import (
    COMPETING,
    CONTACT_KINDS,
    earliest_opening,
    judge_channels,
    load_config,
    load_for_gate,
    next_installment,
    next_opening,
    obligation_due,
    pending_promise,
)


async def _anchors(session: AsyncSession, debtor_id: int, zone: str) -> dict[str, Any]:
    """The debtor's anchor dates, as the planner's aggregates compute them (one debtor)."""
    oldest = await session.scalar(select(func.min(DebtorBalance.oldest_unpaid_due_date))
                                  .where(DebtorBalance.debtor_id == debtor_id))
    placement = await session.get(Placement, debtor_id)
    stage_on = None
    if placement is not None and placement.stage_set_at is not None:
        stage_on = placement.stage_set_at.astimezone(ZoneInfo(zone)).date()
    t = session.info["tenant_id"]
    promise = (await session.execute(select(pending_promise(t, debtor_id).c.on))).scalar()
    installment = (await session.execute(select(next_installment(t, debtor_id).c.on))).scalar()
    return {"oldest_unpaid_due_date": oldest, "stage_entry": stage_on,
            "promise_date": promise, "next_installment_date": installment}


async def _obligation_due(session: AsyncSession, debtor_id: int,
                          product: str) -> date | None:
    ob = obligation_due(session.info["tenant_id"], [product], debtor_id)
    found: date | None = (await session.execute(select(ob.c.on))).scalar()
    return found


def _anchor_on(step: dict[str, Any], e: Enrollment, anchors: dict[str, Any]
               ) -> date | None:
    kind = step["anchor"]
    if kind == "segment_entry":
        return e.entered_on
    if kind == "previous_step":
        return e.last_step_on or e.entered_on
    if kind == "obligation_due_date":
        found: date | None = anchors.get(f"obligation:{step['obligation_product']}")
        return found
    found = anchors[kind]
    return found


def _due(step: dict[str, Any], anchor_on: date | None, zone: str,
         now: datetime) -> tuple[date | None, date | None, datetime | None]:
    """(step date, due day, instant): the next window opening when the step is due by
    then, else the first opening on or after its date."""
    if anchor_on is None:
        return None, None, None
    step_date = anchor_on + timedelta(days=step["offset_days"])
    day, at = next_opening(now, zone, step["window"])
    if step_date > day:
        day, at = earliest_opening(step_date, zone, step["window"])
    return step_date, day, at


async def next_actions(session: AsyncSession, host: PluginHost, debtor_id: int,
                       now: datetime) -> schemas.NextActionOut:
    debtor = await get_debtor(session, debtor_id)
    cfg = await load_config(session, debtor.tenant_id, debtor.id)
    enrollments = (await session.scalars(select(Enrollment).where(
        Enrollment.debtor_id == debtor.id, Enrollment.status == "active")
        .order_by(Enrollment.id))).all()
    anchors = await _anchors(session, debtor.id, debtor.timezone)
    loaded = await load_for_gate(session, host, debtor.tenant_id, [debtor.id],
                                 now - timedelta(days=7))
    found: list[schemas.NextAction] = []
    for e in enrollments:
        v = cfg.versions.get(e.version_id)
        if v is None or e.step_index >= len(v.steps):
            continue
        step = v.steps[e.step_index]
        if step["anchor"] == "obligation_due_date":
            product = step["obligation_product"]
            anchors[f"obligation:{product}"] = await _obligation_due(session, debtor.id,
                                                                     product)
        anchor_on = _anchor_on(step, e, anchors)
        step_date, due_on, at = _due(step, anchor_on, debtor.timezone, now)
        existing = None
        if due_on is not None:
            existing = await session.scalar(select(Action.id).where(
                Action.debtor_id == e.debtor_id, Action.enrollment_id == e.id,
                Action.step_index == e.step_index,
                Action.due_on == due_on))
        channels = step.get("channels") or []
        verdict, channel = None, channels[0]["channel"] if channels else None
        if step["kind"] in CONTACT_KINDS and at is not None and due_on is not None:
            judged = judge_channels(host, loaded, debtor.id, channels, at, due_on)
            verdict, channel = judged.verdict, judged.channel
        found.append(schemas.NextAction(
            enrollment_id=e.id, strategy_id=v.strategy_id,
            strategy_code=cfg.strategies[v.strategy_id].code, version=v.number,
            step_index=e.step_index, step_key=step["key"], kind=step["kind"],
            anchor=step["anchor"], anchor_on=anchor_on, offset_days=step["offset_days"],
            step_date=step_date, window=msgspec.convert(step["window"], schemas.WindowIn),
            due_on=due_on, planned_at=at, channel=channel, verdict=verdict,
            superseded_by=None, already_planned=existing))
    await _apply_contact_policy(session, debtor.id, found, cfg)
    await _apply_gap_and_cap(session, debtor.tenant_id, debtor.id, debtor.timezone, found,
                             now)
    return schemas.NextActionOut(debtor_id=debtor.id, as_of=now, actions=found)


async def _apply_gap_and_cap(session: AsyncSession, tenant_id: int, debtor_id: int,
                             zone: str, found: list[schemas.NextAction],
                             now: datetime) -> None:
    """The tenant's minimum gap and weekly cap (:mod:`.policy`) on each contact the gate
    allows and no other contact beats on its day, in instant order, with the debtor's
    contacts made and their other contacts planned, as the planner's
    :func:`~cartera.strategies.policy.hold_planned` applies them."""
    rules = await policy.load_policy(session, tenant_id)
    contacts_of = [n for n in found if n.kind in CONTACT_KINDS and n.planned_at is not None
                   and n.superseded_by is None
                   and (n.verdict is None or n.verdict.get("decision") != "deny")]
    if not rules.active or not contacts_of:
        return
    gap = timedelta(hours=rules.min_gap_hours or 0)
    contacts = (await policy.contacts_made(session, [debtor_id],
                                           now - policy.WEEK - gap)).get(debtor_id, [])
    mine = {n.already_planned for n in contacts_of if n.already_planned is not None}
    contacts += (await policy.planned_instants(session, [debtor_id], mine)).get(debtor_id, [])
    contacts.sort()
    for n in sorted(contacts_of, key=lambda n: (n.planned_at, n.enrollment_id)):
        at = n.planned_at
        assert at is not None
        window = msgspec.to_builtins(n.window)

        def fit(t: datetime, w: dict[str, Any] = window) -> datetime:
            return next_opening(t, zone, w)[1]

        moved, held = policy.place(rules, contacts, at, fit)
        if not held:
            contacts.insert(bisect_right(contacts, at), at)
            continue
        denied = policy.check(rules, contacts, moved) is not None
        before = contacts[:bisect_right(contacts, at)]
        n.held_by_policy = schemas.PolicyHold(
            rule=held[0].code,  # type: ignore[arg-type]
            rules=[h.code for h in held],  # type: ignore[misc]
            message=held[0].message, min_gap_hours=rules.min_gap_hours,
            weekly_cap=rules.weekly_cap, last_contact_at=before[-1] if before else None,
            contacts_this_week=sum(1 for c in before if c > at - policy.WEEK),
            earliest_at=None if denied else moved)
        if not denied:
            contacts.insert(bisect_right(contacts, moved), moved)


async def _apply_contact_policy(session: AsyncSession, debtor_id: int,
                                found: list[schemas.NextAction], cfg: Any) -> None:
    """Mark each contact that another one beats on its day (dispatched first, then the
    lower strategy priority, then the older action or enrollment), as the planner does."""
    days = {n.due_on for n in found if n.kind in CONTACT_KINDS and n.due_on is not None}
    if not days:
        return
    stored = (await session.execute(select(Action.id, Action.enrollment_id, Action.step_index,
                                           Action.due_on, Action.status, Action.priority)
                                    .where(Action.debtor_id == debtor_id,
                                           Action.due_on.in_(days),
                                           Action.kind.in_(CONTACT_KINDS),
                                           Action.status.in_(COMPETING)))).all()
    contenders: list[tuple[tuple[int, int, int, int], str, Any]] = []
    for s in stored:
        contenders.append(((0 if s.status == "dispatched" else 1, s.priority, 0, s.id),
                           f"action:{s.id}", (s.due_on, s.enrollment_id, s.step_index)))
    for n in found:
        if n.kind in CONTACT_KINDS and n.due_on is not None and n.already_planned is None:
            priority = cfg.strategies[n.strategy_id].priority
            contenders.append(((1, priority, 1, n.enrollment_id), f"enrollment:{n.enrollment_id}",
                               (n.due_on, n.enrollment_id, n.step_index)))
    for n in found:
        if n.kind not in CONTACT_KINDS or n.due_on is None:
            continue
        same_day = sorted(c for c in contenders if c[2][0] == n.due_on)
        mine = (n.due_on, n.enrollment_id, n.step_index)
        if same_day and same_day[0][2] != mine:
            n.superseded_by = same_day[0][1]
