"""Outcome feedback of dispatched messages: the next channel of the step's fallback.

A dispatched message action whose interaction **failed** (the provider refused it, retries
ran out, or a delivery report said undelivered, bounced or dropped), or that is **not
delivered** within the ``fallback_after_hours`` of the channel it used, is followed by a
new action for the next channel of its step's fallback: same enrollment, step and local
day, ``attempt`` = that channel's index, ``fallback_of`` = the action, planned now and
gated like any planned contact (the contact policy applies: it may be superseded,
deferred to the window's next lawful instant, or denied with the reasons). The action it
falls back from becomes ``done`` with why in its ``outcome``. The unique key
``(enrollment, step, day, attempt)`` makes a re-run, or two at once, plan each fallback once.

A reply or a promise needs nothing here: they re-derive their debtor through
:mod:`cartera.changes`, whose last step replans them, stop rules first.

:func:`fall_back` runs per tenant about once a minute (:func:`fall_back_everywhere`) and
works on the tenant's dispatched message actions of the last :data:`LOOKBACK_DAYS` days,
joined to their interactions in one query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.db.base import UtcDateTime, table_of
from cartera.db.engine import tenant_session
from cartera.jobs.registry import every_minute
from cartera.messaging.models import Interaction
from cartera.plugins.host import PluginHost
from cartera.plugins.registry import current_host
from cartera.strategies.models import Action
from cartera.strategies.planner import (
    CONTACT_KINDS,
    PlanResult,
    _dialect_insert,
    gate_planned,
    load_config,
    supersede,
)
from cartera.strategies.service import lock_tenant

LOOKBACK_DAYS = 3
FAILED = ("failed",)
PENDING = ("queued", "sending", "sent")
"""Interaction statuses of a message not delivered yet."""

COPIED = ("tenant_id", "debtor_id", "enrollment_id", "strategy_id", "version_id", "priority",
          "step_index", "step_key", "kind", "anchor_on", "due_on")


async def fall_back(session: AsyncSession, host: PluginHost, tenant_id: int,
                    now: datetime | None = None) -> dict[str, int]:
    """Plan the fallbacks of the tenant's failed or undelivered messages, in the caller's
    transaction; counts of the actions planned per reason."""
    now = now or clock.now()
    await lock_tenant(session, tenant_id, shared=True)
    cfg = await load_config(session, tenant_id)
    hours = [ch["fallback_after_hours"] for v in cfg.versions.values() for s in v.steps
             for ch in s.get("channels") or [] if ch.get("fallback_after_hours")]
    a, i = table_of(Action), table_of(Interaction)
    late = [and_(i.c.status.in_(PENDING), i.c.created_at <= now - timedelta(hours=min(hours)))
            ] if hours else []
    rows = (await session.execute(
        select(*[a.c[c] for c in COPIED], a.c.id, a.c.attempt, a.c.outcome,
               i.c.status.label("i_status"), i.c.created_at.label("i_at"),
               i.c.failure_code)
        .join(i, i.c.id == a.c.outcome["interaction_id"].as_integer())
        .where(a.c.tenant_id == tenant_id, a.c.kind.in_(CONTACT_KINDS),
               a.c.status == "dispatched",
               a.c.due_on >= (now - timedelta(days=LOOKBACK_DAYS)).date(),
               or_(i.c.status.in_(FAILED), *late)))).all()
    new: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for r in rows:
        v = cfg.versions.get(r.version_id)
        if v is None or r.step_index >= len(v.steps):
            continue
        channels = v.steps[r.step_index].get("channels") or []
        used = r.outcome.get("channel")
        index = next((k for k, ch in enumerate(channels)
                      if k >= r.attempt and ch["channel"] == used), None)
        if index is None:
            continue
        failed = r.i_status in FAILED
        if not failed:
            wait = channels[index].get("fallback_after_hours")
            if wait is None or r.i_at > now - timedelta(hours=wait):
                continue
        why = ({"result": "failed", "failure_code": r.failure_code} if failed else
               {"result": "not_delivered", "status": r.i_status,
                "after_hours": channels[index].get("fallback_after_hours")})
        nxt = index + 1
        if nxt >= len(channels):
            done.append({"b_id": r.id, "b_outcome": {**r.outcome, **why, "fallback": None}})
            continue
        new.append({**{c: getattr(r, c) for c in COPIED}, "channel": channels[nxt]["channel"],
                    "planned_at": now, "status": "planned", "attempt": nxt,
                    "fallback_of": r.id, "outcome": {"fallback_from": r.id, **why},
                    "created_at": now, "updated_at": now})
        done.append({"b_id": r.id, "b_outcome": {
            **r.outcome, **why, "fallback": {"channel": channels[nxt]["channel"],
                                             "attempt": nxt}}})
        counts[why["result"]] = counts.get(why["result"], 0) + 1
    if new:
        await session.execute(_dialect_insert(session, a).on_conflict_do_nothing(), new)
    if done:
        await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
            status="done", outcome=bindparam("b_outcome", type_=a.c.outcome.type),
            updated_at=bindparam("b_now", type_=UtcDateTime())),
            [{**d, "b_now": now} for d in done])
    if new:
        zone_today = min(n["due_on"] for n in new)
        result = PlanResult()
        await supersede(session, tenant_id, zone_today, now, result)
        await gate_planned(session, host, tenant_id, cfg, now, result)
    return counts


@every_minute
async def fall_back_everywhere(sessionmaker: async_sessionmaker[AsyncSession],
                               runner: Any) -> None:
    """:func:`fall_back` for each tenant with recently dispatched message actions."""
    a = table_of(Action)
    now = clock.now()
    async with sessionmaker() as session:
        tenants = (await session.scalars(select(a.c.tenant_id).distinct().where(
            a.c.kind.in_(CONTACT_KINDS), a.c.status == "dispatched",
            a.c.due_on >= (now - timedelta(days=LOOKBACK_DAYS)).date()))).all()
    for tenant_id in tenants:
        async with tenant_session(sessionmaker, tenant_id) as session:
            await fall_back(session, current_host(), tenant_id, now)
