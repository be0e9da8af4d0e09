"""``on_debtor_stage_changed`` and ``on_segment_changed`` for the moves a pass wrote.

A pass (whole portfolio, one debtor, or a stage set or released by hand) appends one
``placement_history`` row per debtor that moved. :func:`publish_moves` queues, in the pass's
transaction, one ``segmentation.placement_events`` job naming those rows (an id range with
the pass's instant and actor), never one job per debtor; the job runs only if the pass
committed, reads the rows in id order and emits one event per part that changed: the stage
part as :class:`~cartera_sdk.events.DebtorStageChanged`, the segment part as
:class:`~cartera_sdk.events.SegmentChanged`. Event ids derive from the history row, so a
retried job redelivers the same events (plugins may de-duplicate on ``event_id``).
The outbound events ISVs see (``debtor.stage_changed``, ``debtor.segment_changed``) are
written by the pass itself, set-based (:mod:`cartera.events.moves`), whether or not a
plugin listens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cartera_sdk import events
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera.db.engine import tenant_session
from cartera.events.moves import record_moves
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.plugins.events import observed
from cartera.plugins.registry import current_host
from cartera.segmentation.models import PlacementMove, Stage

KIND = "segmentation.placement_events"
HOOKS = ("on_debtor_stage_changed", "on_segment_changed")
PAGE = 1000


async def before_moves(session: AsyncSession) -> int:
    """Call before a pass writes its history: the highest history id this transaction sees
    (0 for none; the pass's rows get higher ids)."""
    return await _last_move_id(session)


async def _last_move_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(PlacementMove.id))) or 0)


async def publish_moves(session: AsyncSession, tenant_id: int, after_id: int | None,
                        at: datetime, actor: str, *, last_id: int | None = None) -> None:
    """Write the outbound events of the history rows written by the pass of ``at`` and
    ``actor`` with ids above ``after_id`` (from :func:`before_moves`), and queue their
    plugin hooks if a plugin observes them. ``last_id``: the highest id the pass wrote,
    when the caller knows it (one debtor's move, inserted with ``RETURNING``)."""
    if after_id is None:
        return
    await session.flush()
    last = last_id if last_id is not None else await _last_move_id(session)
    if last <= after_id:
        return
    await record_moves(session, tenant_id, after_id, last, at, actor)
    if not any(observed(h) for h in HOOKS):
        return
    await current_runner().enqueue(session, tenant_id, KIND, {
        "after_id": after_id, "last_id": last, "at": at.isoformat(), "actor": actor})


def _events_of(row: Any, tenant_id: int, at: datetime) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if row.to_stage_id is not None:
        found.append(("on_debtor_stage_changed", events.DebtorStageChanged(
            event_id=f"placement-{row.id}-stage", tenant_id=str(tenant_id), occurred_at=at,
            debtor_id=str(row.debtor_id), previous_stage=row.from_stage, stage=row.to_stage)))
    if row.to_segment_id is not None:
        previous = None if row.from_segment_id is None else str(row.from_segment_id)
        found.append(("on_segment_changed", events.SegmentChanged(
            event_id=f"placement-{row.id}-segment", tenant_id=str(tenant_id), occurred_at=at,
            debtor_id=str(row.debtor_id), previous_segment_id=previous,
            segment_id=str(row.to_segment_id))))
    return found


@job(KIND)
async def placement_events(ctx: JobContext) -> dict[str, Any]:
    """Emit the events of the pass named by the payload, a page of history rows at a time."""
    p = ctx.payload
    at = datetime.fromisoformat(str(p["at"]))
    h, src, dst = PlacementMove, aliased(Stage), aliased(Stage)
    host = current_host()
    emitted = {hook: 0 for hook in HOOKS}
    after = int(p["after_id"])
    while True:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            rows = (await session.execute(
                select(h.id, h.debtor_id, src.code.label("from_stage"),
                       dst.code.label("to_stage"), h.to_stage_id, h.from_segment_id,
                       h.to_segment_id)
                .outerjoin(src, src.id == h.from_stage_id)
                .outerjoin(dst, dst.id == h.to_stage_id)
                .where(h.id > after, h.id <= int(p["last_id"]), h.tenant_id == ctx.tenant_id,
                       h.at == at, h.actor == str(p["actor"]))
                .order_by(h.id).limit(PAGE))).all()
        for row in rows:
            for hook, event in _events_of(row, ctx.tenant_id, at):
                await host.emit(hook, event)
                emitted[hook] += 1
        if len(rows) < PAGE:
            return emitted
        after = int(rows[-1].id)
