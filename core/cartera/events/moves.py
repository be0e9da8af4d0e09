"""Events of segment and stage moves, set-based: one SELECT and one INSERT per batch.

A segmentation pass writes one ``placement_history`` row per debtor that moved (thousands
at once); the pass calls :func:`record_moves` with the id range it wrote, in its own
transaction, so the events commit (or roll back) with the moves. The events' data is sealed
at rest, so it is sealed in Python: a batch of history rows per SELECT and INSERT.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cartera.events.outbox import insert_selected
from cartera.segmentation.models import PlacementMove, Stage

MOVE_BATCH = 5000
"""History rows whose events one SELECT and one INSERT write (the events' data is sealed
in Python, so the rows pass through the process a batch at a time)."""


async def record_moves(session: AsyncSession, tenant_id: int, after_id: int, last_id: int,
                       at: datetime, actor: str) -> None:
    """``debtor.stage_changed`` and ``debtor.segment_changed`` for the history rows of the
    pass of ``at`` and ``actor`` with ids in ``(after_id, last_id]``: per batch of
    :data:`MOVE_BATCH` ids, one SELECT and one INSERT of each kind (stage events first)."""
    h, src, dst = PlacementMove, aliased(Stage), aliased(Stage)
    for kind in ("stage", "segment"):
        low = after_id
        while low < last_id:
            high = min(low + MOVE_BATCH, last_id)
            mine = (h.id > low, h.id <= high, h.tenant_id == tenant_id, h.at == at,
                    h.actor == actor)
            if kind == "stage":
                stage = (
                    select(h.tenant_id, literal("debtor.stage_changed"), literal("debtor"),
                           h.debtor_id, h.debtor_id, src.code, dst.code, h.manual, h.reason)
                    .outerjoin(src, src.id == h.from_stage_id)
                    .join(dst, dst.id == h.to_stage_id).where(*mine).order_by(h.id))
                await insert_selected(session, stage,
                                      ("previous_stage", "stage", "manual", "reason"))
            else:
                segment = (
                    select(h.tenant_id, literal("debtor.segment_changed"), literal("debtor"),
                           h.debtor_id, h.debtor_id, h.from_segment_id, h.to_segment_id)
                    .where(*mine, h.to_segment_id.is_not(None)).order_by(h.id))
                await insert_selected(session, segment,
                                      ("previous_segment_id", "segment_id"))
            low = high
